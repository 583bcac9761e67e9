"""Graceful shutdown of a real uvicorn process with many open SSE streams."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import httpx
import pytest

from tokenrelay.server.shutdown import registry

from .asgi_servers import free_port

ROOT = Path(__file__).parent.parent
STREAMS = 100
GRACE_SECONDS = 30  # uvicorn's own limit; we must end long before it


def start_uvicorn(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--port", str(port),
         "--log-level", "info", "--timeout-graceful-shutdown", str(GRACE_SECONDS)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


async def open_streams(url: str, opened: asyncio.Event) -> list[Any]:
    limits = httpx.Limits(max_connections=STREAMS + 10)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        ready = 0

        async def one() -> bytes:
            nonlocal ready
            body = b""
            async with client.stream("GET", url) as response:
                assert response.status_code == 200
                async for chunk in response.aiter_bytes():
                    if not body:
                        ready += 1
                        if ready == STREAMS:
                            opened.set()
                    body += chunk
            return body

        return await asyncio.gather(*(one() for _ in range(STREAMS)), return_exceptions=True)


@pytest.mark.slow
def test_sigterm_with_100_open_streams_ends_them_and_exits_promptly(record_property: Any) -> None:
    port = free_port()
    server = start_uvicorn(port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("uvicorn did not start") from None
                time.sleep(0.05)

        async def scenario() -> tuple[list[Any], float]:
            opened = asyncio.Event()
            readers = asyncio.create_task(open_streams(f"http://127.0.0.1:{port}/ticks", opened))
            await asyncio.wait_for(opened.wait(), 30)
            signalled = time.monotonic()
            server.send_signal(signal.SIGTERM)
            bodies = await asyncio.wait_for(readers, GRACE_SECONDS)
            await asyncio.get_running_loop().run_in_executor(None, server.wait, GRACE_SECONDS)
            return bodies, time.monotonic() - signalled

        bodies, elapsed = asyncio.run(scenario())
    finally:
        if server.poll() is None:
            server.kill()
        log = ""
        if server.stdout is not None:
            log = server.stdout.read().decode()
            server.stdout.close()
    record_property("shutdown_seconds_100_streams", round(elapsed, 3))
    print(f"\nSIGTERM -> uvicorn exited with {STREAMS} open streams in {elapsed:.3f} s")
    errors = [b for b in bodies if isinstance(b, BaseException)]
    assert not errors, errors[:3]
    # Every stream ended properly (a complete chunked body), with the last retry block.
    assert all(b.endswith(b"retry: 2000\n\n") for b in bodies)
    # uvicorn re-raises the signal once its graceful shutdown is complete.
    assert server.returncode in (0, -signal.SIGTERM)
    assert "Finished server process" in log
    assert elapsed < 3, log
    assert "timeout graceful shutdown exceeded" not in log


def test_a_loop_that_had_open_streams_is_not_kept_alive_by_its_registry() -> None:
    async def main() -> weakref.ref[asyncio.AbstractEventLoop]:
        streams = registry()
        streams.add(1, lambda: None)  # starts the watcher
        await asyncio.sleep(0.01)
        streams.discard(1)
        await asyncio.sleep(0.25)  # the watcher sees no stream and ends
        return weakref.ref(asyncio.get_running_loop())

    loop = asyncio.run(main())
    gc.collect()
    assert loop() is None
