"""The bounded pipe between a stream's producer and its socket, on plain asyncio.

Its cost is what matters: many thousands of events per second on one stream, thousands of
idle streams per process. So no cancel scopes or exceptions on the hot path: a deque, one
future for a waiting reader, one for a producer waiting for space, and a ``call_later``
handle only while the reader waits with nothing to read (for the keep-alive ping).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterable, Iterable, Iterator

from .frames import PING, Item, frame

__all__ = ["FramePipe", "produce"]


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class FramePipe:
    """SSE frames from one producer to one reader, at most ``limit`` ahead."""

    __slots__ = ("_closed", "_error", "_frames", "_limit", "_loop", "_reader", "_space")

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        self._frames: deque[bytes] = deque()
        self._limit = limit
        self._loop = loop
        self._reader: asyncio.Future[None] | None = None
        self._space: asyncio.Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None

    async def put(self, data: bytes) -> None:
        """Add a frame; wait while the pipe is full."""
        self._frames.append(data)
        reader = self._reader
        if reader is not None:
            self._reader = None
            _wake(reader)
        if len(self._frames) >= self._limit:
            space = self._space = self._loop.create_future()
            await space

    def close(self, error: BaseException | None = None) -> None:
        """No more frames; the reader gets ``error`` raised once the pipe is empty."""
        self._closed = True
        self._error = error
        reader = self._reader
        if reader is not None:
            self._reader = None
            _wake(reader)

    async def take(self, ping: float | None) -> bytes | None:
        """All frames ready, joined; ``PING`` after ``ping`` s with none; None at the end."""
        frames = self._frames
        if not frames:
            if self._closed:
                self._raise_error()
                return None
            reader = self._reader = self._loop.create_future()
            timer = None if ping is None else self._loop.call_later(ping, _wake, reader)
            try:
                await reader
            finally:
                self._reader = None
                if timer is not None:
                    timer.cancel()
            if not frames:
                if not self._closed:
                    return PING
                self._raise_error()
                return None
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        frames.clear()
        space = self._space
        if space is not None:
            self._space = None
            _wake(space)
        return data

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error


async def produce(
    source: AsyncIterable[Item] | Iterable[Item], pipe: FramePipe, prefix: bytes = b""
) -> None:
    """Encode the items of ``source`` into ``pipe``, then close it (with the error, if one).

    ``prefix`` is put before the first frame (a ``retry:`` field). A sync source runs in a
    thread of its own for the stream's life: a shared pool would make further streams
    wait for one to end. Cancelling this task cancels an async source (its ``finally``
    runs) and stops a sync one at its next item.
    """
    try:
        if isinstance(source, AsyncIterable):
            iterator = source.__aiter__()
            try:
                async for item in iterator:
                    await pipe.put(prefix + frame(item) if prefix else frame(item))
                    prefix = b""
            finally:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
        else:
            await _produce_in_thread(iter(source), pipe, prefix)
    except asyncio.CancelledError:
        pipe.close()
        raise
    except Exception as error:
        pipe.close(error)
    else:
        pipe.close()


async def _produce_in_thread(iterator: Iterator[Item], pipe: FramePipe, prefix: bytes) -> None:
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    stopped = threading.Event()

    def settle(error: BaseException | None) -> None:
        if not finished.done():
            if error is None:
                finished.set_result(None)
            else:
                finished.set_exception(error)

    def pump(prefix: bytes) -> None:
        outcome: BaseException | None = None
        try:
            for item in iterator:
                put = asyncio.run_coroutine_threadsafe(pipe.put(prefix + frame(item)), loop)
                prefix = b""
                while True:  # wait while the pipe is full, unless the stream has ended
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
                with contextlib.suppress(RuntimeError):  # the loop may be gone already
                    loop.call_soon_threadsafe(settle, outcome)

    threading.Thread(target=pump, args=(prefix,), name="sse-source", daemon=True).start()
    try:
        await finished
    finally:
        stopped.set()
