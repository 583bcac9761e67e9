"""The ``tokenrelay`` command: maps arguments onto library calls, and nothing more.

    tokenrelay demo              decode a sample LLM stream, arriving in small pieces
    tokenrelay decode [FILE]     decode an SSE stream from a file or stdin (``curl -N ... |``)

Exit status: 0 on success, 1 when the stream is refused (e.g. an event over the size
limit), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator, Sequence
from typing import BinaryIO, TextIO

from . import __version__
from .errors import TokenRelayError
from .sse import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES, Decoder, Event, comment, encode

__all__ = ["main"]

_DEMO_TOKENS = [
    "Server", "-Sent", " Events", " carry", " each", " token", " the", " moment", " the",
    " model", " makes", " it", " \u2014", " even", " when", " the", " network", " splits",
    " a", " line", ",", " a", " CRLF", " or", " an", " emoji", " \U0001f680", " in", " two",
    ".",
]  # fmt: skip


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


def _read_chunks(source: BinaryIO, size: int = 65536) -> Iterator[bytes]:
    read = getattr(source, "read1", source.read)  # read1: what has arrived, without waiting
    while chunk := read(size):
        yield chunk


def _show(event: Event, out: TextIO, as_json: bool) -> None:
    if as_json:
        record = {"event": event.event, "data": event.data, "id": event.id, "retry": event.retry}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        head = event.event + (f" #{event.id}" if event.id else "")
        body = event.data.replace("\n", "\n  ")
        out.write(f"{head}\n  {body}\n")
    out.flush()


def run_decode(args: argparse.Namespace, out: TextIO) -> int:
    decoder = Decoder(
        args.last_event_id, max_line_bytes=args.max_line_bytes, max_event_bytes=args.max_event_bytes
    )
    reading_stdin = args.file in (None, "-")
    source: BinaryIO = sys.stdin.buffer if reading_stdin else open(args.file, "rb")
    try:
        for chunk in _read_chunks(source):
            for event in decoder.feed(chunk):
                _show(event, out, args.json)
        decoder.close()
    except TokenRelayError as exc:
        print(f"tokenrelay decode: {exc}", file=sys.stderr)
        return 1
    finally:
        if not reading_stdin:
            source.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenrelay", description="Server-Sent Events for LLM token streams."
    )
    parser.add_argument("--version", action="version", version=f"tokenrelay {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="decode a sample LLM stream arriving in pieces")
    demo.add_argument("--delay", type=float, default=0.04, help="seconds per token (0: none)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the random chunking")

    decode = commands.add_parser("decode", help="decode an SSE stream from a file or stdin")
    decode.add_argument("file", nargs="?", help="file to read (default: stdin)")
    decode.add_argument("--json", action="store_true", help="one JSON object per event")
    decode.add_argument("--last-event-id", default="", help="last event ID to start from")
    decode.add_argument("--max-line-bytes", type=int, default=DEFAULT_MAX_LINE_BYTES)
    decode.add_argument("--max-event-bytes", type=int, default=DEFAULT_MAX_EVENT_BYTES)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = sys.stdout
    try:
        if args.command == "demo":
            return run_demo(out, delay=args.delay, seed=args.seed)
        return run_decode(args, out)
    except BrokenPipeError:  # e.g. piped into `head`
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
