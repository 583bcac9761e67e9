"""EventSourceResponse under real ASGI servers (uvicorn, hypercorn, and a server declaring
ASGI spec 2.4), read over loopback sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.routing import Route

from tokenrelay.client import connect
from tokenrelay.server import EventSourceResponse, shutdown_streams
from tokenrelay.sse import Decoder, Event

from .asgi_servers import SERVERS, run_server


@pytest.fixture(params=SERVERS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def app_for(endpoint: Any, **kw: Any) -> Starlette:
    return Starlette(routes=[Route("/", endpoint)], **kw)


def raw_get(url: str) -> socket.socket:
    """A client that sends a request and then reads only when the test says so."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
    return sock


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before {marker!r}: {data!r}")
        data += chunk
    return data


def test_headers_are_sse_and_defeat_buffering_even_behind_gzip(kind: str) -> None:
    async def endpoint(request: Request) -> EventSourceResponse:
        return EventSourceResponse(["hello " * 200])

    app = app_for(endpoint, middleware=[Middleware(GZipMiddleware, minimum_size=10)])
    with run_server(app, kind) as url:
        response = httpx.get(url, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in response.headers
    assert "content-length" not in response.headers
    assert response.headers.get("connection", "").lower() != "keep-alive"
    assert response.text == "data: " + "hello " * 200 + "\n\n"


def test_items_of_every_kind_reach_the_client(kind: str) -> None:
    async def endpoint(request: Request) -> EventSourceResponse:
        async def items() -> AsyncIterator[Any]:
            yield "plain"
            yield Event("ev", event="delta", id="7")
            yield {"data": {"json": [1, 2]}, "event": "obj", "id": "8"}
            yield {"comment": "just a comment"}
            yield b"data: pre-encoded\n\n"

        return EventSourceResponse(items(), retry=1500)

    with run_server(app_for(endpoint), kind) as url:
        with connect(url, reconnect=False) as stream:
            events = list(stream)
    assert events == [
        Event("plain", retry=1500),
        Event("ev", event="delta", id="7"),
        Event('{"json":[1,2]}', event="obj", id="8"),
        Event("pre-encoded", id="8"),
    ]


def test_heartbeat_comment_after_idle_and_no_event_for_it(kind: str) -> None:
    async def endpoint(request: Request) -> EventSourceResponse:
        async def items() -> AsyncIterator[str]:
            yield "first"
            await asyncio.sleep(0.7)
            yield "second"

        return EventSourceResponse(items(), ping=0.2)

    with run_server(app_for(endpoint), kind) as url:
        with httpx.stream("GET", url) as response:
            received = [(time.monotonic(), chunk) for chunk in response.iter_bytes()]
    body = b"".join(chunk for _, chunk in received)
    assert body.count(b": ping\n\n") >= 2
    first_at = next(t for t, c in received if b"first" in c)
    ping_at = next(t for t, c in received if b": ping" in c)
    assert 0.15 <= ping_at - first_at < 0.6
    decoder = Decoder()
    assert [e.data for e in decoder.feed(body)] == ["first", "second"]


def test_disconnect_during_a_long_wait_cancels_the_producer_within_100_ms(
    kind: str, record_property: Any
) -> None:
    cleaned: list[float] = []

    async def endpoint(request: Request) -> EventSourceResponse:
        async def items() -> AsyncIterator[str]:
            try:
                yield "ready"
                await asyncio.sleep(3600)  # an LLM thinking, say
                yield "never"
            finally:
                cleaned.append(time.monotonic())

        return EventSourceResponse(items(), ping=None)

    with run_server(app_for(endpoint), kind) as url:
        sock = raw_get(url)
        read_until(sock, b"data: ready")
        time.sleep(0.05)
        closed_at = time.monotonic()
        sock.close()
        deadline = closed_at + 2
        while not cleaned and time.monotonic() < deadline:
            time.sleep(0.001)
    assert cleaned, "the producer was never cancelled"
    latency_ms = (cleaned[0] - closed_at) * 1000
    record_property("disconnect_to_cleanup_ms", round(latency_ms, 1))
    print(f"\n[{kind}] disconnect -> producer cleanup: {latency_ms:.1f} ms")
    assert latency_ms < 100


def test_stalled_reader_is_dropped_after_send_timeout_with_memory_bounded(kind: str) -> None:
    produced: list[int] = []
    stopped: list[float] = []
    event = "x" * 65536

    async def endpoint(request: Request) -> EventSourceResponse:
        async def items() -> AsyncIterator[str]:
            try:
                while True:
                    produced.append(1)
                    yield event
            finally:
                stopped.append(time.monotonic())

        return EventSourceResponse(items(), send_timeout=0.5, buffer=4)

    with run_server(app_for(endpoint), kind) as url:
        sock = raw_get(url)
        sock.recv(1024)  # the headers arrive; from now on this client reads nothing
        started = time.monotonic()
        while not stopped and time.monotonic() - started < 10:
            time.sleep(0.01)
        count = len(produced)
        time.sleep(0.3)
        sock.close()
    assert stopped, "the stalled client was never dropped"
    assert 0.4 <= stopped[0] - started < 3
    # What was produced fits in the buffer plus the kernel's socket buffers: bounded.
    assert count < 200, f"{count} events of 64 KiB were produced for a client that reads nothing"
    assert len(produced) == count  # and production stopped


def test_sync_producer_keeps_the_pings_flowing_while_it_blocks(kind: str) -> None:
    def endpoint(request: Request) -> EventSourceResponse:
        def items() -> Iterator[str]:
            yield "a"
            time.sleep(0.8)  # blocking work, in the producer's thread
            yield "b"

        return EventSourceResponse(items(), ping=0.2)

    with run_server(app_for(endpoint), kind) as url:
        with httpx.stream("GET", url) as response:
            body = b"".join(response.iter_bytes())
    assert body.index(b"data: a") < body.index(b": ping") < body.index(b"data: b")
    assert body.count(b": ping") >= 2


def test_shutdown_streams_ends_open_streams_with_a_last_retry(kind: str) -> None:
    async def endless(request: Request) -> EventSourceResponse:
        async def items() -> AsyncIterator[str]:
            yield "open"
            await asyncio.sleep(3600)
            yield "never"

        return EventSourceResponse(items(), shutdown_retry=2500)

    async def shut(request: Request) -> EventSourceResponse:
        shutdown_streams()
        return EventSourceResponse(["ok"])

    app = Starlette(routes=[Route("/", endless), Route("/shutdown", shut)])
    bodies: list[bytes] = []
    with run_server(app, kind) as url:

        def read() -> None:
            with httpx.stream("GET", url, timeout=10) as response:
                bodies.append(b"".join(response.iter_bytes()))

        readers = [threading.Thread(target=read) for _ in range(5)]
        for reader in readers:
            reader.start()
        time.sleep(0.5)
        started = time.monotonic()
        httpx.get(url + "/shutdown", timeout=10)
        for reader in readers:
            reader.join(10)
        elapsed = time.monotonic() - started
    assert bodies == [b"data: open\n\nretry: 2500\n\n"] * 5
    assert elapsed < 2


def test_more_concurrent_sync_streams_than_default_worker_threads_all_flow() -> None:
    # anyio lends 40 worker threads by default; a sync source holds one for its lifetime.
    def endpoint(request: Request) -> EventSourceResponse:
        def items() -> Iterator[str]:
            yield "start"
            time.sleep(1.0)
            yield "end"

        return EventSourceResponse(items(), ping=None)

    streams = 60
    with run_server(app_for(endpoint)) as url:

        async def all_streams() -> list[float]:
            limits = httpx.Limits(max_connections=streams)
            async with httpx.AsyncClient(timeout=30, limits=limits) as client:

                async def one() -> float:
                    started = time.monotonic()
                    body = (await client.get(url)).content
                    assert body == b"data: start\n\ndata: end\n\n"
                    return time.monotonic() - started

                return await asyncio.gather(*(one() for _ in range(streams)))

        durations = asyncio.run(all_streams())
    assert max(durations) < 1.9, f"some streams waited for a thread: {max(durations):.2f} s"
