"""What every dialect codec is made of, written once.

A dialect is one object (see ``Dialect``) with four directions:

- ``parse_request`` (a client's body → ``Request``) and ``build_request`` (``Request`` →
  an upstream body);
- ``decoder()`` (upstream wire bytes → deltas) and ``encoder()`` (deltas → ``Frame``\\s
  for the client);
- ``render_response`` (``Completion`` → a non-streamed body) and ``parse_response``
  (a non-streamed upstream body → deltas, so streamed and non-streamed upstreams go
  through one path);
- ``error_body`` (``StreamError`` → status and body in the dialect's shape) and
  ``parse_error`` (an upstream's error status and body → ``StreamError``).

Codecs are sans-IO: no sockets, no clock, no randomness. Ids and timestamps come in on the
``Start`` delta.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import orjson

from ..errors import RequestError
from ..sse import Decoder, Event, encode
from .model import (
    Completion,
    Delta,
    ErrorKind,
    Request,
    StreamError,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    kind_of_status,
)

__all__ = [
    "Dialect",
    "Frame",
    "LineStreamDecoder",
    "SSEStreamDecoder",
    "StreamDecoder",
    "StreamEncoder",
    "ToolCallTracker",
    "dumps",
    "loads",
    "to_wire",
]

Framing = Literal["sse", "ndjson"]


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (non-ASCII kept as is, as the providers send it)."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def load_body(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    """A request body as a JSON object, or ``RequestError`` saying why it is not one."""
    if isinstance(body, Mapping):
        return body
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RequestError(f"request body must be a JSON object, not {type(value).__name__}")
    _check_depth(value)
    return value


MAX_DEPTH = 64
"""How deeply a request body may nest (tool schemas rarely pass 10; orjson writes 254)."""


def _check_depth(body: dict[str, Any]) -> None:
    """``RequestError`` naming the top-level field that nests deeper than ``MAX_DEPTH``."""
    for key, top in body.items():
        stack: list[tuple[Any, int]] = [(top, 2)]
        while stack:
            value, depth = stack.pop()
            children = value.values() if isinstance(value, dict) else value
            if not isinstance(value, dict | list) or not children:
                continue
            if depth > MAX_DEPTH:
                raise RequestError(f"{key} nests deeper than {MAX_DEPTH} levels", param=str(key))
            stack.extend((child, depth + 1) for child in children)


@dataclass(frozen=True, slots=True)
class Frame:
    """One unit of an encoded stream: an SSE event (``event`` type, or None for the
    default) or, for NDJSON dialects, one line (``event`` unused). ``data`` is JSON."""

    data: bytes
    event: str | None = None


def to_wire(frames: Iterable[Frame], framing: Framing = "sse", id: str | None = None) -> bytes:
    """The bytes of ``frames``: SSE events (each with ``id`` if given) or NDJSON lines."""
    if framing == "ndjson":
        return b"".join(f.data + b"\n" for f in frames)
    return b"".join(encode(f.data, event=f.event, id=id) for f in frames)


class StreamDecoder(ABC):
    """Upstream wire bytes in, neutral deltas out.

    ``feed`` takes bytes in chunks of any size; ``close`` is called when the upstream's
    body ends. ``complete`` tells whether the stream ended the way the dialect ends one
    (``[DONE]``, ``message_stop``, ``response.completed``...) or with an error event; a
    body that ended without that was cut short.
    """

    complete: bool = False

    @abstractmethod
    def feed(self, data: bytes) -> list[Delta]: ...

    @abstractmethod
    def close(self) -> list[Delta]: ...


class SSEStreamDecoder(StreamDecoder):
    """A decoder for a dialect carried in SSE: subclasses handle one ``Event`` at a time."""

    def __init__(self, *, max_event_bytes: int | None = None) -> None:
        if max_event_bytes is None:
            self._sse = Decoder()
        else:
            self._sse = Decoder(max_line_bytes=max_event_bytes, max_event_bytes=max_event_bytes)

    def feed(self, data: bytes) -> list[Delta]:
        out: list[Delta] = []
        for event in self._sse.feed(data):
            out += self.feed_event(event)
        return out

    def close(self) -> list[Delta]:
        out: list[Delta] = []
        for event in self._sse.close():
            out += self.feed_event(event)
        return out

    @abstractmethod
    def feed_event(self, event: Event) -> list[Delta]:
        """Deltas for one decoded SSE event (callers that decode SSE themselves use it)."""


class LineStreamDecoder(StreamDecoder):
    """A decoder for an NDJSON dialect: subclasses handle one parsed JSON line at a time."""

    def __init__(self, *, max_line_bytes: int = 16 * 1024 * 1024) -> None:
        self._buffer = b""
        self._max = max_line_bytes

    def feed(self, data: bytes) -> list[Delta]:
        buffer = self._buffer + data
        *lines, self._buffer = buffer.split(b"\n")
        if len(self._buffer) > self._max:
            from ..errors import EventTooLargeError

            raise EventTooLargeError("line", self._max, len(self._buffer))
        out: list[Delta] = []
        for line in lines:
            if line.strip():
                out += self.feed_line(line)
        return out

    def close(self) -> list[Delta]:
        rest, self._buffer = self._buffer, b""
        return self.feed_line(rest) if rest.strip() else []

    @abstractmethod
    def feed_line(self, line: bytes) -> list[Delta]:
        """Deltas for one line of the stream."""


class StreamEncoder(ABC):
    """Neutral deltas in, frames for the client out.

    ``encode`` may hold a delta back when the dialect needs something that comes later
    (Anthropic's ``message_delta`` waits for the usage); ``close`` releases what is held
    and writes the dialect's end of stream. After a ``StreamError`` nothing more is
    written. Encoders always emit what the official SDKs require (summed up in the
    README): role once, tool ids once, ascending indexes, no data-less SSE blocks.
    """

    framing: ClassVar[Framing] = "sse"

    @abstractmethod
    def encode(self, delta: Delta) -> list[Frame]: ...

    @abstractmethod
    def close(self) -> list[Frame]: ...

    def encode_all(self, deltas: Iterable[Delta]) -> bytes:
        """The whole wire stream for ``deltas`` (tests and non-incremental callers)."""
        frames: list[Frame] = []
        for delta in deltas:
            frames += self.encode(delta)
        frames += self.close()
        return to_wire(frames, self.framing)


class Dialect(Protocol):
    """One wire dialect. Instances are stateless; codecs hold state per stream."""

    name: str
    framing: Framing
    media_type: str
    event_ids: bool  # whether a server may give its SSE events ids (Gemini's clients: no)

    def parse_request(self, body: bytes | str | Mapping[str, Any]) -> Request: ...

    def build_request(self, request: Request) -> dict[str, Any]: ...

    def decoder(self) -> StreamDecoder: ...

    def encoder(self, request: Request | None = None) -> StreamEncoder: ...

    def render_response(self, completion: Completion) -> dict[str, Any]: ...

    def parse_response(self, body: bytes | Mapping[str, Any]) -> list[Delta]: ...

    def error_body(self, error: StreamError) -> tuple[int, dict[str, Any]]: ...

    def parse_error(self, status: int, body: bytes) -> StreamError: ...


class ToolCallTracker:
    """Numbers tool calls per choice and drops what upstreams repeat.

    Upstreams key a call by an index, a content block number or nothing at all; the
    tracker maps each (choice, key) to the neutral ordinal 0, 1, 2 in order of first
    appearance, emits ``ToolCallStart`` once (later ids and names for the same key are
    ignored), and ``ToolCallEnd`` once. A call whose upstream gave no id gets
    ``f"call_{prefix}_{ordinal}"``.
    """

    def __init__(self, id_prefix: str = "") -> None:
        self.id_prefix = id_prefix
        self._index: dict[tuple[int, object], int] = {}
        self._open: dict[tuple[int, object], int] = {}
        self._count: dict[int, int] = {}
        self.called: set[int] = set()  # choices that made at least one call

    def start(self, choice: int, key: object, id: str | None, name: str) -> list[Delta]:
        if (choice, key) in self._index:
            return []
        index = self._count.get(choice, 0)
        self._count[choice] = index + 1
        self._index[choice, key] = index
        self._open[choice, key] = index
        self.called.add(choice)
        prefix = f"call_{self.id_prefix}_" if self.id_prefix else "call_"
        call_id = id or f"{prefix}{index}"
        return [ToolCallStart(index, call_id, name, choice)]

    def known(self, choice: int, key: object) -> bool:
        return (choice, key) in self._index

    def arguments(self, choice: int, key: object, fragment: str) -> list[Delta]:
        index = self._index.get((choice, key))
        if index is None or not fragment or (choice, key) not in self._open:
            return []
        return [ToolCallDelta(index, fragment, choice)]

    def end(self, choice: int, key: object) -> list[Delta]:
        index = self._open.pop((choice, key), None)
        return [] if index is None else [ToolCallEnd(index, choice)]

    def end_all(self, choice: int | None = None) -> list[Delta]:
        """End every open call (of one choice, or of all), in ordinal order."""
        keys = sorted(
            (k for k in self._open if choice is None or k[0] == choice),
            key=lambda k: (k[0], self._open[k]),
        )
        out: list[Delta] = []
        for k in keys:
            out += self.end(*k)
        return out


def error_from_status(status: int, message: str, raw_type: str = "") -> StreamError:
    """A ``StreamError`` for an upstream HTTP error whose body said nothing useful."""
    return StreamError(
        kind_of_status(status), message or f"upstream HTTP {status}", status, raw_type
    )


def error_from_request_error(exc: RequestError) -> StreamError:
    kind = ErrorKind.REQUEST_TOO_LARGE if exc.status == 413 else kind_of_status(exc.status)
    return StreamError(kind, str(exc), exc.status, param=exc.param)


def args_object(arguments: str) -> Any:
    """A tool call's JSON arguments as the object that dialects sending arguments as an
    object (not as JSON text) need: ``{}`` when empty, ``{"arguments": <the text>}`` when
    not a JSON object."""
    if not arguments:
        return {}
    try:
        value = loads(arguments)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"arguments": arguments}


class CallIds:
    """Ids for the tool calls of a request whose dialect may give none, and the call each
    tool result answers.

    ``call`` numbers the request's calls: one without an id gets ``call_{k}``, ``k`` its
    ordinal among them. ``result`` returns the id of the pending call a result answers,
    and marks that call answered: the call with the result's own id if it gives one, else
    the oldest call of its name. A result that answers no pending call keeps its own id,
    or gets ``call_{name}``. With ``by_name`` (Gemini, whose results always name their
    function) a result answers only calls of its own name; without it (Ollama), an id
    alone picks the call, and a result with neither id nor name answers the oldest call.
    """

    def __init__(self, *, by_name: bool) -> None:
        self._by_name = by_name
        self._count = 0
        self._pending: deque[tuple[str, str]] = deque()  # (name, id) not yet answered

    def call(self, name: str, given: str) -> str:
        call_id = given or f"call_{self._count}"
        self._count += 1
        self._pending.append((name, call_id))
        return call_id

    def result(self, name: str, given: str) -> str:
        for entry in self._pending:
            if given:
                found = entry[1] == given and (not self._by_name or entry[0] == name)
            else:
                found = entry[0] == name or (not self._by_name and not name)
            if found:
                self._pending.remove(entry)
                return entry[1]
        return given or f"call_{name}"
