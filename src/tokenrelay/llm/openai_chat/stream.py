"""OpenAI Chat Completions (``POST /v1/chat/completions``): the codec.

Where the dialect and the neutral model do not fit, these choices were made:

- Reasoning arrives as ``delta.reasoning_content`` (DeepSeek, vLLM, SGLang) or
  ``delta.reasoning`` (OpenRouter, Ollama, newer vLLM); it is sent as ``reasoning_content``,
  the name most OpenAI-compatible clients read. Anthropic signatures have no place in this
  dialect and are dropped.
- The model reported to the client is the one it asked for (``request.model``) when the
  encoder is given the request, as a gateway that maps names should; else ``Start.model``.
- Without a request the encoder sends the usage chunk whenever usage is known (clients
  that did not ask for it ignore a ``choices: []`` chunk); with one, only if
  ``stream_options.include_usage`` was set. ``Usage.estimated`` is not carried.
- Every choice's first chunk is ``{"role": "assistant", "content": ""}``, also for an
  answer that turns out to be tool calls or a refusal (OpenAI itself sends ``null`` there,
  which cannot be known in advance); choice 0's goes out at ``Start``, the others' when the
  choice first appears, lower choices first, so first appearances always ascend.
- Finish reasons: pause, error and other become ``stop``, ``error`` and ``stop``; a raw
  word of this dialect that means the same reason is sent back unchanged. Stop sequences
  are read from vLLM's ``stop_reason`` but not sent (the dialect has no field for them).
- Logprobs ride on ``TextDelta`` untouched; logprobs of refusal tokens are dropped.
- Errors: ``overloaded`` is answered with 503, not Anthropic's 529, which OpenAI clients
  and HTTP tooling do not know; the upstream's own error type word is passed on.
- Requests: ``developer`` messages become ``system``; data: URLs become base64 image parts
  (and back); ``reasoning_content`` on earlier assistant turns is neither read nor sent
  (DeepSeek rejects it); ``is_error`` of tool results, ``strict`` of tools and the
  ``detail`` of images are not carried. ``max_completion_tokens`` and ``max_tokens`` both
  read into ``max_tokens``; ``max_tokens`` is what is sent (the only name Ollama, LM Studio
  and older llama.cpp read), unless the client of an OpenAI-to-OpenAI hop used
  ``max_completion_tokens``: parse_request then notes it in ``extra``.
- Ingest also accepts what OpenAI-compatible servers send besides standard chunks: errors
  as ``data: {"error": ...}``, as an ``event: error``, as a non-standard ``error:`` field
  (older llama.cpp) or as raw JSON on a line of its own; a whole non-streamed answer in
  place of the stream; ``data: [DONE]`` without its blank line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import orjson

from ..errors import RequestError
from ..sse import Event
from .accumulate import replay
from .codec import (
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
    RefusalDelta,
    Request,
    Role,
    Start,
    StreamError,
    TextDelta,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolChoice,
    ToolResultPart,
    Usage,
    kind_of_status,
)

__all__ = ["OPENAI_CHAT", "OpenAIChatDecoder", "OpenAIChatDialect", "OpenAIChatEncoder"]

NAME = "openai_chat"

R = FinishReason
_REASON_OF_WORD: dict[str, FinishReason] = {
    "stop": R.STOP,
    "length": R.LENGTH,
    "tool_calls": R.TOOL_CALLS,
    "function_call": R.TOOL_CALLS,
    "content_filter": R.CONTENT_FILTER,
    # Words of OpenAI-compatible servers (TGI, llama.cpp forks, proxies of other APIs).
    "eos": R.STOP,
    "eos_token": R.STOP,
    "stop_sequence": R.STOP,
    "end_turn": R.STOP,
    "max_tokens": R.LENGTH,
    "model_length": R.LENGTH,
    "tool_use": R.TOOL_CALLS,
    "refusal": R.CONTENT_FILTER,
    "error": R.ERROR,
}
_WORD_OF_REASON: dict[FinishReason, str] = {
    R.STOP: "stop",
    R.LENGTH: "length",
    R.TOOL_CALLS: "tool_calls",
    R.CONTENT_FILTER: "content_filter",
    R.PAUSE: "stop",
    R.ERROR: "error",
    R.OTHER: "stop",
}
_OWN_WORDS = frozenset({"stop", "length", "tool_calls", "content_filter"})

K = ErrorKind
# Error type and code per kind (OpenAI's own words where it has them).
_ERROR_TYPE: dict[ErrorKind, tuple[str, str | None]] = {
    K.INVALID_REQUEST: ("invalid_request_error", None),
    K.AUTHENTICATION: ("authentication_error", "invalid_api_key"),
    K.PERMISSION: ("permission_error", None),
    K.NOT_FOUND: ("not_found_error", None),
    K.REQUEST_TOO_LARGE: ("invalid_request_error", "request_too_large"),
    K.RATE_LIMIT: ("rate_limit_error", "rate_limit_exceeded"),
    K.SERVER: ("server_error", None),
    K.TIMEOUT: ("timeout_error", None),
    K.OVERLOADED: ("overloaded_error", None),
}
# The kind an error code or type word means when no HTTP status says it (codes are the
# more specific: OpenAI's bad key is type invalid_request_error, code invalid_api_key).
_KIND_OF_WORD: dict[str, ErrorKind] = {
    **{word: kind for kind, (word, _) in _ERROR_TYPE.items()},
    **{code: kind for kind, (_, code) in _ERROR_TYPE.items() if code},
    "invalid_request_error": K.INVALID_REQUEST,
    "requests": K.RATE_LIMIT,
    "tokens": K.RATE_LIMIT,
    "insufficient_quota": K.RATE_LIMIT,
    "api_error": K.SERVER,
    "internal_server_error": K.SERVER,
    "service_unavailable": K.OVERLOADED,
    "model_not_found": K.NOT_FOUND,
}


def _int(value: Any) -> int:
    if isinstance(value, float) and math.isfinite(value):
        return int(value)  # some servers send timestamps as floats
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _usage(u: Mapping[str, Any]) -> Usage:
    cached = _obj(u.get("prompt_tokens_details")).get("cached_tokens")
    if cached is None:
        cached = u.get("prompt_cache_hit_tokens")  # DeepSeek's name for it
    return Usage(
        _int(u.get("prompt_tokens")),
        _int(u.get("completion_tokens")),
        _int(cached),
        _int(_obj(u.get("completion_tokens_details")).get("reasoning_tokens")),
    )


def _usage_json(u: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def _parse_finish(word: str, index: int, stop_reason: Any = None) -> Finish:
    stop = stop_reason if isinstance(stop_reason, str) else None
    return Finish(_REASON_OF_WORD.get(word, R.OTHER), word, stop, index)


def _finish_word(finish: Finish) -> str:
    if finish.raw in _OWN_WORDS and _REASON_OF_WORD[finish.raw] == finish.reason:
        return finish.raw
    return _WORD_OF_REASON[finish.reason]


def _error(value: Any, status: int | None = None) -> StreamError:
    """A ``StreamError`` from an error object (``{"error": {...}}``, its inner object, or
    a bare string); ``status`` is the HTTP status when there was one."""
    if isinstance(value, dict) and value.get("error"):
        value = value["error"]
    kind_word: Any = None
    code: Any = None
    param: Any = None
    if isinstance(value, dict):
        message = value.get("message") or value.get("detail") or value.get("msg") or ""
        kind_word, code, param = value.get("type"), value.get("code"), value.get("param")
    else:
        message = value
    message = message if isinstance(message, str) else dumps(message).decode()
    if status is None and isinstance(code, int) and 400 <= code < 600:
        status = code  # llama.cpp and others put the HTTP status in `code`
    if status is not None:
        kind = K.REQUEST_TOO_LARGE if status == 413 else kind_of_status(status)
    else:
        kind = _KIND_OF_WORD.get(str(code)) or _KIND_OF_WORD.get(str(kind_word)) or K.SERVER
    raw = kind_word if isinstance(kind_word, str) else code if isinstance(code, str) else ""
    param = param if isinstance(param, str) else None
    return StreamError(kind, message or "upstream error", status, raw, param)


def _malformed(data: str | bytes) -> StreamError:
    text = data if isinstance(data, str) else data.decode("utf-8", "replace")
    return StreamError(K.SERVER, f"upstream sent malformed data: {text[:200]!r}")


# --- decoding -------------------------------------------------------------------------

_ODD_STARTS = (b"{", b"e")


class _OddLines:
    """Finds the lines an SSE parser ignores but OpenAI-compatible servers use: an
    ``error:`` field (older llama.cpp) and raw JSON on a line of its own (an error, or a
    whole non-streamed answer, inside a 200).

    Only a line that starts with ``{`` or ``e`` is kept. A chunk of one line and its
    blank line (what live streams send) is judged by its first byte alone; otherwise every
    line start is looked at. A line break and the byte after it split across chunks leave
    the next chunk starting a line, which ``_bol`` remembers.
    """

    __slots__ = ("_bol", "_partial")

    def __init__(self) -> None:
        self._bol = True
        self._partial: bytes | None = None  # the unended line, when it may be odd
        # (_bol implies no _partial: a line that is open is not at its start)

    def feed(self, data: bytes) -> list[bytes]:
        if (
            self._bol
            and data[:1] not in _ODD_STARTS
            and data[-2:] == b"\n\n"
            and data.find(b"\n", 0, -2) < 0
            and b"\r" not in data
        ):
            return []  # one line and its blank line: a live stream's usual chunk
        if b"\r" in data:
            data = data.replace(b"\r", b"\n")  # blank lines do not matter here
        if (
            self._partial is None
            and not (self._bol and data[:1] in _ODD_STARTS)
            and b"\n{" not in data
            and b"\ne" not in data
        ):
            if data:
                self._bol = data[-1:] == b"\n"
            return []
        if self._partial is not None:
            data = self._partial + data
        elif not self._bol:
            data = data[data.find(b"\n") + 1 :]  # the rest of a line already judged
        lines = data.split(b"\n")
        last = lines.pop()
        self._partial = last if last[:1] in _ODD_STARTS else None
        self._bol = not last
        return [line for line in lines if line[:1] == b"{" or line.startswith(b"error:")]


class OpenAIChatDecoder(SSEStreamDecoder):
    """Chat Completions chunks (from OpenAI or any compatible server) → neutral deltas."""

    def __init__(self, *, max_event_bytes: int | None = None) -> None:
        super().__init__(max_event_bytes=max_event_bytes)
        self._tools = ToolCallTracker()
        self._odd = _OddLines()
        self._started = False
        self._finished: set[int] = set()
        self._usage: Usage | None = None
        self._done = False  # [DONE] or an error seen: the rest is ignored
        self._closing = False

    def feed(self, data: bytes) -> list[Delta]:
        if self._done:
            return []
        out = super().feed(data)
        for line in self._odd.feed(data):
            out += self._odd_line(line)
        return out

    def close(self) -> list[Delta]:
        if self._done:
            return []
        # A last event without its blank line (`data: [DONE]` at EOF) still counts; a
        # truncated one then fails to parse and is dropped: the stream was cut.
        self._closing = True
        out = self.feed(b"\n\n")
        return out + super().close()

    def feed_event(self, event: Event) -> list[Delta]:
        if self._done:
            return []
        data = event.data
        if data[:1] == "[" and data.strip() == "[DONE]":
            self._done = self.complete = True
            return self._tools.end_all()
        if event.event == "error":
            try:
                return self._fail(_error(loads(data)))
            except orjson.JSONDecodeError:
                return self._fail(_error(data))
        if not data:
            return []
        try:
            chunk = loads(data)
        except orjson.JSONDecodeError:
            return [] if self._closing else self._fail(_malformed(data))
        return self._chunk(chunk) if isinstance(chunk, dict) else []

    def _fail(self, error: StreamError) -> list[Delta]:
        self._done = self.complete = True
        return [error]

    def _odd_line(self, line: bytes) -> list[Delta]:
        if self._done:
            return []
        if line[:1] != b"{":  # `error: <json or text>`
            text = line[6:].strip()
            try:
                return self._fail(_error(loads(text)))
            except orjson.JSONDecodeError:
                return self._fail(_error(text.decode("utf-8", "replace")))
        try:
            value = loads(line)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(value, dict):
            return []
        if value.get("error"):
            return self._fail(_error(value))
        if "choices" in value and not self._started:  # a non-streamed answer
            self._done = self.complete = True
            return OPENAI_CHAT.parse_response(value)
        return []

    def _chunk(self, chunk: Mapping[str, Any]) -> list[Delta]:
        if chunk.get("error"):
            return self._fail(_error(chunk))
        choices = chunk.get("choices")
        usage = chunk.get("usage")
        out: list[Delta] = []
        if not self._started:
            if not (chunk.get("id") or choices or usage):
                return []  # e.g. Azure's prompt_filter_results chunk, ahead of the answer
            self._started = True
            created = chunk.get("created")
            out.append(
                Start(str(chunk.get("id") or ""), str(chunk.get("model") or ""), _int(created))
            )
        if choices and isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict):
                    out += self._choice(choice)
        if usage and isinstance(usage, dict):
            u = _usage(usage)
            if u != self._usage:  # some servers repeat it on every chunk
                self._usage = u
                out.append(u)
        return out

    def _choice(self, choice: Mapping[str, Any]) -> list[Delta]:
        c = _int(choice.get("index"))
        delta = choice.get("delta")
        out: list[Delta] = []
        if isinstance(delta, dict):
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning and isinstance(reasoning, str):
                out.append(ReasoningDelta(reasoning, choice=c))
            content = delta.get("content")
            if content and isinstance(content, str):
                out.append(TextDelta(content, c, choice.get("logprobs")))
            refusal = delta.get("refusal")
            if refusal and isinstance(refusal, str):
                out.append(RefusalDelta(refusal, c))
            calls = delta.get("tool_calls")
            if calls and isinstance(calls, list):
                for position, call in enumerate(calls):
                    if isinstance(call, dict):
                        out += self._tool_call(c, position, call)
            legacy = delta.get("function_call")
            if legacy and isinstance(legacy, dict):
                out += self._tool_call(c, "function_call", {"function": legacy})
        word = choice.get("finish_reason")
        if word and isinstance(word, str) and c not in self._finished:
            self._finished.add(c)
            out += self._tools.end_all(c)
            out.append(_parse_finish(word, c, choice.get("stop_reason")))
        return out

    def _tool_call(self, c: int, position: object, call: Mapping[str, Any]) -> list[Delta]:
        # Keyed by the upstream's index; servers that send none key calls by id.
        key = call.get("index")
        if not isinstance(key, int):
            key = call.get("id") or position
        function = _obj(call.get("function"))
        out: list[Delta] = []
        if not self._tools.known(c, key):
            call_id = call.get("id")
            name = function.get("name")
            out += self._tools.start(c, key, str(call_id) if call_id else None, str(name or ""))
        arguments = function.get("arguments")
        if arguments:
            if not isinstance(arguments, str):  # an object, as some servers send it
                arguments = dumps(arguments).decode()
            out += self._tools.arguments(c, key, arguments)
        return out


# --- encoding -------------------------------------------------------------------------

_TAIL = b',"logprobs":null,"finish_reason":null}]}'
_ROLE = b'{"role":"assistant","content":""}'
_EMPTY_ARGUMENTS = b'"{}"'


class OpenAIChatEncoder(StreamEncoder):
    """Neutral deltas → ``chat.completion.chunk`` events as the openai SDKs read them."""

    _HANDLERS: ClassVar[dict[type, Callable[[OpenAIChatEncoder, Any], list[Frame]]]]

    def __init__(self, request: Request | None = None) -> None:
        self._model = request.model if request is not None and request.model else None
        self._include_usage = request.include_usage if request is not None else True
        self._head = b""  # the chunk's constant opening, up to `"choices":[`
        self._pre: list[bytes] = []  # per opened choice: head + `{"index":N,"delta":`
        self._calls: dict[tuple[int, int], tuple[bytes, bool]] = {}  # wire index, args sent
        self._call_count: dict[int, int] = {}
        self._usage: Usage | None = None
        self._ended = False

    def encode(self, delta: Delta) -> list[Frame]:
        if self._ended:
            return []
        return self._HANDLERS[type(delta)](self, delta)

    def close(self) -> list[Frame]:
        if self._ended:
            return []
        self._ended = True
        frames = []
        if self._usage is not None and self._include_usage:
            usage = dumps(_usage_json(self._usage))
            frames.append(Frame(self._opening() + b'],"usage":' + usage + b"}"))
        frames.append(Frame(b"[DONE]"))
        return frames

    def _opening(self) -> bytes:
        if not self._head:  # deltas without a Start: not a valid stream, but cope
            self._set_head(Start("", ""))
        return self._head

    def _set_head(self, start: Start) -> None:
        model = self._model if self._model is not None else start.model
        self._head = (
            b'{"id":%b,"object":"chat.completion.chunk","created":%d,"model":%b,"choices":['
            % (dumps(start.id), start.created, dumps(model))
        )

    def _start(self, start: Start) -> list[Frame]:
        if self._head:
            return []
        self._set_head(start)
        return self._open(0)  # the first byte early: the client sees the stream is alive

    def _open(self, choice: int) -> list[Frame]:
        """Role chunks for every choice up to ``choice`` not yet opened, in order."""
        head = self._opening()
        frames = []
        for c in range(len(self._pre), choice + 1):
            pre = head + b'{"index":%d,"delta":' % c
            self._pre.append(pre)
            frames.append(Frame(pre + _ROLE + _TAIL))
        return frames

    def _chunk(self, choice: int, delta: bytes, tail: bytes = _TAIL) -> list[Frame]:
        if choice < len(self._pre):
            return [Frame(self._pre[choice] + delta + tail)]
        frames = self._open(choice)
        frames.append(Frame(self._pre[choice] + delta + tail))
        return frames

    def _text(self, d: TextDelta) -> list[Frame]:
        if not d.text and d.logprobs is None:
            return []
        tail = _TAIL
        if d.logprobs is not None:
            tail = b',"logprobs":' + dumps(d.logprobs) + b',"finish_reason":null}]}'
        return self._chunk(d.choice, b'{"content":' + dumps(d.text) + b"}", tail)

    def _reasoning(self, d: ReasoningDelta) -> list[Frame]:
        if not d.text:
            return []  # a signature: this dialect has no place for it
        return self._chunk(d.choice, b'{"reasoning_content":' + dumps(d.text) + b"}")

    def _refusal(self, d: RefusalDelta) -> list[Frame]:
        return self._chunk(d.choice, b'{"refusal":' + dumps(d.text) + b"}") if d.text else []

    def _tool_start(self, d: ToolCallStart) -> list[Frame]:
        if (d.choice, d.index) in self._calls:
            return []
        # Numbered here again so the wire indexes ascend from 0 whatever came in.
        index = self._call_count.get(d.choice, 0)
        self._call_count[d.choice] = index + 1
        wire = b'{"tool_calls":[{"index":%d,' % index
        self._calls[d.choice, d.index] = (wire, False)
        body = b'"id":%b,"type":"function","function":{"name":%b,"arguments":""}}]}' % (
            dumps(d.id),
            dumps(d.name),
        )
        return self._chunk(d.choice, wire + body)

    def _arguments(self, choice: int, index: int, arguments: bytes) -> list[Frame]:
        wire, _ = self._calls[choice, index]
        self._calls[choice, index] = (wire, True)
        return self._chunk(choice, wire + b'"function":{"arguments":' + arguments + b"}}]}")

    def _tool_delta(self, d: ToolCallDelta) -> list[Frame]:
        if not d.arguments or (d.choice, d.index) not in self._calls:
            return []
        return self._arguments(d.choice, d.index, dumps(d.arguments))

    def _tool_end(self, d: ToolCallEnd) -> list[Frame]:
        call = self._calls.get((d.choice, d.index))
        if call is None or call[1]:
            return []
        return self._arguments(d.choice, d.index, _EMPTY_ARGUMENTS)  # a call without arguments

    def _finish(self, d: Finish) -> list[Frame]:
        frames: list[Frame] = []
        for (c, i), (_, sent) in list(self._calls.items()):
            if c == d.choice and not sent:
                frames += self._arguments(c, i, _EMPTY_ARGUMENTS)
        word = b',"logprobs":null,"finish_reason":%b}]}' % dumps(_finish_word(d))
        return frames + self._chunk(d.choice, b"{}", word)

    def _keep_usage(self, d: Usage) -> list[Frame]:
        self._usage = d  # sent at close, after every finish, as OpenAI does
        return []

    def _error(self, d: StreamError) -> list[Frame]:
        self._ended = True  # and no [DONE]: the SDK raises on the error event
        return [Frame(dumps(_error_json(d)))]


OpenAIChatEncoder._HANDLERS = {
    Start: OpenAIChatEncoder._start,
    TextDelta: OpenAIChatEncoder._text,
    ReasoningDelta: OpenAIChatEncoder._reasoning,
    RefusalDelta: OpenAIChatEncoder._refusal,
    ToolCallStart: OpenAIChatEncoder._tool_start,
    ToolCallDelta: OpenAIChatEncoder._tool_delta,
    ToolCallEnd: OpenAIChatEncoder._tool_end,
    Finish: OpenAIChatEncoder._finish,
    Usage: OpenAIChatEncoder._keep_usage,
    StreamError: OpenAIChatEncoder._error,
}


def _error_json(error: StreamError) -> dict[str, Any]:
    word, code = _ERROR_TYPE[error.kind]
    return {
        "error": {
            "message": error.message,
            "type": error.raw_type or word,
            "param": error.param,
            "code": code,
        }
    }


# --- requests -------------------------------------------------------------------------

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
        return ImagePart(data=match[2], media_type=match[1])
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


# --- the dialect ----------------------------------------------------------------------


class OpenAIChatDialect:
    """OpenAI Chat Completions, as spoken by OpenAI and the OpenAI-compatible servers."""

    name = NAME
    framing: Framing = "sse"
    media_type = "text/event-stream"

    def parse_request(self, body: bytes | str | Mapping[str, Any]) -> Request:
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

    def build_request(self, request: Request) -> dict[str, Any]:
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

    def decoder(self) -> OpenAIChatDecoder:
        return OpenAIChatDecoder()

    def encoder(self, request: Request | None = None) -> OpenAIChatEncoder:
        return OpenAIChatEncoder(request)

    def render_response(self, completion: Completion) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": completion.id,
            "object": "chat.completion",
            "created": completion.created,
            "model": completion.model,
            "choices": [_choice_json(c) for c in completion.choices],
        }
        if completion.usage is not None:
            body["usage"] = _usage_json(completion.usage)
        return body

    def parse_response(self, body: bytes | Mapping[str, Any]) -> list[Delta]:
        if not isinstance(body, Mapping):
            raw = body
            try:
                body = loads(raw)
            except orjson.JSONDecodeError:
                return [_malformed(raw)]
            if not isinstance(body, dict):
                return [_malformed(raw)]
        if body.get("error"):
            return [_error(body)]
        usage = body.get("usage")
        completion = Completion(
            id=str(body.get("id") or ""),
            model=str(body.get("model") or ""),
            created=_int(body.get("created")),
            choices=tuple(
                _parse_choice(c) for c in _list(body.get("choices")) if isinstance(c, dict)
            ),
            usage=_usage(usage) if isinstance(usage, dict) else None,
        )
        return replay(completion)

    def error_body(self, error: StreamError) -> tuple[int, dict[str, Any]]:
        status = error.http_status
        return (503 if status == 529 else status), _error_json(error)

    def parse_error(self, status: int, body: bytes) -> StreamError:
        try:
            value = loads(body)
        except orjson.JSONDecodeError:
            value = None
        if isinstance(value, dict) and any(value.get(k) for k in ("error", "message", "detail")):
            return _error(value, status)
        return error_from_status(status, body.decode("utf-8", "replace").strip()[:1000])


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
        word = _finish_word(choice.finish)
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
    index = _int(choice.get("index"))
    message = _obj(choice.get("message"))

    def text(key: str) -> str:
        value = message.get(key)
        return value if isinstance(value, str) else ""

    calls = []
    for i, item in enumerate(_list(message.get("tool_calls"))):
        function = _obj(_obj(item).get("function"))
        arguments = function.get("arguments") or "{}"
        if not isinstance(arguments, str):
            arguments = dumps(arguments).decode()
        calls.append(
            ToolCall(
                str(_obj(item).get("id") or f"call_{i}"), str(function.get("name") or ""), arguments
            )
        )
    word = choice.get("finish_reason")
    logprobs = _obj(choice.get("logprobs")).get("content")
    return Choice(
        index=index,
        text=text("content"),
        reasoning=text("reasoning_content") or text("reasoning"),
        refusal=text("refusal"),
        tool_calls=tuple(calls),
        finish=_parse_finish(word, index, choice.get("stop_reason"))
        if isinstance(word, str)
        else None,
        logprobs=tuple(logprobs) if isinstance(logprobs, list) else (),
    )


OPENAI_CHAT = OpenAIChatDialect()
