"""What uvicorn's HTTP layer costs one request, against the least a Python server on
uvloop can do: the time from a client's request to the first bytes of a streamed answer,
a new connection each (as ``bench/gateway.py``'s one-client figure), for

* ``bare``: an ``asyncio.Protocol`` that parses the request with httptools and writes a
  chunked ``text/event-stream`` answer of one event in the callback that completes it;
* ``uvicorn``: the same answer from a three-line ASGI app on uvicorn (httptools, uvloop,
  its defaults otherwise), the server ``tokenrelay serve`` runs on.

The difference is the most an HTTP layer of our own could save per request (it would
still build a scope, run the app in a task and answer through ASGI's messages).

    python bench/http_layer.py [--requests 3000]

Servers on CPU 1, the client on CPU 0, the contestants in turn, 1 ms apart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from typing import Any

from _harness import print_medians, wait_port

PORTS = {"bare": 19151, "uvicorn": 19152}
EVENT = b'data: {"content":"x"}\n\n'
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    b"content-type: application/json\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}"
)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})  # fmt: skip
    await send({"type": "http.response.body", "body": EVENT, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


class Bare(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        import httptools

        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.transport.write(HEAD + b"%x\r\n%b\r\n0\r\n\r\n" % (len(EVENT), EVENT))
        self.transport.close()


async def serve_bare(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Bare, "127.0.0.1", port)
    await server.serve_forever()


def first_bytes_us(port: int) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sent = time.perf_counter()
        sock.sendall(REQUEST)
        got = b""
        while b"content" not in got:
            data = sock.recv(65536)
            if not data:
                raise RuntimeError(f"port {port} closed before the event: {got!r}")
            got += data
        return (time.perf_counter() - sent) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--serve", choices=sorted(PORTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "bare":
        import uvloop

        uvloop.run(serve_bare(PORTS["bare"]))
        return
    if args.serve == "uvicorn":
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=PORTS["uvicorn"], log_level="warning",
                    access_log=False)  # fmt: skip
        return
    command = ["taskset", "-c", "1", sys.executable, __file__, "--serve"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    servers = [subprocess.Popen([*command, name], **quiet) for name in PORTS]
    try:
        for name, port in PORTS.items():
            wait_port(port, name)
        os.sched_setaffinity(0, {0})
        times: dict[str, list[float]] = {name: [] for name in PORTS}
        for i in range(args.requests + 100):
            for name, port in PORTS.items():
                us = first_bytes_us(port)
                if i >= 100:  # warm-up
                    times[name].append(us)
                time.sleep(0.001)
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(10)
    print(f"request to first event, {args.requests} requests each, in turn (µs):\n")
    print_medians(times, "bare", "server", 0)


if __name__ == "__main__":
    main()
