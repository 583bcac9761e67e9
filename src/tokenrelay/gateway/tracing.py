"""OpenTelemetry traces of the gateway (extra ``otel``), with the GenAI semantic
conventions.

Each generation request is a span (kind SERVER, named ``chat {model}``), a child of the
client's trace context when it sent one (``traceparent``); each upstream attempt is a
child span (kind CLIENT, ``chat {upstream model}``), whose context goes upstream in a
``traceparent`` header, so a provider that traces joins the same trace. A streamed
request's span ends when its generation ends, like its log line.

Attributes: ``gen_ai.operation.name`` (``chat``), ``gen_ai.request.model`` (the client's
model on the request span, the upstream's on an attempt), ``gen_ai.request.max_tokens``,
``gen_ai.request.temperature``, ``gen_ai.request.top_p``, ``gen_ai.provider.name``
(``openai``, ``anthropic``, ``gcp.gemini``, ``ollama``...: the upstream's kind),
``gen_ai.usage.input_tokens`` and ``gen_ai.usage.output_tokens``, ``server.address`` and
``server.port`` of the upstream, ``error.type`` when it failed (the error's kind, or
how the stream ended), ``http.request.method``, ``url.path``,
``http.response.status_code``; and tokenrelay's own ``tokenrelay.stream.id``,
``tokenrelay.key`` (the key's name), ``tokenrelay.dialect``, ``tokenrelay.end``. Never a
prompt, an answer or a key.

Turned on by the standard variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (spans go there over OTLP/HTTP, batched;
``OTEL_SERVICE_NAME`` names the service, ``tokenrelay`` by default;
``OTEL_SDK_DISABLED=true`` turns it off), or by an app that passes its own tracer
provider to ``create_app``. Otherwise nothing is traced and nothing is imported.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..llm.model import Request, StreamError, Usage
from ..providers.base import ProviderConfig

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["RequestTrace", "Tracing", "tracing_from_env"]

log = logging.getLogger("tokenrelay.gateway")

# gen_ai.provider.name by provider kind (the conventions' own words where they have one).
_PROVIDER_NAME = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "ollama": "ollama",
    "local": "llama.cpp",
    "mock": "tokenrelay.mock",
}


class Tracing:
    """The gateway's tracer; ``shutdown`` flushes what it made, if it made the provider."""

    def __init__(self, provider: TracerProvider, owned: bool = False) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("tokenrelay")
        self._owned = owned

    def request(
        self, headers: Mapping[str, str], method: str, path: str, dialect: str
    ) -> RequestTrace:
        from opentelemetry import propagate, trace

        parent = propagate.extract(headers)
        span = self.tracer.start_span(
            "chat",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={
                "gen_ai.operation.name": "chat",
                "http.request.method": method,
                "url.path": path,
                "tokenrelay.dialect": dialect,
            },
        )
        return RequestTrace(self.tracer, span)

    def shutdown(self) -> None:
        if self._owned:
            shutdown = getattr(self.provider, "shutdown", None)
            if shutdown is not None:
                shutdown()


class RequestTrace:
    """One request's span and its attempts' spans."""

    def __init__(self, tracer: Tracer, span: Span) -> None:
        self._tracer = tracer
        self.span = span
        self._attempt: Span | None = None

    def asked(self, request: Request, model: str, key: str) -> None:
        """What the client asked for (the configured model's name)."""
        span = self.span
        span.update_name(f"chat {model}")
        attributes: dict[str, Any] = {"gen_ai.request.model": model, "tokenrelay.key": key}
        for name, value in (
            ("gen_ai.request.max_tokens", request.max_tokens),
            ("gen_ai.request.temperature", request.temperature),
            ("gen_ai.request.top_p", request.top_p),
        ):
            if value is not None:
                attributes[name] = value
        span.set_attributes(attributes)

    def attempt(self, provider: ProviderConfig | None, name: str, model: str) -> dict[str, str]:
        """An upstream attempt begins: its span, and the headers that carry it upstream."""
        from opentelemetry import propagate, trace

        self._end_attempt()
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "tokenrelay.provider": name,
        }
        if provider is not None:
            attributes["gen_ai.provider.name"] = _PROVIDER_NAME.get(provider.kind, provider.kind)
            if provider.base_url:
                url = urlsplit(provider.base_url)
                if url.hostname:
                    attributes["server.address"] = url.hostname
                    attributes["server.port"] = url.port or (443 if url.scheme == "https" else 80)
        context: Context = trace.set_span_in_context(self.span)
        span = self._tracer.start_span(
            f"chat {model}", context=context, kind=trace.SpanKind.CLIENT, attributes=attributes
        )
        self._attempt = span
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        return carrier

    def failed(self, error: StreamError) -> None:
        """The current attempt failed before its first token (or the stream failed)."""
        span = self._attempt
        if span is not None:
            _fail(span, error.kind.value, error.message)
            self._end_attempt()

    def _end_attempt(self, usage: Usage | None = None) -> None:
        span, self._attempt = self._attempt, None
        if span is not None:
            if usage is not None:
                span.set_attributes(_usage(usage))
            span.end()

    def end(self, status: int, end: str, stream: str, usage: Usage | None) -> None:
        """The request ended (a stream: its generation)."""
        span = self.span
        attributes: dict[str, Any] = {"http.response.status_code": status, "tokenrelay.end": end}
        if stream:
            attributes["tokenrelay.stream.id"] = stream
        if usage is not None:
            attributes.update(_usage(usage))
        span.set_attributes(attributes)
        if self._attempt is not None and end not in ("completed", "refused"):
            _fail(self._attempt, end, f"the stream ended: {end}")
        self._end_attempt(usage)
        if status >= 400 or end not in ("completed", "refused"):
            _fail(span, end if end not in ("completed", "refused") else str(status), "")
        span.end()


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
    }


def _fail(span: Span, kind: str, message: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, message or None))


def tracing_from_env(env: Mapping[str, str] | None = None) -> Tracing | None:
    """The gateway's tracing when the standard OpenTelemetry variables ask for it (see the
    module docstring), exporting over OTLP/HTTP; None otherwise."""
    env = os.environ if env is None else env
    wanted = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not wanted or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but tracing needs the otel extra: "
            "pip install 'tokenrelay[otel]'; not tracing"
        )
        return None
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or "tokenrelay"})
    provider = SDKTracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return Tracing(provider, owned=True)
