"""``tokenrelay demo``: decode a sample LLM stream, arriving in small pieces."""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Iterator
from typing import TextIO

from ..sse import Decoder, comment, encode
from ._common import (
    Commands,
)

__all__ = ["add_parser", "run"]


def add_parser(commands: Commands) -> None:
    demo = commands.add_parser("demo", help="decode a sample LLM stream arriving in pieces")
    demo.add_argument("--delay", type=float, default=0.04, help="seconds per token (0: none)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the random chunking")


def run(args: argparse.Namespace, out: TextIO) -> int:
    return run_demo(out, delay=args.delay, seed=args.seed)


_DEMO_TOKENS = [
    "Server",
    "-Sent",
    " Events",
    " carry",
    " each",
    " token",
    " the",
    " moment",
    " the",
    " model",
    " makes",
    " it",
    " \u2014",
    " even",
    " when",
    " the",
    " network",
    " splits",
    " a",
    " line",
    ",",
    " a",
    " CRLF",
    " or",
    " an",
    " emoji",
    " \U0001f680",
    " in",
    " two",
    ".",
]


def demo_stream() -> bytes:
    """A Chat Completions-style stream with the awkward parts real streams have."""
    out = [comment("connected")]
    for i, token in enumerate(_DEMO_TOKENS):
        choice = {"index": 0, "delta": {"content": token}, "finish_reason": None}
        chunk = {"id": "chatcmpl-demo", "object": "chat.completion.chunk", "choices": [choice]}
        out.append(encode(json.dumps(chunk, ensure_ascii=False), id=str(i)))
        if i % 10 == 9:
            out.append(comment("ping"))
    out.append(encode("[DONE]"))
    # Some servers end lines with CRLF; the decoder must not care.
    return b"".join(out).replace(b"\n", b"\r\n")


def _pieces(data: bytes, rng: random.Random) -> Iterator[bytes]:
    i = 0
    while i < len(data):
        step = rng.randint(1, 48)
        yield data[i : i + step]
        i += step


def run_demo(out: TextIO, *, delay: float, seed: int) -> int:
    stream = demo_stream()
    decoder = Decoder()
    rng = random.Random(seed)
    events = chunks = 0
    out.write("tokens as they are decoded:\n\n  ")
    for piece in _pieces(stream, rng):
        chunks += 1
        for event in decoder.feed(piece):
            events += 1
            if event.data == "[DONE]":
                continue
            out.write(event.json()["choices"][0]["delta"]["content"])
            out.flush()
            if delay:
                time.sleep(delay)
    decoder.close()
    out.write(
        f"\n\n{len(stream)} bytes in {chunks} pieces -> {events} events "
        f"(the last is [DONE]); last event id {decoder.last_event_id!r}\n"
    )
    return 0
