"""Non-streamed Ollama answers: the one line with ``"done": true``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import (
    Completion,
    Delta,
)
from ..toolcalls import args_object
from ._common import DERIVED_ID, finish_word, format_time
from .stream import OllamaDecoder


def render_response(completion: Completion) -> dict[str, Any]:
    """The non-streamed answer: the one line with ``"done": true`` (choice 0 only)."""
    choice = completion.choices[0] if completion.choices else None
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    body: dict[str, Any] = {"model": completion.model, "created_at": "", "message": message}
    ns = int(m[1]) if (m := DERIVED_ID.fullmatch(completion.id)) else 0
    ns = ns if ns // 10**9 == completion.created else completion.created * 10**9
    body["created_at"] = format_time(ns)
    if choice is not None:
        message["content"] = choice.text + choice.refusal
        if choice.reasoning:
            message["thinking"] = choice.reasoning
        if choice.tool_calls:
            message["tool_calls"] = []
            for n, call in enumerate(choice.tool_calls):
                entry: dict[str, Any] = {
                    "function": {"name": call.name, "arguments": args_object(call.arguments)}
                }
                if call.id != (f"call_{ns}_{n}" if ns else f"call_{n}"):
                    entry["id"] = call.id
                message["tool_calls"].append(entry)
        if choice.finish is not None:
            body["done_reason"] = finish_word(choice.finish)
    body["done"] = True
    if (usage := completion.usage) is not None:
        body["prompt_eval_count"] = usage.input_tokens
        body["eval_count"] = usage.output_tokens
    return body


def render_generate_response(completion: Completion) -> dict[str, Any]:
    """``/api/generate``'s non-streamed answer: ``response`` (and ``thinking``) at the top."""
    body = render_response(completion)
    message = body.pop("message")
    rest = {k: body.pop(k) for k in list(body) if k not in ("model", "created_at")}
    body["response"] = message["content"]
    if "thinking" in message:
        body["thinking"] = message["thinking"]
    return {**body, **rest}


def parse_response(body: bytes | Mapping[str, Any]) -> list[Delta]:
    decoder = OllamaDecoder()
    if isinstance(body, Mapping):
        return decoder.feed_object(body)
    return decoder.feed(body) + decoder.close()
