"""The Anthropic Messages dialect's whole (non-streamed) responses,
`tokenrelay.llm.anthropic.response`: parse_response and render_response, and what the official
`anthropic` SDK reads.
"""

from __future__ import annotations

import anthropic
import orjson
import pytest

from tests.llm.anthropic.helpers import HELLO, S
from tests.replay_server import ReplayServer
from tokenrelay.llm import (
    Choice,
    Completion,
    ErrorKind,
    Finish,
    StreamError,
    ToolCall,
    Usage,
    accumulate,
)
from tokenrelay.llm.anthropic import ANTHROPIC

pytestmark = pytest.mark.sdk


def test_sdk_create_parses_a_rendered_response(
    server: ReplayServer, client: anthropic.Anthropic
) -> None:
    completion = Completion(
        "msg_2",
        "claude-test",
        choices=(
            Choice(
                0,
                text="Checking.",
                reasoning="Think.",
                reasoning_signature="sig",
                tool_calls=(
                    ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),
                    ToolCall("toolu_2", "now", "{}"),
                ),
                finish=Finish(S.TOOL_CALLS, "tool_use"),
            ),
        ),
        usage=Usage(150, 40, 100, 5),
    )
    body = ANTHROPIC.render_response(completion)
    server.respond(orjson.dumps(body), content_type="application/json")
    message = client.messages.create(model="claude-test", max_tokens=99, messages=HELLO)
    assert (message.id, message.type, message.model) == ("msg_2", "message", "claude-test")
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[2].input == {"city": "Paris"} and message.content[3].input == {}
    assert (
        message.stop_reason,
        message.usage.input_tokens,
        message.usage.cache_read_input_tokens,
    ) == (
        "tool_use",
        50,
        100,
    )
    assert accumulate(ANTHROPIC.parse_response(orjson.dumps(body))) == completion


def test_parse_response_of_an_error_body_or_garbage_is_an_error() -> None:
    error = b'{"type": "error", "error": {"type": "api_error", "message": "x"}}'
    assert ANTHROPIC.parse_response(error) == [
        StreamError(ErrorKind.SERVER, "x", None, "api_error")
    ]
    (garbage,) = ANTHROPIC.parse_response(b"[1, 2]")
    assert isinstance(garbage, StreamError) and "malformed" in garbage.message
