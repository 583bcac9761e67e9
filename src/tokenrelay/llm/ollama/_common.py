"""What the modules of the Ollama codec share: the finish words and the ``created_at``
times (RFC 3339, read and written to the nanosecond) that derive ids."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime
from typing import Any

from ..model import Finish, FinishReason

NAME = "ollama"

_F = FinishReason
REASON_OF_WORD: dict[str, FinishReason] = {
    "stop": _F.STOP,
    "length": _F.LENGTH,
    # Not Ollama's words: what this encoder sends for reasons Ollama has none for.
    "content_filter": _F.CONTENT_FILTER,
    "error": _F.ERROR,
    "pause": _F.PAUSE,
}
WORD_OF_REASON: dict[FinishReason, str] = {
    _F.STOP: "stop",
    _F.TOOL_CALLS: "stop",
    _F.LENGTH: "length",
    _F.CONTENT_FILTER: "content_filter",
    _F.ERROR: "error",
    _F.PAUSE: "pause",
    _F.OTHER: "other",
}

_TIME = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9})\d*)?(Z|z|[+-]\d\d:?\d\d)?"
)
DERIVED_ID = re.compile(r"ollama-(\d+)")


def parse_time(value: Any) -> int:
    """An RFC 3339 time (Go's, with up to nine fraction digits) in Unix nanoseconds;
    0 when unreadable."""
    if not isinstance(value, str) or (m := _TIME.fullmatch(value)) is None:
        return 0
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        datetime(year, month, day, hour, minute, second)  # ranges timegm would wrap
    except ValueError:
        return 0
    seconds = calendar.timegm((year, month, day, hour, minute, second))
    zone = m[8]
    if zone and zone not in "Zz":
        hours, minutes = int(zone[1:3]), int(zone[-2:])
        seconds -= (1 if zone[0] == "+" else -1) * (hours * 3600 + minutes * 60)
    return seconds * 10**9 + int((m[7] or "0").ljust(9, "0"))


def format_time(ns: int) -> str:
    """Unix nanoseconds as Go's RFC 3339 with nanoseconds (trailing zeros trimmed)."""
    seconds, fraction = divmod(ns, 10**9)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{fraction:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def reason_of(word: str, called: bool) -> FinishReason:
    reason = REASON_OF_WORD.get(word, _F.OTHER) if word else _F.STOP
    return _F.TOOL_CALLS if reason is _F.STOP and called else reason


def finish_word(finish: Finish) -> str:
    """Ollama's word for ``finish``: its own ``raw`` when that means the same."""
    raw = finish.raw
    if raw and raw.islower() and reason_of(raw, finish.reason is _F.TOOL_CALLS) is finish.reason:
        return raw
    return WORD_OF_REASON[finish.reason]
