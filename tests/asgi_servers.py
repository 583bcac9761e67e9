"""Real ASGI servers on loopback, in a thread of the test process: uvicorn and hypercorn."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

SERVERS = ["uvicorn", "hypercorn", "uvicorn-spec-2.4"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def declaring_spec(app: Any, version: str) -> Any:
    """The app as a server declaring another ASGI spec version would call it."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "asgi": {**scope.get("asgi", {}), "spec_version": version}}
        await app(scope, receive, send)

    return wrapped


@contextlib.contextmanager
def run_server(app: Any, kind: str = "uvicorn", lifespan: str = "off") -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yields the base URL."""
    port = free_port()
    if kind.startswith("uvicorn"):
        if kind == "uvicorn-spec-2.4":
            app = declaring_spec(app, "2.4")
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            if lifespan == "off":
                server.force_exit = True
            thread.join(5)
            if thread.is_alive():  # connections still open: do not wait for them
                server.force_exit = True
                thread.join(10)
    elif kind == "hypercorn":
        config = HypercornConfig()
        config.bind = [f"127.0.0.1:{port}"]
        config.loglevel = "WARNING"
        config.graceful_timeout = 1
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        started = threading.Event()

        async def main() -> None:
            task = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
            while True:  # wait until it accepts connections
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    break
                except OSError:
                    await asyncio.sleep(0.01)
            started.set()
            await task

        thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
        thread.start()
        if not started.wait(10):
            raise RuntimeError("hypercorn did not start")
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)
            if not thread.is_alive():
                loop.close()
    else:
        raise ValueError(kind)
