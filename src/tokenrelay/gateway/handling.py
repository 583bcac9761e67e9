"""What every endpoint handler of the gateway shares: the app's state (``Gateway``), who
the caller is (``authorised``, ``key_id``: a hash, never the key), the request body within
its limits, and errors answered in the caller's dialect."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from starlette.requests import Request as HTTPRequest
from starlette.responses import Response

from ..errors import RequestError
from ..llm.dialect import Dialect
from ..llm.jsonio import dumps
from ..llm.model import ErrorKind, StreamError, Usage
from ..providers import Provider
from ..store import StoreError, StoreLimitError
from . import guard
from .config import ClientKey, GatewayConfig
from .hub import StreamHub
from .limits import Limits
from .metrics import Metrics
from .requestlog import Exchange, LogFormat
from .response import OpenStreams
from .tracing import Tracing

log = logging.getLogger("tokenrelay.gateway")

__all__ = [
    "Gateway",
    "authorised",
    "caller",
    "client_key",
    "disconnected",
    "draining",
    "error_response",
    "gateway_of",
    "key_id",
    "read_body",
    "store_refused",
    "unauthorised",
]


@dataclass
class Gateway:
    """What one app holds: configuration, providers, the stream hub, the keys' limits,
    metrics, and the requests whose generations run here (for their log line)."""

    config: GatewayConfig
    providers: dict[str, Provider]
    hub: StreamHub
    metrics: Metrics
    streams: OpenStreams
    limits: Limits
    tracing: Tracing | None = None
    ready: bool = False
    whole_active: int = 0  # non-streamed generations running
    starting: int = 0  # requests past the max_streams check, not yet counted above
    running: dict[str, tuple[Exchange, ClientKey]] = field(default_factory=dict)
    _counting: set[asyncio.Task[None]] = field(default_factory=set)  # tokens being counted

    def upstream_error(self, provider: str, error: StreamError) -> None:
        """Counts a failed attempt or an error after the first delta (``generate``'s
        ``on_error``)."""
        self.metrics.upstream_errors.labels(provider, error.kind.value).inc()

    def exchange(self, request: HTTPRequest, endpoint: str, dialect: str) -> Exchange:
        """The record of a new generation request (its log line, key metrics, trace)."""
        format: LogFormat = "json" if self.config.log_format == "json" else "text"
        trace = None
        if self.tracing is not None:
            trace = self.tracing.request(request.headers, request.method, endpoint, dialect)
        return Exchange(
            endpoint,
            dialect,
            format,
            self.config.log_requests,
            on_finish=self._account,
            trace=trace,
            provider=self.config.provider,
        )

    def upstream_failed(self, exchange: Exchange) -> Callable[[str, StreamError], None]:
        """``generate``'s ``on_error`` for one request: metrics and its trace."""
        return _UpstreamFailed(self, exchange)

    def _account(self, exchange: Exchange) -> None:
        metrics, key, model = self.metrics, exchange.key, exchange.model
        metrics.key_requests.labels(key, model, str(exchange.status)).inc()
        if exchange.usage is not None:
            metrics.key_usage(key, model, exchange.usage)
        if exchange.end not in ("completed", "refused"):
            metrics.key_errors.labels(key, model, exchange.end).inc()

    def ended(self, stream_id: str, end: str, usage: Usage) -> None:
        """A generation that ran here ended (the hub's ``on_end``)."""
        running = self.running.pop(stream_id, None)
        if running is None:
            return
        exchange, key = running
        self.limits.release(key)
        # Its record (key metrics, trace, log line) a pass of the loop later: an answer
        # that came whole in one read ends before its handler has sent the head, and the
        # line's formatting and write to stderr must not come first.
        asyncio.get_running_loop().call_soon(exchange.ended, end, usage)
        if key.tokens_per_minute is not None:
            task = asyncio.get_running_loop().create_task(self.used(key, usage))
            self._counting.add(task)
            task.add_done_callback(self._counting.discard)

    async def used(self, key: ClientKey, usage: Usage | None) -> None:
        """Count a finished request's tokens against its key's limit."""
        if usage is None:
            return
        try:
            await self.limits.used(key, usage)
        except StoreError as exc:
            log.warning("stream store: cannot count the tokens of key %r: %s", key.name, exc)


class _UpstreamFailed:
    """``Gateway.upstream_failed``'s callable (an object of two slots: a closure would
    cost every open stream three times the memory)."""

    __slots__ = ("_exchange", "_gateway")

    def __init__(self, gateway: Gateway, exchange: Exchange) -> None:
        self._gateway = gateway
        self._exchange = exchange

    def __call__(self, provider: str, error: StreamError) -> None:
        self._gateway.upstream_error(provider, error)
        self._exchange.failed(error)


def gateway_of(request: HTTPRequest) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def error_response(
    dialect: Dialect,
    error: StreamError,
    headers: Mapping[str, str] | None = None,
    endpoint: str = "",
    gateway: Gateway | None = None,
) -> Response:
    status, body = dialect.error_body(error)
    if gateway is not None:
        gateway.metrics.requests.labels(endpoint, str(status)).inc()
    return Response(dumps(body), status, headers=dict(headers or {}), media_type="application/json")


def client_key(request: HTTPRequest) -> str:
    """The client's key: ``Authorization: Bearer`` (OpenAI, Ollama's clients), ``x-api-key``
    (Anthropic) or ``x-goog-api-key`` (Gemini). Never from the URL: a query string lands in
    access logs, proxies' included."""
    scope = request.scope
    auth = guard.header(scope, b"authorization") or ""
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return guard.header(scope, b"x-api-key") or guard.header(scope, b"x-goog-api-key") or ""


async def read_body(request: HTTPRequest, limit: int, seconds: float) -> bytes:
    """The request body, at most ``limit`` bytes (413), within ``seconds`` (408: a client
    that never finishes its body must not hold a connection and a task forever)."""
    declared = guard.header(request.scope, b"content-length")
    if declared is not None and declared.isdigit() and len(declared) < 20:
        if int(declared) > limit:
            raise RequestError(f"request body exceeds {limit} bytes", status=413)
    chunks, size = [], 0
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RequestError(f"request body exceeds {limit} bytes", status=413)
                chunks.append(chunk)
    except TimeoutError:
        raise RequestError(f"request body not received within {seconds:g} s", status=408) from None
    return b"".join(chunks)


def caller(gateway: Gateway, request: HTTPRequest) -> ClientKey | None:
    """The key the request authenticates with (``ANONYMOUS`` without keys), or None."""
    return gateway.config.caller(client_key(request))


def authorised(gateway: Gateway, request: HTTPRequest) -> bool:
    return caller(gateway, request) is not None


def key_id(gateway: Gateway, request: HTTPRequest) -> str:
    """Who started a stream, as kept with it: a hash of the client's key (never the key);
    "" without auth, where a stream id is the capability to read it."""
    if not gateway.config.api_keys:
        return ""
    return hashlib.sha256(client_key(request).encode()).hexdigest()[:32]


def unauthorised() -> StreamError:
    return StreamError(ErrorKind.AUTHENTICATION, "missing or invalid API key", 401)


def draining() -> StreamError:
    return StreamError(ErrorKind.OVERLOADED, "this gateway instance is shutting down", 503)


def store_refused(
    dialect: Dialect, exc: StoreError, endpoint: str = "", gateway: Gateway | None = None
) -> Response:
    """A store error before a stream started, in the caller's dialect: the global limit
    (429), or the store unreachable (503). The message never carries the store's URL."""
    if isinstance(exc, StoreLimitError):
        error = StreamError(ErrorKind.RATE_LIMIT, "too many concurrent streams (global limit)", 429)
    else:
        error = StreamError(
            ErrorKind.OVERLOADED, "the stream store is unavailable; try again shortly", 503
        )
    return error_response(dialect, error, {"retry-after": "1"}, endpoint, gateway)


async def disconnected(request: HTTPRequest) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
