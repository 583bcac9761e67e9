"""Lenient readers of upstream JSON: a field of the wrong type counts as missing.

Decoders read what upstreams send through these, so one malformed field costs that field
and never the stream. The rules are the same for every dialect:

- an integer is a JSON integer, or a finite number with a fraction, truncated (some
  OpenAI-compatible servers send ``created`` as ``1712345678.9``; counts are integers
  everywhere); ``true`` and ``false`` are not integers;
- a string is a string, an object an object, a list a list; anything else, ``null``
  included, reads as the empty one.

Request bodies, where a wrong type is the caller's error, are read by ``fields`` instead.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["as_int", "as_list", "as_obj", "as_objs", "as_str"]


def as_int(value: Any) -> int:
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_objs(value: Any) -> list[dict[str, Any]]:
    """The objects of a list (other items dropped)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
