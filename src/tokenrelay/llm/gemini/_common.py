"""What the Gemini stream, non-streamed answers and requests share: the finish words,
usage metadata, the call ids the decoder derives and the parts every side writes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from ..lenient import as_int
from ..model import Finish, FinishReason, Usage
from ..toolcalls import args_object

NAME = "gemini"

_F = FinishReason
_CF = _F.CONTENT_FILTER
REASON_OF_WORD: dict[str, FinishReason] = {
    "STOP": _F.STOP,
    "MAX_TOKENS": _F.LENGTH,
} | dict.fromkeys(
    (
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
    ),
    _CF,
)
WORD_OF_REASON: dict[FinishReason, str] = {
    _F.STOP: "STOP",
    _F.TOOL_CALLS: "STOP",
    _F.LENGTH: "MAX_TOKENS",
    _F.CONTENT_FILTER: "SAFETY",
    _F.PAUSE: "OTHER",
    _F.ERROR: "OTHER",
    _F.OTHER: "OTHER",
}
_GEMINI_WORD = re.compile(r"[A-Z][A-Z_]*")


def derived_call_id(response_id: str, choice: int, n: int) -> str:
    """The id the decoder gives the ``n``-th id-less call of a candidate."""
    prefix = f"call_{response_id}_" if response_id else "call_"
    return f"{prefix}{n}" if choice == 0 else f"{prefix}{choice}_{n}"


def reason_of(word: str, called: bool) -> FinishReason:
    reason = REASON_OF_WORD.get(word, _F.OTHER)
    return _F.TOOL_CALLS if reason is _F.STOP and called else reason


def finish_word(finish: Finish) -> str:
    """Gemini's word for ``finish``: its own ``raw`` when that means the same."""
    raw = finish.raw
    if raw and _GEMINI_WORD.fullmatch(raw):
        if reason_of(raw, finish.reason is _F.TOOL_CALLS) is finish.reason:
            return raw
    return WORD_OF_REASON[finish.reason]


def usage_of(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    thoughts = as_int(meta.get("thoughtsTokenCount"))
    return Usage(
        as_int(meta.get("promptTokenCount")) + as_int(meta.get("toolUsePromptTokenCount")),
        as_int(meta.get("candidatesTokenCount")) + thoughts,
        as_int(meta.get("cachedContentTokenCount")),
        thoughts,
    )


def usage_metadata(usage: Usage) -> dict[str, int]:
    meta = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens - usage.reasoning_tokens,
        "totalTokenCount": usage.total_tokens,
    }
    if usage.cached_tokens:
        meta["cachedContentTokenCount"] = usage.cached_tokens
    if usage.reasoning_tokens:
        meta["thoughtsTokenCount"] = usage.reasoning_tokens
    return meta


def reasoning_part(text: str, signature: str | None) -> dict[str, Any]:
    part: dict[str, Any] = {"text": text, "thought": True} if text else {"text": ""}
    if signature:
        part["thoughtSignature"] = signature
    return part


def call_part(call_id: str, name: str, arguments: str, derived: str) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name, "args": args_object(arguments)}
    if call_id != derived:
        call["id"] = call_id
    return {"functionCall": call}


def meta_fields(model: str, response_id: str, created: int) -> dict[str, str]:
    fields = {}
    if model:
        fields["modelVersion"] = model
    if response_id:
        fields["responseId"] = response_id
    if created:
        fields["createTime"] = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return fields
