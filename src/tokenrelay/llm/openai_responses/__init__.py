"""The OpenAI Responses dialect (``POST /v1/responses``).

The codec is split by what each module holds; where the dialect and the neutral model
differ, the docstring of the module that decides says what this codec chooses:

- ``stream``   — the stream decoder and encoder: events, output items, reasoning;
- ``response`` — response objects and their output items, non-streamed answers, finish
  reasons, choice 0;
- ``request``  — parse_request and build_request;
- ``errors``   — error words and error bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..frame import Framing
from ..model import Completion, Delta, Request, StreamError
from . import errors as _errors
from . import request as _request
from . import response as _response
from ._common import NAME
from .stream import OpenAIResponsesDecoder, OpenAIResponsesEncoder

__all__ = ["OPENAI_RESPONSES", "OpenAIResponsesDialect"]


class OpenAIResponsesDialect:
    """The OpenAI Responses API: ``POST /v1/responses``."""

    name = NAME
    framing: Framing = "sse"
    event_ids = True
    numbered = True  # events carry sequence_number, clients resume by it: encoder.skip(n)
    media_type = "text/event-stream"

    def parse_request(self, body: bytes | str | Mapping[str, Any]) -> Request:
        return _request.parse_request(body)

    def build_request(self, request: Request) -> dict[str, Any]:
        return _request.build_request(request)

    def decoder(self) -> OpenAIResponsesDecoder:
        return OpenAIResponsesDecoder()

    def encoder(self, request: Request | None = None) -> OpenAIResponsesEncoder:
        return OpenAIResponsesEncoder(request)

    def render_response(
        self, completion: Completion, request: Request | None = None
    ) -> dict[str, Any]:
        return _response.render_response(completion, request)

    def parse_response(self, body: bytes | Mapping[str, Any]) -> list[Delta]:
        return _response.parse_response(body)

    def error_body(self, error: StreamError) -> tuple[int, dict[str, Any]]:
        return _errors.error_body(error)

    def parse_error(self, status: int, body: bytes) -> StreamError:
        return _errors.parse_error(status, body)


OPENAI_RESPONSES = OpenAIResponsesDialect()
