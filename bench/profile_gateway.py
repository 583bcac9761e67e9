"""Where the gateway's CPU goes per relayed token: ``tokenrelay serve`` pinned to CPU 1,
``bench/harness``'s C upstream and load client on CPU 0 (64 tokens at 20 ms per stream,
all started within 1 s), the gateway's own CPU time read from /proc during the run, and
py-spy sampling it for a few seconds in the middle, its samples sorted into the stages
of a token's path (upstream read, the hub's log, readers, the response task...).

    python bench/profile_gateway.py [--streams 384] [--seconds 4]

Needs py-spy (``pip install py-spy``) and a C compiler (the harness is built with make).
The stage of a sample is the innermost frame that names one, so the figures are shares
of the samples, not exact costs; they say where to look first.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import (
    HARNESS,
    cpu_ticks,
    harness_gateway_config,
    start_harness_upstream,
    syscalls,
    wait_port,
)

BENCH = Path(__file__).parent
UPSTREAM_PORT, GATEWAY_PORT = 19101, 19102
TOKENS, TOKEN_MS = 64, 20

STAGES = [
    ("the response task: frames to the socket", r"gateway/response\.py|httptools_impl\.py.*send"),
    ("upstream read: HTTP parsing", r"providers/connections\.py|aiohttp|client_proto"),
    ("SSE and JSON decoding of the upstream", r"tokenrelay/sse/|/stream\.py.*Decoder|jsonio"),
    ("the hub: pack, store append, wake readers", r"gateway/hub\.py|llm/pack\.py.*pack |store/"),
    ("readers: unpack, encode, frame", r"gateway/reader\.py|pack\.py.*unpack|Encoder"),
    ("route.generate and the provider", r"gateway/route\.py|providers/http\.py"),
    (
        "request handling: parse, admit, start",
        r"gateway/(app|handling|limits|requestlog)\.py|starlette",
    ),
    ("metrics", r"prometheus"),
    ("connect and accept", r"happyeyeballs|connector\.py|sock_connect"),
    ("the event loop itself", r"runners\.py|base_events\.py|uvloop"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=384)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--tokens", type=int, default=TOKENS, help="per stream (1: requests)")
    parser.add_argument(
        "--target", choices=["gateway", "floor"], default="gateway",
        help="floor: bench/relay_floor.py, the bytes relayed as they come and nothing else",
    )  # fmt: skip
    args = parser.parse_args()
    if args.seconds > 0 and shutil.which("py-spy") is None:
        sys.exit("py-spy is needed: pip install py-spy")
    subprocess.run(["make", "-s", "-C", str(HARNESS)], check=True)
    work = Path(tempfile.mkdtemp(prefix="tokenrelay-profile-"))
    config = harness_gateway_config(work, UPSTREAM_PORT)
    upstream = start_harness_upstream(UPSTREAM_PORT, args.tokens, TOKEN_MS)
    if args.target == "floor":
        command = [str(BENCH / "relay_floor.py"), str(GATEWAY_PORT), str(UPSTREAM_PORT)]
    else:
        command = ["-m", "tokenrelay", "serve", "--config", str(config),
                   "--port", str(GATEWAY_PORT), "--log-level", "warning"]  # fmt: skip
    gateway = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, *command], stderr=subprocess.DEVNULL
    )
    try:
        wait_port(GATEWAY_PORT, f"the {args.target}", 30)
        time.sleep(1)
        before = cpu_ticks(gateway.pid)
        calls_before = syscalls(gateway.pid)
        load = subprocess.Popen(
            ["taskset", "-c", "0", str(HARNESS / "load"), str(GATEWAY_PORT), str(args.streams),
             "1", "m", "x", str(args.tokens), str(TOKEN_MS), "12"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(0.3)
        stacks = work / "stacks.txt"
        stacks.write_text("")
        if args.seconds > 0:  # 0: the CPU figure alone, without the sampler's own cost
            subprocess.run(
                ["py-spy", "record", "-p", str(gateway.pid), "-d", f"{args.seconds:g}",
                 "-r", "250", "-f", "raw", "-o", str(stacks)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
            )  # fmt: skip
        out, err = load.communicate(timeout=120)
        after = cpu_ticks(gateway.pid)
        calls = [a - b for a, b in zip(syscalls(gateway.pid), calls_before, strict=True)]
        user, system = after[0] - before[0], after[1] - before[1]
        ticks = user + system
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
            proc.wait(10)
    clock = os.sysconf("SC_CLK_TCK")
    result = json.loads(out)
    relayed = sum(len(r["times_ms"]) for r in result["runs"])
    print(err.strip())
    print(
        f"gateway CPU {ticks / clock:.2f} s for {relayed} tokens relayed: "
        f"{ticks / clock / max(1, relayed) * 1e6:.1f} µs per token (request handling included; "
        f"{100 * system / max(1, ticks):.0f}% of it in the kernel)"
    )
    shares: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        stage = next(
            (name for frame in reversed(frames) for name, pattern in STAGES
             if re.search(pattern, frame)),
            "other",
        )  # fmt: skip
        shares[stage] += n
    print(
        f"per token: {calls[0] / max(1, relayed):.2f} reads, {calls[1] / max(1, relayed):.2f} "
        "writes (system calls)"
    )
    print(f"{total} samples over {args.seconds:g} s, by stage (innermost frame that names one):")
    for stage, n in shares.most_common():
        print(f"  {100 * n / max(1, total):5.1f}%  {stage}")
    if os.environ.get("TOKENRELAY_PROFILE_KEEP"):
        shutil.copy(stacks, os.environ["TOKENRELAY_PROFILE_KEEP"])
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
