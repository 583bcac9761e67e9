"""The Gemini dialect's whole (non-streamed) responses, `tokenrelay.llm.gemini.response`:
parse_response and render_response.
"""

from __future__ import annotations

import orjson

from tests.dialect_helpers import data_lines
from tests.llm.gemini.helpers import EXPECTED, FIXTURE, decode
from tokenrelay.llm import (
    Finish,
    FinishReason,
    ReasoningDelta,
    Start,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    accumulate,
    replay,
)
from tokenrelay.llm.gemini import GEMINI


def test_render_response_then_parse_response_gives_the_completion_back() -> None:
    completion = accumulate(
        [
            Start("resp", "gemini-2.5-pro", 1700000000),
            ReasoningDelta("plan"),
            ReasoningDelta("", "sig"),
            TextDelta("Answer"),
            ToolCallStart(0, "call_resp_0", "f"),
            ToolCallDelta(0, '{"a":1}'),
            ToolCallEnd(0),
            Usage(10, 20, 2, 5),
            Finish(FinishReason.TOOL_CALLS, "STOP"),
        ]
    )
    body = GEMINI.render_response(completion)
    assert body["candidates"][0]["finishReason"] == "STOP"
    assert body["createTime"] == "2023-11-14T22:13:20Z"
    assert accumulate(GEMINI.parse_response(orjson.dumps(body))) == completion
    assert accumulate(GEMINI.parse_response(body)) == completion


def test_parse_response_reads_the_array_of_a_stream_without_alt_sse() -> None:
    chunks = data_lines(FIXTURE.replace(b"\r\n", b"\n"))
    assert GEMINI.parse_response(orjson.dumps(chunks)) == EXPECTED


def test_replayed_completion_encodes_like_a_stream() -> None:
    completion = accumulate(EXPECTED)
    assert accumulate(decode([GEMINI.encoder().encode_all(replay(completion))])[0]) == completion
