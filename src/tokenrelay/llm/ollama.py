"""Ollama ``POST /api/chat``: NDJSON lines, streaming unless ``"stream": false``.

Each line is ``{"model", "created_at", "message": {"role", "content", "thinking"?,
"tool_calls"?}, "done": false}``; the last has ``"done": true``, ``done_reason`` and the
token counts. Where Ollama and the neutral model do not fit, this codec decides:

- **No ids.** The stream's id is ``ollama-{created_at in Unix nanoseconds}`` from its first
  line (``""`` without a readable ``created_at``); ``Start.created`` is that time in
  seconds. Tool calls get ``call_{nanoseconds}_{n}`` (``ToolCallTracker``'s id prefix),
  so ids stay unique across the turns of a conversation. The encoder writes the first
  line's ``created_at`` back from such an id (so it decodes to the same id), from
  ``Start.created`` otherwise, and sends a call's ``id`` only when it is not the derived
  one. In requests, calls get ``call_{k}`` (their ordinal in the request) and a ``tool``
  message answers the oldest unanswered call of its ``tool_name`` (of any name without
  one); ``build_request`` names each result after the call its id refers to.
- **Arguments arrive whole** as an object: one ``ToolCallDelta`` with its JSON. Arguments
  that are not a JSON object are sent as ``{"arguments": <the text>}``.
- **Finish**: ``done_reason`` ``stop`` after tool calls is ``TOOL_CALLS`` (raw ``"stop"``);
  ``length`` is ``LENGTH``; ``load``/``unload`` and unknown words are ``OTHER``. Reasons
  Ollama has no word for are sent as the neutral word (``content_filter``, ``error``,
  ``pause``, ``other``), which this decoder reads back. Usage is ``prompt_eval_count`` and
  ``eval_count`` (no cached or reasoning share); the durations are not carried.
- **One choice**: deltas of other choices are not encoded. Signatures and refusals have
  no Ollama form (refusals are sent as content), nor has ``ToolResultPart.is_error``.
- The encoder reports the model the client asked for (``request.model``) when given the
  request, else ``Start.model``. The decoder drops a last line cut short by the end of the
  body (the stream is then incomplete) rather than calling it malformed.
- The encoder sends each delta as its own line (content and tool calls of one upstream
  line may come back as two), every line with the stream's ``created_at``; it holds the
  ``Finish`` until ``close()`` so the final line carries the final usage.
- Requests: ``stream`` defaults to true, as Ollama's does. ``options.num_predict``,
  ``temperature``, ``top_p`` and ``stop`` map to the neutral fields (a negative
  ``num_predict``, "no limit", stays in ``extra``); the other options, ``think``,
  ``format``, ``keep_alive`` and unknown fields go to ``extra``. A request from another
  dialect with a reasoning budget gets ``think`` set to whether it is above zero. Images
  are base64 only: a data: URL is unpacked, an http(s) URL is a ``RequestError``.
"""

from __future__ import annotations

import calendar
import re
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from ..errors import RequestError
from .codec import (
    Frame,
    Framing,
    LineStreamDecoder,
    StreamEncoder,
    ToolCallTracker,
    dumps,
    error_from_status,
    load_body,
    loads,
)
from .fields import (
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
from .model import (
    STATUS_OF_KIND,
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
    ToolResultPart,
    Usage,
    kind_of_status,
)

__all__ = ["OLLAMA", "OllamaDecoder", "OllamaDialect", "OllamaEncoder", "format_time", "parse_time"]

_F = FinishReason
REASON_OF_WORD: dict[str, FinishReason] = {
    "stop": _F.STOP,
    "length": _F.LENGTH,
    # Not Ollama's words: what this encoder sends for reasons Ollama has none for.
    "content_filter": _F.CONTENT_FILTER,
    "error": _F.ERROR,
    "pause": _F.PAUSE,
}
WORD_OF_REASON: dict[FinishReason, str] = {
    _F.STOP: "stop",
    _F.TOOL_CALLS: "stop",
    _F.LENGTH: "length",
    _F.CONTENT_FILTER: "content_filter",
    _F.ERROR: "error",
    _F.PAUSE: "pause",
    _F.OTHER: "other",
}
_STATUS = {**STATUS_OF_KIND, ErrorKind.OVERLOADED: 503}  # 529 is Anthropic's alone

_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9})\d*)?(Z|z|[+-]\d\d:?\d\d)?"
)
_DERIVED_ID = re.compile(r"ollama-(\d+)")


def parse_time(value: Any) -> int:
    """An RFC 3339 time (Go's, with up to nine fraction digits) in Unix nanoseconds;
    0 when unreadable."""
    if not isinstance(value, str) or (m := _TIME.fullmatch(value)) is None:
        return 0
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)  # ranges timegm would wrap
    except ValueError:
        return 0
    seconds = calendar.timegm((year, month, day, hour, minute, second))
    zone = m[8]
    if zone and zone not in "Zz":
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        seconds -= (1 if zone[0] == "+" else -1) * (hours * 3600 + minutes * 60)
    return seconds * 10**9 + int((m[7] or "0").ljust(9, "0"))


def format_time(ns: int) -> str:
    """Unix nanoseconds as Go's RFC 3339 with nanoseconds (trailing zeros trimmed)."""
    seconds, fraction = divmod(ns, 10**9)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def _reason(word: str, called: bool) -> FinishReason:
    reason = REASON_OF_WORD.get(word, _F.OTHER) if word else _F.STOP
    return _F.TOOL_CALLS if reason is _F.STOP and called else reason


def finish_word(finish: Finish) -> str:
    """Ollama's word for ``finish``: its own ``raw`` when that means the same."""
    raw = finish.raw
    if raw and raw.islower() and _reason(raw, finish.reason is _F.TOOL_CALLS) is finish.reason:
        return raw
    return WORD_OF_REASON[finish.reason]


def args_object(arguments: str) -> Any:
    """A tool call's JSON arguments as the object Ollama needs."""
    if not arguments:
        return {}
    try:
        value = loads(arguments)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"arguments": arguments}


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    return value if type(value) is int else 0


def _malformed(exc: Exception) -> StreamError:
    return StreamError(ErrorKind.SERVER, f"the upstream sent malformed data: {exc}")


# --- decoding -----------------------------------------------------------------------


class OllamaDecoder(LineStreamDecoder):
    """``/api/chat`` NDJSON bytes → deltas (see the module docstring)."""

    def __init__(self, *, max_line_bytes: int = 16 * 1024 * 1024) -> None:
        super().__init__(max_line_bytes=max_line_bytes)
        self._tracker = ToolCallTracker()
        self._started = False
        self._calls = 0
        self._done = False
        self._closing = False

    def close(self) -> list[Delta]:
        self._closing = True
        return super().close()

    def feed_line(self, line: bytes) -> list[Delta]:
        if self._done:
            return []
        try:
            value = loads(line)
        except ValueError as exc:
            if self._closing:
                return []  # a line cut short with the body: the stream is incomplete
            return self._fail(_malformed(exc))
        if not isinstance(value, dict):
            return self._fail(_malformed(TypeError(f"a line is {type(value).__name__}")))
        return self.feed_object(value)

    def _fail(self, error: StreamError) -> list[Delta]:
        self._done = self.complete = True
        return [error]

    def feed_object(self, obj: Mapping[str, Any]) -> list[Delta]:
        """Deltas for one parsed line (or a whole non-streamed answer)."""
        if self._done:
            return []
        if "error" in obj:
            error = obj["error"]
            text = error if isinstance(error, str) else dumps(error).decode()
            return self._fail(StreamError(ErrorKind.SERVER, text or "upstream error"))
        out: list[Delta] = []
        if not self._started:
            self._started = True
            ns = parse_time(obj.get("created_at"))
            self._tracker.id_prefix = str(ns) if ns else ""
            model = obj.get("model")
            model = model if isinstance(model, str) else ""
            out.append(Start(f"ollama-{ns}" if ns else "", model, ns // 10**9))
        message = obj.get("message")
        if isinstance(message, dict):
            thinking, content = message.get("thinking"), message.get("content")
            if isinstance(thinking, str) and thinking:
                out.append(ReasoningDelta(thinking))
            if isinstance(content, str) and content:
                out.append(TextDelta(content))
            calls = message.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    if isinstance(call, dict):
                        out += self._call(call)
        if obj.get("done") is True:
            self._done = self.complete = True
            if "prompt_eval_count" in obj or "eval_count" in obj:
                out.append(Usage(_int(obj, "prompt_eval_count"), _int(obj, "eval_count")))
            word = obj.get("done_reason")
            word = word if isinstance(word, str) else ""
            out.append(Finish(_reason(word, 0 in self._tracker.called), word))
        return out

    def _call(self, call: Mapping[str, Any]) -> list[Delta]:
        function = call.get("function")
        if not isinstance(function, dict):
            return []
        n = self._calls
        self._calls += 1
        name, call_id = function.get("name"), call.get("id")
        args = function.get("arguments")
        text = args if isinstance(args, str) else dumps({} if args is None else args).decode()
        out = self._tracker.start(
            0,
            n,
            call_id if isinstance(call_id, str) else None,
            name if isinstance(name, str) else "",
        )
        return out + self._tracker.arguments(0, n, text) + self._tracker.end(0, n)


# --- encoding -----------------------------------------------------------------------


class OllamaEncoder(StreamEncoder):
    """Deltas → ``/api/chat`` NDJSON lines (see the module docstring)."""

    framing: ClassVar[Framing] = "ndjson"

    def __init__(self, request: Request | None = None) -> None:
        self._model = request.model if request else ""
        self._ns = 0
        self._head = self._make_head(self._model, 0)
        self._usage: Usage | None = None
        self._finish: Finish | None = None
        self._calls: dict[int, tuple[str, str, list[str]]] = {}
        self._ended: dict[int, bytes] = {}  # ended calls waiting for lower ones
        self._next_call = 0
        self._done = False
        self._handlers: dict[type, Callable[[Any], list[Frame]]] = {
            Start: self._start,
            TextDelta: self._text,
            RefusalDelta: self._text,
            ReasoningDelta: self._reasoning,
            ToolCallStart: self._call_start,
            ToolCallDelta: self._call_delta,
            ToolCallEnd: self._call_end,
            Usage: self._set_usage,
            Finish: self._set_finish,
            StreamError: self._error,
        }

    @staticmethod
    def _make_head(model: str, ns: int) -> bytes:
        return b'{"model":' + dumps(model) + b',"created_at":' + dumps(format_time(ns))

    def encode(self, delta: Delta) -> list[Frame]:
        if self._done or getattr(delta, "choice", 0) != 0:
            return []
        return self._handlers[type(delta)](delta)

    def _start(self, delta: Start) -> list[Frame]:
        match = _DERIVED_ID.fullmatch(delta.id)
        ns = int(match[1]) if match else 0
        self._ns = ns if ns // 10**9 == delta.created else delta.created * 10**9
        self._head = self._make_head(self._model or delta.model, self._ns)
        return []

    def _line(self, message: bytes) -> list[Frame]:
        return [
            Frame(self._head + b',"message":{"role":"assistant",' + message + b'},"done":false}')
        ]

    def _text(self, delta: TextDelta | RefusalDelta) -> list[Frame]:
        return self._line(b'"content":' + dumps(delta.text)) if delta.text else []

    def _reasoning(self, delta: ReasoningDelta) -> list[Frame]:
        if not delta.text:
            return []  # a signature has no Ollama form
        return self._line(b'"content":"","thinking":' + dumps(delta.text))

    def _call_start(self, delta: ToolCallStart) -> list[Frame]:
        self._calls[delta.index] = (delta.id, delta.name, [])
        return []

    def _call_delta(self, delta: ToolCallDelta) -> list[Frame]:
        if (call := self._calls.get(delta.index)) is not None:
            call[2].append(delta.arguments)
        return []

    def _call_end(self, delta: ToolCallEnd) -> list[Frame]:
        call = self._calls.pop(delta.index, None)
        if call is None:
            return []
        call_id, name, fragments = call
        function = {"name": name, "arguments": args_object("".join(fragments))}
        entry: dict[str, Any] = {"function": function}
        derived = f"call_{self._ns}_{delta.index}" if self._ns else f"call_{delta.index}"
        if call_id != derived:
            entry["id"] = call_id
        self._ended[delta.index] = dumps(entry)
        # The decoder numbers calls by position: send them in ordinal order.
        ready = []
        while self._next_call in self._ended:
            ready.append(self._ended.pop(self._next_call))
            self._next_call += 1
        return self._calls_line(ready)

    def _calls_line(self, calls: list[bytes]) -> list[Frame]:
        if not calls:
            return []
        return self._line(b'"content":"","tool_calls":[' + b",".join(calls) + b"]")

    def _end_calls(self) -> list[Frame]:
        frames: list[Frame] = []
        for index in sorted(self._calls):
            frames += self._call_end(ToolCallEnd(index))
        rest = [self._ended.pop(i) for i in sorted(self._ended)]
        return frames + self._calls_line(rest)

    def _set_usage(self, delta: Usage) -> list[Frame]:
        self._usage = delta
        return []

    def _set_finish(self, delta: Finish) -> list[Frame]:
        self._finish = delta
        return self._end_calls()

    def _error(self, delta: StreamError) -> list[Frame]:
        self._done = True
        return [Frame(dumps({"error": delta.message}))]

    def close(self) -> list[Frame]:
        if self._done:
            return []
        frames = self._end_calls()
        self._done = True
        line = self._head + b',"message":{"role":"assistant","content":""}'
        if self._finish is not None:
            line += b',"done_reason":' + dumps(finish_word(self._finish))
        line += b',"done":true'
        if (usage := self._usage) is not None:
            line += b',"prompt_eval_count":%d,"eval_count":%d' % (
                usage.input_tokens,
                usage.output_tokens,
            )
        return [*frames, Frame(line + b"}")]


# --- requests -----------------------------------------------------------------------

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


class _CallIds:
    """Ids for the calls of a request, and the call each result answers."""

    def __init__(self) -> None:
        self._count = 0
        self._pending: deque[tuple[str, str]] = deque()  # (name, id) not yet answered

    def call(self, name: str, given: str) -> str:
        call_id = given or f"call_{self._count}"
        self._count += 1
        self._pending.append((name, call_id))
        return call_id

    def result(self, name: str, given: str) -> str:
        for entry in self._pending:
            if (given and entry[1] == given) or (not given and (not name or entry[0] == name)):
                self._pending.remove(entry)
                return entry[1]
        return given or f"call_{name}"


def _parse_message(m: Mapping[str, Any], where: str, ids: _CallIds) -> Message:
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
        if not isinstance(image, str):
            w = f"{where}.images[{j}]"
            raise RequestError(f"{w} must be a base64 string", param=w)
        parts.append(ImagePart(data=image, media_type=_sniff(image)))
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
    ids = _CallIds()
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


def render_response(completion: Completion) -> dict[str, Any]:
    """The non-streamed answer: the one line with ``"done": true`` (choice 0 only)."""
    choice = completion.choices[0] if completion.choices else None
    message: dict[str, Any] = {"role": "assistant", "content": ""}
    body: dict[str, Any] = {"model": completion.model, "created_at": "", "message": message}
    ns = int(m[1]) if (m := _DERIVED_ID.fullmatch(completion.id)) else 0
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


def parse_response(body: bytes | Mapping[str, Any]) -> list[Delta]:
    decoder = OllamaDecoder()
    if isinstance(body, Mapping):
        return decoder.feed_object(body)
    return decoder.feed(body) + decoder.close()


def error_body(error: StreamError) -> tuple[int, dict[str, Any]]:
    return _STATUS[error.kind], {"error": error.message}


def parse_error(status: int, body: bytes) -> StreamError:
    try:
        value = loads(body)
    except ValueError:
        return error_from_status(status, body.decode("utf-8", "replace").strip()[:1000])
    error = value.get("error") if isinstance(value, dict) else None
    if isinstance(error, str):
        return StreamError(kind_of_status(status), error or f"upstream HTTP {status}", status)
    return error_from_status(status, "")


class OllamaDialect:
    """The Ollama ``/api/chat`` dialect (see the module docstring)."""

    name = "ollama"
    framing: Framing = "ndjson"
    media_type = "application/x-ndjson"

    def parse_request(self, body: bytes | str | Mapping[str, Any]) -> Request:
        return parse_request(body)

    def build_request(self, request: Request) -> dict[str, Any]:
        return build_request(request)

    def decoder(self) -> OllamaDecoder:
        return OllamaDecoder()

    def encoder(self, request: Request | None = None) -> OllamaEncoder:
        return OllamaEncoder(request)

    def render_response(self, completion: Completion) -> dict[str, Any]:
        return render_response(completion)

    def parse_response(self, body: bytes | Mapping[str, Any]) -> list[Delta]:
        return parse_response(body)

    def error_body(self, error: StreamError) -> tuple[int, dict[str, Any]]:
        return error_body(error)

    def parse_error(self, status: int, body: bytes) -> StreamError:
        return parse_error(status, body)


OLLAMA = OllamaDialect()
