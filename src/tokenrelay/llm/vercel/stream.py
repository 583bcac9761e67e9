"""The UI message stream: the encoder (deltas → chunks, as the package docstring
describes) and a simple decoder, enough to read the encoder's output back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ...sse import Event
from ..base import SSEStreamDecoder, StreamEncoder
from ..frame import Frame
from ..jsonio import dumps, loads
from ..lenient import as_int, as_str
from ..model import (
    Delta,
    ErrorKind,
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
from ._common import REASON_OF_WORD, WORD_OF_REASON

__all__ = ["VercelUIDecoder", "VercelUIEncoder"]

_F = FinishReason

_DONE = Frame(b"[DONE]")
_START_STEP = Frame(b'{"type":"start-step"}')
_FINISH_STEP = Frame(b'{"type":"finish-step"}')


# --- encoding -----------------------------------------------------------------------


class VercelUIEncoder(StreamEncoder):
    """Deltas → UI message stream chunks (see the module docstring)."""

    def __init__(self, request: Request | None = None, *, message_metadata: bool = False) -> None:
        self._metadata = message_metadata
        self._started = False
        self._block = ""  # "text" or "reasoning" while one is open
        self._block_id = b""
        self._delta_head = b""
        self._counts = {"text": 0, "reasoning": 0}
        self._calls: dict[int, tuple[str, str, list[str]]] = {}
        self._step_open = False
        self._finish: Finish | None = None
        self._usage: Usage | None = None
        self._failed = False
        self._closed = False

    def encode(self, delta: Delta) -> list[Frame]:
        if self._failed or self._closed or getattr(delta, "choice", 0) != 0:
            return []
        frames = _ENCODERS[type(delta)](self, delta)
        if self._started or not frames:
            return frames
        return [*self._open(""), *frames]  # content before any Start: open the message

    def _open(self, message_id: str) -> list[Frame]:
        self._started = self._step_open = True
        start = {"type": "start", "messageId": message_id} if message_id else {"type": "start"}
        return [Frame(dumps(start)), _START_STEP]

    def _start(self, delta: Start) -> list[Frame]:
        return [] if self._started else self._open(delta.id)

    def _end_block(self) -> list[Frame]:
        if not self._block:
            return []
        frame = Frame(b'{"type":"%s-end","id":' % self._block.encode() + self._block_id + b"}")
        self._block = ""
        return [frame]

    def _content(self, kind: str, text: str) -> list[Frame]:
        frames: list[Frame] = []
        if self._block != kind:
            frames = self._end_block()
            n = self._counts[kind]
            self._counts[kind] = n + 1
            self._block = kind
            self._block_id = dumps(f"{kind[0]}{n}")
            head = b'{"type":"%s-' % kind.encode()
            frames.append(Frame(head + b'start","id":' + self._block_id + b"}"))
            self._delta_head = head + b'delta","id":' + self._block_id + b',"delta":'
        frames.append(Frame(self._delta_head + dumps(text) + b"}"))
        return frames

    def _text(self, delta: TextDelta | RefusalDelta) -> list[Frame]:
        return self._content("text", delta.text) if delta.text else []

    def _reasoning(self, delta: ReasoningDelta) -> list[Frame]:
        return self._content("reasoning", delta.text) if delta.text else []

    def _call_start(self, delta: ToolCallStart) -> list[Frame]:
        self._calls[delta.index] = (delta.id, delta.name, [])
        chunk = {"type": "tool-input-start", "toolCallId": delta.id, "toolName": delta.name}
        return [*self._end_block(), Frame(dumps(chunk))]

    def _call_delta(self, delta: ToolCallDelta) -> list[Frame]:
        call = self._calls.get(delta.index)
        if call is None or not delta.arguments:
            return []
        call[2].append(delta.arguments)
        chunk = {
            "type": "tool-input-delta",
            "toolCallId": call[0],
            "inputTextDelta": delta.arguments,
        }
        return [Frame(dumps(chunk))]

    def _call_end(self, delta: ToolCallEnd) -> list[Frame]:
        call = self._calls.pop(delta.index, None)
        if call is None:
            return []
        call_id, name, fragments = call
        text = "".join(fragments)
        chunk: dict[str, Any]
        try:
            value = loads(text) if text else {}
        except ValueError:
            chunk = {
                "type": "tool-input-error",
                "toolCallId": call_id,
                "toolName": name,
                "input": text,
                "errorText": "the tool arguments are not valid JSON",
            }
        else:
            chunk = {
                "type": "tool-input-available",
                "toolCallId": call_id,
                "toolName": name,
                "input": value,
            }
        return [Frame(dumps(chunk))]

    def _end_calls(self) -> list[Frame]:
        frames: list[Frame] = []
        for index in sorted(self._calls):
            frames += self._call_end(ToolCallEnd(index))
        return frames

    def _end_step(self) -> list[Frame]:
        frames = self._end_block() + self._end_calls()
        if self._step_open:
            self._step_open = False
            frames.append(_FINISH_STEP)
        return frames

    def _set_usage(self, delta: Usage) -> list[Frame]:
        self._usage = delta
        return []

    def _set_finish(self, delta: Finish) -> list[Frame]:
        # The step ends now; `finish` waits for close() and the final usage.
        self._finish = delta
        return self._end_step()

    def _error(self, delta: StreamError) -> list[Frame]:
        self._failed = True
        return [Frame(dumps({"type": "error", "errorText": delta.message}))]

    def _finish_chunk(self) -> Frame:
        chunk: dict[str, Any] = {"type": "finish"}
        if self._finish is not None:
            chunk["finishReason"] = WORD_OF_REASON[self._finish.reason]
        if self._metadata and (usage := self._usage) is not None:
            chunk["messageMetadata"] = {
                "usage": {
                    "inputTokens": usage.input_tokens,
                    "outputTokens": usage.output_tokens,
                    "totalTokens": usage.total_tokens,
                    "reasoningTokens": usage.reasoning_tokens,
                    "cachedInputTokens": usage.cached_tokens,
                }
            }
        return Frame(dumps(chunk))

    def close(self) -> list[Frame]:
        if self._closed:
            return []
        self._closed = True
        if self._failed:
            return [_DONE]
        frames = [] if self._started else self._open("")
        return [*frames, *self._end_step(), self._finish_chunk(), _DONE]


_ENCODERS: dict[type, Callable[[VercelUIEncoder, Any], list[Frame]]] = {
    Start: VercelUIEncoder._start,
    TextDelta: VercelUIEncoder._text,
    RefusalDelta: VercelUIEncoder._text,
    ReasoningDelta: VercelUIEncoder._reasoning,
    ToolCallStart: VercelUIEncoder._call_start,
    ToolCallDelta: VercelUIEncoder._call_delta,
    ToolCallEnd: VercelUIEncoder._call_end,
    Usage: VercelUIEncoder._set_usage,
    Finish: VercelUIEncoder._set_finish,
    StreamError: VercelUIEncoder._error,
}


# --- decoding -----------------------------------------------------------------------


class VercelUIDecoder(SSEStreamDecoder):
    """UI message stream → deltas: a simple reader of what the encoder writes."""

    def __init__(self) -> None:
        super().__init__()
        self._tracker = ToolCallTracker()
        self._started = False
        self._argued: set[str] = set()  # calls that had input deltas
        self._done = False

    def feed_event(self, event: Event) -> list[Delta]:
        if self._done:
            return []
        if event.data == "[DONE]":
            self._done = self.complete = True
            return []
        try:
            chunk = loads(event.data)
        except ValueError as exc:
            chunk = exc
        if not isinstance(chunk, dict):
            self._done = self.complete = True
            what = type(chunk).__name__  # never the data: an upstream's bytes may hold anything
            return [StreamError(ErrorKind.SERVER, f"the upstream sent malformed data ({what})")]
        out: list[Delta] = []
        if not self._started:
            self._started = True
            out.append(Start(as_str(chunk.get("messageId")), ""))
        handler = _HANDLERS.get(as_str(chunk.get("type")))
        return out + handler(self, chunk) if handler else out

    def _call_start(self, chunk: Mapping[str, Any]) -> list[Delta]:
        call_id = as_str(chunk.get("toolCallId"))
        return self._tracker.start(0, call_id, call_id, as_str(chunk.get("toolName")))

    def _call_delta(self, chunk: Mapping[str, Any]) -> list[Delta]:
        call_id = as_str(chunk.get("toolCallId"))
        self._argued.add(call_id)
        return self._tracker.arguments(0, call_id, as_str(chunk.get("inputTextDelta")))

    def _call_end(self, chunk: Mapping[str, Any]) -> list[Delta]:
        call_id = as_str(chunk.get("toolCallId"))
        out = self._call_start(chunk)
        if call_id not in self._argued:
            value = chunk.get("input")
            text = value if isinstance(value, str) else dumps(value).decode()
            out += self._tracker.arguments(0, call_id, text)
        return out + self._tracker.end(0, call_id)

    def _finish(self, chunk: Mapping[str, Any]) -> list[Delta]:
        out = self._tracker.end_all(0)
        metadata = chunk.get("messageMetadata")
        usage = metadata.get("usage") if isinstance(metadata, dict) else None
        if isinstance(usage, dict):
            out.append(
                Usage(
                    as_int(usage.get("inputTokens")),
                    as_int(usage.get("outputTokens")),
                    as_int(usage.get("cachedInputTokens")),
                    as_int(usage.get("reasoningTokens")),
                )
            )
        word = as_str(chunk.get("finishReason"))
        out.append(Finish(REASON_OF_WORD.get(word, _F.STOP if not word else _F.OTHER), word))
        return out

    def _error(self, chunk: Mapping[str, Any]) -> list[Delta]:
        self._done = self.complete = True
        return [StreamError(ErrorKind.SERVER, as_str(chunk.get("errorText")) or "stream error")]


_HANDLERS: dict[str, Callable[[VercelUIDecoder, Mapping[str, Any]], list[Delta]]] = {
    "text-delta": lambda _, c: [TextDelta(as_str(c.get("delta")))],
    "reasoning-delta": lambda _, c: [ReasoningDelta(as_str(c.get("delta")))],
    "tool-input-start": VercelUIDecoder._call_start,
    "tool-input-delta": VercelUIDecoder._call_delta,
    "tool-input-available": VercelUIDecoder._call_end,
    "tool-input-error": VercelUIDecoder._call_end,
    "finish": VercelUIDecoder._finish,
    "error": VercelUIDecoder._error,
}
