"""The fake LLM as an ASGI app: every dialect's endpoint, paced and fault-injectable.

Endpoints (each answers in its own dialect, errors included):

    POST /v1/chat/completions                          OpenAI Chat Completions
    POST /v1/responses                                 OpenAI Responses
    POST /v1/messages                                  Anthropic Messages
    POST /v1beta/models/{model}:streamGenerateContent  Gemini (``?alt=sse``), and
    POST /v1beta/models/{model}:generateContent        ... its non-streamed twin
    POST /api/chat                                     Ollama (NDJSON; streams by default)
    GET  /v1/models                                    the models, OpenAI's list shape
    GET  /mock/requests                                what happened to each request
    GET  /healthz

Timing is deadline-paced: token k is due at t0 + TTFT + k x interval, measured from when
the request was read, so a slow send is caught up rather than added to every later token.
Per request, the ``x-mock-ttft-ms`` and ``x-mock-token-ms`` headers override the
server's settings. Faults are chosen per request too (``faults``).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, replace
from typing import Any

from ..errors import RequestError
from ..llm.accumulate import accumulate
from ..llm.anthropic import ANTHROPIC
from ..llm.dialect import Dialect
from ..llm.frame import Frame, to_wire
from ..llm.gemini import GEMINI
from ..llm.jsonio import dumps
from ..llm.model import Completion, Delta, ErrorKind, Request, StreamError, error_from_request_error
from ..llm.ollama import OLLAMA
from ..llm.openai_chat import OPENAI_CHAT
from ..llm.openai_responses import OPENAI_RESPONSES
from .faults import Fault, parse_fault
from .script import MODELS, Script, script

__all__ = ["ConnectionDropped", "MockApp", "MockConfig"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_ROUTES: dict[str, Dialect] = {
    "/v1/chat/completions": OPENAI_CHAT,
    "/v1/responses": OPENAI_RESPONSES,
    "/v1/messages": ANTHROPIC,
    "/api/chat": OLLAMA,
}
_GEMINI_PATH = re.compile(
    r"^/v1(?:beta|alpha)?/models/([^/:]+):(streamGenerateContent|generateContent)$"
)
_ID_PREFIX = {
    "openai_chat": "chatcmpl-mock",
    "openai_responses": "resp_mock",
    "anthropic": "msg_mock",
    "gemini": "mock",
    "ollama": "mock",
}


@dataclass(frozen=True, slots=True)
class MockConfig:
    """``ttft_ms`` before the first token, ``token_ms`` between tokens; request bodies
    over ``max_body_bytes`` get 413 in the caller's dialect."""

    ttft_ms: float = 0.0
    token_ms: float = 0.0
    max_body_bytes: int = 4 * 1024 * 1024


class ConnectionDropped(Exception):
    """Raised out of the app to make the server cut a connection (the ``drop`` fault)."""


class _QuietDrops(logging.Filter):
    """Keeps uvicorn from logging a traceback for every connection dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


class MockApp:
    """The fake LLM server (an ASGI app). ``records`` keeps the last 1,000 requests."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.config = config or MockConfig()
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=1000)
        self._fault_counts: dict[str, int] = collections.Counter()
        self._ids = itertools.count(1)
        uvicorn_log = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _QuietDrops) for f in uvicorn_log.filters):
            uvicorn_log.addFilter(_QuietDrops())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if method == "GET" and path in ("/v1/models", "/mock/requests", "/healthz"):
            await self._get(path, send)
            return
        dialect = _ROUTES.get(path)
        gemini = _GEMINI_PATH.match(path) if dialect is None else None
        if gemini is not None:
            dialect = GEMINI
        if dialect is None:
            await _json(send, 404, {"error": {"message": f"no route {method} {path}"}})
            return
        if method != "POST":
            await _json(send, 405, {"error": {"message": f"{path} takes POST"}})
            return
        await self._generate(scope, receive, send, dialect, gemini)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _get(self, path: str, send: Send) -> None:
        if path == "/v1/models":
            body: Any = {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": "tokenrelay-mock"}
                    for name in MODELS
                ],
            }
        elif path == "/mock/requests":
            body = list(self.records)
        else:
            body = {"status": "ok"}
        await _json(send, 200, body)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.config.max_body_bytes:
                raise RequestError(
                    f"request body exceeds {self.config.max_body_bytes} bytes", status=413
                )
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _generate(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        dialect: Dialect,
        gemini: re.Match[str] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        headers = _headers(scope)
        record: dict[str, Any] = {"dialect": dialect.name, "path": scope["path"]}
        if "traceparent" in headers:  # the trace context it was called in (gateway tests)
            record["traceparent"] = headers["traceparent"]
        self.records.append(record)
        try:
            body = await self._read_body(receive)
            if body is None:
                record["outcome"] = "disconnected"
                return
            request = dialect.parse_request(body)
            if gemini is not None:
                request = replace(
                    request,
                    model=gemini.group(1),
                    stream=gemini.group(2) == "streamGenerateContent",
                )
            model, _, suffix = request.model.partition("@")
            request = replace(request, model=model)
            fault_text = headers.get("x-mock-fault") or suffix
            fault = parse_fault(fault_text) if fault_text else None
        except RequestError as exc:
            record.update(outcome="rejected", status=exc.status)
            await _error(send, dialect, error_from_request_error(exc))
            return
        except ValueError as exc:  # a bad fault text
            record.update(outcome="rejected", status=400)
            await _error(
                send, dialect, StreamError(ErrorKind.INVALID_REQUEST, f"x-mock-fault: {exc}", 400)
            )
            return
        record.update(model=model, stream=request.stream, fault=fault_text or None)
        if fault is not None and fault.times is not None:
            used = self._fault_counts[fault.spec]
            self._fault_counts[fault.spec] = used + 1
            if used >= fault.times:
                fault = None
        if model not in MODELS:
            record.update(outcome="rejected", status=404)
            message = f"model {model!r} does not exist; the mock serves {', '.join(MODELS)}"
            await _error(send, dialect, StreamError(ErrorKind.NOT_FOUND, message, 404))
            return
        if fault is not None and fault.kind == "status":
            record.update(outcome="fault", status=fault.status)
            message = f"mock fault {fault.spec!r}"
            extra = {}
            if fault.retry_after is not None:
                extra["retry-after"] = f"{fault.retry_after:g}"
            error = StreamError(fault.error_kind, message, fault.status)
            # The status asked for, exactly: a dialect may map 529 to 503 for its clients,
            # but a fault test wants to see the very status it named.
            await _error(send, dialect, error, extra, status=fault.status)
            return
        n = next(self._ids)
        try:
            answer = script(request, id=f"{_ID_PREFIX[dialect.name]}{n}", created=int(time.time()))
        except RequestError as exc:
            record.update(outcome="rejected", status=exc.status)
            await _error(send, dialect, error_from_request_error(exc))
            return
        ttft = float(headers.get("x-mock-ttft-ms", self.config.ttft_ms)) / 1000
        interval = float(headers.get("x-mock-token-ms", self.config.token_ms)) / 1000
        t0 = loop.time()
        record["status"] = 200
        if not request.stream:
            await asyncio.sleep(max(0.0, ttft + interval * max(0, answer.token_count - 1)))
            completion: Completion = accumulate(answer.deltas)
            record["outcome"] = "completed"
            await _json(send, 200, dialect.render_response(completion))
            return
        await self._stream(
            receive, send, dialect, request, answer, fault, t0, ttft, interval, record
        )

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        dialect: Dialect,
        request: Request,
        answer: Script,
        fault: Fault | None,
        t0: float,
        ttft: float,
        interval: float,
        record: dict[str, Any],
    ) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        disconnected = False

        async def listen() -> None:
            nonlocal disconnected
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected = True
            task.cancel()

        listener = asyncio.create_task(listen())
        encoder = dialect.encoder(request)
        framing = dialect.framing
        sent = 0

        async def flush(frames: list[Frame]) -> None:
            if frames:
                await send(
                    {
                        "type": "http.response.body",
                        "body": to_wire(frames, framing),
                        "more_body": True,
                    }
                )

        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", _content_type(dialect)),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            frames: list[Frame] = []
            for delta, is_token in zip(answer.deltas, answer.tokens, strict=True):
                if is_token:
                    if fault is not None and sent == fault.after:
                        await flush(frames)
                        await self._inject(fault, send, encoder, record, sent)
                        return
                    delay = t0 + ttft + sent * interval - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    frames += encoder.encode(delta)
                    await flush(frames)
                    frames = []
                    sent += 1
                    record["tokens"] = sent
                else:
                    frames += encoder.encode(delta)
            if sent == 0:
                delay = t0 + ttft - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            frames += encoder.close()
            await flush(frames)
            await send({"type": "http.response.body", "body": b""})
            record["outcome"] = "completed"
        except asyncio.CancelledError:
            if not disconnected:
                raise
            record["outcome"] = "disconnected"
        finally:
            record["ended"] = time.time()
            if not listener.done():
                listener.cancel()

    async def _inject(
        self, fault: Fault, send: Send, encoder: Any, record: dict[str, Any], sent: int
    ) -> None:
        record["outcome"] = f"fault:{fault.kind}"
        if fault.kind == "drop":
            raise ConnectionDropped(f"mock fault {fault.spec!r} after {sent} tokens")
        if fault.kind == "stall":
            await asyncio.sleep(fault.stall_seconds)
            return
        if fault.kind == "error":
            error = StreamError(fault.error_kind, f"mock fault {fault.spec!r}")
            body = to_wire(encoder.encode(error) + encoder.close(), encoder.framing)
        else:  # malformed
            body = b"data: {not json\n\n" if encoder.framing == "sse" else b"{not json\n"
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


def _content_type(dialect: Dialect) -> bytes:
    if dialect.framing == "sse":
        return b"text/event-stream; charset=utf-8"
    return dialect.media_type.encode()


async def _json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", b"application/json")]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": dumps(body)})


async def _error(
    send: Send,
    dialect: Dialect,
    error: StreamError,
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> None:
    dialect_status, body = dialect.error_body(error)
    await _json(send, status or dialect_status, body, headers)


Deltas = list[Delta]
