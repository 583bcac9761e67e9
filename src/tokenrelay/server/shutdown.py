"""Ending open streams when the server shuts down, without touching its signal handlers.

A server waits for open responses before it stops; an endless SSE response would keep it
waiting ("Waiting for connections to close"). Each event loop gets one ``StreamRegistry``
of the streams open on it (kept in a dict weakly keyed by loop, so nothing is bound to a
loop that has gone). While streams are open, a watcher task on that loop looks, ten times
a second, whether the server has begun to shut down, and if so ends them all:

- uvicorn: its ``Server`` installs itself as the SIGINT/SIGTERM handler (a bound method);
  the watcher *reads* that handler's ``should_exit`` flag. Nothing is replaced or patched.
- any server, or your own reasons: call ``shutdown_streams()`` on the loop (e.g. from a
  hypercorn ``shutdown_trigger`` or a lifespan handler).
"""

from __future__ import annotations

import asyncio
import signal
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["StreamRegistry", "shutdown_streams"]

_POLL_SECONDS = 0.1


class StreamRegistry:
    """The streams open on one event loop, and how to end them all."""

    def __init__(self) -> None:
        self._streams: dict[int, Callable[[], None]] = {}
        self._watcher: asyncio.Task[None] | None = None
        self.shutting_down = False

    def add(self, key: int, end: Callable[[], None]) -> None:
        """Register an open stream; ``end`` asks it to finish now."""
        if self.shutting_down:
            end()
            return
        self._streams[key] = end
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def discard(self, key: int) -> None:
        self._streams.pop(key, None)

    def shutdown(self) -> None:
        """End every open stream, and any opened from now on."""
        self.shutting_down = True
        streams, self._streams = self._streams, {}
        for end in streams.values():
            end()

    async def _watch(self) -> None:
        try:
            server = _uvicorn_server()
            while self._streams:
                if server is not None and getattr(server, "should_exit", False):
                    self.shutdown()
                    return
                await asyncio.sleep(_POLL_SECONDS)
        finally:
            # Not kept once done: the task holds its loop, and this registry is the value
            # of a mapping weakly keyed by that loop.
            self._watcher = None


def _uvicorn_server() -> Any:
    """The uvicorn ``Server`` handling SIGTERM in this process, if there is one."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(signum)
        owner = getattr(handler, "__self__", None)
        if owner is not None and hasattr(owner, "should_exit"):
            return owner
    return None


_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, StreamRegistry] = (
    weakref.WeakKeyDictionary()
)


def registry() -> StreamRegistry:
    """The registry of the running event loop."""
    loop = asyncio.get_running_loop()
    found = _registries.get(loop)
    if found is None:
        found = _registries[loop] = StreamRegistry()
    return found


def shutdown_streams() -> None:
    """End every SSE stream open on the running loop, and refuse new ones (they end at
    once). Call it when your server begins to shut down."""
    registry().shutdown()
