"""``tokenrelay chat``: a conversation with any tokenrelay gateway, in the terminal.

``ChatSession`` is the reusable part (no terminal): it keeps the conversation, sends each
turn to ``POST /v1/chat/completions`` as a stream, and when the connection drops before
the stream's end it resumes from ``GET /v1/streams/{id}`` with the last event id it saw —
the same generation, continued exactly where it broke, never a second generation. The
command renders the answer live with rich (Markdown, re-rendered as tokens arrive).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .client import Timeout, connect
from .errors import TransportError
from .llm import OPENAI_CHAT, Accumulator, Completion, Delta, ErrorKind, StreamError, TextDelta
from .sse import NO_RECONNECT

__all__ = ["ChatSession", "Reply"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: the completion, seconds to its first token, and how many times the
    stream was resumed after a drop."""

    completion: Completion
    ttft: float | None
    resumes: int

    @property
    def text(self) -> str:
        return self.completion.choices[0].text if self.completion.choices else ""


class ChatSession:
    """A conversation with a gateway at ``base_url`` (``http://host:port``)."""

    def __init__(
        self,
        base_url: str,
        model: str = "",
        *,
        api_key: str = "",
        client: httpx.Client | None = None,
        max_resumes: int = 5,
        timeout: Timeout | None = None,
        on_resume: Callable[[int, BaseException], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.messages: list[dict[str, Any]] = []
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client()
        self._owns_client = client is None
        self.max_resumes = max_resumes
        self.timeout = timeout or Timeout(connect=10, idle=120)
        self.on_resume = on_resume

    def models(self) -> list[str]:
        response = self._client.get(f"{self.base_url}/v1/models", headers=self._headers)
        response.raise_for_status()
        return [m["id"] for m in response.json()["data"]]

    def ask(self, text: str, on_delta: Callable[[Delta], None] | None = None) -> Reply:
        """Send ``text`` as the next user turn and stream the answer (``on_delta`` sees
        each delta as it arrives). The answer joins the conversation."""
        if not self.model:
            names = self.models()
            if not names:
                raise RuntimeError("the gateway serves no models")
            self.model = names[0]
        self.messages.append({"role": "user", "content": text})
        body = {
            "model": self.model,
            "messages": self.messages,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        try:
            reply = self._stream(body, on_delta)
        except BaseException:
            self.messages.pop()
            raise
        error = reply.completion.error
        if error is None:
            self.messages.append({"role": "assistant", "content": reply.text})
        return reply

    def _stream(self, body: Mapping[str, Any], on_delta: Callable[[Delta], None] | None) -> Reply:
        decoder = OPENAI_CHAT.decoder()
        accumulator = Accumulator()
        started = time.perf_counter()
        ttft: float | None = None
        stream_id = ""
        last_id: str | None = None
        resumes = 0
        while True:
            if stream_id:
                url, method, json = f"{self.base_url}/v1/streams/{stream_id}", "GET", None
            else:
                url, method, json = f"{self.base_url}/v1/chat/completions", "POST", body
            opened: list[httpx.Response] = []

            def on_chunk(_: bytes, opened: list[httpx.Response] = opened) -> None:
                # The first body bytes: the response (and its x-stream-id) is known, even
                # if the connection breaks before a whole event arrives.
                if not opened and events.response is not None:
                    opened.append(events.response)

            try:
                with connect(
                    url,
                    method=method,
                    json=json,
                    headers=self._headers,
                    last_event_id=last_id,
                    client=self._client,
                    timeout=self.timeout,
                    reconnect=NO_RECONNECT,
                    on_chunk=on_chunk,
                ) as events:
                    try:
                        for event in events:
                            last_id = event.id or last_id
                            for delta in decoder.feed_event(event):
                                if ttft is None and isinstance(delta, TextDelta):
                                    ttft = time.perf_counter() - started
                                accumulator.add(delta)
                                if on_delta is not None:
                                    on_delta(delta)
                    finally:
                        if opened and not stream_id:
                            stream_id = opened[0].headers.get("x-stream-id", "")
                    if decoder.complete:
                        return Reply(accumulator.completion(), ttft, resumes)
                    raise TransportError("the stream ended before its end")
            except TransportError as exc:
                if not stream_id or resumes >= self.max_resumes:
                    if not stream_id:
                        raise
                    error = StreamError(ErrorKind.SERVER, f"gave up after {resumes} resumes: {exc}")
                    accumulator.add(error)
                    return Reply(accumulator.completion(), ttft, resumes)
                resumes += 1
                if self.on_resume is not None:
                    self.on_resume(resumes, exc)
                time.sleep(min(0.25 * 2 ** (resumes - 1), 4.0))

    def close(self) -> None:
        if self._owns_client:
            self._client.close()
