"""``MemoryStore``: stream logs in the process's memory."""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import StreamExistsError, StreamFinishedError, StreamInfo, StreamNotFoundError

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Log:
    meta: Mapping[str, Any]
    entries: list[bytes] = field(default_factory=list)
    finished: bool = False
    waiters: list[asyncio.Future[bool]] = field(default_factory=list)

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(True)


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class MemoryStore:
    """Stream logs in memory, for one gateway process.

    Finished streams are kept ``retention`` seconds, then dropped; expiry is checked on
    every ``create`` (a heap, so it costs only for what expires) and on lookups, with no
    background task. ``clock`` is injectable for tests. Waiting is a future per waiting
    reader, resolved by the append that gives it something to read: no polling.
    """

    def __init__(
        self, *, retention: float = 600.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if retention < 0:
            raise ValueError("retention must be >= 0 seconds")
        self.retention = retention
        self._clock = clock
        self._logs: dict[str, _Log] = {}
        self._expiry: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._logs)

    def _sweep(self) -> None:
        now = self._clock()
        while self._expiry and self._expiry[0][0] <= now:
            _, stream_id = heapq.heappop(self._expiry)
            log = self._logs.get(stream_id)
            if log is not None and log.finished:
                del self._logs[stream_id]
                log.wake()

    def _log(self, stream_id: str) -> _Log:
        if self._expiry and self._expiry[0][0] <= self._clock():
            self._sweep()
        log = self._logs.get(stream_id)
        if log is None:
            raise StreamNotFoundError(stream_id)
        return log

    async def create(self, stream_id: str, meta: Mapping[str, Any]) -> None:
        self._sweep()
        if stream_id in self._logs:
            raise StreamExistsError(f"stream {stream_id!r} exists")
        self._logs[stream_id] = _Log(dict(meta))

    async def append(self, stream_id: str, entries: Sequence[bytes]) -> int:
        log = self._log(stream_id)
        if log.finished:
            raise StreamFinishedError(f"stream {stream_id!r} is finished")
        log.entries += entries
        if entries and log.waiters:
            log.wake()
        return len(log.entries)

    async def finish(self, stream_id: str) -> None:
        log = self._log(stream_id)
        if log.finished:
            return
        log.finished = True
        heapq.heappush(self._expiry, (self._clock() + self.retention, stream_id))
        log.wake()

    async def read(
        self, stream_id: str, start: int, limit: int | None = None
    ) -> tuple[list[bytes], bool]:
        if start < 0:
            raise ValueError("start must be >= 0")
        log = self._log(stream_id)
        end = len(log.entries) if limit is None else min(len(log.entries), start + limit)
        return log.entries[start:end], log.finished and end >= len(log.entries)

    async def wait(self, stream_id: str, start: int, timeout: float | None) -> bool:
        log = self._log(stream_id)
        if len(log.entries) > start or log.finished:
            return True
        # A future and, with a timeout, a timer handle: no wait_for (a task's worth of
        # objects per wait, and this runs once per delta per reader).
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        log.waiters.append(waiter)
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            woken = await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if not (waiter.done() and not waiter.cancelled() and waiter.result()):
                waiter.cancel()  # we were cancelled, or it timed out: drop it
                if waiter in log.waiters:
                    log.waiters.remove(waiter)
        if not woken:
            return False
        if stream_id not in self._logs:
            raise StreamNotFoundError(stream_id)
        return True

    async def info(self, stream_id: str) -> StreamInfo:
        log = self._log(stream_id)
        return StreamInfo(stream_id, log.meta, len(log.entries), log.finished)

    async def delete(self, stream_id: str) -> None:
        log = self._logs.pop(stream_id, None)
        if log is not None:
            log.wake()

    async def aclose(self) -> None:
        for stream_id in list(self._logs):
            await self.delete(stream_id)
