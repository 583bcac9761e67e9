"""The floor under any Python gateway on this machine: a byte relay on uvloop.

Each client connection's request is read (head and ``content-length`` body), sent
unchanged to the upstream over a new connection, and every byte the upstream answers is
written to the client as it arrives, in the same callback: no HTTP parsing beyond the
request's length, no SSE, no JSON, no task. A gateway that reads each token from its
upstream and writes it to its client does at least this much work per token (a read
wake-up, a ``recv``, a ``send``), so ``bench/profile_gateway.py --target floor`` shows how
much of the gateway's CPU per token is left to take away in Python.

    python bench/relay_floor.py PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop


class Upstream(asyncio.Protocol):
    def __init__(self, client: asyncio.Transport) -> None:
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class Client(asyncio.Protocol):
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.upstream is not None or self.buffer is None:
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
        request, self.buffer = self.buffer, None  # type: ignore[assignment]
        asyncio.get_running_loop().create_task(self.relay(request))

    async def relay(self, request: bytes) -> None:
        client = self.transport
        assert client is not None
        loop = asyncio.get_running_loop()
        upstream, _ = await loop.create_connection(
            lambda: Upstream(client), "127.0.0.1", self.upstream_port
        )
        self.upstream = upstream
        upstream.write(request)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def main(port: int, upstream_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Client(upstream_port), "127.0.0.1", port, backlog=4096
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
