"""``EventSourceResponse``: an SSE response for Starlette, FastAPI and any ASGI server.

One stream is three tasks: the producer (iterates the source into a bounded buffer), the
listener (waits for ``http.disconnect``; also the send watchdog) and the delivery loop
(buffer -> socket, with keep-alive pings). The delivery loop takes what is ready without
any timer and sends it in one message; a timer exists only while the buffer is empty.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.abc import ObjectSendStream, TaskGroup
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .frames import HEADERS, PING, Item, frame
from .shutdown import registry

__all__ = ["EventSourceResponse"]

_MAX_BATCH = 64  # frames joined into one send when the reader keeps up


class EventSourceResponse(Response):
    """Streams the items of ``source`` (async or sync iterable) as Server-Sent Events.

    - ``ping``: seconds of silence before a ``: ping`` comment keeps proxies from closing
      the connection (a comment, never an event: the OpenAI SDK fails on data-less
      events). None: no pings.
    - ``retry``: reconnection time in ms for clients, sent with the first event.
    - ``send_timeout``: seconds a write may wait for a client that has stopped reading;
      then the client is dropped and the producer cancelled. None: wait for ever.
    - ``buffer``: frames the producer may run ahead of the socket before it waits.
    - ``shutdown_retry``: on server shutdown, end with a ``retry:`` block (ms) so clients
      reconnect to another server after that delay (a data-less block: leave None for
      OpenAI-SDK clients). The stream ends promptly either way.

    A client that disconnects is noticed at once, even while the producer waits, and the
    producer is cancelled so its ``finally`` blocks run (a sync producer stops at its next
    item). Sync iterables are run in a worker thread.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        source: AsyncIterable[Item] | Iterable[Item],
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        ping: float | None = 15.0,
        retry: int | None = None,
        send_timeout: float | None = 30.0,
        buffer: int = 32,
        shutdown_retry: int | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        if ping is not None and ping <= 0:
            raise ValueError("ping must be positive or None")
        if send_timeout is not None and send_timeout <= 0:
            raise ValueError("send_timeout must be positive or None")
        if buffer < 1:
            raise ValueError("buffer must be at least 1")
        self.source = source
        self.status_code = status_code
        self.ping = ping
        self.retry = retry
        self.send_timeout = send_timeout
        self.buffer = buffer
        self.shutdown_retry = shutdown_retry
        self.background = background
        # Adds "Content-Type: text/event-stream; charset=utf-8" unless the caller set one.
        self.init_headers({**HEADERS, **(headers or {})})
        self._sending_since = 0.0  # monotonic time a send began, 0 when none is pending
        self._ended_by: str | None = None  # "disconnect", "stalled", "shutdown"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        streams = registry()
        key = id(self)
        try:
            async with anyio.create_task_group() as group:
                streams.add(key, lambda: self._end(group, "shutdown"))
                frames_in, frames_out = anyio.create_memory_object_stream[bytes](self.buffer)
                group.start_soon(self._produce, frames_in)
                group.start_soon(self._listen, receive, group)
                with frames_out:
                    await self._deliver(frames_out, send)
                group.cancel_scope.cancel()  # the source is exhausted: stop listening
        except BaseExceptionGroup as group_error:
            # The server reports a closed connection on send as OSError (ASGI spec 2.4);
            # anything else is the producer's own error, raised as itself.
            rest = group_error.subgroup(lambda e: not isinstance(e, OSError))
            if rest is None:
                self._ended_by = self._ended_by or "disconnect"
            else:
                raise _single(rest) from None
        except OSError:
            self._ended_by = self._ended_by or "disconnect"
        finally:
            streams.discard(key)
        if self._ended_by in (None, "shutdown"):
            last = b""
            if self._ended_by == "shutdown" and self.shutdown_retry is not None:
                last = b"retry: %d\n\n" % self.shutdown_retry
            try:
                await send({"type": "http.response.body", "body": last, "more_body": False})
            except OSError:
                return
            if self.background is not None:
                await self.background()

    def _end(self, group: TaskGroup, why: str) -> None:
        if self._ended_by is None:
            self._ended_by = why
        group.cancel_scope.cancel()

    def _retry_prefix(self) -> bytes:
        return b"" if self.retry is None else b"retry: %d\n" % self.retry

    async def _produce(self, out: ObjectSendStream[bytes]) -> None:
        async with out:
            source = self.source
            prefix = self._retry_prefix()
            if isinstance(source, AsyncIterable):
                iterator = source.__aiter__()
                try:
                    async for item in iterator:
                        if prefix:  # the retry field rides on the first event
                            await out.send(prefix + frame(item))
                            prefix = b""
                        else:
                            await out.send(frame(item))
                finally:
                    aclose = getattr(iterator, "aclose", None)
                    if aclose is not None:
                        with anyio.CancelScope(shield=True):
                            await aclose()
            else:
                await anyio.to_thread.run_sync(
                    self._pump, source, out, abandon_on_cancel=True, limiter=registry().threads
                )

    def _pump(self, source: Iterable[Item], out: ObjectSendStream[bytes]) -> None:
        """Iterate a sync source in a worker thread, with the same backpressure."""
        iterator = iter(source)
        prefix = self._retry_prefix()
        try:
            for item in iterator:
                anyio.from_thread.run(out.send, prefix + frame(item))
                prefix = b""
        except (
            anyio.get_cancelled_exc_class(),
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
            RuntimeError,
        ):
            pass  # the response ended: stop producing
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    async def _listen(self, receive: Receive, group: TaskGroup) -> None:
        """Wait for the client to leave; meanwhile, watch for a send that never ends."""
        timeout = self.send_timeout
        check = None if timeout is None else max(0.05, timeout / 4)
        while True:
            message = None
            with anyio.move_on_after(check):
                message = await receive()
            if message is not None and message["type"] == "http.disconnect":
                return self._end(group, "disconnect")
            since = self._sending_since
            if timeout is not None and since and time.monotonic() - since > timeout:
                return self._end(group, "stalled")

    async def _deliver(self, frames: Any, send: Send) -> None:
        ping = self.ping
        while True:
            try:
                data = frames.receive_nowait()
            except anyio.WouldBlock:
                # Nothing ready: wait, but not longer than the ping interval.
                data = PING
                with anyio.move_on_after(ping):
                    try:
                        data = await frames.receive()
                    except anyio.EndOfStream:
                        return
            except anyio.EndOfStream:
                return
            if data is not PING:
                batch = [data]
                try:
                    while len(batch) < _MAX_BATCH:
                        batch.append(frames.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    pass
                if len(batch) > 1:
                    data = b"".join(batch)
            self._sending_since = time.monotonic()
            await send({"type": "http.response.body", "body": data, "more_body": True})
            self._sending_since = 0.0


def _single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception of a group of one (nested or not), else the group itself."""
    while len(group.exceptions) == 1:
        inner = group.exceptions[0]
        if not isinstance(inner, BaseExceptionGroup):
            return inner
        group = inner
    return group
