"""Anthropic's SSE stream: the decoder (events to neutral deltas) and the encoder (neutral
deltas to events), each dispatching by table.

- Reasoning from a non-Anthropic upstream has no signature: it is streamed as a thinking
  block without ``signature_delta`` (shown, but not valid to send back to Anthropic).
- The encoder sends ``message_start`` at the first delta after ``Start`` (so a ``Usage``
  that comes with it fills ``input_tokens``), holds ``message_delta`` until ``close()`` (the
  final usage may come after ``Finish``), and keeps a tool's block open until its
  ``ToolCallEnd``: content of other blocks that arrives meanwhile waits for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

from ...sse import Event
from ..base import SSEStreamDecoder, StreamEncoder
from ..frame import Frame
from ..jsonio import dumps, loads
from ..model import (
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    Start,
    StreamError,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from ..toolcalls import ToolCallTracker
from ._common import TYPE_OF_KIND, error_of, finish_of, stop_of, usage_json

__all__ = ["PING_FRAME", "AnthropicDecoder", "AnthropicEncoder"]

PING_FRAME = Frame(b'{"type":"ping"}', "ping")  # the keep-alive; the gateway sends it


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
            # Never the data or the event's name: an upstream's bytes may hold anything.
            message = f"upstream sent malformed data in an event ({type(exc).__name__})"
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
            out.append(finish_of(delta["stop_reason"], delta.get("stop_sequence")))
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
        return [error_of(obj.get("error"))]


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

_F = FinishReason
_K = ErrorKind
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
        word, sequence = stop_of(self._finish)
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
            "error": {"type": TYPE_OF_KIND[delta.kind], "message": delta.message},
        }
        return [*out, Frame(dumps(body), "error")]

    def _message_start(self) -> list[Frame]:
        self._began = True
        start = self._start or Start("", "")
        usage = usage_json(self._usage or Usage())
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
