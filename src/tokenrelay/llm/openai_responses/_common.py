"""What the modules of the OpenAI Responses codec share: the dialect's name, the JSON
alias, and the text of a reasoning item."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..lenient import as_objs, as_str

NAME = "openai_responses"

Json = dict[str, Any]


def reasoning_text(item: Mapping[str, Any]) -> str:
    """The text of a reasoning item: its content, else its summary parts joined with a
    blank line (read from streams, answers and requests alike)."""
    content = "".join(as_str(p.get("text")) for p in as_objs(item.get("content")))
    return content or "\n\n".join(as_str(p.get("text")) for p in as_objs(item.get("summary")))
