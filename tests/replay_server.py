"""A loopback HTTP server that answers with bytes a test chose: the official SDKs read
our encoders' output through it exactly as they would read a provider's response.

    with replay_server() as server:
        server.respond(body, content_type="text/event-stream")
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
        ...
        server.requests[-1]  # (method, path, headers, body) the SDK sent
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.asgi_servers import run_server


@dataclass
class Reply:
    body: bytes
    status: int = 200
    content_type: str = "text/event-stream; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ReplayServer:
    url: str = ""
    replies: list[Reply] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(
        self,
        body: bytes,
        status: int = 200,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue the reply for the next request (replies are used once, in order)."""
        ctype = content_type or (
            "text/event-stream; charset=utf-8" if status == 200 else "application/json"
        )
        with self.lock:
            self.replies.append(Reply(body, status, ctype, headers or {}))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        with self.lock:
            self.requests.append((scope["method"], scope["path"], headers, body))
            reply = self.replies.pop(0) if self.replies else Reply(b"no reply queued", 599)
        raw_headers = [(b"content-type", reply.content_type.encode())]
        raw_headers += [(k.encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": reply.body})


@contextlib.contextmanager
def replay_server() -> Iterator[ReplayServer]:
    server = ReplayServer()
    with run_server(server) as url:
        server.url = url
        yield server
