"""OpenAI Responses requests, read (parse_request) and written (build_request).

``instructions`` is the first system message (``developer`` is ``system``); consecutive
assistant-side items (message, reasoning, function call) make one assistant message.
Non-function tools and tools without ``strict: false`` are kept whole in
``extra["tools"]`` for a same-dialect hop (the Responses API makes function tools strict
by default; tools from other dialects are sent ``strict: false``). ``stop``, ``n``,
``logprobs`` and tool errors (``is_error``) have no place here and are dropped; usage is
always reported, so parsed requests ask for it. Reasoning is sent as a ``reasoning``
item with its signature as ``encrypted_content``, and only when it has one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import RequestError
from ..fields import (
    image_url,
    load_body,
    obj_item,
    opt_bool,
    opt_float,
    opt_int,
    opt_list,
    opt_obj,
    opt_str,
    req_str,
)
from ..model import (
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    Request,
    TextPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from ._common import NAME, Json, reasoning_text

__all__ = ["build_request", "parse_request"]

_KNOWN_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "temperature",
        "top_p",
        "stream",
        "parallel_tool_calls",
        "user",
    }
)
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_CHOICE_MODES = frozenset({"auto", "none", "required"})


def _unsupported(where: str, what: str) -> RequestError:
    return RequestError(f"{where} {what} is not supported here", param=where)


def _content_part(part: Mapping[str, Any], where: str) -> Part:
    type_ = req_str(part, "type", where)
    if type_ in ("input_text", "output_text"):
        return TextPart(req_str(part, "text", where))
    if type_ == "refusal":
        return TextPart(req_str(part, "refusal", where))
    if type_ == "input_image":
        if part.get("image_url") is None and part.get("file_id") is not None:
            raise _unsupported(f"{where}.file_id", "(an uploaded file)")
        return ImagePart(url=image_url(req_str(part, "image_url", where), f"{where}.image_url"))
    raise _unsupported(f"{where}.type", repr(type_))


def _message_parts(item: Mapping[str, Any], where: str) -> tuple[Part, ...]:
    content = item.get("content")
    if isinstance(content, str):
        return (TextPart(content),)
    if content is None:
        raise RequestError(f"missing required field {where}.content", param=f"{where}.content")
    if not isinstance(content, list):
        raise RequestError(
            f"{where}.content must be a string or an array", param=f"{where}.content"
        )
    return tuple(
        _content_part(obj_item(p, f"{where}.content[{j}]"), f"{where}.content[{j}]")
        for j, p in enumerate(content)
    )


def _tool_output(item: Mapping[str, Any], where: str) -> str:
    output = item.get("output")
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise RequestError(f"{where}.output must be a string or an array", param=f"{where}.output")
    parts = [
        _content_part(obj_item(p, f"{where}.output[{j}]"), f"{where}.output[{j}]")
        for j, p in enumerate(output)
    ]
    for j, part in enumerate(parts):
        if not isinstance(part, TextPart):
            raise _unsupported(f"{where}.output[{j}]", "(an image in a tool result)")
    return "".join(p.text for p in parts if isinstance(p, TextPart))


def _input_messages(items: Sequence[Any]) -> list[Message]:
    """Neutral messages of an ``input`` array. Consecutive assistant-side items make one
    assistant message, consecutive tool outputs one tool message."""
    out: list[Message] = []

    def add(role: Any, parts: tuple[Part, ...], merge: bool) -> None:
        if merge and out and out[-1].role == role:
            out[-1] = Message(role, out[-1].parts + parts)
        else:
            out.append(Message(role, parts))

    for i, raw in enumerate(items):
        where = f"input[{i}]"
        item = obj_item(raw, where)
        type_ = opt_str(item, "type", where, "message")
        if type_ == "message":
            role = _ROLES.get(req_str(item, "role", where))
            if role is None:
                raise RequestError(
                    f"{where}.role must be one of user, assistant, system, developer",
                    param=f"{where}.role",
                )
            add(role, _message_parts(item, where), role == "assistant")
        elif type_ == "function_call":
            call = ToolCallPart(
                req_str(item, "call_id", where),
                req_str(item, "name", where),
                req_str(item, "arguments", where),
            )
            add("assistant", (call,), True)
        elif type_ == "function_call_output":
            result = ToolResultPart(req_str(item, "call_id", where), _tool_output(item, where))
            add("tool", (result,), True)
        elif type_ == "reasoning":
            signature = opt_str(item, "encrypted_content", where)
            add("assistant", (ReasoningPart(reasoning_text(item), signature),), True)
        else:
            raise _unsupported(f"{where}.type", repr(type_))
    return out


def _parse_tools(body: Mapping[str, Any], extra: Json) -> tuple[Tool, ...]:
    raw = opt_list(body, "tools")
    tools: list[Tool] = []
    keep = False  # keep the list whole for a same-dialect hop
    for i, value in enumerate(raw):
        where = f"tools[{i}]"
        tool = obj_item(value, where)
        if req_str(tool, "type", where) != "function":
            keep = True
            continue
        name, description = req_str(tool, "name", where), opt_str(tool, "description", where)
        parameters = opt_obj(tool, "parameters", where)
        tools.append(
            Tool(name, description) if parameters is None else Tool(name, description, parameters)
        )
        keep = keep or opt_bool(tool, "strict", where) is not False
    if keep:
        extra["tools"] = list(raw)
    return tuple(tools)


def _parse_tool_choice(body: Mapping[str, Any], extra: Json) -> ToolChoice | None:
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if isinstance(choice, str) and choice in _CHOICE_MODES:
        return ToolChoice(choice)  # type: ignore[arg-type]
    if isinstance(choice, dict):
        if choice.get("type") == "function":
            return ToolChoice("tool", req_str(choice, "name", "tool_choice"))
        extra["tool_choice"] = choice  # hosted tools, allowed_tools: same dialect only
        return None
    raise RequestError("tool_choice must be auto, none, required or an object", param="tool_choice")


def tool_json(tool: Tool) -> Json:
    out: Json = {"type": "function", "name": tool.name}
    if tool.description:
        out["description"] = tool.description
    out["parameters"] = dict(tool.parameters)
    out["strict"] = False  # the Responses default is strict, which other dialects are not
    return out


def tool_choice_json(choice: ToolChoice | None) -> Any:
    if choice is None:
        return None
    return {"type": "function", "name": choice.name} if choice.mode == "tool" else choice.mode


def _image_json(part: ImagePart) -> Json:
    url = part.url or f"data:{part.media_type or 'image/png'};base64,{part.data}"
    return {"type": "input_image", "image_url": url, "detail": "auto"}


def _message_items(message: Message) -> list[Json]:
    """Input items of one neutral message, in the order of its parts."""
    items: list[Json] = []
    role = message.role
    content: list[Json] = []

    def flush() -> None:
        if not content:
            return
        if role != "assistant" and len(content) == 1 and content[0]["type"] == "input_text":
            items.append({"type": "message", "role": role, "content": content[0]["text"]})
        else:
            items.append({"type": "message", "role": role, "content": content[:]})
        content.clear()

    for part in message.parts:
        if isinstance(part, TextPart):
            kind = "output_text" if role == "assistant" else "input_text"
            content.append({"type": kind, "text": part.text})
        elif isinstance(part, ImagePart):
            if role != "assistant":
                content.append(_image_json(part))
        elif isinstance(part, ToolCallPart):
            flush()
            items.append(
                {
                    "type": "function_call",
                    "call_id": part.id,
                    "name": part.name,
                    "arguments": part.arguments,
                }
            )
        elif isinstance(part, ToolResultPart):
            flush()
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": part.tool_call_id,
                    "output": part.content,
                }
            )
        elif isinstance(part, ReasoningPart) and part.signature:
            # Reasoning without encrypted content cannot be checked by the upstream, and
            # an item id would make a store=false upstream look the item up: send neither.
            flush()
            summary = [{"type": "summary_text", "text": part.text}] if part.text else []
            items.append(
                {"type": "reasoning", "summary": summary, "encrypted_content": part.signature}
            )
    flush()
    return items


def _effort(budget: int) -> str:
    """A reasoning effort for a thinking budget in tokens (another dialect's request)."""
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def parse_request(body: bytes | str | Mapping[str, Any]) -> Request:
    body = load_body(body)
    model = req_str(body, "model")
    messages: list[Message] = []
    instructions = opt_str(body, "instructions")
    if instructions:
        messages.append(Message("system", (TextPart(instructions),)))
    items = body.get("input")
    if isinstance(items, str):
        messages.append(Message("user", (TextPart(items),)))
    elif isinstance(items, list):
        messages += _input_messages(items)
    elif items is not None:
        raise RequestError("input must be a string or an array", param="input")
    elif not any(body.get(k) for k in ("previous_response_id", "conversation", "prompt")):
        raise RequestError("missing required field input", param="input")
    extra: Json = {k: v for k, v in body.items() if k not in _KNOWN_FIELDS}
    opt_obj(body, "reasoning")
    opt_obj(body, "metadata")
    tools = _parse_tools(body, extra)
    tool_choice = _parse_tool_choice(body, extra)
    return Request(
        model=model,
        messages=tuple(messages),
        stream=bool(opt_bool(body, "stream")),
        max_tokens=opt_int(body, "max_output_tokens", minimum=1),
        temperature=opt_float(body, "temperature"),
        top_p=opt_float(body, "top_p"),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=opt_bool(body, "parallel_tool_calls"),
        include_usage=True,  # a Responses client always gets usage
        user=opt_str(body, "user"),
        extra=extra,
        dialect=NAME,
    )


def build_request(request: Request) -> dict[str, Any]:
    body: Json = {"model": request.model}
    messages = list(request.messages)
    first = messages[0] if messages else None
    if first and first.role == "system" and len(first.parts) == 1:
        part = first.parts[0]
        if isinstance(part, TextPart) and part.text:
            body["instructions"] = part.text
            messages.pop(0)
    body["input"] = [item for message in messages for item in _message_items(message)]
    if request.tools:
        body["tools"] = [tool_json(t) for t in request.tools]
    if request.tool_choice is not None:
        body["tool_choice"] = tool_choice_json(request.tool_choice)
    optional = {
        "max_output_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "parallel_tool_calls": request.parallel_tool_calls,
    }
    body.update((k, v) for k, v in optional.items() if v is not None)
    if request.user:
        body["user"] = request.user
    body["stream"] = request.stream
    if request.dialect == NAME:
        body.update(request.extra)
    elif request.reasoning_budget:
        body["reasoning"] = {"effort": _effort(request.reasoning_budget)}
    return body
