"""What the OpenAI Responses test modules share."""

from __future__ import annotations

from tokenrelay.llm import (
    Delta,
    Finish,
    FinishReason,
    ReasoningDelta,
    Request,
    Start,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from tokenrelay.llm.openai_responses import OPENAI_RESPONSES


def encode(deltas: list[Delta], request: Request | None = None) -> bytes:
    return OPENAI_RESPONSES.encoder(request).encode_all(deltas)


def rich_stream(finish: FinishReason = FinishReason.TOOL_CALLS) -> list[Delta]:
    """Reasoning with a signature, text, a call with arguments and one without, then the
    finish, with the usage coming after it."""
    return [
        Start("resp_t1", "gpt-test", 1700000000),
        ReasoningDelta("Let me "),
        ReasoningDelta("think."),
        ReasoningDelta("", signature="enc=="),
        TextDelta("Hello"),
        TextDelta(", world"),
        ToolCallStart(0, "call_a", "get_weather"),
        ToolCallDelta(0, '{"city":'),
        ToolCallDelta(0, '"Paris"}'),
        ToolCallEnd(0),
        ToolCallStart(1, "call_b", "get_time"),
        ToolCallEnd(1),
        Finish(finish),
        Usage(20, 10, cached_tokens=5, reasoning_tokens=3),
    ]
