"""What an encoder writes: ``Frame``\\s, and the bytes they become on the wire."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..sse import encode

__all__ = ["Frame", "Framing", "to_wire"]

Framing = Literal["sse", "ndjson"]


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
