"""OpenAI Chat non-streamed answers (``chat.completion``): rendered from a ``Completion``
and read back into deltas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..accumulate import replay
from ..jsonio import dumps, loads
from ..lenient import as_int, as_list, as_obj
from ..model import Choice, Completion, Delta, ToolCall
from ._common import finish_word, parse_finish, usage_json, usage_of
from .errors import error_of, malformed

__all__ = ["parse_response", "render_response"]


def render_response(completion: Completion) -> dict[str, Any]:
    """``Completion`` → a ``chat.completion`` body."""
    body: dict[str, Any] = {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [_choice_json(c) for c in completion.choices],
    }
    if completion.usage is not None:
        body["usage"] = usage_json(completion.usage)
    return body


def parse_response(body: bytes | Mapping[str, Any]) -> list[Delta]:
    """A non-streamed upstream answer (or error body) → the deltas a stream of it would give."""
    if not isinstance(body, Mapping):
        raw = body
        try:
            body = loads(raw)
        except orjson.JSONDecodeError:
            return [malformed(raw)]
        if not isinstance(body, dict):
            return [malformed(raw)]
    if body.get("error"):
        return [error_of(body)]
    usage = body.get("usage")
    completion = Completion(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or ""),
        created=as_int(body.get("created")),
        choices=tuple(
            _parse_choice(c) for c in as_list(body.get("choices")) if isinstance(c, dict)
        ),
        usage=usage_of(usage) if isinstance(usage, dict) else None,
    )
    return replay(completion)


def _choice_json(choice: Choice) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": choice.text or (None if choice.tool_calls or choice.refusal else ""),
        "refusal": choice.refusal or None,
    }
    if choice.reasoning:
        message["reasoning_content"] = choice.reasoning
    if choice.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in choice.tool_calls
        ]
    if choice.finish is not None:
        word = finish_word(choice.finish)
    else:
        word = "tool_calls" if choice.tool_calls else "stop"
    return {
        "index": choice.index,
        "message": message,
        "logprobs": {"content": list(choice.logprobs), "refusal": None}
        if choice.logprobs
        else None,
        "finish_reason": word,
    }


def _parse_choice(choice: Mapping[str, Any]) -> Choice:
    index = as_int(choice.get("index"))
    message = as_obj(choice.get("message"))

    def text(key: str) -> str:
        value = message.get(key)
        return value if isinstance(value, str) else ""

    calls = []
    for i, item in enumerate(as_list(message.get("tool_calls"))):
        function = as_obj(as_obj(item).get("function"))
        arguments = function.get("arguments") or "{}"
        if not isinstance(arguments, str):
            arguments = dumps(arguments).decode()
        calls.append(
            ToolCall(
                str(as_obj(item).get("id") or f"call_{i}"),
                str(function.get("name") or ""),
                arguments,
            )
        )
    word = choice.get("finish_reason")
    logprobs = as_obj(choice.get("logprobs")).get("content")
    return Choice(
        index=index,
        text=text("content"),
        reasoning=text("reasoning_content") or text("reasoning"),
        refusal=text("refusal"),
        tool_calls=tuple(calls),
        finish=parse_finish(word, index, choice.get("stop_reason"))
        if isinstance(word, str)
        else None,
        logprobs=tuple(logprobs) if isinstance(logprobs, list) else (),
    )
