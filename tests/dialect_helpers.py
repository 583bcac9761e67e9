"""What the dialect and gateway tests share: running a decoder over chunks, reading an
encoded SSE stream back as JSON events, the error kinds with their HTTP statuses, SDK
clients pointed at a loopback server, and an ASGI client that reads one hub stream through
the gateway's delivery loop (``HubStreamResponse``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import anthropic
import openai
import orjson

from tokenrelay.gateway.hub import StreamHub
from tokenrelay.gateway.reader import Reader
from tokenrelay.gateway.response import RAW_SEND, HubStreamResponse, OpenStreams
from tokenrelay.llm import Delta, ErrorKind
from tokenrelay.llm.base import StreamDecoder
from tokenrelay.sse import Decoder

# Each error kind and the HTTP status a dialect answers it with.
ERROR_STATUSES = [
    (ErrorKind.INVALID_REQUEST, 400),
    (ErrorKind.AUTHENTICATION, 401),
    (ErrorKind.PERMISSION, 403),
    (ErrorKind.NOT_FOUND, 404),
    (ErrorKind.REQUEST_TOO_LARGE, 413),
    (ErrorKind.RATE_LIMIT, 429),
    (ErrorKind.SERVER, 500),
    (ErrorKind.OVERLOADED, 503),
    (ErrorKind.TIMEOUT, 504),
]


def feed_all(decoder: StreamDecoder, chunks: Iterable[bytes]) -> list[Delta]:
    """Every delta ``decoder`` gives for ``chunks``, then for the end of the stream."""
    out: list[Delta] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out + decoder.close()


def named_events(wire: bytes) -> list[tuple[str, dict[str, Any]]]:
    """An encoded SSE stream as (event name, JSON data) pairs, read by the SSE core."""
    decoder = Decoder()
    return [(e.event, json.loads(e.data)) for e in [*decoder.feed(wire), *decoder.close()]]


def openai_client(base_url: str, api_key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)


def anthropic_client(base_url: str, api_key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)


def data_lines(wire: bytes) -> list[object]:
    """The JSON of each ``data:`` line of an encoded stream ("[DONE]" as it is)."""
    return [
        line[6:].decode() if line == b"data: [DONE]" else orjson.loads(line[6:])
        for line in wire.split(b"\n")
        if line.startswith(b"data: ")
    ]


class AsgiClient:
    """The client end of one ASGI streaming response. ``messages``: everything the
    response sent; ``leave()`` delivers ``http.disconnect`` (what is sent after it never
    reaches the client: ``body`` is what it received before); ``leave_after(body)`` is
    asked after each body it receives; ``stall`` makes every body send wait for ever;
    ``pause(body)`` may return a future the send of that body waits for first;
    ``raises``: a send after leaving raises ``OSError``, as uvicorn's may."""

    def __init__(
        self,
        *,
        stall: bool = False,
        leave_after: Callable[[bytes], bool] | None = None,
        pause: Callable[[bytes], asyncio.Future[Any] | None] | None = None,
        raises: bool = False,
    ) -> None:
        self.messages: list[MutableMapping[str, Any]] = []
        self.received: list[bytes] = []
        self.gone = asyncio.Event()
        self.stall = stall
        self.leave_after = leave_after
        self.pause = pause  # a send of this body first waits for what it returns
        self.raises = raises  # a send after leaving raises OSError (as uvicorn's may)

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        body = message.get("body", b"")
        if self.raises and self.gone.is_set():
            raise OSError("the client is gone")
        if self.stall and body:
            await asyncio.Event().wait()
        wait = self.pause(body) if self.pause is not None and body else None
        if wait is not None:
            await wait  # a client reading slower than we write, for a while
        self.messages.append(message)
        if body and not self.gone.is_set():
            self.received.append(body)
            if self.leave_after is not None and self.leave_after(body):
                self.leave()

    def leave(self) -> None:
        self.gone.set()

    @property
    def left(self) -> bool:
        return self.gone.is_set()

    @property
    def body(self) -> bytes:
        return b"".join(self.received)

    @property
    def ended(self) -> bool:
        """The response sent the end of its body."""
        return any(m.get("more_body") is False for m in self.messages)


async def read_stream(
    hub: StreamHub,
    reader: Reader,
    *,
    ping: float = 15.0,
    client: AsgiClient | None = None,
    streams: OpenStreams | None = None,
    raw: bool = True,
) -> bytes:
    """Run the gateway's delivery loop for ``reader`` as an ASGI app until the response
    returns; the body bytes the client received. ``raw``: the server's send is in the
    scope (``RAW_SEND``), as the gateway app puts it there while no middleware was added:
    readers keeping up with a generation are pushed its entries (the path that ships);
    without it, they read the store (an app with middleware)."""
    client = client if client is not None else AsgiClient()
    streams = streams if streams is not None else OpenStreams(ping=ping)
    response = HubStreamResponse(hub, reader, streams)
    scope: dict[str, Any] = {"type": "http"}
    if raw:
        scope[RAW_SEND] = client.send
    await response(scope, client.receive, client.send)
    return client.body
