"""``tokenrelay decode [FILE]``: decode an SSE stream from a file or stdin."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import BinaryIO, TextIO

from ..errors import (
    TokenRelayError,
)
from ..sse import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES, Decoder, Event
from ._common import (
    EXIT_PROTOCOL,
    Commands,
)

__all__ = ["add_parser", "run"]


def add_parser(commands: Commands) -> None:
    decode = commands.add_parser("decode", help="decode an SSE stream from a file or stdin")
    decode.add_argument("file", nargs="?", help="file to read (default: stdin)")
    decode.add_argument("--json", action="store_true", help="one JSON object per event")
    decode.add_argument("--last-event-id", default="", help="last event ID to start from")
    decode.add_argument("--max-line-bytes", type=int, default=DEFAULT_MAX_LINE_BYTES)
    decode.add_argument("--max-event-bytes", type=int, default=DEFAULT_MAX_EVENT_BYTES)


def run(args: argparse.Namespace, out: TextIO) -> int:
    return run_decode(args, out)


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
        return EXIT_PROTOCOL
    finally:
        if not reading_stdin:
            source.close()
    return 0
