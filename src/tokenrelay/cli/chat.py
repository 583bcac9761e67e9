"""``tokenrelay chat``: a terminal chat with a tokenrelay gateway (extra ``chat``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from ._common import (
    EXIT_OK,
    EXIT_USAGE,
    Commands,
)

__all__ = ["add_parser", "run"]


def add_parser(commands: Commands) -> None:
    env = os.environ.get
    chat = commands.add_parser(
        "chat",
        help="chat with a tokenrelay gateway in the terminal",
        description="Send each line you type to the gateway's /v1/chat/completions and "
        "render the answer live (Markdown). A stream cut by the network resumes from "
        "/v1/streams/{id} where it broke. Commands: /help, /model [name], /new, "
        "/system [text | off], /retry, /exit (or /quit, Ctrl-D); //text sends /text.",
    )
    chat.add_argument(
        "--url",
        default=env("TOKENRELAY_URL", "http://127.0.0.1:8080"),
        help="the gateway (default http://127.0.0.1:8080)",
    )
    chat.add_argument("--model", default="", help="default: the gateway's first model")
    chat.add_argument(
        "--api-key-env",
        default="TOKENRELAY_API_KEY",
        metavar="NAME",
        help="environment variable holding the gateway key",
    )


def run(args: argparse.Namespace, out: TextIO) -> int:
    return run_chat(args)


def run_chat(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console
    except ImportError:
        print(
            "tokenrelay chat needs the chat extra: pip install 'tokenrelay[chat]'", file=sys.stderr
        )
        return EXIT_USAGE
    from ..chat import ChatSession, ChatTerminal

    errors = Console(stderr=True, highlight=False)

    def resumed(attempt: int, exc: BaseException) -> None:
        errors.print(f"[yellow]connection lost ({exc}); resuming ({attempt})[/]")

    session = ChatSession(
        args.url, args.model, api_key=os.environ.get(args.api_key_env, ""), on_resume=resumed
    )
    try:
        ChatTerminal(session, out=Console(highlight=False), err=errors).run()
    finally:
        session.close()
    return EXIT_OK
