"""A real HTTP/1.1 server on loopback whose connections do what a test scripts.

Each accepted connection is handed to the test's async handler with a ``Conn``: the
parsed request, and ways to answer — headers, chunks of body, a clean end, an abrupt
drop, a stall. The server runs its own event loop in a thread, so sync and async
clients alike talk to it over real sockets. It can be stopped and started again on the
same port (a server restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, bytes]  # lower-case names, raw values
    body: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.lower())
        return None if value is None else value.decode()


@dataclass
class Conn:
    request: Request
    writer: asyncio.StreamWriter
    index: int  # 0 for the first connection the server accepted, and so on
    _chunked: bool = field(default=False)

    async def respond(
        self, status: int = 200, headers: dict[str, str] | None = None, chunked: bool = True
    ) -> None:
        """Send the status line and headers (SSE content type unless told otherwise)."""
        fields = {"Content-Type": "text/event-stream", **(headers or {})}
        head = f"HTTP/1.1 {status} Status\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in fields.items())
        if chunked:
            head += "Transfer-Encoding: chunked\r\n"
        self._chunked = chunked
        self.writer.write((head + "Connection: close\r\n\r\n").encode())
        await self.writer.drain()

    async def send(self, data: bytes | str) -> None:
        """One chunk of body (one HTTP chunk, when chunked)."""
        raw = data.encode() if isinstance(data, str) else data
        if self._chunked:
            raw = b"%x\r\n%s\r\n" % (len(raw), raw)
        self.writer.write(raw)
        await self.writer.drain()

    async def end(self) -> None:
        """End the body properly and close."""
        if self._chunked:
            self.writer.write(b"0\r\n\r\n")
        await self.writer.drain()
        self.writer.close()

    def drop(self) -> None:
        """Close abruptly, the body unfinished (a network failure, as a client sees it)."""
        self.writer.transport.abort()

    async def stall(self) -> None:
        """Send nothing more until the server stops."""
        await asyncio.Event().wait()


Handler = Callable[[Conn], Awaitable[None]]


class ScriptedServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)

    def stop(self) -> None:
        """Close the listening socket and every open connection."""
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(5)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            request = await self._read_request(reader)
            if request is None:
                return
            index = len(self.requests)
            self.requests.append(request)
            await self.handler(Conn(request, writer, index))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.transport.abort()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> Request | None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head[:-4].split(b"\r\n")
            method, path, _ = lines[0].decode().split(" ", 2)
            headers: dict[str, bytes] = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.decode().strip().lower()] = value.strip()
            length = int(headers.get("content-length", b"0"))
            body = await reader.readexactly(length) if length else b""
            return Request(method, path, headers, body)
        return None


@contextlib.contextmanager
def serve(handler: Handler):  # type: ignore[no-untyped-def]
    server = ScriptedServer(handler)
    server.start()
    try:
        yield server
    finally:
        server.close()
