"""Anthropic requests: ``parse_request`` (a Messages body to a neutral ``Request``) and
``build_request`` (back).

- ``max_tokens`` is required, as Anthropic requires it; ``build_request`` sends 4096 when
  the neutral request has none (4096 above the thinking budget when thinking is on, since
  Anthropic wants ``max_tokens > budget_tokens``). Anthropic streams always carry usage,
  so parsed requests have ``include_usage=True``.
- A ``redacted_thinking`` block travels as ``ReasoningPart("", REDACTED + data)`` so an
  Anthropic-to-Anthropic hop can hand it back. ``build_request`` drops unsigned reasoning
  parts (from a non-Anthropic upstream), which Anthropic would reject.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

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
from ..jsonio import dumps
from ..model import (
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    Request,
    Role,
    TextPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from ._common import NAME, object_of

__all__ = ["REDACTED", "build_request", "parse_request"]

REDACTED = "redacted_thinking:"  # marks a redacted_thinking block's data in ReasoningPart


def _text_block(block: Mapping[str, Any], where: str) -> Part:
    return TextPart(req_str(block, "text", where))


def _image_block(block: Mapping[str, Any], where: str) -> Part:
    source = req_obj(block, "source", where)
    where = f"{where}.source"
    kind = req_str(source, "type", where)
    if kind == "base64":
        data = base64_data(req_str(source, "data", where), f"{where}.data")
        return ImagePart(data=data, media_type=req_str(source, "media_type", where))
    if kind == "url":
        return ImagePart(url=req_str(source, "url", where))
    raise RequestError(f"unsupported image source type {kind!r}", param=f"{where}.type")


def _tool_use_block(block: Mapping[str, Any], where: str) -> Part:
    arguments = dumps(opt_obj(block, "input", where) or {}).decode()
    return ToolCallPart(req_str(block, "id", where), req_str(block, "name", where), arguments)


def _tool_result_block(block: Mapping[str, Any], where: str) -> Part:
    content = block.get("content")
    if isinstance(content, list):
        texts = []
        for j, item in enumerate(content):
            item_where = f"{where}.content[{j}]"
            item = obj_item(item, item_where)
            if req_str(item, "type", item_where) != "text":
                # The neutral tool result is text: an image in it cannot travel.
                raise RequestError(
                    "only text blocks are supported in tool_result content",
                    param=f"{item_where}.type",
                )
            texts.append(req_str(item, "text", item_where))
        text = "".join(texts)
    else:
        text = opt_str(block, "content", where)
    is_error = opt_bool(block, "is_error", where) or False
    return ToolResultPart(req_str(block, "tool_use_id", where), text, is_error)


def _thinking_block(block: Mapping[str, Any], where: str) -> Part:
    return ReasoningPart(req_str(block, "thinking", where), opt_str(block, "signature", where))


def _redacted_block(block: Mapping[str, Any], where: str) -> Part:
    return ReasoningPart("", REDACTED + req_str(block, "data", where))


_USER, _ASSISTANT = frozenset({"user"}), frozenset({"assistant"})
_BOTH = _USER | _ASSISTANT
_BLOCKS: dict[str, tuple[frozenset[str], Callable[[Mapping[str, Any], str], Part]]] = {
    "text": (_BOTH, _text_block),
    "image": (_BOTH, _image_block),
    "tool_use": (_ASSISTANT, _tool_use_block),
    "tool_result": (_USER, _tool_result_block),
    "thinking": (_ASSISTANT, _thinking_block),
    "redacted_thinking": (_ASSISTANT, _redacted_block),
}


def _parse_message(value: Any, where: str) -> list[Message]:
    """One Anthropic message as neutral messages: tool results split off as ``tool``."""
    message = obj_item(value, where)
    word = req_str(message, "role", where)
    if word not in _BOTH:
        raise RequestError(
            f"{where}.role must be 'user' or 'assistant', not {word!r}", param=f"{where}.role"
        )
    role: Role = "user" if word == "user" else "assistant"
    content = message.get("content")
    if isinstance(content, str):
        return [Message(role, (TextPart(content),))]
    if not isinstance(content, list):
        raise RequestError(
            f"{where}.content must be a string or an array of content blocks",
            param=f"{where}.content",
        )
    out: list[Message] = []
    group: list[Part] = []
    group_role: Role = role
    for j, item in enumerate(content):
        block_where = f"{where}.content[{j}]"
        block = obj_item(item, block_where)
        kind = req_str(block, "type", block_where)
        known = _BLOCKS.get(kind)
        if known is None:
            raise RequestError(
                f"unsupported content block type {kind!r}", param=f"{block_where}.type"
            )
        if role not in known[0]:
            raise RequestError(
                f"{kind} blocks are not allowed in {role} messages", param=f"{block_where}.type"
            )
        part = known[1](block, block_where)
        part_role: Role = "tool" if isinstance(part, ToolResultPart) else role
        if part_role != group_role and group:
            out.append(Message(group_role, tuple(group)))
            group = []
        group_role = part_role
        group.append(part)
    if group or not out:
        out.append(Message(group_role, tuple(group)))
    return out


def _parse_system(body: Mapping[str, Any]) -> list[Message]:
    system = body.get("system")
    if system is None:
        return []
    if isinstance(system, str):
        return [Message("system", (TextPart(system),))]
    parts: list[Part] = []
    for j, item in enumerate(opt_list(body, "system")):
        where = f"system[{j}]"
        block = obj_item(item, where)
        if req_str(block, "type", where) != "text":
            raise RequestError("system blocks must be text blocks", param=f"{where}.type")
        parts.append(TextPart(req_str(block, "text", where)))
    return [Message("system", tuple(parts))]


def _parse_tools(body: Mapping[str, Any]) -> tuple[Tool, ...]:
    tools = []
    for i, item in enumerate(opt_list(body, "tools")):
        where = f"tools[{i}]"
        tool = obj_item(item, where)
        kind = opt_str(tool, "type", where, "custom")
        if kind != "custom":  # server tools and Anthropic-defined tools have no neutral form
            raise RequestError(f"tool type {kind!r} is not supported", param=f"{where}.type")
        tools.append(
            Tool(
                req_str(tool, "name", where),
                opt_str(tool, "description", where),
                req_obj(tool, "input_schema", where),
            )
        )
    return tuple(tools)


_MODE_OF_CHOICE: dict[str, Literal["auto", "none", "required", "tool"]] = {
    "auto": "auto",
    "any": "required",
    "none": "none",
    "tool": "tool",
}
_CHOICE_OF_MODE = {mode: choice for choice, mode in _MODE_OF_CHOICE.items()}


def _parse_tool_choice(body: Mapping[str, Any]) -> tuple[ToolChoice | None, bool | None]:
    choice = opt_obj(body, "tool_choice")
    if choice is None:
        return None, None
    kind = req_str(choice, "type", "tool_choice")
    mode = _MODE_OF_CHOICE.get(kind)
    if mode is None:
        raise RequestError(f"unknown tool_choice type {kind!r}", param="tool_choice.type")
    name = req_str(choice, "name", "tool_choice") if mode == "tool" else ""
    disable = opt_bool(choice, "disable_parallel_tool_use", "tool_choice")
    return ToolChoice(mode, name), None if disable is None else not disable


_KNOWN = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
        "thinking",
        "metadata",
    }
)


def _image_source(part: ImagePart) -> dict[str, Any]:
    if not part.data and part.url.startswith("data:") and ";base64," in part.url:
        media_type, _, data = part.url[5:].partition(";base64,")
        return {"type": "base64", "media_type": media_type, "data": data}
    if part.data:
        return {"type": "base64", "media_type": part.media_type, "data": part.data}
    return {"type": "url", "url": part.url}


def _build_part(part: Part) -> dict[str, Any] | None:
    match part:
        case TextPart(text=text):
            return {"type": "text", "text": text}
        case ImagePart():
            return {"type": "image", "source": _image_source(part)}
        case ToolCallPart(id=id, name=name, arguments=arguments):
            return {"type": "tool_use", "id": id, "name": name, "input": object_of(arguments)}
        case ToolResultPart(tool_call_id=id, content=content, is_error=is_error):
            block = {"type": "tool_result", "tool_use_id": id, "content": content}
            return {**block, "is_error": True} if is_error else block
        case ReasoningPart(signature=signature) if signature.startswith(REDACTED):
            return {"type": "redacted_thinking", "data": signature[len(REDACTED) :]}
        case ReasoningPart(text=text, signature=signature) if signature:
            return {"type": "thinking", "thinking": text, "signature": signature}
    return None  # unsigned reasoning: Anthropic would reject it


def _build_messages(request: Request) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    previous = ""
    for message in request.messages:
        blocks = [b for b in map(_build_part, message.parts) if b is not None]
        if message.role == "system":
            system += (b for b in blocks if b["type"] == "text")
            continue
        if message.parts and not blocks:
            continue  # only unsigned reasoning: an empty message would be rejected
        role = "assistant" if message.role == "assistant" else "user"
        # Tool results travel in a user message, with the user's next words if any.
        if messages and role == "user" and "tool" in (previous, message.role):
            if messages[-1]["role"] == "user":
                messages[-1]["content"] += blocks
                previous = message.role
                continue
        messages.append({"role": role, "content": blocks})
        previous = message.role
    for m in messages:
        content = m["content"]
        if len(content) == 1 and content[0]["type"] == "text":
            m["content"] = content[0]["text"]
    return system, messages


def parse_request(body: bytes | str | Mapping[str, Any]) -> Request:
    body = load_body(body)
    model = req_str(body, "model")
    max_tokens = opt_int(body, "max_tokens", minimum=1)
    if max_tokens is None:
        raise RequestError("missing required field max_tokens", param="max_tokens")
    messages = _parse_system(body)
    for i, item in enumerate(req_list(body, "messages")):
        messages += _parse_message(item, f"messages[{i}]")
    stop = opt_list(body, "stop_sequences")
    for i, sequence in enumerate(stop):
        if not isinstance(sequence, str):
            raise RequestError("stop sequences must be strings", param=f"stop_sequences[{i}]")
    tool_choice, parallel = _parse_tool_choice(body)
    extra = {k: v for k, v in body.items() if k not in _KNOWN}
    budget = None
    thinking = opt_obj(body, "thinking")
    if thinking is not None:
        kind = req_str(thinking, "type", "thinking")
        if kind == "enabled":
            budget = opt_int(thinking, "budget_tokens", "thinking", minimum=1)
            if budget is None:
                raise RequestError(
                    "missing required field thinking.budget_tokens",
                    param="thinking.budget_tokens",
                )
        elif kind != "disabled":
            extra["thinking"] = thinking  # adaptive and later modes: Anthropic's own
    metadata = opt_obj(body, "metadata") or {}
    user = opt_str(metadata, "user_id", "metadata")
    if set(metadata) - {"user_id"}:
        extra["metadata"] = metadata
    return Request(
        model=model,
        messages=tuple(messages),
        stream=opt_bool(body, "stream") or False,
        max_tokens=max_tokens,
        temperature=opt_float(body, "temperature"),
        top_p=opt_float(body, "top_p"),
        stop=tuple(stop),
        tools=_parse_tools(body),
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        include_usage=True,
        reasoning_budget=budget,
        user=user,
        extra=extra,
        dialect=NAME,
    )


def build_request(request: Request) -> dict[str, Any]:
    system, messages = _build_messages(request)
    budget = request.reasoning_budget
    max_tokens = request.max_tokens
    if max_tokens is None:
        max_tokens = 4096 + (budget or 0)
    body: dict[str, Any] = {"model": request.model, "max_tokens": max_tokens}
    if system:
        body["system"] = system[0]["text"] if len(system) == 1 else system
    body["messages"] = messages
    if request.stream:
        body["stream"] = True
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
            if t.description
            else {"name": t.name, "input_schema": dict(t.parameters)}
            for t in request.tools
        ]
    choice = request.tool_choice
    if choice is not None or request.parallel_tool_calls is not None:
        tool_choice: dict[str, Any] = {"type": _CHOICE_OF_MODE[choice.mode] if choice else "auto"}
        if choice is not None and choice.mode == "tool":
            tool_choice["name"] = choice.name
        if request.parallel_tool_calls is not None:
            tool_choice["disable_parallel_tool_use"] = not request.parallel_tool_calls
        body["tool_choice"] = tool_choice
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    own = request.dialect == NAME
    metadata = dict(request.extra.get("metadata") or {}) if own else {}
    if request.user:
        metadata["user_id"] = request.user
    if metadata:
        body["metadata"] = metadata
    if own:
        for key, value in request.extra.items():
            body.setdefault(key, value)
    return body
