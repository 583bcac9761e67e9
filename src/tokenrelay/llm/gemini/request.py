"""Gemini requests: ``parse_request`` and ``build_request``, and the URL path that
carries the model and whether to stream.

- **Model and streaming live in the URL** (``models/{model}:streamGenerateContent``).
  ``parse_request(body)`` gives ``model=""`` unless the body has a ``model`` field; pass
  ``model=`` and ``stream=`` (``parse_path`` reads both from a URL path), and
  ``request_path`` builds the path for an upstream call. ``build_request`` leaves the
  model out of the body.
- Field names in snake_case are read too (Google's JSON parser takes both). A
  ``functionResponse`` of ``{"output": x}`` or ``{"error": x}`` is a result (an error
  result for the latter) with ``x`` as its content (JSON text unless a string); any other
  ``response`` object is the content whole; results are built as ``{"output"|"error":
  content}``. ``inlineData`` and ``fileData`` of any MIME type are image parts. Tools
  other than function declarations (search, code execution...), unknown
  ``generationConfig``/``thinkingConfig``/``toolConfig`` fields and unknown top-level fields
  go to ``extra`` and are merged back for a Gemini upstream. ``thinkingBudget: -1``
  (dynamic, the default) reads as no budget; a budget from another dialect also sets
  ``includeThoughts`` (Gemini streams no thoughts without it). ``ANY`` with one allowed
  function is that tool; with several, ``required`` (the list is lost). A function without
  parameters is declared without ``parameters`` (Gemini rejects an empty object schema).
  ``parallel_tool_calls`` and ``user`` have no Gemini field.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote_to_bytes

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
from ..toolcalls import CallIds, args_object
from ._common import reasoning_part

_PATH = re.compile(r"models/([^/:?]+):(streamGenerateContent|generateContent)")


def parse_path(path: str) -> tuple[str, bool]:
    """The model and whether to stream, from a path like
    ``/v1beta/models/gemini-2.5-flash:streamGenerateContent`` (``("", False)`` if none)."""
    match = _PATH.search(path)
    if match is None:
        return "", False
    return match[1], match[2] == "streamGenerateContent"


def request_path(request: Request, version: str = "v1beta") -> str:
    """The URL path (and query) to send ``request`` to."""
    if request.stream:
        return f"/{version}/models/{request.model}:streamGenerateContent?alt=sse"
    return f"/{version}/models/{request.model}:generateContent"


# --- parsing requests ---------------------------------------------------------------

_CAMEL = re.compile(r"_([a-z])")


def _camel(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """Google's JSON parser takes snake_case field names too; read them as camelCase."""
    if not any("_" in key for key in obj):
        return obj
    return {_CAMEL.sub(lambda m: m[1].upper(), key): value for key, value in obj.items()}


def _obj(body: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value = opt_obj(body, key, where)
    return None if value is None else _camel(value)


def _strings(body: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    items = opt_list(body, key, where)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise RequestError(f"{where}.{key}[{i}] must be a string", param=f"{where}.{key}[{i}]")
    return tuple(items)


_MODE = {"AUTO": "auto", "VALIDATED": "auto", "MODE_UNSPECIFIED": "auto", "NONE": "none"}
_MODE_OF_CHOICE = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}
_OWN_KEYS = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model"}


def _parse_part(part: Mapping[str, Any], where: str, model_turn: bool, ids: CallIds) -> list[Part]:
    out: list[Part] = []
    signature = opt_str(part, "thoughtSignature", where)
    text = opt_str(part, "text", where) if "text" in part else None
    if text is not None and model_turn and part.get("thought") is True:
        return [ReasoningPart(text, signature)]
    if signature and model_turn:
        out.append(ReasoningPart("", signature))
    if text is not None:
        return out + ([TextPart(text)] if text else [])
    if (data := _obj(part, "inlineData", where)) is not None:
        w = f"{where}.inlineData"
        return [
            *out,
            ImagePart(
                data=base64_data(req_str(data, "data", w), f"{w}.data"),
                media_type=req_str(data, "mimeType", w),
            ),
        ]
    if (file := _obj(part, "fileData", where)) is not None:
        w = f"{where}.fileData"
        return [
            *out,
            ImagePart(url=req_str(file, "fileUri", w), media_type=opt_str(file, "mimeType", w)),
        ]
    call = _obj(part, "functionCall", where)
    if call is not None and model_turn:
        w = f"{where}.functionCall"
        name = req_str(call, "name", w)
        args = opt_obj(call, "args", w) or {}
        return [
            *out,
            ToolCallPart(ids.call(name, opt_str(call, "id", w)), name, dumps(args).decode()),
        ]
    result = _obj(part, "functionResponse", where)
    if result is not None and not model_turn:
        w = f"{where}.functionResponse"
        name = req_str(result, "name", w)
        response = opt_obj(result, "response", w) or {}
        # Google's convention: {"output": ...} or {"error": ...}; else the whole object.
        value: Any = response
        is_error = False
        if len(response) == 1 and ("output" in response or "error" in response):
            ((key, value),) = response.items()
            is_error = key == "error"
        content = value if isinstance(value, str) else dumps(value).decode()
        return [*out, ToolResultPart(ids.result(name, opt_str(result, "id", w)), content, is_error)]
    kinds = "functionCall" if model_turn else "functionResponse"
    raise RequestError(f"{where} must have text, inlineData, fileData or {kinds}", param=where)


def _parse_contents(contents: Sequence[Any]) -> list[Message]:
    ids = CallIds(by_name=True)
    messages: list[Message] = []
    for i, item in enumerate(contents):
        where = f"contents[{i}]"
        content = _camel(obj_item(item, where))
        role = opt_str(content, "role", where, "user")
        if role not in ("user", "model", "function"):
            raise RequestError(
                f"{where}.role must be 'user' or 'model', not {role!r}", param=f"{where}.role"
            )
        model_turn = role == "model"
        own: Role = "assistant" if model_turn else "user"
        # One content may hold function responses and text: tool results travel as a
        # message of their own, so split it where the kind of part changes.
        group: list[Part] = []
        group_role = own
        for j, raw in enumerate(opt_list(content, "parts", where)):
            w = f"{where}.parts[{j}]"
            for part in _parse_part(_camel(obj_item(raw, w)), w, model_turn, ids):
                part_role: Role = "tool" if isinstance(part, ToolResultPart) else own
                if part_role != group_role and group:
                    messages.append(Message(group_role, tuple(group)))
                    group = []
                group_role = part_role
                group.append(part)
        messages.append(Message(group_role, tuple(group)))
    return messages


def _parse_tools(body: Mapping[str, Any]) -> tuple[list[Tool], list[Any]]:
    """The function declarations, and the other tools (search, code execution...)."""
    tools: list[Tool] = []
    others: list[Any] = []
    for i, item in enumerate(opt_list(body, "tools")):
        where = f"tools[{i}]"
        entry = _camel(obj_item(item, where))
        if "functionDeclarations" not in entry:
            others.append(item)
            continue
        for j, raw in enumerate(opt_list(entry, "functionDeclarations", where)):
            w = f"{where}.functionDeclarations[{j}]"
            decl = _camel(obj_item(raw, w))
            name, description = req_str(decl, "name", w), opt_str(decl, "description", w)
            params = opt_obj(decl, "parameters", w) or opt_obj(decl, "parametersJsonSchema", w)
            tools.append(
                Tool(name, description) if params is None else Tool(name, description, params)
            )
    return tools, others


def _parse_tool_choice(config: Mapping[str, Any]) -> ToolChoice | None:
    where = "toolConfig.functionCallingConfig"
    calling = _obj(config, "functionCallingConfig", "toolConfig")
    if calling is None:
        return None
    mode = opt_str(calling, "mode", where, "AUTO")
    names = _strings(calling, "allowedFunctionNames", where)
    if mode == "ANY":
        return ToolChoice("tool", names[0]) if len(names) == 1 else ToolChoice("required")
    if mode not in _MODE:
        raise RequestError(
            f"{where}.mode must be AUTO, ANY, NONE or VALIDATED, not {mode!r}",
            param=f"{where}.mode",
        )
    return ToolChoice(_MODE[mode])  # type: ignore[arg-type]


def parse_request(
    body: bytes | str | Mapping[str, Any], *, model: str = "", stream: bool = False
) -> Request:
    data = _camel(load_body(body))
    extra: dict[str, Any] = {k: v for k, v in data.items() if k not in _OWN_KEYS}
    messages: list[Message] = []
    system = _obj(data, "systemInstruction", "")
    if system is not None:
        parts: list[Part] = []
        for j, raw in enumerate(opt_list(system, "parts", "systemInstruction")):
            w = f"systemInstruction.parts[{j}]"
            parts.append(TextPart(req_str(_camel(obj_item(raw, w)), "text", w)))
        messages.append(Message("system", tuple(parts)))
    contents = opt_list(data, "contents")
    if not contents:
        raise RequestError("missing required field contents", param="contents")
    messages += _parse_contents(contents)
    tools, other_tools = _parse_tools(data)
    if other_tools:
        extra["tools"] = other_tools
    tool_choice = None
    if (config := _obj(data, "toolConfig", "")) is not None:
        tool_choice = _parse_tool_choice(config)
        if rest := {k: v for k, v in config.items() if k != "functionCallingConfig"}:
            extra["toolConfig"] = rest
    where = "generationConfig"
    gen = _obj(data, where, "") or {}
    thinking = _obj(gen, "thinkingConfig", where) or {}
    budget = opt_int(thinking, "thinkingBudget", f"{where}.thinkingConfig")
    rest = {k: v for k, v in gen.items() if k not in _GENERATION_KEYS}
    if more := {k: v for k, v in thinking.items() if k != "thinkingBudget"}:
        rest["thinkingConfig"] = more
    if rest:
        extra[where] = rest
    return Request(
        model=opt_str(data, "model") or model,
        messages=tuple(messages),
        stream=stream,
        max_tokens=opt_int(gen, "maxOutputTokens", where, minimum=1),
        temperature=opt_float(gen, "temperature", where),
        top_p=opt_float(gen, "topP", where),
        stop=_strings(gen, "stopSequences", where),
        tools=tuple(tools),
        tool_choice=tool_choice,
        include_usage=True,  # Gemini always reports usage
        n=opt_int(gen, "candidateCount", where, minimum=1) or 1,
        logprobs=opt_bool(gen, "responseLogprobs", where) or False,
        top_logprobs=opt_int(gen, "logprobs", where, minimum=0),
        reasoning_budget=None if budget == -1 else budget,  # -1: dynamic, the default
        extra=extra,
        dialect="gemini",
    )


_GENERATION_KEYS = {
    "maxOutputTokens",
    "temperature",
    "topP",
    "stopSequences",
    "candidateCount",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
}


# --- building requests --------------------------------------------------------------

_MEDIA_OF_SUFFIX = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
}


def _image(part: ImagePart) -> dict[str, Any]:
    if part.data:
        return {"inlineData": {"mimeType": part.media_type or "image/png", "data": part.data}}
    if part.url.startswith("data:"):
        head, _, payload = part.url[5:].partition(",")
        media_type, _, encoding = head.partition(";")
        if encoding != "base64":
            payload = base64.b64encode(unquote_to_bytes(payload)).decode()
        return {"inlineData": {"mimeType": media_type or "image/png", "data": payload}}
    suffix = part.url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
    media_type = part.media_type or _MEDIA_OF_SUFFIX.get(suffix, "image/jpeg")
    return {"fileData": {"mimeType": media_type, "fileUri": part.url}}


def _build_parts(message: Message, names: dict[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    signature = ""  # a lone signature waits for the part it belongs to
    for part in message.parts:
        built: dict[str, Any]
        match part:
            case TextPart(text=text):
                built = {"text": text}
            case ReasoningPart(text=text, signature=sig) if not text:
                if signature:
                    out.append(reasoning_part("", signature))
                signature = sig
                continue
            case ReasoningPart(text=text, signature=sig):
                if signature:
                    out.append(reasoning_part("", signature))
                    signature = ""
                out.append(reasoning_part(text, sig))
                continue
            case ImagePart():
                built = _image(part)
            case ToolCallPart(id=call_id, name=name, arguments=arguments):
                names[call_id] = name
                built = {"functionCall": {"name": name, "args": args_object(arguments)}}
            case ToolResultPart(tool_call_id=call_id, content=content, is_error=is_error):
                name = names.get(call_id) or message.name or call_id
                response = {"error" if is_error else "output": content}
                built = {"functionResponse": {"name": name, "response": response}}
        if signature:
            built["thoughtSignature"] = signature
            signature = ""
        out.append(built)
    if signature:
        out.append(reasoning_part("", signature))
    return out


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """Put a same-dialect request's extra fields back: objects merge, lists extend."""
    for key, value in extra.items():
        mine = into.get(key)
        if isinstance(mine, dict) and isinstance(value, dict):
            _merge(mine, value)
        elif isinstance(mine, list) and isinstance(value, list):
            into[key] = mine + value
        else:
            into[key] = value


def _declaration(tool: Tool) -> dict[str, Any]:
    decl: dict[str, Any] = {"name": tool.name}
    if tool.description:
        decl["description"] = tool.description
    # Gemini rejects an object schema without properties: leave an empty one out.
    if tool.parameters.get("properties") or set(tool.parameters) - {"type", "properties"}:
        decl["parameters"] = dict(tool.parameters)
    return decl


def build_request(request: Request) -> dict[str, Any]:
    body: dict[str, Any] = {}
    contents: list[dict[str, Any]] = []
    system: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    after_tool = False
    for message in request.messages:
        if message.role == "system":
            system += ({"text": p.text} for p in message.parts if isinstance(p, TextPart))
            continue
        parts = _build_parts(message, names)
        if message.role == "tool" and after_tool:
            # Gemini wants every response to one model turn's calls in a single content.
            contents[-1]["parts"] += parts
        else:
            role = "model" if message.role == "assistant" else "user"
            contents.append({"role": role, "parts": parts})
        after_tool = message.role == "tool"
    body["contents"] = contents
    if system:
        body["systemInstruction"] = {"parts": system}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
    if (choice := request.tool_choice) is not None:
        calling: dict[str, Any] = {"mode": _MODE_OF_CHOICE[choice.mode]}
        if choice.mode == "tool":
            calling["allowedFunctionNames"] = [choice.name]
        body["toolConfig"] = {"functionCallingConfig": calling}
    gen: dict[str, Any] = {}
    for key, value in (
        ("maxOutputTokens", request.max_tokens),
        ("temperature", request.temperature),
        ("topP", request.top_p),
        ("stopSequences", list(request.stop) or None),
        ("candidateCount", request.n if request.n != 1 else None),
        ("responseLogprobs", request.logprobs or None),
        ("logprobs", request.top_logprobs),
    ):
        if value is not None:
            gen[key] = value
    same = request.dialect == "gemini"
    if (budget := request.reasoning_budget) is not None:
        # Thought summaries stream only when asked for; a same-dialect body says itself.
        gen["thinkingConfig"] = (
            {"thinkingBudget": budget}
            if same
            else {
                "thinkingBudget": budget,
                "includeThoughts": budget != 0,
            }
        )
    if gen:
        body["generationConfig"] = gen
    if same:
        _merge(body, request.extra)
    return body
