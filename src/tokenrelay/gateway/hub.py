"""Generation decoupled from delivery: one producer per stream writes the stream log,
every reader, on any instance sharing the store, reads it from where it wants.

The producer task drains a generation (``route.generate``, which alone decides when the
gateway commits to an upstream) into the store as packed deltas, whatever the readers
do: a slow or absent reader never slows the upstream. Each reader (``reader.Reader``)
encodes the log in the stream's client dialect with an encoder of its own; the one
delivery loop is ``HubStreamResponse``.

Grace. When the last reader of a running stream *anywhere* leaves, the producer is
cancelled after ``grace`` seconds unless a reader comes back (0: at once). Readers on
other instances are recorded in the store (``set_readers``), renewed every tick.
Cancelling closes the upstream (the provider's ``aclose``). Whatever ended the stream,
the log gets a ``Usage`` (the upstream's, or an estimate marked as such) before it is
finished, and a stream cut short says so at its end (``stream.CUT``, ``INTERRUPTING``).

Instances. With a shared store (SQLite, Redis) the hub holds a lease on each stream it
runs, renewed every tick (a second, or a third of the lease); every tick it also ends
streams whose owner's lease ran out (``interrupt``: the dialect's error event, then
usage), and it listens for ``DELETE``\\ s made on other instances. On start it ends what
an earlier process of the same instance name left running; on ``aclose`` it lets running
generations finish for the drain time, then ends the rest as interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..llm.dialect import Dialect
from ..llm.estimate import estimate_usage
from ..llm.frame import Frame
from ..llm.model import (
    Delta,
    ErrorKind,
    Request,
    StreamError,
    TextDelta,
    Usage,
)
from ..llm.pack import pack, unpack
from ..providers.base import UpstreamError
from ..store.base import (
    StoreError,
    StreamExistsError,
    StreamFinishedError,
    StreamInfo,
    StreamNotFoundError,
    StreamStore,
)
from .reader import Reader, parse_event_id
from .stream import (
    CUT,
    INTERRUPTING,
    EndReason,
    First,
    RunningStream,
    Sink,
    StreamEnded,
    StreamMeta,
    cancelled_error,
    interrupted_error,
)
from .timing import Timing

__all__ = ["Reader", "StreamHub", "Timing", "default_instance", "parse_event_id", "replay"]

log = logging.getLogger("tokenrelay.gateway")


def default_instance() -> str:
    """A name no other process has: host, process id and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class StreamHub:
    """The running streams of one gateway app over one ``StreamStore``."""

    def __init__(
        self,
        store: StreamStore,
        *,
        grace: float,
        ping: float,
        ping_frame: Callable[[Dialect], Frame | bytes | None],
        on_end: Callable[[StreamEnded], None] | None = None,
        merge_backlog: int = 8,
        instance: str = "",
        lease: float = 5.0,
        global_limit: int | None = None,
    ) -> None:
        if merge_backlog < 2:
            raise ValueError("merge_backlog must be >= 2 (entries waiting before merging)")
        if lease <= 0:
            raise ValueError("lease must be > 0 seconds")
        self.merge_backlog = merge_backlog
        self.store = store
        self.grace = grace
        self.ping = ping
        self.instance = instance or default_instance()
        self.lease: float | None = lease if store.shared else None
        self.tick = min(1.0, lease / 3)
        self.global_limit = global_limit
        self._ping_frame = ping_frame
        self._on_end = on_end
        self._live: dict[str, RunningStream] = {}
        self._making = 0  # streams in ``_live`` whose log ``start`` is still creating
        self._reading: dict[str, int] = {}  # streams run elsewhere: our readers of them
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._running = asyncio.Event()  # set while a generation runs here
        # Writes of our reader counts, one at a time: each writes the count as it is
        # then, so a late write never puts back a count that has since gone to 0.
        self._recording = asyncio.Lock()
        self._unrecorded: set[str] = set()  # reader counts whose last write failed

    @property
    def active(self) -> int:
        """Streams whose generation runs here (checked on every request: O(1)). One whose
        log ``start`` is still making is not yet counted: its caller counts it as starting
        until ``start`` returns (counted twice, a burst would be refused below the limit)."""
        return len(self._live) - self._making

    def owns(self, stream_id: str) -> bool:
        return stream_id in self._live

    # -- life of the hub -------------------------------------------------------------------

    async def open(self) -> None:
        """Start the instance's duties on a shared store (none on a memory store): end
        what an earlier process of this name left running, then keep leases, listen for
        cancellations and end abandoned streams, every tick."""
        if not self.store.shared:
            return
        try:
            for stream_id in await self.store.abandoned(owner=self.instance):
                await self._interrupt(stream_id, owner=self.instance)
        except StoreError as exc:
            log.warning("stream store: cannot end the streams of a previous run: %s", exc)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._keep()), loop.create_task(self._listen_cancels())]

    async def aclose(self, drain: float = 0.0) -> None:
        """Let running generations finish for ``drain`` seconds, end the rest as
        interrupted (``EndReason.SHUTDOWN``), then stop the instance's duties."""
        tasks = [live.task for live in self._live.values() if live.task is not None]
        if tasks and drain > 0:
            await asyncio.wait(tasks, timeout=drain)
        tasks = []
        for live in list(self._live.values()):
            if live.cancel(EndReason.SHUTDOWN):
                assert live.task is not None
                tasks.append(live.task)
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        self._tasks = []
        for stream_id in list(self._reading):
            with contextlib.suppress(StoreError):
                await self.store.set_readers(stream_id, self.instance, 0, 1.0)
        self._reading.clear()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- generations -----------------------------------------------------------------------

    async def start(
        self,
        stream_id: str,
        meta: StreamMeta,
        request: Request,
        deltas: AsyncIterator[Delta],
        timing: Timing | None = None,
        keep: bool = False,
    ) -> asyncio.Future[First]:
        """Create the stream's log and start its producer. The returned future resolves
        with the first delta (the gateway has committed to an upstream: ``route``), or the
        ``UpstreamError`` that came before any. ``timing`` hears of every content delta.
        ``keep``: the generation runs to its end even when nobody reads it (no grace
        period; a background response). Store errors (``StoreLimitError``,
        ``StoreUnavailableError``) propagate, and the generation is then stopped.

        The upstream first: the producer sends its request before the log is created
        (which, in a shared store, is a round trip), so that the two overlap; it appends
        nothing until the log exists. Not under a global limit (``global_limit``): the
        store's count must refuse a stream before any upstream hears of it."""
        if stream_id in self._live:  # (before any upstream hears of it)
            raise StreamExistsError(f"stream {stream_id!r} exists")
        loop = asyncio.get_running_loop()
        live = RunningStream(stream_id, meta, loop.create_future(), keep)
        create = self.store.create(
            stream_id, meta.to_dict(), owner=self.instance, lease=self.lease,
            limit=self.global_limit,
        )  # fmt: skip
        if self.global_limit is not None:
            await create
        else:
            live.created = loop.create_future()
        self._live[stream_id] = live
        live.task = loop.create_task(self._produce(live, request, deltas, timing))
        self._running.set()
        if live.created is not None:
            self._making += 1
            try:
                await asyncio.sleep(0)  # the producer's first step: the upstream request
                await create
            except BaseException:
                create.close()  # (not awaited if the sleep was cancelled)
                live.created.cancel()  # the producer appends nothing, and ends
                live.cancel(EndReason.ERROR)
                raise
            finally:
                self._making -= 1
            live.created.set_result(None)
            live.created = None  # (the producer holds it until its first delta)
        return live.first

    async def _produce(
        self,
        live: RunningStream,
        request: Request,
        deltas: AsyncIterator[Delta],
        timing: Timing | None,
    ) -> None:
        stream_id = live.id
        first = live.first
        text: list[str] = []
        usage: Usage | None = None
        reason = EndReason.COMPLETED
        store_append = self.store.append
        created = live.created  # (None once the log exists)

        try:
            async for delta in deltas:
                if isinstance(delta, TextDelta):
                    text.append(delta.text)
                elif isinstance(delta, Usage):
                    usage = delta
                elif isinstance(delta, StreamError):
                    reason = EndReason.ERROR
                if timing is not None:
                    timing.delta(delta)
                if created is not None:
                    await created
                    created = None
                # append([delta]), inline: this runs once per delta
                live.length = await store_append(stream_id, [pack(delta)])
                if live.sinks:
                    _push(live, [delta])
                if not first.done():
                    # After the push: a response armed for the first delta sends its
                    # head with it before the handler wakes (``HubStreamResponse.arm``).
                    first.set_result(delta)
        except UpstreamError as exc:
            reason = EndReason.ERROR
            if not first.done():
                first.set_result(exc)
            if await _log_made(live):
                await self._append(live, [exc.error])
        except StreamFinishedError:
            # Another instance ended it (our lease ran out while we were stalled): it has
            # the stream's end; stopping here closes the upstream.
            reason = EndReason.INTERRUPTED
            if not first.done():
                first.set_exception(asyncio.CancelledError())
        except asyncio.CancelledError:
            reason = live.cancel_reason or EndReason.SHUTDOWN
            if not first.done():
                first.set_exception(asyncio.CancelledError())
            if live.cancel_reason is None:
                raise
        except StoreError as exc:
            # The log failed under the producer (its first append among others): readers
            # learn of it at their next read; a request not yet answered, from here.
            reason = EndReason.ERROR
            log.warning("stream %s: the stream store failed: %s", stream_id, exc)
            error = StreamError(
                ErrorKind.OVERLOADED, "the stream store is unavailable; try again shortly", 503
            )
            if not first.done():
                first.set_result(UpstreamError(error, retryable=False, retry_after=1.0))
            with contextlib.suppress(StoreError):
                if await _log_made(live):
                    await self._append(live, [error])
        except Exception:  # a bug upstream of us must not leave readers hanging
            reason = EndReason.ERROR
            log.exception("stream %s: generation failed", stream_id)
            error = StreamError(ErrorKind.SERVER, "gateway error", 500)
            if not first.done():
                first.set_result(UpstreamError(error, retryable=False))
            with contextlib.suppress(StoreError):
                if await _log_made(live):
                    await self._append(live, [error])
        finally:
            final = usage or estimate_usage(request, "".join(text))
            made = await _log_made(live)
            if made and reason is not EndReason.INTERRUPTED:
                # Usage first (the encoders put it on the wire before an error event),
                # then what tells a cut answer from a complete one: the dialect's error
                # event, which the official SDKs raise on.
                tail: list[Delta] = [] if usage is not None else [final]
                if reason in INTERRUPTING:
                    tail.append(interrupted_error())
                elif reason in CUT:
                    tail.append(cancelled_error(reason))
                with contextlib.suppress(StoreError):
                    if tail:
                        await self._append(live, tail)
                    await self.store.finish(stream_id)
            # Readers that were pushed entries read the rest (the stream's end) themselves.
            sinks, live.sinks = live.sinks, []
            for sink in sinks:
                sink.ended()
            # Only running streams stay here: finished ones are the store's business.
            live.stop_grace()
            self._live.pop(stream_id, None)
            if not self._live:
                self._running.clear()
            if made:  # (else the stream never was: its request was refused)
                self._ended(StreamEnded(stream_id, live.meta, final, reason))

    async def _append(self, live: RunningStream, tail: list[Delta]) -> None:
        """The producer's appends off its hot path (a method: a closure in the producer
        costs every open stream 216 bytes)."""
        live.length = await self.store.append(live.id, [pack(d) for d in tail])
        if live.sinks:
            _push(live, tail)

    def _ended(self, ended: StreamEnded) -> None:
        if self._on_end is not None:
            try:
                self._on_end(ended)
            except Exception:
                log.exception("on_end failed for stream %s", ended.stream_id)

    async def finished(self, stream_id: str) -> None:
        """Wait until the generation running here ends (at once if none runs)."""
        live = self._live.get(stream_id)
        if live is not None and live.task is not None:
            await asyncio.wait({live.task})

    def cancel(self, stream_id: str, reason: EndReason = EndReason.DELETED) -> bool:
        """Stop a generation running here; False if none is."""
        live = self._live.get(stream_id)
        return live is not None and live.cancel(reason)

    async def cancel_anywhere(self, stream_id: str, wait: float = 2.0) -> bool:
        """``DELETE``: stop the generation wherever it runs. True once it has ended (here
        at once; elsewhere when its owner has, within ``wait`` seconds); False when it
        had ended already, or did not end in time. ``StreamNotFoundError`` if unknown."""
        live = self._live.get(stream_id)
        if live is not None:
            if not live.cancel(EndReason.DELETED):
                return False
            assert live.task is not None
            await asyncio.wait({live.task}, timeout=wait)
            return True
        info = await self.store.info(stream_id)
        if info.finished:
            return False
        if info.abandoned:
            return await self._interrupt(stream_id)
        if not await self.store.request_cancel(stream_id):
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        pos = info.length
        while (remaining := deadline - loop.time()) > 0:
            entries, done = await self.store.read_wait(stream_id, pos, remaining)
            if done:
                return True
            pos += len(entries)
        return False

    async def _interrupt(self, stream_id: str, owner: str | None = None) -> bool:
        """End a stream whose instance is gone: the interruption error, then usage."""
        try:
            info = await self.store.info(stream_id)
            entries, _ = await self.store.read(stream_id, 0)
        except StreamNotFoundError:
            return False
        meta = StreamMeta.from_mapping(info.meta)
        deltas = [unpack(e) for e in entries]
        usage = next((d for d in reversed(deltas) if isinstance(d, Usage)), None)
        text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
        final = usage or estimate_usage(meta.request(), text)
        tail = [] if usage is not None else [pack(final)]
        tail.append(pack(interrupted_error()))
        if not await self.store.interrupt(stream_id, tail, owner=owner):
            return False
        log.warning("stream %s: its instance stopped; ended as interrupted", stream_id)
        self._ended(StreamEnded(stream_id, meta, final, EndReason.INTERRUPTED))
        return True

    # -- readers -----------------------------------------------------------------------------

    def reader(
        self,
        stream_id: str,
        dialect: Dialect,
        request: Request | None,
        after: tuple[int, int] | None = None,
        attached: bool = True,
    ) -> Reader:
        """A reader of the stream, from just after ``after``; it counts as attached (for the
        grace period) until it detaches. ``attached=False``: not counted until ``attach``
        (a reader made before its stream's first delta, whose request may yet be answered
        with an error instead)."""
        if attached:
            self.attach(stream_id)
        return Reader(self, stream_id, dialect, request, after)

    def follow(self, stream_id: str, pos: int, sink: Sink) -> bool:
        """Push ``sink`` every entry appended from now on, synchronously as the producer
        appends it (``sink.push(start, deltas)``), and ``sink.ended()`` when the
        generation is over; True only when the stream's generation runs here and ``pos``
        is the log's end (so nothing between is missed). Until ``unfollow``.

        What this saves: a reader that keeps up is neither woken by the store nor
        scheduled per entry; it encodes and writes in the producer's step."""
        live = self._live.get(stream_id)
        if live is None or pos != live.length or live.task is None or live.task.done():
            return False
        live.sinks.append(sink)
        return True

    def unfollow(self, stream_id: str, sink: Sink) -> None:
        live = self._live.get(stream_id)
        if live is not None and sink in live.sinks:
            live.sinks.remove(sink)

    def ping_frame(self, dialect: Dialect) -> Frame | bytes | None:
        return self._ping_frame(dialect)

    def attach(self, stream_id: str) -> None:
        live = self._live.get(stream_id)
        if live is not None:
            live.readers += 1
            live.had_reader = True
            live.stop_grace()
        elif self.store.shared:
            n = self._reading[stream_id] = self._reading.get(stream_id, 0) + 1
            if n == 1:
                self._spawn(self._record_readers(stream_id))

    def detach(self, stream_id: str) -> None:
        live = self._live.get(stream_id)
        if live is None:
            n = self._reading.get(stream_id)
            if n is not None:
                if n > 1:
                    self._reading[stream_id] = n - 1
                else:
                    del self._reading[stream_id]
                    self._spawn(self._record_readers(stream_id))
            return
        live.readers -= 1
        if live.readers or live.keep or live.task is None or live.task.done():
            return
        if self.store.shared:
            self._spawn(self._orphaned(live))
        else:
            self._arm_grace(live)

    async def _record_readers(self, stream_id: str) -> None:
        async with self._recording:
            count = self._reading.get(stream_id, 0)
            try:
                await self.store.set_readers(stream_id, self.instance, count, self._readers_ttl())
            except StoreError as exc:
                # Written again at the next tick: a count of 0 that never reached the
                # store would keep the owner's generation running until the record expires.
                self._unrecorded.add(stream_id)
                log.warning("stream store: cannot record the readers of %s: %s", stream_id, exc)
            else:
                self._unrecorded.discard(stream_id)

    def _ttl(self) -> float:
        return self.lease or 5.0

    def _readers_ttl(self) -> float:
        """How long a reader count stands unrenewed: three ticks, so that a record left
        behind (a process killed while reading) stops counting soon after."""
        return min(self._ttl(), 3 * self.tick)

    async def _orphaned(self, live: RunningStream) -> None:
        """The last reader here left: start the grace period unless others read it."""
        try:
            elsewhere = await self.store.readers(live.id, exclude=self.instance)
        except StoreError:
            elsewhere = 0
        if not elsewhere and not live.readers and live.grace is None:
            self._arm_grace(live)

    def _arm_grace(self, live: RunningStream) -> None:
        if self.grace <= 0:
            self._grace_over(live)
        else:
            loop = asyncio.get_running_loop()
            live.grace = loop.call_later(self.grace, self._grace_over, live)

    def _grace_over(self, live: RunningStream) -> None:
        live.grace = None
        if live.readers:
            return
        if not self.store.shared:
            live.cancel(EndReason.DISCONNECTED)
            return

        async def check() -> None:
            try:
                elsewhere = await self.store.readers(live.id, exclude=self.instance)
            except StoreError:
                elsewhere = 0
            if not elsewhere and not live.readers:
                live.cancel(EndReason.DISCONNECTED)
            # else: the tick starts the grace period again once they have left

        self._spawn(check())

    # -- the instance's duties on a shared store ----------------------------------------------

    async def _keep(self) -> None:
        store, lease = self.store, self._ttl()
        while True:
            await asyncio.sleep(self.tick)
            try:
                if self._live:
                    await store.renew(self.instance, list(self._live), lease)
                for stream_id in {*self._reading, *self._unrecorded}:
                    if stream_id in self._reading or stream_id in self._unrecorded:
                        await self._record_readers(stream_id)  # renewed, or written again
                for live in list(self._live.values()):
                    if live.had_reader and not (live.readers or live.keep or live.grace):
                        await self._orphaned(live)
                for stream_id in await store.abandoned():
                    await self._interrupt(stream_id)
            except StoreError as exc:
                log.warning("stream store: %s", exc)
            except Exception:
                log.exception("stream hub: tick failed")

    async def _listen_cancels(self) -> None:
        while True:
            # Nothing runs here, nothing to cancel: an idle instance does not listen (for
            # SQLite, listening is a poll).
            await self._running.wait()
            try:
                stream_ids = await self.store.cancel_requests(self.instance, timeout=5.0)
            except StoreError as exc:
                log.warning("stream store: %s", exc)
                await asyncio.sleep(self.tick)
                continue
            for stream_id in stream_ids:
                self.cancel(stream_id, EndReason.DELETED)


async def _log_made(live: RunningStream) -> bool:
    """Whether the stream's log exists, once its creation (``StreamHub.start``) is over:
    a producer that ends before then waits for it, whatever cancels it meanwhile (the
    creation always ends, and the log must then get its end)."""
    created = live.created
    while created is not None and not created.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(created)
    return created is None or not created.cancelled()


def _push(live: RunningStream, deltas: list[Delta]) -> None:
    """Hand the deltas just appended (the log's last entries) to the stream's sinks."""
    start = live.length - len(deltas)
    for sink in tuple(live.sinks):
        sink.push(start, deltas)


async def replay(
    store: StreamStore, reader: Reader, info: StreamInfo, after: tuple[int, int]
) -> bytes | None:
    """Replay the log up to the resume id ``k.j`` (silently) and return what follows it
    in delta ``k``; None when the stream is finished and nothing follows the id.
    ``ValueError`` for an id this stream never sent: past its end, or past the frames of
    its delta (an id of another stream, most likely)."""
    k, j = after
    past = ValueError(f"Last-Event-ID {k}.{j} is past the end of this stream")
    if not info.finished and k >= info.length:
        # On another instance than the owner, the log may lag the id the client got a
        # moment ago (the owner writes behind): wait for it, a little, before refusing.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RESUME_LAG
        pos, done = info.length, False
        while pos <= k and not done and (remaining := deadline - loop.time()) > 0:
            entries, done = await store.read_wait(reader.stream_id, pos, remaining)
            pos += len(entries)
        info = await store.info(reader.stream_id)
    if k > info.length or (k == info.length and not info.finished):
        raise past
    entries, _ = await store.read(reader.stream_id, 0, k + 1)
    if k < info.length and len(entries) <= k:
        raise past  # shorter than it said (a stream the store lost and is writing again)
    data = reader.encode(entries)
    if k == info.length:  # the closing frames: the stream is finished
        data += reader.close()
        if j >= reader.skip_frames:
            raise past
        return data or None
    if j >= reader.skip_frames:
        raise past
    if info.finished and k == info.length - 1:
        # The last entry (an error event, which ends the dialect's stream): whatever
        # the dialect closes with, or nothing at all, which is a 204.
        data += reader.close()
        return data or None
    return data


RESUME_LAG = 2.0  # seconds a resume waits for a log behind its id (see replay)
