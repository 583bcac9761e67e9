"""The LLM stand-in the examples share: a reply, token by token, resumable by id."""

from __future__ import annotations

import re

REPLY = (
    "Server-Sent Events carry each token to the browser the moment it is made. "
    "Each event has an id, so a client that loses the connection reconnects with "
    "Last-Event-ID and the server resumes right after it: nothing lost, nothing twice."
)


def tokens(prompt: str) -> list[str]:
    """The tokens of the reply to ``prompt`` (a word and its leading space each)."""
    return re.findall(r"\s*\S+", f"You asked: {prompt.strip() or 'nothing'}. " + REPLY)


def resume_after(last_event_id: str | None) -> int:
    """Index of the first token still to send after ``Last-Event-ID`` (0 with none)."""
    try:
        return int(last_event_id or -1) + 1
    except ValueError:
        return 0
