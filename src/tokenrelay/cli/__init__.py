"""The ``tokenrelay`` command: maps arguments onto library calls, and nothing more.

One module per command, each with ``add_parser`` and ``run``:

    tokenrelay demo              decode a sample LLM stream, arriving in small pieces
    tokenrelay decode [FILE]     decode an SSE stream from a file or stdin (``curl -N ... |``)
    tokenrelay tail URL          follow a live SSE endpoint, reconnecting (extra ``client``)
    tokenrelay mock              a fake LLM server speaking every dialect (extra ``mock``)
    tokenrelay serve             the LLM gateway (extra ``gateway``; ``local`` for the model)
    tokenrelay chat              a terminal chat with a tokenrelay gateway (extra ``chat``)

Exit status: 0 when the stream ended normally; 1 when the server refused it (not 200,
not text/event-stream); 2 for a usage error; 3 when the connection failed for good
(after the reconnection attempts); 4 when the stream broke the protocol (e.g. an event
over the size limit); 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from .. import __version__
from . import chat, decode, demo, mock, serve, tail
from ._common import EXIT_INTERRUPTED, EXIT_OK, Commands

__all__ = ["main"]

Run = Callable[[argparse.Namespace, TextIO], int]
COMMANDS: dict[str, tuple[Callable[[Commands], None], Run]] = {
    "demo": (demo.add_parser, demo.run),
    "decode": (decode.add_parser, decode.run),
    "tail": (tail.add_parser, tail.run),
    "mock": (mock.add_parser, mock.run),
    "serve": (serve.add_parser, serve.run),
    "chat": (chat.add_parser, chat.run),
}
"""Every command, in the order ``--help`` lists them: what adds its arguments, what runs it."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenrelay", description="Server-Sent Events for LLM token streams."
    )
    parser.add_argument("--version", action="version", version=f"tokenrelay {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser, _ in COMMANDS.values():
        add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args, sys.stdout)
    except BrokenPipeError:  # e.g. piped into `head`
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
