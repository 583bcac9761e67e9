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

from ..frame import Framing
from ..model import Request
from . import errors, request, response
from ._common import NAME
from .request import parse_path, request_path
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

    name = NAME
    framing: Framing = "sse"
    event_ids = False  # google-genai reads data lines only: an id line breaks it
    media_type = "text/event-stream"

    parse_request = staticmethod(request.parse_request)
    build_request = staticmethod(request.build_request)
    render_response = staticmethod(response.render_response)
    parse_response = staticmethod(response.parse_response)
    error_body = staticmethod(errors.error_body)
    parse_error = staticmethod(errors.parse_error)

    def decoder(self) -> GeminiDecoder:
        return GeminiDecoder()

    def encoder(self, request: Request | None = None) -> GeminiEncoder:
        return GeminiEncoder(request)


GEMINI = GeminiDialect()
