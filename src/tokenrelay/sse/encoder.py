"""Events in, bytes out: writing an SSE stream that every conformant reader parses back.

The encoder never alters what it is given in a way a reader could not undo: line breaks in
``data`` (CR, LF or CRLF) become separate ``data:`` lines, which a reader joins with LF —
the only line break SSE can carry. Anything that cannot be written faithfully (a line
break in an ``event`` type or ``id``, NUL in an ``id``, a negative ``retry``) raises
``ValueError`` instead of being silently changed.
"""

from __future__ import annotations

import re

__all__ = ["comment", "encode"]

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")


def encode(
    data: str | bytes,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
) -> bytes:
    """Encode one event as UTF-8 bytes, ending with the blank line that dispatches it.

    ``data`` may be ``str`` or already-encoded UTF-8 ``bytes`` (as from ``orjson.dumps``).
    ``event=None`` leaves the type out (readers use ``"message"``); ``id=None`` leaves the
    last event ID unchanged, ``id=""`` resets it. ``retry`` is in milliseconds.
    """
    if isinstance(data, bytes):
        if b"\n" in data or b"\r" in data:
            body = b"".join(b"data: " + line + b"\n" for line in _LINE_BREAK_BYTES.split(data))
        else:
            body = b"data: " + data + b"\n"
    elif "\n" in data or "\r" in data:
        body = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data)).encode()
    elif event is None and id is None and retry is None:
        return f"data: {data}\n\n".encode()  # the common case, in one allocation
    else:
        body = f"data: {data}\n".encode()
    if event is None and id is None and retry is None:
        return body + b"\n"
    return _fields(event, id, retry) + body + b"\n"


def _fields(event: str | None, id: str | None, retry: int | None) -> bytes:
    head = ""
    if event is not None:
        if "\n" in event or "\r" in event:
            raise ValueError(f"event type must not contain CR or LF: {event!r}")
        head += f"event: {event}\n"
    if id is not None:
        if "\n" in id or "\r" in id or "\0" in id:
            raise ValueError(f"event id must not contain CR, LF or NUL: {id!r}")
        head += f"id: {id}\n"
    if retry is not None:
        if type(retry) is not int or retry < 0:
            raise ValueError(f"retry must be a non-negative int (ms): {retry!r}")
        head += f"retry: {retry}\n"
    return head.encode()


def comment(text: str = "") -> bytes:
    """Encode a comment block (``: text``), e.g. a keep-alive ``comment("ping")``.

    Readers ignore comments and dispatch nothing for them. The block ends with a blank
    line so that clients which wait for a whole block before looking at it (many do) see
    the keep-alive at once rather than with the next event.
    """
    lines = _LINE_BREAK.split(text)
    return "".join(f": {line}\n" if line else ":\n" for line in lines).encode() + b"\n"
