"""Reading an SSE endpoint over httpx, reconnecting as the spec says: sync and async.

Everything that is not I/O — the headers, whether a response may be read, when and how
long to wait, the decoding — lives in ``tokenrelay.sse`` (``Reconnector``, ``Decoder``)
and is shared; the two drivers here only move bytes and sleep.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import anyio
import httpx

from ..errors import ConnectError, IdleTimeoutError, ReadError, ResponseError, TransportError
from ..sse import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_LINE_BYTES,
    NO_RECONNECT,
    Event,
    Reconnector,
    ReconnectPolicy,
)

__all__ = ["AsyncEventStream", "EventStream", "StopOn", "Timeout", "aconnect", "connect"]

StopOn = str | Callable[[Event], bool] | None
"""Ends the stream at an event: its ``data`` equals the string, or the predicate is true.
That event is not delivered (``stop_on="[DONE]"`` for OpenAI-style streams)."""

OnReconnect = Callable[[int, float, BaseException | None], None]
"""Called before each wait to reconnect: (attempt, delay in seconds, the error or None)."""

_PEEK_BYTES = 1024  # how much of a refused response's body goes into the ResponseError


@dataclass(frozen=True, slots=True)
class Timeout:
    """How long to wait for a connection, and for the stream to show life.

    ``connect`` bounds connecting and sending the request. ``idle`` is the watchdog: when
    no bytes at all arrive for that long (a keep-alive comment counts as life), the
    connection is treated as dropped and the client reconnects. None disables either.
    """

    connect: float | None = 10.0
    idle: float | None = 60.0

    def for_httpx(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect, read=self.idle, write=self.connect, pool=self.connect
        )


@dataclass(frozen=True, slots=True)
class _Request:
    """What is sent on every attempt: the same method, URL and body each time."""

    method: str
    url: str
    params: Any
    headers: Mapping[str, str] | None
    json: Any
    content: bytes | str | None
    timeout: httpx.Timeout

    def _header_items(self, protocol: dict[str, bytes]) -> Iterator[tuple[bytes, bytes]]:
        yield b"Accept", protocol["Accept"]
        yield b"Cache-Control", protocol["Cache-Control"]
        for name, value in (self.headers or {}).items():
            yield name.encode(), value.encode()
        if "Last-Event-ID" in protocol:
            yield b"Last-Event-ID", protocol["Last-Event-ID"]

    def build(
        self, client: httpx.Client | httpx.AsyncClient, protocol: dict[str, bytes]
    ) -> httpx.Request:
        # The caller's headers win over Accept and Cache-Control; Last-Event-ID is ours.
        merged: dict[bytes, tuple[bytes, bytes]] = {}
        for name, value in self._header_items(protocol):
            merged[name.lower()] = (name, value)
        headers = list(merged.values())
        return client.build_request(
            self.method,
            self.url,
            params=self.params,
            headers=headers,
            json=self.json,
            content=self.content,
            timeout=self.timeout,
        )


def _transport_error(exc: httpx.TransportError) -> TransportError:
    """Map an httpx transport failure onto our tree (the original stays as the cause)."""
    error: TransportError
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
        error = ConnectError(f"cannot connect: {exc}")
    elif isinstance(exc, httpx.ReadTimeout):
        error = IdleTimeoutError(f"no bytes for the idle timeout: {exc}")
    else:
        error = ReadError(f"the connection broke: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _stopper(stop_on: StopOn) -> Callable[[Event], bool] | None:
    if stop_on is None or callable(stop_on):
        return stop_on
    sentinel = stop_on
    return lambda event: event.data == sentinel


def _policy(reconnect: ReconnectPolicy | bool) -> ReconnectPolicy:
    if reconnect is True:
        return ReconnectPolicy()
    if reconnect is False:
        return NO_RECONNECT
    return reconnect


class _Stream:
    """What the sync and async streams share: configuration and read-only state."""

    def __init__(
        self,
        request: _Request,
        reconnector: Reconnector,
        stop_on: StopOn,
        on_chunk: Callable[[bytes], None] | None,
        on_reconnect: OnReconnect | None,
    ) -> None:
        self._request = request
        self._reconnector = reconnector
        self._stop = _stopper(stop_on)
        self._on_chunk = on_chunk
        self._on_reconnect = on_reconnect
        self._closed = False

    @property
    def last_event_id(self) -> str:
        """The last event ID so far: sent as ``Last-Event-ID`` when reconnecting."""
        return self._reconnector.decoder.last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time (ms) the server last set, or None."""
        return self._reconnector.decoder.retry


class EventStream(_Stream):
    """The events of one logical stream, over as many connections as it takes.

    Made by ``connect()``; iterate it once, inside its ``with`` block.
    """

    def __init__(self, client: httpx.Client, owns_client: bool, *args: Any) -> None:
        super().__init__(*args)
        self._client = client
        self._owns_client = owns_client
        self._response: httpx.Response | None = None
        self._iterator: Iterator[Event] | None = None

    @property
    def response(self) -> httpx.Response | None:
        """The response of the current connection, if one is open."""
        return self._response

    def __iter__(self) -> Iterator[Event]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (and the httpx client, if ``connect()`` made it)."""
        self._closed = True
        if self._iterator is not None:
            try:
                self._iterator.close()  # type: ignore[attr-defined]
            except ValueError:
                pass  # called from inside the loop: it ends at its next step
        if self._response is not None:
            self._response.close()
        if self._owns_client:
            self._client.close()

    def _open(self) -> httpx.Response | None:
        """Send the request; the response to read, or None when told to stop (204)."""
        rc = self._reconnector
        response = self._client.send(
            self._request.build(self._client, rc.request_headers()),
            stream=True,
            follow_redirects=True,
        )
        content_type = response.headers.get("content-type")
        verdict = rc.verdict(response.status_code, content_type)
        if verdict == "read":
            return response
        try:
            if verdict == "stop":
                return None
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= _PEEK_BYTES:
                    break
            raise ResponseError(response.status_code, content_type, body)
        finally:
            response.close()

    def _events(self) -> Iterator[Event]:
        rc = self._reconnector
        feed = rc.decoder.feed
        stop = self._stop
        on_chunk = self._on_chunk
        while not self._closed:
            error: TransportError | None = None
            delivered = False
            try:
                response = self._response = self._open()
                if response is None:
                    return
                for chunk in response.iter_bytes():
                    if on_chunk is not None:
                        on_chunk(chunk)
                    events = feed(chunk)
                    if events:
                        delivered = True
                        for event in events:
                            if stop is not None and stop(event):
                                return
                            yield event
            except httpx.TransportError as exc:
                error = _transport_error(exc)
            finally:
                if self._response is not None:
                    self._response.close()
                    self._response = None
            delay = rc.disconnected(error, delivered)
            if delay is None:
                return
            if self._on_reconnect is not None:
                self._on_reconnect(rc.attempts, delay, error)
            time.sleep(delay)


class AsyncEventStream(_Stream):
    """The async twin of ``EventStream``, made by ``aconnect()``."""

    def __init__(self, client: httpx.AsyncClient, owns_client: bool, *args: Any) -> None:
        super().__init__(*args)
        self._client = client
        self._owns_client = owns_client
        self._response: httpx.Response | None = None
        self._iterator: AsyncIterator[Event] | None = None

    @property
    def response(self) -> httpx.Response | None:
        """The response of the current connection, if one is open."""
        return self._response

    def __aiter__(self) -> AsyncIterator[Event]:
        if self._iterator is None:
            self._iterator = self._events()
        return self._iterator

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection (and the httpx client, if ``aconnect()`` made it)."""
        self._closed = True
        if self._iterator is not None:
            try:
                await self._iterator.aclose()  # type: ignore[attr-defined]
            except RuntimeError:
                pass  # called from inside the loop: it ends at its next step
        if self._response is not None:
            await self._response.aclose()
        if self._owns_client:
            await self._client.aclose()

    async def _open(self) -> httpx.Response | None:
        rc = self._reconnector
        response = await self._client.send(
            self._request.build(self._client, rc.request_headers()),
            stream=True,
            follow_redirects=True,
        )
        content_type = response.headers.get("content-type")
        verdict = rc.verdict(response.status_code, content_type)
        if verdict == "read":
            return response
        try:
            if verdict == "stop":
                return None
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) >= _PEEK_BYTES:
                    break
            raise ResponseError(response.status_code, content_type, body)
        finally:
            await response.aclose()

    async def _events(self) -> AsyncIterator[Event]:
        rc = self._reconnector
        feed = rc.decoder.feed
        stop = self._stop
        on_chunk = self._on_chunk
        while not self._closed:
            error: TransportError | None = None
            delivered = False
            try:
                response = self._response = await self._open()
                if response is None:
                    return
                async for chunk in response.aiter_bytes():
                    if on_chunk is not None:
                        on_chunk(chunk)
                    events = feed(chunk)
                    if events:
                        delivered = True
                        for event in events:
                            if stop is not None and stop(event):
                                return
                            yield event
            except httpx.TransportError as exc:
                error = _transport_error(exc)
            finally:
                if self._response is not None:
                    await self._response.aclose()
                    self._response = None
            delay = rc.disconnected(error, delivered)
            if delay is None:
                return
            if self._on_reconnect is not None:
                self._on_reconnect(rc.attempts, delay, error)
            await anyio.sleep(delay)


def _setup(
    url: str,
    method: str,
    params: Any,
    headers: Mapping[str, str] | None,
    json: Any,
    content: bytes | str | None,
    last_event_id: str | None,
    timeout: Timeout | float | None,
    reconnect: ReconnectPolicy | bool,
    max_line_bytes: int,
    max_event_bytes: int,
) -> tuple[_Request, Reconnector]:
    if json is not None and content is not None:
        raise ValueError("pass json or content, not both")
    if timeout is None:
        timeout = Timeout(None, None)
    elif not isinstance(timeout, Timeout):
        timeout = Timeout(timeout, timeout)
    request = _Request(method, url, params, headers, json, content, timeout.for_httpx())
    reconnector = Reconnector(
        _policy(reconnect),
        clock=time.monotonic,
        random=random.random,
        last_event_id=last_event_id or "",
        max_line_bytes=max_line_bytes,
        max_event_bytes=max_event_bytes,
    )
    return request, reconnector


def connect(
    url: str,
    *,
    method: str = "GET",
    params: Any = None,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    content: bytes | str | None = None,
    last_event_id: str | None = None,
    client: httpx.Client | None = None,
    timeout: Timeout | float | None = Timeout(),
    reconnect: ReconnectPolicy | bool = True,
    stop_on: StopOn = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    on_chunk: Callable[[bytes], None] | None = None,
    on_reconnect: OnReconnect | None = None,
) -> EventStream:
    """Open an SSE stream; use it as ``with connect(url) as events: for event in events``.

    Sends ``Accept: text/event-stream`` and ``Cache-Control: no-cache``, and on every
    reconnect the same method and body again with ``Last-Event-ID``. Reconnects go to
    ``url`` itself, even after redirects. A status other than 200 or a content type other
    than ``text/event-stream`` raises ``ResponseError`` and is not retried; 204 ends the
    stream quietly. ``reconnect=False`` makes a one-shot stream (a single LLM completion);
    ``True`` uses ``ReconnectPolicy()``. ``timeout`` is a ``Timeout``, or one number for
    both the connect and the idle timeout. ``client`` is an ``httpx.Client`` to reuse
    (its pool, proxies, auth); it is left open. ``on_chunk`` sees each chunk of bytes as
    received; ``on_reconnect`` hears of each reconnection before its wait.
    """
    request, reconnector = _setup(
        url, method, params, headers, json, content, last_event_id, timeout, reconnect,
        max_line_bytes, max_event_bytes,
    )  # fmt: skip
    owns = client is None
    return EventStream(
        httpx.Client() if client is None else client,
        owns,
        request,
        reconnector,
        stop_on,
        on_chunk,
        on_reconnect,
    )


def aconnect(
    url: str,
    *,
    method: str = "GET",
    params: Any = None,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    content: bytes | str | None = None,
    last_event_id: str | None = None,
    client: httpx.AsyncClient | None = None,
    timeout: Timeout | float | None = Timeout(),
    reconnect: ReconnectPolicy | bool = True,
    stop_on: StopOn = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    on_chunk: Callable[[bytes], None] | None = None,
    on_reconnect: OnReconnect | None = None,
) -> AsyncEventStream:
    """The async twin of ``connect()``: ``async with aconnect(url) as events: async for``."""
    request, reconnector = _setup(
        url, method, params, headers, json, content, last_event_id, timeout, reconnect,
        max_line_bytes, max_event_bytes,
    )  # fmt: skip
    owns = client is None
    return AsyncEventStream(
        httpx.AsyncClient() if client is None else client,
        owns,
        request,
        reconnector,
        stop_on,
        on_chunk,
        on_reconnect,
    )
