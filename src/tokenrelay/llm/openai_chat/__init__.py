"""OpenAI Chat Completions (``POST /v1/chat/completions``): the codec.

One module per thing it holds: ``stream`` (the decoder and encoder of
``chat.completion.chunk`` events), ``request`` (``parse_request``, ``build_request``),
``response`` (non-streamed answers), ``errors`` (error bodies), and ``_common`` (finish
reason words and usage, which all of them speak).

Where the dialect and the neutral model do not fit, these choices were made (the ones
that concern one module alone are written in that module's docstring):

- Reasoning arrives as ``delta.reasoning_content`` (DeepSeek, vLLM, SGLang) or
  ``delta.reasoning`` (OpenRouter, Ollama, newer vLLM); it is sent as ``reasoning_content``,
  the name most OpenAI-compatible clients read. Anthropic signatures have no place in this
  dialect and are dropped.
- Finish reasons: pause, error and other become ``stop``, ``error`` and ``stop``; a raw
  word of this dialect that means the same reason is sent back unchanged. Stop sequences
  are read from vLLM's ``stop_reason`` but not sent (the dialect has no field for them).
- Logprobs ride on ``TextDelta`` untouched; logprobs of refusal tokens are dropped.
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
from .stream import OpenAIChatDecoder, OpenAIChatEncoder

__all__ = ["OPENAI_CHAT", "OpenAIChatDecoder", "OpenAIChatDialect", "OpenAIChatEncoder"]


class OpenAIChatDialect:
    """OpenAI Chat Completions, as spoken by OpenAI and the OpenAI-compatible servers."""

    name = NAME
    framing: Framing = "sse"
    event_ids = True
    media_type = "text/event-stream"

    def parse_request(self, body: bytes | str | Mapping[str, Any]) -> Request:
        return _request.parse_request(body)

    def build_request(self, request: Request) -> dict[str, Any]:
        return _request.build_request(request)

    def decoder(self) -> OpenAIChatDecoder:
        return OpenAIChatDecoder()

    def encoder(self, request: Request | None = None) -> OpenAIChatEncoder:
        return OpenAIChatEncoder(request)

    def render_response(self, completion: Completion) -> dict[str, Any]:
        return _response.render_response(completion)

    def parse_response(self, body: bytes | Mapping[str, Any]) -> list[Delta]:
        return _response.parse_response(body)

    def error_body(self, error: StreamError) -> tuple[int, dict[str, Any]]:
        return _errors.error_body(error)

    def parse_error(self, status: int, body: bytes) -> StreamError:
        return _errors.parse_error(status, body)


OPENAI_CHAT = OpenAIChatDialect()
