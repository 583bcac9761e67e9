"""Every "client" vector of the shared conformance suite, over real sockets, sync and async.

The server answers request i with connection i of the vector, and 204 (stop) after the
last one, so an unexpected reconnect shows up as an extra request.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tokenrelay.errors import ResponseError
from tokenrelay.sse import ReconnectPolicy

from .conftest import load_vectors
from .sse_server import Conn, serve
from .test_client import Read, read_async, read_sync

VECTORS = load_vectors("client")
REDIRECT_TARGET = "/eventsource/resources/message.py"
# The vectors' reconnection times (2 ms, 200 ms) apply; without a retry field, be quick.
POLICY = ReconnectPolicy(delay=0.01, max_attempts=5)


class Stop(Exception):
    """Raised from on_reconnect to end a test before a long wait."""


def fill(body: str, conn: Conn) -> str:
    # The vectors echo request headers with wpt's template syntax: {{headers[name]}}.
    return re.sub(r"\{\{headers\[([^\]]+)\]\}\}", lambda m: conn.request.header(m[1]) or "", body)


def handler_for(case: dict[str, Any]) -> Any:
    connections = case["connections"]

    async def handler(conn: Conn) -> None:
        if conn.request.path == REDIRECT_TARGET:
            await conn.respond(200)
            await conn.send(b"data: data\n\n")
            return await conn.end()
        if conn.index >= len(connections) or "response" not in connections[conn.index]:
            await conn.respond(204, chunked=False)
            return await conn.end()
        response = connections[conn.index]["response"]
        await conn.respond(response["status"], dict(response.get("headers", {})))
        await conn.send(fill(response.get("body", ""), conn))
        await conn.end()

    return handler


def cases() -> list[Any]:
    out = []
    for case in VECTORS:
        if case["name"] == "request-redirect":
            # "each status is a separate test"
            for conn in case["connections"]:
                status = conn["response"]["status"]
                out.append(pytest.param({**case, "connections": [conn]}, id=f"redirect {status}"))
        else:
            out.append(pytest.param(case, id=case["name"]))
    return out


@pytest.mark.parametrize("case", cases())
@pytest.mark.parametrize("read", [read_sync, read_async], ids=["sync", "async"])
def test_client_vector(case: dict[str, Any], read: Read) -> None:
    expected = case["expected"]
    options: dict[str, Any] = {"reconnect": POLICY}
    delays: list[float] = []
    if "reconnect_delay_ms" in expected:

        def stop_before_waiting(attempt: int, delay: float, error: BaseException | None) -> None:
            delays.append(delay)
            raise Stop

        options["on_reconnect"] = stop_before_waiting

    with serve(handler_for(case)) as server:
        out = read(server.url + "/stream", **options)
    requests = [r for r in server.requests if r.path != REDIRECT_TARGET]

    if "events" in expected:
        got = [{"type": e.event, "data": e.data, "id": e.id} for e in out.events]
        assert got == expected["events"]
    if expected.get("error") and not expected.get("open"):
        status = case["connections"][0]["response"]["status"]
        if status == 204:
            # Deliberate: 204 means "stop" and ends the iteration quietly (README).
            assert out.error is None
        else:
            assert isinstance(out.error, ResponseError)
        assert len(requests) == len(case["connections"])  # no reconnect
    if expected.get("open"):
        assert out.error is None
        assert out.data  # the stream was read
    if expected.get("error_events_between") or "error_ready_states" in expected:
        assert len(out.reconnects) >= 1
    if "error_ready_states" in expected:
        # Two reconnects (CONNECTING), then 204 closes for good (CLOSED): three requests.
        assert expected["error_ready_states"].count("CONNECTING") == len(out.reconnects)
        assert len(requests) == 3 and out.error is None
    if "reconnect_delay_ms" in expected:
        assert isinstance(out.error, Stop)
        assert delays == [expected["reconnect_delay_ms"] / 1000]
    for conn, request in zip(case["connections"], requests, strict=False):
        for name in conn.get("request_headers_expected_absent", []):
            assert name.lower() not in request.headers
        for name, value in conn.get("request_headers_expected", {}).items():
            raw = request.headers[name.lower()]
            if "(sent as UTF-8 bytes" in value:
                hex_bytes = value.split("bytes ")[1].rstrip(")").replace(" ", "")
                assert raw == bytes.fromhex(hex_bytes)
            else:
                assert raw == value.encode()


def test_every_client_vector_is_collected() -> None:
    assert len(VECTORS) >= 19
