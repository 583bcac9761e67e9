"""What the modules of the OpenAI Responses codec share: the dialect's name, the JSON
alias, and lenient readers of upstream JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAME = "openai_responses"

Json = dict[str, Any]


# Upstream JSON is read through these: a field of the wrong type counts as missing.
def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _obj(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _objs(value: Any) -> list[Json]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _reasoning_text(item: Mapping[str, Any]) -> str:
    """The text of a reasoning item: its content, else its summary parts joined with a
    blank line (read from streams, answers and requests alike)."""
    content = "".join(_str(p.get("text")) for p in _objs(item.get("content")))
    return content or "\n\n".join(_str(p.get("text")) for p in _objs(item.get("summary")))
