"""Deltas as compact bytes, for stream logs that live outside the process (and inside).

``pack(delta)`` writes a JSON array whose first item is a one-letter tag for the delta's
type, followed by its fields in declaration order; ``unpack`` reverses it exactly. The
format is private to tokenrelay but stable within a major version, since a Redis log may
be written by one gateway version and read by another during a rolling upgrade.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import orjson

from .jsonio import dumps_kept
from .model import (
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    Start,
    StreamError,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)

__all__ = ["pack", "unpack"]

_TAGS: dict[type[Any], str] = {
    Start: "S",
    TextDelta: "T",
    ReasoningDelta: "R",
    RefusalDelta: "F",
    ToolCallStart: "C",
    ToolCallDelta: "A",
    ToolCallEnd: "E",
    Usage: "U",
    Finish: "Z",
    StreamError: "X",
}
_TYPES = {tag: cls for cls, tag in _TAGS.items()}
_NAMES = {cls: tuple(f.name for f in fields(cls)) for cls in _TAGS}
# Fields whose JSON form is an enum's value.
_ENUMS: dict[tuple[type[Any], int], type[Any]] = {
    (Finish, 0): FinishReason,
    (StreamError, 0): ErrorKind,
}


def pack(delta: Delta) -> bytes:
    """The delta as bytes (``unpack`` gives it back equal), in an object of its own size
    (kept in a stream's log: ``dumps_kept``)."""
    if type(delta) is TextDelta and delta.logprobs is None:
        # Most entries: the same bytes as below, formatted at their size (no copy).
        return b'["T",%b,%d,null]' % (orjson.dumps(delta.text), delta.choice)
    cls = type(delta)
    return dumps_kept([_TAGS[cls], *(getattr(delta, n) for n in _NAMES[cls])])


def unpack(data: bytes) -> Delta:
    """The delta that ``pack`` wrote (``ValueError`` for bytes it did not write)."""
    try:
        tag, *values = orjson.loads(data)
        cls = _TYPES[tag]
        for (enum_cls, position), enum in _ENUMS.items():
            if enum_cls is cls:
                values[position] = enum(values[position])
        delta: Delta = cls(*values)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a packed delta: {data[:100]!r}") from exc
    return delta
