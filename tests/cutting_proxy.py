"""A loopback TCP proxy that cuts chosen connections after a number of response bytes:
a network drop, for real clients and servers on either side."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from tests.asgi_servers import free_port


@dataclass
class _Link:
    """One proxied connection: after how many response bytes it is cut, and how many have
    been counted towards that."""

    limit: int | None
    sent: int = 0
    matched: bool = False


class CuttingProxy:
    """Forwards 127.0.0.1:port to ``target_port``. ``cuts`` lists after how many response
    bytes to cut a connection (None: never), per accepted connection in order.

    With ``request`` (the start of a request line, such as ``b"POST /v1/chat/completions "``)
    ``cuts`` goes instead by the connections that carry such a request, in the order each
    first does, and the bytes count from that request on: a browser keeps connections alive
    and reuses them, so their order says nothing. ``connections`` counts the accepted
    connections, ``dropped`` the ones cut. When it stops, every connection still open is
    closed (a browser would keep its own open, and the proxy's thread with them).
    ``requests`` lists the request lines that went through (a client may open a
    connection it never sends on: undici does, now and then, after aborting a body)."""

    def __init__(
        self, target_port: int, cuts: list[int | None], *, request: bytes | None = None
    ) -> None:
        self.target_port = target_port
        self.cuts = list(cuts)
        self.request = request
        self.port = free_port()
        self.connections = 0
        self.dropped = 0
        self.requests: list[str] = []  # the request lines sent through, in order
        self._matched = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: list[asyncio.BaseTransport] = []

    def _cut(self, n: int) -> int | None:
        return self.cuts[n] if n < len(self.cuts) else None

    async def _up(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        try:
            while data := await reader.read(65536):
                self.requests += [
                    line.decode("latin-1")
                    for line in data.split(b"\r\n")
                    if line.startswith((b"GET /", b"POST /", b"DELETE /"))
                ]
                if self.request is not None and not link.matched and self.request in data:
                    link.matched, link.limit, link.sent = True, self._cut(self._matched), 0
                    self._matched += 1
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _down(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        try:
            while data := await reader.read(65536):
                if link.limit is not None and link.sent + len(data) >= link.limit:
                    writer.write(data[: max(0, link.limit - link.sent)])
                    await writer.drain()
                    self.dropped += 1
                    writer.transport.abort()  # a drop, not a clean close
                    return
                link.sent += len(data)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._transports.append(client_w.transport)
        link = _Link(None if self.request is not None else self._cut(self.connections))
        self.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            self._tasks.discard(task)
            return
        self._transports.append(server_w.transport)
        up = asyncio.create_task(self._up(client_r, server_w, link))
        try:
            await self._down(server_r, client_w, link)
        finally:
            up.cancel()
            await asyncio.gather(up, return_exceptions=True)
            server_w.transport.abort()
            client_w.transport.abort()
            self._tasks.discard(task)

    @contextlib.contextmanager
    def running(self) -> Iterator[str]:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        stop = asyncio.Event()

        async def main() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
            ready.set()
            async with server:
                await stop.wait()
                # Connections still open (kept alive, or streaming): close them, end their
                # handlers, before the server waits for them.
                for transport in self._transports:
                    transport.abort()
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        ready.wait(5)
        try:
            yield f"http://127.0.0.1:{self.port}"
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(5)
            loop.close()
