"""HubStreamResponse, the gateway's one-task streaming response, driven as an ASGI app:
the whole stream, pings in the dialect's way while the log waits, a disconnect noticed
while waiting (the reader detaches and the grace period starts), a stalled client dropped,
a server shutdown ending the stream with the end of the body, and a cancellation by the
server staying a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.test_gateway_hub import REQUEST, hub, script, source
from tokenrelay.gateway.reader import _wire
from tokenrelay.gateway.response import HubStreamResponse, OpenStreams
from tokenrelay.llm import ANTHROPIC, DIALECTS, OPENAI_CHAT, Delta
from tokenrelay.llm.codec import Dialect, Frame, to_wire
from tokenrelay.server.shutdown import shutdown_streams
from tokenrelay.sse import Decoder


class Client:
    """An ASGI client: collects what is sent; ``leave()`` sends ``http.disconnect``;
    ``stall`` makes every body send after the first block for ever."""

    def __init__(self, stall: bool = False) -> None:
        self.messages: list[dict[str, Any]] = []
        self.gone = asyncio.Event()
        self.stall = stall

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if self.stall and message.get("body"):
            await asyncio.Event().wait()
        self.messages.append(message)

    def leave(self) -> None:
        self.gone.set()

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages)

    @property
    def ended(self) -> bool:
        return any(m.get("more_body") is False for m in self.messages)


async def respond(
    h: Any, streams: OpenStreams, stream_id: str, client: Client, dialect: Dialect = OPENAI_CHAT
) -> None:
    response = HubStreamResponse(h, h.reader(stream_id, dialect, REQUEST), streams)
    await response({"type": "http"}, client.receive, client.send)


async def slow(pause: float, deltas: list[Delta]) -> AsyncIterator[Delta]:
    await asyncio.sleep(pause)
    for d in deltas:
        yield d


def test_the_whole_stream_and_the_end_of_the_body() -> None:
    async def main() -> None:
        h, streams, client = hub(), OpenStreams(ping=15), Client()
        await h.start("s", {}, REQUEST, source(script(), pause=0.001))
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
        h, streams, client = hub(), OpenStreams(ping=0.04), Client()
        await h.start("s", {}, REQUEST, slow(0.3, script(2)))
        await respond(h, streams, "s", client, dialect)
        ping = b"event: ping\n" if dialect is ANTHROPIC else b": ping\n\n"
        assert client.body.startswith(ping)
        assert 3 <= client.body.count(ping) <= 8  # 0.3 s at one per 0.04-0.05 s
        assert client.ended

    asyncio.run(main())


def test_a_client_leaving_while_the_log_waits_is_noticed_at_once() -> None:
    async def main() -> None:
        h, streams, client = hub(grace=0), OpenStreams(ping=15), Client()
        await h.start("s", {}, REQUEST, slow(30, script(2)))
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
        h, client = hub(grace=0), Client(stall=True)
        streams = OpenStreams(ping=15, send_timeout=0.1)
        await h.start("s", {}, REQUEST, source(script(), pause=0.01))
        await asyncio.wait_for(respond(h, streams, "s", client), 1)
        assert client.messages[0]["type"] == "http.response.start" and not client.ended
        assert len(streams) == 0

    asyncio.run(main())


def test_a_server_shutdown_ends_every_stream_with_the_end_of_the_body() -> None:
    async def main() -> None:
        h, streams = hub(), OpenStreams(ping=15)
        clients = [Client(), Client()]
        for i in range(2):
            await h.start(f"s{i}", {}, REQUEST, slow(30, script(2)))
        tasks = [
            asyncio.ensure_future(respond(h, streams, f"s{i}", c)) for i, c in enumerate(clients)
        ]
        await asyncio.sleep(0.05)
        shutdown_streams()
        await asyncio.wait_for(asyncio.gather(*tasks), 1)
        assert all(c.ended for c in clients)
        # One opened during the shutdown ends at once too.
        late = Client()
        await h.start("late", {}, REQUEST, slow(30, script(2)))
        await asyncio.wait_for(respond(h, streams, "late", late), 1)
        assert late.ended
        await h.aclose()

    asyncio.run(main())


def test_a_cancellation_by_the_server_is_not_swallowed() -> None:
    async def main() -> None:
        h, streams, client = hub(), OpenStreams(ping=0.02), Client()
        await h.start("s", {}, REQUEST, slow(30, script(2)))
        task = asyncio.ensure_future(respond(h, streams, "s", client))
        await asyncio.sleep(0.1)  # a few pings have come and gone
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(streams) == 0
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
    from tokenrelay.gateway.hub import StreamHub

    config = GatewayConfig(models=(ModelRoute("m", (("p", "up"),)),))
    app = create_app(config, providers={"p": Paced([0, 0])})  # type: ignore[dict-item]
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with TestClient(app) as client:
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200 and r.headers["x-stream-id"].startswith("str_")
        assert "t0 " in r.text and r.text.endswith("data: [DONE]\n\n")
        assert client.get("/v1/chat/completions").status_code == 405  # still routed

        async def broken(*args: Any, **kwargs: Any) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(StreamHub, "start", broken)
        with pytest.raises(RuntimeError, match="a bug"):  # raised on for the server to log
            client.post("/v1/chat/completions", json=body)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 500 and r.text == "Internal Server Error"
