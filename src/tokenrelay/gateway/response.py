"""``HubStreamResponse``: one client reading one stream of the hub, in one task.

The general ``EventSourceResponse`` (``server/asgi.py``) runs a source of its own in a
producer task and hands frames over a pipe to the task that sends. Here the source is the
hub's log, which is already decoupled from the upstream. Two ways to read it:

- **pushed** (the common case): while the reader keeps up with a generation running in
  this process, the hub's producer hands it each new delta (``StreamHub.follow``), and it
  is encoded and sent at the end of the loop's pass (``OpenStreams.due``), with every
  other stream pushed to in that pass, through the server's own send (``RAW_SEND``). No
  task wakes per token; the response's task waits for the stream's end. The first delta
  is pushed too (``arm``: the handler makes the response before it comes), and the head
  goes out with it, before the handler has woken. A send that cannot finish at once
  (the server's flow control: the client reads slower than we write) is handed to the
  task, which finishes it and reads on:
- **from the store**: the task waits for the log to grow (``read_wait``), encodes and
  sends; a backlog of ``merge_backlog`` entries or more is merged. Readers of streams
  running elsewhere, resumed readers catching up, and every reader of an app with
  middleware (no ``RAW_SEND``) read this way.

What ``EventSourceResponse`` guarantees still holds:

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
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from types import CoroutineType
from typing import Any

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from ..llm.model import Delta, ErrorKind, StreamError
from ..server.frames import HEADERS
from ..server.shutdown import registry
from ..store.base import StoreError, StreamNotFoundError
from .hub import StreamHub
from .reader import Reader
from .stream import closing_error

__all__ = ["RAW_SEND", "Answer", "HubStreamResponse", "OpenStreams"]

SAMPLE = 0.05
"""How often (seconds, at most) ``OpenStreams`` reads the loop thread's CPU time."""
BUSY, SUSTAINED, IDLE = 0.9, 4, 0.7
"""The loop counts as saturated (``OpenStreams.busy``) once its thread has been on the CPU
``BUSY`` of the time or more for ``SUSTAINED`` looks in a row (a burst of requests is not
saturation), and no longer at the first look under ``IDLE`` (paced reads themselves bring
the share down: between the two it stays as it is)."""

RAW_SEND = "tokenrelay.send"
"""Scope key of the server's ``send``, put there by the gateway app while no middleware
was added (when and why: ``app._GatewayApp``)."""

log = logging.getLogger("tokenrelay.gateway")

_RAW_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in HEADERS.items()),
]
_NDJSON_RAW_HEADERS = [(b"content-type", b"application/x-ndjson"), *_RAW_HEADERS[1:]]


async def _awaited(awaitable: Awaitable[None]) -> None:
    """A server whose ``send`` returns an awaitable that is not a coroutine."""
    await awaitable


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

    def __init__(
        self,
        *,
        ping: float,
        send_timeout: float = 30.0,
        on_busy: Callable[[bool], None] | None = None,
    ) -> None:
        if ping <= 0 or send_timeout <= 0:
            raise ValueError("ping and send_timeout must be positive")
        self.ping = ping
        self.send_timeout = send_timeout
        self.interval = min(ping, send_timeout) / 4
        self._open: set[HubStreamResponse] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._due: list[HubStreamResponse] = []  # pushed to in this pass of the loop
        self._flushing = False
        self._sampled = 0.0  # when the loop thread's CPU time was last read
        self._cpu = 0.0  # ... and what it was
        self._over = 0  # looks in a row at a share of BUSY or more
        # The loop's thread is saturated (``SUSTAINED``, ``IDLE``):
        # ``on_busy`` hears of every change (the app paces upstream reads with it).
        self.busy = False
        self._on_busy = on_busy

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

    def due(self, response: HubStreamResponse) -> None:
        """``response`` has pushed data to send: it is sent at the end of this pass of
        the loop, with every other stream's that was pushed to in it. Writes that come
        together wake their readers together (on loopback the writer pays each wake)."""
        self._due.append(response)
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        due, self._due = self._due, []
        self._flushing = False
        for response in due:
            response.flush()
        self.sample()

    def sample(self) -> None:
        """Look at the loop thread's CPU share, every ``SAMPLE`` seconds at most: called
        where streams write (a flush, a send of the task's), so it costs nothing idle.
        (The length of the loop's passes does not tell saturation: a saturated uvloop
        runs many short passes, and the backlog waits in the kernel's queues.)"""
        now = time.monotonic()
        if now - self._sampled >= SAMPLE:
            cpu = time.thread_time()
            share = (cpu - self._cpu) / (now - self._sampled)
            self._cpu, self._sampled = cpu, now
            self._over = self._over + 1 if share >= BUSY else 0
            busy = self._over >= SUSTAINED or (self.busy and share >= IDLE)
            if busy != self.busy:
                self.busy = busy
                if self._on_busy is not None:
                    self._on_busy(busy)

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


class HubStreamResponse:
    """Streams ``reader``'s view of a hub stream as SSE (or NDJSON) to one client: an
    ASGI app returned by handlers like a Starlette ``Response`` (``status_code`` and the
    call), with slots, not a ``Response``: one lives as long as its stream, and a
    ``Response``'s instance dict and header list cost every open stream 0.5 KB."""

    __slots__ = (
        "_arming",
        "_cancelling",
        "_closed",
        "_done",
        "_ended_by",
        "_first",
        "_handoff",
        "_head",
        "_head_pushed",
        "_hub",
        "_loop",
        "_over",
        "_parked",
        "_pending",
        "_ping_due",
        "_push_send",
        "_reader",
        "_streams",
        "_task",
        "last_sent",
        "sending_since",
        "waiting",
    )

    status_code = 200
    media_type = "text/event-stream"

    def __init__(
        self, hub: StreamHub, reader: Reader, streams: OpenStreams, first: bytes = b""
    ) -> None:
        self._hub = hub
        self._reader = reader
        self._first = first  # what a resume's replay left to send first
        self._streams = streams
        self._ended_by: str | None = None  # "disconnect", "stalled" or "shutdown"
        self._task: asyncio.Task[None] | None = None
        self._cancelling = 0  # the task's cancellation count when we began
        self._ping_due = False
        self._done = False  # the stream's own end was sent
        self._closed = False  # and the HTTP body's end with it
        self._over = False  # the generation ended (``ended``): its end is next to read
        self.sending_since = 0.0  # loop time a send began; 0 while none is pending
        self.last_sent = 0.0  # loop time the last send began
        self.waiting = False  # waiting for the log to grow
        # The push path (``push``): the server's send for it (None: off), the future our
        # task waits on while entries are pushed, and a send it began that must wait.
        self._push_send: Send | None = None
        self._parked: asyncio.Future[None] | None = None
        self._handoff: tuple[Coroutine[Any, Any, None], Any] | None = None
        self._pending: list[Delta] = []  # pushed, for the next flush
        # The head pushed with the first events (``arm``): the future of the stream's
        # first delta while armed; the head, to go out with the next flush; whether the
        # head is the push path's to send (not the task's).
        self._arming: asyncio.Future[Any] | None = None
        self._head: Message | None = None
        self._head_pushed = False

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The response's headers (made when sent: not kept for the stream's life)."""
        reader = self._reader
        own: Mapping[str, str] = getattr(reader.dialect, "headers", None) or {}
        return [
            *(_NDJSON_RAW_HEADERS if reader.framing == "ndjson" else _RAW_HEADERS),
            *((k.encode("latin-1"), v.encode("latin-1")) for k, v in own.items()),
            (b"x-stream-id", reader.stream_id.encode("latin-1")),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reader = self._reader
        try:
            if self._head_pushed:  # from the producer's step (``arm``)
                if self._ended_by is not None:  # and its send failed: the client is gone
                    self._unpark()
                    reader.detach()
                    return
                if self._handoff is not None:
                    await self._finish_handoff()
                head, self._head = self._head, None
                if head is not None:  # (the stream ended before the pass's flush)
                    await send(head)
            else:
                if not self._first:
                    self._first = await self._ready()
                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
        except BaseException:
            reader.detach()
            raise
        loop = self._loop = asyncio.get_running_loop()
        task = self._task = asyncio.current_task()
        assert task is not None
        self._cancelling = task.cancelling()
        self.last_sent = loop.time()
        listener = loop.create_task(self._listen(receive))
        streams = self._streams
        streams.add(self, loop)
        # Body messages (one per token per stream) skip Starlette's wrappers when the
        # app left the server's send in the scope (see RAW_SEND).
        raw_send = scope.get(RAW_SEND)
        if raw_send is not None:
            send = self._push_send = raw_send
        try:
            if self._first:
                first, self._first = self._first, b""
                await self._send(send, first, loop)
                del first  # not held while the stream lasts
            await self._deliver(send, loop, task)
        except asyncio.CancelledError:
            if self._ended_by is None:
                raise  # cancelled by the server itself
            task.uncancel()
        except OSError:  # the server reports a closed connection on send (ASGI spec 2.4)
            self._ended_by = self._ended_by or "disconnect"
        finally:
            self._task = None  # from here on, nothing may cancel us
            if self._handoff is not None:  # a pushed send still waiting: dropped
                self._handoff[0].close()
                self._handoff = None
            reader.detach()
            streams.discard(self)
            listener.cancel()
        if self._ended_by in (None, "shutdown") and not self._closed:
            try:
                if self._ended_by == "shutdown" and not self._done:
                    # Not the stream's end: say so, so that no SDK takes it for one.
                    data = reader.fail(closing_error())
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                return

    async def _ready(self) -> bytes:
        """What the log holds already (a new stream: its first content), encoded before
        the head is sent, so that the head and the first events go out back to back: a
        write wakes the client, and a client woken for the head alone waits for the rest
        (on this machine ~0.04 ms a write). Not the stream's end: ``_deliver`` sends that
        with the HTTP body's end. Only for a stream produced here, whose log is in memory
        (another instance's would cost a round trip to the store before the head)."""
        reader = self._reader
        if not self._hub.owns(reader.stream_id):
            return b""
        try:
            entries, done = await self._hub.store.read_wait(reader.stream_id, reader.pos, 0.0)
        except StoreError:
            return b""  # said by ``_deliver``'s read
        return b"" if done or not entries else reader.encode(entries)

    async def _deliver(
        self, send: Send, loop: asyncio.AbstractEventLoop, task: asyncio.Task[None]
    ) -> None:
        reader = self._reader
        stream_id = reader.stream_id
        hub = self._hub
        read_wait, encode = hub.store.read_wait, reader.encode
        # Pushed entries are sent from the producer's step, through the server's own send
        # (only when no middleware wraps it: see RAW_SEND).
        follow = hub.follow if self._push_send is not None else None
        while True:
            self.waiting = True
            try:
                parked = self._parked  # (made by a pushed head: ``_push_head``)
                if parked is None and follow is not None and follow(stream_id, reader.pos, self):
                    parked = self._parked = loop.create_future()
                if parked is not None:
                    # Keeping up with a generation running here: the producer pushes
                    # every new entry (``push``); we wait for the stream's end, a send
                    # that must wait for the client, or an entry we did not take.
                    try:
                        await parked
                    finally:
                        self._parked = None
                        hub.unfollow(stream_id, self)
                    entries, done = None, False
                else:
                    # One call waits for the log to grow and returns what is new: in
                    # memory for streams produced here, one round trip to the store for
                    # others'.
                    entries, done = await read_wait(stream_id, reader.pos)
            except asyncio.CancelledError:
                if not self._ping_due:
                    raise
                self._ping_due = False
                if task.uncancel() > self._cancelling:
                    raise  # cancelled for another reason too
                if self._handoff is None:
                    data = reader.ping()
                    if data:
                        await self._send(send, data, loop)
                entries, done = None, False
            except StoreError as exc:
                # The store went away (or forgot the stream) under a reader: say so in the
                # dialect, without an id, so a resume continues after the last real one.
                await self._send(send, reader.fail(_store_error(exc)), loop)
                return
            finally:
                self.waiting = False
            if entries is None:  # back from following (or a ping)
                if self._handoff is not None:
                    await self._finish_handoff()
                # Pushed, not yet sent: first.
                deltas, self._pending = self._pending, []
                data = reader.encode_deltas(deltas) if deltas else b""
                del deltas
                if self._over:
                    # The generation is over and its end is in the store: read it now
                    # (without waiting: if it is not there, this goes out alone), it goes
                    # out with this and the HTTP body's end, in one write.
                    self._over = False
                    try:
                        entries, done = await read_wait(stream_id, reader.pos, 0.0)
                    except StoreError:
                        entries, done = [], False  # said by the next read
                    if entries:
                        data += encode(entries)
                        del entries
                    if done:
                        await self._end(send, data + reader.close(), loop)
                        return
            elif entries:
                data = encode(entries)
                del entries  # a stalled send must not hold the batch
                if done:  # the rest and the end together: one write
                    await self._end(send, data + reader.close(), loop)
                    return
            elif done:
                await self._end(send, reader.close(), loop)
                return
            else:
                continue
            if data:
                await self._send(send, data, loop)
            data = None  # not held while the next wait lasts

    async def _send(
        self, send: Send, data: bytes, loop: asyncio.AbstractEventLoop, more: bool = True
    ) -> None:
        self.sending_since = self.last_sent = loop.time()
        self._streams.sample()
        await send({"type": "http.response.body", "body": data, "more_body": more})
        self.sending_since = 0.0

    async def _end(self, send: Send, data: bytes, loop: asyncio.AbstractEventLoop) -> None:
        """The stream's end and the HTTP body's, in one message (one write)."""
        self._done = True
        await self._send(send, data, loop, more=False)
        self._closed = True

    # -- the push path: called in the producer's step ------------------------------------------

    def arm(self, first: asyncio.Future[Any], send: Send) -> None:
        """Before the stream's first delta (the handler waits for ``first``): the head and
        the first events are written from the producer's step, as the delta is appended
        (``push``), through the server's own ``send``; the handler, woken a pass of the
        loop later, returns this response, which reads on. Not armed unless the stream's
        generation runs here and has appended nothing yet (``StreamHub.follow``)."""
        reader = self._reader
        if self._hub.follow(reader.stream_id, reader.pos, self):
            self._arming = first
            self._push_send = send
            self._loop = asyncio.get_running_loop()

    def disarm(self) -> None:
        """The handler is awake: from here on the head is its to send (if not pushed)."""
        if self._arming is not None:
            self._arming = None
            self._hub.unfollow(self._reader.stream_id, self)

    def abandon(self) -> None:
        """The handler will not return this response (it was cancelled): nothing more is
        pushed to it."""
        self.disarm()
        self._ended_by = self._ended_by or "disconnect"
        self._unpark()

    def _push_head(self, start: int, deltas: list[Delta]) -> None:
        """``push`` while armed, of the stream's first delta (the producer resolves
        ``first`` right after): the head goes out with it at the end of this pass of the
        loop (``flush``), before the handler wakes. Not when ``first`` is already done:
        the handler was woken without it (the client left, the ping interval passed) or
        the stream began with an ``UpstreamError``, which the handler answers with its
        own status."""
        first = self._arming
        assert first is not None
        self._arming = None
        if first.done() or start != self._reader.pos or self._ended_by is not None:
            self._hub.unfollow(self._reader.stream_id, self)
            return
        self._head = {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
        self._head_pushed = True
        self._parked = self._loop.create_future()  # pushed to until the task takes over
        self._pending = deltas[:]
        self._streams.due(self)

    def push(self, start: int, deltas: list[Delta]) -> None:
        """The producer appended ``deltas`` at ``start``: they are encoded and sent at
        the end of this pass of the loop (``flush``), together with any others appended
        in it (so a burst that is a backlog merges as a read from the store would). A
        send the server cannot finish at once (the client reads slower than we write)
        is handed to our task, which then reads on from the store."""
        if self._arming is not None:
            self._push_head(start, deltas)
            return
        parked = self._parked
        if parked is None or parked.done() or self._ended_by is not None:
            return
        pending = self._pending
        if start != self._reader.pos + len(pending):
            self._unpark()  # not the next entry for us (cannot happen): read the store
            return
        if not pending:
            self._streams.due(self)
        pending += deltas

    def flush(self) -> None:
        """Encode and send what was pushed in this pass of the loop (``OpenStreams`` calls
        it once per pass for every stream pushed to), unless our task has taken over."""
        parked = self._parked
        if not self._pending or parked is None or self._ended_by is not None:
            return
        if parked.done() and self._head is None:
            return  # our task has taken over: it sends them (with the stream's end, if over)
        deltas, self._pending = self._pending, []
        try:
            data = self._reader.encode_deltas(deltas)
            head, self._head = self._head, None
            if head is not None and not self._send_now(head):
                self._first = data  # after the head, which waits for the client: the task's
                return
            if data:
                self._send_now({"type": "http.response.body", "body": data, "more_body": True})
        except OSError:  # the server reports a closed connection on send
            self.end("disconnect")
        except Exception:
            log.exception("stream %s: a pushed send failed", self._reader.stream_id)
            self.end("disconnect")

    def ended(self) -> None:
        """The generation is over: our task reads the stream's end from the store."""
        if self._arming is not None:  # over before its first delta: the handler answers
            self._arming = None
            return
        self._over = True
        self._unpark()

    def _unpark(self) -> None:
        parked = self._parked
        if parked is not None and not parked.done():
            parked.set_result(None)
            self._hub.unfollow(self._reader.stream_id, self)

    def _send_now(self, message: Message) -> bool:
        """``_send``, run at once in the producer's step rather than awaited: the
        server's send coroutine driven here, with no coroutine of ours around it. False
        when the send must wait (the server's flow control): our task finishes it."""
        assert self._push_send is not None
        self.sending_since = self.last_sent = self._loop.time()
        sent = self._push_send(message)
        coro = sent if isinstance(sent, CoroutineType) else _awaited(sent)
        try:
            blocker = coro.send(None)
        except StopIteration:  # written at once: the usual case
            self.sending_since = 0.0
            return True
        # No ping meanwhile: ``waiting`` is off until then.
        self._handoff = (coro, blocker)
        self.waiting = False
        self._unpark()
        return False

    async def _finish_handoff(self) -> None:
        """Drive a send the push path began to its end (in our task)."""
        assert self._handoff is not None
        coro, blocker = self._handoff
        self._handoff = None
        try:
            while True:
                if blocker is None:
                    await asyncio.sleep(0)
                else:
                    await asyncio.wait((blocker,))
                blocker = coro.send(None)
        except StopIteration:
            self.sending_since = 0.0
        finally:
            coro.close()

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


Answer = Response | HubStreamResponse
"""What a gateway handler returns: a Starlette response, or a hub stream's."""
