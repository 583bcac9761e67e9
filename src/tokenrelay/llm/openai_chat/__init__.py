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

from ..frame import Framing
from ..model import Request
from . import errors, request, response
from ._common import NAME
from .stream import OpenAIChatDecoder, OpenAIChatEncoder

__all__ = ["OPENAI_CHAT", "OpenAIChatDecoder", "OpenAIChatDialect", "OpenAIChatEncoder"]


class OpenAIChatDialect:
    """OpenAI Chat Completions, as spoken by OpenAI and the OpenAI-compatible servers."""

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

    def decoder(self) -> OpenAIChatDecoder:
        return OpenAIChatDecoder()

    def encoder(self, request: Request | None = None) -> OpenAIChatEncoder:
        return OpenAIChatEncoder(request)


OPENAI_CHAT = OpenAIChatDialect()
