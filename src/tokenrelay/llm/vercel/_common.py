"""What the modules of the Vercel AI SDK UI codec share: the dialect's name, the header
its responses carry, its finish words, and what it is not."""

from __future__ import annotations

from typing import NoReturn

from ..model import FinishReason

NAME = "vercel_ui"

HEADERS: dict[str, str] = {"x-vercel-ai-ui-message-stream": "v1"}
"""What a UI message stream response must carry besides its SSE content type."""

_F = FinishReason
WORD_OF_REASON: dict[FinishReason, str] = {
    _F.STOP: "stop",
    _F.LENGTH: "length",
    _F.TOOL_CALLS: "tool-calls",
    _F.CONTENT_FILTER: "content-filter",
    _F.ERROR: "error",
    _F.PAUSE: "other",
    _F.OTHER: "other",
}
REASON_OF_WORD: dict[str, FinishReason] = {
    w: r for r, w in WORD_OF_REASON.items() if r is not _F.PAUSE
}


def unsupported(what: str) -> NoReturn:
    raise NotImplementedError(
        f"the Vercel AI SDK UI message stream is a browser-facing dialect: it has no {what}"
    )
