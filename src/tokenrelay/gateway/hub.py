"""Generation decoupled from delivery: one producer per stream writes the stream log,
every reader reads it from where it wants.

The producer task drains a generation (``route.generate``) into the store as packed
deltas, whatever the readers do: a slow or absent reader never slows the upstream. Each
reader encodes the log in the stream's client dialect with an encoder of its own.

Event ids. Delta ``k`` of the log encodes to frames ``0..m``; frame ``j`` goes out with
the id ``"k.j"`` (the dialect's closing frames count as delta ``N``, one past the last).
Encoders are deterministic, so a reader resuming after ``"k.j"`` re-encodes deltas
``0..k`` silently, drops frames ``0..j`` of delta ``k`` and sends the rest: exactly the
frames after that id, none twice. Without an id a reader starts from the beginning.

Falling behind. A reader that finds ``merge_backlog`` (8) or more entries waiting merges
runs of adjacent ``TextDelta``s (same choice, no logprobs) into one, so it catches up
with fewer, larger events and nothing is lost; a smaller backlog goes out event for
event. It merges only after a ``TextDelta`` of the same choice that encoded to exactly
one frame: then every dialect encodes the merged delta, and the last
delta of the run alone, to exactly one frame, and the run's frame takes the id of its
last delta. A resume replays the log unmerged and lands on the same frame boundaries.

Grace. When the last reader of a running stream leaves, the producer is cancelled after
``grace`` seconds unless a reader comes back (0: at once). Cancelling closes the upstream
(the provider's ``aclose``). Whatever ended the stream, the log gets a ``Usage`` (the
upstream's, or an estimate marked as such) before it is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..llm.codec import Dialect, Frame, Framing, to_wire
from ..llm.estimate import estimate_usage
from ..llm.model import (
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    Request,
    Start,
    StreamError,
    TextDelta,
    Usage,
)
from ..llm.pack import pack, unpack
from ..providers.base import UpstreamError
from ..store.base import StreamStore

__all__ = ["Reader", "StreamHub", "Timing", "parse_event_id"]

First = Delta | UpstreamError


def parse_event_id(text: str | None) -> tuple[int, int] | None:
    """``(k, j)`` from an event id ``"k.j"``; None for no id; ``ValueError`` if malformed."""
    if text is None or text == "":
        return None
    k, sep, j = text.partition(".")
    if not sep or not k.isdigit() or not j.isdigit():
        raise ValueError(f"not an event id of this gateway: {text!r}")
    return int(k), int(j)


@dataclass(slots=True)
class _Live:
    task: asyncio.Task[None] | None = None
    first: asyncio.Future[First] | None = None
    readers: int = 0
    grace: asyncio.TimerHandle | None = None
    cancelled_by: str = ""


class Timing:
    """Time to the first content delta (from ``started``, a ``perf_counter`` time) and the
    gaps between content deltas, observed by the producer as deltas arrive."""

    __slots__ = ("_gap", "_last", "_started", "_ttft")

    def __init__(
        self, started: float, ttft: Callable[[float], None], gap: Callable[[float], None]
    ) -> None:
        self._started = started
        self._ttft = ttft
        self._gap = gap
        self._last = 0.0

    def delta(self, delta: Delta) -> None:
        if isinstance(delta, Start | Usage):
            return
        now = time.perf_counter()
        if self._last:
            self._gap(now - self._last)
        else:
            self._ttft(now - self._started)
        self._last = now


@dataclass(slots=True)
class _Tally:
    """What the producer saw: for the estimate when the upstream counted nothing."""

    text: list[str] = field(default_factory=list)
    usage: Usage | None = None
    finished: bool = False


class StreamHub:
    """The live streams of one gateway app over one ``StreamStore``."""

    def __init__(
        self,
        store: StreamStore,
        *,
        grace: float,
        ping: float,
        ping_frame: Callable[[Dialect], Frame | bytes | None],
        on_end: Callable[[str, Usage, str], None] | None = None,
        merge_backlog: int = 8,
    ) -> None:
        if merge_backlog < 2:
            raise ValueError("merge_backlog must be >= 2 (entries waiting before merging)")
        self.merge_backlog = merge_backlog
        self.store = store
        self.grace = grace
        self.ping = ping
        self._ping_frame = ping_frame
        self._on_end = on_end
        self._live: dict[str, _Live] = {}

    @property
    def active(self) -> int:
        """Streams whose generation is running (checked on every request: O(1))."""
        return len(self._live)

    async def start(
        self,
        stream_id: str,
        meta: dict[str, Any],
        request: Request,
        deltas: AsyncIterator[Delta],
        timing: Timing | None = None,
    ) -> asyncio.Future[First]:
        """Create the stream's log and start its producer. The returned future resolves
        with the first delta, or the ``UpstreamError`` that came before any. ``timing``
        hears of every content delta as it arrives."""
        await self.store.create(stream_id, meta)
        loop = asyncio.get_running_loop()
        live = self._live[stream_id] = _Live(first=loop.create_future())
        live.task = loop.create_task(self._produce(stream_id, request, deltas, live, timing))
        assert live.first is not None
        return live.first

    async def _produce(
        self,
        stream_id: str,
        request: Request,
        deltas: AsyncIterator[Delta],
        live: _Live,
        timing: Timing | None,
    ) -> None:
        tally = _Tally()
        first = live.first
        assert first is not None
        why = "completed"
        append = self.store.append
        text = tally.text
        try:
            async for delta in deltas:
                if isinstance(delta, TextDelta):
                    text.append(delta.text)
                elif isinstance(delta, Usage):
                    tally.usage = delta
                elif isinstance(delta, StreamError):
                    why = "error"
                if timing is not None:
                    timing.delta(delta)
                if not first.done():
                    first.set_result(delta)
                await append(stream_id, [pack(delta)])
        except UpstreamError as exc:
            why = "error"
            if not first.done():
                first.set_result(exc)
            await append(stream_id, [pack(exc.error)])
        except asyncio.CancelledError:
            why = live.cancelled_by or "cancelled"
            if not first.done():
                first.set_exception(asyncio.CancelledError())
            if why == "cancelled":
                raise
        except Exception as exc:  # a bug upstream of us must not leave readers hanging
            why = "error"
            error = StreamError(ErrorKind.SERVER, f"gateway error: {exc!r}", 500)
            if not first.done():
                first.set_result(UpstreamError(error, retryable=False))
            await append(stream_id, [pack(error)])
        finally:
            usage = tally.usage or estimate_usage(request, "".join(tally.text))
            tail: list[Delta] = []
            if tally.usage is None:
                tail.append(usage)
            if why in ("disconnected", "deleted"):
                tail.append(Finish(FinishReason.OTHER, raw="cancelled"))
            with contextlib.suppress(Exception):
                if tail:
                    await append(stream_id, [pack(d) for d in tail])
                await self.store.finish(stream_id)
            # Only running streams stay here: finished ones are the store's business.
            if live.grace is not None:
                live.grace.cancel()
            self._live.pop(stream_id, None)
            if self._on_end is not None:
                self._on_end(stream_id, usage, why)

    def cancel(self, stream_id: str, why: str = "deleted") -> bool:
        """Stop a running generation (``DELETE``); False if none is running."""
        live = self._live.get(stream_id)
        if live is None or live.task is None or live.task.done():
            return False
        live.cancelled_by = why
        live.task.cancel()
        return True

    def _attach(self, stream_id: str) -> None:
        live = self._live.get(stream_id)
        if live is not None:
            live.readers += 1
            if live.grace is not None:
                live.grace.cancel()
                live.grace = None

    def _detach(self, stream_id: str) -> None:
        live = self._live.get(stream_id)
        if live is None:
            return
        live.readers -= 1
        if live.readers or live.task is None or live.task.done():
            return
        if self.grace <= 0:
            self.cancel(stream_id, "disconnected")
        else:
            loop = asyncio.get_running_loop()
            live.grace = loop.call_later(self.grace, self.cancel, stream_id, "disconnected")

    def reader(
        self,
        stream_id: str,
        dialect: Dialect,
        request: Request | None,
        after: tuple[int, int] | None = None,
    ) -> Reader:
        """A reader of the stream, from just after ``after``; it counts as attached (for the
        grace period) until ``detach``."""
        self._attach(stream_id)
        return Reader(self, stream_id, dialect, request, after)

    async def frames(
        self,
        stream_id: str,
        dialect: Dialect,
        request: Request | None,
        after: tuple[int, int] | None = None,
    ) -> AsyncIterator[bytes]:
        """The stream's wire bytes for one reader, from just after ``after``."""
        reader = self.reader(stream_id, dialect, request, after)
        store = self.store
        try:
            while True:
                entries, done = await store.read(stream_id, reader.pos)
                if entries:
                    chunk = reader.encode(entries)
                    # A stalled reader waits in the yield below: it must not hold its batch.
                    del entries
                    if chunk:
                        yield chunk
                elif done:
                    chunk = reader.close()
                    if chunk:
                        yield chunk
                    return
                elif not await store.wait(stream_id, reader.pos, self.ping):
                    ping = reader.ping()
                    if ping:
                        yield ping
        finally:
            reader.detach()

    async def aclose(self) -> None:
        """Cancel every running generation and wait for the producers to finish."""
        tasks = []
        for stream_id, live in list(self._live.items()):
            if live.task is not None and not live.task.done():
                self.cancel(stream_id, "shutdown")
                tasks.append(live.task)
        await asyncio.gather(*tasks, return_exceptions=True)


def _wire(frame: Frame, framing: Framing, id: str) -> bytes:
    """``to_wire([frame], framing, id=id)``, without its list, generator and checks for the
    common case (the ids here are always ``"k.j"``; JSON data has no line break)."""
    data = frame.data
    if framing != "sse" or b"\n" in data or b"\r" in data:
        return to_wire([frame], framing, id=id)
    if frame.event is None:
        return b"id: %b\ndata: %b\n\n" % (id.encode(), data)
    return b"event: %b\nid: %b\ndata: %b\n\n" % (frame.event.encode(), id.encode(), data)


class Reader:
    """One reader's position in a stream log and its encoder: turns batches of log entries
    into wire bytes in the reader's dialect (ids ``"k.j"``, resume skipping, merging of a
    backlog). No I/O: the caller reads the store and sends."""

    __slots__ = (
        "_hub",
        "_single_text_choice",
        "dialect",
        "encoder",
        "framing",
        "last_id",
        "pos",
        "skip_j",
        "skip_k",
        "stream_id",
    )

    def __init__(
        self,
        hub: StreamHub,
        stream_id: str,
        dialect: Dialect,
        request: Request | None,
        after: tuple[int, int] | None,
    ) -> None:
        self._hub: StreamHub | None = hub
        self.stream_id = stream_id
        self.dialect = dialect
        self.encoder = dialect.encoder(request)
        self.framing = dialect.framing
        self.skip_k, self.skip_j = after if after is not None else (-1, -1)
        self.last_id = ""
        self._single_text_choice: int | None = None  # choice of the last one-frame TextDelta
        self.pos = 0  # the next entry to read

    def detach(self) -> None:
        """This reader is gone (idempotent): the hub may start the grace period."""
        hub, self._hub = self._hub, None
        if hub is not None:
            hub._detach(self.stream_id)

    def ping(self) -> bytes | None:
        """The dialect's keep-alive: an event (Anthropic's, with the last id) or a comment."""
        assert self._hub is not None
        ping = self._hub._ping_frame(self.dialect)
        if isinstance(ping, Frame):
            return to_wire([ping], self.framing, id=self.last_id)
        return ping

    def close(self) -> bytes:
        """The dialect's closing frames (the stream has ended and all entries are read)."""
        pos, skip_k, skip_j, framing = self.pos, self.skip_k, self.skip_j, self.framing
        out = []
        for j, frame in enumerate(self.encoder.close()):
            if pos > skip_k or j > skip_j:
                out.append(_wire(frame, framing, f"{pos}.{j}"))
        return b"".join(out)

    def encode(self, entries: list[bytes]) -> bytes:
        """The wire bytes of the next ``entries`` of the log (b"" while a resume skips)."""
        assert self._hub is not None
        pos = self.pos
        skip_k, skip_j = self.skip_k, self.skip_j
        encoder, framing = self.encoder, self.framing
        single_text_choice = self._single_text_choice
        deltas = [unpack(e) for e in entries]
        # Merge only a real backlog: entries that merely arrived back to back (a busy
        # loop, a bursty upstream) go out one event each, as the upstream sent them.
        merging = len(deltas) >= self._hub.merge_backlog
        out = []
        i = 0
        n = len(deltas)
        while i < n:
            k = pos + i
            delta = deltas[i]
            if (
                merging
                and k > skip_k
                and isinstance(delta, TextDelta)
                and delta.logprobs is None
                and delta.choice == single_text_choice
            ):
                run = [delta.text]
                while i + 1 < n:
                    nxt = deltas[i + 1]
                    if not (
                        isinstance(nxt, TextDelta)
                        and nxt.logprobs is None
                        and nxt.choice == delta.choice
                    ):
                        break
                    run.append(nxt.text)
                    i += 1
                if len(run) > 1:
                    delta = TextDelta("".join(run), delta.choice)
                    k = pos + i
            frames = encoder.encode(delta)
            single_text_choice = (
                delta.choice if isinstance(delta, TextDelta) and len(frames) == 1 else None
            )
            if k >= skip_k:
                for j, frame in enumerate(frames):
                    if k > skip_k or j > skip_j:
                        self.last_id = last_id = f"{k}.{j}"
                        out.append(_wire(frame, framing, last_id))
            i += 1
        self.pos = pos + n
        self._single_text_choice = single_text_choice
        return out[0] if len(out) == 1 else b"".join(out)
