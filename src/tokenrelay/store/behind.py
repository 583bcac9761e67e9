"""``BackedStore``: what the shared backends (SQLite, Redis) have in common — the running
streams of this process in front, in memory; the database behind, written in batches.

A stream created here gets a *tail*: its whole log so far, in memory, until the log is
finished and written. Appends go to the tail and wake this process's readers at once;
one writer task per store then writes every tail's new entries to the database in one
batch (one transaction or one pipeline for all streams: whatever arrived while the
previous batch was being written goes in the next). So the producer never waits for the
database, and a stream of 1,000 tokens costs a few dozen writes, not 1,000.

Readers of streams produced elsewhere read the database and wait for the backend's
notification (SQLite: a cheap poll of ``PRAGMA data_version``; Redis: pub/sub).

When the database is unreachable, the tails keep everything (readers here carry on) and
the writer retries with a growing pause; when the backend lost a stream (a Redis restarted
without persistence) the tail writes it again from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .base import (
    StoreError,
    StoreUnavailableError,
    StreamFinishedError,
    StreamInfo,
    StreamNotFoundError,
)
from .waiters import Waiters

__all__ = ["BackedStore", "Batch", "WriteResult"]

log = logging.getLogger("tokenrelay.store")


@dataclass(slots=True)
class _Tail:
    meta: Mapping[str, Any]
    owner: str
    lease: float | None
    entries: list[bytes]
    written: int = 0  # entries the database has
    finishing: bool = False  # the producer finished it
    finish_written: bool = False


@dataclass(frozen=True, slots=True)
class Batch:
    """Entries ``start..`` of one stream to write; ``finish``: then mark it finished."""

    stream_id: str
    start: int
    entries: Sequence[bytes]
    finish: bool


WriteResult = None | StreamNotFoundError | StreamFinishedError
"""Per batch: None (written), or why not (the stream is gone / finished by another)."""


class BackedStore(ABC):
    """The ``StreamStore`` contract over a database; subclasses supply the database."""

    shared = True

    def __init__(self, *, retention: float, batch_interval: float = 0.005) -> None:
        if retention < 0:
            raise ValueError("retention must be >= 0 seconds")
        if batch_interval < 0:
            raise ValueError("batch_interval must be >= 0 seconds")
        self.retention = retention
        # The writer waits this long after a write before the next one, so that a busy
        # store writes fewer, larger batches (readers elsewhere see entries this much
        # later; readers here, at once).
        self.batch_interval = batch_interval
        self._tails: dict[str, _Tail] = {}
        self._dirty: dict[str, _Tail] = {}  # tails with something to write, in order
        self._writer: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()  # set while nothing is left to write
        self._idle.set()
        self._local = Waiters()  # readers of tails
        self._remote = Waiters()  # readers of streams produced elsewhere
        self._remote_pos: dict[str, int] = {}  # the lowest position a remote reader wants
        self._cancels = Waiters()  # by owner
        self._closed = False

    # -- what a backend supplies ---------------------------------------------------------

    @abstractmethod
    async def _create(
        self,
        stream_id: str,
        meta: Mapping[str, Any],
        owner: str,
        lease: float | None,
        limit: int | None,
        replace: bool,
    ) -> None:
        """Create the stream in the database (``replace``: it may exist, start it over)."""

    @abstractmethod
    async def _write(self, batches: Sequence[Batch]) -> list[WriteResult]:
        """Write every batch in one transaction or round trip (positions below the
        stream's length are already there and skipped: a retried batch is harmless)."""

    @abstractmethod
    async def _read(
        self, stream_id: str, start: int, limit: int | None
    ) -> tuple[list[bytes], bool]: ...

    @abstractmethod
    async def _info(self, stream_id: str) -> StreamInfo: ...

    @abstractmethod
    async def _delete(self, stream_id: str) -> None: ...

    @abstractmethod
    async def _take_cancels(self, owner: str) -> list[str]:
        """The running streams of ``owner`` asked to cancel, clearing the requests."""

    @abstractmethod
    async def _watch(self, stream_id: str | None, owner: str | None) -> None:
        """From now on, notify ``_changed(stream_id)`` / ``_cancel_requested(owner)``
        (the caller reads after this, which covers anything from before)."""

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    async def _running(self) -> int: ...

    @abstractmethod
    async def _abandoned(self, owner: str | None) -> list[str]: ...

    @abstractmethod
    async def _request_cancel(self, stream_id: str) -> bool: ...

    # -- called by the backend's notifications -------------------------------------------

    def _changed(self, stream_id: str, length: int | None = None, finished: bool = False) -> None:
        """Stream ``stream_id`` grew to ``length`` (None: unknown), or finished, or went."""
        want = self._remote_pos.get(stream_id)
        if want is None:
            return
        if length is None or finished or length > want:
            del self._remote_pos[stream_id]
            self._remote.wake(stream_id)

    def _watched(self) -> dict[str, int]:
        """Streams remote readers wait for, and the lowest position each wants."""
        return self._remote_pos

    def _cancel_requested(self, owner: str) -> None:
        self._cancels.wake(owner)

    def _cancel_watchers(self) -> list[str]:
        return self._cancels.keys()

    # -- the log ---------------------------------------------------------------------------

    def _finishing(self) -> list[str]:
        """Streams finished here whose finish the database does not have yet."""
        return [i for i, t in self._tails.items() if t.finishing and not t.finish_written]

    async def create(
        self,
        stream_id: str,
        meta: Mapping[str, Any],
        *,
        owner: str = "",
        lease: float | None = None,
        limit: int | None = None,
    ) -> None:
        if limit is not None:  # what finished here counts as finished, written or not
            limit += len(self._finishing())
        await self._create(stream_id, meta, owner, lease, limit, False)
        self._tails[stream_id] = _Tail(dict(meta), owner, lease, [])

    async def append(self, stream_id: str, entries: Sequence[bytes]) -> int:
        tail = self._tails.get(stream_id)
        if tail is None:
            return await self._append_elsewhere(stream_id, entries)
        if tail.finishing:
            raise StreamFinishedError(f"stream {stream_id!r} is finished")
        tail.entries += entries
        if entries:
            self._local.wake(stream_id)
            self._mark(stream_id, tail)
        return len(tail.entries)

    async def _append_elsewhere(self, stream_id: str, entries: Sequence[bytes]) -> int:
        # Not created here (another process's stream, or this process restarted): write
        # through, at the length the database has.
        info = await self._info(stream_id)
        if info.finished:
            raise StreamFinishedError(f"stream {stream_id!r} is finished")
        result = (await self._write([Batch(stream_id, info.length, list(entries), False)]))[0]
        if result is not None:
            raise result
        return info.length + len(entries)

    async def finish(self, stream_id: str) -> None:
        tail = self._tails.get(stream_id)
        if tail is None:
            info = await self._info(stream_id)
            if not info.finished:
                result = (await self._write([Batch(stream_id, info.length, [], True)]))[0]
                if isinstance(result, StreamNotFoundError):
                    raise result
            return
        if not tail.finishing:
            tail.finishing = True
            self._local.wake(stream_id)
            self._mark(stream_id, tail)

    def _mark(self, stream_id: str, tail: _Tail) -> None:
        self._dirty[stream_id] = tail
        if self._writer is None:
            self._idle.clear()
            self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    async def _write_loop(self) -> None:
        pause = 0.05
        try:
            while self._dirty:
                dirty, self._dirty = self._dirty, {}
                batches = []
                for stream_id, tail in dirty.items():
                    batches.append(
                        Batch(
                            stream_id,
                            tail.written,
                            tail.entries[tail.written :],
                            tail.finishing,
                        )
                    )
                try:
                    results = await self._write(batches)
                except StoreError as exc:
                    if self._closed:
                        return
                    log.warning("stream store: write failed (%s); retrying in %.2g s", exc, pause)
                    for stream_id, tail in dirty.items():
                        self._dirty.setdefault(stream_id, tail)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 2.0)
                    continue
                pause = 0.05
                for batch, result in zip(batches, results, strict=True):
                    await self._written(batch, result, dirty[batch.stream_id])
                if self._dirty and self.batch_interval:
                    await asyncio.sleep(self.batch_interval)
        finally:
            self._writer = None
            if self._dirty and not self._closed:
                self._writer = asyncio.get_running_loop().create_task(self._write_loop())
            else:
                self._idle.set()

    async def _written(self, batch: Batch, result: WriteResult, tail: _Tail) -> None:
        stream_id = batch.stream_id
        if self._tails.get(stream_id) is not tail:
            return  # deleted meanwhile
        if result is None:
            tail.written = batch.start + len(batch.entries)
            if batch.finish:
                tail.finish_written = True
            if tail.written < len(tail.entries) or (tail.finishing and not tail.finish_written):
                self._mark(stream_id, tail)
            elif tail.finish_written:
                del self._tails[stream_id]  # readers read the database from here on
        elif isinstance(result, StreamNotFoundError):
            # The database lost it (a Redis restarted empty): write it again, whole.
            try:
                await self._create(stream_id, tail.meta, tail.owner, tail.lease, None, True)
            except StoreError as exc:
                log.warning("stream store: cannot recreate %s: %s", stream_id, exc)
            tail.written = 0
            self._mark(stream_id, tail)
        else:
            # Finished by someone else (interrupted after our lease ran out): from here on
            # the database's version is the stream; the producer's next append fails.
            del self._tails[stream_id]
            tail.finishing = True
            self._local.wake(stream_id)

    async def flush(self) -> None:
        await self._idle.wait()

    async def read(
        self, stream_id: str, start: int, limit: int | None = None
    ) -> tuple[list[bytes], bool]:
        if start < 0:
            raise ValueError("start must be >= 0")
        tail = self._tails.get(stream_id)
        if tail is None:
            return await self._read(stream_id, start, limit)
        entries = tail.entries
        end = len(entries) if limit is None else min(len(entries), start + limit)
        return entries[start:end], tail.finishing and end >= len(entries)

    async def read_wait(
        self, stream_id: str, start: int, timeout: float | None = None
    ) -> tuple[list[bytes], bool]:
        if stream_id in self._tails:
            entries, done = await self.read(stream_id, start)
            if entries or done:
                return entries, done
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            if stream_id in self._tails:  # produced here: in memory, woken in process
                if remaining is not None and remaining <= 0:
                    return [], False
                await self._local.wait(stream_id, remaining)
                entries, done = await self.read(stream_id, start)
                if entries or done:
                    return entries, done
                continue
            # Produced elsewhere: say what we wait for *before* reading, so that a
            # notification arriving during the read is kept (``expect``), not lost.
            want = self._remote_pos.get(stream_id)
            self._remote_pos[stream_id] = start if want is None else min(want, start)
            mark = self._remote.expect(stream_id)
            waited = False
            try:
                # (Notifications may start only now: the read below covers the gap.)
                await self._watch(stream_id, None)
                entries, done = await self.read(stream_id, start)
                if entries or done:
                    return entries, done
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return [], False
                waited = True
                await self._remote.wait(stream_id, remaining, since=mark)
            finally:
                if not waited:
                    self._remote.unexpect(stream_id)
                if stream_id not in self._remote:  # nobody else waits for it
                    self._remote_pos.pop(stream_id, None)

    async def info(self, stream_id: str) -> StreamInfo:
        info = await self._info(stream_id)
        tail = self._tails.get(stream_id)
        if tail is None:
            return info
        # The database has the lease; the tail has what was appended and finished.
        abandoned = info.abandoned and not tail.finishing
        return StreamInfo(
            stream_id, tail.meta, len(tail.entries), tail.finishing, tail.owner, abandoned
        )

    async def running(self) -> int:
        return max(0, await self._running() - len(self._finishing()))

    async def abandoned(self, owner: str | None = None) -> list[str]:
        finishing = set(self._finishing())
        return [i for i in await self._abandoned(owner) if i not in finishing]

    async def request_cancel(self, stream_id: str) -> bool:
        tail = self._tails.get(stream_id)
        if tail is not None and tail.finishing:
            return False
        return await self._request_cancel(stream_id)

    async def delete(self, stream_id: str) -> None:
        self._tails.pop(stream_id, None)
        self._dirty.pop(stream_id, None)
        await self._delete(stream_id)
        self._local.wake(stream_id)
        self._remote_pos.pop(stream_id, None)
        self._remote.wake(stream_id)

    async def cancel_requests(self, owner: str, timeout: float | None = None) -> list[str]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            await self._watch(None, owner)
            mark = self._cancels.expect(owner)  # a notice during the round trip is kept
            waited = False
            try:
                found = await self._take_cancels(owner)
                if found:
                    return found
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return []
                waited = True
                await self._cancels.wait(owner, remaining, since=mark)
            finally:
                if not waited:
                    self._cancels.unexpect(owner)

    async def aclose(self) -> None:
        """Write what is pending (for up to 5 s), then close the backend."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self.flush()
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(BaseException):
                await self._writer
        self._local.wake_all()
        self._remote.wake_all()
        self._cancels.wake_all()
        await self._close()


def unavailable(what: str, exc: BaseException) -> StoreUnavailableError:
    """The backend's own error, as ours (the message names the store, never a password)."""
    error = StoreUnavailableError(f"stream store unavailable: {what} ({type(exc).__name__})")
    error.__cause__ = exc
    return error
