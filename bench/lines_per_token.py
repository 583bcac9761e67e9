"""How much Python the gateway runs per request and per relayed token: line events
counted with ``sys.settrace``, by function, for streams of 1 and of 64 tokens through an
in-process ``tokenrelay`` gateway (uvicorn, httptools, uvloop) in front of
``bench/harness``'s C upstream. A deterministic figure (the same code counts the same),
unlike CPU time, so a change to the per-token path can be judged in one run; what a line
costs varies, so CPU is still measured by ``cpu_per_token.py``.

    python bench/lines_per_token.py [--requests 20] [--top 40]

The load client here is raw asyncio streams; its own lines are left out of the counts
(by file). Needs a C compiler (the harness is built with make).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from _harness import HARNESS, harness_gateway_config, start_harness_upstream

UPSTREAM_PORT, GATEWAY_PORT = 19121, 19122
BODY = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}'
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n"
    b"content-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%b"
    % (GATEWAY_PORT, len(BODY), BODY)
)
CLIENT_FILES = ("asyncio/streams.py", __file__)

Counts = collections.Counter[tuple[str, str]]


def _where(path: str) -> str:
    for marker in ("site-packages/", "src/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return re.sub(r".*/python3\.\d+/", "", path)


def _tracer(counts: Counts) -> Any:
    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            code = frame.f_code
            counts[(code.co_filename, code.co_name)] += 1
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call":
            return local
        return None

    return tracer


async def _one() -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", GATEWAY_PORT)
    writer.write(REQUEST)
    data = await reader.read()
    writer.close()
    return data


async def _count(config: Path, requests: int) -> Counts:
    import uvicorn

    from tokenrelay.gateway import load_config
    from tokenrelay.gateway.app import create_app

    app = create_app(load_config(config))
    server = uvicorn.Server(
        uvicorn.Config(app, port=GATEWAY_PORT, log_level="warning", access_log=False,
                       loop="uvloop", http="httptools")
    )  # fmt: skip
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    for _ in range(3):  # warm-up: pools, caches, first-use imports
        answer = await _one()
    if b"[DONE]" not in answer:
        sys.exit(f"the gateway did not answer a stream: {answer[:300]!r}")
    counts: Counts = collections.Counter()
    tracer = _tracer(counts)
    for _ in range(requests):
        sys.settrace(tracer)
        await _one()
        sys.settrace(None)
    server.should_exit = True
    await task
    return collections.Counter({k: n for k, n in counts.items() if not k[0].endswith(CLIENT_FILES)})


def _run(tokens: int, requests: int) -> Counts:
    import uvloop

    work = Path(tempfile.mkdtemp(prefix="tokenrelay-lines-"))
    config = harness_gateway_config(work, UPSTREAM_PORT)
    upstream = start_harness_upstream(UPSTREAM_PORT, tokens, 1)
    try:
        time.sleep(0.3)
        return uvloop.run(_count(config, requests))
    finally:
        upstream.terminate()
        upstream.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    subprocess.run(["make", "-s", "-C", str(HARNESS)], check=True)
    one, many = _run(1, args.requests), _run(64, args.requests)
    n = args.requests
    per_request = sum(one.values()) / n
    per_token = (sum(many.values()) - sum(one.values())) / n / 63
    print(f"lines per request (a 1-token stream): {per_request:.0f}")
    print(f"lines per further token: {per_token:.1f}")
    rows = sorted(((many[k] - one.get(k, 0)) / n / 63, k) for k in many if many[k] > one.get(k, 0))
    print(f"\nper further token, by function (top {args.top}):")
    for d, (path, name) in reversed(rows[-args.top :]):
        print(f"  {d:6.1f}  {_where(path)}:{name}")
    print(f"\nper request, by function (top {args.top}):")
    for (path, name), c in one.most_common(args.top):
        print(f"  {c / n:6.1f}  {_where(path)}:{name}")


if __name__ == "__main__":
    main()
