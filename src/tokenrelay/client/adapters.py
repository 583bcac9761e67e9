"""Events from a response the caller already has: httpx, requests or aiohttp.

No reconnecting here (a response is one connection); use ``connect()`` for that. The
libraries are recognised by what their responses can do, so none of them is imported.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..errors import ResponseError
from ..sse import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES, Decoder, Event
from ..sse.reconnect import is_event_stream

__all__ = ["aiter_events", "iter_events"]

_READ_SIZE = 65536


def _check(response: Any) -> None:
    status = getattr(response, "status_code", None)
    if status is None:
        status = response.status  # aiohttp
    content_type = response.headers.get("content-type")
    if not is_event_stream(status, content_type):
        raise ResponseError(status, content_type)


def _sync_chunks(response: Any) -> Iterator[bytes]:
    if hasattr(response, "iter_bytes"):  # httpx.Response, streamed
        return iter(response.iter_bytes())
    if hasattr(response, "iter_content"):  # requests.Response, stream=True
        raw = response.raw
        if getattr(raw, "chunked", True) or not hasattr(raw, "read1"):
            # One HTTP chunk at a time, as it arrives.
            return iter(response.iter_content(chunk_size=None))
        # Not chunked: iter_content(None) would wait for the whole body; read what is there.
        return iter(lambda: raw.read1(_READ_SIZE), b"")
    raise TypeError(f"not an httpx or requests response: {type(response).__name__}")


def _async_chunks(response: Any) -> AsyncIterator[bytes]:
    if hasattr(response, "aiter_bytes"):  # httpx.Response from an AsyncClient, streamed
        chunks: AsyncIterator[bytes] = response.aiter_bytes()
        return chunks
    content = getattr(response, "content", None)
    if content is not None and hasattr(content, "iter_any"):  # aiohttp.ClientResponse
        chunks = content.iter_any()
        return chunks
    raise TypeError(f"not an httpx or aiohttp response: {type(response).__name__}")


def iter_events(
    response: Any,
    *,
    last_event_id: str = "",
    check: bool = True,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> Iterator[Event]:
    """The events of a streamed ``httpx.Response`` or ``requests.Response`` (stream=True).

    With ``check`` (the default) a status other than 200 or a content type other than
    ``text/event-stream`` raises ``ResponseError`` before anything is read.
    """
    if check:
        _check(response)
    decoder = Decoder(last_event_id, max_line_bytes=max_line_bytes, max_event_bytes=max_event_bytes)
    feed = decoder.feed
    for chunk in _sync_chunks(response):
        events = feed(chunk)
        if len(events) == 1:  # the common case: one event per chunk
            yield events[0]
        elif events:
            yield from events
    decoder.close()


async def aiter_events(
    response: Any,
    *,
    last_event_id: str = "",
    check: bool = True,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> AsyncIterator[Event]:
    """The events of a streamed async ``httpx.Response`` or an ``aiohttp.ClientResponse``."""
    if check:
        _check(response)
    decoder = Decoder(last_event_id, max_line_bytes=max_line_bytes, max_event_bytes=max_event_bytes)
    feed = decoder.feed
    async for chunk in _async_chunks(response):
        for event in feed(chunk):
            yield event
    decoder.close()
