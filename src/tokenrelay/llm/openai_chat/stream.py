"""OpenAI Chat streams: ``chat.completion.chunk`` events to deltas and back.

- The model reported to the client is the one it asked for (``request.model``) when the
  encoder is given the request, as a gateway that maps names should; else ``Start.model``.
- Without a request the encoder sends the usage chunk whenever usage is known (clients
  that did not ask for it ignore a ``choices: []`` chunk); with one, only if
  ``stream_options.include_usage`` was set. ``Usage.estimated`` is not carried.
- Every choice's first chunk is ``{"role": "assistant", "content": ""}``, also for an
  answer that turns out to be tool calls or a refusal (OpenAI itself sends ``null`` there,
  which cannot be known in advance); choice 0's goes out at ``Start``, the others' when the
  choice first appears, lower choices first, so first appearances always ascend.
- Ingest also accepts what OpenAI-compatible servers send besides standard chunks: errors
  as ``data: {"error": ...}``, as an ``event: error``, as a non-standard ``error:`` field
  (older llama.cpp) or as raw JSON on a line of its own; a whole non-streamed answer in
  place of the stream; ``data: [DONE]`` without its blank line.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ...sse import Event
from ..base import SSEStreamDecoder, StreamEncoder
from ..frame import Frame
from ..jsonio import dumps, loads
from ..lenient import as_int, as_obj
from ..model import (
    Delta,
    Finish,
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
from ._common import finish_word, parse_finish, usage_json, usage_of
from .errors import error_json, error_of, malformed
from .response import parse_response

__all__ = ["OpenAIChatDecoder", "OpenAIChatEncoder"]

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

    # One lives as long as its stream: no instance dict.
    __slots__ = (
        "_closing",
        "_done",
        "_finished",
        "_odd",
        "_started",
        "_tools",
        "_usage",
        "complete",
    )

    def __init__(self, *, max_event_bytes: int | None = None) -> None:
        super().__init__(max_event_bytes=max_event_bytes)
        self.complete = False
        self._tools = ToolCallTracker()
        self._odd = _OddLines()
        self._started = False
        self._finished: dict[int, None] = {}  # (a dict: smaller than an empty set)
        self._usage: Usage | None = None
        self._done = False  # [DONE] or an error seen: the rest is ignored
        self._closing = False

    def feed(self, data: bytes) -> list[Delta]:
        if self._done:
            return []
        out: list[Delta] = []
        for event in self._sse.feed(data):  # SSEStreamDecoder.feed, without its call
            out += self.feed_event(event)
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
        if data[:1] != "{" or event.event != "message":  # not a chunk, as nearly all are
            if data[:1] == "[" and data.strip() == "[DONE]":
                self._done = self.complete = True
                return self._tools.end_all()
            if event.event == "error":
                try:
                    return self._fail(error_of(loads(data)))
                except orjson.JSONDecodeError:
                    return self._fail(error_of(data))
            if not data:
                return []
        try:
            chunk = loads(data)
        except orjson.JSONDecodeError:
            return [] if self._closing else self._fail(malformed(data))
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
                return self._fail(error_of(loads(text)))
            except orjson.JSONDecodeError:
                return self._fail(error_of(text.decode("utf-8", "replace")))
        try:
            value = loads(line)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(value, dict):
            return []
        if value.get("error"):
            return self._fail(error_of(value))
        if "choices" in value and not self._started:  # a non-streamed answer
            self._done = self.complete = True
            return parse_response(value)
        return []

    def _chunk(self, chunk: Mapping[str, Any]) -> list[Delta]:
        choices = chunk.get("choices")
        if self._started and type(choices) is list and len(choices) == 1:
            # Most chunks: one choice of text alone (what the rest of this method and
            # ``_choice`` make of it).
            choice = choices[0]
            if type(choice) is dict and not (chunk.get("usage") or chunk.get("error")):
                delta = choice.get("delta")
                if type(delta) is dict and len(delta) == 1 and not choice.get("finish_reason"):
                    content = delta.get("content")
                    if content and type(content) is str:
                        index = choice.get("index")
                        if type(index) is not int:
                            index = as_int(index)
                        return [TextDelta(content, index, choice.get("logprobs"))]
        if chunk.get("error"):
            return self._fail(error_of(chunk))
        usage = chunk.get("usage")
        out: list[Delta] = []
        if not self._started:
            if not (chunk.get("id") or choices or usage):
                return []  # e.g. Azure's prompt_filter_results chunk, ahead of the answer
            self._started = True
            created = chunk.get("created")
            out.append(
                Start(str(chunk.get("id") or ""), str(chunk.get("model") or ""), as_int(created))
            )
        if choices and isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict):
                    out += self._choice(choice)
        if usage and isinstance(usage, dict):
            u = usage_of(usage)
            if u != self._usage:  # some servers repeat it on every chunk
                self._usage = u
                out.append(u)
        return out

    def _choice(self, choice: Mapping[str, Any]) -> list[Delta]:
        delta = choice.get("delta")
        c = as_int(choice.get("index"))
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
            self._finished[c] = None
            out += self._tools.end_all(c)
            out.append(parse_finish(word, c, choice.get("stop_reason")))
        return out

    def _tool_call(self, c: int, position: object, call: Mapping[str, Any]) -> list[Delta]:
        # Keyed by the upstream's index; servers that send none key calls by id.
        key = call.get("index")
        if not isinstance(key, int):
            key = call.get("id") or position
        function = as_obj(call.get("function"))
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
        return _ENCODERS[type(delta)](self, delta)

    def close(self) -> list[Frame]:
        if self._ended:
            return []
        self._ended = True
        frames = []
        if self._usage is not None and self._include_usage:
            usage = dumps(usage_json(self._usage))
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
        word = b',"logprobs":null,"finish_reason":%b}]}' % dumps(finish_word(d))
        return frames + self._chunk(d.choice, b"{}", word)

    def _keep_usage(self, d: Usage) -> list[Frame]:
        self._usage = d  # sent at close, after every finish, as OpenAI does
        return []

    def _error(self, d: StreamError) -> list[Frame]:
        self._ended = True  # and no [DONE]: the SDK raises on the error event
        frames = []
        if self._usage is not None and self._include_usage:
            # A stream cut short still says what it cost, in the chunk the SDK reads it from.
            usage = dumps(usage_json(self._usage))
            frames.append(Frame(self._opening() + b'],"usage":' + usage + b"}"))
        frames.append(Frame(dumps(error_json(d))))
        return frames


_ENCODERS: dict[type, Callable[[OpenAIChatEncoder, Any], list[Frame]]] = {
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
