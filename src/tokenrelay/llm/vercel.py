"""The Vercel AI SDK UI message stream (AI SDK 5/6), for React ``useChat`` front ends.

A response is SSE ``data:`` JSON chunks ending with ``data: [DONE]``, and must carry the
header in ``HEADERS``. This dialect faces browsers only: it encodes streams and parses the
``useChat`` request body; there is no upstream that speaks it, so ``build_request``,
``render_response`` and ``parse_response`` raise ``NotImplementedError``. Its decoder is
a simple one, enough to read the encoder's output back (tests, tools).

The encoder writes ``start`` (``messageId`` from ``Start.id``) and ``start-step``; each
run of reasoning or text as ``reasoning-start/-delta/-end`` (ids ``r0``, ``r1``...) or
``text-start/-delta/-end`` (``t0``...), a block ending when another kind of content
begins; a tool call as ``tool-input-start``, ``tool-input-delta``\\* and
``tool-input-available`` with the parsed ``input`` (``{}`` for no arguments;
``tool-input-error`` when the arguments are not JSON); then ``finish-step``, ``finish``
with ``finishReason`` (``stop``, ``length``, ``tool-calls``, ``content-filter``,
``error``, ``other``; PAUSE is ``other``) and ``data: [DONE]``. An error is
``{"type": "error", "errorText": ...}``, followed only by ``[DONE]``.

Not carried: usage (unless the encoder is made with ``message_metadata=True``: the
``finish`` chunk then has ``messageMetadata: {"usage": {inputTokens, outputTokens,
totalTokens, reasoningTokens, cachedInputTokens}}``, off by default because a client
with a ``messageMetadataSchema`` of its own rejects fields it does not know), the model,
timestamps, signatures (reasoning is sent without them), choices other than 0. Refusals
are sent as text.

``parse_request`` reads ``{"messages": [{"id", "role", "parts": [...]}], ...}`` and, when
a page's transport sends them (its ``body`` option), ``system`` (a system prompt),
``tools`` (``[{"name", "description", "inputSchema"}]``, the model's callable functions)
and ``maxOutputTokens``: ``text``,
``reasoning`` and ``file`` parts, and tool parts (``tool-{name}`` and ``dynamic-tool``)
as the call plus, once it has an output (or an error, or was denied), a ``tool`` message
with its result; ``step-start`` separates the steps of one assistant message. Other parts
(sources, ``data-*``) are skipped. The model is the body's ``model`` field if any (``""``
otherwise); every other field (``id``, ``trigger``, ``messageId``, custom body fields)
goes to ``extra``. The request always streams.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from ..errors import RequestError
from ..sse import Event
from .base import SSEStreamDecoder, StreamEncoder
from .fields import load_body, obj_item, opt_int, opt_list, opt_obj, opt_str, req_list, req_str
from .frame import Frame, Framing
from .jsonio import dumps, loads
from .lenient import as_int, as_str
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
    error_from_status,
    kind_of_status,
)
from .toolcalls import ToolCallTracker

__all__ = ["HEADERS", "VERCEL_UI", "VercelUIDecoder", "VercelUIDialect", "VercelUIEncoder"]

HEADERS: dict[str, str] = {"x-vercel-ai-ui-message-stream": "v1"}
"""What a UI message stream response must carry besides its SSE content type."""

_F = FinishReason
WORD_OF_REASON: dict[FinishReason, str] = {
    _F.STOP: "stop",
    _F.LENGTH: "length",
    _F.TOOL_CALLS: "tool-calls",
    _F.CONTENT_FILTER: "content-filter",
    _F.ERROR: "error",
    _F.PAUSE: "other",
    _F.OTHER: "other",
}
REASON_OF_WORD: dict[str, FinishReason] = {
    w: r for r, w in WORD_OF_REASON.items() if r is not _F.PAUSE
}
_STATUS = {**STATUS_OF_KIND, ErrorKind.OVERLOADED: 503}  # 529 is Anthropic's alone
_DONE = Frame(b"[DONE]")
_START_STEP = Frame(b'{"type":"start-step"}')
_FINISH_STEP = Frame(b'{"type":"finish-step"}')


def _unsupported(what: str) -> NoReturn:
    raise NotImplementedError(
        f"the Vercel AI SDK UI message stream is a browser-facing dialect: it has no {what}"
    )


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

    def encode(self, delta: Delta) -> list[Frame]:
        if self._failed or self._closed or getattr(delta, "choice", 0) != 0:
            return []
        frames = self._handlers[type(delta)](delta)
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


# --- decoding -----------------------------------------------------------------------


class VercelUIDecoder(SSEStreamDecoder):
    """UI message stream → deltas: a simple reader of what the encoder writes."""

    def __init__(self) -> None:
        super().__init__()
        self._tracker = ToolCallTracker()
        self._started = False
        self._argued: set[str] = set()  # calls that had input deltas
        self._done = False
        self._handlers: dict[str, Callable[[Mapping[str, Any]], list[Delta]]] = {
            "text-delta": lambda c: [TextDelta(as_str(c.get("delta")))],
            "reasoning-delta": lambda c: [ReasoningDelta(as_str(c.get("delta")))],
            "tool-input-start": self._call_start,
            "tool-input-delta": self._call_delta,
            "tool-input-available": self._call_end,
            "tool-input-error": self._call_end,
            "finish": self._finish,
            "error": self._error,
        }

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
        handler = self._handlers.get(as_str(chunk.get("type")))
        return out + handler(chunk) if handler else out

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


# --- requests -----------------------------------------------------------------------

_ROLES: dict[str, Role] = {r: r for r in ("system", "user", "assistant")}
_DENIED = "The user denied the tool call."


class _Turns:
    """Builds the neutral messages of one UI message: an assistant message with tool
    calls splits where their results go (the results travel in a ``tool`` message)."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.messages: list[Message] = []
        self.parts: list[Part] = []
        self.results: list[Part] = []

    def add(self, part: Part) -> None:
        # Calls of one step share a message; content after their results starts the next
        # turn (AI SDK messages mark steps with step-start, older ones may not).
        if self.results and not isinstance(part, ToolCallPart):
            self.flush()
        self.parts.append(part)

    def flush(self) -> None:
        if self.parts:
            self.messages.append(Message(self.role, tuple(self.parts)))
        if self.results:
            self.messages.append(Message("tool", tuple(self.results)))
        self.parts, self.results = [], []


def _tool_part(part: Mapping[str, Any], kind: str, where: str, turns: _Turns) -> None:
    name = kind[5:] if kind.startswith("tool-") else req_str(part, "toolName", where)
    call_id = req_str(part, "toolCallId", where)
    state = opt_str(part, "state", where)
    if state == "input-streaming":
        return  # arguments still arriving: not a call yet
    value = part.get("input", part.get("rawInput"))
    arguments = value if isinstance(value, str) else dumps({} if value is None else value).decode()
    turns.add(ToolCallPart(call_id, name, arguments))
    if state == "output-available":
        output = part.get("output")
        content = output if isinstance(output, str) else dumps(output).decode()
        turns.results.append(ToolResultPart(call_id, content))
    elif state == "output-error":
        turns.results.append(ToolResultPart(call_id, opt_str(part, "errorText", where), True))
    elif state == "output-denied":
        approval = part.get("approval")
        reason = approval.get("reason") if isinstance(approval, dict) else None
        text = f"{_DENIED} {reason}" if isinstance(reason, str) and reason else _DENIED
        turns.results.append(ToolResultPart(call_id, text, True))


def _parse_message(m: Mapping[str, Any], where: str) -> list[Message]:
    word = req_str(m, "role", where)
    role = _ROLES.get(word)
    if role is None:
        raise RequestError(
            f"{where}.role must be system, user or assistant, not {word!r}", param=f"{where}.role"
        )
    turns = _Turns(role)
    if "parts" not in m and isinstance(m.get("content"), str):  # AI SDK 4 messages
        turns.add(TextPart(m["content"]))
    for j, raw in enumerate(opt_list(m, "parts", where)):
        w = f"{where}.parts[{j}]"
        part = obj_item(raw, w)
        kind = req_str(part, "type", w)
        if kind == "text":
            turns.add(TextPart(req_str(part, "text", w)))
        elif kind == "reasoning":
            turns.add(ReasoningPart(req_str(part, "text", w)))
        elif kind == "file":
            url, media_type = req_str(part, "url", w), opt_str(part, "mediaType", w)
            turns.add(ImagePart(url=url, media_type=media_type))
        elif kind.startswith("tool-") or kind == "dynamic-tool":
            _tool_part(part, kind, w, turns)
        elif kind == "step-start":
            turns.flush()
        # sources, data-* parts and future kinds carry nothing for the model
    turns.flush()
    return turns.messages or [Message(role, ())]


_OWN_FIELDS = ("messages", "model", "system", "tools", "maxOutputTokens")


def parse_request(body: bytes | str | Mapping[str, Any]) -> Request:
    data = load_body(body)
    messages: list[Message] = []
    system = opt_str(data, "system")
    if system:
        messages.append(Message("system", (TextPart(system),)))
    for i, raw in enumerate(req_list(data, "messages")):
        messages += _parse_message(obj_item(raw, f"messages[{i}]"), f"messages[{i}]")
    tools = []
    for i, raw in enumerate(opt_list(data, "tools")):
        where = f"tools[{i}]"
        tool = obj_item(raw, where)
        schema = opt_obj(tool, "inputSchema", where)
        tools.append(
            Tool(
                req_str(tool, "name", where),
                opt_str(tool, "description", where),
                schema if schema is not None else {"type": "object", "properties": {}},
            )
        )
    return Request(
        model=opt_str(data, "model"),
        messages=tuple(messages),
        stream=True,  # useChat always reads a stream
        max_tokens=opt_int(data, "maxOutputTokens", minimum=1),
        tools=tuple(tools),
        extra={k: v for k, v in data.items() if k not in _OWN_FIELDS},
        dialect="vercel_ui",
    )


def error_body(error: StreamError) -> tuple[int, dict[str, Any]]:
    # useChat shows the body text of a failed response as the error: keep it short.
    status = error.status if error.status in range(400, 600) and error.status != 529 else None
    return status or _STATUS[error.kind], {"type": "error", "errorText": error.message}


def parse_error(status: int, body: bytes) -> StreamError:
    try:
        value = loads(body)
    except ValueError:
        return error_from_status(status, body.decode("utf-8", "replace").strip()[:1000])
    message = ""
    if isinstance(value, dict):
        error = value.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        for candidate in (value.get("errorText"), error, value.get("message")):
            if isinstance(candidate, str) and candidate:
                message = candidate
                break
    return StreamError(kind_of_status(status), message or f"upstream HTTP {status}", status)


class VercelUIDialect:
    """The Vercel AI SDK UI message stream (see the module docstring). Responses must
    carry ``HEADERS``."""

    name = "vercel_ui"
    framing: Framing = "sse"
    event_ids = True
    media_type = "text/event-stream"
    headers = HEADERS

    def parse_request(self, body: bytes | str | Mapping[str, Any]) -> Request:
        return parse_request(body)

    def build_request(self, request: Request) -> dict[str, Any]:
        _unsupported("upstream requests to build (it is only ever the client's dialect)")

    def decoder(self) -> VercelUIDecoder:
        return VercelUIDecoder()

    def encoder(
        self, request: Request | None = None, *, message_metadata: bool = False
    ) -> VercelUIEncoder:
        return VercelUIEncoder(request, message_metadata=message_metadata)

    def render_response(self, completion: Completion) -> dict[str, Any]:
        _unsupported("non-streamed responses (useChat always reads a stream)")

    def parse_response(self, body: bytes | Mapping[str, Any]) -> list[Delta]:
        _unsupported("non-streamed responses (useChat always reads a stream)")

    def error_body(self, error: StreamError) -> tuple[int, dict[str, Any]]:
        return error_body(error)

    def parse_error(self, status: int, body: bytes) -> StreamError:
        return parse_error(status, body)


VERCEL_UI = VercelUIDialect()
