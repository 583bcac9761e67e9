"""``tokenrelay tail URL``: follow a live SSE endpoint, reconnecting (extra ``client``)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from ..errors import (
    ProtocolError,
    ReconnectError,
    ResponseError,
    TransportError,
)
from ..sse import Event
from ._common import (
    EXIT_CONNECTION,
    EXIT_OK,
    EXIT_PROTOCOL,
    EXIT_REFUSED,
    EXIT_USAGE,
    Commands,
)

__all__ = ["add_parser", "run"]


def add_parser(commands: Commands) -> None:
    tail = commands.add_parser(
        "tail",
        help="follow a live SSE endpoint, reconnecting with Last-Event-ID",
        description="Print the events of an SSE endpoint as they arrive; reconnect when the "
        "connection drops, resuming with Last-Event-ID. Reconnect notices go to stderr. "
        "Exit status: 0 the stream ended (204, --stop-on, or the body ended with "
        "--no-reconnect); 1 the server refused (status not 200, or not text/event-stream); "
        "2 usage; 3 the connection failed for good; 4 the stream broke the protocol; "
        "130 interrupted.",
    )
    tail.add_argument("url")
    tail.add_argument("-X", "--request", metavar="METHOD", help="default GET, or POST with a body")
    tail.add_argument(
        "-H",
        "--header",
        action="append",
        type=_header,
        default=[],
        metavar="'NAME: VALUE'",
        help="request header (repeatable)",
    )
    body = tail.add_mutually_exclusive_group()
    body.add_argument("-d", "--data", help="request body, sent as is (implies POST)")
    body.add_argument("--json", help="JSON request body (implies POST)")
    tail.add_argument("--last-event-id", help="resume after this event id")
    tail.add_argument("--raw", action="store_true", help="print the bytes as received")
    tail.add_argument(
        "--stop-on",
        metavar="DATA",
        help="end at an event with this data, e.g. '[DONE]' (not printed)",
    )
    tail.add_argument("--no-reconnect", action="store_true", help="one connection only")
    tail.add_argument(
        "--max-attempts",
        type=int,
        default=10,
        help="reconnection attempts without an event before giving up",
    )
    tail.add_argument(
        "--reconnect-delay",
        type=float,
        default=3.0,
        metavar="S",
        help="wait before reconnecting, until the server sets retry:",
    )
    tail.add_argument("--connect-timeout", type=float, default=10.0, metavar="S")
    tail.add_argument(
        "--idle-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="reconnect after S seconds without a byte (comments count)",
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    return run_tail(args, out)


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"expected 'Name: value', got {text!r}")
    return name.strip(), value.strip()


def _pretty(event: Event, out: TextIO, color: bool) -> None:
    def paint(text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if color else text

    head = paint(event.event, "1;36") + (paint(f"  id {event.id}", "2") if event.id else "")
    try:
        body = json.dumps(json.loads(event.data), indent=2, ensure_ascii=False)
    except ValueError:
        body = event.data
    out.write(head + "\n" + body + "\n\n")
    out.flush()


def run_tail(args: argparse.Namespace, out: TextIO) -> int:
    try:
        from ..client import Timeout, connect
    except ImportError as exc:  # httpx missing
        print(
            f"tokenrelay tail needs the client extra: pip install 'tokenrelay[client]' ({exc})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from ..sse import NO_RECONNECT, ReconnectPolicy

    headers = dict(args.header)
    content: str | None = args.data
    method = args.request or ("POST" if args.data is not None or args.json is not None else "GET")
    if args.json is not None:
        try:
            json.loads(args.json)
        except ValueError as exc:
            print(f"tokenrelay tail: --json is not JSON: {exc}", file=sys.stderr)
            return EXIT_USAGE
        content = args.json
        headers.setdefault("Content-Type", "application/json")
    policy = NO_RECONNECT
    if not args.no_reconnect:
        policy = ReconnectPolicy(delay=args.reconnect_delay, max_attempts=args.max_attempts)

    def on_chunk(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    def on_reconnect(attempt: int, delay: float, error: BaseException | None) -> None:
        why = "the stream ended" if error is None else f"connection lost ({error})"
        resume = f", resuming after id {stream.last_event_id!r}" if stream.last_event_id else ""
        print(
            f"tokenrelay tail: {why}; reconnecting in {delay:.2f} s (attempt {attempt}{resume})",
            file=sys.stderr,
            flush=True,
        )

    color = out.isatty()
    try:
        with connect(
            args.url,
            method=method,
            headers=headers,
            content=content,
            last_event_id=args.last_event_id,
            timeout=Timeout(connect=args.connect_timeout, idle=args.idle_timeout),
            reconnect=policy,
            stop_on=args.stop_on,
            on_chunk=on_chunk if args.raw else None,
            on_reconnect=on_reconnect,
        ) as stream:
            for event in stream:
                if not args.raw:
                    _pretty(event, out, color)
    except ResponseError as exc:
        print(f"tokenrelay tail: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except TransportError as exc:
        last = exc.__cause__
        cause = f" (last error: {last})" if isinstance(exc, ReconnectError) and last else ""
        print(f"tokenrelay tail: {exc}{cause}", file=sys.stderr)
        return EXIT_CONNECTION
    except ProtocolError as exc:
        print(f"tokenrelay tail: {exc}", file=sys.stderr)
        return EXIT_PROTOCOL
    return EXIT_OK
