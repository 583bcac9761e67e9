"""Bytes in, events out: the SSE stream parser of WHATWG HTML §9.2.5-9.2.6, without I/O.

Two implementations behave identically: ``PyDecoder`` here, the reference, and the C
extension ``tokenrelay.sse._cdecoder`` (built at install when a compiler is there), about
seven times faster per event. ``Decoder`` is the C one when it is importable, unless the
environment variable ``TOKENRELAY_NO_EXTENSIONS`` is set to a non-empty value;
``IMPLEMENTATION`` says which (``"c"`` or ``"python"``).
"""

from __future__ import annotations

import operator
import os
from typing import TYPE_CHECKING

from ..errors import EventTooLargeError
from .event import Event, _make_event

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_LINE_BYTES",
    "IMPLEMENTATION",
    "CDecoder",
    "Decoder",
    "PyDecoder",
]

DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_LF = 10
_CR = 13
_BLANK_THEN_DATA = "\n\ndata: "
_BLANK_THEN_DATA_BYTES = _BLANK_THEN_DATA.encode()


class PyDecoder:
    """Turns the bytes of one event stream into ``Event`` objects, chunk by chunk.

    Feed it whatever the transport delivers, split anywhere; it holds partial lines, a
    CR that may be followed by an LF, a BOM or a UTF-8 character split across chunks.

    ``last_event_id`` seeds the stream (the id a reconnecting client sent); the property
    of the same name is the last event ID now, to send on the next reconnect. ``retry`` is
    the reconnection time (ms) the server last set validly, or None.

    Limits: a line longer than ``max_line_bytes``, or an event whose lines (fields,
    comments and line ends, up to its blank line) add up to more than ``max_event_bytes``,
    raises ``EventTooLargeError`` rather than growing memory. Events completed before the
    oversized line are returned first; the error is then raised by the next ``feed()`` or
    ``close()``. After it the decoder accepts only ``close()``.

    ``close()`` ends the stream: an event without its terminating blank line is discarded
    (its ``id`` does not become the last event ID), as the spec says. The decoder may then
    be fed the next connection's stream; it keeps ``last_event_id`` and ``retry``.
    """

    __slots__ = (
        "_error",
        "_error_owed",
        "_event_retry",
        "_event_type",
        "_fast_limit",
        "_hold_limit",
        "_id_buffer",
        "_idle",
        "_last_event_id",
        "_max_event",
        "_max_line",
        "_open_size",
        "_parts",
        "_pending",
        "_pending_size",
        "_plain",
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
        if not isinstance(last_event_id, str):
            raise TypeError(f"last_event_id must be a str, not {type(last_event_id).__name__}")
        last_event_id = str.__str__(last_event_id)  # an exact str, also from a subclass
        max_line_bytes = operator.index(max_line_bytes)  # ints only, as the C decoder
        max_event_bytes = operator.index(max_event_bytes)
        if max_line_bytes < 1 or max_event_bytes < 1:
            raise ValueError("max_line_bytes and max_event_bytes must be positive")
        self._max_line = max_line_bytes
        self._max_event = max_event_bytes
        self._fast_limit = min(max_line_bytes, max_event_bytes)
        self._last_event_id = last_event_id
        self._retry: int | None = None
        self._error: EventTooLargeError | None = None
        self._error_owed = False  # raised by neither feed() nor close() yet
        self._reset()

    def _reset(self) -> None:
        """Forget the current connection's partial input; keep last event ID and retry."""
        # `_start` holds a stream's first bytes until we know whether they are a BOM;
        # None once the stream has started. `_plain` is True when neither that, a held
        # CR nor an error needs looking at, so feed() can skip those checks.
        self._start: bytes | None = b""
        self._skip_lf = False
        self._plain = False
        # `_idle`: plain, and between events (nothing pending, nothing of an event read).
        self._idle = False
        self._pending: list[bytes] = []  # pieces of the unterminated last line
        self._pending_size = 0
        self._open_size = 0  # bytes of complete lines in the event being built
        self._hold_limit = self._fast_limit  # the longest partial line we may hold
        self._parts: list[str] = []  # data lines of the event being built
        self._event_type = ""
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
        """Parse the next chunk of the stream (any bytes-like object); return the events
        it completed."""
        if type(data) is not bytes:
            data = bytes(data)  # bytearray, memoryview...: what the C decoder reads too
        if (
            self._idle
            and data[-2:] == b"\n\n"
            and _CR not in data
            and len(data) <= self._fast_limit
        ):
            # Whole events, starting between events: no partial line to join, no limit
            # to check (the chunk is within both), and the decoder stays idle after.
            if data[:6] == b"data: " and data.find(b"\n") == len(data) - 2:
                # One event of one data line: what a live LLM stream sends per chunk.
                # (Idle, the id buffer is already the last event ID.)
                data = data[6:-2]
                return [
                    _make_event(data.decode("utf-8", "replace"), "message", self._id_buffer, None)
                ]
            return self._parse(data)
        if self._plain and _LF not in data and _CR not in data:
            # The middle of a line (small reads): just keep it.
            size = self._pending_size + len(data)
            if size > self._hold_limit:
                self._over_limit(size)
            self._pending.append(data)
            self._pending_size = size
            self._idle = False
            return []
        self._idle = False
        if not self._plain:
            data = self._prepare(data)
        if _CR in data:
            # A CR ends a line at once; an LF right after it, maybe in the next chunk,
            # belongs to the same line end.
            if data[-1] == _CR:
                self._skip_lf = True
                self._plain = False
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if _LF not in data:
            if data:
                size = self._pending_size + len(data)
                if size > self._hold_limit:
                    self._over_limit(size)
                self._pending.append(data)
                self._pending_size = size
            return []

        # Split off the complete lines; the rest waits for its line end.
        end = data.rindex(_LF) + 1
        pending = self._pending
        if pending:
            pending.append(data[:end])
            complete = b"".join(pending)
        else:
            complete = data if end == len(data) else data[:end]
        rest = data[end:]
        self._pending = [rest] if rest else []
        self._pending_size = len(rest)

        overflow = None
        if (
            len(complete) > self._max_line
            or len(complete) + self._open_size > self._max_event
            or len(rest) > self._max_line
        ):
            cut, overflow = self._find_overflow(complete, rest)
            if overflow is not None:
                complete = complete[:cut]
        if overflow is not None:
            # Only the lines before the oversized one count; there may be none.
            events = self._parse(complete) if complete else []
            return self._fail(overflow, events)
        events = self._parse(complete)

        # Bytes of the event still open, so one spread over many chunks stays bounded.
        blank = complete.rfind(b"\n\n")
        if blank >= 0:
            self._open_size = len(complete) - blank - 2
        elif complete[:1] == b"\n":
            self._open_size = len(complete) - 1
        else:
            self._open_size += len(complete)
        if self._open_size + self._pending_size > self._max_event:
            size = self._open_size + self._pending_size
            self._open_size = 0
            return self._fail(EventTooLargeError("event", self._max_event, size), events)
        self._hold_limit = min(self._max_line, self._max_event - self._open_size)
        self._idle = (
            self._plain
            and not self._open_size
            and not self._pending
            and not (self._parts or self._event_type or self._event_retry is not None)
        )
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

    def _prepare(self, data: bytes) -> bytes:
        """The slow start of feed(): a pending error, the BOM, an LF after a held CR."""
        if self._error is not None:
            self._error_owed = False
            raise self._error
        if self._start is not None:
            head = self._start + data
            if len(head) < 3 and _BOM.startswith(head):
                self._start = head  # could still become a BOM: wait for more bytes
                return b""
            self._start = None
            data = head[3:] if head.startswith(_BOM) else head
        if self._skip_lf and data:
            self._skip_lf = False
            if data[0] == _LF:
                data = data[1:]
        self._plain = self._start is None and not self._skip_lf
        return data

    def _over_limit(self, size: int) -> None:
        """Raise for a partial line of `size` bytes that would cross a limit."""
        if size > self._max_line:
            self._fail(EventTooLargeError("line", self._max_line, size), [])
        self._fail(EventTooLargeError("event", self._max_event, size + self._open_size), [])

    def _parse(self, data: bytes) -> list[Event]:
        """Process complete lines (``data`` ends with LF, holds no CR); return the events."""
        # Split where a blank line is followed by a data line. Each piece after the first
        # is then the data of one event plus any further lines of it: when it holds no
        # line break it *is* the data of a one-line event, the shape of nearly all.
        if data.isascii():
            pieces = data.decode("ascii").split(_BLANK_THEN_DATA)
        else:
            # Piece by piece: a str of the whole chunk would be as wide as its widest
            # character, and slicing it would cost a scan of every piece.
            sep = _BLANK_THEN_DATA_BYTES
            pieces = [piece.decode("utf-8", "replace") for piece in data.split(sep)]
        events: list[Event] = []
        if len(pieces) == 1:
            self._lines(pieces[0][:-1].split("\n"), events)
            return events
        append = events.append
        first = pieces[0]
        if (
            first[:6] == "data: "
            and "\n" not in first
            and not (self._parts or self._event_type or self._event_retry is not None)
        ):
            append(_make_event(first[6:], "message", self._id_buffer, None))
        else:
            self._lines(first.split("\n"), events)
            self._dispatch(events)
        last = pieces.pop()
        id_buffer = self._id_buffer
        for i in range(1, len(pieces)):
            piece = pieces[i]
            if "\n" not in piece:
                append(_make_event(piece, "message", id_buffer, None))
            else:
                self._lines(("data: " + piece).split("\n"), events)
                self._dispatch(events)
                id_buffer = self._id_buffer
        self._last_event_id = id_buffer
        if last.find("\n") == len(last) - 2:  # "<data>\n\n": one more whole event
            append(_make_event(last[:-2], "message", id_buffer, None))
        else:
            self._lines(("data: " + last[:-1]).split("\n"), events)
        return events

    def _lines(self, lines: list[str], events: list[Event]) -> None:
        """Apply lines to the event being built (§9.2.6); a blank line dispatches it."""
        for line in lines:
            if not line:
                self._dispatch(events)
            elif line[0] == ":":
                continue  # comment
            else:
                name, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if name == "data":
                    self._parts.append(value)
                elif name == "event":
                    self._event_type = value
                elif name == "id":
                    if "\0" not in value:
                        self._id_buffer = value
                elif name == "retry":
                    if value.isascii() and value.isdigit():
                        try:
                            retry = int(value)
                        except ValueError:  # past sys.get_int_max_str_digits(): ignored
                            continue
                        self._event_retry = self._retry = retry
                # any other field is ignored

    def _dispatch(self, events: list[Event]) -> None:
        """Dispatch at a blank line: the id moves on even when no event is sent."""
        self._last_event_id = self._id_buffer
        if self._parts:
            events.append(
                _make_event(
                    "\n".join(self._parts),
                    self._event_type or "message",
                    self._id_buffer,
                    self._event_retry,
                )
            )
            self._parts = []
        self._event_type = ""
        self._event_retry = None

    def _find_overflow(self, complete: bytes, rest: bytes) -> tuple[int, EventTooLargeError | None]:
        """Where the first line or event over a limit starts in a large chunk, if any.

        Only chunks larger than a limit can hold such a line, so this slow walk is rare.
        """
        max_line, max_event = self._max_line, self._max_event
        event_size = self._open_size
        start = 0
        while start < len(complete):
            end = complete.index(b"\n", start)
            length = end - start
            if length > max_line:
                return start, EventTooLargeError("line", max_line, length)
            event_size = 0 if end == start else event_size + end - start + 1
            if event_size > max_event:
                return start, EventTooLargeError("event", max_event, event_size)
            start = end + 1
        if len(rest) > max_line:
            return start, EventTooLargeError("line", max_line, len(rest))
        return start, None

    def _fail(self, error: EventTooLargeError, events: list[Event]) -> list[Event]:
        # Drop what was buffered, so memory stays bounded, and refuse further input.
        self._pending = []
        self._pending_size = 0
        self._parts = []
        self._error = error
        self._plain = self._idle = False
        if events:
            self._error_owed = True  # deliver the complete events first; raise next call
            return events
        raise error


def _c_decoder() -> type[PyDecoder] | None:
    if os.environ.get("TOKENRELAY_NO_EXTENSIONS"):
        return None
    try:
        from . import _cdecoder
    except ImportError:
        return None
    try:
        _cdecoder._setup(Event, EventTooLargeError)
    except RuntimeError:  # set up by another interpreter in this process, for its classes
        return None
    return _cdecoder.Decoder


#: The C decoder, or None when the extension was not built or is turned off.
CDecoder = _c_decoder()

if TYPE_CHECKING:
    Decoder = PyDecoder
else:
    Decoder = CDecoder or PyDecoder

#: Which decoder ``Decoder`` is: ``"c"`` or ``"python"``.
IMPLEMENTATION = "python" if CDecoder is None else "c"
