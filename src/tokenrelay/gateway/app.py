"""``create_app(config)``: the gateway as a Starlette app. All state lives on the app
(``app.state.gateway``), created in its lifespan: no module-level state.

Request path for a streamed generation::

    client body ─► dialect.parse_request ─► model route ─► StreamHub.start(generate(...))
                                                              │ producer task, store log
    client ◄─ HubStreamResponse ◄─ hub Reader (dialect, ids "k.j") ◄──────────┘

The response starts when the first content arrives, or after ``ping_seconds`` without it
(then with keep-alive pings). So an upstream that fails before that is answered with a
real HTTP error status in the client's dialect; one that fails later ends the stream with
the dialect's error event.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..errors import RequestError
from ..llm import (
    ANTHROPIC,
    GEMINI,
    OLLAMA,
    OLLAMA_GENERATE,
    OPENAI_CHAT,
    OPENAI_RESPONSES,
    VERCEL_UI,
)
from ..llm.accumulate import accumulate
from ..llm.anthropic import PING_FRAME
from ..llm.dialect import Dialect
from ..llm.estimate import estimate_usage
from ..llm.frame import Frame
from ..llm.jsonio import dumps
from ..llm.model import (
    Delta,
    ErrorKind,
    Request,
    StreamError,
    error_from_request_error,
)
from ..providers import Provider, UpstreamError, create_provider
from ..providers.connections import pace_reads
from ..sse import comment
from ..store import (
    StoreError,
    StreamInfo,
    StreamNotFoundError,
    StreamStore,
    open_store,
)
from . import guard, responses
from .config import ClientKey, GatewayConfig, ModelRoute
from .handling import (
    Gateway,
    authorised,
    caller,
    disconnected,
    draining,
    error_response,
    gateway_of,
    key_id,
    log,
    read_body,
    store_refused,
    unauthorised,
)
from .hub import StreamHub, Timing, parse_event_id, replay
from .limits import Limits, Refusal
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .requestlog import Exchange
from .response import RAW_SEND, Answer, HubStreamResponse, OpenStreams
from .route import generate
from .stream import EndReason, StreamEnded, StreamMeta
from .tracing import Tracing, tracing_from_env
from .web import web_routes

__all__ = ["Gateway", "create_app"]

_PING_COMMENT = comment("ping")


def _ping_for(dialect: Dialect) -> Frame | bytes | None:
    # OpenAI's SDKs fail on data-less events: keep-alives are comments there; Anthropic's
    # documented keep-alive is a ping event. NDJSON (Ollama) has no keep-alive: every line
    # its clients read must be a JSON object.
    if dialect.framing == "ndjson":
        return None
    return PING_FRAME if dialect is ANTHROPIC else _PING_COMMENT


Handler = Callable[[HTTPRequest], Awaitable[Answer]]


Parse = Callable[[HTTPRequest, bytes], Request]


_GEMINI_METHODS = {"streamGenerateContent": True, "generateContent": False}
GEMINI_PATH = "/v1beta/models/{target}"  # {target} = "{model}:{method}"


def _gemini_parse(request: HTTPRequest, body: bytes) -> Request:
    """Gemini carries the model and the method in the path
    (``/v1beta/models/{model}:streamGenerateContent?alt=sse``); streams are SSE only."""
    model, _, method = request.path_params["target"].rpartition(":")
    stream = _GEMINI_METHODS.get(method)
    if not model or stream is None:
        raise RequestError(
            f"unknown method {method!r}: POST /v1beta/models/MODEL:generateContent or "
            ":streamGenerateContent?alt=sse",
            status=404,
        )
    if stream and request.query_params.get("alt") != "sse":
        raise RequestError(
            "streamGenerateContent is served as Server-Sent Events only: add ?alt=sse",
            param="alt",
        )
    return GEMINI.parse_request(body, model=model, stream=stream)


UI_CHAT_PATH = "/v1/ui/chat"
_MAX_CHAT_ID = 256


def _ui_parse(request: HTTPRequest, body: bytes) -> Request:
    """What the AI SDK's chat transport sends (``id``, ``messages``, ``trigger``...). The
    model is the body's ``model`` field (a transport's ``body`` option), else the
    gateway's first model."""
    neutral = VERCEL_UI.parse_request(body)
    chat_id = neutral.extra.get("id")
    if chat_id is not None and (
        not isinstance(chat_id, str) or not 0 < len(chat_id) <= _MAX_CHAT_ID
    ):
        raise RequestError(f"id must be a chat id of 1 to {_MAX_CHAT_ID} characters", param="id")
    models = gateway_of(request).config.models
    if not neutral.model and models:
        neutral = replace(neutral, model=models[0].name)
    return neutral


def _ui_chat_alias(gateway: Gateway, request: HTTPRequest, chat_id: str) -> str:
    """The store's name for a chat's active stream: the caller's key id and the chat id,
    hashed (another key's chat of the same id is another name)."""
    digest = hashlib.sha256(f"{key_id(gateway, request)}\0{chat_id}".encode()).hexdigest()
    return f"ui-chat:{digest}"


async def _ui_chat_started(request: HTTPRequest, neutral: Request, stream_id: str) -> None:
    """Point the chat at its new stream, for the AI SDK's resume (``resume: true``)."""
    chat_id = neutral.extra.get("id")
    if isinstance(chat_id, str):
        gateway = gateway_of(request)
        ttl = gateway.config.retention_seconds + _UI_CHAT_RUNNING
        await gateway.hub.store.put_alias(_ui_chat_alias(gateway, request, chat_id), stream_id, ttl)


_UI_CHAT_RUNNING = 3600.0  # how long a chat's pointer outlasts the retention time


async def _ui_chat_resume(request: HTTPRequest) -> Answer:
    """``GET /v1/ui/chat/{chat_id}/stream``: the AI SDK transport's ``reconnectToStream``.
    The chat's stream while it runs, replayed from its start (the SDK rebuilds the
    message from the replay), or 204 when nothing runs for that chat (never started,
    finished, another key's, expired): the SDK then stays idle."""
    gateway = gateway_of(request)
    if not authorised(gateway, request):
        return error_response(VERCEL_UI, unauthorised())
    chat_id = request.path_params["chat_id"]
    store, info = gateway.hub.store, None
    try:
        stream_id = await store.alias(_ui_chat_alias(gateway, request, chat_id))
        if stream_id is not None:
            info = await store.info(stream_id)
    except StreamNotFoundError:
        info = None
    except StoreError as exc:
        return store_refused(VERCEL_UI, exc)
    if (
        info is None
        or info.finished
        or not hmac.compare_digest(str(info.meta.get("key", "")), key_id(gateway, request))
    ):
        return Response(status_code=204)
    meta = StreamMeta.from_mapping(info.meta)
    reader = gateway.hub.reader(info.id, VERCEL_UI, meta.request())
    return HubStreamResponse(gateway.hub, reader, gateway.streams)


OnStart = Callable[[HTTPRequest, Request, str], Awaitable[None]]


class _Starting:
    """A generation request counted against the instance's ``max_streams`` from the
    moment it passes the check until it is counted where it runs (the hub's streams,
    ``whole_active``), or refused: so that concurrent requests cannot all pass."""

    __slots__ = ("_gateway",)

    def __init__(self, gateway: Gateway) -> None:
        self._gateway: Gateway | None = gateway
        gateway.starting += 1

    def counted(self) -> None:
        """Counted elsewhere now, or not starting after all (idempotent)."""
        gateway, self._gateway = self._gateway, None
        if gateway is not None:
            gateway.starting -= 1


def _endpoint(
    dialect: Dialect, path: str, parse: Parse | None = None, on_start: OnStart | None = None
) -> Handler:
    """The handler of one generation endpoint: ``dialect`` in and out; ``parse`` reads the
    neutral request from the HTTP request and its body (default: the dialect's parser);
    ``on_start`` runs once a streamed generation has its stream id (a ``StoreError`` there
    cancels it and refuses the request)."""

    async def handle(request: HTTPRequest) -> Answer:
        gateway = gateway_of(request)
        exchange = gateway.exchange(request, path, dialect.name)
        response = await serve(request, gateway, exchange)
        exchange.responded(response.status_code)
        return response

    async def serve(request: HTTPRequest, gateway: Gateway, exchange: Exchange) -> Answer:
        config = gateway.config
        key = caller(gateway, request)
        if key is None:
            return error_response(dialect, unauthorised(), endpoint=path, gateway=gateway)
        exchange.key = key.name
        try:
            body = await read_body(request, config.max_body_bytes, config.body_timeout_seconds)
            neutral = parse(request, body) if parse else dialect.parse_request(body)
        except RequestError as exc:
            return error_response(
                dialect, error_from_request_error(exc), endpoint=path, gateway=gateway
            )
        # A model the key may not use does not exist for it (nothing to enumerate).
        route = config.model(neutral.model) if key.may_use(neutral.model) else None
        if route is None:
            known = ", ".join(m.name for m in config.models if key.may_use(m.name)) or "none"
            error = StreamError(
                ErrorKind.NOT_FOUND,
                f"model {neutral.model!r} does not exist (models: {known})",
                404,
                param="model",
            )
            return error_response(dialect, error, endpoint=path, gateway=gateway)
        exchange.asked(neutral, route.name)
        if not gateway.ready:
            return error_response(dialect, draining(), {"retry-after": "1"}, path, gateway)
        # Slots are taken here, with no await between a check and its count, so that
        # concurrent requests cannot all pass it: the instance's (max_streams: running,
        # whole, and starting generations) and the key's (its max_streams).
        if gateway.hub.active + gateway.whole_active + gateway.starting >= config.max_streams:
            error = StreamError(
                ErrorKind.RATE_LIMIT,
                f"too many concurrent streams (limit {config.max_streams})",
                429,
            )
            return error_response(dialect, error, {"retry-after": "1"}, path, gateway)
        refusal = gateway.limits.reserve(key)
        if refusal is not None:
            return refused(gateway, key, refusal)
        starting = _Starting(gateway)
        try:
            return await start(request, gateway, exchange, key, neutral, body, route, starting)
        finally:
            starting.counted()
            if not exchange.generating:  # a running stream holds the slot until its end
                gateway.limits.release(key)

    def refused(gateway: Gateway, key: ClientKey, refusal: Refusal) -> Response:
        gateway.metrics.limited.labels(key.name, refusal.limit).inc()
        wait = {} if refusal.retry_after is None else {"retry-after": f"{refusal.retry_after:g}"}
        return error_response(dialect, refusal.error, wait, path, gateway)

    async def start(
        request: HTTPRequest,
        gateway: Gateway,
        exchange: Exchange,
        key: ClientKey,
        neutral: Request,
        body: bytes,
        route: ModelRoute,
        starting: _Starting,
    ) -> Answer:
        config = gateway.config
        started = exchange.started
        stream_id = f"str_{os.urandom(16).hex()}"  # 128 random bits (uuid4: 122, slower)
        turn = None
        echo = neutral  # the request as the encoders echo it
        if dialect is OPENAI_RESPONSES:  # the Responses API's state (responses.py)
            try:
                turn = await responses.prepare(neutral, body, gateway, request)
            except responses.Refused as exc:
                return error_response(dialect, exc.error, endpoint=path, gateway=gateway)
            except StoreError as exc:
                return store_refused(dialect, exc, path, gateway)
            neutral, echo = turn.upstream, turn.echo
        # The prompt's size, for tokens_per_minute: a token per four bytes of what goes
        # upstream (cheap, whatever the size: the exact estimate comes at the end).
        prompt_tokens = (len(body) + (turn.history_bytes if turn is not None else 0)) // 4
        try:
            refusal = await gateway.limits.admit(key, prompt_tokens)
        except StoreError as exc:
            return store_refused(dialect, exc, path, gateway)
        if refusal is not None:
            return refused(gateway, key, refusal)

        deltas = generate(
            route,
            gateway.providers,
            neutral,
            retry=config.retry,
            timeouts=config.timeouts,
            on_error=gateway.upstream_failed(exchange),
            on_attempt=exchange.attempt,
        )
        if turn is not None:
            deltas = responses.with_id(deltas, responses.response_id(stream_id), neutral.model)
        metrics = gateway.metrics
        timing = Timing(
            started,
            metrics.ttft.labels(route.name).observe,
            metrics.gap.labels(route.name).observe,
            exchange.first_token,
        )
        if not neutral.stream and (turn is None or not turn.stored):
            gateway.whole_active += 1  # max_streams counts these generations too
            starting.counted()
            try:
                return await _whole(request, dialect, echo, deltas, gateway, path, timing, exchange)
            finally:
                gateway.whole_active -= 1
                await gateway.used(key, exchange.usage)
        meta = StreamMeta.of(
            echo,
            dialect=dialect.name,
            created=int(time.time()),
            route=route.name,
            key=key.owner,
            conversation=None if turn is None else turn.conversation,
        )
        keep = turn is not None and turn.background
        try:
            first = await gateway.hub.start(stream_id, meta, neutral, deltas, timing, keep)
        except StoreError as exc:
            return store_refused(dialect, exc, path, gateway)
        starting.counted()  # the hub counts it now
        exchange.stream, exchange.generating = stream_id, True
        gateway.running[stream_id] = (exchange, key)  # until on_end, which frees the slot
        if not neutral.stream:  # a stored response, answered whole (or at once: background)
            if keep:
                return JSONResponse(responses.queued(meta, stream_id))
            return await _stored_whole(request, gateway, stream_id, meta, first, path)
        if on_start is not None:
            try:
                await on_start(request, neutral, stream_id)
            except StoreError as exc:
                gateway.hub.cancel(stream_id, EndReason.DISCONNECTED)
                return store_refused(dialect, exc, path, gateway)
        # The response is made now, while the upstream thinks: with the server's own
        # send (no middleware), the producer writes its head and first events as the
        # first delta is appended, before this handler wakes (``HubStreamResponse.arm``).
        # Its reader counts for the grace period once the stream is answered with it.
        hub = gateway.hub
        reader = hub.reader(stream_id, dialect, echo, attached=False)
        answer = HubStreamResponse(hub, reader, gateway.streams)
        raw_send = request.scope.get(RAW_SEND)
        if raw_send is not None:
            answer.arm(first, raw_send)
        # Until the response starts, only this handler can notice the client leaving.
        # ``first`` is awaited alone: the client leaving, or the ping interval passing
        # with no delta, cancels it (it is ours to cancel; the producer then leaves it).
        # (``asyncio.wait`` would cost the first token a second pass of the loop, which
        # on a busy gateway is milliseconds.)
        watcher = asyncio.ensure_future(disconnected(request))
        on_gone = partial(_cancel_pending, first)
        watcher.add_done_callback(on_gone)
        timer = asyncio.get_running_loop().call_later(config.ping_seconds, _cancel_pending, first)
        try:
            await first
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                answer.abandon()
                raise  # the handler itself is cancelled
        finally:
            answer.disarm()
            timer.cancel()
            gone = watcher.done() and not watcher.cancelled()
            watcher.remove_done_callback(on_gone)
            watcher.cancel()
        if gone and first.cancelled():
            # Gone before the first token: it never saw the stream id, so no resume can
            # come; stop the upstream now, whatever the grace period (a background
            # response runs on: its id is known to the client from its own request).
            if not keep:
                hub.cancel(stream_id, EndReason.DISCONNECTED)
            return Response(status_code=499)
        failure = (
            first.result()
            if first.done() and not first.cancelled() and first.exception() is None
            else None
        )
        if isinstance(failure, UpstreamError):
            headers = {}
            if failure.retry_after is not None:
                headers["retry-after"] = f"{failure.retry_after:g}"
            return error_response(dialect, failure.error, headers, path, gateway)
        gateway.metrics.requests.labels(path, "200").inc()
        hub.attach(stream_id)
        gateway.metrics.active.set(hub.active)
        return answer

    return handle


def _cancel_pending(future: asyncio.Future[Any], *_: object) -> None:
    if not future.done():
        future.cancel()


async def _stored_whole(
    request: HTTPRequest,
    gateway: Gateway,
    stream_id: str,
    meta: StreamMeta,
    first: asyncio.Future[Any],
    path: str,
) -> Response:
    """A stored Responses answer, not streamed: its generation runs as a stream (so it is
    kept), and the answer is the response object once it ends. A client that goes away
    cancels it."""
    dialect, hub = OPENAI_RESPONSES, gateway.hub
    done = asyncio.ensure_future(hub.finished(stream_id))
    watcher = asyncio.ensure_future(disconnected(request))
    try:
        await asyncio.wait({done, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not done.done():
        hub.cancel(stream_id, EndReason.DISCONNECTED)
        await done
        return Response(status_code=499)
    failure = first.result() if first.done() and first.exception() is None else None
    if isinstance(failure, UpstreamError):
        headers = {} if failure.retry_after is None else {"retry-after": f"{failure.retry_after:g}"}
        return error_response(dialect, failure.error, headers, path, gateway)
    try:
        info = await hub.store.info(stream_id)
        completion = await responses.read_completion(hub.store, stream_id, info)
    except StoreError as exc:
        return store_refused(dialect, exc, path, gateway)
    if completion.error is not None:
        return error_response(dialect, completion.error, endpoint=path, gateway=gateway)
    gateway.metrics.requests.labels(path, "200").inc()
    return JSONResponse(responses.render(meta, info, completion))


async def _whole(
    request: HTTPRequest,
    dialect: Dialect,
    neutral: Request,
    deltas: AsyncIterator[Delta],
    gateway: Gateway,
    path: str,
    timing: Timing,
    exchange: Exchange,
) -> Response:
    """A non-streamed answer; a client that goes away cancels the generation. The
    answer's usage and end go to ``exchange``."""

    async def collect() -> list[Delta]:
        collected = []
        async for delta in deltas:
            timing.delta(delta)
            collected.append(delta)
        return collected

    task = asyncio.ensure_future(collect())
    watcher = asyncio.ensure_future(disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():  # the client left (or we were cancelled): stop the upstream
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
    if task.cancelled():
        exchange.end = "disconnected"
        return Response(status_code=499)  # nobody is listening; nginx's "client closed"
    try:
        collected = task.result()
    except UpstreamError as exc:
        exchange.end = "error"
        headers = {} if exc.retry_after is None else {"retry-after": f"{exc.retry_after:g}"}
        return error_response(dialect, exc.error, headers, path, gateway)
    completion = accumulate(collected)
    text = "".join(c.text for c in completion.choices)
    exchange.usage = completion.usage or estimate_usage(neutral, text)
    if completion.error is not None:
        exchange.end = "error"
        return error_response(dialect, completion.error, endpoint=path, gateway=gateway)
    if completion.usage is not None:
        gateway.metrics.usage(neutral.model, completion.usage)
    completion = replace(completion, model=neutral.model)
    gateway.metrics.requests.labels(path, "200").inc()
    return Response(dumps(dialect.render_response(completion)), media_type="application/json")


_DIALECT_OF_STREAM = {
    d.name: d
    for d in (OPENAI_CHAT, ANTHROPIC, OPENAI_RESPONSES, GEMINI, OLLAMA, VERCEL_UI, OLLAMA_GENERATE)
}


def _no_stream(stream_id: str, gateway: Gateway) -> Response:
    """Unknown, expired, or another key's: the same answer, in the same (OpenAI) shape, so
    neither a stream's existence nor its dialect is revealed."""
    error = StreamError(
        ErrorKind.NOT_FOUND,
        f"no stream {stream_id[:80]!r} (finished streams are kept "
        f"{gateway.config.retention_seconds:g} s)",
        404,
    )
    return error_response(OPENAI_CHAT, error)


async def _stream_info(
    request: HTTPRequest, gateway: Gateway
) -> tuple[str, StreamInfo | None, Response | None]:
    """The stream a ``/v1/streams/{id}`` request names, if the caller may see it."""
    stream_id = request.path_params["stream_id"]
    if not authorised(gateway, request):  # before any lookup: nothing is revealed
        return stream_id, None, error_response(OPENAI_CHAT, unauthorised())
    try:
        info = await gateway.hub.store.info(stream_id)
    except StreamNotFoundError:
        return stream_id, None, _no_stream(stream_id, gateway)
    except StoreError as exc:
        return stream_id, None, store_refused(OPENAI_CHAT, exc)
    key = info.meta.get("key", "")
    if not hmac.compare_digest(str(key), key_id(gateway, request)):
        return stream_id, None, _no_stream(stream_id, gateway)
    return stream_id, info, None


async def _resume(request: HTTPRequest) -> Answer:
    gateway = gateway_of(request)
    stream_id, info, refused = await _stream_info(request, gateway)
    if refused is not None or info is None:
        assert refused is not None
        return refused
    meta = StreamMeta.from_mapping(info.meta)
    dialect = _DIALECT_OF_STREAM.get(meta.dialect, OPENAI_CHAT)
    # The header wins: EventSource sends it itself when it reconnects after the query
    # parameter's first connection.
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    try:
        after = parse_event_id(last)
    except ValueError as exc:
        return _bad_event_id(dialect, str(exc))
    hub = gateway.hub
    reader = hub.reader(stream_id, dialect, meta.request(), after)
    if after is None:
        return HubStreamResponse(hub, reader, gateway.streams)
    try:
        first = await replay(hub.store, reader, info, after)
    except ValueError as exc:
        reader.detach()
        return _bad_event_id(dialect, str(exc))
    except StoreError as exc:
        reader.detach()
        return store_refused(dialect, exc)
    if first is None:
        # A finished stream, read to its last event: nothing will ever come. 204 is what
        # tells EventSource (and the polyfills) to stop reconnecting.
        reader.detach()
        return Response(status_code=204)
    return HubStreamResponse(hub, reader, gateway.streams, first=first)


def _bad_event_id(dialect: Dialect, message: str) -> Response:
    error = StreamError(ErrorKind.INVALID_REQUEST, message, 400, param="Last-Event-ID")
    return error_response(dialect, error)


async def _cancel(request: HTTPRequest) -> Response:
    gateway = gateway_of(request)
    stream_id, _, refused = await _stream_info(request, gateway)
    if refused is not None:
        return refused
    try:
        cancelled = await gateway.hub.cancel_anywhere(stream_id)
    except StreamNotFoundError:
        return _no_stream(stream_id, gateway)
    except StoreError as exc:
        return store_refused(OPENAI_CHAT, exc)
    return JSONResponse({"id": stream_id, "object": "stream", "cancelled": cancelled})


def _models_of(gateway: Gateway, request: HTTPRequest) -> list[str] | None:
    """The models the caller's key may use (None: not authorised)."""
    key = caller(gateway, request)
    if key is None:
        return None
    return [m.name for m in gateway.config.models if key.may_use(m.name)]


async def _models(request: HTTPRequest) -> Response:
    gateway = gateway_of(request)
    names = _models_of(gateway, request)
    if names is None:
        dialect = ANTHROPIC if "anthropic-version" in request.headers else OPENAI_CHAT
        return error_response(dialect, unauthorised())
    if "anthropic-version" in request.headers:  # the anthropic SDK's models.list()
        data = [
            {"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}
            for n in names
        ]
        return JSONResponse(
            {
                "data": data,
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
        )
    return JSONResponse(
        {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "tokenrelay"} for n in names
            ],
        }
    )


async def _gemini_models(request: HTTPRequest) -> Response:
    """``GET /v1beta/models``: google-genai's ``models.list()``."""
    gateway = gateway_of(request)
    names = _models_of(gateway, request)
    if names is None:
        return error_response(GEMINI, unauthorised())
    methods = list(_GEMINI_METHODS)
    models = [{"name": f"models/{n}", "displayName": n, "supportedActions": methods} for n in names]
    return JSONResponse({"models": models})


async def _ollama_tags(request: HTTPRequest) -> Response:
    """``GET /api/tags``: the models, in Ollama's list shape (what its clients and tools
    such as Open WebUI read to offer a model)."""
    gateway = gateway_of(request)
    names = _models_of(gateway, request)
    if names is None:
        return error_response(OLLAMA, unauthorised())
    models = [
        {
            "name": n,
            "model": n,
            "modified_at": "1970-01-01T00:00:00Z",
            "size": 0,
            "digest": hashlib.sha256(n.encode()).hexdigest(),
            "details": {"format": "", "family": "", "parameter_size": "", "quantization_level": ""},
        }
        for n in names
    ]
    return JSONResponse({"models": models})


async def _ollama_version(request: HTTPRequest) -> Response:
    """``GET /api/version``: the Ollama API version the endpoints follow (clients check it
    before they talk), not tokenrelay's."""
    return JSONResponse({"version": OLLAMA_API_VERSION})


OLLAMA_API_VERSION = "0.12.0"


def _dialect_of_path(request: HTTPRequest) -> Dialect:
    """The dialect a request off the map most likely speaks, for its error's shape."""
    return _dialect_of(request.url.path, "anthropic-version" in request.headers)


def _dialect_of(path: str, anthropic: bool) -> Dialect:
    if path.startswith(("/v1beta/", "/v1alpha/")):
        return GEMINI
    if path.startswith("/api/"):
        return OLLAMA
    if path.startswith("/v1/ui/"):
        return VERCEL_UI
    if anthropic:
        return ANTHROPIC
    return OPENAI_CHAT


async def _off_the_map(request: HTTPRequest, exc: Exception) -> Response:
    """404 (no such endpoint) and 405 (not that method) as the client's dialect's JSON
    error, so its SDK raises its own NotFoundError, never Starlette's plain text."""
    status = getattr(exc, "status_code", 404)
    if status == 405:
        error = StreamError(
            ErrorKind.INVALID_REQUEST, f"{request.method} is not served on {request.url.path}", 405
        )
        headers = dict(getattr(exc, "headers", None) or {})
    else:
        error = StreamError(
            ErrorKind.NOT_FOUND, f"no endpoint {request.method} {request.url.path} here", 404
        )
        headers = {}
    return error_response(_dialect_of_path(request), error, headers)


async def _healthz(request: HTTPRequest) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: HTTPRequest) -> Response:
    gateway = gateway_of(request)
    if gateway.config.metrics_need_key and not authorised(gateway, request):
        return error_response(OPENAI_CHAT, unauthorised())
    if not gateway.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ready", "active_streams": gateway.hub.active})


async def _metrics(request: HTTPRequest) -> Response:
    gateway = gateway_of(request)
    if gateway.config.metrics_need_key and not authorised(gateway, request):
        return error_response(OPENAI_CHAT, unauthorised())
    gateway.metrics.active.set(gateway.hub.active)
    return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def create_app(
    config: GatewayConfig,
    *,
    store: StreamStore | None = None,
    providers: Mapping[str, Provider] | None = None,
    freeze_gc: bool = False,
    tracer_provider: Any = None,
) -> Starlette:
    """The gateway for ``config``. ``store`` defaults to the configured one
    (``config.store.url``: memory unless set), opened and closed with the app; a store
    passed in is the caller's to close. ``providers`` (by name) replace those built from
    the config.

    ``freeze_gc``: at startup, move every object that exists then out of the cyclic
    garbage collector's reach (``gc.freeze()``), so full collections stop walking the
    process's long-lived heap — tens of ms under load, a visible gap between tokens.
    ``tokenrelay serve`` turns it on; a process that embeds the app decides for itself,
    since frozen objects are never collected.

    ``tracer_provider``: an OpenTelemetry tracer provider of the embedding app's, for the
    gateway's spans; without one, the ``OTEL_EXPORTER_OTLP_*`` variables decide
    (``tracing.py``)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        built = (
            dict(providers)
            if providers is not None
            else {p.name: create_provider(p) for p in config.providers}
        )
        metrics = Metrics()
        # Traces: the app's own tracer provider if it passed one, else the standard
        # OTEL_* variables (tracing.py), else none.
        tracing = Tracing(tracer_provider) if tracer_provider is not None else tracing_from_env()

        def on_end(ended: StreamEnded) -> None:
            metrics.usage(ended.meta.route, ended.usage)
            metrics.streams_ended.labels(ended.reason.value).inc()
            metrics.active.set(hub.active)
            gateway.ended(ended.stream_id, ended.reason.value, ended.usage)

        own_store = store is None
        stream_store = (
            open_store(config.store.url, retention=config.retention_seconds)
            if store is None
            else store
        )
        hub = StreamHub(
            stream_store,
            grace=config.grace_seconds,
            ping=config.ping_seconds,
            ping_frame=_ping_for,
            on_end=on_end,
            instance=config.instance,
            lease=config.store.lease_seconds,
            global_limit=config.store.max_streams,
        )
        await hub.open()
        pace = config.pace_ms / 1000

        def on_busy(busy: bool) -> None:
            # A saturated core paces upstream reads (``providers.connections.pace_reads``);
            # the operator hears of it (more workers, or fewer streams, would help).
            metrics.saturated.set(1 if busy else 0)
            if pace:
                pace_reads(pace if busy else 0.0)
            if busy:
                log.warning("the event loop's core is saturated: upstream reads paced (%g ms)",
                            config.pace_ms)  # fmt: skip
            else:
                log.warning("the event loop's core is no longer saturated")

        streams = OpenStreams(ping=config.ping_seconds, on_busy=on_busy)
        gateway = Gateway(
            config, built, hub, metrics, streams, Limits(stream_store), tracing, ready=True
        )
        app.state.gateway = gateway
        if freeze_gc:  # why: the docstring
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            gateway.ready = False
            if streams.busy:
                pace_reads(0.0)  # (the loop may serve on: its reads are not paced by us)
            # Readers elsewhere can follow what runs on into a shared store: let it
            # finish for the drain time. A memory store dies with us: no point waiting.
            await hub.aclose(config.drain_seconds if stream_store.shared else 0.0)
            if tracing is not None:
                await asyncio.to_thread(tracing.shutdown)  # flushes the last spans
            for provider in built.values():
                with contextlib.suppress(Exception):
                    await provider.aclose()
            if own_store:
                await stream_store.aclose()
            else:  # the caller's store, the caller's to close
                with contextlib.suppress(StoreError):
                    await stream_store.flush()

    generation = {
        "/v1/chat/completions": _endpoint(OPENAI_CHAT, "/v1/chat/completions"),
        "/v1/messages": _endpoint(ANTHROPIC, "/v1/messages"),
        "/v1/responses": _endpoint(OPENAI_RESPONSES, "/v1/responses"),
        "/api/chat": _endpoint(OLLAMA, "/api/chat"),
        "/api/generate": _endpoint(OLLAMA_GENERATE, "/api/generate"),
        UI_CHAT_PATH: _endpoint(VERCEL_UI, UI_CHAT_PATH, _ui_parse, _ui_chat_started),
    }
    routes = [
        *(Route(path, handle, methods=["POST"]) for path, handle in generation.items()),
        Route(GEMINI_PATH, _endpoint(GEMINI, GEMINI_PATH, _gemini_parse), methods=["POST"]),
        Route("/v1beta/models", _gemini_models, methods=["GET"]),
        Route("/api/tags", _ollama_tags, methods=["GET"]),
        Route("/api/version", _ollama_version, methods=["GET"]),
        Route("/v1/models", _models, methods=["GET"]),
        Route(UI_CHAT_PATH + "/{chat_id}/stream", _ui_chat_resume, methods=["GET"]),
        Route("/v1/responses/{response_id}", responses.retrieve, methods=["GET"]),
        Route("/v1/responses/{response_id}", responses.delete, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/cancel", responses.cancel, methods=["POST"]),
        Route("/v1/responses/{response_id}/input_items", responses.input_items, methods=["GET"]),
        Route("/v1/streams/{stream_id}", _resume, methods=["GET"]),
        Route("/v1/streams/{stream_id}", _cancel, methods=["DELETE"]),
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/readyz", _readyz, methods=["GET"]),
        Route("/metrics", _metrics, methods=["GET"]),
        *web_routes(),  # GET / (the chat page) and /static/
    ]
    dialects: dict[str, Dialect] = {
        "/v1/chat/completions": OPENAI_CHAT,
        "/v1/messages": ANTHROPIC,
        "/v1/responses": OPENAI_RESPONSES,
        "/api/chat": OLLAMA,
        "/api/generate": OLLAMA_GENERATE,
        UI_CHAT_PATH: VERCEL_UI,
    }
    return _GatewayApp(
        generation,
        dialects,
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _off_the_map, 405: _off_the_map},
    )


def _route_path(scope: Scope) -> str:
    """The path without the ``root_path`` the server put in front (as Starlette's router
    matches it)."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


class _GatewayApp(Starlette):
    """Starlette, with a direct path for ``POST`` to the generation endpoints.

    A stream's request lives as long as the stream: through Starlette's middleware and
    routing it holds a dozen coroutines, closures and a send wrapper per layer, and each
    of its body messages crosses two wrappers. So while the app is ``_bare`` (no
    middleware was added with ``add_middleware``; middleware must see every request),
    three things take a shorter path, and this is the one place that decides them:

    - ``POST`` to the fixed-path generation endpoints (which raise no ``HTTPException``
      and need no routing) is called directly, with what ``ServerErrorMiddleware`` does
      kept: an exception before the response is a plain 500, raised on for the server
      to log;
    - every other request gets the server's own ``send`` in its scope under
      ``response.RAW_SEND``, where ``HubStreamResponse`` finds it for its body messages
      (Starlette's own wrappers only watch the start message, which goes through them);
    - CORS is answered here (``guard``): an app with middleware answers it with its own.

    Once middleware is added, everything goes through Starlette as usual.
    """

    def __init__(
        self,
        generation: Mapping[str, Handler],
        dialects: Mapping[str, Dialect],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._generation = dict(generation)
        self._dialects = dict(dialects)

    @property
    def _bare(self) -> bool:
        """No middleware was added: the short paths of the class docstring apply."""
        return not self.user_middleware

    def _guard(self, scope: Scope) -> Response | None:
        """The refusal of a request from where it may not come (``guard``), or None."""
        gateway: Gateway | None = getattr(self.state, "gateway", None)
        if gateway is None:
            return None
        config = gateway.config
        path = _route_path(scope)
        gemini = path.startswith("/v1beta/models/")
        dialect = self._dialects.get(path) or _dialect_of(
            path, guard.header(scope, b"anthropic-version") is not None
        )
        origin = guard.header(scope, b"origin")
        if not config.api_keys:
            if not guard.host_allowed(scope, config.allowed_hosts):
                error = StreamError(
                    ErrorKind.PERMISSION,
                    "this Host is not served: without API keys the gateway answers "
                    "loopback names only (set [gateway] allowed_hosts, or api_keys_env)",
                    403,
                )
                return error_response(dialect, error)
            if origin is not None and not guard.origin_allowed(origin, scope, config.cors_origins):
                error = StreamError(
                    ErrorKind.PERMISSION,
                    "cross-origin requests are refused unless their origin is in "
                    "[gateway] cors_origins",
                    403,
                )
                return error_response(dialect, error)
        if scope["method"] == "POST" and (path in self._generation or gemini):
            media = (guard.header(scope, b"content-type") or "").partition(";")[0].strip()
            if media.lower() != "application/json":
                error = StreamError(
                    ErrorKind.INVALID_REQUEST,
                    "the request body must be JSON (content-type: application/json)",
                    415,
                )
                return error_response(dialect, error)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = self._guard(scope)
            if refused is not None:
                await refused(scope, receive, send)
                return
            origin = guard.header(scope, b"origin")
            if origin is not None and self._bare:
                gateway: Gateway = self.state.gateway
                if guard.origin_allowed(origin, scope, gateway.config.cors_origins):
                    if scope["method"] == "OPTIONS" and guard.header(
                        scope, b"access-control-request-method"
                    ):
                        response = Response(status_code=204)
                        response.raw_headers = guard.preflight(origin)
                        await response(scope, receive, send)
                        return
                    send = guard.cors_send(send, origin)
        if scope["type"] == "http" and scope["method"] == "POST" and self._bare:
            handle = self._generation.get(_route_path(scope))
            if handle is not None:
                scope["app"] = self
                scope[RAW_SEND] = send
                try:
                    answer = await handle(HTTPRequest(scope, receive, send))
                except Exception:
                    await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)
                    raise
                scope.pop(guard.HEADERS, None)  # (not kept for the stream's life)
                await answer(scope, receive, send)
                return
        if self._bare:
            scope[RAW_SEND] = send
        await super().__call__(scope, receive, send)
