"""JSON as the codecs write and read it: compact UTF-8 bytes, through orjson."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["dumps", "loads"]


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes (non-ASCII kept as is, as the providers send it)."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)
