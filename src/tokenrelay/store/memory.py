"""``MemoryStore``: stream logs in the process's memory."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .base import (
    StoreLimitError,
    StreamExistsError,
    StreamFinishedError,
    StreamInfo,
    StreamNotFoundError,
    check_count,
    fixed_window,
)
from .waiters import Waiters

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Log:
    """One stream. Once finished, its entries are a tuple and its metadata JSON bytes:
    objects the cyclic garbage collector stops walking (``_finish``)."""

    meta: Mapping[str, Any] | bytes
    owner: str
    lease_until: float | None  # None: no lease
    entries: list[bytes] | tuple[bytes, ...] = field(default_factory=list)
    finished: bool = False
    expires: float = 0.0  # when finished: forgotten then (pushed back by reads)
    cancel: bool = False
    readers: dict[str, tuple[int, float]] = field(default_factory=dict)  # instance -> count, until


class MemoryStore:
    """Stream logs in memory, for one gateway process (several apps in one process may
    share one, as instances share a database: leases, readers and cancellation work
    between them).

    Finished streams are kept ``retention`` seconds after they finish or were last read,
    whichever is later (a reader reading gets to the end), then dropped; expiry is checked on
    every ``create`` (a heap, so it costs only for what expires) and on lookups, with no
    background task. ``clock`` is injectable for tests; counters' windows are periods since
    the epoch, so they are read from the wall clock (``time.time``) instead. Waiting is a
    future per waiting reader, resolved by the append that gives it something to read: no
    polling.
    """

    shared = False

    def __init__(
        self, *, retention: float = 600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if retention < 0:
            raise ValueError("retention must be >= 0 seconds")
        self.retention = retention
        self._clock = clock
        self._logs: dict[str, _Log] = {}
        self._expiry: list[tuple[float, str]] = []
        self._waiters = Waiters()
        self._cancels = Waiters()  # keyed by owner
        self._aliases: dict[str, tuple[str, float]] = {}  # name -> stream id, until
        self._aliases_swept = 0  # how many aliases the last sweep of them left
        self._counters: dict[str, tuple[int, int, float]] = {}  # name -> window, total, end
        self._counters_swept = 0

    def __len__(self) -> int:
        return len(self._logs)

    def _sweep(self) -> None:
        now = self._clock()
        while self._expiry and self._expiry[0][0] <= now:
            _, stream_id = heapq.heappop(self._expiry)
            log = self._logs.get(stream_id)
            if log is not None and log.finished:
                if log.expires > now:  # read since: kept longer
                    heapq.heappush(self._expiry, (log.expires, stream_id))
                    continue
                del self._logs[stream_id]
                self._waiters.wake(stream_id)

    def _log(self, stream_id: str) -> _Log:
        if self._expiry and self._expiry[0][0] <= self._clock():
            self._sweep()
        log = self._logs.get(stream_id)
        if log is None:
            raise StreamNotFoundError(stream_id)
        return log

    def _abandoned(self, log: _Log, now: float) -> bool:
        return not log.finished and log.lease_until is not None and log.lease_until <= now

    async def create(
        self,
        stream_id: str,
        meta: Mapping[str, Any],
        *,
        owner: str = "",
        lease: float | None = None,
        limit: int | None = None,
    ) -> None:
        self._sweep()
        if stream_id in self._logs:
            raise StreamExistsError(f"stream {stream_id!r} exists")
        now = self._clock()
        if limit is not None and await self.running() >= limit:
            raise StoreLimitError(f"{limit} streams are running")
        self._logs[stream_id] = _Log(dict(meta), owner, None if lease is None else now + lease)

    async def append(self, stream_id: str, entries: Sequence[bytes]) -> int:
        # Once per delta: a running stream's log is looked up without a sweep (and its
        # clock read); the sweep runs on every other access.
        log = self._logs.get(stream_id) or self._log(stream_id)
        if log.finished:
            raise StreamFinishedError(f"stream {stream_id!r} is finished")
        assert isinstance(log.entries, list)  # (a tuple once finished)
        log.entries += entries
        if entries:
            self._waiters.wake(stream_id)
        return len(log.entries)

    def _finish(self, stream_id: str, log: _Log) -> None:
        # A finished log is kept ``retention`` seconds (600 by default): thousands of
        # them on a busy gateway. As a tuple of bytes and JSON bytes they hold no object
        # the cyclic collector walks, so its full collections (which pause every stream)
        # do not grow with them: 6 tracked objects per finished stream became 1.
        log.entries = tuple(log.entries)
        if not isinstance(log.meta, bytes):
            try:
                # A copy of its own size (why: ``llm.jsonio.dumps_kept``; the store does
                # not depend on the codecs' layer).
                log.meta = memoryview(orjson.dumps(log.meta)).tobytes()
            except TypeError:
                pass  # not JSON (a caller's own store use): kept as given
        log.finished = True
        log.expires = self._clock() + self.retention
        heapq.heappush(self._expiry, (log.expires, stream_id))
        self._waiters.wake(stream_id)

    async def finish(self, stream_id: str) -> None:
        log = self._log(stream_id)
        if not log.finished:
            self._finish(stream_id, log)

    async def flush(self) -> None:
        return None

    async def read(
        self, stream_id: str, start: int, limit: int | None = None
    ) -> tuple[list[bytes], bool]:
        if start < 0:
            raise ValueError("start must be >= 0")
        log = self._log(stream_id)
        end = len(log.entries) if limit is None else min(len(log.entries), start + limit)
        if log.finished:  # a reader still reading keeps it: retention counts from here
            log.expires = self._clock() + self.retention
        entries = log.entries[start:end]
        if isinstance(entries, tuple):  # finished
            entries = list(entries)
        return entries, log.finished and end >= len(log.entries)

    async def read_wait(
        self, stream_id: str, start: int, timeout: float | None = None
    ) -> tuple[list[bytes], bool]:
        log = self._log(stream_id)
        if len(log.entries) > start or log.finished:
            return await self.read(stream_id, start)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return [], False
            await self._waiters.wait(stream_id, remaining)
            entries, done = await self.read(stream_id, start)  # gone: StreamNotFoundError
            if entries or done:
                return entries, done

    async def info(self, stream_id: str) -> StreamInfo:
        log = self._log(stream_id)
        meta = log.meta
        return StreamInfo(
            stream_id,
            orjson.loads(meta) if isinstance(meta, bytes) else meta,
            len(log.entries),
            log.finished,
            log.owner,
            self._abandoned(log, self._clock()),
        )

    async def delete(self, stream_id: str) -> None:
        if self._logs.pop(stream_id, None) is not None:
            self._waiters.wake(stream_id)

    async def renew(self, owner: str, stream_ids: Sequence[str], lease: float) -> None:
        until = self._clock() + lease
        for stream_id in stream_ids:
            log = self._logs.get(stream_id)
            if log is not None and log.owner == owner and not log.finished:
                log.lease_until = until

    async def abandoned(self, owner: str | None = None) -> list[str]:
        now = self._clock()
        if owner is not None:
            return [i for i, log in self._logs.items() if log.owner == owner and not log.finished]
        return [i for i, log in self._logs.items() if self._abandoned(log, now)]

    async def interrupt(
        self, stream_id: str, entries: Sequence[bytes], *, owner: str | None = None
    ) -> bool:
        log = self._logs.get(stream_id)
        if log is None or log.finished:
            return False
        if owner is None and not self._abandoned(log, self._clock()):
            return False
        if owner is not None and log.owner != owner:
            return False
        log.entries = [*log.entries, *entries]
        self._finish(stream_id, log)
        return True

    async def request_cancel(self, stream_id: str) -> bool:
        log = self._log(stream_id)
        if log.finished:
            return False
        log.cancel = True
        self._cancels.wake(log.owner)
        return True

    async def cancel_requests(self, owner: str, timeout: float | None = None) -> list[str]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            found = []
            for stream_id, log in self._logs.items():
                if log.cancel and log.owner == owner:
                    log.cancel = False
                    if not log.finished:
                        found.append(stream_id)
            remaining = None if deadline is None else deadline - loop.time()
            if found or (remaining is not None and remaining <= 0):
                return found
            await self._cancels.wait(owner, remaining)

    async def set_readers(self, stream_id: str, instance: str, count: int, ttl: float) -> None:
        log = self._logs.get(stream_id)
        if log is None:
            return
        if count <= 0:
            log.readers.pop(instance, None)
        else:
            log.readers[instance] = (count, self._clock() + ttl)

    async def readers(self, stream_id: str, exclude: str = "") -> int:
        log = self._logs.get(stream_id)
        if log is None:
            return 0
        now = self._clock()
        return sum(n for i, (n, until) in log.readers.items() if i != exclude and until > now)

    async def running(self) -> int:
        now = self._clock()
        return sum(
            1 for log in self._logs.values() if not log.finished and not self._abandoned(log, now)
        )

    async def put_alias(self, name: str, stream_id: str, ttl: float) -> None:
        now = self._clock()
        # Expired aliases nobody reads again are dropped all at once each time the table
        # has doubled since the last sweep: no heap entry per put, and bounded memory.
        if len(self._aliases) >= 2 * self._aliases_swept:
            self._aliases = {n: a for n, a in self._aliases.items() if a[1] > now}
            self._aliases_swept = max(len(self._aliases), 32)
        self._aliases[name] = (stream_id, now + ttl)

    async def alias(self, name: str) -> str | None:
        found = self._aliases.get(name)
        if found is None:
            return None
        if found[1] <= self._clock():
            del self._aliases[name]
            return None
        return found[0]

    async def drop_alias(self, name: str, stream_id: str) -> None:
        found = self._aliases.get(name)
        if found is not None and found[0] == stream_id:
            del self._aliases[name]

    async def add_count(self, name: str, amount: int, window: float) -> tuple[int, float]:
        check_count(amount, window)
        now = time.time()  # not self._clock: windows are periods since the epoch
        index, left = fixed_window(now, window)
        # Only the current window of each name is kept; names not counted since their
        # window ended are dropped as aliases are, each time the table has doubled.
        if len(self._counters) >= 2 * self._counters_swept:
            self._counters = {n: c for n, c in self._counters.items() if c[2] > now}
            self._counters_swept = max(len(self._counters), 32)
        found = self._counters.get(name)
        total = amount if found is None or found[0] != index else found[1] + amount
        if amount:
            self._counters[name] = (index, total, now + left)
        return total, left

    async def aclose(self) -> None:
        for stream_id in list(self._logs):
            await self.delete(stream_id)
        self._aliases.clear()
        self._counters.clear()
