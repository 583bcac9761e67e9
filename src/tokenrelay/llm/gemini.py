"""Google Gemini: ``generateContent`` and ``streamGenerateContent?alt=sse``.

A stream is ``data:`` events (CRLF line ends, no ``[DONE]``), each a whole
``GenerateContentResponse``; it is complete when the body ends after a ``finishReason``.
Where Gemini and the neutral model do not fit, this codec decides:

- **Model and streaming live in the URL** (``models/{model}:streamGenerateContent``).
  ``parse_request(body)`` gives ``model=""`` unless the body has a ``model`` field; pass
  ``model=`` and ``stream=`` (``parse_path`` reads both from a URL path), and
  ``request_path`` builds the path for an upstream call. ``build_request`` leaves the
  model out of the body.
- **Tool calls have no ids** (Gemini 3 sends ``functionCall.id`` in responses, but the
  request side rejects ``id`` with a 400). A streamed call without one gets
  ``call_{responseId}_{n}`` (``call_{responseId}_{choice}_{n}`` for candidates after
  the first); a call in a request body gets ``call_{k}`` (its ordinal in the request),
  and a ``functionResponse`` takes the id of the oldest unanswered call of that name.
  ``build_request`` never sends ids and names each ``functionResponse`` after the call
  its ``tool_call_id`` refers to (the id itself when no earlier call has it). The
  encoder writes ``functionCall.id`` only when it is not the id the decoder derives.
- **Arguments arrive whole**: each call decodes to ``ToolCallStart``, one
  ``ToolCallDelta`` with the JSON of ``args`` and ``ToolCallEnd``. Arguments that are not
  a JSON object encode as ``{"arguments": <the text>}``.
- **Finish**: Gemini says ``STOP`` after tool calls too; a candidate that made calls
  finishes with ``TOOL_CALLS`` (raw ``"STOP"``). ``MAX_TOKENS`` is ``LENGTH``; the safety
  words (``SAFETY``, ``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``,
  ``IMAGE_SAFETY``...) are ``CONTENT_FILTER``; the rest ``OTHER``. A prompt blocked by
  ``promptFeedback.blockReason`` finishes choice 0 with ``CONTENT_FILTER``. Encoding
  sends ``PAUSE`` and ``ERROR`` as ``OTHER``.
- **Usage** is repeated cumulatively on every chunk; the decoder emits it (before the
  chunk's content) whenever it changes. ``input_tokens = promptTokenCount +
  toolUsePromptTokenCount`` (cached tokens included, as Gemini counts them),
  ``output_tokens = candidatesTokenCount + thoughtsTokenCount``. The encoder puts the
  latest usage on every chunk.
- **Thoughts**: ``thought: true`` text is reasoning; a ``thoughtSignature`` (on any
  part) is a signature delta, decoded before the part's own content (after it for a
  thought part). Encoded signatures ride on a thought part, or alone as
  ``{"text": "", "thoughtSignature": ...}``.
- **Refusals** have no Gemini form: they are sent as text. ``Finish.stop_sequence`` and
  ``Usage.estimated`` are not carried.
- **Requests**: snake_case field names are read too (Google's JSON parser takes both).
  A ``functionResponse`` of ``{"output": x}`` or ``{"error": x}`` is a result (an error
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
  ``parallel_tool_calls`` and ``user`` have no Gemini field. ``render_response`` renders
  the content of a failed ``Completion``; its error is the caller's to send with
  ``error_body``.
- The encoder reports the model the client asked for (``request.model``) when it is
  given the request, as a gateway that maps names should; else ``Start.model``.
- The encoder holds a finished tool call until the next delta, and a ``Finish`` until
  ``close()``, so the finish reason and the final usage ride on the last chunk with the
  last content, as Gemini sends them. Text is never held.
"""

from __future__ import annotations

import base64
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from ..errors import RequestError
from ..sse import Event
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
from .fields import obj_item, opt_bool, opt_float, opt_int, opt_list, opt_obj, opt_str, req_str
from .model import (
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
    "GEMINI",
    "GeminiDecoder",
    "GeminiDialect",
    "GeminiEncoder",
    "parse_path",
    "request_path",
]

_F = FinishReason
_CF = _F.CONTENT_FILTER
REASON_OF_WORD: dict[str, FinishReason] = {
    "STOP": _F.STOP,
    "MAX_TOKENS": _F.LENGTH,
} | dict.fromkeys(
    (
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
    ),
    _CF,
)
WORD_OF_REASON: dict[FinishReason, str] = {
    _F.STOP: "STOP",
    _F.TOOL_CALLS: "STOP",
    _F.LENGTH: "MAX_TOKENS",
    _F.CONTENT_FILTER: "SAFETY",
    _F.PAUSE: "OTHER",
    _F.ERROR: "OTHER",
    _F.OTHER: "OTHER",
}
_GEMINI_WORD = re.compile(r"[A-Z][A-Z_]*")

# google.rpc status words: the kind and HTTP code of each, and the word each kind gets.
KIND_OF_STATUS: dict[str, tuple[ErrorKind, int]] = {
    "INVALID_ARGUMENT": (ErrorKind.INVALID_REQUEST, 400),
    "FAILED_PRECONDITION": (ErrorKind.INVALID_REQUEST, 400),
    "OUT_OF_RANGE": (ErrorKind.INVALID_REQUEST, 400),
    "UNAUTHENTICATED": (ErrorKind.AUTHENTICATION, 401),
    "PERMISSION_DENIED": (ErrorKind.PERMISSION, 403),
    "NOT_FOUND": (ErrorKind.NOT_FOUND, 404),
    "RESOURCE_EXHAUSTED": (ErrorKind.RATE_LIMIT, 429),
    "INTERNAL": (ErrorKind.SERVER, 500),
    "UNKNOWN": (ErrorKind.SERVER, 500),
    "DATA_LOSS": (ErrorKind.SERVER, 500),
    "UNAVAILABLE": (ErrorKind.OVERLOADED, 503),
    "DEADLINE_EXCEEDED": (ErrorKind.TIMEOUT, 504),
}
STATUS_OF_KIND: dict[ErrorKind, str] = {
    ErrorKind.INVALID_REQUEST: "INVALID_ARGUMENT",
    ErrorKind.REQUEST_TOO_LARGE: "INVALID_ARGUMENT",  # Google answers 400 too
    ErrorKind.AUTHENTICATION: "UNAUTHENTICATED",
    ErrorKind.PERMISSION: "PERMISSION_DENIED",
    ErrorKind.NOT_FOUND: "NOT_FOUND",
    ErrorKind.RATE_LIMIT: "RESOURCE_EXHAUSTED",
    ErrorKind.SERVER: "INTERNAL",
    ErrorKind.OVERLOADED: "UNAVAILABLE",
    ErrorKind.TIMEOUT: "DEADLINE_EXCEEDED",
}

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


def derived_call_id(response_id: str, choice: int, n: int) -> str:
    """The id the decoder gives the ``n``-th id-less call of a candidate."""
    prefix = f"call_{response_id}_" if response_id else "call_"
    return f"{prefix}{n}" if choice == 0 else f"{prefix}{choice}_{n}"


def _int(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    return value if type(value) is int else 0


def _time(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    try:
        return int(datetime.fromisoformat(value).timestamp())
    except ValueError:
        return 0


def _reason(word: str, called: bool) -> FinishReason:
    reason = REASON_OF_WORD.get(word, _F.OTHER)
    return _F.TOOL_CALLS if reason is _F.STOP and called else reason


def finish_word(finish: Finish) -> str:
    """Gemini's word for ``finish``: its own ``raw`` when that means the same."""
    raw = finish.raw
    if raw and _GEMINI_WORD.fullmatch(raw):
        if _reason(raw, finish.reason is _F.TOOL_CALLS) is finish.reason:
            return raw
    return WORD_OF_REASON[finish.reason]


def _usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    thoughts = _int(meta, "thoughtsTokenCount")
    return Usage(
        _int(meta, "promptTokenCount") + _int(meta, "toolUsePromptTokenCount"),
        _int(meta, "candidatesTokenCount") + thoughts,
        _int(meta, "cachedContentTokenCount"),
        thoughts,
    )


def usage_metadata(usage: Usage) -> dict[str, int]:
    meta = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens - usage.reasoning_tokens,
        "totalTokenCount": usage.total_tokens,
    }
    if usage.cached_tokens:
        meta["cachedContentTokenCount"] = usage.cached_tokens
    if usage.reasoning_tokens:
        meta["thoughtsTokenCount"] = usage.reasoning_tokens
    return meta


def _error(error: Any, status: int | None) -> StreamError:
    message, word, code = "", "", status
    if isinstance(error, dict):
        if isinstance(error.get("message"), str):
            message = error["message"]
        if isinstance(error.get("status"), str):
            word = error["status"]
        if type(error.get("code")) is int and status is None:
            code = error["code"]
    elif isinstance(error, str):
        message = error
    if word in KIND_OF_STATUS:
        kind = KIND_OF_STATUS[word][0]
    else:
        kind = kind_of_status(code) if code else ErrorKind.SERVER
    return StreamError(kind, message or word or f"upstream error {code}", code, word)


def _malformed(exc: Exception) -> StreamError:
    return StreamError(ErrorKind.SERVER, f"the upstream sent malformed data: {exc}")


# --- decoding -----------------------------------------------------------------------


class GeminiDecoder(SSEStreamDecoder):
    """``streamGenerateContent?alt=sse`` bytes → deltas (see the module docstring)."""

    def __init__(self, *, max_event_bytes: int | None = None) -> None:
        super().__init__(max_event_bytes=max_event_bytes)
        self._tracker = ToolCallTracker()
        self._started = False
        self._response_id = ""
        self._usage: Usage | None = None
        self._calls: dict[int, int] = {}  # calls per candidate: the key of the next one
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self._failed = False

    def feed_event(self, event: Event) -> list[Delta]:
        data = event.data
        if self._failed or not data or data == "[DONE]":
            return []
        try:
            chunk = loads(data)
        except ValueError as exc:
            return self._fail(_malformed(exc))
        if not isinstance(chunk, dict):
            return self._fail(_malformed(TypeError(f"a chunk is {type(chunk).__name__}")))
        return self.feed_chunk(chunk)

    def _fail(self, error: StreamError) -> list[Delta]:
        self._failed = self.complete = True
        return [error]

    def feed_chunk(self, chunk: Mapping[str, Any]) -> list[Delta]:
        """Deltas for one ``GenerateContentResponse`` object."""
        if self._failed:
            return []
        if "error" in chunk:
            return self._fail(_error(chunk["error"], None))
        out: list[Delta] = []
        if not self._started:
            self._started = True
            rid, model = chunk.get("responseId"), chunk.get("modelVersion")
            self._response_id = rid if isinstance(rid, str) else ""
            model = model if isinstance(model, str) else ""
            out.append(Start(self._response_id, model, _time(chunk.get("createTime"))))
        usage = _usage(chunk.get("usageMetadata"))
        if usage is not None and usage != self._usage:
            self._usage = usage
            out.append(usage)
        candidates = chunk.get("candidates")
        if isinstance(candidates, list):
            for position, candidate in enumerate(candidates):
                if isinstance(candidate, dict):
                    out += self._candidate(candidate, position)
        feedback = chunk.get("promptFeedback")
        if isinstance(feedback, dict) and 0 not in self._finished:
            block = feedback.get("blockReason")
            if isinstance(block, str) and block and block != "BLOCK_REASON_UNSPECIFIED":
                self._seen.add(0)
                self._finished.add(0)
                out.append(Finish(_CF, block))
        self.complete = bool(self._finished) and self._seen <= self._finished
        return out

    def _candidate(self, candidate: Mapping[str, Any], position: int) -> list[Delta]:
        choice = candidate.get("index", position)
        if type(choice) is not int or choice < 0:
            choice = position
        if choice in self._finished:
            return []  # a repeated final candidate adds nothing
        self._seen.add(choice)
        out: list[Delta] = []
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if isinstance(parts, list):
            for part in parts:
                if isinstance(part, dict):
                    out += self._part(part, choice)
        word = candidate.get("finishReason")
        if isinstance(word, str) and word and word != "FINISH_REASON_UNSPECIFIED":
            self._finished.add(choice)
            out += self._tracker.end_all(choice)
            out.append(Finish(_reason(word, choice in self._tracker.called), word, None, choice))
        return out

    def _part(self, part: Mapping[str, Any], choice: int) -> list[Delta]:
        out: list[Delta] = []
        signature = part.get("thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        text = part.get("text")
        if part.get("thought") is True:
            if isinstance(text, str) and text:
                out.append(ReasoningDelta(text, None, choice))
            if signature:
                out.append(ReasoningDelta("", signature, choice))
            return out
        if signature:
            out.append(ReasoningDelta("", signature, choice))
        if isinstance(text, str):
            if text:
                out.append(TextDelta(text, choice))
        elif isinstance(call := part.get("functionCall"), dict):
            out += self._call(call, choice)
        return out  # other parts (executableCode, inlineData...) have no neutral form

    def _call(self, call: Mapping[str, Any], choice: int) -> list[Delta]:
        n = self._calls.get(choice, 0)
        self._calls[choice] = n + 1
        name = call.get("name")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            call_id = derived_call_id(self._response_id, choice, n)
        args = call.get("args")
        out = self._tracker.start(choice, n, call_id, name if isinstance(name, str) else "")
        out += self._tracker.arguments(choice, n, dumps({} if args is None else args).decode())
        return out + self._tracker.end(choice, n)


# --- encoding -----------------------------------------------------------------------

_EMPTY_TEXT = b'{"text":""}'


def args_object(arguments: str) -> Any:
    """A tool call's JSON arguments as the object Gemini needs."""
    if not arguments:
        return {}
    try:
        value = loads(arguments)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"arguments": arguments}


def _reasoning_part(text: str, signature: str | None) -> dict[str, Any]:
    part: dict[str, Any] = {"text": text, "thought": True} if text else {"text": ""}
    if signature:
        part["thoughtSignature"] = signature
    return part


def _call_part(call_id: str, name: str, arguments: str, derived: str) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name, "args": args_object(arguments)}
    if call_id != derived:
        call["id"] = call_id
    return {"functionCall": call}


def _candidate_json(choice: int, parts: Sequence[bytes], finish: str | None) -> bytes:
    out = b'{"content":{"parts":[' + b",".join(parts or [_EMPTY_TEXT]) + b'],"role":"model"}'
    if finish is not None:
        out += b',"finishReason":' + dumps(finish)
    return out + b',"index":%d}' % choice


def _meta_fields(model: str, response_id: str, created: int) -> dict[str, str]:
    fields = {}
    if model:
        fields["modelVersion"] = model
    if response_id:
        fields["responseId"] = response_id
    if created:
        fields["createTime"] = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return fields


class GeminiEncoder(StreamEncoder):
    """Deltas → ``streamGenerateContent?alt=sse`` chunks (see the module docstring)."""

    def __init__(self, request: Request | None = None) -> None:
        self._response_id = ""
        self._model = request.model if request else ""
        self._tail = self._meta(self._model, "", 0)
        self._usage: Usage | None = None
        self._usage_json = b""
        self._sent_usage: Usage | None = None
        self._parts: dict[int, list[bytes]] = {}  # held parts per candidate
        self._finish: dict[int, str] = {}  # held finish words per candidate
        self._calls: dict[tuple[int, int], tuple[str, str, list[str]]] = {}
        self._ended: dict[int, dict[int, bytes]] = {}  # ended calls waiting for lower ones
        self._next_call: dict[int, int] = {}
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
            Finish: self._finish_choice,
            StreamError: self._error,
        }

    @staticmethod
    def _meta(model: str, response_id: str, created: int) -> bytes:
        fields = _meta_fields(model, response_id, created)
        return b"".join(b',"%s":' % k.encode() + dumps(v) for k, v in fields.items()) + b"}"

    def encode(self, delta: Delta) -> list[Frame]:
        if self._done:
            return []
        return self._handlers[type(delta)](delta)

    def _start(self, delta: Start) -> list[Frame]:
        self._response_id = delta.id
        self._tail = self._meta(self._model or delta.model, delta.id, delta.created)
        return []

    def _chunk(self, candidates: list[bytes]) -> Frame:
        """One chunk: the candidates, the latest usage, the response's metadata."""
        self._sent_usage = self._usage
        fields = [b'"candidates":[' + b",".join(candidates) + b"]"] if candidates else []
        if self._usage_json:
            fields.append(self._usage_json)
        tail = self._tail if fields else self._tail.removeprefix(b",")
        return Frame(b"{" + b",".join(fields) + tail)

    def _flush(self) -> list[Frame]:
        if not self._parts and not self._finish:
            return []
        choices = sorted(self._parts.keys() | self._finish.keys())
        parts, finish = self._parts, self._finish
        self._parts, self._finish = {}, {}
        return [self._chunk([_candidate_json(c, parts.get(c, ()), finish.get(c)) for c in choices])]

    def _send(self, choice: int, part: bytes) -> list[Frame]:
        if not self._parts and not self._finish:  # the common case: nothing held
            return [self._chunk([_candidate_json(choice, (part,), None)])]
        self._parts.setdefault(choice, []).append(part)
        return self._flush()

    def _text(self, delta: TextDelta | RefusalDelta) -> list[Frame]:
        if not delta.text:
            return []
        return self._send(delta.choice, b'{"text":' + dumps(delta.text) + b"}")

    def _reasoning(self, delta: ReasoningDelta) -> list[Frame]:
        if not delta.text and not delta.signature:
            return []
        return self._send(delta.choice, dumps(_reasoning_part(delta.text, delta.signature)))

    def _call_start(self, delta: ToolCallStart) -> list[Frame]:
        self._calls[delta.choice, delta.index] = (delta.id, delta.name, [])
        return []

    def _call_delta(self, delta: ToolCallDelta) -> list[Frame]:
        call = self._calls.get((delta.choice, delta.index))
        if call is not None:
            call[2].append(delta.arguments)
        return []

    def _call_end(self, delta: ToolCallEnd) -> list[Frame]:
        call = self._calls.pop((delta.choice, delta.index), None)
        if call is None:
            return []
        choice = delta.choice
        derived = derived_call_id(self._response_id, choice, delta.index)
        waiting = self._ended.setdefault(choice, {})
        waiting[delta.index] = dumps(_call_part(call[0], call[1], "".join(call[2]), derived))
        # Calls go out in ordinal order (the decoder numbers them by position) and are
        # held: the next delta, or the finish, rides in the same chunk.
        n = self._next_call.get(choice, 0)
        while n in waiting:
            self._parts.setdefault(choice, []).append(waiting.pop(n))
            n += 1
        self._next_call[choice] = n
        return []

    def _end_calls(self, choice: int | None) -> None:
        for key in sorted(k for k in self._calls if choice is None or k[0] == choice):
            self._call_end(ToolCallEnd(key[1], key[0]))
        for c, waiting in self._ended.items():
            if choice is None or c == choice:
                self._parts.setdefault(c, []).extend(waiting.pop(i) for i in sorted(waiting))

    def _set_usage(self, delta: Usage) -> list[Frame]:
        self._usage = delta
        self._usage_json = b'"usageMetadata":' + dumps(usage_metadata(delta))
        return []

    def _finish_choice(self, delta: Finish) -> list[Frame]:
        self._end_calls(delta.choice)
        self._finish[delta.choice] = finish_word(delta)
        return []

    def _error(self, delta: StreamError) -> list[Frame]:
        frames = self._flush()
        self._done = True
        return [*frames, Frame(dumps(error_body(delta)[1]))]

    def close(self) -> list[Frame]:
        if self._done:
            return []
        self._done = True
        self._end_calls(None)
        frames = self._flush()
        if not frames and self._usage is not None and self._usage != self._sent_usage:
            frames.append(self._chunk([]))
        return frames


# --- requests -----------------------------------------------------------------------

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


class _CallIds:
    """Ids for the id-less calls of a request, and the call each result answers."""

    def __init__(self) -> None:
        self._count = 0
        self._pending: dict[str, deque[str]] = {}

    def call(self, name: str, given: str) -> str:
        call_id = given or f"call_{self._count}"
        self._count += 1
        self._pending.setdefault(name, deque()).append(call_id)
        return call_id

    def result(self, name: str, given: str) -> str:
        queue = self._pending.get(name)
        if given:
            if queue and given in queue:
                queue.remove(given)
            return given
        return queue.popleft() if queue else f"call_{name}"


_MODE = {"AUTO": "auto", "VALIDATED": "auto", "MODE_UNSPECIFIED": "auto", "NONE": "none"}
_MODE_OF_CHOICE = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}
_OWN_KEYS = {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model"}


def _parse_part(part: Mapping[str, Any], where: str, model_turn: bool, ids: _CallIds) -> list[Part]:
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
            ImagePart(data=req_str(data, "data", w), media_type=req_str(data, "mimeType", w)),
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
    ids = _CallIds()
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


# --- building requests and responses ------------------------------------------------

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
                    out.append(_reasoning_part("", signature))
                signature = sig
                continue
            case ReasoningPart(text=text, signature=sig):
                if signature:
                    out.append(_reasoning_part("", signature))
                    signature = ""
                out.append(_reasoning_part(text, sig))
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
        out.append(_reasoning_part("", signature))
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


def render_response(completion: Completion) -> dict[str, Any]:
    candidates = []
    for choice in completion.choices:
        parts: list[dict[str, Any]] = []
        if choice.reasoning or choice.reasoning_signature:
            parts.append(_reasoning_part(choice.reasoning, choice.reasoning_signature))
        if text := choice.text + choice.refusal:
            parts.append({"text": text})
        for n, call in enumerate(choice.tool_calls):
            derived = derived_call_id(completion.id, choice.index, n)
            parts.append(_call_part(call.id, call.name, call.arguments, derived))
        candidate: dict[str, Any] = {"content": {"parts": parts or [{"text": ""}], "role": "model"}}
        if choice.finish is not None:
            candidate["finishReason"] = finish_word(choice.finish)
        candidate["index"] = choice.index
        candidates.append(candidate)
    body: dict[str, Any] = {"candidates": candidates}
    if completion.usage is not None:
        body["usageMetadata"] = usage_metadata(completion.usage)
    body.update(_meta_fields(completion.model, completion.id, completion.created))
    return body


def parse_response(body: bytes | Mapping[str, Any]) -> list[Delta]:
    """Deltas of a ``generateContent`` answer (or of the JSON array that
    ``streamGenerateContent`` without ``alt=sse`` sends)."""
    decoder = GeminiDecoder()
    if isinstance(body, Mapping):
        return decoder.feed_chunk(body)
    try:
        value = loads(body)
    except ValueError as exc:
        return [_malformed(exc)]
    chunks = value if isinstance(value, list) else [value]
    out: list[Delta] = []
    for chunk in chunks:
        if not isinstance(chunk, dict):
            return [*out, _malformed(TypeError(f"a response is {type(chunk).__name__}"))]
        out += decoder.feed_chunk(chunk)
    return out


def error_body(error: StreamError) -> tuple[int, dict[str, Any]]:
    word = STATUS_OF_KIND[error.kind]
    if KIND_OF_STATUS.get(error.raw_type, (None,))[0] is error.kind:
        word = error.raw_type  # the upstream's own word, when it means the same
    code = KIND_OF_STATUS[word][1]
    return code, {"error": {"code": code, "message": error.message, "status": word}}


def parse_error(status: int, body: bytes) -> StreamError:
    try:
        value = loads(body)
    except ValueError:
        return error_from_status(status, body.decode("utf-8", "replace").strip()[:1000])
    if isinstance(value, list) and value:
        value = value[0]  # streamGenerateContent without alt=sse wraps it in an array
    if isinstance(value, dict) and "error" in value:
        return _error(value["error"], status)
    return error_from_status(status, "")


class GeminiDialect:
    """The Gemini dialect (see the module docstring for what does not map one to one).

    ``parse_request`` takes the keywords ``model`` and ``stream``, which Gemini carries in
    the URL (``parse_path`` reads them); without them the model is the body's ``model``
    field or ``""``, and ``stream`` is False.
    """

    name = "gemini"
    framing: Framing = "sse"
    media_type = "text/event-stream"

    def parse_request(
        self, body: bytes | str | Mapping[str, Any], *, model: str = "", stream: bool = False
    ) -> Request:
        return parse_request(body, model=model, stream=stream)

    def build_request(self, request: Request) -> dict[str, Any]:
        return build_request(request)

    def decoder(self) -> GeminiDecoder:
        return GeminiDecoder()

    def encoder(self, request: Request | None = None) -> GeminiEncoder:
        return GeminiEncoder(request)

    def render_response(self, completion: Completion) -> dict[str, Any]:
        return render_response(completion)

    def parse_response(self, body: bytes | Mapping[str, Any]) -> list[Delta]:
        return parse_response(body)

    def error_body(self, error: StreamError) -> tuple[int, dict[str, Any]]:
        return error_body(error)

    def parse_error(self, status: int, body: bytes) -> StreamError:
        return parse_error(status, body)


GEMINI = GeminiDialect()
