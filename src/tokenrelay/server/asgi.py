"""``EventSourceResponse``: an SSE response for Starlette, FastAPI and any asyncio ASGI server.

A stream is the response's own task plus two: the producer (the source, encoded into a
bounded ``FramePipe``) and the listener (waits for ``http.disconnect``). The response's
task takes every frame that is ready in one go and sends it as one message; while nothing
is ready it waits at most the ping interval. A timer callback, not a task, watches for a
send that never finishes (a client that stopped reading).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Iterable, Mapping

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .frames import HEADERS, Item, check_options
from .pipe import FramePipe, produce
from .shutdown import registry

__all__ = ["EventSourceResponse"]


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
    item). Sync iterables run in a thread of their own.
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
        check_options(ping, buffer, send_timeout)
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
        self._ended_by: str | None = None  # "disconnect", "stalled" or "shutdown"
        self._task: asyncio.Task[None] | None = None
        self._sending_since = 0.0  # loop time a send began; 0 while none is pending

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        loop = asyncio.get_running_loop()
        task = self._task = asyncio.current_task()
        assert task is not None
        pipe = FramePipe(self.buffer, loop)
        prefix = b"" if self.retry is None else b"retry: %d\n" % self.retry
        producer = loop.create_task(produce(self.source, pipe, prefix))
        listener = loop.create_task(self._listen(receive))
        watchdog = None
        if self.send_timeout is not None:
            watchdog = loop.call_later(self._watch_interval(), self._watch, loop)
        streams = registry()
        key = id(self)
        streams.add(key, lambda: self._end("shutdown"))
        try:
            await self._deliver(pipe, send, loop)
        except asyncio.CancelledError:
            if self._ended_by is None:
                raise  # cancelled by the server itself
            task.uncancel()
        except OSError:  # the server reports a closed connection on send (ASGI spec 2.4)
            self._ended_by = self._ended_by or "disconnect"
        finally:
            self._task = None  # from here on, nothing may cancel us
            streams.discard(key)
            if watchdog is not None:
                watchdog.cancel()
            listener.cancel()
            producer.cancel()
            await asyncio.gather(producer, listener, return_exceptions=True)
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

    async def _deliver(self, pipe: FramePipe, send: Send, loop: asyncio.AbstractEventLoop) -> None:
        ping = self.ping
        take = pipe.take
        while True:
            data = await take(ping)
            if data is None:
                return
            self._sending_since = loop.time()
            await send({"type": "http.response.body", "body": data, "more_body": True})
            self._sending_since = 0.0

    def _end(self, why: str) -> None:
        """Stop the stream from outside its task: disconnect, stall or shutdown."""
        if self._ended_by is None:
            self._ended_by = why
            if self._task is not None:
                self._task.cancel()

    async def _listen(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return self._end("disconnect")

    def _watch_interval(self) -> float:
        assert self.send_timeout is not None
        return max(0.05, self.send_timeout / 4)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Timer callback: drop a client whose send has been pending too long."""
        if self._task is None:
            return
        since = self._sending_since
        if since and self.send_timeout is not None and loop.time() - since > self.send_timeout:
            return self._end("stalled")
        loop.call_later(self._watch_interval(), self._watch, loop)
