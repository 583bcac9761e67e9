"""iter_events / aiter_events over responses from httpx, requests and aiohttp."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import httpx
import pytest
import requests

from tokenrelay.client import aiter_events, iter_events
from tokenrelay.errors import ResponseError
from tokenrelay.sse import Event, encode

from .sse_server import Conn, serve

EXPECTED = [
    Event("one", id="1"),
    Event("two\nlines", event="x", id="2"),
    Event("\u00e9t\u00e9", id="2"),
]


def stream_then_stall(chunked: bool) -> Any:
    """Sends three events (the last split in two chunks), then keeps the connection open:
    a reader gets them only if it does not wait for the body to end."""

    async def handler(conn: Conn) -> None:
        await conn.respond(200, {"Content-Type": "text/event-stream; charset=utf-8"}, chunked)
        await conn.send(encode("one", id="1") + encode("two\nlines", event="x", id="2"))
        last = encode("\u00e9t\u00e9")
        await conn.send(last[:8])  # inside the two-byte é
        await conn.send(last[8:])
        await conn.stall()

    return handler


def first_three(events: Any) -> list[Event]:
    out = []
    for event in events:
        out.append(event)
        if len(out) == 3:
            break
    return out


async def afirst_three(events: Any) -> list[Event]:
    out = []
    async for event in events:
        out.append(event)
        if len(out) == 3:
            break
    return out


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_httpx_response(chunked: bool) -> None:
    with serve(stream_then_stall(chunked)) as server:
        with httpx.Client(timeout=5) as client, client.stream("GET", server.url) as response:
            assert first_three(iter_events(response)) == EXPECTED


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_requests_response(chunked: bool) -> None:
    with serve(stream_then_stall(chunked)) as server:
        with requests.get(server.url, stream=True, timeout=5) as response:
            assert first_three(iter_events(response)) == EXPECTED


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_async_httpx_response(chunked: bool) -> None:
    async def main(url: str) -> list[Event]:
        async with httpx.AsyncClient(timeout=5) as client:
            async with client.stream("GET", url) as response:
                return await afirst_three(aiter_events(response))

    with serve(stream_then_stall(chunked)) as server:
        assert asyncio.run(main(server.url)) == EXPECTED


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "close-delimited"])
def test_aiohttp_response(chunked: bool) -> None:
    async def main(url: str) -> list[Event]:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(url) as response:
                return await afirst_three(aiter_events(response))

    with serve(stream_then_stall(chunked)) as server:
        assert asyncio.run(main(server.url)) == EXPECTED


def test_adapter_refuses_a_response_that_is_not_an_event_stream() -> None:
    async def handler(conn: Conn) -> None:
        await conn.respond(404, {"Content-Type": "application/json"})
        await conn.send(b"{}")
        await conn.end()

    with serve(handler) as server:
        with requests.get(server.url, stream=True, timeout=5) as response:
            with pytest.raises(ResponseError) as info:
                list(iter_events(response))
    assert info.value.status == 404


def test_adapter_check_can_be_turned_off() -> None:
    async def handler(conn: Conn) -> None:
        await conn.respond(200, {"Content-Type": "text/plain"})
        await conn.send(b"data: anyway\n\n")
        await conn.end()

    with serve(handler) as server:
        with httpx.stream("GET", server.url, timeout=5) as response:
            assert list(iter_events(response, check=False)) == [Event("anyway")]


def test_adapter_rejects_unknown_response_types() -> None:
    class NotAResponse:
        status_code = 200
        headers = {"content-type": "text/event-stream"}  # noqa: RUF012

    with pytest.raises(TypeError):
        list(iter_events(NotAResponse()))
