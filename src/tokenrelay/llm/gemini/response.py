"""Non-streamed Gemini answers: ``generateContent`` bodies, rendered and parsed.

``render_response`` renders the content of a failed ``Completion``; its error is the
caller's to send with ``error_body``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..jsonio import loads
from ..model import Completion, Delta
from ._common import (
    call_part,
    derived_call_id,
    finish_word,
    meta_fields,
    reasoning_part,
    usage_metadata,
)
from .errors import malformed
from .stream import GeminiDecoder


def render_response(completion: Completion) -> dict[str, Any]:
    candidates = []
    for choice in completion.choices:
        parts: list[dict[str, Any]] = []
        if choice.reasoning or choice.reasoning_signature:
            parts.append(reasoning_part(choice.reasoning, choice.reasoning_signature))
        if text := choice.text + choice.refusal:
            parts.append({"text": text})
        for n, call in enumerate(choice.tool_calls):
            derived = derived_call_id(completion.id, choice.index, n)
            parts.append(call_part(call.id, call.name, call.arguments, derived))
        candidate: dict[str, Any] = {"content": {"parts": parts or [{"text": ""}], "role": "model"}}
        if choice.finish is not None:
            candidate["finishReason"] = finish_word(choice.finish)
        candidate["index"] = choice.index
        candidates.append(candidate)
    body: dict[str, Any] = {"candidates": candidates}
    if completion.usage is not None:
        body["usageMetadata"] = usage_metadata(completion.usage)
    body.update(meta_fields(completion.model, completion.id, completion.created))
    return body


def parse_response(body: bytes | Mapping[str, Any]) -> list[Delta]:
    """Deltas of a ``generateContent`` answer (or of the JSON array that
    ``streamGenerateContent`` without ``alt=sse`` sends)."""
    decoder = GeminiDecoder()
    if isinstance(body, Mapping):
        return decoder.feed_chunk(body)
    try:
        value = loads(body)
    except ValueError as exc:
        return [malformed(exc)]
    chunks = value if isinstance(value, list) else [value]
    out: list[Delta] = []
    for chunk in chunks:
        if not isinstance(chunk, dict):
            return [*out, malformed(TypeError(f"a response is {type(chunk).__name__}"))]
        out += decoder.feed_chunk(chunk)
    return out
