"""``tokenrelay mock``: the fake LLM server speaking every dialect (extra ``mock``)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from ._common import (
    EXIT_OK,
    EXIT_USAGE,
    Commands,
)

__all__ = ["add_parser", "run"]


def add_parser(commands: Commands) -> None:
    mock = commands.add_parser(
        "mock",
        help="run the fake LLM server (OpenAI, Anthropic, Gemini, Ollama endpoints)",
        description="A deterministic fake LLM for tests and benchmarks, on loopback by default. "
        "Models: echo (repeats the last user message word by word), lorem (max_tokens words), "
        "think (reasoning, then echo), tool / tools (call the first / every declared tool). "
        "Faults per request: header 'x-mock-fault: SPEC' or model 'echo@SPEC', where SPEC is "
        "429|500|503|529 (before the stream), drop:K, stall:K, error:K or malformed:K (after "
        "K tokens), with ;retry-after=S ;times=N ;kind=KIND ;for=S. Per-request timing: "
        "headers x-mock-ttft-ms and x-mock-token-ms.",
    )
    mock.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    mock.add_argument("--port", type=int, default=9000)
    mock.add_argument(
        "--ttft-ms", type=float, default=0.0, metavar="MS", help="time to the first token"
    )
    mock.add_argument(
        "--token-ms",
        type=float,
        default=0.0,
        metavar="MS",
        help="interval between tokens (token k is due at TTFT + k x MS)",
    )
    mock.add_argument(
        "--max-body-bytes", type=int, default=4 * 1024 * 1024, help="larger request bodies get 413"
    )
    mock.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    return run_mock(args)


def run_mock(args: argparse.Namespace) -> int:
    from ..mock import MockConfig, run

    if args.ttft_ms < 0 or args.token_ms < 0 or args.max_body_bytes <= 0:
        print("tokenrelay mock: timings must be >= 0 and --max-body-bytes > 0", file=sys.stderr)
        return EXIT_USAGE
    config = MockConfig(
        ttft_ms=args.ttft_ms, token_ms=args.token_ms, max_body_bytes=args.max_body_bytes
    )
    url = f"http://{args.host}:{args.port}"
    print(f"tokenrelay mock: fake LLM on {url} (OpenAI base_url {url}/v1)", file=sys.stderr)
    run(config, args.host, args.port, args.log_level)
    return EXIT_OK
