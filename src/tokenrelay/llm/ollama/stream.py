"""The ``/api/chat`` NDJSON decoder and encoder, and the finish words and times they
write.

Each line is ``{"model", "created_at", "message": {"role", "content", "thinking"?,
"tool_calls"?}, "done": false}``; the last has ``"done": true``, ``done_reason`` and the
token counts. The decisions both sides follow are in the package docstring; these
concern the stream alone:

- The encoder reports the model the client asked for (``request.model``) when given the
  request, else ``Start.model``. The decoder drops a last line cut short by the end of the
  body (the stream is then incomplete) rather than calling it malformed.
- The encoder sends each delta as its own line (content and tool calls of one upstream
  line may come back as two), every line with the stream's ``created_at``; it holds the
  ``Finish`` until ``close()`` so the final line carries the final usage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ..base import LineStreamDecoder, StreamEncoder
from ..frame import Frame, Framing
from ..jsonio import dumps, loads
from ..lenient import as_int
from ..model import (
    Delta,
    ErrorKind,
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
from ..toolcalls import ToolCallTracker, WholeCall, WholeCalls, args_object
from ._common import DERIVED_ID, finish_word, format_time, parse_time, reason_of


def _malformed(exc: Exception) -> StreamError:
    # The exception's kind, never its text: that may quote the upstream's bytes.
    return StreamError(ErrorKind.SERVER, f"the upstream sent malformed data ({type(exc).__name__})")


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
        if message is None and isinstance(obj.get("response"), str):  # /api/generate
            message = {"content": obj["response"], "thinking": obj.get("thinking")}
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
                out.append(
                    Usage(as_int(obj.get("prompt_eval_count")), as_int(obj.get("eval_count")))
                )
            word = obj.get("done_reason")
            word = word if isinstance(word, str) else ""
            out.append(Finish(reason_of(word, 0 in self._tracker.called), word))
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

    def __init__(self, request: Request | None = None, *, generate: bool = False) -> None:
        self._model = request.model if request else ""
        # /api/generate's lines: "response" (and "thinking") at the top, no tool calls.
        self._generate = generate
        self._ns = 0
        self._head = self._make_head(self._model, 0)
        self._usage: Usage | None = None
        self._finish: Finish | None = None
        self._calls = WholeCalls()
        self._done = False

    @staticmethod
    def _make_head(model: str, ns: int) -> bytes:
        return b'{"model":' + dumps(model) + b',"created_at":' + dumps(format_time(ns))

    def encode(self, delta: Delta) -> list[Frame]:
        if self._done or getattr(delta, "choice", 0) != 0:
            return []
        return _ENCODERS[type(delta)](self, delta)

    def _start(self, delta: Start) -> list[Frame]:
        match = DERIVED_ID.fullmatch(delta.id)
        ns = int(match[1]) if match else 0
        self._ns = ns if ns // 10**9 == delta.created else delta.created * 10**9
        self._head = self._make_head(self._model or delta.model, self._ns)
        return []

    def _line(self, message: bytes) -> list[Frame]:
        return [
            Frame(self._head + b',"message":{"role":"assistant",' + message + b'},"done":false}')
        ]

    def _text(self, delta: TextDelta | RefusalDelta) -> list[Frame]:
        if not delta.text:
            return []
        if self._generate:
            return [Frame(self._head + b',"response":' + dumps(delta.text) + b',"done":false}')]
        return self._line(b'"content":' + dumps(delta.text))

    def _reasoning(self, delta: ReasoningDelta) -> list[Frame]:
        if not delta.text:
            return []  # a signature has no Ollama form
        if self._generate:
            thinking = dumps(delta.text)
            return [
                Frame(self._head + b',"response":"","thinking":' + thinking + b',"done":false}')
            ]
        return self._line(b'"content":"","thinking":' + dumps(delta.text))

    def _call_start(self, delta: ToolCallStart) -> list[Frame]:
        self._calls.start(delta)
        return []

    def _call_delta(self, delta: ToolCallDelta) -> list[Frame]:
        self._calls.arguments(delta)
        return []

    def _call_end(self, delta: ToolCallEnd) -> list[Frame]:
        return self._calls_line(self._calls.end(delta))

    def _calls_line(self, calls: list[WholeCall]) -> list[Frame]:
        if not calls or self._generate:  # /api/generate has no tools
            return []
        entries = b",".join(self._call_json(call) for call in calls)
        return self._line(b'"content":"","tool_calls":[' + entries + b"]")

    def _call_json(self, call: WholeCall) -> bytes:
        function = {"name": call.name, "arguments": args_object(call.arguments)}
        entry: dict[str, Any] = {"function": function}
        derived = f"call_{self._ns}_{call.index}" if self._ns else f"call_{call.index}"
        if call.id != derived:
            entry["id"] = call.id
        return dumps(entry)

    def _end_calls(self) -> list[Frame]:
        frames: list[Frame] = []
        for _, calls in self._calls.end_all():
            frames += self._calls_line(calls)
        return frames

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
        line = self._head + (
            b',"response":""' if self._generate else b',"message":{"role":"assistant","content":""}'
        )
        if self._finish is not None:
            line += b',"done_reason":' + dumps(finish_word(self._finish))
        line += b',"done":true'
        if (usage := self._usage) is not None:
            line += b',"prompt_eval_count":%d,"eval_count":%d' % (
                usage.input_tokens,
                usage.output_tokens,
            )
        return [*frames, Frame(line + b"}")]


_ENCODERS: dict[type, Callable[[OllamaEncoder, Any], list[Frame]]] = {
    Start: OllamaEncoder._start,
    TextDelta: OllamaEncoder._text,
    RefusalDelta: OllamaEncoder._text,
    ReasoningDelta: OllamaEncoder._reasoning,
    ToolCallStart: OllamaEncoder._call_start,
    ToolCallDelta: OllamaEncoder._call_delta,
    ToolCallEnd: OllamaEncoder._call_end,
    Usage: OllamaEncoder._set_usage,
    Finish: OllamaEncoder._set_finish,
    StreamError: OllamaEncoder._error,
}
