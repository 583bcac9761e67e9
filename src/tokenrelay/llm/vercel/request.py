"""``parse_request``: a ``useChat`` body (see the package docstring for what is read)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import RequestError
from ..fields import (
    image_url,
    load_body,
    obj_item,
    opt_int,
    opt_list,
    opt_obj,
    opt_str,
    req_list,
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
    ToolResultPart,
)
from ._common import NAME, unsupported

__all__ = ["build_request", "parse_request"]

_ROLES: dict[str, Role] = {r: r for r in ("system", "user", "assistant")}
_DENIED = "The user denied the tool call."


class _Turns:
    """Builds the neutral messages of one UI message: an assistant message with tool
    calls splits where their results go (the results travel in a ``tool`` message)."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.messages: list[Message] = []
        self.parts: list[Part] = []
        self.results: list[Part] = []

    def add(self, part: Part) -> None:
        # Calls of one step share a message; content after their results starts the next
        # turn (AI SDK messages mark steps with step-start, older ones may not).
        if self.results and not isinstance(part, ToolCallPart):
            self.flush()
        self.parts.append(part)

    def flush(self) -> None:
        if self.parts:
            self.messages.append(Message(self.role, tuple(self.parts)))
        if self.results:
            self.messages.append(Message("tool", tuple(self.results)))
        self.parts, self.results = [], []


def _tool_part(part: Mapping[str, Any], kind: str, where: str, turns: _Turns) -> None:
    name = kind[5:] if kind.startswith("tool-") else req_str(part, "toolName", where)
    call_id = req_str(part, "toolCallId", where)
    state = opt_str(part, "state", where)
    if state == "input-streaming":
        return  # arguments still arriving: not a call yet
    value = part.get("input", part.get("rawInput"))
    arguments = value if isinstance(value, str) else dumps({} if value is None else value).decode()
    turns.add(ToolCallPart(call_id, name, arguments))
    if state == "output-available":
        output = part.get("output")
        content = output if isinstance(output, str) else dumps(output).decode()
        turns.results.append(ToolResultPart(call_id, content))
    elif state == "output-error":
        turns.results.append(ToolResultPart(call_id, opt_str(part, "errorText", where), True))
    elif state == "output-denied":
        approval = part.get("approval")
        reason = approval.get("reason") if isinstance(approval, dict) else None
        text = f"{_DENIED} {reason}" if isinstance(reason, str) and reason else _DENIED
        turns.results.append(ToolResultPart(call_id, text, True))


def _parse_message(m: Mapping[str, Any], where: str) -> list[Message]:
    word = req_str(m, "role", where)
    role = _ROLES.get(word)
    if role is None:
        raise RequestError(
            f"{where}.role must be system, user or assistant, not {word!r}", param=f"{where}.role"
        )
    turns = _Turns(role)
    if "parts" not in m and isinstance(m.get("content"), str):  # AI SDK 4 messages
        turns.add(TextPart(m["content"]))
    for j, raw in enumerate(opt_list(m, "parts", where)):
        w = f"{where}.parts[{j}]"
        part = obj_item(raw, w)
        kind = req_str(part, "type", w)
        if kind == "text":
            turns.add(TextPart(req_str(part, "text", w)))
        elif kind == "reasoning":
            turns.add(ReasoningPart(req_str(part, "text", w)))
        elif kind == "file":
            url = image_url(req_str(part, "url", w), f"{w}.url")
            media_type = opt_str(part, "mediaType", w)
            turns.add(ImagePart(url=url, media_type=media_type))
        elif kind.startswith("tool-") or kind == "dynamic-tool":
            _tool_part(part, kind, w, turns)
        elif kind == "step-start":
            turns.flush()
        # sources, data-* parts and future kinds carry nothing for the model
    turns.flush()
    return turns.messages or [Message(role, ())]


_OWN_FIELDS = ("messages", "model", "system", "tools", "maxOutputTokens")


def parse_request(body: bytes | str | Mapping[str, Any]) -> Request:
    data = load_body(body)
    messages: list[Message] = []
    system = opt_str(data, "system")
    if system:
        messages.append(Message("system", (TextPart(system),)))
    for i, raw in enumerate(req_list(data, "messages")):
        messages += _parse_message(obj_item(raw, f"messages[{i}]"), f"messages[{i}]")
    tools = []
    for i, raw in enumerate(opt_list(data, "tools")):
        where = f"tools[{i}]"
        tool = obj_item(raw, where)
        schema = opt_obj(tool, "inputSchema", where)
        tools.append(
            Tool(
                req_str(tool, "name", where),
                opt_str(tool, "description", where),
                schema if schema is not None else {"type": "object", "properties": {}},
            )
        )
    return Request(
        model=opt_str(data, "model"),
        messages=tuple(messages),
        stream=True,  # useChat always reads a stream
        max_tokens=opt_int(data, "maxOutputTokens", minimum=1),
        tools=tuple(tools),
        extra={k: v for k, v in data.items() if k not in _OWN_FIELDS},
        dialect=NAME,
    )


def build_request(request: Request) -> dict[str, Any]:
    unsupported("upstream requests to build (it is only ever the client's dialect)")
