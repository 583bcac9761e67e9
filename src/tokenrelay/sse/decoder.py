"""Bytes in, events out: the SSE stream parser of WHATWG HTML §9.2.5-9.2.6, without I/O."""

from __future__ import annotations

from ..errors import EventTooLargeError
from .event import Event, _make_event

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "DEFAULT_MAX_LINE_BYTES", "Decoder"]

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"


class Decoder:
    """Turns the bytes of one event stream into ``Event`` objects, chunk by chunk.

    Feed it whatever the transport delivers, split anywhere; it holds partial lines, a
    CR that may be followed by an LF, a BOM or a UTF-8 character split across chunks.

    ``last_event_id`` seeds the stream (the id a reconnecting client sent); the property
    of the same name is the last event ID now, to send on the next reconnect. ``retry`` is
    the reconnection time (ms) the server last set validly, or None.

    Limits: a line longer than ``max_line_bytes`` or an event whose data exceeds
    ``max_event_bytes`` raises ``EventTooLargeError`` rather than growing memory. Events
    completed before the oversized line are returned first; the error is then raised by
    the next ``feed()`` or ``close()``. After it the decoder only accepts ``close()``.

    ``close()`` ends the stream: an event without its terminating blank line is discarded
    (its ``id`` does not become the last event ID), as the spec says. The decoder may then
    be fed the next connection's stream; it keeps ``last_event_id`` and ``retry``.
    """

    __slots__ = (
        "_data",
        "_data_size",
        "_error",
        "_error_owed",
        "_event_retry",
        "_event_type",
        "_id_buffer",
        "_last_event_id",
        "_max_event",
        "_max_line",
        "_pending",
        "_pending_size",
        "_retry",
        "_skip_lf",
        "_start",
    )

    def __init__(
        self,
        last_event_id: str = "",
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        if max_line_bytes < 1 or max_event_bytes < 1:
            raise ValueError("max_line_bytes and max_event_bytes must be positive")
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        self._last_event_id = last_event_id
        self._retry: int | None = None
        self._error: EventTooLargeError | None = None
        self._error_owed = False  # raised by neither feed() nor close() yet
        self._reset()

    def _reset(self) -> None:
        # Per-connection parse state. `_start` holds the first bytes of a stream until
        # we know whether they are a BOM; None once the stream has started.
        self._start: bytes | None = b""
        self._skip_lf = False  # the last chunk ended in CR: an LF now belongs to it
        self._pending: list[bytes] = []  # pieces of the unterminated last line
        self._pending_size = 0
        self._data: list[bytes] = []
        self._data_size = 0
        self._event_type = b""
        self._event_retry: int | None = None
        self._id_buffer = self._last_event_id

    @property
    def last_event_id(self) -> str:
        """The last event ID: what a reconnecting client sends as ``Last-Event-ID``."""
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time in ms from the last valid ``retry:`` field, or None."""
        return self._retry

    def feed(self, data: bytes) -> list[Event]:
        """Parse the next chunk of the stream; return the events it completed."""
        if self._error is not None:
            self._error_owed = False
            raise self._error
        if not data:
            return []
        if self._start is not None:
            head = self._start + data
            if len(head) < 3 and _BOM.startswith(head):
                self._start = head  # could still become a BOM: wait for more bytes
                return []
            self._start = None
            data = head[3:] if head.startswith(_BOM) else head
            if not data:
                return []
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == 10:
                data = data[1:]
                if not data:
                    return []
        if b"\r" in data:
            # A CR ends a line at once; an LF that follows it (maybe in the next chunk)
            # is part of the same line end.
            self._skip_lf = data[-1] == 13
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

        lines = data.split(b"\n")
        tail = lines.pop()  # the unterminated rest; b"" when data ends a line
        max_line = self._max_line
        if not lines:
            size = self._pending_size + len(tail)
            if size > max_line:
                return self._fail(EventTooLargeError("line", max_line, size), [])
            self._pending.append(tail)
            self._pending_size = size
            return []
        if self._pending:
            self._pending.append(lines[0])
            lines[0] = b"".join(self._pending)
            self._pending = []
            self._pending_size = 0
            if len(lines[0]) > max_line:
                return self._fail(EventTooLargeError("line", max_line, len(lines[0])), [])
        overflow = None
        if len(data) > max_line:
            # Only a chunk longer than the limit can hold a line longer than it. Parse the
            # lines before the first oversized one, so their events are not lost.
            for i, line in enumerate(lines):
                if len(line) > max_line:
                    overflow = EventTooLargeError("line", max_line, len(line))
                    del lines[i:]
                    break
            else:
                if len(tail) > max_line:
                    overflow = EventTooLargeError("line", max_line, len(tail))
        if tail and overflow is None:
            self._pending.append(tail)
            self._pending_size = len(tail)

        events: list[Event] = []
        append = events.append
        parts = self._data
        size = self._data_size
        max_event = self._max_event
        event_type = self._event_type
        event_retry = self._event_retry
        for line in lines:
            if not line:
                # Dispatch (§9.2.6): the id buffer becomes the last event ID even when
                # no event follows; an empty data buffer dispatches nothing.
                if parts:
                    append(
                        _make_event(
                            b"\n".join(parts).decode("utf-8", "replace"),
                            event_type.decode("utf-8", "replace") if event_type else "message",
                            self._id_buffer,
                            event_retry,
                        )
                    )
                    parts = []
                    size = 0
                self._last_event_id = self._id_buffer
                event_type = b""
                event_retry = None
            elif line[0] == 58:  # ":" starts a comment
                continue
            else:
                name, colon, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    size += len(value) + 1
                    if size > max_event:
                        return self._fail(EventTooLargeError("event", max_event, size), events)
                    parts.append(value)
                elif name == b"event":
                    event_type = value
                elif name == b"id":
                    if b"\0" not in value:
                        self._id_buffer = value.decode("utf-8", "replace")
                elif name == b"retry":
                    if value.isdigit():  # ASCII digits only, for bytes
                        event_retry = self._retry = int(value)
                # any other field name is ignored
        self._data = parts
        self._data_size = size
        self._event_type = event_type
        self._event_retry = event_retry
        if overflow is not None:
            return self._fail(overflow, events)
        return events

    def close(self) -> list[Event]:
        """End of the stream: discard an unterminated event and get ready for the next.

        Returns the events still to deliver, which per the spec is always none; raises an
        ``EventTooLargeError`` still owed from the last ``feed()``.
        """
        error = self._error if self._error_owed else None
        self._error = None
        self._error_owed = False
        self._reset()
        if error is not None:
            raise error
        return []

    def _fail(self, error: EventTooLargeError, events: list[Event]) -> list[Event]:
        # Drop what was buffered, so memory stays bounded, and refuse further input.
        self._pending = []
        self._pending_size = 0
        self._data = []
        self._data_size = 0
        self._error = error
        if events:
            self._error_owed = True  # deliver the complete events first; raise next call
            return events
        raise error
