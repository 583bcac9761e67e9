"""Anthropic Messages (``POST /v1/messages``): requests, streams, responses and errors.

The codec is one module per thing it holds: ``stream`` (the SSE decoder and encoder),
``request`` (``parse_request`` and ``build_request``), ``response`` (whole messages and
error bodies) and ``_common`` (stop reasons, error types and usage, which they share).
A decision that concerns one of them is written in its docstring; these concern several:

- Usage: Anthropic's ``input_tokens`` excludes the cache; the neutral one is
  ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` with
  ``cached_tokens = cache_read_input_tokens``. Encoded back, ``input_tokens`` is the
  neutral figure less ``cached_tokens`` and ``cache_creation_input_tokens`` is 0 (the
  creation share cannot be told apart once folded in). ``output_tokens_details.
  thinking_tokens`` is ``reasoning_tokens``; ``estimated`` is not carried.
- Not carried (the neutral model has no place for them): ``redacted_thinking`` blocks,
  server tools (``server_tool_use`` and their ``*_tool_result`` blocks), ``citations_delta``
  and ``cache_control``. Text around them is kept. (In requests only, ``redacted_thinking``
  is carried: see ``request``.)
- Reasoning from a non-Anthropic upstream has no signature: see ``stream`` for how it is
  streamed and ``request`` for why ``build_request`` drops it.
- ``RefusalDelta`` is streamed as text. Only choice 0 is encoded: Anthropic has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..frame import Framing
from ..model import Completion, Delta, Request, StreamError
from ._common import NAME
from .request import REDACTED
from .request import build_request as _build_request
from .request import parse_request as _parse_request
from .response import error_body as _error_body
from .response import parse_error as _parse_error
from .response import parse_response as _parse_response
from .response import render_response as _render_response
from .stream import PING_FRAME, AnthropicDecoder, AnthropicEncoder

__all__ = [
    "ANTHROPIC",
    "PING_FRAME",
    "REDACTED",
    "AnthropicDecoder",
    "AnthropicDialect",
    "AnthropicEncoder",
]


class AnthropicDialect:
    """Anthropic Messages: ``POST /v1/messages``, SSE with an ``event:`` line per event."""

    name = NAME
    framing: Framing = "sse"
    event_ids = True
    media_type = "text/event-stream"

    def parse_request(self, body: bytes | str | Mapping[str, Any]) -> Request:
        return _parse_request(body)

    def build_request(self, request: Request) -> dict[str, Any]:
        return _build_request(request)

    def decoder(self) -> AnthropicDecoder:
        return AnthropicDecoder()

    def encoder(self, request: Request | None = None) -> AnthropicEncoder:
        return AnthropicEncoder(request.model if request is not None else None)

    def render_response(self, completion: Completion) -> dict[str, Any]:
        return _render_response(completion)

    def parse_response(self, body: bytes | Mapping[str, Any]) -> list[Delta]:
        """The deltas of a whole message: its blocks go through the stream decoder, as
        if each had been streamed in one piece."""
        return _parse_response(body)

    def error_body(self, error: StreamError) -> tuple[int, dict[str, Any]]:
        """The error as Anthropic sends it. The status is the error's own when it has one
        (a gateway passes the upstream's on), else Anthropic's for the kind."""
        return _error_body(error)

    def parse_error(self, status: int, body: bytes) -> StreamError:
        return _parse_error(status, body)


ANTHROPIC = AnthropicDialect()
