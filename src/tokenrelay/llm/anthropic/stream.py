"""Anthropic Messages (``POST /v1/messages``): requests, streams, responses and errors.

Where Anthropic and the neutral model do not fit, this codec decides:

- Usage: Anthropic's ``input_tokens`` excludes the cache; the neutral one is
  ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens`` with
  ``cached_tokens = cache_read_input_tokens``. Encoded back, ``input_tokens`` is the
  neutral figure less ``cached_tokens`` and ``cache_creation_input_tokens`` is 0 (the
  creation share cannot be told apart once folded in). ``output_tokens_details.
  thinking_tokens`` is ``reasoning_tokens``; ``estimated`` is not carried.
- Not carried (the neutral model has no place for them): ``redacted_thinking`` blocks,
  server tools (``server_tool_use`` and their ``*_tool_result`` blocks), ``citations_delta``
  and ``cache_control``. Text around them is kept. In requests only, a
  ``redacted_thinking`` block travels as ``ReasoningPart("", REDACTED + data)`` so an
  Anthropic-to-Anthropic hop can hand it back.
- Reasoning from a non-Anthropic upstream has no signature: it is streamed as a thinking
  block without ``signature_delta`` (shown, but not valid to send back to Anthropic), and
  ``build_request`` drops unsigned reasoning parts, which Anthropic would reject.
- ``RefusalDelta`` is streamed as text. Only choice 0 is encoded: Anthropic has one.
- The encoder sends ``message_start`` at the first delta after ``Start`` (so a ``Usage``
  that comes with it fills ``input_tokens``), holds ``message_delta`` until ``close()`` (the
  final usage may come after ``Finish``), and keeps a tool's block open until its
  ``ToolCallEnd``: content of other blocks that arrives meanwhile waits for it.
- Requests: ``max_tokens`` is required, as Anthropic requires it; ``build_request`` sends
  4096 when the neutral request has none (4096 above the thinking budget when thinking is
  on, since Anthropic wants ``max_tokens > budget_tokens``). Anthropic streams always
  carry usage, so parsed requests have ``include_usage=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

import orjson

from ...errors import RequestError
from ...sse import Event
from ..codec import (
    Frame,
    Framing,
    SSEStreamDecoder,
    StreamEncoder,
    ToolCallTracker,
    dumps,
    error_from_status,
    load_body,
    loads,
)
from ..fields import (
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
    Choice,
    Completion,
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    ImagePart,
    Message,
    Part,
    ReasoningDelta,
    ReasoningPart,
    RefusalDelta,
    Request,
    Role,
    Start,
    StreamError,
    TextDelta,
    TextPart,
    Tool,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
    Usage,
    kind_of_status,
)

__all__ = [
    "ANTHROPIC",
    "PING_FRAME",
    "REDACTED",
    "AnthropicDecoder",
    "AnthropicDialect",
    "AnthropicEncoder",
]

REDACTED = "redacted_thinking:"  # marks a redacted_thinking block's data in ReasoningPart
PING_FRAME = Frame(b'{"type":"ping"}', "ping")  # the keep-alive; the gateway sends it

_F = FinishReason
_REASON_OF_STOP = {
    "end_turn": _F.STOP,
    "stop_sequence": _F.STOP,
    "max_tokens": _F.LENGTH,
    "model_context_window_exceeded": _F.LENGTH,
    "tool_use": _F.TOOL_CALLS,
    "refusal": _F.CONTENT_FILTER,
    "pause_turn": _F.PAUSE,
}
_STOP_OF_REASON = {
    _F.STOP: "end_turn",
    _F.LENGTH: "max_tokens",
    _F.TOOL_CALLS: "tool_use",
    _F.CONTENT_FILTER: "refusal",
    _F.PAUSE: "pause_turn",
    _F.ERROR: "end_turn",
    _F.OTHER: "end_turn",
}
_K = ErrorKind
_ERRORS = (
    (_K.INVALID_REQUEST, "invalid_request_error", 400),
    (_K.AUTHENTICATION, "authentication_error", 401),
    (_K.PERMISSION, "permission_error", 403),
    (_K.NOT_FOUND, "not_found_error", 404),
    (_K.REQUEST_TOO_LARGE, "request_too_large", 413),
    (_K.RATE_LIMIT, "rate_limit_error", 429),
    (_K.SERVER, "api_error", 500),
    (_K.TIMEOUT, "timeout_error", 504),
    (_K.OVERLOADED, "overloaded_error", 529),
)
_TYPE_OF_KIND = {kind: type_ for kind, type_, _ in _ERRORS}
_STATUS_OF_KIND = {kind: status for kind, _, status in _ERRORS}
_KIND_OF_TYPE = {type_: kind for kind, type_, _ in _ERRORS}


def _stop_of(finish: Finish | None) -> tuple[str, str | None]:
    """The ``stop_reason`` and ``stop_sequence`` for a neutral finish."""
    if finish is None:
        return "end_turn", None
    if _REASON_OF_STOP.get(finish.raw) == finish.reason:
        word = finish.raw  # our own word, sent back unchanged
    elif finish.reason == _F.STOP and finish.stop_sequence is not None:
        word = "stop_sequence"
    else:
        word = _STOP_OF_REASON[finish.reason]
    return word, finish.stop_sequence if word == "stop_sequence" else None


def _finish_of(stop_reason: Any, stop_sequence: Any) -> Finish:
    if not isinstance(stop_reason, str):
        return Finish(_F.STOP)
    sequence = stop_sequence if isinstance(stop_sequence, str) else None
    return Finish(_REASON_OF_STOP.get(stop_reason, _F.OTHER), stop_reason, sequence)


def _text_of(obj: Any, key: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) else ""


def _error_of(error: Any, status: int | None = None) -> StreamError:
    """A ``StreamError`` for Anthropic's ``error`` object, in a stream (no status) or in
    an error body. The type decides the kind; the status only when the type is unknown."""
    type_, message = _text_of(error, "type"), _text_of(error, "message")
    kind = _KIND_OF_TYPE.get(type_) or (kind_of_status(status) if status else _K.SERVER)
    fallback = f"upstream HTTP {status}" if status else "upstream sent an error event"
    return StreamError(kind, message or type_ or fallback, status, type_)


def _usage_json(usage: Usage) -> dict[str, Any]:
    cached = min(usage.cached_tokens, usage.input_tokens)
    out: dict[str, Any] = {
        "input_tokens": usage.input_tokens - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.output_tokens,
    }
    if usage.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out


def _object_of(arguments: str) -> Any:
    """Tool arguments as the JSON object Anthropic's ``input`` must be ({} if they are not
    one: a broken upstream's arguments cannot be sent as an object)."""
    try:
        value = loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _string(value: Any, what: str) -> str:
    if value.__class__ is not str:
        raise TypeError(f"{what} is not a string")
    return value


# --- the stream decoder -------------------------------------------------------------


class AnthropicDecoder(SSEStreamDecoder):
    """Anthropic's SSE stream → neutral deltas. Tool calls are keyed by block index."""

    def __init__(self, *, max_event_bytes: int | None = None) -> None:
        super().__init__(max_event_bytes=max_event_bytes)
        self._tools = ToolCallTracker()
        self._started = False
        self._finished = False
        self._done = False
        # Usage is a running total whose fields message_delta may each update or omit.
        self._counts = dict.fromkeys(_USAGE_KEYS, 0)
        self._thinking_tokens = 0
        self._whole_inputs: dict[int, Any] = {}  # tool input given whole in its start

    def feed_event(self, event: Event) -> list[Delta]:
        if self._done or not event.data:
            return []
        try:
            obj = loads(event.data)
            handler = _HANDLERS.get(obj.get("type", event.event))
            return handler(self, obj) if handler is not None else []
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self._done = self.complete = True
            message = f"upstream sent malformed data in a {event.event!r} event: {exc}"
            return [StreamError(_K.SERVER, message)]

    def _start(self, id: str = "", model: str = "") -> list[Delta]:
        self._started = True
        return [Start(id, model)]

    def _usage(self, usage: Any) -> Usage:
        counts = self._counts
        for key in _USAGE_KEYS:
            value = usage.get(key)
            if isinstance(value, int):
                counts[key] = value
        details = usage.get("output_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("thinking_tokens"), int):
            self._thinking_tokens = details["thinking_tokens"]
        cached = counts["cache_read_input_tokens"]
        inputs = counts["input_tokens"] + cached + counts["cache_creation_input_tokens"]
        return Usage(inputs, counts["output_tokens"], cached, self._thinking_tokens)

    def _message_start(self, obj: dict[str, Any]) -> list[Delta]:
        if self._started:
            return []  # a repeated message_start says nothing new
        message = obj["message"]
        id, model = message.get("id"), message.get("model")
        out = self._start(
            id if isinstance(id, str) else "", model if isinstance(model, str) else ""
        )
        if isinstance(message.get("usage"), dict):
            out.append(self._usage(message["usage"]))
        return out

    def _block_start(self, obj: dict[str, Any]) -> list[Delta]:
        out = [] if self._started else self._start()
        index, block = obj["index"], obj["content_block"]
        kind = block["type"]
        if kind == "text" and block.get("text"):
            out.append(TextDelta(_string(block["text"], "text")))
        elif kind == "thinking":
            if block.get("thinking"):
                out.append(ReasoningDelta(_string(block["thinking"], "thinking")))
            if block.get("signature"):
                out.append(ReasoningDelta("", _string(block["signature"], "signature")))
        elif kind == "tool_use":
            id = _string(block.get("id") or "", "tool_use id")
            out += self._tools.start(0, index, id or None, _string(block["name"], "tool name"))
            if block.get("input"):  # some proxies send the whole input here
                self._whole_inputs[index] = block["input"]
        return out

    def _block_delta(self, obj: dict[str, Any]) -> list[Delta]:
        delta = obj["delta"]
        kind = delta["type"]
        if kind == "input_json_delta":
            self._whole_inputs.pop(obj["index"], None)
            out = self._tools.arguments(0, obj["index"], _string(delta["partial_json"], kind))
        else:
            known = _DELTAS.get(kind)
            if known is None:
                return []  # citations_delta and what comes later
            key, make = known
            value = _string(delta[key], kind)
            out = [make(value)] if value else []
        return out if self._started else self._start() + out

    def _block_stop(self, obj: dict[str, Any]) -> list[Delta]:
        index = obj["index"]
        whole = self._whole_inputs.pop(index, None)
        out = self._tools.arguments(0, index, dumps(whole).decode()) if whole else []
        return out + self._tools.end(0, index)

    def _end_calls(self) -> list[Delta]:
        out: list[Delta] = [] if self._started else self._start()
        for index, whole in self._whole_inputs.items():
            out += self._tools.arguments(0, index, dumps(whole).decode())
        self._whole_inputs.clear()
        return out + self._tools.end_all(0)

    def _message_delta(self, obj: dict[str, Any]) -> list[Delta]:
        out = self._end_calls()
        if isinstance(obj.get("usage"), dict):
            out.append(self._usage(obj["usage"]))
        delta = obj.get("delta") or {}
        if not self._finished and delta.get("stop_reason") is not None:
            self._finished = True
            out.append(_finish_of(delta["stop_reason"], delta.get("stop_sequence")))
        return out

    def _message_stop(self, obj: dict[str, Any]) -> list[Delta]:
        self._done = self.complete = True
        out = self._end_calls()
        if not self._finished:
            self._finished = True
            out.append(Finish(_F.STOP))
        return out

    def _error(self, obj: dict[str, Any]) -> list[Delta]:
        self._done = self.complete = True
        return [_error_of(obj.get("error"))]


_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
_DELTAS: dict[str, tuple[str, Callable[[str], Delta]]] = {
    "text_delta": ("text", TextDelta),
    "thinking_delta": ("thinking", ReasoningDelta),
    "signature_delta": ("signature", lambda signature: ReasoningDelta("", signature)),
}
# ping and unknown types are not in the table: ignored.
_HANDLERS: dict[Any, Callable[[AnthropicDecoder, dict[str, Any]], list[Delta]]] = {
    "message_start": AnthropicDecoder._message_start,
    "content_block_start": AnthropicDecoder._block_start,
    "content_block_delta": AnthropicDecoder._block_delta,
    "content_block_stop": AnthropicDecoder._block_stop,
    "message_delta": AnthropicDecoder._message_delta,
    "message_stop": AnthropicDecoder._message_stop,
    "error": AnthropicDecoder._error,
}


# --- the stream encoder -------------------------------------------------------------

_Content: TypeAlias = (
    TextDelta | RefusalDelta | ReasoningDelta | ToolCallStart | ToolCallDelta | ToolCallEnd
)
_TEXT_BLOCK = b'{"type":"text","text":""}'
_THINKING_BLOCK = b'{"type":"thinking","thinking":"","signature":""}'
_MESSAGE_STOP = Frame(b'{"type":"message_stop"}', "message_stop")


class AnthropicEncoder(StreamEncoder):
    """Neutral deltas → Anthropic's SSE events (``event:`` line and ``type`` in the JSON)."""

    def __init__(self, model: str | None = None) -> None:
        self._model = model
        self._start: Start | None = None
        self._usage: Usage | None = None
        self._announced = (0, 0)  # input and cached tokens told in message_start
        self._finish: Finish | None = None
        self._began = False  # message_start sent
        self._closed = False
        self._index = -1  # the newest block's index
        self._kind = ""  # the open block's kind: "text", "thinking", "tool" or "" (none)
        self._head = b""  # the open block's content_block_delta JSON up to the delta type
        self._signed = False  # the open thinking block has its signature: no more thinking
        self._tool = -1  # the neutral index of the tool call whose block is open
        self._waiting: list[_Content] = []  # deltas of other blocks while a tool block is open

    def encode(self, delta: Delta) -> list[Frame]:
        if self._closed:
            return []
        return _ENCODERS[type(delta)](self, delta)

    def close(self) -> list[Frame]:
        if self._closed:
            return []
        out = self._message_start() if not self._began else []
        out += self._release()
        out += self._stop_block()
        self._closed = True
        word, sequence = _stop_of(self._finish)
        usage = self._usage or Usage()
        counts: dict[str, Any] = {"output_tokens": usage.output_tokens}
        cached = min(usage.cached_tokens, usage.input_tokens)
        if (usage.input_tokens - cached, cached) != self._announced:
            counts["input_tokens"] = usage.input_tokens - cached
            counts["cache_read_input_tokens"] = cached
        if usage.reasoning_tokens:
            counts["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
        body = {
            "type": "message_delta",
            "delta": {"stop_reason": word, "stop_sequence": sequence},
            "usage": counts,
        }
        return [*out, Frame(dumps(body), "message_delta"), _MESSAGE_STOP]

    # Deltas that produce no content of their own.

    def _on_start(self, delta: Start) -> list[Frame]:
        if self._start is None:
            self._start = delta
        return []

    def _on_usage(self, delta: Usage) -> list[Frame]:
        self._usage = delta
        return [] if self._began or self._start is None else self._message_start()

    def _on_finish(self, delta: Finish) -> list[Frame]:
        if delta.choice == 0 and self._finish is None:
            self._finish = delta
        return []

    def _on_error(self, delta: StreamError) -> list[Frame]:
        out = self._message_start() if not self._began and self._start is not None else []
        out += self._release()
        self._closed = True
        body = {
            "type": "error",
            "error": {"type": _TYPE_OF_KIND[delta.kind], "message": delta.message},
        }
        return [*out, Frame(dumps(body), "error")]

    def _message_start(self) -> list[Frame]:
        self._began = True
        start = self._start or Start("", "")
        usage = _usage_json(self._usage or Usage())
        usage.pop("output_tokens_details", None)
        self._announced = (usage["input_tokens"], usage["cache_read_input_tokens"])
        message: dict[str, Any] = {
            "id": start.id,
            "type": "message",
            "role": "assistant",
            "model": self._model if self._model is not None else start.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [Frame(dumps({"type": "message_start", "message": message}), "message_start")]

    # Content: blocks open and close as the kind of content changes.

    def _on_content(self, delta: _Content) -> list[Frame]:
        if delta.choice:
            return []  # Anthropic has one choice
        if self._began:
            return self._content(delta)
        return self._message_start() + self._content(delta)

    def _content(self, delta: _Content) -> list[Frame]:
        if self._tool >= 0 and not (
            isinstance(delta, ToolCallDelta | ToolCallEnd) and delta.index == self._tool
        ):
            self._waiting.append(delta)
            return []
        if isinstance(delta, TextDelta | RefusalDelta):
            return self._text(delta.text)
        if isinstance(delta, ReasoningDelta):
            return self._reasoning(delta)
        if isinstance(delta, ToolCallStart):
            body = {"type": "tool_use", "id": delta.id, "name": delta.name, "input": {}}
            out = self._open_block("tool", dumps(body))
            self._tool = delta.index
            return [*out, self._delta(b'input_json_delta","partial_json":""}}')]
        if self._tool < 0:
            return []  # a fragment or end of a call whose block is already closed
        if isinstance(delta, ToolCallDelta):
            if not delta.arguments:
                return []
            fragment = b'input_json_delta","partial_json":' + dumps(delta.arguments) + b"}}"
            return [self._delta(fragment)]
        return self._end_tool()

    def _text(self, text: str) -> list[Frame]:
        if not text:
            return []
        out = [] if self._kind == "text" else self._open_block("text", _TEXT_BLOCK)
        out.append(self._delta(b'text_delta","text":' + dumps(text) + b"}}"))
        return out

    def _reasoning(self, delta: ReasoningDelta) -> list[Frame]:
        out: list[Frame] = []
        for payload, is_signature in ((delta.text, False), (delta.signature, True)):
            if not payload:
                continue
            if self._kind != "thinking" or self._signed:
                out += self._open_block("thinking", _THINKING_BLOCK)
            if is_signature:
                self._signed = True
                out.append(self._delta(b'signature_delta","signature":' + dumps(payload) + b"}}"))
            else:
                out.append(self._delta(b'thinking_delta","thinking":' + dumps(payload) + b"}}"))
        return out

    def _delta(self, rest: bytes) -> Frame:
        return Frame(self._head + rest, "content_block_delta")

    def _open_block(self, kind: str, block: bytes) -> list[Frame]:
        out = self._stop_block()
        self._index += 1
        self._kind = kind
        self._signed = False
        index = str(self._index).encode()
        self._head = b'{"type":"content_block_delta","index":' + index + b',"delta":{"type":"'
        data = b'{"type":"content_block_start","index":' + index + b',"content_block":' + block
        out.append(Frame(data + b"}", "content_block_start"))
        return out

    def _stop_block(self) -> list[Frame]:
        if not self._kind:
            return []
        self._kind = ""
        data = b'{"type":"content_block_stop","index":' + str(self._index).encode() + b"}"
        return [Frame(data, "content_block_stop")]

    def _end_tool(self) -> list[Frame]:
        """Close the open tool block and encode what waited for it."""
        self._tool = -1
        out = self._stop_block()
        waiting, self._waiting = self._waiting, []
        for delta in waiting:  # in order; a newly opened tool block makes the rest wait again
            out += self._content(delta)
        return out

    def _release(self) -> list[Frame]:
        """At the end: close tool blocks still open so that everything waiting is sent."""
        out: list[Frame] = []
        while self._tool >= 0:
            out += self._end_tool()
        return out


_ENCODERS: dict[type, Callable[[AnthropicEncoder, Any], list[Frame]]] = {
    Start: AnthropicEncoder._on_start,
    Usage: AnthropicEncoder._on_usage,
    Finish: AnthropicEncoder._on_finish,
    StreamError: AnthropicEncoder._on_error,
    **dict.fromkeys(
        (TextDelta, RefusalDelta, ReasoningDelta, ToolCallStart, ToolCallDelta, ToolCallEnd),
        AnthropicEncoder._on_content,
    ),
}


# --- requests -----------------------------------------------------------------------


def _text_block(block: Mapping[str, Any], where: str) -> Part:
    return TextPart(req_str(block, "text", where))


def _image_block(block: Mapping[str, Any], where: str) -> Part:
    source = req_obj(block, "source", where)
    where = f"{where}.source"
    kind = req_str(source, "type", where)
    if kind == "base64":
        return ImagePart(
            data=req_str(source, "data", where), media_type=req_str(source, "media_type", where)
        )
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
            return {"type": "tool_use", "id": id, "name": name, "input": _object_of(arguments)}
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


# --- the dialect --------------------------------------------------------------------


class AnthropicDialect:
    """Anthropic Messages: ``POST /v1/messages``, SSE with an ``event:`` line per event."""

    name = "anthropic"
    framing: Framing = "sse"
    media_type = "text/event-stream"

    def parse_request(self, body: bytes | str | Mapping[str, Any]) -> Request:
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
            dialect=self.name,
        )

    def build_request(self, request: Request) -> dict[str, Any]:
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
            tool_choice: dict[str, Any] = {
                "type": _CHOICE_OF_MODE[choice.mode] if choice else "auto"
            }
            if choice is not None and choice.mode == "tool":
                tool_choice["name"] = choice.name
            if request.parallel_tool_calls is not None:
                tool_choice["disable_parallel_tool_use"] = not request.parallel_tool_calls
            body["tool_choice"] = tool_choice
        if budget is not None:
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        own = request.dialect == self.name
        metadata = dict(request.extra.get("metadata") or {}) if own else {}
        if request.user:
            metadata["user_id"] = request.user
        if metadata:
            body["metadata"] = metadata
        if own:
            for key, value in request.extra.items():
                body.setdefault(key, value)
        return body

    def decoder(self) -> AnthropicDecoder:
        return AnthropicDecoder()

    def encoder(self, request: Request | None = None) -> AnthropicEncoder:
        return AnthropicEncoder(request.model if request is not None else None)

    def render_response(self, completion: Completion) -> dict[str, Any]:
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

    def parse_response(self, body: bytes | Mapping[str, Any]) -> list[Delta]:
        """The deltas of a whole message: its blocks go through the stream decoder, as
        if each had been streamed in one piece."""
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
            return [StreamError(_K.SERVER, f"upstream sent a malformed response: {exc}")]

    def error_body(self, error: StreamError) -> tuple[int, dict[str, Any]]:
        """The error as Anthropic sends it. The status is the error's own when it has one
        (a gateway passes the upstream's on), else Anthropic's for the kind."""
        status = error.status
        if status is None or not 400 <= status <= 599:
            status = _STATUS_OF_KIND[error.kind]
        error_json = {"type": _TYPE_OF_KIND[error.kind], "message": error.message}
        return status, {"type": "error", "error": error_json}

    def parse_error(self, status: int, body: bytes) -> StreamError:
        try:
            obj = loads(body)
        except orjson.JSONDecodeError:
            obj = None
        error = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(error, dict):
            return _error_of(error, status)
        text = error if isinstance(error, str) else body.decode("utf-8", "replace").strip()
        return error_from_status(status, text)


ANTHROPIC = AnthropicDialect()
