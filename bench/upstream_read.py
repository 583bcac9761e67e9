"""CPU per token of reading paced upstream streams, by HTTP client: aiohttp (what
``HTTPProvider`` used before issue 19) against ``tokenrelay.providers.connections`` (what
it uses now), each feeding tokenrelay's OpenAI Chat decoder, as the provider does.

``bench/harness``'s C upstream (64 tokens at 20 ms per stream) runs on CPU 0; each
contestant runs in a fresh process pinned to CPU 1 and opens ``--streams`` streams at
once; its CPU time over the whole run (connections, requests and reads included) is
divided by the deltas decoded. Contestants alternate, ``--repeat`` rounds.

    python bench/upstream_read.py [--streams 384] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time

from _harness import HARNESS, start_harness_upstream

PORT = 19111
BODY = json.dumps(
    {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
).encode()


async def aiohttp_reader(streams: int) -> int:
    import aiohttp

    from tokenrelay.llm import OPENAI_CHAT

    count = 0

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal count
        url = f"http://127.0.0.1:{PORT}/v1/chat/completions"
        async with session.post(url, data=BODY, headers={"content-type": "application/json"}) as r:
            decoder, content = OPENAI_CHAT.decoder(), r.content
            while chunk := await content.readany():
                count += len(decoder.feed(chunk))

    connector = aiohttp.TCPConnector(limit=streams)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session) for _ in range(streams)))
    return count


async def pool_reader(streams: int) -> int:
    from tokenrelay.llm import OPENAI_CHAT
    from tokenrelay.providers.connections import ConnectionPool

    count = 0
    pool = ConnectionPool(f"http://127.0.0.1:{PORT}/v1", limit=streams)

    async def one() -> None:
        nonlocal count
        response = await pool.request(
            "POST", "/chat/completions", {"content-type": "application/json"}, BODY
        )
        decoder, read_chunk = OPENAI_CHAT.decoder(), response.read_chunk
        try:
            while chunk := await read_chunk():
                count += len(decoder.feed(chunk))
        finally:
            response.release()

    await asyncio.gather(*(one() for _ in range(streams)))
    await pool.aclose()
    return count


READERS = {"aiohttp": aiohttp_reader, "tokenrelay pool": pool_reader}


def child(name: str, streams: int) -> None:
    # Imported before the clock starts: the reads are measured, not the imports.
    import aiohttp  # noqa: F401
    import uvloop

    import tokenrelay.llm
    import tokenrelay.providers.connections  # noqa: F401

    started = time.process_time()
    deltas = uvloop.run(READERS[name](streams))
    cpu = time.process_time() - started
    print(json.dumps({"deltas": deltas, "cpu": cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.streams)
    subprocess.run(["make", "-s", "-C", str(HARNESS)], check=True)
    upstream = start_harness_upstream(PORT, 64, 20)
    results: dict[str, list[float]] = {name: [] for name in READERS}
    try:
        time.sleep(0.5)
        for _ in range(args.repeat):
            for name in READERS:
                out = subprocess.run(
                    ["taskset", "-c", "1", sys.executable, __file__, "--child", name,
                     "--streams", str(args.streams)],
                    capture_output=True, text=True, check=True, timeout=120,
                )  # fmt: skip
                run = json.loads(out.stdout)
                results[name].append(run["cpu"] / run["deltas"] * 1e6)
    finally:
        upstream.terminate()
        upstream.wait(10)
    base = statistics.median(results["aiohttp"])
    print(f"{args.streams} paced streams (64 tokens at 20 ms), µs of CPU per delta decoded:")
    for name, values in results.items():
        median = statistics.median(values)
        runs = " ".join(f"{v:.2f}" for v in values)
        print(f"  {name:16} {median:6.2f}  ({runs})  {median / base:.2f}x aiohttp")


if __name__ == "__main__":
    main()
