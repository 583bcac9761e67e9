"""The ``streamGenerateContent?alt=sse`` decoder and encoder.

A stream is ``data:`` events (CRLF line ends, no ``[DONE]``), each a whole
``GenerateContentResponse``; it is complete when the body ends after a ``finishReason``.
The decisions both sides follow are in the package docstring; the encoder's own:

- The encoder reports the model the client asked for (``request.model``) when it is
  given the request, as a gateway that maps names should; else ``Start.model``.
- The encoder holds a finished tool call until the next delta, and a ``Finish`` until
  ``close()``, so the finish reason and the final usage ride on the last chunk with the
  last content, as Gemini sends them. Text is never held.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ...sse import Event
from ..base import SSEStreamDecoder, StreamEncoder
from ..frame import Frame
from ..jsonio import dumps, loads
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
from ..toolcalls import ToolCallTracker, WholeCall, WholeCalls
from ._common import (
    call_part,
    derived_call_id,
    finish_word,
    meta_fields,
    reason_of,
    reasoning_part,
    usage_metadata,
    usage_of,
)
from .errors import error_body, error_of, malformed

_CF = FinishReason.CONTENT_FILTER


def _time(value: Any) -> int:
    if not isinstance(value, str):
        return 0
    try:
        return int(datetime.fromisoformat(value).timestamp())
    except ValueError:
        return 0


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
            return self._fail(malformed(exc))
        if not isinstance(chunk, dict):
            return self._fail(malformed(TypeError(f"a chunk is {type(chunk).__name__}")))
        return self.feed_chunk(chunk)

    def _fail(self, error: StreamError) -> list[Delta]:
        self._failed = self.complete = True
        return [error]

    def feed_chunk(self, chunk: Mapping[str, Any]) -> list[Delta]:
        """Deltas for one ``GenerateContentResponse`` object."""
        if self._failed:
            return []
        if "error" in chunk:
            return self._fail(error_of(chunk["error"], None))
        out: list[Delta] = []
        if not self._started:
            self._started = True
            rid, model = chunk.get("responseId"), chunk.get("modelVersion")
            self._response_id = rid if isinstance(rid, str) else ""
            model = model if isinstance(model, str) else ""
            out.append(Start(self._response_id, model, _time(chunk.get("createTime"))))
        usage = usage_of(chunk.get("usageMetadata"))
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
            out.append(Finish(reason_of(word, choice in self._tracker.called), word, None, choice))
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


def _candidate_json(choice: int, parts: Sequence[bytes], finish: str | None) -> bytes:
    out = b'{"content":{"parts":[' + b",".join(parts or [_EMPTY_TEXT]) + b'],"role":"model"}'
    if finish is not None:
        out += b',"finishReason":' + dumps(finish)
    return out + b',"index":%d}' % choice


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
        self._calls = WholeCalls()
        self._done = False

    @staticmethod
    def _meta(model: str, response_id: str, created: int) -> bytes:
        fields = meta_fields(model, response_id, created)
        return b"".join(b',"%s":' % k.encode() + dumps(v) for k, v in fields.items()) + b"}"

    def encode(self, delta: Delta) -> list[Frame]:
        if self._done:
            return []
        return _ENCODERS[type(delta)](self, delta)

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
        return self._send(delta.choice, dumps(reasoning_part(delta.text, delta.signature)))

    def _call_start(self, delta: ToolCallStart) -> list[Frame]:
        self._calls.start(delta)
        return []

    def _call_delta(self, delta: ToolCallDelta) -> list[Frame]:
        self._calls.arguments(delta)
        return []

    def _call_end(self, delta: ToolCallEnd) -> list[Frame]:
        # Calls are held: the next delta, or the finish, rides in the same chunk.
        self._hold_calls(delta.choice, self._calls.end(delta))
        return []

    def _hold_calls(self, choice: int, calls: list[WholeCall]) -> None:
        if calls:
            self._parts.setdefault(choice, []).extend(
                dumps(call_part(c.id, c.name, c.arguments, self._derived_id(choice, c.index)))
                for c in calls
            )

    def _derived_id(self, choice: int, index: int) -> str:
        return derived_call_id(self._response_id, choice, index)

    def _end_calls(self, choice: int | None) -> None:
        for c, calls in self._calls.end_all(choice):
            self._parts.setdefault(c, [])
            self._hold_calls(c, calls)

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


_ENCODERS: dict[type, Callable[[GeminiEncoder, Any], list[Frame]]] = {
    Start: GeminiEncoder._start,
    TextDelta: GeminiEncoder._text,
    RefusalDelta: GeminiEncoder._text,
    ReasoningDelta: GeminiEncoder._reasoning,
    ToolCallStart: GeminiEncoder._call_start,
    ToolCallDelta: GeminiEncoder._call_delta,
    ToolCallEnd: GeminiEncoder._call_end,
    Usage: GeminiEncoder._set_usage,
    Finish: GeminiEncoder._finish_choice,
    StreamError: GeminiEncoder._error,
}
