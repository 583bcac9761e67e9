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
    cancelling it leaves nothing behind."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[str, list[asyncio.Future[bool]]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._by_key

    def keys(self) -> list[str]:
        return list(self._by_key)

    def wake(self, key: str) -> None:
        waiters = self._by_key.pop(key, None)
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(True)

    def wake_all(self) -> None:
        for key in list(self._by_key):
            self.wake(key)

    async def wait(self, key: str, timeout: float | None) -> bool:
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
