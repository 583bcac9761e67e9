"""Floors under any Python gateway on this machine, on uvloop.

``bytes`` (the default): each client connection's request is read (head and
``content-length`` body), sent unchanged to the upstream over a new connection, and
every byte the upstream answers is written to the client as it arrives, in the same
callback: no HTTP parsing beyond the request's length, no SSE, no JSON, no task. A
gateway that reads each token from its upstream and writes it to its client does at
least this much work per token (a read wake-up, a ``recv``, a ``send``).

``codecs``: the same callbacks, and in them what tokenrelay does to a token on its way
(no task, no store, no metrics, no deadlines): the upstream's chunked body parsed
(httptools), its SSE and JSON decoded into deltas (tokenrelay's OpenAI Chat decoder),
each delta packed into a log, encoded again with an event id (the encoder and the
reader's framing) and written, chunked, to the client at the end of the loop's pass.
What is left between this and ``tokenrelay serve`` is the cost of its structure (tasks,
async generators, aiohttp's and uvicorn's per-chunk work, the store, metrics).

``keep`` (a third argument): the upstream connections are kept alive and reused, one
request at a time each, as tokenrelay's pool does (the request goes without its
``connection`` header; in ``bytes`` the answer ends at the chunked body's last chunk).
Without it, each request opens a new upstream connection.

``bench/profile_gateway.py --target floor``, ``bench/cpu_per_token.py`` and
``bench/gateway.py --only ttft --floors`` run them.

    python bench/relay_floor.py PORT UPSTREAM_PORT [bytes|codecs] [keep]
"""

from __future__ import annotations

import asyncio
import sys
from typing import ClassVar

import httptools
import uvloop

from tokenrelay.gateway.reader import _wire
from tokenrelay.llm import OPENAI_CHAT
from tokenrelay.llm.pack import pack

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)


IDLE: list[Upstream | DecodingUpstream] = []
"""``keep``: upstream connections whose last answer has ended, to reuse."""


class Upstream(asyncio.Protocol):
    """``bytes``: the upstream's answer, relayed as it comes."""

    def __init__(self, client: asyncio.Transport, keep: bool = False) -> None:
        self.client = client
        self.keep = keep
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.client.write(data)
        if self.keep and data.endswith(b"0\r\n\r\n"):  # the chunked body's end
            self.client.close()
            IDLE.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if self in IDLE:
            IDLE.remove(self)
        self.client.close()


class DecodingUpstream(asyncio.Protocol):
    """``codecs``: the upstream's answer decoded, logged, encoded and written."""

    due: ClassVar[list[DecodingUpstream]] = []  # to write at the end of this loop pass

    def __init__(self, client: asyncio.Transport, keep: bool = False) -> None:
        self.client = client
        self.keep = keep
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.decoder = OPENAI_CHAT.decoder()
        self.encoder = OPENAI_CHAT.encoder(None)
        self.log: list[bytes] = []
        self.out: list[bytes] = []
        self.started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def reuse(self, client: asyncio.Transport) -> None:
        self.client = client
        self.decoder = OPENAI_CHAT.decoder()
        self.encoder = OPENAI_CHAT.encoder(None)
        self.log, self.out, self.started = [], [], False

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        deltas = self.decoder.feed(body)
        if not deltas:
            return
        log, out = self.log, self.out
        if not out:
            if not DecodingUpstream.due:
                asyncio.get_running_loop().call_soon(DecodingUpstream.flush)
            DecodingUpstream.due.append(self)
        for delta in deltas:
            k = len(log)
            log.append(pack(delta))
            for j, frame in enumerate(self.encoder.encode(delta)):
                out.append(_wire(frame, "sse", f"{k}.{j}"))

    def on_message_complete(self) -> None:
        self.out += [_wire(f, "sse", "") for f in self.encoder.close()]
        self.write()
        self.client.write(b"0\r\n\r\n")
        self.client.close()
        if self.keep:
            IDLE.append(self)

    def write(self) -> None:
        if self.out:
            data = b"".join(self.out)
            self.out = []
            head = b"" if self.started else HEAD
            self.started = True
            self.client.write(b"%b%x\r\n%b\r\n" % (head, len(data), data))

    @classmethod
    def flush(cls) -> None:
        due, cls.due = cls.due, []
        for upstream in due:
            upstream.write()

    def connection_lost(self, exc: Exception | None) -> None:
        if self in IDLE:
            IDLE.remove(self)
        self.client.close()


class Client(asyncio.Protocol):
    def __init__(
        self, upstream_port: int, upstream: type[Upstream | DecodingUpstream], keep: bool
    ) -> None:
        self.upstream_port = upstream_port
        self.upstream_protocol = upstream
        self.keep = keep
        self.buffer: bytes | None = b""
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.buffer is None:
            return
        self.buffer += data
        head, sep, body = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(body) < length:
            return
        request, self.buffer = self.buffer, None
        if self.keep:
            request = (
                b"\r\n".join(
                    line
                    for line in head.split(b"\r\n")
                    if not line.lower().startswith(b"connection:")
                )
                + b"\r\n\r\n"
                + body
            )
            if IDLE:  # in this callback: no task, no connect
                upstream = IDLE.pop()
                assert self.transport is not None and upstream.transport is not None
                if isinstance(upstream, DecodingUpstream):
                    upstream.reuse(self.transport)
                else:
                    upstream.client = self.transport
                self.upstream = upstream.transport
                upstream.transport.write(request)
                return
        asyncio.get_running_loop().create_task(self.relay(request))

    async def relay(self, request: bytes) -> None:
        client = self.transport
        assert client is not None
        loop = asyncio.get_running_loop()
        factory, keep = self.upstream_protocol, self.keep
        upstream, _ = await loop.create_connection(
            lambda: factory(client, keep),
            "127.0.0.1",
            self.upstream_port,
        )
        self.upstream = upstream
        upstream.write(request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and not self.keep:
            self.upstream.close()


async def main(port: int, upstream_port: int, mode: str, keep: bool) -> None:
    loop = asyncio.get_running_loop()
    upstream = DecodingUpstream if mode == "codecs" else Upstream
    server = await loop.create_server(
        lambda: Client(upstream_port, upstream, keep), "127.0.0.1", port, backlog=4096
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = sys.argv[1:]
    mode = args[2] if len(args) > 2 else ""
    uvloop.run(main(int(args[0]), int(args[1]), mode, "keep" in args[3:]))
