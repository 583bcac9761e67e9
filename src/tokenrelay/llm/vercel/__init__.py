"""The Vercel AI SDK UI message stream (AI SDK 5/6), for React ``useChat`` front ends.

A response is SSE ``data:`` JSON chunks ending with ``data: [DONE]``, and must carry the
header in ``HEADERS``. This dialect faces browsers only: it encodes streams and parses the
``useChat`` request body; there is no upstream that speaks it, so ``build_request``,
``render_response`` and ``parse_response`` raise ``NotImplementedError``. Its decoder is
a simple one, enough to read the encoder's output back (tests, tools).

The encoder writes ``start`` (``messageId`` from ``Start.id``) and ``start-step``; each
run of reasoning or text as ``reasoning-start/-delta/-end`` (ids ``r0``, ``r1``...) or
``text-start/-delta/-end`` (``t0``...), a block ending when another kind of content
begins; a tool call as ``tool-input-start``, ``tool-input-delta``\\* and
``tool-input-available`` with the parsed ``input`` (``{}`` for no arguments;
``tool-input-error`` when the arguments are not JSON); then ``finish-step``, ``finish``
with ``finishReason`` (``stop``, ``length``, ``tool-calls``, ``content-filter``,
``error``, ``other``; PAUSE is ``other``) and ``data: [DONE]``. An error is
``{"type": "error", "errorText": ...}``, followed only by ``[DONE]``.

Not carried: usage (unless the encoder is made with ``message_metadata=True``: the
``finish`` chunk then has ``messageMetadata: {"usage": {inputTokens, outputTokens,
totalTokens, reasoningTokens, cachedInputTokens}}``, off by default because a client
with a ``messageMetadataSchema`` of its own rejects fields it does not know), the model,
timestamps, signatures (reasoning is sent without them), choices other than 0. Refusals
are sent as text.

``parse_request`` reads ``{"messages": [{"id", "role", "parts": [...]}], ...}`` and, when
a page's transport sends them (its ``body`` option), ``system`` (a system prompt),
``tools`` (``[{"name", "description", "inputSchema"}]``, the model's callable functions)
and ``maxOutputTokens``: ``text``,
``reasoning`` and ``file`` parts, and tool parts (``tool-{name}`` and ``dynamic-tool``)
as the call plus, once it has an output (or an error, or was denied), a ``tool`` message
with its result; ``step-start`` separates the steps of one assistant message. Other parts
(sources, ``data-*``) are skipped. The model is the body's ``model`` field if any (``""``
otherwise); every other field (``id``, ``trigger``, ``messageId``, custom body fields)
goes to ``extra``. The request always streams.

One module per thing it holds: ``stream`` (the encoder and the simple decoder),
``request`` (``parse_request``), ``response`` (none: it raises), ``errors`` (error
bodies) and ``_common`` (the name, ``HEADERS`` and the finish words).
"""

from __future__ import annotations

from ..frame import Framing
from ..model import Request
from . import errors, request, response
from ._common import HEADERS, NAME
from .stream import VercelUIDecoder, VercelUIEncoder

__all__ = ["HEADERS", "VERCEL_UI", "VercelUIDecoder", "VercelUIDialect", "VercelUIEncoder"]


class VercelUIDialect:
    """The Vercel AI SDK UI message stream (see the module docstring). Responses must
    carry ``HEADERS``."""

    name = NAME
    framing: Framing = "sse"
    event_ids = True
    media_type = "text/event-stream"
    headers = HEADERS

    parse_request = staticmethod(request.parse_request)
    build_request = staticmethod(request.build_request)
    render_response = staticmethod(response.render_response)
    parse_response = staticmethod(response.parse_response)
    error_body = staticmethod(errors.error_body)
    parse_error = staticmethod(errors.parse_error)

    def decoder(self) -> VercelUIDecoder:
        return VercelUIDecoder()

    def encoder(
        self, request: Request | None = None, *, message_metadata: bool = False
    ) -> VercelUIEncoder:
        return VercelUIEncoder(request, message_metadata=message_metadata)


VERCEL_UI = VercelUIDialect()
