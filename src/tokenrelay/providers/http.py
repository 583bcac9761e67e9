"""Every HTTP upstream, one class: ``HTTPProvider``, parameterised by a table of kinds.

A kind (``KINDS``) says where a request goes, how it is authenticated and which dialect
codec speaks to it:

========  =================================================  ====================
kind      request                                            key header
========  =================================================  ====================
openai    POST {base_url}/chat/completions (SSE)             Authorization: Bearer
anthropic POST {base_url}/v1/messages (SSE)                  x-api-key
gemini    POST {base_url}/v1beta/models/{model}:stream...    x-goog-api-key
ollama    POST {base_url}/api/chat (NDJSON)                  Authorization: Bearer
========  =================================================  ====================

The OpenAI-compatible long tail (vLLM, llama.cpp server, LM Studio, Ollama's ``/v1``,
OpenRouter...) is kind ``openai`` with another ``base_url`` (and ``headers``), not code.
No key configured means no key header is sent (local servers need none).

Transport: ``connections.ConnectionPool``, HTTP/1.1 over httptools (why not aiohttp or
httpx: its docstring; the upstream read is the gateway's hottest loop). One pool per
provider, made lazily inside the running loop (none at import, none bound to a loop that
is gone), with a connection limit of ``max_connections`` and only a connect timeout:
first-token, idle and total deadlines are the gateway's, written once for every
provider.

Decisions beyond the ``Provider`` contract (``base.py``):

- The leading ``Start`` and ``Usage`` deltas (what a stream's opening event says) are
  held back until the first delta of content. An upstream that opens its stream and then
  fails at once (Anthropic sends ``message_start`` and then ``overloaded_error``) thus
  fails *before* the first delta, with an ``UpstreamError`` the gateway may retry,
  instead of committing the gateway to a stream that has nothing in it.
- A 200 whose content type is not the dialect's (an HTML page from a misconfigured
  ``base_url``) is an ``UpstreamError`` that is not retryable (retrying will not fix
  it); a 200 ``application/json`` body is read as a non-streamed answer by the
  dialect's ``parse_response``, as some compatible servers ignore ``stream``.
- Malformed data, an in-band error or a cut connection before the first delta are
  ``UpstreamError``\\s (retryable unless the error says the request itself is wrong);
  after it, a ``StreamError`` delta ends the stream.
- Secrets never reach an error message: every message built from a foreign exception or
  from anything the upstream sent (error bodies, in-band error events, before the first
  delta and after it) is scrubbed of the API key and of every configured header's value,
  and the codecs never quote an upstream's malformed bytes.
- Redirects are not followed: a 3xx is an upstream error (a client that follows one to
  another host sends the key headers and the prompt there).
- An upstream's 401 or 403 is the gateway's problem, not the client's: a 502 (server
  error) the client's SDK does not mistake for its own bad key, with the reason in the
  gateway's log.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import TokenRelayError
from ..llm.anthropic import ANTHROPIC
from ..llm.dialect import Dialect
from ..llm.gemini import GEMINI, request_path
from ..llm.jsonio import dumps_kept, loads
from ..llm.model import Delta, ErrorKind, Request, Start, StreamError, Usage
from ..llm.ollama import OLLAMA
from ..llm.openai_chat import OPENAI_CHAT
from ._common import EARLY_CLOSE, refused, retryable_status
from .base import ProviderConfig, UpstreamError, trace_headers
from .connections import ConnectionPool, UpstreamResponse

__all__ = ["KINDS", "HTTPKind", "HTTPProvider", "parse_retry_after"]

log = logging.getLogger("tokenrelay.providers")

_SECRET_NAME = re.compile(r"auth|key|token|secret|cookie|session|passw|signature", re.I)

ERROR_BODY_LIMIT = 64 * 1024  # an error body is read this far, no further
JSON_BODY_LIMIT = 16 * 1024 * 1024  # a non-streamed answer to a streamed request


def _bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@dataclass(frozen=True, slots=True)
class HTTPKind:
    """What differs between HTTP upstream kinds: the dialect, where its default server
    is, the path of a streamed request (and of the model list), and how the key is
    sent."""

    dialect: Dialect
    default_base_url: str
    path: Callable[[Request], str]
    auth: Callable[[str], dict[str, str]]
    models_path: str
    headers: Mapping[str, str] = field(default_factory=dict)


KINDS: dict[str, HTTPKind] = {
    "openai": HTTPKind(
        OPENAI_CHAT,
        "https://api.openai.com/v1",
        lambda request: "/chat/completions",
        _bearer,
        "/models",
    ),
    "anthropic": HTTPKind(
        ANTHROPIC,
        "https://api.anthropic.com",
        lambda request: "/v1/messages",
        lambda key: {"x-api-key": key},
        "/v1/models",
        {"anthropic-version": "2023-06-01"},
    ),
    "gemini": HTTPKind(
        GEMINI,
        "https://generativelanguage.googleapis.com",
        request_path,
        lambda key: {"x-goog-api-key": key},
        "/v1beta/models",
    ),
    "ollama": HTTPKind(
        OLLAMA,
        "http://127.0.0.1:11434",
        lambda request: "/api/chat",
        _bearer,
        "/api/tags",
    ),
}


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP
    date); None when neither says."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


_OPENING = (Start, Usage)  # what a stream says before its content


def _media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


class HTTPProvider:
    """An upstream reached over HTTP (see the module docstring for the kinds)."""

    def __init__(self, config: ProviderConfig) -> None:
        if config.kind not in KINDS:
            raise ValueError(f"HTTPProvider serves kinds {', '.join(KINDS)}, not {config.kind!r}")
        self.config = config
        self.kind = KINDS[config.kind]
        self.base_url = (config.base_url or self.kind.default_base_url).rstrip("/")
        headers = dict(self.kind.headers)
        if config.api_key:
            headers.update(self.kind.auth(config.api_key))
        headers.update({k.lower(): v for k, v in config.headers.items()})
        self._headers = headers
        # What must never appear in a message: the key, and the value of every configured
        # header whose name says it may carry a secret (x-portkey-api-key, cookie...).
        secrets = {config.api_key} | {
            v for k, v in config.headers.items() if _SECRET_NAME.search(k)
        }
        self._secrets = sorted((v for v in secrets if len(v) >= 4), key=len, reverse=True)
        # Made now, so that a base_url it cannot use fails at configuration; it binds to
        # the first loop that uses it (and is replaced for another: see _client).
        self._pool: ConnectionPool | None = self._new_pool()
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"HTTPProvider(name={self.config.name!r}, kind={self.config.kind!r})"

    def _new_pool(self) -> ConnectionPool:
        return ConnectionPool(
            self.base_url, limit=self.config.max_connections,
            connect_timeout=self.config.connect_timeout,
        )  # fmt: skip

    def _client(self) -> ConnectionPool:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop not in (None, loop):
            self._pool = self._new_pool()
        self._loop = loop
        return self._pool

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text

    def _scrubbed(self, error: StreamError) -> StreamError:
        """``error`` with every text the upstream chose (message, type word, param)
        scrubbed."""
        message = self._scrub(error.message)
        raw_type = self._scrub(error.raw_type)
        param = None if error.param is None else self._scrub(error.param)
        if (message, raw_type, param) == (error.message, error.raw_type, error.param):
            return error
        return replace(error, message=message, raw_type=raw_type, param=param)

    def _scrub_body(self, raw: bytes, cut: bool) -> bytes:
        """An upstream's error body, scrubbed before any codec shortens it (a secret cut
        in two would survive); when the read stopped at its limit (``cut``), a trailing
        piece that begins a secret goes too."""
        for secret in self._secrets:
            token = secret.encode()
            if token in raw:
                raw = raw.replace(token, b"[redacted]")
            if cut:
                for n in range(min(len(token), len(raw)) - 1, 3, -1):
                    if raw.endswith(token[:n]):
                        raw = raw[:-n]
                        break
        return raw

    def _connection_error(self, what: str, exc: BaseException) -> UpstreamError:
        # The details (host, port, the OS's words) are the operator's, in the log; the
        # client hears which provider failed and how, no more.
        log.warning("provider %s: %s: %s", self.config.name, what, self._scrub(str(exc)))
        return UpstreamError.connection(
            f"upstream {self.config.name}: {what} ({type(exc).__name__})"
        )

    def _refused(self, status: int) -> UpstreamError:
        """A redirect, or the upstream refusing the gateway's own credentials."""
        error = refused(self.config.name, status)
        assert error is not None
        fix = "its API key" if status in (401, 403) else "its base_url"
        log.error("%s: check %s", error.message, fix)
        return UpstreamError(error, retryable=False)

    def _failed(self, error: StreamError) -> UpstreamError:
        """An error the upstream reported before the first delta."""
        return UpstreamError.reported(self._scrubbed(error))

    async def stream(self, request: Request, model: str) -> AsyncGenerator[Delta, None]:
        """The deltas of one attempt (the contract is ``Provider``'s, in ``base.py``)."""
        dialect = self.kind.dialect
        upstream = request.streamed_as(model)
        # A copy of its own size: orjson's result keeps a ~4 KiB buffer, held here for the
        # whole stream (measured by bench/gateway.py's memory figure).
        body = dumps_kept(dialect.build_request(upstream))
        path = self.kind.path(upstream)
        headers = {**trace_headers.get(), **self._headers, "content-type": "application/json"}
        try:
            response = await self._client().request("POST", path, headers, body)
        except OSError as exc:  # refused, reset, TLS, connect timeout, a malformed head
            raise self._connection_error("request failed", exc) from None
        # Sent: not held for the stream's life (the body is the whole prompt again).
        del body, headers, request, upstream
        try:
            status = response.status
            if 300 <= status < 400 or status in (401, 403):
                raise self._refused(status)  # nothing of it is read: closed below
            if not 200 <= status < 300:
                try:
                    raw = await response.read(ERROR_BODY_LIMIT)
                except OSError:
                    raw = b""  # the status alone still says what happened
                raw = self._scrub_body(raw, cut=len(raw) >= ERROR_BODY_LIMIT)
                raise UpstreamError(
                    self._scrubbed(dialect.parse_error(status, raw)),
                    retryable=retryable_status(status),
                    retry_after=parse_retry_after(response.headers),
                )
            media_type = _media_type(response.headers.get("content-type"))
            if media_type == "application/json" and dialect.framing == "sse":
                async for delta in self._whole(response, dialect):
                    yield delta
                return
            if media_type not in (dialect.media_type, "application/json"):
                raise UpstreamError(
                    StreamError(
                        ErrorKind.SERVER,
                        f"{self.config.name} answered 200 with content type "
                        f"{media_type or 'none'!r}, not {dialect.media_type!r}",
                        502,
                    ),
                    retryable=False,
                )
            # The head is not kept for the stream's life (a real upstream's twenty-odd
            # headers are a few KB per open stream).
            response.headers.clear()
            # The hot loop, inline: each delta crosses one generator frame, not two.
            decoder = dialect.decoder()
            held: list[Delta] = []  # leading Start and Usage, until the first content
            started = False
            read_chunk = response.read_chunk
            chunk = b"."
            while chunk:
                try:
                    chunk = await read_chunk()
                    deltas = decoder.feed(chunk) if chunk else decoder.close()
                except OSError as exc:
                    if not started:
                        raise self._connection_error("stream broke", exc) from None
                    yield EARLY_CLOSE
                    return
                except TokenRelayError as exc:  # a line or event over the decoder's limit
                    error = StreamError(ErrorKind.SERVER, self._scrub(str(exc)), 502)
                    if not started:
                        raise UpstreamError(error, retryable=True) from None
                    yield error
                    return
                if not deltas:
                    continue
                if not started:
                    deltas, held = held + deltas, []
                    first = next((d for d in deltas if not isinstance(d, _OPENING)), None)
                    if first is None:
                        held = deltas
                        continue
                    if isinstance(first, StreamError):
                        raise self._failed(first)
                    started = True
                for delta in deltas:
                    if isinstance(delta, StreamError):
                        yield self._scrubbed(delta)  # an in-band error, after the first delta
                        return
                    yield delta
            if not decoder.complete:
                if not started:
                    raise UpstreamError.connection(
                        f"{self.config.name} closed the stream before its first delta"
                    )
                yield EARLY_CLOSE
            elif not started:
                raise UpstreamError(
                    StreamError(ErrorKind.SERVER, f"{self.config.name} sent an empty stream", 502),
                    retryable=True,
                )
        finally:
            # A response not read to its end is closed, not returned to the pool, so the
            # upstream sees the disconnect and stops generating.
            response.release()

    async def _whole(
        self, response: UpstreamResponse, dialect: Dialect
    ) -> AsyncGenerator[Delta, None]:
        """A 200 ``application/json`` answer to a streamed request."""
        try:
            raw = await response.read(JSON_BODY_LIMIT)
        except OSError as exc:
            raise self._connection_error("reading the answer failed", exc) from None
        try:
            deltas = dialect.parse_response(raw)
        except (TokenRelayError, ValueError, TypeError, KeyError) as exc:
            error = StreamError(
                ErrorKind.SERVER, self._scrub(f"{self.config.name} sent malformed JSON: {exc}"), 502
            )
            raise UpstreamError(error, retryable=True) from None
        first = next((d for d in deltas if not isinstance(d, _OPENING)), None)
        if first is None:
            raise UpstreamError(
                StreamError(ErrorKind.SERVER, f"{self.config.name} sent an empty answer", 502),
                retryable=True,
            )
        if isinstance(first, StreamError):
            raise self._failed(first)
        for delta in deltas:
            yield self._scrubbed(delta) if isinstance(delta, StreamError) else delta

    async def models(self) -> list[str]:
        """The upstream's model names ([] when it cannot list them or fails to)."""
        try:
            async with asyncio.timeout(30):
                response = await self._client().request("GET", self.kind.models_path, self._headers)
                try:
                    if response.status != 200:
                        return []
                    body = loads(await response.read(JSON_BODY_LIMIT))
                finally:
                    response.release()
        except (OSError, ValueError):
            return []
        return _model_names(body)

    async def aclose(self) -> None:
        """Close the connection pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()


def _model_names(body: Any) -> list[str]:
    """Model ids from OpenAI's and Anthropic's ``{"data": [{"id"}]}``, Gemini's
    ``{"models": [{"name": "models/x"}]}`` or Ollama's ``{"models": [{"name"}]}``."""
    if not isinstance(body, dict):
        return []
    items = body.get("data") or body.get("models") or []
    names: list[str] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            name = item.get("id") or item.get("name")
            if isinstance(name, str) and name:
                names.append(name.removeprefix("models/"))
    return names
