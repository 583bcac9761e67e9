"""``Waiters``: tasks waiting for something to happen to a key (a stream grew, a cancel
came for an owner), woken by whoever makes it happen. No polling, no task per wait."""

from __future__ import annotations

import asyncio

__all__ = ["Waiters"]


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(False)


class Waiters:
    """Futures by key. ``wait(key, timeout)`` is True when woken, False on timeout;
    cancelling it leaves nothing behind.

    ``expect(key)`` returns a mark; ``wait(key, timeout, since=mark)`` then returns at once
    if ``key`` was woken after the mark was taken. For a caller that must read something
    between "tell me of changes" and waiting: a wake during its read is kept, not lost."""

    __slots__ = ("_by_key", "_expected", "_versions")

    def __init__(self) -> None:
        self._by_key: dict[str, list[asyncio.Future[bool]]] = {}
        self._expected: dict[str, int] = {}  # callers between expect() and wait()
        self._versions: dict[str, int] = {}  # wakes so far, for keys someone expects

    def __contains__(self, key: str) -> bool:
        """Whether someone waits for ``key``, or is about to (``expect``)."""
        return key in self._by_key or key in self._expected

    def keys(self) -> list[str]:
        return list({*self._by_key, *self._expected})

    def expect(self, key: str) -> int:
        self._expected[key] = self._expected.get(key, 0) + 1
        return self._versions.setdefault(key, 0)

    def unexpect(self, key: str) -> None:
        """A caller of ``expect(key)`` will not wait after all."""
        n = self._expected.get(key, 0) - 1
        if n > 0:
            self._expected[key] = n
        else:
            self._expected.pop(key, None)
            self._versions.pop(key, None)

    def wake(self, key: str) -> None:
        if key in self._versions:
            self._versions[key] += 1
        waiters = self._by_key.pop(key, None)
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)

    def wake_all(self) -> None:
        for key in {*self._by_key, *self._versions}:
            self.wake(key)

    async def wait(self, key: str, timeout: float | None, *, since: int | None = None) -> bool:
        """Wait for a wake of ``key``; with ``since`` (a mark of ``expect(key)``), a wake
        after the mark returns at once."""
        if since is not None:
            changed = self._versions.get(key, since) != since
            self.unexpect(key)
            if changed:
                return True
        # A future and, with a timeout, a timer handle: no wait_for (a task's worth of
        # objects per wait, and this runs once per delta per reader).
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._by_key.setdefault(key, []).append(waiter)
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if not (waiter.done() and not waiter.cancelled() and waiter.result()):
                waiter.cancel()  # we were cancelled, or it timed out: drop it
                waiters = self._by_key.get(key)
                if waiters is not None and waiter in waiters:
                    waiters.remove(waiter)
                    if not waiters:
                        del self._by_key[key]
