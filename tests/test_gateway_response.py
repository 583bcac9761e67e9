"""HubStreamResponse, the gateway's one-task streaming response, driven as an ASGI app:
the whole stream, pings in the dialect's way while the log waits, a disconnect noticed
while waiting (the reader detaches and the grace period starts), a stalled client dropped,
a server shutdown ending the stream with the end of the body, a store error ending it with
the dialect's error event (without an id), and a cancellation by the server staying a
cancellation."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dialect_helpers import AsgiClient, read_stream
from tests.gateway_procs import Proc, gateway_toml, procs_running
from tests.test_gateway_hub import META, REQUEST, SERVED, decoded, hub, script, source
from tokenrelay.gateway.hub import StreamHub
from tokenrelay.gateway.reader import _wire
from tokenrelay.gateway.response import RAW_SEND, HubStreamResponse, OpenStreams
from tokenrelay.llm import ANTHROPIC, DIALECTS, OPENAI_CHAT, Delta, StreamError, TextDelta
from tokenrelay.llm.dialect import Dialect
from tokenrelay.llm.frame import Frame, to_wire
from tokenrelay.llm.model import ErrorKind
from tokenrelay.providers import UpstreamError
from tokenrelay.server.shutdown import shutdown_streams
from tokenrelay.sse import Decoder
from tokenrelay.store.memory import MemoryStore


async def respond(
    h: StreamHub,
    streams: OpenStreams,
    stream_id: str,
    client: AsgiClient,
    dialect: Dialect = OPENAI_CHAT,
) -> bytes:
    reader = h.reader(stream_id, dialect, REQUEST)
    return await read_stream(h, reader, client=client, streams=streams)


async def slow(pause: float, deltas: list[Delta]) -> AsyncIterator[Delta]:
    await asyncio.sleep(pause)
    for d in deltas:
        yield d


async def slow_after(first: list[Delta], pause: float, rest: list[Delta]) -> AsyncIterator[Delta]:
    for d in first:
        yield d
    async for d in slow(pause, rest):
        yield d


def test_the_whole_stream_and_the_end_of_the_body() -> None:
    async def main() -> None:
        h, streams, client = hub(), OpenStreams(ping=15), AsgiClient()
        await h.start("s", META, REQUEST, source(script(), pause=0.001))
        await respond(h, streams, "s", client)
        start = client.messages[0]
        assert start["status"] == 200
        headers = dict(start["headers"])
        assert headers[b"x-stream-id"] == b"s"
        assert headers[b"content-type"].startswith(b"text/event-stream")
        assert client.ended
        events = Decoder().feed(client.body)
        assert events[-1].data == "[DONE]" and all(e.id for e in events)
        assert len(streams) == 0

    asyncio.run(main())


@pytest.mark.parametrize("raw", [True, False])
@pytest.mark.parametrize("pause", [0.0, 0.01])
def test_the_stream_s_end_and_the_body_s_end_go_out_in_one_message(raw: bool, pause: float) -> None:
    # One write for the last deltas, the dialect's end ([DONE]) and the end of the chunked
    # body, whether the reader was pushed the deltas or read them from the store.
    async def main() -> None:
        h, client = hub(), AsgiClient()
        await h.start("s", META, REQUEST, source(script(), pause=pause))
        reader = h.reader("s", OPENAI_CHAT, REQUEST)
        await read_stream(h, reader, client=client, raw=raw)
        bodies = [m for m in client.messages if m["type"] == "http.response.body"]
        last = bodies[-1]
        assert last["more_body"] is False and last["body"].endswith(b"data: [DONE]\n\n")
        assert all(m["body"] and m["more_body"] for m in bodies[:-1])
        events = Decoder().feed(client.body)
        assert events[-1].data == "[DONE]" and all(e.id for e in events)

    asyncio.run(main())


@pytest.mark.parametrize("raw", [True, False])
def test_the_events_the_log_holds_are_encoded_before_the_head_and_sent_right_after(
    raw: bool,
) -> None:
    # A write wakes the client: the head and the first events go out back to back, not
    # the head and then a read of the log (a client woken for the head alone waits).
    async def main() -> None:
        h, client = hub(), AsgiClient()
        deltas = script()
        await h.start("s", META, REQUEST, slow_after(deltas[:3], 0.05, deltas[3:]))
        await asyncio.sleep(0.01)  # three entries in the log, the rest 50 ms later
        reader = h.reader("s", OPENAI_CHAT, REQUEST)
        at_head: list[int] = []
        send = client.send

        async def watching(message: Any) -> None:
            if message["type"] == "http.response.start":
                at_head.append(reader.pos)
            await send(message)

        client.send = watching  # type: ignore[method-assign]
        await read_stream(h, reader, client=client, raw=raw)
        assert at_head == [3]
        first = Decoder().feed(client.messages[1]["body"])
        assert [e.id for e in first] == ["0.0", "1.0", "2.0"]
        events = Decoder().feed(client.body)
        assert events[-1].data == "[DONE]" and all(e.id for e in events)

    asyncio.run(main())


def test_an_open_response_keeps_no_copy_of_what_it_sent() -> None:
    # An idle stream costs what it holds for as long as it is open (~25 KB each): the
    # first events, sent with the head, are not kept by the response's frame after.
    async def main() -> None:
        h, client = hub(), AsgiClient()
        deltas = script()
        await h.start("s", META, REQUEST, slow_after(deltas[:3], 30, deltas[3:]))
        await asyncio.sleep(0.01)
        response = HubStreamResponse(h, h.reader("s", OPENAI_CHAT, REQUEST), OpenStreams(ping=15))
        scope = {"type": "http", RAW_SEND: client.send}
        coroutine = response(scope, client.receive, client.send)
        task = asyncio.ensure_future(coroutine)
        while len(client.messages) < 2:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)  # the response now waits for the next entry
        sent = client.messages[1]["body"]
        assert b"data: " in sent
        kept = [v for v in coroutine.cr_frame.f_locals.values() if isinstance(v, bytes) and v]
        assert kept == []
        client.leave()
        await task

    asyncio.run(main())


@pytest.mark.parametrize("dialect", [OPENAI_CHAT, ANTHROPIC])
def test_pings_while_the_log_waits(dialect: Dialect) -> None:
    async def main() -> None:
        h, streams, client = hub(), OpenStreams(ping=0.04), AsgiClient()
        await h.start("s", META, REQUEST, slow(0.3, script(2)))
        await respond(h, streams, "s", client, dialect)
        ping = b"event: ping\n" if dialect is ANTHROPIC else b": ping\n\n"
        assert client.body.startswith(ping)
        assert 3 <= client.body.count(ping) <= 8  # 0.3 s at one per 0.04-0.05 s
        assert client.ended

    asyncio.run(main())


def test_a_client_leaving_while_the_log_waits_is_noticed_at_once() -> None:
    async def main() -> None:
        h, streams, client = hub(grace=0), OpenStreams(ping=15), AsgiClient()
        await h.start("s", META, REQUEST, slow(30, script(2)))
        task = asyncio.ensure_future(respond(h, streams, "s", client))
        await asyncio.sleep(0.05)
        client.leave()
        await asyncio.wait_for(task, 1)
        assert not client.ended  # nobody to tell
        await asyncio.sleep(0.01)
        assert h.active == 0  # grace 0: the generation was cancelled at once
        assert len(streams) == 0

    asyncio.run(main())


def test_a_stalled_client_is_dropped_after_the_send_timeout() -> None:
    async def main() -> None:
        h, client = hub(grace=0), AsgiClient(stall=True)
        streams = OpenStreams(ping=15, send_timeout=0.1)
        await h.start("s", META, REQUEST, source(script(), pause=0.01))
        await asyncio.wait_for(respond(h, streams, "s", client), 1)
        assert client.messages[0]["type"] == "http.response.start" and not client.ended
        assert len(streams) == 0

    asyncio.run(main())


def test_a_server_shutdown_ends_every_stream_with_the_end_of_the_body() -> None:
    async def main() -> None:
        h, streams = hub(), OpenStreams(ping=15)
        clients = [AsgiClient(), AsgiClient()]
        for i in range(2):
            await h.start(f"s{i}", META, REQUEST, slow(30, script(2)))
        tasks = [
            asyncio.ensure_future(respond(h, streams, f"s{i}", c)) for i, c in enumerate(clients)
        ]
        await asyncio.sleep(0.05)
        shutdown_streams()
        await asyncio.wait_for(asyncio.gather(*tasks), 1)
        assert all(c.ended for c in clients)
        # One opened during the shutdown ends at once too.
        late = AsgiClient()
        await h.start("late", META, REQUEST, slow(30, script(2)))
        await asyncio.wait_for(respond(h, streams, "late", late), 1)
        assert late.ended
        await h.aclose()

    asyncio.run(main())


def test_a_cancellation_by_the_server_is_not_swallowed() -> None:
    async def main() -> None:
        h, streams, client = hub(), OpenStreams(ping=0.02), AsgiClient()
        await h.start("s", META, REQUEST, slow(30, script(2)))
        task = asyncio.ensure_future(respond(h, streams, "s", client))
        await asyncio.sleep(0.1)  # a few pings have come and gone
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(streams) == 0
        await h.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("raw", [True, False], ids=["pushed", "reading"])
@pytest.mark.parametrize("name", SERVED)
def test_a_store_error_while_reading_ends_with_the_dialects_error_event_without_an_id(
    name: str, raw: bool
) -> None:
    async def main() -> None:
        h, streams, client = hub(), OpenStreams(ping=15), AsgiClient()
        dialect = DIALECTS[name]
        deltas = script(3)
        # A reader pushed the entries (keeping up) learns of it at the producer's next
        # append, which fails; one reading the store, at once.
        await h.start("s", META, REQUEST, slow_after(deltas[:3], 0.3 if raw else 30, deltas[3:]))
        reader = h.reader("s", dialect, REQUEST)
        task = asyncio.ensure_future(
            read_stream(h, reader, client=client, streams=streams, raw=raw)
        )
        await asyncio.sleep(0.05)  # the reader has sent the first events and waits
        assert client.body and not task.done()
        # The stream expires under the waiting reader: read_wait raises
        # StreamNotFoundError, a StoreError.
        await h.store.delete("s")
        wire = await asyncio.wait_for(task, 1)
        assert client.ended and len(streams) == 0
        sent = [b for b in wire.split(b"\n\n") if b]
        with_id = [b"\nid: " in b"\n" + block for block in sent]
        # The events of the log, each with its id, then the error event (and the dialect's
        # closing frames) without one: a resume continues after the last real event.
        n = with_id.index(False)
        assert n > 0 and all(with_id[:n]) and not any(with_id[n:])
        *_, error = decoded(dialect, wire)
        assert isinstance(error, StreamError) and "expired" in error.message
        if dialect is OPENAI_CHAT:
            assert wire.endswith(b"\n\n") and sent[-1].startswith(b'data: {"error":')
        await h.aclose()

    asyncio.run(main())


def test_the_readers_fast_wire_encoding_is_byte_identical_to_to_wire() -> None:
    frames = [Frame(b"{}"), Frame(b'{"a":"\xc3\xa9"}', "message_delta"), Frame(b"a\nb", "x")]
    for dialect in DIALECTS.values():
        encoder = dialect.encoder(REQUEST)
        for delta in script():
            frames += encoder.encode(delta)
        frames += encoder.close()
    for frame in frames:
        for framing in ("sse", "ndjson"):
            assert _wire(frame, framing, "12.3") == to_wire([frame], framing, id="12.3")


def test_the_generation_endpoints_direct_path_keeps_starlettes_behaviour(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from starlette.testclient import TestClient

    from tests.test_gateway_route import Paced
    from tokenrelay.gateway import create_app
    from tokenrelay.gateway.config import GatewayConfig, ModelRoute

    config = GatewayConfig(models=(ModelRoute("m", (("p", "up"),)),))
    app = create_app(config, providers={"p": Paced([0, 0])})  # type: ignore[dict-item]
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    # TestClient's Host is "testserver"; without keys the gateway serves loopback names.
    with TestClient(app, base_url="http://localhost") as client:
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200 and r.headers["x-stream-id"].startswith("str_")
        assert "t0 " in r.text and r.text.endswith("data: [DONE]\n\n")
        assert client.get("/v1/chat/completions").status_code == 405  # still routed

        async def broken(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(StreamHub, "start", broken)
        with pytest.raises(RuntimeError, match="a bug"):  # raised on for the server to log
            client.post("/v1/chat/completions", json=body)
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as client:
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 500 and r.text == "Internal Server Error"


# --- the push path: a reader keeping up with a generation running here -------------------------


class CountingStore(MemoryStore):
    """A memory store that counts the reads that wait (``read_wait``), which a reader
    keeping up with a generation running here should not need per entry."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    async def read_wait(
        self, stream_id: str, start: int, timeout: float | None = None
    ) -> tuple[list[bytes], bool]:
        self.waits += 1
        return await super().read_wait(stream_id, start, timeout)


@pytest.mark.parametrize("raw", [True, False], ids=["pushed", "reading"])
def test_a_reader_keeping_up_is_pushed_every_entry_instead_of_reading_the_store(
    raw: bool,
) -> None:
    async def main() -> None:
        store = CountingStore()
        h = StreamHub(store, grace=30, ping=15, ping_frame=lambda d: None)
        deltas = script(40)
        await h.start("s", META, REQUEST, source(deltas, pause=0.002))
        wire = await read_stream(h, h.reader("s", OPENAI_CHAT, REQUEST), raw=raw)
        got = [d for d in decoded(OPENAI_CHAT, wire) if isinstance(d, TextDelta)]
        assert got == [d for d in deltas if isinstance(d, TextDelta)]  # each, in order
        ids = [e.id for e in Decoder().feed(wire)]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("."))))
        if raw:
            # Each wait for the log ends with a pushed run of entries handed back (a
            # send that had to wait, the end): a few, not one per entry.
            assert store.waits <= 3, store.waits
        else:
            assert store.waits >= len(deltas) // 2
        await h.aclose()

    asyncio.run(main())


@pytest.mark.parametrize("name", SERVED)
def test_a_pushed_send_that_must_wait_hands_the_stream_to_the_task_and_loses_nothing(
    name: str,
) -> None:
    """The client reads slower than the upstream writes, now and then: the send that waits
    is finished by the response's task, which reads the backlog from the store (merging
    it) and then follows the pushes again."""

    async def main() -> None:
        h, streams = hub(), OpenStreams(ping=15)
        dialect = DIALECTS[name]
        sends = 0

        def pause(body: bytes) -> asyncio.Future[None] | None:
            nonlocal sends
            sends += 1
            if sends % 4:
                return None
            waited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(0.02, waited.set_result, None)
            return waited

        client = AsgiClient(pause=pause)
        deltas = script(300)
        await h.start("s", META, REQUEST, source(deltas, pause=0.0005))
        wire = await read_stream(h, h.reader("s", dialect, REQUEST), client=client, streams=streams)
        got = decoded(dialect, wire)
        text = "".join(d.text for d in got if isinstance(d, TextDelta))
        assert text == "".join(d.text for d in deltas if isinstance(d, TextDelta))
        assert client.ended and len(streams) == 0
        if dialect.event_ids:
            ids = [tuple(map(int, e.id.split("."))) for e in Decoder().feed(wire) if e.id]
            assert ids == sorted(set(ids))  # increasing: nothing twice
        await h.aclose()

    asyncio.run(main())


def test_a_client_gone_during_a_pushed_send_ends_the_response_and_starts_the_grace() -> None:
    async def main() -> None:
        h, streams = hub(grace=0), OpenStreams(ping=15)
        # Leaves after its third body; its sends then raise OSError (as uvicorn's may).
        bodies = 0

        def leave_after(body: bytes) -> bool:
            nonlocal bodies
            bodies += 1
            return bodies == 3

        client = AsgiClient(leave_after=leave_after, raises=True)
        await h.start("s", META, REQUEST, source(script(1000), pause=0.001))
        await asyncio.wait_for(
            read_stream(h, h.reader("s", OPENAI_CHAT, REQUEST), client=client, streams=streams), 2
        )
        assert not client.ended and len(streams) == 0
        await asyncio.sleep(0.01)
        assert h.active == 0  # grace 0: the generation was cancelled at once

    asyncio.run(main())


async def burn(stop: asyncio.Event) -> None:
    """Keep the loop's thread on the CPU, as a saturated gateway's is, in 3 ms slices."""
    while not stop.is_set():
        until = time.thread_time() + 0.003
        while time.thread_time() < until:
            pass
        await asyncio.sleep(0)


@pytest.mark.parametrize("raw", [True, False], ids=["pushed", "reading"])
@pytest.mark.parametrize("saturated", [False, True])
def test_open_streams_tell_when_the_loop_s_thread_is_saturated(saturated: bool, raw: bool) -> None:
    async def main() -> None:
        heard: list[bool] = []
        h, streams = hub(), OpenStreams(ping=15, on_busy=heard.append)
        stop = asyncio.Event()
        burner = asyncio.ensure_future(burn(stop)) if saturated else None
        await h.start("s", META, REQUEST, source(script(30), pause=0.01))
        await read_stream(h, h.reader("s", OPENAI_CHAT, REQUEST), streams=streams, raw=raw)
        assert heard == ([True] if saturated else [])
        stop.set()
        if burner is not None:
            await burner
            await h.start("t", META, REQUEST, source(script(10), pause=0.01))
            await read_stream(h, h.reader("t", OPENAI_CHAT, REQUEST), streams=streams, raw=raw)
            assert heard == [True, False]  # and told when it is not any more
        await h.aclose()

    asyncio.run(main())


def test_a_gateway_whose_core_is_saturated_says_so_in_its_log_and_metrics(
    tmp_path: Path,
) -> None:
    # 160 streams of the in-process fake model at 1 ms a token: more than a core relays.
    config = gateway_toml(
        gateway={}, provider={"name": "m", "kind": "mock", "options": {"token_ms": 1}},
        models={"lorem": "m:lorem"},
    )  # fmt: skip

    def request(port: int, tokens: int) -> bytes:
        body = json.dumps({"model": "lorem", "stream": True, "max_tokens": tokens,
                           "messages": [{"role": "user", "content": "x"}]}).encode()  # fmt: skip
        return (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%b" % (port, len(body), body)
        )

    async def stream(port: int, tokens: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request(port, tokens))
        size = 0
        while data := await reader.read(1 << 16):  # read whole, cheaply: the gateway limits
            size += len(data)
        writer.close()
        return size

    async def gauge(client: httpx.AsyncClient, url: str) -> str:
        metrics = (await client.get(f"{url}/metrics")).text
        return next(line for line in metrics.splitlines()
                    if line.startswith("tokenrelay_saturated "))  # fmt: skip

    async def main(gateway: Proc) -> list[str]:
        seen = []
        async with httpx.AsyncClient(timeout=30) as client:
            seen.append(await gauge(client, gateway.url))
            load = asyncio.gather(*(stream(gateway.port, 2000) for _ in range(160)))
            while not load.done():
                value = await gauge(client, gateway.url)
                if value != seen[-1]:
                    seen.append(value)
                await asyncio.sleep(0.1)
            assert all(size > 2000 for size in await load)
            await stream(gateway.port, 5)  # an idle core's writes: no longer saturated
            if (value := await gauge(client, gateway.url)) != seen[-1]:
                seen.append(value)
        return seen

    with procs_running(tmp_path) as procs:
        gateway = procs.gateway("gw", config)
        seen = asyncio.run(main(gateway))
        log = gateway.log()
    # (Saturation may end as the load thins out, before the last stream; on a busy host
    # it may also come and go more than once: what counts is that it came, and went.)
    assert seen[0] == seen[-1] == "tokenrelay_saturated 0.0", (seen, log[-2000:])
    assert "tokenrelay_saturated 1.0" in seen, (seen, log[-2000:])
    assert "core is saturated: upstream reads paced (75 ms)" in log
    assert "no longer saturated" in log


async def armed(
    h: StreamHub, client: AsgiClient, deltas: AsyncIterator[Delta], streams: OpenStreams
) -> tuple[HubStreamResponse, asyncio.Future[Any]]:
    """What the generation handler does before the first delta: the stream started, its
    response made and armed with the server's own send (``app``'s ``start``)."""
    first = await h.start("s", META, REQUEST, deltas)
    reader = h.reader("s", OPENAI_CHAT, REQUEST, attached=False)
    response = HubStreamResponse(h, reader, streams)
    response.arm(first, client.send)
    return response, first


async def answer(h: StreamHub, response: HubStreamResponse, client: AsgiClient) -> None:
    """What the handler does once ``first`` resolved with a delta, and the server then."""
    response.disarm()
    h.attach("s")
    await response({"type": "http", RAW_SEND: client.send}, client.receive, client.send)


@pytest.mark.parametrize("pause", [0.0, 0.005], ids=["one-read", "paced"])
def test_an_armed_response_writes_the_head_and_first_events_before_the_handler_wakes(
    pause: float,
) -> None:
    # The first token goes out from the producer's step, at the end of the pass of the
    # loop that appended it: not a pass later, after the handler's wake and its response.
    async def main() -> None:
        h, client, streams = hub(), AsgiClient(), OpenStreams(ping=15)
        deltas = script(5)
        response, first = await armed(h, client, source(deltas, pause=pause), streams)
        await first
        assert isinstance(first.result(), Delta)
        # The handler is awake: the head and the first events are already out.
        assert client.messages[0]["type"] == "http.response.start"
        assert client.messages[0]["status"] == 200
        assert client.messages[1]["type"] == "http.response.body" and client.body
        await answer(h, response, client)
        heads = [m for m in client.messages if m["type"] == "http.response.start"]
        assert len(heads) == 1 and client.ended
        ids = [e.id for e in Decoder().feed(client.body)]
        assert ids == sorted(set(ids), key=lambda i: tuple(map(int, i.split("."))))  # once each
        got = decoded(OPENAI_CHAT, client.body)  # (a backlog of 8 or more merges its text)
        text = "".join(d.text for d in got if isinstance(d, TextDelta))
        assert text == "".join(d.text for d in deltas if isinstance(d, TextDelta))
        assert len(streams) == 0
        await h.aclose()

    asyncio.run(main())


def test_an_armed_response_leaves_an_upstream_error_to_the_handler() -> None:
    # An upstream that fails before its first delta: the handler answers with the
    # error's status; the armed response has sent nothing and follows nothing.
    async def failing() -> AsyncIterator[Delta]:
        await asyncio.sleep(0.005)
        raise UpstreamError(StreamError(ErrorKind.RATE_LIMIT, "slow down", 429), retryable=False)
        yield  # an async generator

    async def main() -> None:
        h, client, streams = hub(), AsgiClient(), OpenStreams(ping=15)
        response, first = await armed(h, client, failing(), streams)
        await first
        assert isinstance(first.result(), UpstreamError)
        response.disarm()
        assert client.messages == []
        await h.finished("s")
        await h.aclose()

    asyncio.run(main())


def test_an_armed_response_the_handler_wakes_without_sends_its_head_itself() -> None:
    # The ping interval passed before the first delta (the handler's timer cancels
    # ``first``): the handler disarms the response and it sends its head as usual.
    async def main() -> None:
        h, client, streams = hub(), AsgiClient(), OpenStreams(ping=15)
        deltas = script(3)
        response, first = await armed(h, client, slow(0.05, deltas), streams)
        first.cancel()
        await asyncio.sleep(0.1)  # the first delta comes after: not pushed
        assert client.messages == []
        await answer(h, response, client)
        assert [m["type"] for m in client.messages].count("http.response.start") == 1
        got = decoded(OPENAI_CHAT, client.body)
        text = "".join(d.text for d in got if isinstance(d, TextDelta))
        assert text == "".join(d.text for d in deltas if isinstance(d, TextDelta))
        await h.aclose()

    asyncio.run(main())
