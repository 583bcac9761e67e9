"""``HubStreamResponse``: one client reading one stream of the hub, in one task.

The general ``EventSourceResponse`` (``server/asgi.py``) runs a source of its own in a
producer task and hands frames over a pipe to the task that sends. Here the source is the
hub's log, which is already decoupled from the upstream, so the response's own task reads
the store, encodes and sends: one task wake per token instead of three, and fewer objects
per open stream. What ``EventSourceResponse`` guarantees still holds:

- a client that disconnects is noticed at once, even while the stream waits: a listener
  task waits for ``http.disconnect`` and cancels the response's task;
- a send still pending after ``send_timeout`` (a client that stopped reading) drops the
  client;
- on server shutdown (``server.shutdown``'s registry) the stream ends promptly with the
  end of the HTTP body;
- after ``ping`` seconds without a send, a keep-alive in the dialect's own way.

Timers: none per stream and none per token. ``OpenStreams`` (one per app) keeps the open
responses and one timer for all of them, every quarter of the shorter of ``ping`` and
``send_timeout``: it drops stalled clients and wakes a stream due for a ping by cancelling
its task while it waits (told apart from other cancellations by the task's cancellation
count, as ``asyncio.timeout`` does). So a ping comes after ``ping`` to ``1.25 x ping``
seconds of silence, a stalled client is dropped after ``send_timeout`` to ``1.25 x``.

When the response ends, however it ends, the reader detaches from the hub (which starts
the grace period when it was the stream's last reader).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..llm.model import ErrorKind, StreamError
from ..server.frames import HEADERS
from ..server.shutdown import registry
from ..store.base import StoreError, StreamNotFoundError
from .hub import StreamHub
from .reader import Reader
from .stream import closing_error

__all__ = ["RAW_SEND", "HubStreamResponse", "OpenStreams"]

RAW_SEND = "tokenrelay.send"
"""Scope key of the server's ``send``, put there by the gateway app while no middleware
was added (when and why: ``app._GatewayApp``)."""

_RAW_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in HEADERS.items()),
]
_NDJSON_RAW_HEADERS = [(b"content-type", b"application/x-ndjson"), *_RAW_HEADERS[1:]]


def _store_error(exc: StoreError) -> StreamError:
    if isinstance(exc, StreamNotFoundError):
        return StreamError(ErrorKind.NOT_FOUND, "the stream expired while being read", 404)
    return StreamError(
        ErrorKind.OVERLOADED,
        "the stream store is unavailable; resume later with the last event id",
        503,
    )


class OpenStreams:
    """The hub responses open on one app's loop, watched by one timer (see the module
    docstring); also their one entry in the server's shutdown registry."""

    def __init__(self, *, ping: float, send_timeout: float = 30.0) -> None:
        if ping <= 0 or send_timeout <= 0:
            raise ValueError("ping and send_timeout must be positive")
        self.ping = ping
        self.send_timeout = send_timeout
        self.interval = min(ping, send_timeout) / 4
        self._open: set[HubStreamResponse] = set()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._open)

    def add(self, response: HubStreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        first = not self._open
        self._open.add(response)
        streams = registry()
        if first:
            self._timer = loop.call_later(self.interval, self._tick, loop)
            streams.add(id(self), self._shutdown)  # ends them at once if shutting down
        elif streams.shutting_down:
            response.end("shutdown")

    def discard(self, response: HubStreamResponse) -> None:
        self._open.discard(response)
        if not self._open:
            registry().discard(id(self))
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _shutdown(self) -> None:
        for response in list(self._open):
            response.end("shutdown")

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        stalled = now - self.send_timeout
        silent = now - self.ping
        for response in list(self._open):
            since = response.sending_since
            if since:
                if since < stalled:
                    response.end("stalled")
            elif response.waiting and response.last_sent <= silent:
                response.wake_for_ping()
        self._timer = loop.call_later(self.interval, self._tick, loop) if self._open else None


class HubStreamResponse(Response):
    """Streams ``reader``'s view of a hub stream as SSE (or NDJSON) to one client."""

    media_type = "text/event-stream"

    def __init__(
        self, hub: StreamHub, reader: Reader, streams: OpenStreams, first: bytes = b""
    ) -> None:
        self.status_code = 200
        self.background = None
        head = _NDJSON_RAW_HEADERS if reader.framing == "ndjson" else _RAW_HEADERS
        own: Mapping[str, str] = getattr(reader.dialect, "headers", None) or {}
        self.raw_headers = [
            *head,
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in own.items()),
            (b"x-stream-id", reader.stream_id.encode("latin-1")),
        ]
        self._hub = hub
        self._reader = reader
        self._first = first  # what a resume's replay left to send first
        self._streams = streams
        self._ended_by: str | None = None  # "disconnect", "stalled" or "shutdown"
        self._task: asyncio.Task[None] | None = None
        self._cancelling = 0  # the task's cancellation count when we began
        self._ping_due = False
        self._done = False  # the stream's own end was sent
        self.sending_since = 0.0  # loop time a send began; 0 while none is pending
        self.last_sent = 0.0  # loop time the last send began
        self.waiting = False  # waiting for the log to grow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reader = self._reader
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        except BaseException:
            reader.detach()
            raise
        loop = asyncio.get_running_loop()
        task = self._task = asyncio.current_task()
        assert task is not None
        self._cancelling = task.cancelling()
        self.last_sent = loop.time()
        listener = loop.create_task(self._listen(receive))
        streams = self._streams
        streams.add(self, loop)
        # Body messages (one per token per stream) skip Starlette's wrappers when the
        # app left the server's send in the scope (see RAW_SEND).
        send = scope.get(RAW_SEND, send)
        try:
            if self._first:
                first, self._first = self._first, b""
                await self._send(send, first, loop)
            await self._deliver(send, loop, task)
        except asyncio.CancelledError:
            if self._ended_by is None:
                raise  # cancelled by the server itself
            task.uncancel()
        except OSError:  # the server reports a closed connection on send (ASGI spec 2.4)
            self._ended_by = self._ended_by or "disconnect"
        finally:
            self._task = None  # from here on, nothing may cancel us
            reader.detach()
            streams.discard(self)
            listener.cancel()
        if self._ended_by in (None, "shutdown"):
            try:
                if self._ended_by == "shutdown" and not self._done:
                    # Not the stream's end: say so, so that no SDK takes it for one.
                    data = reader.fail(closing_error())
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                return

    async def _deliver(
        self, send: Send, loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]
    ) -> None:
        reader = self._reader
        stream_id = reader.stream_id
        read_wait, encode = self._hub.store.read_wait, reader.encode
        while True:
            # One call waits for the log to grow and returns what is new: in memory for
            # streams produced here, one round trip to the store for others'.
            self.waiting = True
            try:
                entries, done = await read_wait(stream_id, reader.pos)
            except asyncio.CancelledError:
                if not self._ping_due:
                    raise
                self._ping_due = False
                if task.uncancel() > self._cancelling:
                    raise  # cancelled for another reason too
                data = reader.ping()
                if data:
                    await self._send(send, data, loop)
                continue
            except StoreError as exc:
                # The store went away (or forgot the stream) under a reader: say so in the
                # dialect, without an id, so a resume continues after the last real one.
                await self._send(send, reader.fail(_store_error(exc)), loop)
                return
            finally:
                self.waiting = False
            if entries:
                data = encode(entries)
                del entries  # a stalled send must not hold the batch
                if data:
                    await self._send(send, data, loop)
                data = None  # not held while the next wait lasts
            elif done:
                self._done = True
                data = reader.close()
                if data:
                    await self._send(send, data, loop)
                return

    async def _send(self, send: Send, data: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self.sending_since = self.last_sent = loop.time()
        await send({"type": "http.response.body", "body": data, "more_body": True})
        self.sending_since = 0.0

    def end(self, why: str) -> None:
        """Stop the stream from outside its task: disconnect, stall or shutdown."""
        if self._ended_by is None:
            self._ended_by = why
            if self._task is not None:
                self._task.cancel()

    def wake_for_ping(self) -> None:
        """Wake the task waiting for the log: it sends a keep-alive and waits again."""
        if self._task is not None and self._ended_by is None and not self._ping_due:
            self._ping_due = True
            self._task.cancel()

    async def _listen(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return self.end("disconnect")
