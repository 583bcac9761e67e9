"""Google Gemini: ``generateContent`` and ``streamGenerateContent?alt=sse``.

One module per thing it holds: ``stream`` (the decoder and encoder of the SSE stream),
``request`` (``parse_request``, ``build_request``, and the URL path that carries the
model), ``response`` (non-streamed answers), ``errors`` (error bodies), and ``_common``
(finish words, usage, derived call ids and parts, which all of them speak).

Where Gemini and the neutral model do not fit, these choices were made (the ones that
concern one module alone are written in that module's docstring):

- **Tool calls have no ids** (Gemini 3 sends ``functionCall.id`` in responses, but the
  request side rejects ``id`` with a 400). A streamed call without one gets
  ``call_{responseId}_{n}`` (``call_{responseId}_{choice}_{n}`` for candidates after
  the first); a call in a request body gets ``call_{k}`` (its ordinal in the request),
  and a ``functionResponse`` takes the id of the oldest unanswered call of that name.
  ``build_request`` never sends ids and names each ``functionResponse`` after the call
  its ``tool_call_id`` refers to (the id itself when no earlier call has it). The
  encoder writes ``functionCall.id`` only when it is not the id the decoder derives.
- **Arguments arrive whole**: each call decodes to ``ToolCallStart``, one
  ``ToolCallDelta`` with the JSON of ``args`` and ``ToolCallEnd``. Arguments that are not
  a JSON object encode as ``{"arguments": <the text>}``.
- **Finish**: Gemini says ``STOP`` after tool calls too; a candidate that made calls
  finishes with ``TOOL_CALLS`` (raw ``"STOP"``). ``MAX_TOKENS`` is ``LENGTH``; the safety
  words (``SAFETY``, ``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``,
  ``IMAGE_SAFETY``...) are ``CONTENT_FILTER``; the rest ``OTHER``. A prompt blocked by
  ``promptFeedback.blockReason`` finishes choice 0 with ``CONTENT_FILTER``. Encoding
  sends ``PAUSE`` and ``ERROR`` as ``OTHER``.
- **Usage** is repeated cumulatively on every chunk; the decoder emits it (before the
  chunk's content) whenever it changes. ``input_tokens = promptTokenCount +
  toolUsePromptTokenCount`` (cached tokens included, as Gemini counts them),
  ``output_tokens = candidatesTokenCount + thoughtsTokenCount``. The encoder puts the
  latest usage on every chunk.
- **Thoughts**: ``thought: true`` text is reasoning; a ``thoughtSignature`` (on any
  part) is a signature delta, decoded before the part's own content (after it for a
  thought part). Encoded signatures ride on a thought part, or alone as
  ``{"text": "", "thoughtSignature": ...}``.
- **Refusals** have no Gemini form: they are sent as text. ``Finish.stop_sequence`` and
  ``Usage.estimated`` are not carried.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..frame import Framing
from ..model import Completion, Delta, Request, StreamError
from .errors import error_body, parse_error
from .request import build_request, parse_path, parse_request, request_path
from .response import parse_response, render_response
from .stream import GeminiDecoder, GeminiEncoder

__all__ = [
    "GEMINI",
    "GeminiDecoder",
    "GeminiDialect",
    "GeminiEncoder",
    "parse_path",
    "request_path",
]


class GeminiDialect:
    """The Gemini dialect (see the module docstring for what does not map one to one).

    ``parse_request`` takes the keywords ``model`` and ``stream``, which Gemini carries in
    the URL (``parse_path`` reads them); without them the model is the body's ``model``
    field or ``""``, and ``stream`` is False.
    """

    name = "gemini"
    framing: Framing = "sse"
    event_ids = False  # google-genai reads data lines only: an id line breaks it
    media_type = "text/event-stream"

    def parse_request(
        self, body: bytes | str | Mapping[str, Any], *, model: str = "", stream: bool = False
    ) -> Request:
        return parse_request(body, model=model, stream=stream)

    def build_request(self, request: Request) -> dict[str, Any]:
        return build_request(request)

    def decoder(self) -> GeminiDecoder:
        return GeminiDecoder()

    def encoder(self, request: Request | None = None) -> GeminiEncoder:
        return GeminiEncoder(request)

    def render_response(self, completion: Completion) -> dict[str, Any]:
        return render_response(completion)

    def parse_response(self, body: bytes | Mapping[str, Any]) -> list[Delta]:
        return parse_response(body)

    def error_body(self, error: StreamError) -> tuple[int, dict[str, Any]]:
        return error_body(error)

    def parse_error(self, status: int, body: bytes) -> StreamError:
        return parse_error(status, body)


GEMINI = GeminiDialect()
