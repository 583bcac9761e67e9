"""The OpenAI Responses dialect (``POST /v1/responses``).

Every event carries ``event: <type>`` and the same ``type`` in its JSON, with a
``sequence_number`` counting from 0; there is no ``[DONE]``: the stream ends after
``response.completed``, ``response.incomplete`` or ``response.failed``.

Where the dialect and the neutral model differ, this codec chooses:

- *Finish reasons.* The Responses API has none: a completed response ends ``STOP``, or
  ``TOOL_CALLS`` when it made function calls; ``response.incomplete`` ends ``LENGTH``
  (``max_output_tokens``) or ``CONTENT_FILTER`` (``content_filter``), anything else
  ``OTHER`` with the word in ``Finish.raw``. The encoder maps them back.
- *Reasoning.* Raw reasoning (``response.reasoning_text.delta``, as open-weight models
  send it) and reasoning summaries (``response.reasoning_summary_text.delta``, as
  OpenAI's own models send them) both become ``ReasoningDelta``; if one reasoning item
  streams both, the first kind seen wins, so the text is not doubled. Summary parts of
  one item are joined with a blank line. ``encrypted_content`` travels as the reasoning
  signature (``ReasoningDelta.signature``, ``ReasoningPart.signature``), so a
  Responses-to-Responses hop keeps the stateless (``store: false``) reasoning chain. The
  encoder writes neutral reasoning as a ``reasoning`` item of ``reasoning_text`` content.
- *Only choice 0*: the dialect has one output per response; the encoder drops other
  choices. Logprobs and annotations are not carried (the encoder sends ``[]``).
- *Items.* The encoder opens a new output item whenever the kind of content changes
  (message, reasoning, function call), keeps function calls open until their
  ``ToolCallEnd`` (calls may interleave), and names items ``msg_``/``rs_``/``fc_`` +
  the response id without ``resp_`` + the output index.
- *Requests.* ``instructions`` is the first system message (``developer`` is
  ``system``); consecutive assistant-side items (message, reasoning, function call)
  make one assistant message. Non-function tools and tools without ``strict: false``
  are kept whole in ``extra["tools"]`` for a same-dialect hop (the Responses API makes
  function tools strict by default; tools from other dialects are sent ``strict:
  false``). ``stop``, ``n``, ``logprobs`` and tool errors (``is_error``) have no place
  here and are dropped; usage is always reported, so parsed requests ask for it.
- *Errors.* Bodies are ``{"error": {message, type, param, code}}`` like Chat
  Completions, with 529 sent as 503 (OpenAI's "overloaded"; the SDK knows no 529).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from math import isfinite
from typing import Any

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

__all__ = ["OPENAI_RESPONSES", "OpenAIResponsesDialect"]

Json = dict[str, Any]

# --- vocabulary ---------------------------------------------------------------------

_INCOMPLETE_REASON = {
    "max_output_tokens": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
}
_INCOMPLETE_WORD = {reason: word for word, reason in _INCOMPLETE_REASON.items()}
_OTHER_INCOMPLETE_WORDS = frozenset({"max_messages", "steered"})

# Error words (types and codes) of this dialect, read both ways.
_KIND_OF_WORD = {
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "invalid_prompt": ErrorKind.INVALID_REQUEST,
    "context_length_exceeded": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION,
    "invalid_api_key": ErrorKind.AUTHENTICATION,
    "permission_error": ErrorKind.PERMISSION,
    "not_found_error": ErrorKind.NOT_FOUND,
    "model_not_found": ErrorKind.NOT_FOUND,
    "request_too_large": ErrorKind.REQUEST_TOO_LARGE,
    "rate_limit_error": ErrorKind.RATE_LIMIT,
    "rate_limit_exceeded": ErrorKind.RATE_LIMIT,
    "insufficient_quota": ErrorKind.RATE_LIMIT,
    "server_error": ErrorKind.SERVER,
    "timeout": ErrorKind.TIMEOUT,
    "overloaded": ErrorKind.OVERLOADED,
}
# kind -> (error type, error code) of an HTTP error body.
_ERROR_WORDS: dict[ErrorKind, tuple[str, str | None]] = {
    ErrorKind.INVALID_REQUEST: ("invalid_request_error", None),
    ErrorKind.AUTHENTICATION: ("authentication_error", "invalid_api_key"),
    ErrorKind.PERMISSION: ("permission_error", None),
    ErrorKind.NOT_FOUND: ("not_found_error", None),
    ErrorKind.REQUEST_TOO_LARGE: ("invalid_request_error", "request_too_large"),
    ErrorKind.RATE_LIMIT: ("rate_limit_error", "rate_limit_exceeded"),
    ErrorKind.SERVER: ("server_error", "server_error"),
    ErrorKind.TIMEOUT: ("server_error", "timeout"),
    ErrorKind.OVERLOADED: ("server_error", "overloaded"),
}
# kind -> the code of a failed response (``ResponseError.code`` is a closed list).
_FAILED_CODE = {
    ErrorKind.RATE_LIMIT: "rate_limit_exceeded",
    ErrorKind.INVALID_REQUEST: "invalid_prompt",
    ErrorKind.REQUEST_TOO_LARGE: "invalid_prompt",
}


def _kind_of_words(*words: Any) -> ErrorKind:
    for word in words:
        kind = _KIND_OF_WORD.get(word) if isinstance(word, str) else None
        if kind is not None:
            return kind
    return ErrorKind.SERVER


def _own_word(raw: str, kind: ErrorKind, default: str) -> str:
    """``raw`` if it is a word of this dialect meaning ``kind``, else ``default``."""
    return raw if _KIND_OF_WORD.get(raw) is kind else default


def _error_from_object(error: Mapping[str, Any], status: int | None = None) -> StreamError:
    """A ``StreamError`` from an error object (``{code, message, type?}``)."""
    code, type_ = error.get("code"), error.get("type")
    kind = kind_of_status(status) if status and status >= 400 else _kind_of_words(code, type_)
    message = error.get("message")
    raw = code if isinstance(code, str) else type_ if isinstance(type_, str) else ""
    return StreamError(kind, message if isinstance(message, str) else "upstream error", status, raw)


def _malformed(what: str) -> StreamError:
    return StreamError(ErrorKind.SERVER, f"the upstream sent malformed data: {what}")


# --- output items (shared by the encoder, render_response and the decoder) ----------


def _text_part(text: str) -> Json:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message_item(id: str, status: str, content: list[Json]) -> Json:
    return {"id": id, "type": "message", "status": status, "role": "assistant", "content": content}


def _reasoning_item(id: str, status: str, content: list[Json], signature: str) -> Json:
    item: Json = {"id": id, "type": "reasoning", "summary": [], "content": content}
    if signature:
        item["encrypted_content"] = signature
    item["status"] = status
    return item


def _call_item(id: str, status: str, call_id: str, name: str, arguments: str) -> Json:
    return {
        "id": id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }


def _usage_json(usage: Usage | None) -> Json | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        # cache writes are not in the neutral model; the SDK types the field as required
        "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


# Upstream JSON is read through these: a field of the wrong type counts as missing.
def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _obj(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _objs(value: Any) -> list[Json]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _usage_of(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    return Usage(
        input_tokens=_int(usage.get("input_tokens")),
        output_tokens=_int(usage.get("output_tokens")),
        cached_tokens=_int(_obj(usage.get("input_tokens_details")).get("cached_tokens")),
        reasoning_tokens=_int(_obj(usage.get("output_tokens_details")).get("reasoning_tokens")),
    )


def _reasoning_text(item: Mapping[str, Any]) -> str:
    content = "".join(_str(p.get("text")) for p in _objs(item.get("content")))
    return content or "\n\n".join(_str(p.get("text")) for p in _objs(item.get("summary")))


def _item_deltas(item: Mapping[str, Any], tools: ToolCallTracker, key: object) -> list[Delta]:
    """The deltas of one whole output item (non-streamed answers, unstreamed items)."""
    out: list[Delta] = []
    kind = item.get("type")
    if kind == "message":
        for part in _objs(item.get("content")):
            if part.get("type") == "output_text" and _str(part.get("text")):
                out.append(TextDelta(part["text"]))
            elif part.get("type") == "refusal" and _str(part.get("refusal")):
                out.append(RefusalDelta(part["refusal"]))
    elif kind == "reasoning":
        text = _reasoning_text(item)
        if text:
            out.append(ReasoningDelta(text))
        if _str(item.get("encrypted_content")):
            out.append(ReasoningDelta("", item["encrypted_content"]))
    elif kind == "function_call":
        out += tools.start(0, key, _str(item.get("call_id")), _str(item.get("name")))
        out += tools.arguments(0, key, _str(item.get("arguments")))
        out += tools.end(0, key)
    return out


def _terminal_deltas(response: Mapping[str, Any], tools: ToolCallTracker) -> list[Delta]:
    """Usage and Finish (or the StreamError) that end a response of this status."""
    out: list[Delta] = []
    status = response.get("status")
    if status == "failed":
        error = response.get("error")
        if not isinstance(error, dict):
            error = {"code": "server_error", "message": "the response failed"}
        return [_error_from_object(error)]
    usage = _usage_of(response.get("usage"))
    if usage is not None:
        out.append(usage)
    out += tools.end_all(0)
    if status == "incomplete":
        word = _str(_obj(response.get("incomplete_details")).get("reason")) or "incomplete"
        out.append(Finish(_INCOMPLETE_REASON.get(word, FinishReason.OTHER), word))
    elif status == "completed":
        out.append(Finish(FinishReason.TOOL_CALLS if 0 in tools.called else FinishReason.STOP))
    elif status == "cancelled":
        out.append(Finish(FinishReason.OTHER, "cancelled"))
    return out


def _start_of(response: Any) -> Start:
    response = response if isinstance(response, dict) else {}
    created = response.get("created_at")
    created = int(created) if isinstance(created, float) and isfinite(created) else _int(created)
    return Start(_str(response.get("id")), _str(response.get("model")), created)


# --- decoder -------------------------------------------------------------------------

_Handler = Callable[["OpenAIResponsesDecoder", Json], list[Delta]]


class OpenAIResponsesDecoder(SSEStreamDecoder):
    """Responses stream events in, neutral deltas out."""

    def __init__(self, *, max_event_bytes: int | None = None) -> None:
        super().__init__(max_event_bytes=max_event_bytes)
        self._started = False
        self._over = False  # after the terminal event or an error: nothing more counts
        self._tools = ToolCallTracker()
        self._streamed: set[object] = set()  # items whose content came as deltas
        self._finished: set[object] = set()  # items whose output_item.done was read
        self._seen_ids: set[str] = set()  # item ids and call ids of items met
        self._reasoning: dict[object, tuple[str, int]] = {}  # item -> (kind, summary part)

    def feed_event(self, event: Event) -> list[Delta]:
        if self._over or not event.data or event.data == "[DONE]":  # proxies add [DONE]
            return []
        try:
            obj = loads(event.data)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            self._over = True
            return [_malformed(f"{event.event} event is not a JSON object")]
        type_ = obj.get("type") or event.event
        handler = _HANDLERS.get(type_) if isinstance(type_, str) else None
        if handler is None:
            # a bare {"error": ...} is how proxies report a failure inside a 200
            return self._error(obj) if isinstance(obj.get("error"), dict) else []
        out = handler(self, obj)
        if out and not self._started and not isinstance(out[0], StreamError):
            self._started = True
            if not isinstance(out[0], Start):
                out.insert(0, Start("", ""))
        return out

    def _start(self, obj: Json) -> list[Delta]:
        return [] if self._started else [_start_of(obj.get("response"))]

    @staticmethod
    def _key(obj: Json) -> object:
        """The item an event is about: its output index (or its id, if a server omits it)."""
        index = obj.get("output_index")
        if isinstance(index, int):
            return index
        return _str(obj.get("item_id")) or _str(_obj(obj.get("item")).get("id"))

    def _mark(self, obj: Json) -> object:
        """Note that an item streams content; its key."""
        key = self._key(obj)
        if key not in self._streamed:
            self._streamed.add(key)
            self._note(obj)  # its item_id: the final response must not repeat it
        return key

    def _text(self, obj: Json) -> list[Delta]:
        self._mark(obj)
        delta = _str(obj.get("delta"))
        return [TextDelta(delta)] if delta else []

    def _refusal(self, obj: Json) -> list[Delta]:
        self._mark(obj)
        delta = _str(obj.get("delta"))
        return [RefusalDelta(delta)] if delta else []

    def _reasoning_delta(self, obj: Json, kind: str, part: int) -> list[Delta]:
        delta = _str(obj.get("delta"))
        if not delta:
            return []
        key = self._mark(obj)
        seen = self._reasoning.get(key)
        if seen is None:
            self._reasoning[key] = (kind, part)
        elif seen[0] != kind:
            return []  # the item's other kind of reasoning already told this
        elif seen[1] != part:
            self._reasoning[key] = (kind, part)
            delta = "\n\n" + delta
        return [ReasoningDelta(delta)]

    def _reasoning_raw(self, obj: Json) -> list[Delta]:
        return self._reasoning_delta(obj, "text", -1)

    def _reasoning_summary(self, obj: Json) -> list[Delta]:
        return self._reasoning_delta(obj, "summary", _int(obj.get("summary_index")))

    def _item_added(self, obj: Json) -> list[Delta]:
        item = _obj(obj.get("item"))
        self._note(item)
        if item.get("type") != "function_call":
            return []
        return self._tools.start(
            0, self._key(obj), _str(item.get("call_id")), _str(item.get("name"))
        )

    def _note(self, obj: Json) -> None:
        self._seen_ids.update(_str(obj.get(k)) for k in ("id", "call_id", "item_id"))
        self._seen_ids.discard("")

    def _arguments(self, obj: Json) -> list[Delta]:
        key = self._key(obj)
        if not self._tools.known(0, key):
            return []
        self._mark(obj)
        return self._tools.arguments(0, key, _str(obj.get("delta")))

    def _arguments_done(self, obj: Json) -> list[Delta]:
        # Some servers send the arguments whole here and never as deltas.
        key = self._key(obj)
        if key in self._streamed or not self._tools.known(0, key):
            return []
        self._streamed.add(key)
        return self._tools.arguments(0, key, _str(obj.get("arguments")))

    def _item_done(self, obj: Json) -> list[Delta]:
        item, key = _obj(obj.get("item")), self._key(obj)
        if not item or key in self._finished:
            return []
        self._finished.add(key)
        self._note(item)
        if item.get("type") == "function_call":
            out = self._tools.start(0, key, _str(item.get("call_id")), _str(item.get("name")))
            if key not in self._streamed:
                out += self._tools.arguments(0, key, _str(item.get("arguments")))
            return out + self._tools.end(0, key)
        if key not in self._streamed:  # a server that sends whole items
            return _item_deltas(item, self._tools, key)
        signature = _str(item.get("encrypted_content")) if item.get("type") == "reasoning" else ""
        return [ReasoningDelta("", signature)] if signature else []

    def _end(self, obj: Json) -> list[Delta]:
        self._over = self.complete = True
        response = obj.get("response")
        if not isinstance(response, dict):
            return [_malformed(f"{obj.get('type')} event without a response")]
        out = self._start(obj)
        # Function calls that never got their output_item.done, and items never streamed
        # at all (servers that send only the final response).
        for position, item in enumerate(_objs(response.get("output"))):
            if item.get("type") == "function_call" and self._tools.known(0, position):
                out += self._item_done({"output_index": position, "item": item})
            elif not self._seen_ids & {_str(item.get("id")), _str(item.get("call_id"))}:
                out += _item_deltas(item, self._tools, ("final", position))
        if response.get("status") not in ("completed", "incomplete", "failed"):
            status = _str(obj.get("type")).removeprefix("response.")
            response = {**response, "status": status}  # trust the event's name
        return out + _terminal_deltas(response, self._tools)

    def _error(self, obj: Json) -> list[Delta]:
        self._over = self.complete = True
        error = obj.get("error")  # nested by some servers, flat in OpenAI's own events
        if not isinstance(error, dict):
            error = {k: v for k, v in obj.items() if k != "type"}
        return [_error_from_object(error)]


_HANDLERS: dict[str, _Handler] = {
    "response.created": OpenAIResponsesDecoder._start,
    "response.queued": OpenAIResponsesDecoder._start,
    "response.in_progress": OpenAIResponsesDecoder._start,
    "response.output_text.delta": OpenAIResponsesDecoder._text,
    "response.refusal.delta": OpenAIResponsesDecoder._refusal,
    "response.reasoning_text.delta": OpenAIResponsesDecoder._reasoning_raw,
    "response.reasoning_summary_text.delta": OpenAIResponsesDecoder._reasoning_summary,
    "response.output_item.added": OpenAIResponsesDecoder._item_added,
    "response.function_call_arguments.delta": OpenAIResponsesDecoder._arguments,
    "response.function_call_arguments.done": OpenAIResponsesDecoder._arguments_done,
    "response.output_item.done": OpenAIResponsesDecoder._item_done,
    "response.completed": OpenAIResponsesDecoder._end,
    "response.incomplete": OpenAIResponsesDecoder._end,
    "response.failed": OpenAIResponsesDecoder._end,
    "error": OpenAIResponsesDecoder._error,
}


# --- encoder -------------------------------------------------------------------------

_TEXT = "output_text"
_REFUSAL = "refusal"
_REASONING = "reasoning_text"
# part kind -> (item type, delta event, done event, the field the done event and part use)
_PART_EVENTS = {
    _TEXT: ("message", "response.output_text.delta", "response.output_text.done", "text"),
    _REFUSAL: ("message", "response.refusal.delta", "response.refusal.done", "refusal"),
    _REASONING: (
        "reasoning",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "text",
    ),
}
_ITEM_PREFIX = {"message": "msg", "reasoning": "rs", "function_call": "fc"}


class _Item:
    """One output item being written: a message, a reasoning item or a function call."""

    __slots__ = (
        "call_id",
        "chunks",
        "content",
        "final",
        "head",
        "id",
        "index",
        "kind",
        "name",
        "part",
        "signature",
        "tail",
    )

    def __init__(self, kind: str, id: str, index: int, call_id: str = "", name: str = "") -> None:
        self.kind, self.id, self.index = kind, id, index
        self.call_id, self.name = call_id, name
        self.content: list[Json] = []  # finished content parts
        self.part: str | None = None  # kind of the open content part
        self.chunks: list[str] = []  # text of the open part, or the call's arguments
        self.signature: list[str] = []
        self.head = self.tail = b""  # a delta event's JSON around its sequence number
        self.final: Json | None = None  # the item as output_item.done sent it

    def open_part(self) -> Json | None:
        if self.part is None:
            return None
        field = _PART_EVENTS[self.part][3]
        text = "".join(self.chunks)
        return _text_part(text) if self.part == _TEXT else {"type": self.part, field: text}

    def snapshot(self, status: str) -> Json:
        if self.final is not None:
            return self.final
        if self.kind == "function_call":
            arguments = "".join(self.chunks) or "{}"
            return _call_item(self.id, status, self.call_id, self.name, arguments)
        content = self.content[:]
        part = self.open_part()
        if part is not None:
            content.append(part)
        if self.kind == "message":
            return _message_item(self.id, status, content)
        return _reasoning_item(self.id, status, content, "".join(self.signature))


class OpenAIResponsesEncoder(StreamEncoder):
    """Neutral deltas in, Responses stream events out (choice 0 only)."""

    def __init__(self, request: Request | None = None) -> None:
        self._request = request
        self._seq = 0
        self._response: Json | None = None  # the response object, once started
        self._suffix = ""
        self._items: list[_Item] = []
        self._current: _Item | None = None  # the open message or reasoning item
        self._calls: dict[int, _Item] = {}  # open function calls by neutral index
        self._called: set[int] = set()
        self._usage: Usage | None = None
        self._finish: Finish | None = None
        self._ended = False

    def _event(self, type_: str, fields: Json) -> Frame:
        seq = self._seq
        self._seq = seq + 1
        return Frame(dumps({"type": type_, "sequence_number": seq, **fields}), type_)

    def _delta(self, item: _Item, text: str, event: str) -> Frame:
        seq = self._seq
        self._seq = seq + 1
        return Frame(b"%b%d%b%b}" % (item.head, seq, item.tail, dumps(text)), event)

    def encode(self, delta: Delta) -> list[Frame]:
        if self._ended:
            return []
        if self._response is None and not isinstance(delta, Start):
            out = self._start(Start("", ""))
            return out + _ENCODERS[type(delta)](self, delta)
        return _ENCODERS[type(delta)](self, delta)

    def _start(self, delta: Start) -> list[Frame]:
        if self._response is not None:
            return []
        request = self._request
        self._suffix = delta.id.removeprefix("resp_")
        model = request.model if request is not None else delta.model
        self._response = response = _response_object(delta.id, model, delta.created, request)
        return [
            self._event("response.created", {"response": response}),
            self._event("response.in_progress", {"response": response}),
        ]

    def _open(self, kind: str, call_id: str = "", name: str = "") -> tuple[_Item, Frame]:
        index = len(self._items)
        item = _Item(kind, f"{_ITEM_PREFIX[kind]}_{self._suffix}_{index}", index, call_id, name)
        self._items.append(item)
        added = item.snapshot("in_progress")
        if kind == "function_call":
            added["arguments"] = ""
            item.head = b'{"type":"response.function_call_arguments.delta","sequence_number":'
            item.tail = b"," + dumps({"item_id": item.id, "output_index": index})[1:-1]
            item.tail += b',"delta":'
        return item, self._event(
            "response.output_item.added", {"output_index": index, "item": added}
        )

    def _content(self, part: str, text: str) -> list[Frame]:
        """Frames for ``text`` of a part kind, opening the item and part it needs."""
        if self._finish is not None:
            return []
        kind, delta_event = _PART_EVENTS[part][:2]
        out: list[Frame] = []
        item = self._current
        if item is None or item.kind != kind:
            out += self._close_current("completed")
            item, added = self._open(kind)
            self._current = item
            out.append(added)
        if item.part != part:
            out += self._close_part(item)
            item.part = part
            fields = {"item_id": item.id, "output_index": item.index}
            item.head = b'{"type":"%s","sequence_number":' % delta_event.encode()
            item.tail = b"," + dumps({**fields, "content_index": len(item.content)})[1:-1]
            item.tail += b',"logprobs":[],"delta":' if part == _TEXT else b',"delta":'
            out.append(
                self._event(
                    "response.content_part.added",
                    {**fields, "content_index": len(item.content), "part": item.open_part()},
                )
            )
        if text:
            item.chunks.append(text)
            out.append(self._delta(item, text, delta_event))
        return out

    def _close_part(self, item: _Item) -> list[Frame]:
        part = item.open_part()
        if item.part is None or part is None:
            return []
        done_event, field = _PART_EVENTS[item.part][2:]
        fields = {
            "item_id": item.id,
            "output_index": item.index,
            "content_index": len(item.content),
        }
        done = {**fields, field: part[field]}
        if item.part == _TEXT:
            done["logprobs"] = []
        item.content.append(part)
        item.part, item.chunks = None, []
        return [
            self._event(done_event, done),
            self._event("response.content_part.done", {**fields, "part": part}),
        ]

    def _close_item(self, item: _Item, status: str) -> list[Frame]:
        out: list[Frame] = []
        if item.kind == "function_call":
            arguments = "".join(item.chunks) or "{}"
            fields = {"item_id": item.id, "output_index": item.index, "name": item.name}
            out.append(
                self._event(
                    "response.function_call_arguments.done", {**fields, "arguments": arguments}
                )
            )
        else:
            out += self._close_part(item)
        item.final = item.snapshot(status)
        out.append(
            self._event(
                "response.output_item.done", {"output_index": item.index, "item": item.final}
            )
        )
        return out

    def _close_current(self, status: str) -> list[Frame]:
        item, self._current = self._current, None
        return [] if item is None else self._close_item(item, status)

    def _close_all(self, status: str) -> list[Frame]:
        out = self._close_current(status)
        for index in sorted(self._calls):
            out += self._close_item(self._calls.pop(index), status)
        return out

    def _text(self, delta: TextDelta) -> list[Frame]:
        return self._content(_TEXT, delta.text) if delta.choice == 0 and delta.text else []

    def _refusal(self, delta: RefusalDelta) -> list[Frame]:
        return self._content(_REFUSAL, delta.text) if delta.choice == 0 and delta.text else []

    def _reasoning(self, delta: ReasoningDelta) -> list[Frame]:
        if delta.choice != 0 or self._finish is not None:
            return []
        out = self._content(_REASONING, delta.text) if delta.text else []
        if delta.signature:
            current = self._current
            if current is None or current.kind != "reasoning":
                out += self._close_current("completed")
                current, added = self._open("reasoning")
                self._current = current
                out.append(added)
            current.signature.append(delta.signature)
        return out

    def _tool_start(self, delta: ToolCallStart) -> list[Frame]:
        if delta.choice != 0 or self._finish is not None or delta.index in self._called:
            return []
        self._called.add(delta.index)
        out = self._close_current("completed")
        item, added = self._open("function_call", delta.id, delta.name)
        self._calls[delta.index] = item
        out.append(added)
        return out

    def _tool_delta(self, delta: ToolCallDelta) -> list[Frame]:
        item = self._calls.get(delta.index) if delta.choice == 0 else None
        if item is None or not delta.arguments:
            return []
        item.chunks.append(delta.arguments)
        return [self._delta(item, delta.arguments, "response.function_call_arguments.delta")]

    def _tool_end(self, delta: ToolCallEnd) -> list[Frame]:
        item = self._calls.pop(delta.index, None) if delta.choice == 0 else None
        return [] if item is None else self._close_item(item, "completed")

    def _usage_delta(self, delta: Usage) -> list[Frame]:
        self._usage = delta
        return []

    def _finish_delta(self, delta: Finish) -> list[Frame]:
        if delta.choice != 0 or self._finish is not None:
            return []
        incomplete = delta.reason in _INCOMPLETE_WORD or delta.raw in _OTHER_INCOMPLETE_WORDS
        out = self._close_all("incomplete" if incomplete else "completed")
        self._finish = delta
        return out

    def _error(self, delta: StreamError) -> list[Frame]:
        self._ended = True
        code = _own_word(delta.raw_type, delta.kind, _FAILED_CODE.get(delta.kind, "server_error"))
        error = {"code": code, "message": delta.message}
        response = self._final("failed", {"error": error, "usage": _usage_json(self._usage)})
        return [
            self._event("error", {"code": code, "message": delta.message, "param": None}),
            self._event("response.failed", {"response": response}),
        ]

    def _final(self, status: str, fields: Json) -> Json:
        assert self._response is not None
        output = [item.snapshot("incomplete") for item in self._items]
        return {**self._response, "status": status, "output": output, **fields}

    def close(self) -> list[Frame]:
        if self._ended:
            return []
        out = [] if self._response is not None else self._start(Start("", ""))
        self._ended = True
        finish = self._finish
        out += self._close_all("completed")
        usage = _usage_json(self._usage)
        if finish is not None and finish.reason is FinishReason.ERROR:
            error = {"code": "server_error", "message": "the upstream failed the generation"}
            return [*out, self._end("response.failed", "failed", {"error": error})]
        word = _INCOMPLETE_WORD.get(finish.reason) if finish is not None else None
        if finish is not None and word is None and finish.raw in _OTHER_INCOMPLETE_WORDS:
            word = finish.raw
        if word is not None:
            details = {"incomplete_details": {"reason": word}, "usage": usage}
            return [*out, self._end("response.incomplete", "incomplete", details)]
        return [*out, self._end("response.completed", "completed", {"usage": usage})]

    def _end(self, type_: str, status: str, fields: Json) -> Frame:
        return self._event(type_, {"response": self._final(status, fields)})


_ENCODERS: dict[type, Callable[[OpenAIResponsesEncoder, Any], list[Frame]]] = {
    Start: OpenAIResponsesEncoder._start,
    TextDelta: OpenAIResponsesEncoder._text,
    ReasoningDelta: OpenAIResponsesEncoder._reasoning,
    RefusalDelta: OpenAIResponsesEncoder._refusal,
    ToolCallStart: OpenAIResponsesEncoder._tool_start,
    ToolCallDelta: OpenAIResponsesEncoder._tool_delta,
    ToolCallEnd: OpenAIResponsesEncoder._tool_end,
    Usage: OpenAIResponsesEncoder._usage_delta,
    Finish: OpenAIResponsesEncoder._finish_delta,
    StreamError: OpenAIResponsesEncoder._error,
}


def _response_object(id: str, model: str, created: int, request: Request | None) -> Json:
    """A response object in progress, echoing the settings of ``request`` if known."""
    extra: Mapping[str, Any] = {}
    settings: Json = {}
    if request is not None:
        extra = request.extra if request.dialect == OpenAIResponsesDialect.name else {}
        settings = {
            "max_output_tokens": request.max_tokens,
            "parallel_tool_calls": request.parallel_tool_calls is not False,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "tool_choice": _tool_choice_json(request.tool_choice) or "auto",
            "tools": extra.get("tools") or [_tool_json(t) for t in request.tools],
            "user": request.user or None,
        }
    return {
        "id": id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": extra.get("previous_response_id"),
        "reasoning": extra.get("reasoning") or {"effort": None, "summary": None},
        "store": extra.get("store", True),
        "temperature": None,
        "text": extra.get("text") or {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": extra.get("truncation") or "disabled",
        "usage": None,
        "user": None,
        "metadata": extra.get("metadata") or {},
        **settings,
    }


# --- requests ------------------------------------------------------------------------

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
        return ImagePart(url=req_str(part, "image_url", where))
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
            add("assistant", (ReasoningPart(_reasoning_text(item), signature),), True)
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


def _tool_json(tool: Tool) -> Json:
    out: Json = {"type": "function", "name": tool.name}
    if tool.description:
        out["description"] = tool.description
    out["parameters"] = dict(tool.parameters)
    out["strict"] = False  # the Responses default is strict, which other dialects are not
    return out


def _tool_choice_json(choice: ToolChoice | None) -> Any:
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


# --- the dialect ---------------------------------------------------------------------


class OpenAIResponsesDialect:
    """The OpenAI Responses API: ``POST /v1/responses``."""

    name = "openai_responses"
    framing: Framing = "sse"
    media_type = "text/event-stream"

    def parse_request(self, body: bytes | str | Mapping[str, Any]) -> Request:
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
            dialect=self.name,
        )

    def build_request(self, request: Request) -> dict[str, Any]:
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
            body["tools"] = [_tool_json(t) for t in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice_json(request.tool_choice)
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
        if request.dialect == self.name:
            body.update(request.extra)
        elif request.reasoning_budget:
            body["reasoning"] = {"effort": _effort(request.reasoning_budget)}
        return body

    def decoder(self) -> OpenAIResponsesDecoder:
        return OpenAIResponsesDecoder()

    def encoder(self, request: Request | None = None) -> OpenAIResponsesEncoder:
        return OpenAIResponsesEncoder(request)

    def render_response(self, completion: Completion) -> dict[str, Any]:
        choice = next((c for c in completion.choices if c.index == 0), Choice(0))
        suffix = completion.id.removeprefix("resp_")
        finish = choice.finish
        incomplete = finish is not None and (
            finish.reason in _INCOMPLETE_WORD or finish.raw in _OTHER_INCOMPLETE_WORDS
        )
        item_status = "incomplete" if incomplete else "completed"
        output: list[Json] = []
        if choice.reasoning or choice.reasoning_signature:
            content = (
                [{"type": "reasoning_text", "text": choice.reasoning}] if choice.reasoning else []
            )
            output.append(
                _reasoning_item(f"rs_{suffix}_0", item_status, content, choice.reasoning_signature)
            )
        if choice.text or choice.refusal:
            content = [_text_part(choice.text)] if choice.text else []
            if choice.refusal:
                content.append({"type": "refusal", "refusal": choice.refusal})
            output.append(_message_item(f"msg_{suffix}_{len(output)}", item_status, content))
        for call in choice.tool_calls:
            output.append(
                _call_item(
                    f"fc_{suffix}_{len(output)}", "completed", call.id, call.name, call.arguments
                )
            )
        response = _response_object(completion.id, completion.model, completion.created, None)
        response.update(output=output, usage=_usage_json(completion.usage), status="completed")
        if completion.error is not None:
            error = completion.error
            code = _own_word(
                error.raw_type, error.kind, _FAILED_CODE.get(error.kind, "server_error")
            )
            response.update(status="failed", error={"code": code, "message": error.message})
        elif finish is not None and finish.reason is FinishReason.ERROR:
            message = "the upstream failed the generation"
            response.update(status="failed", error={"code": "server_error", "message": message})
        elif incomplete and finish is not None:
            word = _INCOMPLETE_WORD.get(finish.reason, finish.raw)
            response.update(status="incomplete", incomplete_details={"reason": word})
        return response

    def parse_response(self, body: bytes | Mapping[str, Any]) -> list[Delta]:
        if not isinstance(body, Mapping):
            try:
                body = loads(body)
            except ValueError:
                return [_malformed("the response body is not JSON")]
            if not isinstance(body, dict):
                return [_malformed("the response body is not a JSON object")]
        error = body.get("error")
        if isinstance(error, dict) and "output" not in body:
            return [_error_from_object(error)]
        tools = ToolCallTracker()
        out: list[Delta] = [_start_of(body)]
        for position, item in enumerate(_objs(body.get("output"))):
            out += _item_deltas(item, tools, position)
        return out + _terminal_deltas(body, tools)

    def error_body(self, error: StreamError) -> tuple[int, dict[str, Any]]:
        status = error.http_status
        status = 503 if status == 529 else status  # OpenAI's "overloaded"
        type_, code = _ERROR_WORDS[error.kind]
        type_ = _own_word(error.raw_type, error.kind, type_)
        # StreamError.param is newer than this codec: send it where the model has it
        param = getattr(error, "param", None)
        return status, {
            "error": {"message": error.message, "type": type_, "param": param, "code": code}
        }

    def parse_error(self, status: int, body: bytes) -> StreamError:
        try:
            value = loads(body)
        except ValueError:
            value = None
        error = value.get("error") if isinstance(value, dict) else None
        if isinstance(error, dict):
            return _error_from_object(error, status)
        if isinstance(error, str):  # some compatible servers send the message alone
            return error_from_status(status, error)
        text = body.decode("utf-8", "replace").strip()[:500]
        return error_from_status(status, text)


OPENAI_RESPONSES = OpenAIResponsesDialect()
