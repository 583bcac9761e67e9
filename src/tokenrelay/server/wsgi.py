"""SSE for WSGI apps (Flask, Django under WSGI, any WSGI server).

WSGI has no way to wait for "the next event or the ping interval, whichever is first" on
the server's thread, so the source runs in a thread of its own feeding a bounded queue;
the server's thread takes frames from the queue and writes a ping when none came for
``ping`` seconds, even while the producer blocks.

WSGI cannot tell an app that the client left until a write fails: a disconnect is noticed
at the next event or ping, and then the server calls ``close()``, which stops the
producer at its next item (a thread cannot be interrupted while it blocks).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from .frames import HEADERS, PING, Item, check_options, frame

__all__ = ["SSEStream", "sse_stream"]

StartResponse = Callable[..., Any]

_END = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class SSEStream:
    """A WSGI response body of SSE frames, which is also a WSGI app.

    Return it from a Flask view as is, or use ``body`` (the stream itself) and
    ``headers`` with your framework's streaming response. Iterate it once.
    """

    def __init__(
        self,
        source: Iterable[Item],
        *,
        ping: float | None = 15.0,
        retry: int | None = None,
        buffer: int = 32,
        status: str = "200 OK",
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        check_options(ping, buffer)
        self._source = source
        self._ping = ping
        self._retry = retry
        self._queue: queue.Queue[object] = queue.Queue(buffer)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = status
        self.headers: list[tuple[str, str]] = [
            ("Content-Type", "text/event-stream; charset=utf-8"),
            *HEADERS.items(),
            *headers,
        ]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> SSEStream:
        start_response(self.status, self.headers)
        return self

    def __iter__(self) -> Iterator[bytes]:
        # Iterable, not an iterator: Flask takes an iterator for a plain body (text/html)
        # and would never call us as the WSGI app that sets the headers.
        if self._thread is not None:
            raise RuntimeError("an SSEStream can be iterated only once")
        self._thread = threading.Thread(target=self._produce, name="sse-producer", daemon=True)
        self._thread.start()
        while True:
            try:
                item = self._queue.get(timeout=self._ping)
            except queue.Empty:
                yield PING
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            assert isinstance(item, bytes)
            yield item

    def close(self) -> None:
        """Called by the WSGI server when the response ends or the client is gone."""
        self._stop.set()

    def __enter__(self) -> SSEStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _put(self, item: object) -> bool:
        """Queue an item, waiting while the queue is full; False once the stream closed."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        iterator = iter(self._source)
        prefix = b"" if self._retry is None else b"retry: %d\n" % self._retry
        try:
            for item in iterator:
                if not self._put(prefix + frame(item)):
                    return
                prefix = b""
            self._put(_END)
        except BaseException as error:  # handed to the server's thread, raised there
            self._put(_Failure(error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


def sse_stream(
    source: Iterable[Item],
    *,
    ping: float | None = 15.0,
    retry: int | None = None,
    buffer: int = 32,
    headers: Iterable[tuple[str, str]] = (),
) -> SSEStream:
    """Stream ``source`` (Events, mappings, strings or pre-encoded bytes) from a WSGI app.

    Flask: ``return sse_stream(tokens())``. Elsewhere: ``stream = sse_stream(...)`` and
    send ``stream.headers`` with ``stream`` as the body.
    """
    return SSEStream(source, ping=ping, retry=retry, buffer=buffer, headers=headers)
