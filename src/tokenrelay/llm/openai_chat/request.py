"""OpenAI Chat requests: a client's body to a ``Request`` and a ``Request`` to a body.

- ``developer`` messages become ``system``; data: URLs become base64 image parts (and
  back); ``reasoning_content`` on earlier assistant turns is neither read nor sent
  (DeepSeek rejects it); ``is_error`` of tool results, ``strict`` of tools and the
  ``detail`` of images are not carried.
- ``max_completion_tokens`` and ``max_tokens`` both read into ``max_tokens``;
  ``max_tokens`` is what is sent (the only name Ollama, LM Studio and older llama.cpp
  read), unless the client of an OpenAI-to-OpenAI hop used ``max_completion_tokens``:
  parse_request then notes it in ``extra``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ...errors import RequestError
from ..fields import (
    base64_data,
    load_body,
    obj_item,
    opt_bool,
    opt_float,
    opt_int,
    opt_list,
    opt_obj,
    opt_str,
    req_list,
    req_obj,
    req_str,
)
from ..model import (
    ImagePart,
    Message,
    Part,
    Request,
    Role,
    TextPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from ._common import NAME

__all__ = ["build_request", "parse_request"]

_ROLES: dict[str, Role] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}
_TOOL_MODES = ("auto", "none", "required")
_DATA_URL = re.compile(r"data:([^;,]*);base64,(.*)", re.DOTALL)
# Top-level fields read into the neutral model; every other one goes to `extra`.
_READ = frozenset(
    "model messages stream stream_options max_tokens max_completion_tokens temperature top_p"
    " stop tools tool_choice parallel_tool_calls n logprobs top_logprobs user".split()
)


def _image(part: Mapping[str, Any], where: str) -> ImagePart:
    value = part.get("image_url")
    if not isinstance(value, str):
        value = req_str(req_obj(part, "image_url", where), "url", f"{where}.image_url")
    url: str = value
    match = _DATA_URL.fullmatch(url)
    if match:
        return ImagePart(data=base64_data(match[2], f"{where}.image_url"), media_type=match[1])
    return ImagePart(url=url)


def _text_part(part: Mapping[str, Any], where: str) -> TextPart:
    return TextPart(req_str(part, "text", where))


def _refusal_part(part: Mapping[str, Any], where: str) -> TextPart:
    return TextPart(req_str(part, "refusal", where))


_PART_READERS: dict[str, Callable[[Mapping[str, Any], str], Part]] = {
    "text": _text_part,
    "image_url": _image,
    "refusal": _refusal_part,  # an earlier assistant refusal, kept as its text
}


def _content(message: Mapping[str, Any], where: str) -> list[Part]:
    content = message.get("content")
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    parts: list[Part] = []
    for j, item in enumerate(opt_list(message, "content", where)):
        w = f"{where}.content[{j}]"
        part = obj_item(item, w)
        kind = req_str(part, "type", w)
        reader = _PART_READERS.get(kind)
        if reader is None:
            raise RequestError(f"{w}.type {kind!r} is not supported", param=f"{w}.type")
        parts.append(reader(part, w))
    return parts


def _message(message: Mapping[str, Any], where: str) -> Message:
    word = req_str(message, "role", where)
    role = _ROLES.get(word)
    if role is None:
        raise RequestError(
            f"{where}.role must be one of {', '.join(_ROLES)}, not {word!r}", param=f"{where}.role"
        )
    name = opt_str(message, "name", where)
    if role == "tool":
        call_id = req_str(message, "tool_call_id", where)
        text = "".join(p.text for p in _content(message, where) if isinstance(p, TextPart))
        return Message("tool", (ToolResultPart(call_id, text),), name)
    parts = _content(message, where)
    if role == "assistant":
        for j, item in enumerate(opt_list(message, "tool_calls", where)):
            w = f"{where}.tool_calls[{j}]"
            call = obj_item(item, w)
            function = req_obj(call, "function", w)
            arguments = opt_str(function, "arguments", f"{w}.function", "{}")
            parts.append(
                ToolCallPart(
                    req_str(call, "id", w), req_str(function, "name", f"{w}.function"), arguments
                )
            )
    return Message(role, tuple(parts), name)


def _tool(item: Any, where: str) -> Tool:
    tool = obj_item(item, where)
    kind = opt_str(tool, "type", where, "function")
    if kind != "function":
        raise RequestError(f'{where}.type must be "function", not {kind!r}', param=f"{where}.type")
    function = req_obj(tool, "function", where)
    w = f"{where}.function"
    name, description = req_str(function, "name", w), opt_str(function, "description", w)
    parameters = opt_obj(function, "parameters", w)
    return Tool(name, description) if parameters is None else Tool(name, description, parameters)


def _tool_choice(body: Mapping[str, Any], extra: dict[str, Any]) -> ToolChoice | None:
    value = body.get("tool_choice")
    if value is None:
        return None
    if value in _TOOL_MODES:
        return ToolChoice(value)
    if isinstance(value, dict):
        if value.get("type") == "function":
            function = req_obj(value, "function", "tool_choice")
            return ToolChoice("tool", req_str(function, "name", "tool_choice.function"))
        extra["tool_choice"] = value  # e.g. allowed_tools: only an OpenAI upstream knows it
        return None
    raise RequestError(
        f"tool_choice must be one of {', '.join(_TOOL_MODES)} or an object, not {value!r}",
        param="tool_choice",
    )


def _stop(body: Mapping[str, Any]) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return tuple(value)
    raise RequestError("stop must be a string or an array of strings", param="stop")


def _part_json(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    url = part.url or f"data:{part.media_type};base64,{part.data}"
    return {"type": "image_url", "image_url": {"url": url}}


def _messages_json(message: Message) -> list[dict[str, Any]]:
    """The wire messages of one neutral message (a tool message per tool result)."""
    if message.role == "tool":
        return [
            {"role": "tool", "tool_call_id": p.tool_call_id, "content": p.content}
            for p in message.parts
            if isinstance(p, ToolResultPart)
        ]
    shown = [p for p in message.parts if isinstance(p, TextPart | ImagePart)]
    calls = [p for p in message.parts if isinstance(p, ToolCallPart)]
    content: Any
    if len(shown) == 1 and isinstance(shown[0], TextPart):
        content = shown[0].text
    elif shown:
        content = [_part_json(p) for p in shown]
    else:
        content = None if calls else ""
    out: dict[str, Any] = {"role": message.role, "content": content}
    if message.name:
        out["name"] = message.name
    if calls:
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    return [out]


def parse_request(body: bytes | str | Mapping[str, Any]) -> Request:
    """A client's Chat Completions body → ``Request``; ``RequestError`` names the bad field."""
    body = load_body(body)
    model = req_str(body, "model")
    messages = tuple(
        _message(obj_item(m, f"messages[{i}]"), f"messages[{i}]")
        for i, m in enumerate(req_list(body, "messages"))
    )
    extra = {k: v for k, v in body.items() if k not in _READ}
    max_tokens = opt_int(body, "max_completion_tokens", minimum=1)
    if max_tokens is not None:
        extra["max_completion_tokens"] = max_tokens  # the name to send on (see above)
    else:
        max_tokens = opt_int(body, "max_tokens", minimum=1)
    options = opt_obj(body, "stream_options") or {}
    return Request(
        model=model,
        messages=messages,
        stream=bool(opt_bool(body, "stream")),
        max_tokens=max_tokens,
        temperature=opt_float(body, "temperature"),
        top_p=opt_float(body, "top_p"),
        stop=_stop(body),
        tools=tuple(_tool(t, f"tools[{i}]") for i, t in enumerate(opt_list(body, "tools"))),
        tool_choice=_tool_choice(body, extra),
        parallel_tool_calls=opt_bool(body, "parallel_tool_calls"),
        include_usage=bool(opt_bool(options, "include_usage", "stream_options")),
        n=opt_int(body, "n", minimum=1) or 1,
        logprobs=bool(opt_bool(body, "logprobs")),
        top_logprobs=opt_int(body, "top_logprobs", minimum=0),
        user=opt_str(body, "user"),
        extra=extra,
        dialect=NAME,
    )


def build_request(request: Request) -> dict[str, Any]:
    """``Request`` → a Chat Completions body; ``extra`` goes along only from this dialect."""
    body: dict[str, Any] = {"model": request.model}
    body["messages"] = [m for message in request.messages for m in _messages_json(message)]
    extra = dict(request.extra) if request.dialect == NAME else {}
    if request.max_tokens is not None:
        key = "max_completion_tokens" if "max_completion_tokens" in extra else "max_tokens"
        extra.pop("max_completion_tokens", None)
        body[key] = request.max_tokens
    optional: dict[str, Any] = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": list(request.stop) or None,
        "parallel_tool_calls": request.parallel_tool_calls,
        "n": request.n if request.n != 1 else None,
        "logprobs": request.logprobs or None,
        "top_logprobs": request.top_logprobs,
        "user": request.user or None,
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": dict(t.parameters),
                },
            }
            for t in request.tools
        ]
    choice = request.tool_choice
    if choice is not None:
        body["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}}
            if choice.mode == "tool"
            else choice.mode
        )
    if request.stream:
        body["stream"] = True
        if request.include_usage:
            body["stream_options"] = {"include_usage": True}
    for key, value in extra.items():
        body.setdefault(key, value)
    return body
