"""Where one client's first token spends its time inside the gateway: ``tokenrelay serve``
(pinned to CPU 1) with a clock read (``perf_counter_ns``) at the entry and exit of the
calls that mark the stages of a streamed request, in front of ``tokenrelay mock
--ttft-ms 0`` (CPU 0), one request at a time from a raw socket (a new connection each,
as ``bench/gateway.py``'s one-client figure; 10 ms apart, or ``--gap-ms``; the mock
answers at once, or after ``--ttft-ms``).

    python bench/first_token_path.py [--requests 300] [--gap-ms 10] [--ttft-ms 0]

Prints, for the requests whose marks came in the most common order, the median time of
each mark after the connection was made (µs), and the stages between them. A mark costs
about a microsecond (a wrapper and a list append): the figures are a little above an
unmarked run's; what they are for is the split. The calls are wrapped from outside (this
script imports the gateway and replaces them before ``serve`` starts), so nothing of the
gateway's code changes for the measurement.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import REPO_ROOT, wait_port

MOCK_PORT, GATEWAY_PORT = 19131, 19132
CONTENT = re.compile(rb'"content":"[^"]')  # the first token (the role chunk has "content":"")
KEY = "sk-bench-first-token"
CONFIG = f"""[gateway]
api_keys_env = "TOKENRELAY_BENCH_KEYS"
max_streams = 100000
grace_seconds = 0

[gateway.retry]
attempts = 1

[[providers]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:{MOCK_PORT}/v1"

[[models]]
name = "lorem"
route = ["mock:lorem"]
"""


def instrumented_gateway(config: str, out: str) -> None:
    """Runs in the gateway's process: wraps the stage calls, then serves."""
    marks: list[tuple[str, int]] = []
    runs: list[list[tuple[str, int]]] = []
    clock = time.perf_counter_ns

    def wrap(owner: Any, name: str, tag: str, coroutine: bool = False) -> None:
        original = getattr(owner, name)
        if coroutine:

            @functools.wraps(original)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                marks.append((tag, clock()))
                result = await original(*args, **kwargs)
                marks.append((tag + " end", clock()))
                return result

            setattr(owner, name, timed_async)
            return

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            marks.append((tag, clock()))
            result = original(*args, **kwargs)
            marks.append((tag + " end", clock()))
            return result

        setattr(owner, name, timed)

    from uvicorn.protocols.http import httptools_impl as server

    from tokenrelay.gateway import app, hub, reader
    from tokenrelay.providers import connections
    from tokenrelay.store import memory

    made = server.HttpToolsProtocol.connection_made

    def connection_made(self: Any, *args: Any, **kwargs: Any) -> Any:
        if marks:
            runs.append(marks[:])
            marks.clear()
        marks.append(("connection made", clock()))
        return made(self, *args, **kwargs)

    server.HttpToolsProtocol.connection_made = connection_made  # type: ignore[method-assign]
    wrap(server.HttpToolsProtocol, "on_message_complete", "request parsed")
    wrap(app, "caller", "key checked")
    wrap(app, "read_body", "body read", coroutine=True)
    wrap(app, "generate", "generation made")
    wrap(hub.StreamHub, "start", "hub.start", coroutine=True)
    wrap(memory.MemoryStore, "create", "log created", coroutine=True)
    wrap(connections._Connection, "send", "upstream request written")
    wrap(connections._Connection, "data_received", "upstream bytes")
    wrap(memory.MemoryStore, "append", "delta appended")
    wrap(reader.Reader, "__init__", "reader made")
    wrap(reader.Reader, "encode", "encoded")
    send = server.RequestResponseCycle.send

    async def timed_send(self: Any, message: Any) -> None:
        tag = "head written" if message["type"] == "http.response.start" else "body written"
        await send(self, message)
        marks.append((tag, clock()))

    server.RequestResponseCycle.send = timed_send  # type: ignore[method-assign]

    def dump(*_: Any) -> None:
        if marks:
            runs.append(marks[:])
        Path(out).write_text(json.dumps(runs))
        os._exit(0)

    signal.signal(signal.SIGUSR1, dump)
    from tokenrelay.cli import main

    sys.argv = ["tokenrelay", "serve", "--config", config, "--port", str(GATEWAY_PORT),
                "--log-level", "warning"]  # fmt: skip
    main()


def one_request(port: int, request: bytes) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sent = time.perf_counter()
        sock.sendall(request)
        got = b""
        first = 0.0
        while data := sock.recv(65536):
            got += data
            if not first and CONTENT.search(got.partition(b"\r\n\r\n")[2]):
                first = time.perf_counter()
        return (first - sent) * 1000


def report(runs: list[list[tuple[str, int]]]) -> None:
    runs = runs[20:]  # warm-up
    orders = collections.Counter(tuple(tag for tag, _ in run) for run in runs)
    order, count = orders.most_common(1)[0]
    chosen = [run for run in runs if tuple(tag for tag, _ in run) == order]
    print(f"{count} of {len(runs)} requests had the most common order of marks\n")
    print("| mark | µs after the connection was made | since the mark before |")
    print("|---|--:|--:|")
    before = 0.0
    for i, tag in enumerate(order):
        at = statistics.median((run[i][1] - run[0][1]) / 1000 for run in chosen)
        print(f"| {tag} | {at:,.0f} | {at - before:+,.0f} |")
        before = at
        if tag == "body written":
            break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument(
        "--gap-ms", type=float, default=10, help="the pause between requests (default 10)"
    )
    parser.add_argument("--ttft-ms", default="0", help="the mock's time to first token (default 0)")
    parser.add_argument("--gateway", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gateway:
        instrumented_gateway(*args.gateway)
        return
    bin_dir = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="bench-first-token-"))
    config, out = work / "gateway.toml", work / "marks.json"
    config.write_text(CONFIG)
    mock = subprocess.Popen(
        ["taskset", "-c", "0", str(bin_dir / "tokenrelay"), "mock", "--port", str(MOCK_PORT),
         "--ttft-ms", args.ttft_ms, "--token-ms", "20", "--log-level", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO_ROOT,
    )  # fmt: skip
    gateway = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, __file__, "--gateway", str(config), str(out)],
        env={**os.environ, "TOKENRELAY_BENCH_KEYS": KEY}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, cwd=REPO_ROOT,
    )  # fmt: skip
    try:
        wait_port(MOCK_PORT, "the mock")
        wait_port(GATEWAY_PORT, "the gateway")
        os.sched_setaffinity(0, {0})
        body = json.dumps({"model": "lorem", "stream": True, "max_tokens": 2,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()  # fmt: skip
        request = (
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
            f"content-type: application/json\r\nauthorization: Bearer {KEY}\r\n"
            f"connection: close\r\ncontent-length: {len(body)}\r\n\r\n"
        ).encode() + body
        ttft = []
        for _ in range(args.requests):
            ttft.append(one_request(GATEWAY_PORT, request))
            time.sleep(args.gap_ms / 1000)
        gateway.send_signal(signal.SIGUSR1)
        gateway.wait(30)
        print(f"time to first token at the client (marked gateway): median "
              f"{statistics.median(ttft[20:]):.2f} ms\n")  # fmt: skip
        report(json.loads(out.read_text()))
    finally:
        for proc in (gateway, mock):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
