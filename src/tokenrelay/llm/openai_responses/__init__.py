"""The OpenAI Responses dialect (``POST /v1/responses``).

The codec is split by what each module holds; where the dialect and the neutral model
differ, the docstring of the module that decides says what this codec chooses:

- ``stream``   — the stream decoder and encoder: events, output items, reasoning;
- ``response`` — response objects and their output items, non-streamed answers, finish
  reasons, choice 0;
- ``request``  — parse_request and build_request;
- ``errors``   — error words and error bodies;
- ``_common``  — the name, the JSON alias and the text of a reasoning item.
"""

from __future__ import annotations

from ..frame import Framing
from ..model import Request
from . import errors, request, response
from ._common import NAME
from .stream import OpenAIResponsesDecoder, OpenAIResponsesEncoder

__all__ = [
    "OPENAI_RESPONSES",
    "OpenAIResponsesDecoder",
    "OpenAIResponsesDialect",
    "OpenAIResponsesEncoder",
]


class OpenAIResponsesDialect:
    """The OpenAI Responses API: ``POST /v1/responses``."""

    name = NAME
    framing: Framing = "sse"
    event_ids = True
    numbered = True  # events carry sequence_number, clients resume by it: encoder.skip(n)
    media_type = "text/event-stream"

    parse_request = staticmethod(request.parse_request)
    build_request = staticmethod(request.build_request)
    render_response = staticmethod(response.render_response)
    parse_response = staticmethod(response.parse_response)
    error_body = staticmethod(errors.error_body)
    parse_error = staticmethod(errors.parse_error)

    def decoder(self) -> OpenAIResponsesDecoder:
        return OpenAIResponsesDecoder()

    def encoder(self, request: Request | None = None) -> OpenAIResponsesEncoder:
        return OpenAIResponsesEncoder(request)


OPENAI_RESPONSES = OpenAIResponsesDialect()
