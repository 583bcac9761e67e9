"""``event_body``: SSE frames with keep-alive pings as an async iterator of bytes.

For frameworks that stream an async iterator themselves (Django under ASGI, and others):
the source runs in a task of its own feeding a bounded ``FramePipe``, so a ping goes out
after ``ping`` seconds of silence even while the source waits. When the framework cancels
or closes the iteration (a client disconnect), the source is cancelled and its cleanup
runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable

from .frames import Item, check_options
from .pipe import FramePipe, produce

__all__ = ["event_body"]


async def event_body(
    source: AsyncIterable[Item] | Iterable[Item],
    *,
    ping: float | None = 15.0,
    retry: int | None = None,
    buffer: int = 32,
) -> AsyncIterator[bytes]:
    """SSE frames of ``source`` (async, or sync run in a thread), with pings."""
    check_options(ping, buffer)
    loop = asyncio.get_running_loop()
    pipe = FramePipe(buffer, loop)
    prefix = b"" if retry is None else b"retry: %d\n" % retry
    producer = loop.create_task(produce(source, pipe, prefix))
    try:
        while True:
            data = await pipe.take(ping)
            if data is None:
                return
            yield data
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
