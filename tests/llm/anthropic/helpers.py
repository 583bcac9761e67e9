"""What the Anthropic Messages test modules share."""

from __future__ import annotations

from typing import Any

from tests.conftest import FIXTURES
from tests.dialect_helpers import named_events
from tokenrelay.llm import (
    FinishReason,
)

WRITTEN = FIXTURES / "written"


S = FinishReason


HELLO = [{"role": "user", "content": "hi"}]


def check_sdk_shape(wire: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Assert what the SDK and real clients rely on (sdk-compat.md); return the events."""
    evs = named_events(wire)
    assert evs, "empty stream"
    for name, obj in evs:
        assert name == obj["type"], "every event needs event: and the same type in its JSON"
    if evs[0][0] == "error":
        assert len(evs) == 1
        return evs
    assert evs[0][0] == "message_start"
    assert [n for n, _ in evs].count("message_start") == 1
    open_block, next_index = None, 0
    for position, (name, obj) in enumerate(evs[1:], 1):
        if name == "content_block_start":
            assert open_block is None, "content_block_stop must come before the next start"
            assert obj["index"] == next_index, "block indexes 0, 1, 2 without gaps"
            open_block, next_index = obj["index"], next_index + 1
        elif name in ("content_block_delta", "content_block_stop"):
            assert obj["index"] == open_block
            if name == "content_block_stop":
                open_block = None
        elif name == "message_delta":
            assert open_block is None
            assert isinstance(obj["usage"]["output_tokens"], int)
            assert [n for n, _ in evs[position:]] == ["message_delta", "message_stop"]
        elif name == "error":
            assert position == len(evs) - 1, "nothing after an error"
        else:
            assert name == "message_stop" and position == len(evs) - 1
    return evs
