"""``event_body``: SSE frames with keep-alive pings as an async iterator of bytes.

For frameworks that stream an async iterator themselves (Django under ASGI, and others):
the source runs in a task of its own feeding a bounded queue, so a ping goes out after
``ping`` seconds of silence even while the source waits. When the framework cancels the
iteration (a client disconnect), the source is cancelled and its cleanup runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

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

    stopped = threading.Event()

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
                # A thread of its own for the stream's life: a shared pool (6 threads on
                # a small machine) would make further streams wait for one to end.
                finished: asyncio.Future[None] = loop.create_future()
                threading.Thread(
                    target=pump, args=(iter(source), first, finished), daemon=True
                ).start()
                await finished
            await frames.put(_END)
        except Exception as error:
            await frames.put(error)

    def pump(iterator: Iterator[Item], first: bytes, finished: asyncio.Future[None]) -> None:
        outcome: BaseException | None = None
        try:
            for item in iterator:
                put = asyncio.run_coroutine_threadsafe(frames.put(first + frame(item)), loop)
                first = b""
                while True:  # wait while the queue is full, unless the stream has ended
                    try:
                        put.result(timeout=0.1)
                        break
                    except concurrent.futures.TimeoutError:
                        if stopped.is_set():
                            put.cancel()
                            return
                if stopped.is_set():
                    return
        except BaseException as error:
            outcome = error
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            if not stopped.is_set():
                loop.call_soon_threadsafe(_settle, finished, outcome)

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
        stopped.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
