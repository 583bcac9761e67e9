"""One log line per generation request, when it ends (logger ``tokenrelay.requests``).

What a line says: ``stream`` (its id, if it became a stream), ``key`` (the key's name,
never the key), ``dialect``, ``endpoint``, ``model``, ``route`` (the provider and upstream
model that answered, ``provider:model``), ``attempts`` (upstream attempts made, retries
and fallbacks included), ``status`` (the HTTP status answered), ``ttft_ms``,
``input_tokens``, ``output_tokens``, ``estimated`` (whether the counts are estimates),
``duration_ms`` and ``end`` (how the generation ended: ``completed``, ``error``,
``disconnected``, ``deleted``, ``shutdown``...; ``refused`` when it never started). Never
a prompt, an answer or a key.

A streamed request's line is written when its generation ends (which may be long after
its first reader left: the stream went on for a resume), by the instance that ran it.
``format``: ``text`` (``key=value`` pairs, the default) or ``json`` (one object per line).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..llm.jsonio import dumps
from ..llm.model import Request, StreamError, Usage
from ..providers.base import ProviderConfig
from .tracing import RequestTrace

__all__ = ["Exchange", "LogFormat", "configure"]

log = logging.getLogger("tokenrelay.requests")

LogFormat = Literal["text", "json"]


@dataclass(slots=True)
class Exchange:
    """One generation request as it goes (see the module docstring)."""

    endpoint: str
    dialect: str
    format: LogFormat = "text"
    logged: bool = True  # False: metrics only ([gateway] log_requests = false)
    started: float = field(default_factory=time.perf_counter)
    key: str = ""
    model: str = ""
    stream: str = ""
    route: str = ""
    attempts: int = 0
    status: int = 0
    ttft: float | None = None
    usage: Usage | None = None
    end: str = ""
    generating: bool = False  # a stream runs: the line waits for its end (``ended``)
    generated: bool = False
    done: bool = False
    on_finish: Callable[[Exchange], None] | None = None  # metrics, limits: once, at the end
    trace: RequestTrace | None = None  # its OpenTelemetry spans, when traced
    provider: Callable[[str], ProviderConfig | None] | None = None  # a name's config

    def first_token(self, seconds: float) -> None:
        if self.ttft is None:
            self.ttft = seconds

    def asked(self, request: Request, model: str) -> None:
        """The request is read: its configured model (and settings, for the trace)."""
        self.model = model
        if self.trace is not None:
            self.trace.asked(request, model, self.key)

    def attempt(self, provider: str, model: str) -> dict[str, str] | None:
        """An upstream attempt begins (the last one is the one that answered); the
        headers to send with it (its trace context), if traced."""
        self.attempts += 1
        self.route = f"{provider}:{model}"
        if self.trace is None:
            return None
        config = self.provider(provider) if self.provider is not None else None
        return self.trace.attempt(config, provider, model)

    def failed(self, error: StreamError) -> None:
        """The current attempt failed before its first token."""
        if self.trace is not None:
            self.trace.failed(error)

    def responded(self, status: int) -> None:
        """The handler answered ``status`` (a stream: its first response)."""
        if not self.status:
            self.status = status
        self._finish()

    def ended(self, end: str, usage: Usage | None) -> None:
        """The generation ended (``end``: ``EndReason``'s word), with its usage."""
        self.end, self.usage, self.generated = end, usage or self.usage, True
        self._finish()

    def _finish(self) -> None:
        if self.done or not self.status or (self.generating and not self.generated):
            return
        self.done = True
        if not self.end:
            self.end = "refused" if self.status >= 400 else "completed"
        if self.on_finish is not None:
            self.on_finish(self)
        if self.trace is not None:
            self.trace.end(self.status, self.end, self.stream, self.usage)
        if self.logged and log.isEnabledFor(logging.INFO):
            log.info("%s", self.line())

    def fields(self) -> dict[str, Any]:
        usage = self.usage
        return {
            "stream": self.stream or None,
            "key": self.key or None,
            "dialect": self.dialect,
            "endpoint": self.endpoint,
            "model": self.model or None,
            "route": self.route or None,
            "attempts": self.attempts,
            "status": self.status,
            "ttft_ms": None if self.ttft is None else round(self.ttft * 1000, 1),
            "input_tokens": None if usage is None else usage.input_tokens,
            "output_tokens": None if usage is None else usage.output_tokens,
            "estimated": None if usage is None else usage.estimated,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 1),
            "end": self.end,
        }

    def line(self) -> str:
        values = self.fields()
        if self.format == "json":
            return dumps(values).decode()
        return " ".join(f"{k}={_text(v)}" for k, v in values.items() if v is not None)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    # A key's name or a model name is the operator's, but keep a line one line, parseable.
    if not text or _QUOTED.search(text):
        return dumps(text).decode()
    return text


_QUOTED = re.compile(r'[ "=\n\r\t]')  # what a value of a text line is quoted for


def configure(format: LogFormat) -> None:
    """Write request lines to stderr, one per line (``tokenrelay serve`` calls this; an
    app that embeds the gateway configures logging itself). JSON lines are bare objects;
    text lines get a time in front."""
    handler = logging.StreamHandler(sys.stderr)
    pattern = "%(message)s" if format == "json" else "%(asctime)s %(message)s"
    handler.setFormatter(logging.Formatter(pattern))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
