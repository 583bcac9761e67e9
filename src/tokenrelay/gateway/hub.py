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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ..llm.codec import Dialect, Frame, to_wire
from ..llm.estimate import estimate_usage
from ..llm.model import (
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    Request,
    StreamError,
    TextDelta,
    Usage,
)
from ..llm.pack import pack, unpack
from ..providers.base import UpstreamError
from ..store.base import StreamStore

__all__ = ["StreamHub", "parse_event_id"]

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
        self, stream_id: str, meta: dict[str, Any], request: Request, deltas: AsyncIterator[Delta]
    ) -> asyncio.Future[First]:
        """Create the stream's log and start its producer. The returned future resolves
        with the first delta, or the ``UpstreamError`` that came before any."""
        await self.store.create(stream_id, meta)
        loop = asyncio.get_running_loop()
        live = self._live[stream_id] = _Live(first=loop.create_future())
        live.task = loop.create_task(self._produce(stream_id, request, deltas, live))
        assert live.first is not None
        return live.first

    async def _produce(
        self, stream_id: str, request: Request, deltas: AsyncIterator[Delta], live: _Live
    ) -> None:
        tally = _Tally()
        first = live.first
        assert first is not None
        why = "completed"
        try:
            async for delta in deltas:
                if not first.done():
                    first.set_result(delta)
                if isinstance(delta, TextDelta):
                    tally.text.append(delta.text)
                elif isinstance(delta, Usage):
                    tally.usage = delta
                elif isinstance(delta, StreamError):
                    why = "error"
                await self.store.append(stream_id, [pack(delta)])
        except UpstreamError as exc:
            why = "error"
            if not first.done():
                first.set_result(exc)
            await self.store.append(stream_id, [pack(exc.error)])
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
            await self.store.append(stream_id, [pack(error)])
        finally:
            usage = tally.usage or estimate_usage(request, "".join(tally.text))
            tail: list[Delta] = []
            if tally.usage is None:
                tail.append(usage)
            if why in ("disconnected", "deleted"):
                tail.append(Finish(FinishReason.OTHER, raw="cancelled"))
            with contextlib.suppress(Exception):
                if tail:
                    await self.store.append(stream_id, [pack(d) for d in tail])
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

    async def frames(
        self,
        stream_id: str,
        dialect: Dialect,
        request: Request | None,
        after: tuple[int, int] | None = None,
    ) -> AsyncIterator[bytes]:
        """The stream's wire bytes for one reader, from just after ``after``."""
        self._attach(stream_id)
        try:
            async for chunk in self._frames(stream_id, dialect, request, after):
                yield chunk
        finally:
            self._detach(stream_id)

    async def _frames(
        self,
        stream_id: str,
        dialect: Dialect,
        request: Request | None,
        after: tuple[int, int] | None,
    ) -> AsyncIterator[bytes]:
        encoder = dialect.encoder(request)
        framing = dialect.framing
        skip_k, skip_j = after if after is not None else (-1, -1)
        last_id = ""
        single_text_choice: int | None = None  # choice of the last one-frame TextDelta
        pos = 0
        while True:
            entries, done = await self.store.read(stream_id, pos)
            if not entries:
                if done:
                    out = []
                    for j, frame in enumerate(encoder.close()):
                        if pos > skip_k or j > skip_j:
                            out.append(to_wire([frame], framing, id=f"{pos}.{j}"))
                    if out:
                        yield b"".join(out)
                    return
                if not await self.store.wait(stream_id, pos, self.ping):
                    ping = self._ping_frame(dialect)
                    if isinstance(ping, Frame):  # an event (Anthropic's): it carries an id too
                        yield to_wire([ping], framing, id=last_id)
                    elif ping is not None:  # a comment
                        yield ping
                continue
            deltas = [unpack(e) for e in entries]
            # Merge only a real backlog: entries that merely arrived back to back (a busy
            # loop, a bursty upstream) go out one event each, as the upstream sent them.
            merging = len(deltas) >= self.merge_backlog
            out = []
            i = 0
            while i < len(deltas):
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
                    while i + 1 < len(deltas):
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
                            last_id = f"{k}.{j}"
                            out.append(to_wire([frame], framing, id=last_id))
                i += 1
            pos += len(entries)
            # A stalled reader waits in the yield below: it must not hold its batch (the
            # whole log, unpacked, for a reader that fell far behind) while it waits.
            del entries, deltas
            if out:
                yield b"".join(out)

    async def aclose(self) -> None:
        """Cancel every running generation and wait for the producers to finish."""
        tasks = []
        for stream_id, live in list(self._live.items()):
            if live.task is not None and not live.task.done():
                self.cancel(stream_id, "shutdown")
                tasks.append(live.task)
        await asyncio.gather(*tasks, return_exceptions=True)
