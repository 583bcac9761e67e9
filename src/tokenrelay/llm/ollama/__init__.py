"""Ollama ``POST /api/chat``: NDJSON lines, streaming unless ``"stream": false``.

One module per thing it holds: ``stream`` (the decoder and encoder of the NDJSON lines),
``request`` (``parse_request``, ``build_request``), ``response`` (non-streamed answers),
``errors`` (error bodies) and ``_common`` (the finish words and the ``created_at`` times
that derive ids, which they share).

Where Ollama and the neutral model do not fit, these choices were made (the ones that
concern one module alone are written in that module's docstring):

- **No ids.** The stream's id is ``ollama-{created_at in Unix nanoseconds}`` from its first
  line (``""`` without a readable ``created_at``); ``Start.created`` is that time in
  seconds. Tool calls get ``call_{nanoseconds}_{n}`` (``ToolCallTracker``'s id prefix),
  so ids stay unique across the turns of a conversation. The encoder writes the first
  line's ``created_at`` back from such an id (so it decodes to the same id), from
  ``Start.created`` otherwise, and sends a call's ``id`` only when it is not the derived
  one. In requests, calls get ``call_{k}`` (their ordinal in the request) and a ``tool``
  message answers the oldest unanswered call of its ``tool_name`` (of any name without
  one); ``build_request`` names each result after the call its id refers to.
- **Arguments arrive whole** as an object: one ``ToolCallDelta`` with its JSON. Arguments
  that are not a JSON object are sent as ``{"arguments": <the text>}``.
- **Finish**: ``done_reason`` ``stop`` after tool calls is ``TOOL_CALLS`` (raw ``"stop"``);
  ``length`` is ``LENGTH``; ``load``/``unload`` and unknown words are ``OTHER``. Reasons
  Ollama has no word for are sent as the neutral word (``content_filter``, ``error``,
  ``pause``, ``other``), which this decoder reads back. Usage is ``prompt_eval_count`` and
  ``eval_count`` (no cached or reasoning share); the durations are not carried.
- **One choice**: deltas of other choices are not encoded. Signatures and refusals have
  no Ollama form (refusals are sent as content), nor has ``ToolResultPart.is_error``.
"""

from __future__ import annotations

from ..frame import Framing
from ..model import Request
from . import errors, request, response
from ._common import NAME, format_time, parse_time
from .stream import OllamaDecoder, OllamaEncoder

__all__ = [
    "OLLAMA",
    "OLLAMA_GENERATE",
    "OllamaDecoder",
    "OllamaDialect",
    "OllamaEncoder",
    "OllamaGenerateDialect",
    "format_time",
    "parse_time",
]


class OllamaDialect:
    """The Ollama ``/api/chat`` dialect (see the module docstring)."""

    name = NAME
    framing: Framing = "ndjson"
    event_ids = False  # NDJSON has no ids
    media_type = "application/x-ndjson"

    parse_request = staticmethod(request.parse_request)
    build_request = staticmethod(request.build_request)
    render_response = staticmethod(response.render_response)
    parse_response = staticmethod(response.parse_response)
    error_body = staticmethod(errors.error_body)
    parse_error = staticmethod(errors.parse_error)

    def decoder(self) -> OllamaDecoder:
        return OllamaDecoder()

    def encoder(self, request: Request | None = None) -> OllamaEncoder:
        return OllamaEncoder(request)


OLLAMA = OllamaDialect()


class OllamaGenerateDialect(OllamaDialect):
    """Ollama's ``POST /api/generate``, client side only: a ``prompt`` (and ``system``,
    ``images``) is a one-turn chat; the lines carry ``response`` (and ``thinking``) at the
    top instead of a ``message``, and no tool calls. ``suffix``, ``template``, ``raw`` and
    ``context`` are refused (``RequestError``): a chat turn cannot honour them. Upstream,
    the request is the chat it is (``build_request`` of ``/api/chat``)."""

    name = "ollama_generate"
    parse_request = staticmethod(request.parse_generate_request)
    render_response = staticmethod(response.render_generate_response)

    def encoder(self, request: Request | None = None) -> OllamaEncoder:
        return OllamaEncoder(request, generate=True)


OLLAMA_GENERATE = OllamaGenerateDialect()
