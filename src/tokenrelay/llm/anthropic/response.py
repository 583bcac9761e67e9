"""Whole (non-streamed) Anthropic messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..jsonio import loads
from ..model import Choice, Completion, Delta, ErrorKind, StreamError, Usage
from ._common import error_of, object_of, stop_of, usage_json
from .stream import AnthropicDecoder

_K = ErrorKind

__all__ = ["parse_response", "render_response"]


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
        input = object_of(call.arguments)
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
    stop_reason, stop_sequence = stop_of(choice.finish)
    return {
        "id": completion.id,
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_json(completion.usage or Usage()),
    }


def parse_response(body: bytes | Mapping[str, Any]) -> list[Delta]:
    """The deltas of a whole message: its blocks go through the stream decoder, as if
    each had been streamed in one piece."""
    try:
        message = loads(body) if isinstance(body, bytes) else body
        if message.get("type") == "error":
            return [error_of(message.get("error"))]
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
