"""What a server-side stream may yield, turned into SSE bytes. No I/O, no framework."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..sse import Event, comment, encode

__all__ = ["HEADERS", "PING", "Item", "check_options", "frame"]

Item = Event | Mapping[str, Any] | str | bytes
"""An ``Event``; a mapping with ``data`` (a str, bytes, or anything JSON can encode) and
optionally ``event``, ``id``, ``retry`` or ``comment``; a str (the data); or bytes, which
are written as they are and must be whole SSE blocks (pre-encoded, e.g. passed through
from an upstream)."""

PING = comment("ping")

# Built once: json.dumps with options builds a new encoder on every call.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

# No Connection header (forbidden in HTTP/2; the server manages connections) and no
# compression: proxies must pass each event on at once.
HEADERS: dict[str, str] = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def check_options(ping: float | None, buffer: int, send_timeout: float | None = None) -> None:
    """The options every stream shares, checked the same way everywhere."""
    if ping is not None and ping <= 0:
        raise ValueError("ping must be positive or None")
    if send_timeout is not None and send_timeout <= 0:
        raise ValueError("send_timeout must be positive or None")
    if buffer < 1:
        raise ValueError("buffer must be at least 1")


def frame(item: Item) -> bytes:
    """The bytes of one item. ``Event.id`` "" and ``event`` "message" are left out (they
    are the defaults a reader assumes; writing ``id:`` empty would reset its last ID)."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return encode(item)
    if isinstance(item, Event):
        return encode(
            item.data,
            event=None if item.event == "message" else item.event,
            id=item.id or None,
            retry=item.retry,
        )
    if isinstance(item, Mapping):
        return _mapping(item)
    raise TypeError(f"cannot send {type(item).__name__} as an event: {item!r:.80}")


def _mapping(item: Mapping[str, Any]) -> bytes:
    unknown = set(item) - {"data", "event", "id", "retry", "comment"}
    if unknown:
        raise ValueError(f"unknown event fields {sorted(unknown)} in {item!r:.80}")
    head = comment(item["comment"]) if item.get("comment") is not None else b""
    if "data" not in item:
        if head and not ({"event", "id", "retry"} & set(item)):
            return head
        # A block without data dispatches nothing, and some clients (the OpenAI SDK)
        # crash on it: refuse rather than send it.
        raise ValueError(f"an event needs data: {item!r:.80}")
    data = item["data"]
    if not isinstance(data, str | bytes):
        data = _to_json(data)
    return head + encode(data, event=item.get("event"), id=item.get("id"), retry=item.get("retry"))
