"""Tokens/s of the local model: llama-cpp-python directly versus ``LocalProvider.stream``.

Both sides run SmolLM2-135M-Instruct (the ``local`` extra's default GGUF) with the same
settings (n_ctx 2048, every core, greedy decoding) on instances of their own, on the same
prompt, streaming ``--tokens`` tokens (default 128). Direct is llama-cpp-python's
``create_chat_completion(stream=True)`` iterated in the calling thread; the provider runs
that same iterator in its worker thread and hands every token to the event loop. Rounds
alternate between the two (after a warm-up round each) so that a slower moment of the
machine hurts both alike; the figure is the median of ``--rounds`` rounds.

Reported per side: tokens/s over the whole request (prompt included) and the decode rate
(first token to last), and the ratio provider/direct of each. The target (issue 6): the
provider keeps ≥ 95% of direct's tokens/s.

    python bench/local.py [--tokens 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
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


async def main(max_tokens: int, rounds: int) -> None:
    from llama_cpp import Llama

    threads = os.cpu_count() or 1
    llama = Llama(
        model_path=str(default_model_path()), n_ctx=2048, n_threads=threads, verbose=False
    )
    provider = LocalProvider(ProviderConfig(name="local", kind="local", options={"workers": 1}))
    try:
        direct_run(llama, max_tokens)  # warm-up: load, caches
        await provider_run(provider, max_tokens)
        direct: list[Run] = []
        ours: list[Run] = []
        for _ in range(rounds):
            direct.append(direct_run(llama, max_tokens))
            ours.append(await provider_run(provider, max_tokens))
    finally:
        await provider.aclose()
        llama.close()

    def median(runs: list[Run], what: str) -> float:
        return statistics.median(getattr(r, what) for r in runs)

    print(f"SmolLM2-135M-Instruct Q4_1, {threads} threads, {max_tokens} tokens, {rounds} rounds")
    counts = [r.tokens for r in direct], [r.tokens for r in ours]
    print(f"tokens per run: direct {counts[0]}, provider {counts[1]}")
    for what, label in (("rate", "tokens/s (whole request)"), ("decode_rate", "decode tokens/s")):
        d, p = median(direct, what), median(ours, what)
        print(f"{label:26} direct {d:8.1f}   provider {p:8.1f}   ratio {p / d:6.1%}")
    print("per round, tokens/s direct/provider:", end="")
    print(", ".join(f" {a.rate:.0f}/{b.rate:.0f}" for a, b in zip(direct, ours, strict=True)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.tokens, args.rounds))
