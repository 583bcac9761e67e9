"""Ollama ``/api/chat`` requests: ``parse_request`` and ``build_request``.

``stream`` defaults to true, as Ollama's does. ``options.num_predict``, ``temperature``,
``top_p`` and ``stop`` map to the neutral fields (a negative ``num_predict``, "no limit",
stays in ``extra``); the other options, ``think``, ``format``, ``keep_alive`` and unknown
fields go to ``extra``. A request from another dialect with a reasoning budget gets
``think`` set to whether it is above zero. Images are base64 only: a data: URL is
unpacked, an http(s) URL is a ``RequestError``.
"""

from __future__ import annotations

from collections.abc import Mapping
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
from ..toolcalls import CallIds, args_object

_ROLES: dict[str, Role] = {r: r for r in ("system", "user", "assistant", "tool")}
_OPTION_KEYS = ("num_predict", "temperature", "top_p", "stop")
_OWN_KEYS = {"model", "messages", "tools", "stream", "options"}
# Ollama takes images as bare base64; their media type shows in the first bytes.
_MAGIC = {
    "iVBORw0KGgo": "image/png",
    "/9j/": "image/jpeg",
    "R0lGOD": "image/gif",
    "UklGR": "image/webp",
}


def _sniff(data: str) -> str:
    return next((t for magic, t in _MAGIC.items() if data.startswith(magic)), "image/jpeg")


def _parse_message(m: Mapping[str, Any], where: str, ids: CallIds) -> Message:
    word = req_str(m, "role", where)
    role = _ROLES.get(word)
    if role is None:
        raise RequestError(
            f"{where}.role must be one of {', '.join(_ROLES)}, not {word!r}", param=f"{where}.role"
        )
    content = opt_str(m, "content", where)
    if role == "tool":
        name = opt_str(m, "tool_name", where) or opt_str(m, "name", where)
        call_id = ids.result(name, opt_str(m, "tool_call_id", where))
        return Message("tool", (ToolResultPart(call_id, content),))
    parts: list[Part] = []
    if role == "assistant" and (thinking := opt_str(m, "thinking", where)):
        parts.append(ReasoningPart(thinking))
    if content:
        parts.append(TextPart(content))
    for j, image in enumerate(opt_list(m, "images", where)):
        w = f"{where}.images[{j}]"
        if not isinstance(image, str):
            raise RequestError(f"{w} must be a base64 string", param=w)
        parts.append(ImagePart(data=base64_data(image, w), media_type=_sniff(image)))
    for j, raw in enumerate(opt_list(m, "tool_calls", where) if role == "assistant" else ()):
        w = f"{where}.tool_calls[{j}]"
        call = obj_item(raw, w)
        function = req_obj(call, "function", w)
        name = req_str(function, "name", f"{w}.function")
        args = function.get("arguments")
        if args is not None and not isinstance(args, dict | str):
            raise RequestError(
                f"{w}.function.arguments must be an object", param=f"{w}.function.arguments"
            )
        arguments = args if isinstance(args, str) else dumps(args or {}).decode()
        parts.append(ToolCallPart(ids.call(name, opt_str(call, "id", w)), name, arguments))
    return Message(role, tuple(parts))


def _parse_tools(body: Mapping[str, Any]) -> list[Tool]:
    tools = []
    for i, raw in enumerate(opt_list(body, "tools")):
        where = f"tools[{i}]"
        entry = obj_item(raw, where)
        if opt_str(entry, "type", where, "function") != "function":
            raise RequestError(f"{where}.type must be 'function'", param=f"{where}.type")
        function = req_obj(entry, "function", where)
        w = f"{where}.function"
        name, description = req_str(function, "name", w), opt_str(function, "description", w)
        params = opt_obj(function, "parameters", w)
        tools.append(Tool(name, description) if params is None else Tool(name, description, params))
    return tools


def parse_request(body: bytes | str | Mapping[str, Any]) -> Request:
    data = load_body(body)
    model = req_str(data, "model")
    ids = CallIds(by_name=False)
    messages = tuple(
        _parse_message(obj_item(raw, f"messages[{i}]"), f"messages[{i}]", ids)
        for i, raw in enumerate(req_list(data, "messages"))
    )
    extra = {k: v for k, v in data.items() if k not in _OWN_KEYS}
    options = opt_obj(data, "options") or {}
    max_tokens = opt_int(options, "num_predict", "options")
    rest = {k: v for k, v in options.items() if k not in _OPTION_KEYS}
    if max_tokens is not None and max_tokens < 0:  # -1: no limit, -2: fill the context
        rest["num_predict"], max_tokens = max_tokens, None
    stop = options.get("stop")
    stops = [stop] if isinstance(stop, str) else opt_list(options, "stop", "options")
    if not all(isinstance(s, str) for s in stops):
        raise RequestError("options.stop must be an array of strings", param="options.stop")
    if rest:
        extra["options"] = rest
    stream = opt_bool(data, "stream")
    return Request(
        model=model,
        messages=messages,
        stream=True if stream is None else stream,  # Ollama streams unless told not to
        max_tokens=max_tokens,
        temperature=opt_float(options, "temperature", "options"),
        top_p=opt_float(options, "top_p", "options"),
        stop=tuple(stops),
        tools=tuple(_parse_tools(data)),
        include_usage=True,  # Ollama always counts tokens
        extra=extra,
        dialect="ollama",
    )


# /api/generate fields a chat turn cannot carry: refused, never silently dropped.
_GENERATE_ONLY = {
    "suffix": "fill-in-the-middle",
    "template": "prompt templates",
    "raw": "raw prompts",
    "context": "the deprecated context array (send the conversation to /api/chat)",
}


def parse_generate_request(body: bytes | str | Mapping[str, Any]) -> Request:
    """An ``/api/generate`` body (``prompt``, ``system``, ``images``, ``options``...) as
    the one-turn chat it is."""
    data = load_body(body)
    for key, what in _GENERATE_ONLY.items():
        if data.get(key):
            raise RequestError(f"{key} is not supported here ({what})", param=key)
    prompt = req_str(data, "prompt")
    if not prompt:
        raise RequestError("prompt must not be empty", param="prompt")
    messages: list[dict[str, Any]] = []
    if system := opt_str(data, "system"):
        messages.append({"role": "system", "content": system})
    user: dict[str, Any] = {"role": "user", "content": prompt}
    if images := opt_list(data, "images"):
        user["images"] = images
    chat = {
        k: v for k, v in data.items() if k not in ("prompt", "system", "images", *_GENERATE_ONLY)
    }
    return parse_request({**chat, "messages": [*messages, user]})


def _image(part: ImagePart, where: str) -> str:
    if part.data:
        return part.data
    if part.url.startswith("data:") and ";base64," in part.url:
        return part.url.partition(";base64,")[2]
    raise RequestError(f"{where}: Ollama takes images as base64 only, not by URL", param=where)


def _build_messages(request: Request) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for i, message in enumerate(request.messages):
        results = [p for p in message.parts if isinstance(p, ToolResultPart)]
        for result in results:
            entry = {"role": "tool", "content": result.content}
            if name := names.get(result.tool_call_id, message.name):
                entry["tool_name"] = name
            out.append(entry)
        if results and message.role == "tool":
            continue
        built: dict[str, Any] = {"role": message.role, "content": message.text}
        reasoning = "".join(p.text for p in message.parts if isinstance(p, ReasoningPart))
        if reasoning:
            built["thinking"] = reasoning
        images = [_image(p, f"messages[{i}]") for p in message.parts if isinstance(p, ImagePart)]
        if images:
            built["images"] = images
        calls = []
        for part in message.parts:
            if isinstance(part, ToolCallPart):
                names[part.id] = part.name
                function = {"name": part.name, "arguments": args_object(part.arguments)}
                calls.append({"function": function})
        if calls:
            built["tool_calls"] = calls
        out.append(built)
    return out


def build_request(request: Request) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": _build_messages(request),
        "stream": request.stream,
    }
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": dict(t.parameters),
                },
            }
            for t in request.tools
        ]
    options: dict[str, Any] = {}
    for key, value in (
        ("num_predict", request.max_tokens),
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("stop", list(request.stop) or None),
    ):
        if value is not None:
            options[key] = value
    same = request.dialect == "ollama"
    extra = dict(request.extra) if same else {}
    options |= extra.pop("options", None) or {}
    if options:
        body["options"] = options
    if not same and request.reasoning_budget is not None:
        body["think"] = request.reasoning_budget > 0
    return body | extra
