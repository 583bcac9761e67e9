"""A loopback TCP proxy that cuts chosen connections after a number of response bytes:
a network drop, for real clients and servers on either side."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from tests.asgi_servers import free_port


class CuttingProxy:
    """Forwards 127.0.0.1:port to ``target_port``. ``cuts`` lists, per accepted
    connection in order, after how many response bytes to cut it (None: never)."""

    def __init__(self, target_port: int, cuts: list[int | None]) -> None:
        self.target_port = target_port
        self.cuts = list(cuts)
        self.port = free_port()
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    limit: int | None) -> None:  # fmt: skip
        sent = 0
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    writer.write(data[: max(0, limit - sent)])
                    await writer.drain()
                    writer.transport.abort()  # a drop, not a clean close
                    return
                sent += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        cut = self.cuts[self.connections] if self.connections < len(self.cuts) else None
        self.connections += 1
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        up = asyncio.create_task(self._pipe(client_r, server_w, None))
        down = asyncio.create_task(self._pipe(server_r, client_w, cut))
        try:
            await down
        finally:
            up.cancel()
            down.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
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
                for task in list(self._tasks):  # connections still open: end them too
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
