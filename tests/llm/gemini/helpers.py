"""What the Gemini test modules share."""

from __future__ import annotations

from tests.conftest import FIXTURES
from tests.dialect_helpers import feed_all
from tokenrelay.llm import (
    Delta,
    Finish,
    FinishReason,
    Start,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from tokenrelay.llm.gemini import GEMINI, GeminiDecoder

FIXTURE = (FIXTURES / "written" / "gemini_stream.sse").read_bytes()


EXPECTED: list[Delta] = [
    Start("fxResp1", "gemini-2.5-flash", 0),
    Usage(9, 1),
    TextDelta("Hello"),
    Usage(9, 12),
    ToolCallStart(0, "call_fxResp1_0", "get_weather"),
    ToolCallDelta(0, '{"city":"Paris"}'),
    ToolCallEnd(0),
    Finish(FinishReason.TOOL_CALLS, "STOP"),
]


def decode(chunks: list[bytes]) -> tuple[list[Delta], GeminiDecoder]:
    decoder = GEMINI.decoder()
    return feed_all(decoder, chunks), decoder
