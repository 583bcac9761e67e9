"""Whole (non-streamed) Anthropic messages and error bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..jsonio import loads
from ..model import Choice, Completion, Delta, StreamError, Usage, error_from_status
from ._common import (
    _K,
    _STATUS_OF_KIND,
    _TYPE_OF_KIND,
    _error_of,
    _object_of,
    _stop_of,
    _usage_json,
)
from .stream import AnthropicDecoder

__all__ = ["error_body", "parse_error", "parse_response", "render_response"]


def render_response(completion: Completion) -> dict[str, Any]:
    choice = next((c for c in completion.choices if c.index == 0), Choice(0))
    content: list[dict[str, Any]] = []
    if choice.reasoning or choice.reasoning_signature:
        content.append(
            {
                "type": "thinking",
                "thinking": choice.reasoning,
                "signature": choice.reasoning_signature,
            }
        )
    if choice.text or choice.refusal:
        content.append({"type": "text", "text": choice.text + choice.refusal})
    for call in choice.tool_calls:
        input = _object_of(call.arguments)
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
    stop_reason, stop_sequence = _stop_of(choice.finish)
    return {
        "id": completion.id,
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": _usage_json(completion.usage or Usage()),
    }


def parse_response(body: bytes | Mapping[str, Any]) -> list[Delta]:
    try:
        message = loads(body) if isinstance(body, bytes) else body
        if message.get("type") == "error":
            return [_error_of(message.get("error"))]
        decoder = AnthropicDecoder()
        out = decoder._message_start({"message": message})
        for index, block in enumerate(message["content"]):
            out += decoder._block_start({"index": index, "content_block": block})
            out += decoder._block_stop({"index": index})
        delta = {"stop_reason": message.get("stop_reason")}
        delta["stop_sequence"] = message.get("stop_sequence")
        return out + decoder._message_delta({"delta": delta}) + decoder._message_stop({})
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return [
            StreamError(_K.SERVER, f"upstream sent a malformed response ({type(exc).__name__})")
        ]


def error_body(error: StreamError) -> tuple[int, dict[str, Any]]:
    status = error.status
    if status is None or not 400 <= status <= 599:
        status = _STATUS_OF_KIND[error.kind]
    error_json = {"type": _TYPE_OF_KIND[error.kind], "message": error.message}
    return status, {"type": "error", "error": error_json}


def parse_error(status: int, body: bytes) -> StreamError:
    try:
        obj = loads(body)
    except orjson.JSONDecodeError:
        obj = None
    error = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(error, dict):
        return _error_of(error, status)
    text = error if isinstance(error, str) else body.decode("utf-8", "replace").strip()
    return error_from_status(status, text)
