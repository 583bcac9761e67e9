"""The ``Dialect`` protocol: what every wire dialect offers, in four directions:

- ``parse_request`` (a client's body → ``Request``) and ``build_request`` (``Request`` →
  an upstream body);
- ``decoder()`` (upstream wire bytes → deltas) and ``encoder()`` (deltas → ``Frame``\\s
  for the client);
- ``render_response`` (``Completion`` → a non-streamed body) and ``parse_response``
  (a non-streamed upstream body → deltas, so streamed and non-streamed upstreams go
  through one path);
- ``error_body`` (``StreamError`` → status and body in the dialect's shape) and
  ``parse_error`` (an upstream's error status and body → ``StreamError``).

Codecs are sans-IO: no sockets, no clock, no randomness. Ids and timestamps come in on the
``Start`` delta.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from .base import StreamDecoder, StreamEncoder
from .frame import Framing
from .model import Completion, Delta, Request, StreamError

__all__ = ["Dialect"]


class Dialect(Protocol):
    """One wire dialect. Instances are stateless; codecs hold state per stream."""

    name: str
    framing: Framing
    media_type: str
    event_ids: bool  # whether a server may give its SSE events ids (Gemini's clients: no)

    def parse_request(self, body: bytes | str | Mapping[str, Any]) -> Request: ...

    def build_request(self, request: Request) -> dict[str, Any]: ...

    def decoder(self) -> StreamDecoder: ...

    def encoder(self, request: Request | None = None) -> StreamEncoder: ...

    def render_response(self, completion: Completion) -> dict[str, Any]: ...

    def parse_response(self, body: bytes | Mapping[str, Any]) -> list[Delta]: ...

    def error_body(self, error: StreamError) -> tuple[int, dict[str, Any]]: ...

    def parse_error(self, status: int, body: bytes) -> StreamError: ...
