"""Tokens/s of the local model: llama-cpp-python directly, ``LocalProvider.stream``, and
through the gateway (``tokenrelay serve`` over HTTP).

All sides run SmolLM2-135M-Instruct (the ``local`` extra's default GGUF) with the same
settings (n_ctx 2048, every core, greedy decoding), each in a process of its own (llama.cpp's
worker threads spin between tokens, so two models in one process slow each other), on the
same prompt, streaming ``--tokens`` tokens (default 128). Direct is llama-cpp-python's
``create_chat_completion(stream=True)`` iterated in the calling thread; the provider runs
that same iterator in its worker thread and hands every token to the event loop. Rounds
alternate between the sides (each run after a warm-up run in the same process) so that a
slower moment of the machine hurts all alike; the figure is the median of ``--rounds``.

The gateway side starts ``tokenrelay serve`` (no configuration: the local model, one
worker) as a process of its own and streams the same request through
``POST /v1/chat/completions`` with httpx, counting content chunks as they arrive.

Reported per side: tokens/s over the whole request (prompt included) and the decode rate
(first token to last), and the ratio to direct of each. The target (issue 6): tokens/s
through the gateway ≥ 95% of calling llama-cpp-python directly.

    python bench/local.py [--tokens 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from tokenrelay.llm.model import Message, Request, TextDelta, TextPart
from tokenrelay.providers.base import ProviderConfig
from tokenrelay.providers.local import DEFAULT_MODEL_NAME, LocalProvider, default_model_path

PROMPT = "Write a long story about a dragon who learns to bake bread."


@dataclass(frozen=True, slots=True)
class Run:
    tokens: int
    total: float  # seconds from the call to the last token
    first: float  # seconds from the call to the first token

    @property
    def rate(self) -> float:
        return self.tokens / self.total

    @property
    def decode_rate(self) -> float:
        return (self.tokens - 1) / (self.total - self.first)


def direct_run(llama: Any, max_tokens: int) -> Run:
    messages = [{"role": "user", "content": PROMPT}]
    started = time.perf_counter()
    first = 0.0
    tokens = 0
    for chunk in llama.create_chat_completion(
        messages=messages, max_tokens=max_tokens, temperature=0, stream=True
    ):
        if chunk["choices"][0]["delta"].get("content"):
            tokens += 1
            if tokens == 1:
                first = time.perf_counter() - started
    return Run(tokens, time.perf_counter() - started, first)


async def provider_run(provider: LocalProvider, max_tokens: int) -> Run:
    request = Request(
        DEFAULT_MODEL_NAME,
        (Message("user", (TextPart(PROMPT),)),),
        stream=True,
        max_tokens=max_tokens,
        temperature=0,
    )
    started = time.perf_counter()
    first = 0.0
    tokens = 0
    async for delta in provider.stream(request, DEFAULT_MODEL_NAME):
        if isinstance(delta, TextDelta):
            tokens += 1
            if tokens == 1:
                first = time.perf_counter() - started
    return Run(tokens, time.perf_counter() - started, first)


def gateway_run(client: Any, url: str, max_tokens: int) -> Run:
    body = {
        "model": DEFAULT_MODEL_NAME,
        "stream": True,
        "max_tokens": max_tokens,
        "temperature": 0,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    started = time.perf_counter()
    first = 0.0
    tokens = 0
    with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith('data: {"id"') and '"content":"' in line and '"role"' not in line:
                tokens += 1
                if tokens == 1:
                    first = time.perf_counter() - started
    return Run(tokens, time.perf_counter() - started, first)


def start_gateway() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokenrelay",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("tokenrelay serve did not start")


def _llama(threads: int) -> Any:
    from tokenrelay.providers.local import load_llama  # as the provider loads it

    return load_llama(default_model_path(), n_ctx=2048, n_threads=threads, verbose=False)


async def measure(side: str, max_tokens: int, runs: int) -> list[Run]:
    """``runs`` timed runs of one side after a warm-up, in this process alone."""
    threads = os.cpu_count() or 1
    if side == "direct":
        llama = _llama(threads)
        try:
            direct_run(llama, max_tokens)
            return [direct_run(llama, max_tokens) for _ in range(runs)]
        finally:
            llama.close()
    if side == "provider":
        provider = LocalProvider(ProviderConfig(name="local", kind="local", options={"workers": 1}))
        try:
            await provider_run(provider, max_tokens)
            return [await provider_run(provider, max_tokens) for _ in range(runs)]
        finally:
            await provider.aclose()
    import httpx

    process, url = start_gateway()
    try:
        with httpx.Client(timeout=120) as client:
            gateway_run(client, url, max_tokens)
            return [gateway_run(client, url, max_tokens) for _ in range(runs)]
    finally:
        process.terminate()
        process.wait(10)


def run_side(side: str, max_tokens: int, runs: int) -> list[Run]:
    """One side in a process of its own: llama.cpp's worker threads spin after each
    token, so two models in one process (or a client next to one) slow each other."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--side",
            side,
            "--tokens",
            str(max_tokens),
            "--rounds",
            str(runs),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    runs = []
    for line in out.splitlines():
        tokens, total, first = line.split()
        runs.append(Run(int(tokens), float(total), float(first)))
    return runs


def main(max_tokens: int, rounds: int) -> None:
    sides = ("direct", "provider", "gateway")
    results: dict[str, list[Run]] = {side: [] for side in sides}
    for _ in range(rounds):  # alternate the sides, so a slow moment hurts all alike
        for side in sides:
            results[side] += run_side(side, max_tokens, 1)
    direct, ours, served = (results[s] for s in sides)

    def median(runs: list[Run], what: str) -> float:
        return statistics.median(getattr(r, what) for r in runs)

    threads = os.cpu_count() or 1
    print(f"SmolLM2-135M-Instruct Q4_1, {threads} threads, {max_tokens} tokens, {rounds} rounds")
    counts = [r.tokens for r in direct], [r.tokens for r in ours], [r.tokens for r in served]
    print(f"tokens per run: direct {counts[0]}, provider {counts[1]}, gateway {counts[2]}")
    for what, label in (("rate", "tokens/s (whole request)"), ("decode_rate", "decode tokens/s")):
        d, p, g = median(direct, what), median(ours, what), median(served, what)
        print(
            f"{label:26} direct {d:7.1f}  provider {p:7.1f} ({p / d:6.1%})  "
            f"gateway {g:7.1f} ({g / d:6.1%})"
        )
    print("per round, tokens/s direct/provider/gateway:", end="")
    print(
        ",".join(
            f" {a.rate:.0f}/{b.rate:.0f}/{c.rate:.0f}"
            for a, b, c in zip(direct, ours, served, strict=True)
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--side", choices=["direct", "provider", "gateway"], help=argparse.SUPPRESS
    )  # internal: measure one side, print runs
    args = parser.parse_args()
    if args.side:
        for r in asyncio.run(measure(args.side, args.tokens, args.rounds)):
            print(r.tokens, r.total, r.first)
    else:
        main(args.tokens, args.rounds)
