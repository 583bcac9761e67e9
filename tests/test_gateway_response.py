"""HubStreamResponse, the gateway's one-task streaming response, driven as an ASGI app:
the whole stream, pings in the dialect's way while the log waits, a disconnect noticed
while waiting (the reader detaches and the grace period starts), a stalled client dropped,
a server shutdown ending the stream with the end of the body, a store error ending it with
the dialect's error event (without an id), and a cancellation by the server staying a
cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.dialect_helpers import AsgiClient, read_stream
from tests.test_gateway_hub import META, REQUEST, SERVED, decoded, hub, script, source
from tokenrelay.gateway.hub import StreamHub
from tokenrelay.gateway.reader import _wire
from tokenrelay.gateway.response import OpenStreams
from tokenrelay.llm import ANTHROPIC, DIALECTS, OPENAI_CHAT, Delta, StreamError
from tokenrelay.llm.dialect import Dialect
from tokenrelay.llm.frame import Frame, to_wire
from tokenrelay.server.shutdown import shutdown_streams
from tokenrelay.sse import Decoder


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


@pytest.mark.parametrize("name", SERVED)
def test_a_store_error_while_reading_ends_with_the_dialects_error_event_without_an_id(
    name: str,
) -> None:
    async def main() -> None:
        h, streams, client = hub(), OpenStreams(ping=15), AsgiClient()
        dialect = DIALECTS[name]
        deltas = script(3)
        await h.start("s", META, REQUEST, slow_after(deltas[:3], 30, deltas[3:]))
        task = asyncio.ensure_future(respond(h, streams, "s", client, dialect))
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
