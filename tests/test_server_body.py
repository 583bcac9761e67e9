"""event_body, the async body with pings (what Django under ASGI streams)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from tokenrelay.server import event_body


async def collect(body: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in body]


def test_pings_flow_while_an_async_source_waits() -> None:
    async def source() -> AsyncIterator[str]:
        yield "a"
        await asyncio.sleep(0.5)
        yield "b"

    chunks = asyncio.run(collect(event_body(source(), ping=0.15)))
    assert chunks[0] == b"data: a\n\n" and chunks[-1] == b"data: b\n\n"
    assert chunks[1:-1] and set(chunks[1:-1]) == {b": ping\n\n"}


def test_many_sync_sources_run_side_by_side() -> None:
    def source() -> Iterator[str]:
        time.sleep(0.5)
        yield "done"

    async def main() -> float:
        started = time.monotonic()
        results = await asyncio.gather(*(collect(event_body(source())) for _ in range(20)))
        assert results == [[b"data: done\n\n"]] * 20
        return time.monotonic() - started

    assert asyncio.run(main()) < 1.2  # not queued behind a small thread pool


def test_closing_early_stops_a_sync_source_blocked_on_a_full_buffer() -> None:
    finished = threading.Event()

    def source() -> Iterator[str]:
        try:
            while True:
                yield "x" * 100
        finally:
            finished.set()

    async def main() -> None:
        body = event_body(source(), buffer=2)
        assert await body.__anext__() == b"data: " + b"x" * 100 + b"\n\n"
        await asyncio.sleep(0.1)  # the source fills the buffer and blocks
        await body.aclose()  # a client disconnect, as Django cancels the response

    asyncio.run(main())
    assert finished.wait(2), "the source's thread never stopped"


def test_closing_early_cancels_an_async_source_and_runs_its_cleanup() -> None:
    cleaned: list[bool] = []

    async def source() -> AsyncIterator[str]:
        try:
            yield "first"
            await asyncio.sleep(3600)
        finally:
            cleaned.append(True)

    async def main() -> None:
        body = event_body(source())
        await body.__anext__()
        await body.aclose()

    asyncio.run(main())
    assert cleaned == [True]


@pytest.mark.parametrize("sync", [True, False])
def test_source_errors_reach_the_framework(sync: bool) -> None:
    def sync_source() -> Iterator[str]:
        yield "ok"
        raise RuntimeError("boom")

    async def async_source() -> AsyncIterator[str]:
        yield "ok"
        raise RuntimeError("boom")

    source = sync_source() if sync else async_source()
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(collect(event_body(source, retry=50)))


def test_retry_rides_on_the_first_frame() -> None:
    chunks = asyncio.run(collect(event_body(iter(["a", "b"]), retry=50)))
    assert chunks == [b"retry: 50\ndata: a\n\n", b"data: b\n\n"]


@pytest.mark.parametrize(("ping", "buffer"), [(0, 32), (-1.0, 32), (1.0, 0)])
def test_every_stream_refuses_bad_options_alike(ping: float, buffer: int) -> None:
    from tokenrelay.server import EventSourceResponse, sse_stream

    with pytest.raises(ValueError):
        EventSourceResponse([], ping=ping, buffer=buffer)
    with pytest.raises(ValueError):
        sse_stream([], ping=ping, buffer=buffer)
    with pytest.raises(ValueError):
        asyncio.run(collect(event_body([], ping=ping, buffer=buffer)))
