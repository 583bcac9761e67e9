"""What the Ollama test modules share."""

from __future__ import annotations

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

NS = 1751919739184789000  # 2025-07-07T20:22:19.184789Z


EXPECTED: list[Delta] = [
    Start(f"ollama-{NS}", "llama3.2", NS // 10**9),
    TextDelta("Hel"),
    TextDelta("lo"),
    ToolCallStart(0, f"call_{NS}_0", "get_weather"),
    ToolCallDelta(0, '{"city":"Tokyo"}'),
    ToolCallEnd(0),
    Usage(169, 15),
    Finish(FinishReason.TOOL_CALLS, "stop"),
]
