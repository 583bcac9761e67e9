"""connect() and aconnect() against a real loopback server that injects faults.

Every scenario runs twice, through the sync and the async driver.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tokenrelay.client import Timeout, aconnect, connect
from tokenrelay.errors import (
    ConnectError,
    IdleTimeoutError,
    ReadError,
    ReconnectError,
    ResponseError,
)
from tokenrelay.sse import Event, ReconnectPolicy, encode

from .sse_server import Conn, ScriptedServer, serve

FAST = ReconnectPolicy(delay=0.01, max_delay=0.05, max_attempts=20)
RUNAWAY = 500  # more events than any scenario sends: the client is replaying or looping


class RunawayStream(AssertionError):
    pass


@dataclass
class Outcome:
    events: list[Event] = field(default_factory=list)
    error: BaseException | None = None
    reconnects: list[tuple[int, float, BaseException | None]] = field(default_factory=list)

    @property
    def data(self) -> list[str]:
        return [e.data for e in self.events]


Read = Callable[..., Outcome]


def recorder(out: Outcome, options: dict[str, Any]) -> Callable[..., None]:
    """An on_reconnect that records, then calls the test's own one if it gave one."""
    also = options.pop("on_reconnect", None)

    def on_reconnect(attempt: int, delay: float, error: BaseException | None) -> None:
        out.reconnects.append((attempt, delay, error))
        if also is not None:
            also(attempt, delay, error)

    return on_reconnect


def read_sync(url: str, **options: Any) -> Outcome:
    out = Outcome()
    options.setdefault("reconnect", FAST)
    on_reconnect = recorder(out, options)
    try:
        with connect(url, on_reconnect=on_reconnect, **options) as events:
            for event in events:
                out.events.append(event)
                if len(out.events) > RUNAWAY:
                    raise RunawayStream(out.data[-3:])
    except Exception as exc:
        out.error = exc
    return out


def read_async(url: str, **options: Any) -> Outcome:
    out = Outcome()
    options.setdefault("reconnect", FAST)

    on_reconnect = recorder(out, options)

    async def main() -> None:
        async with aconnect(url, on_reconnect=on_reconnect, **options) as events:
            async for event in events:
                out.events.append(event)
                if len(out.events) > RUNAWAY:
                    raise RunawayStream(out.data[-3:])

    try:
        asyncio.run(main())
    except Exception as exc:
        out.error = exc
    return out


@pytest.fixture(params=["sync", "async"])
def read(request: pytest.FixtureRequest) -> Read:
    return read_sync if request.param == "sync" else read_async


def log_server(total: int, faults: dict[int, tuple[int, str]] | None = None) -> Any:
    """Events 1..total with ids, resumed after Last-Event-ID; 204 once all were sent.

    ``faults[i] = (k, how)``: connection i sends k whole events, then fails: "drop"
    (abruptly, between events), "mid-event" (after the id line of the next event),
    "mid-line" (inside its data line), "end" (ends the body cleanly), "stall".
    """
    faults = faults or {}

    async def handler(conn: Conn) -> None:
        last = int(conn.request.header("last-event-id") or 0)
        if last >= total:
            await conn.respond(204, chunked=False)
            return await conn.end()
        await conn.respond()
        sent, how = faults.get(conn.index, (total, "end"))
        for n in range(last + 1, total + 1):
            event = encode(f"event {n}", id=str(n))
            if n == last + 1 + sent:
                cut = {"mid-event": event.index(b"\n") + 1, "mid-line": len(event) - 4}
                if how in cut:
                    await conn.send(event[: cut[how]])
                break
            await conn.send(event)
        if how == "stall":
            await conn.stall()
        elif how == "end" or (n == total and sent >= total - last):
            await conn.end()
        else:
            conn.drop()

    return handler


def expect_all(out: Outcome, total: int) -> None:
    assert out.error is None, out.error
    assert out.data == [f"event {n}" for n in range(1, total + 1)]
    assert [e.id for e in out.events] == [str(n) for n in range(1, total + 1)]


def test_resume_after_drops_delivers_every_event_exactly_once(read: Read) -> None:
    faults = {0: (3, "drop"), 1: (2, "mid-event"), 2: (4, "mid-line"), 3: (1, "end")}
    with serve(log_server(20, faults)) as server:
        out = read(server.url)
    expect_all(out, 20)
    sent_ids = [r.header("last-event-id") for r in server.requests]
    assert sent_ids == [None, "3", "5", "9", "10", "20"]
    assert isinstance(out.reconnects[0][2], ReadError)  # dropped: the body was cut short
    assert out.reconnects[3][2] is None  # ended cleanly: still reconnects


def test_stalled_connection_trips_the_idle_watchdog_and_resumes(read: Read) -> None:
    with serve(log_server(6, {0: (2, "stall")})) as server:
        started = time.monotonic()
        out = read(server.url, timeout=Timeout(connect=5, idle=0.3))
        elapsed = time.monotonic() - started
    expect_all(out, 6)
    assert isinstance(out.reconnects[0][2], IdleTimeoutError)
    assert 0.3 <= elapsed < 3


def test_comments_count_as_life_for_the_watchdog(read: Read) -> None:
    async def handler(conn: Conn) -> None:
        if conn.index:
            await conn.respond(204, chunked=False)
            return await conn.end()
        await conn.respond()
        await conn.send(encode("first"))
        for _ in range(8):
            await asyncio.sleep(0.1)
            await conn.send(b": ping\n\n")
        await conn.send(encode("second"))
        await conn.end()

    with serve(handler) as server:
        out = read(server.url, timeout=Timeout(connect=5, idle=0.35))
    assert out.data == ["first", "second"]
    assert [r[2] for r in out.reconnects] == [None]  # only the clean end, never the watchdog


def test_204_ends_the_stream_quietly_without_reconnecting(read: Read) -> None:
    async def handler(conn: Conn) -> None:
        await conn.respond(204, chunked=False)
        await conn.end()

    with serve(handler) as server:
        out = read(server.url)
    assert (out.events, out.error, len(server.requests)) == ([], None, 1)


def test_500_raises_response_error_with_status_type_and_body_and_never_retries(
    read: Read,
) -> None:
    async def handler(conn: Conn) -> None:
        await conn.respond(500, {"Content-Type": "application/json"})
        await conn.send(b'{"error": {"message": "upstream exploded"}}')
        await conn.end()

    with serve(handler) as server:
        out = read(server.url)
    assert isinstance(out.error, ResponseError)
    assert out.error.status == 500
    assert out.error.content_type == "application/json"
    assert out.error.body.startswith(b'{"error"')
    assert "upstream exploded" in str(out.error)
    assert len(server.requests) == 1


def test_wrong_content_type_raises_response_error_and_never_retries(read: Read) -> None:
    async def handler(conn: Conn) -> None:
        await conn.respond(200, {"Content-Type": "text/html; charset=utf-8"})
        await conn.send(b"<html>login page</html>")
        await conn.end()

    with serve(handler) as server:
        out = read(server.url)
    assert isinstance(out.error, ResponseError)
    assert (out.error.status, out.error.content_type) == (200, "text/html; charset=utf-8")
    assert b"login page" in out.error.body
    assert len(server.requests) == 1


def test_server_retry_field_sets_the_reconnection_delay(read: Read) -> None:
    async def handler(conn: Conn) -> None:
        if conn.index == 2:
            await conn.respond(204, chunked=False)
            return await conn.end()
        await conn.respond()
        retry = (150, 40)[conn.index]
        await conn.send(encode(f"c{conn.index}", retry=retry))
        await conn.end()

    with serve(handler) as server:
        started = time.monotonic()
        out = read(server.url, reconnect=ReconnectPolicy(delay=5.0))
        elapsed = time.monotonic() - started
    assert out.data == ["c0", "c1"]
    assert [r[1] for r in out.reconnects] == [0.15, 0.04]
    assert 0.19 <= elapsed < 2  # the default 5 s was replaced, and really waited


def test_reconnects_go_to_the_original_url_after_a_redirect(read: Read) -> None:
    stream = log_server(6, {0: (2, "drop"), 1: (2, "drop")})

    async def handler(conn: Conn) -> None:
        if conn.request.path == "/start":
            await conn.respond(307, {"Location": "/stream", "Content-Length": "0"}, chunked=False)
            return await conn.end()
        await stream(conn)

    with serve(handler) as server:
        out = read(server.url + "/start")
    assert out.data == [f"event {n}" for n in range(1, 7)]
    assert [r.path for r in server.requests][:6] == ["/start", "/stream"] * 3


def test_resume_across_a_server_restart_on_the_same_port(read: Read) -> None:
    sent = threading.Event()
    inner = log_server(10, {0: (4, "stall")})

    async def handler(conn: Conn) -> None:
        if conn.index == 0:
            conn.writer.transport.get_extra_info("socket")  # (real socket, real server)
            sent_later = asyncio.get_running_loop().call_later(0.1, sent.set)
            try:
                await inner(conn)
            finally:
                sent_later.cancel()
            return
        await inner(conn)

    with serve(handler) as server:

        def restart() -> None:
            sent.wait(10)
            server.stop()  # listening socket and the open connection go away
            time.sleep(0.3)  # refused connections meanwhile
            server.start()  # same port

        thread = threading.Thread(target=restart)
        thread.start()
        out = read(server.url, timeout=Timeout(connect=2, idle=10))
        thread.join()
    expect_all(out, 10)
    errors = [type(r[2]) for r in out.reconnects]
    assert ReadError in errors and ConnectError in errors


def test_post_stream_resends_method_body_and_last_event_id(read: Read) -> None:
    with serve(log_server(5, {0: (2, "drop")})) as server:
        out = read(server.url, method="POST", json={"prompt": "hi"}, headers={"X-Key": "k"})
    expect_all(out, 5)
    assert {r.method for r in server.requests} == {"POST"}
    assert {r.body for r in server.requests} == {b'{"prompt":"hi"}'}
    assert [r.header("x-key") for r in server.requests] == ["k"] * len(server.requests)
    assert server.requests[1].header("last-event-id") == "2"


def test_protocol_headers_are_sent(read: Read) -> None:
    with serve(log_server(1)) as server:
        read(server.url, last_event_id="0")
    first = server.requests[0]
    assert first.header("accept") == "text/event-stream"
    assert first.header("cache-control") == "no-cache"
    assert first.header("last-event-id") == "0"


def test_one_shot_stream_raises_when_the_connection_drops(read: Read) -> None:
    with serve(log_server(5, {0: (2, "drop")})) as server:
        out = read(server.url, reconnect=False)
    assert out.data == ["event 1", "event 2"]
    assert isinstance(out.error, ReadError)
    assert len(server.requests) == 1


def test_one_shot_stream_ends_quietly_when_the_body_ends(read: Read) -> None:
    with serve(log_server(3)) as server:
        out = read(server.url, reconnect=False)
    expect_all(out, 3)
    assert len(server.requests) == 1


def test_gives_up_after_max_attempts_with_the_last_error_as_cause(read: Read) -> None:
    server = ScriptedServer(log_server(1))
    server.start()
    url = server.url
    server.close()  # nothing listens there now
    policy = ReconnectPolicy(delay=0.01, max_delay=0.02, max_attempts=3)
    out = read(url, reconnect=policy)
    assert isinstance(out.error, ReconnectError)
    assert out.error.attempts == 3
    assert isinstance(out.error.__cause__, ConnectError)
    assert len(out.reconnects) == 3


def test_backoff_grows_while_attempts_deliver_nothing(read: Read) -> None:
    async def handler(conn: Conn) -> None:
        await conn.respond()
        await conn.end()  # accepted, but no event: a failure for the backoff

    policy = ReconnectPolicy(delay=0.01, factor=2, max_delay=0.05, jitter=0, max_attempts=5)
    with serve(handler) as server:
        out = read(server.url, reconnect=policy)
    assert isinstance(out.error, ReconnectError)
    assert [r[1] for r in out.reconnects] == [0.01, 0.02, 0.04, 0.05, 0.05]


def test_stop_on_done_ends_without_delivering_the_sentinel(read: Read) -> None:
    async def handler(conn: Conn) -> None:
        await conn.respond()
        for part in ["Hel", "lo", "[DONE]", "after"]:
            await conn.send(encode(part))
        await conn.stall()

    with serve(handler) as server:
        out = read(server.url, stop_on="[DONE]")
    assert (out.data, out.error, len(server.requests)) == (["Hel", "lo"], None, 1)


def test_event_json_parses_llm_chunks(read: Read) -> None:
    async def handler(conn: Conn) -> None:
        await conn.respond()
        await conn.send(encode('{"choices": [{"delta": {"content": "hi"}}]}'))
        await conn.send(encode("[DONE]"))
        await conn.end()

    with serve(handler) as server:
        out = read(server.url, stop_on=lambda e: e.data == "[DONE]")
    assert out.events[0].json()["choices"][0]["delta"]["content"] == "hi"


def test_callers_client_is_used_and_left_open() -> None:
    with serve(log_server(2)) as server, httpx.Client() as client:
        with connect(server.url, client=client, reconnect=False) as events:
            assert [e.data for e in events] == ["event 1", "event 2"]
        assert not client.is_closed


def test_callers_async_client_is_used_and_left_open() -> None:
    async def main(url: str) -> None:
        async with httpx.AsyncClient() as client:
            async with aconnect(url, client=client, reconnect=False) as events:
                assert [e.data async for e in events] == ["event 1", "event 2"]
            assert not client.is_closed

    with serve(log_server(2)) as server:
        asyncio.run(main(server.url))


def test_breaking_out_early_closes_the_connection() -> None:
    closed = threading.Event()

    async def handler(conn: Conn) -> None:
        await conn.respond()
        try:
            for n in range(1000):
                await conn.send(encode(str(n)))
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    with serve(handler) as server:
        with connect(server.url) as events:
            for event in events:
                if event.data == "2":
                    break
        assert closed.wait(3)
