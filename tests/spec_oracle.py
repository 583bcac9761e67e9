"""A deliberately plain reading of WHATWG HTML §9.2.5-9.2.6, as an oracle for the decoder.

Whole input at once, one line at a time, no fast paths: slow and obviously right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class OracleResult:
    events: list[tuple[str, str, str, int | None]] = field(default_factory=list)
    last_event_id: str = ""
    retry: int | None = None
    longest_line: int = 0  # bytes, without the line end
    largest_event: int = 0  # bytes of an event's lines and line ends, up to its blank line
    trailing_line: int = 0  # bytes of the unterminated line at the end
    trailing_event: int = 0  # bytes of the unterminated event at the end, with that line


def parse(stream: bytes, last_event_id: str = "") -> OracleResult:
    if stream.startswith(b"\xef\xbb\xbf"):
        stream = stream[3:]
    result = OracleResult(last_event_id=last_event_id)
    # Only terminated lines count; the unterminated rest is discarded at end of stream.
    raw_lines = re.split(rb"\r\n|\r|\n", stream)
    result.trailing_line = len(raw_lines.pop())
    data: list[str] = []
    event_type = ""
    retry: int | None = None
    id_buffer = last_event_id
    block = 0
    for raw in raw_lines:
        result.longest_line = max(result.longest_line, len(raw))
        line = raw.decode("utf-8", "replace")
        if line == "":
            result.largest_event = max(result.largest_event, block)
            block = 0
            result.last_event_id = id_buffer
            if data:
                result.events.append(("\n".join(data), event_type or "message", id_buffer, retry))
            data, event_type, retry = [], "", None
            continue
        block += len(raw) + 1
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            id_buffer = value
        elif name == "retry" and re.fullmatch("[0-9]+", value):
            retry = result.retry = int(value)
    result.largest_event = max(result.largest_event, block)
    result.trailing_event = block + result.trailing_line
    return result
