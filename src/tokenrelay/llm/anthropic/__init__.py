"""Anthropic Messages (``POST /v1/messages``): requests, streams, responses and errors.

One module per thing it holds: ``stream`` (the SSE decoder and encoder), ``request``
(``parse_request`` and ``build_request``), ``response`` (whole messages), ``errors`` (error
bodies) and ``_common`` (stop reasons, error types and usage, which they share).
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

from ..frame import Framing
from ..model import Request
from . import errors, request, response
from ._common import NAME
from .request import REDACTED
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

    parse_request = staticmethod(request.parse_request)
    build_request = staticmethod(request.build_request)
    render_response = staticmethod(response.render_response)
    parse_response = staticmethod(response.parse_response)
    error_body = staticmethod(errors.error_body)
    parse_error = staticmethod(errors.parse_error)

    def decoder(self) -> AnthropicDecoder:
        return AnthropicDecoder()

    def encoder(self, request: Request | None = None) -> AnthropicEncoder:
        return AnthropicEncoder(request.model if request is not None else None)


ANTHROPIC = AnthropicDialect()
