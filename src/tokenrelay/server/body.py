"""``event_body``: SSE frames with keep-alive pings as an async iterator of bytes.

For frameworks that stream an async iterator themselves (Django under ASGI, and others):
the source runs in a task of its own feeding a bounded queue, so a ping goes out after
``ping`` seconds of silence even while the source waits. When the framework cancels the
iteration (a client disconnect), the source is cancelled and its cleanup runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable

from .frames import PING, Item, frame

__all__ = ["event_body"]

_END = object()


async def event_body(
    source: AsyncIterable[Item] | Iterable[Item],
    *,
    ping: float | None = 15.0,
    retry: int | None = None,
    buffer: int = 32,
) -> AsyncIterator[bytes]:
    """SSE frames of ``source`` (async, or sync run in a thread), with pings."""
    frames: asyncio.Queue[object] = asyncio.Queue(buffer)
    prefix = b"" if retry is None else b"retry: %d\n" % retry
    loop = asyncio.get_running_loop()

    async def produce() -> None:
        first = prefix
        try:
            if isinstance(source, AsyncIterable):
                iterator = source.__aiter__()
                try:
                    async for item in iterator:
                        await frames.put(first + frame(item))
                        first = b""
                finally:
                    aclose = getattr(iterator, "aclose", None)
                    if aclose is not None:
                        await aclose()
            else:
                await asyncio.to_thread(pump, iter(source), first)
            await frames.put(_END)
        except Exception as error:
            await frames.put(error)

    stopped = False

    def pump(iterator: object, first: bytes) -> None:
        try:
            for item in iterator:  # type: ignore[attr-defined]
                if stopped:
                    return
                asyncio.run_coroutine_threadsafe(frames.put(first + frame(item)), loop).result()
                first = b""
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    task = loop.create_task(produce())
    try:
        while True:
            try:
                item = await asyncio.wait_for(frames.get(), ping)
            except TimeoutError:
                yield PING
                continue
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        stopped = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
