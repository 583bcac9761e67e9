"""The OpenAI Responses stream: the decoder and the encoder.

Every event carries ``event: <type>`` and the same ``type`` in its JSON, with a
``sequence_number`` counting from 0; there is no ``[DONE]``: the stream ends after
``response.completed``, ``response.incomplete`` or ``response.failed``.

- *Reasoning.* Raw reasoning (``response.reasoning_text.delta``, as open-weight models
  send it) and reasoning summaries (``response.reasoning_summary_text.delta``, as
  OpenAI's own models send them) both become ``ReasoningDelta``; if one reasoning item
  streams both, the first kind seen wins, so the text is not doubled. Summary parts of
  one item are joined with a blank line. ``encrypted_content`` travels as the reasoning
  signature (``ReasoningDelta.signature``, ``ReasoningPart.signature``), so a
  Responses-to-Responses hop keeps the stateless (``store: false``) reasoning chain. The
  encoder writes neutral reasoning as a ``reasoning`` item of ``reasoning_text`` content.
- *Items.* The encoder opens a new output item whenever the kind of content changes
  (message, reasoning, function call), keeps function calls open until their
  ``ToolCallEnd`` (calls may interleave), and names items ``msg_``/``rs_``/``fc_`` +
  the response id without ``resp_`` + the output index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...sse import Event
from ..base import SSEStreamDecoder, StreamEncoder
from ..frame import Frame
from ..jsonio import dumps, loads
from ..lenient import as_int, as_obj, as_objs, as_str
from ..model import (
    Delta,
    Finish,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    Request,
    Start,
    StreamError,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from ..toolcalls import ToolCallTracker
from ._common import Json
from .errors import FAILED_CODE, error_from_object, malformed, own_word
from .response import (
    INCOMPLETE_WORD,
    OTHER_INCOMPLETE_WORDS,
    call_item,
    item_deltas,
    message_item,
    reasoning_item,
    response_object,
    start_of,
    terminal_deltas,
    text_part,
    usage_json,
)

__all__ = ["OpenAIResponsesDecoder", "OpenAIResponsesEncoder"]

# --- decoder -------------------------------------------------------------------------

_Handler = Callable[["OpenAIResponsesDecoder", Json], list[Delta]]


class OpenAIResponsesDecoder(SSEStreamDecoder):
    """Responses stream events in, neutral deltas out."""

    def __init__(self, *, max_event_bytes: int | None = None) -> None:
        super().__init__(max_event_bytes=max_event_bytes)
        self._started = False
        self._over = False  # after the terminal event or an error: nothing more counts
        # An ``error`` event waits for the ``response.failed`` that follows it, whose
        # response carries the usage (told before the error, as the neutral model has it).
        self._failing: StreamError | None = None
        self._tools = ToolCallTracker()
        self._streamed: set[object] = set()  # items whose content came as deltas
        self._finished: set[object] = set()  # items whose output_item.done was read
        self._seen_ids: set[str] = set()  # item ids and call ids of items met
        self._reasoning: dict[object, tuple[str, int]] = {}  # item -> (kind, summary part)

    def feed_event(self, event: Event) -> list[Delta]:
        if self._failing is not None:
            return self._failed(event)
        if self._over or not event.data or event.data == "[DONE]":  # proxies add [DONE]
            return []
        try:
            obj = loads(event.data)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            self._over = True
            return [malformed(f"{event.event} event is not a JSON object")]
        type_ = obj.get("type") or event.event
        handler = _HANDLERS.get(type_) if isinstance(type_, str) else None
        if handler is None:
            # a bare {"error": ...} is how proxies report a failure inside a 200
            return self._error(obj, wait=False) if isinstance(obj.get("error"), dict) else []
        return self._opened(handler(self, obj))

    def _opened(self, out: list[Delta]) -> list[Delta]:
        """``out``, after a ``Start`` if the stream had none yet (a lone error needs none)."""
        if out and not self._started and not isinstance(out[0], StreamError):
            self._started = True
            if not isinstance(out[0], Start):
                out.insert(0, Start("", ""))
        return out

    def _start(self, obj: Json) -> list[Delta]:
        return [] if self._started else [start_of(obj.get("response"))]

    @staticmethod
    def _key(obj: Json) -> object:
        """The item an event is about: its output index (or its id, if a server omits it)."""
        index = obj.get("output_index")
        if isinstance(index, int):
            return index
        return as_str(obj.get("item_id")) or as_str(as_obj(obj.get("item")).get("id"))

    def _mark(self, obj: Json) -> object:
        """Note that an item streams content; its key."""
        key = self._key(obj)
        if key not in self._streamed:
            self._streamed.add(key)
            self._note(obj)  # its item_id: the final response must not repeat it
        return key

    def _text(self, obj: Json) -> list[Delta]:
        self._mark(obj)
        delta = as_str(obj.get("delta"))
        return [TextDelta(delta)] if delta else []

    def _refusal(self, obj: Json) -> list[Delta]:
        self._mark(obj)
        delta = as_str(obj.get("delta"))
        return [RefusalDelta(delta)] if delta else []

    def _reasoning_delta(self, obj: Json, kind: str, part: int) -> list[Delta]:
        delta = as_str(obj.get("delta"))
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
        return self._reasoning_delta(obj, "summary", as_int(obj.get("summary_index")))

    def _item_added(self, obj: Json) -> list[Delta]:
        item = as_obj(obj.get("item"))
        self._note(item)
        if item.get("type") != "function_call":
            return []
        return self._tools.start(
            0, self._key(obj), as_str(item.get("call_id")), as_str(item.get("name"))
        )

    def _note(self, obj: Json) -> None:
        self._seen_ids.update(as_str(obj.get(k)) for k in ("id", "call_id", "item_id"))
        self._seen_ids.discard("")

    def _arguments(self, obj: Json) -> list[Delta]:
        key = self._key(obj)
        if not self._tools.known(0, key):
            return []
        self._mark(obj)
        return self._tools.arguments(0, key, as_str(obj.get("delta")))

    def _arguments_done(self, obj: Json) -> list[Delta]:
        # Some servers send the arguments whole here and never as deltas.
        key = self._key(obj)
        if key in self._streamed or not self._tools.known(0, key):
            return []
        self._streamed.add(key)
        return self._tools.arguments(0, key, as_str(obj.get("arguments")))

    def _item_done(self, obj: Json) -> list[Delta]:
        item, key = as_obj(obj.get("item")), self._key(obj)
        if not item or key in self._finished:
            return []
        self._finished.add(key)
        self._note(item)
        if item.get("type") == "function_call":
            out = self._tools.start(0, key, as_str(item.get("call_id")), as_str(item.get("name")))
            if key not in self._streamed:
                out += self._tools.arguments(0, key, as_str(item.get("arguments")))
            return out + self._tools.end(0, key)
        if key not in self._streamed:  # a server that sends whole items
            return item_deltas(item, self._tools, key)
        signature = as_str(item.get("encrypted_content")) if item.get("type") == "reasoning" else ""
        return [ReasoningDelta("", signature)] if signature else []

    def _end(self, obj: Json) -> list[Delta]:
        self._over = self.complete = True
        response = obj.get("response")
        if not isinstance(response, dict):
            return [malformed(f"{obj.get('type')} event without a response")]
        out = self._start(obj)
        # Function calls that never got their output_item.done, and items never streamed
        # at all (servers that send only the final response).
        for position, item in enumerate(as_objs(response.get("output"))):
            if item.get("type") == "function_call" and self._tools.known(0, position):
                out += self._item_done({"output_index": position, "item": item})
            elif not self._seen_ids & {as_str(item.get("id")), as_str(item.get("call_id"))}:
                out += item_deltas(item, self._tools, ("final", position))
        if response.get("status") not in ("completed", "incomplete", "failed"):
            status = as_str(obj.get("type")).removeprefix("response.")
            response = {**response, "status": status}  # trust the event's name
        return out + terminal_deltas(response, self._tools)

    def _error(self, obj: Json, *, wait: bool = True) -> list[Delta]:
        """An ``error`` event (``wait``: for its ``response.failed``), or a bare error
        object, which nothing follows."""
        self._over = self.complete = True
        error = obj.get("error")  # nested by some servers, flat in OpenAI's own events
        if not isinstance(error, dict):
            error = {k: v for k, v in obj.items() if k != "type"}
        if not wait:
            return [error_from_object(error)]
        self._failing = error_from_object(error)
        return []

    def _failed(self, event: Event) -> list[Delta]:
        """The event after an ``error``: the usage of its ``response.failed``, if it is
        one, then the error (the ``error`` event's: it is the more precise)."""
        if not event.data or event.data == "[DONE]":
            return []
        error, self._failing = self._failing, None
        assert error is not None
        out: list[Delta] = []
        try:
            obj = loads(event.data)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and (obj.get("type") or event.event) == "response.failed":
            response = {**as_obj(obj.get("response")), "status": "failed"}
            out = [d for d in terminal_deltas(response, self._tools) if isinstance(d, Usage)]
        return self._opened([*out, error])

    def close(self) -> list[Delta]:
        out = super().close()
        if self._failing is not None:  # the stream ended after its error event
            error, self._failing = self._failing, None
            out += self._opened([error])
        return out


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
        return text_part(text) if self.part == _TEXT else {"type": self.part, field: text}

    def snapshot(self, status: str) -> Json:
        if self.final is not None:
            return self.final
        if self.kind == "function_call":
            arguments = "".join(self.chunks) or "{}"
            return call_item(self.id, status, self.call_id, self.name, arguments)
        content = self.content[:]
        part = self.open_part()
        if part is not None:
            content.append(part)
        if self.kind == "message":
            return message_item(self.id, status, content)
        return reasoning_item(self.id, status, content, "".join(self.signature))


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

    def skip(self, n: int) -> None:
        """Leave out the next ``n`` sequence numbers (a reader that merged ``n + 1``
        one-frame deltas into one: the frame keeps the number of the last)."""
        self._seq += n

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
        self._response = response = response_object(delta.id, model, delta.created, request)
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
        incomplete = delta.reason in INCOMPLETE_WORD or delta.raw in OTHER_INCOMPLETE_WORDS
        out = self._close_all("incomplete" if incomplete else "completed")
        self._finish = delta
        return out

    def _error(self, delta: StreamError) -> list[Frame]:
        self._ended = True
        code = own_word(delta.raw_type, delta.kind, FAILED_CODE.get(delta.kind, "server_error"))
        error = {"code": code, "message": delta.message}
        response = self._final("failed", {"error": error, "usage": usage_json(self._usage)})
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
        usage = usage_json(self._usage)
        if finish is not None and finish.reason is FinishReason.ERROR:
            error = {"code": "server_error", "message": "the upstream failed the generation"}
            return [*out, self._end("response.failed", "failed", {"error": error})]
        word = INCOMPLETE_WORD.get(finish.reason) if finish is not None else None
        if finish is not None and word is None and finish.raw in OTHER_INCOMPLETE_WORDS:
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
