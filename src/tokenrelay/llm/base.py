"""The bases of every dialect's stream codec: ``StreamDecoder`` (upstream bytes in any
chunking → deltas; ``SSEStreamDecoder`` and ``LineStreamDecoder`` do the framing) and
``StreamEncoder`` (deltas → ``Frame``\\s). Sans-IO: no sockets, no clock, no randomness."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import ClassVar

from ..errors import EventTooLargeError
from ..sse import Decoder, Event
from .frame import Frame, Framing, to_wire
from .model import Delta

__all__ = ["LineStreamDecoder", "SSEStreamDecoder", "StreamDecoder", "StreamEncoder"]


class StreamDecoder(ABC):
    """Upstream wire bytes in, neutral deltas out.

    ``feed`` takes bytes in chunks of any size; ``close`` is called when the upstream's
    body ends. ``complete`` tells whether the stream ended the way the dialect ends one
    (``[DONE]``, ``message_stop``, ``response.completed``...) or with an error event; a
    body that ended without that was cut short.
    """

    __slots__ = ()  # (subclasses that keep their instances lean declare theirs)

    complete: bool = False

    @abstractmethod
    def feed(self, data: bytes) -> list[Delta]: ...

    @abstractmethod
    def close(self) -> list[Delta]: ...


class SSEStreamDecoder(StreamDecoder):
    """A decoder for a dialect carried in SSE: subclasses handle one ``Event`` at a time."""

    __slots__ = ("_sse",)

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

    __slots__ = ("_buffer", "_max")

    def __init__(self, *, max_line_bytes: int = 16 * 1024 * 1024) -> None:
        self._buffer = b""
        self._max = max_line_bytes

    def feed(self, data: bytes) -> list[Delta]:
        buffer = self._buffer + data
        *lines, self._buffer = buffer.split(b"\n")
        if len(self._buffer) > self._max:
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
