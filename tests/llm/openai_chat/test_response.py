"""The OpenAI Chat Completions dialect's whole (non-streamed) responses,
`tokenrelay.llm.openai_chat.response`: parse_response and render_response, and what the official
`openai` SDK reads.
"""

from __future__ import annotations

import openai
import pytest

from tests.llm.openai_chat.helpers import (
    CAPTURES,
    FOO_LOGPROBS,
    MESSAGES,
    K,
    R,
    check_shape,
    decode,
    encode,
)
from tests.replay_server import ReplayServer
from tokenrelay.llm import (
    Choice,
    Completion,
    Finish,
    Start,
    StreamError,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    accumulate,
    replay,
)
from tokenrelay.llm.jsonio import dumps
from tokenrelay.llm.openai_chat import OPENAI_CHAT

pytestmark = pytest.mark.sdk


def test_sdk_create_parses_a_rendered_completion_with_several_choices(
    server: ReplayServer, client: openai.OpenAI
) -> None:
    rendered = OPENAI_CHAT.render_response(
        Completion(
            "chatcmpl-4",
            "gpt-test",
            1700000000,
            (
                Choice(0, "Hello.", reasoning="Thought.", finish=Finish(R.STOP)),
                Choice(
                    1,
                    tool_calls=(ToolCall("call_1", "f", '{"a": 1}'), ToolCall("call_2", "g", "{}")),
                    finish=Finish(R.TOOL_CALLS),
                ),
                Choice(2, refusal="I can't.", finish=Finish(R.CONTENT_FILTER, "refusal")),
                Choice(3, "Fo", finish=Finish(R.LENGTH), logprobs=FOO_LOGPROBS),
            ),
            Usage(20, 10, 5, 3),
        )
    )
    server.respond(dumps(rendered), content_type="application/json")
    got = client.chat.completions.create(model="gpt-test", messages=MESSAGES, n=4)
    assert got.id == "chatcmpl-4" and got.object == "chat.completion"
    first, second, third, fourth = got.choices
    assert (first.message.content, first.finish_reason) == ("Hello.", "stop")
    assert (first.message.model_extra or {})["reasoning_content"] == "Thought."
    assert second.message.content is None
    assert [
        (c.id, c.function.name, c.function.arguments) for c in second.message.tool_calls or []
    ] == [
        ("call_1", "f", '{"a": 1}'),
        ("call_2", "g", "{}"),
    ]
    assert second.finish_reason == "tool_calls"
    assert (third.message.content, third.message.refusal) == (None, "I can't.")
    assert third.finish_reason == "content_filter"
    assert fourth.logprobs is not None and fourth.logprobs.content is not None
    assert [t.token for t in fourth.logprobs.content] == ["Foo", "!"]
    assert got.usage is not None and got.usage.total_tokens == 30
    # ...and the same body parses back to the deltas of that completion.
    assert accumulate(OPENAI_CHAT.parse_response(dumps(rendered))) == Completion(
        "chatcmpl-4",
        "gpt-test",
        1700000000,
        (
            Choice(0, "Hello.", reasoning="Thought.", finish=Finish(R.STOP, "stop")),
            Choice(
                1,
                tool_calls=(ToolCall("call_1", "f", '{"a": 1}'), ToolCall("call_2", "g", "{}")),
                finish=Finish(R.TOOL_CALLS, "tool_calls", None, 1),
            ),
            Choice(
                2, refusal="I can't.", finish=Finish(R.CONTENT_FILTER, "content_filter", None, 2)
            ),
            Choice(3, "Fo", finish=Finish(R.LENGTH, "length", None, 3), logprobs=FOO_LOGPROBS),
        ),
        Usage(20, 10, 5, 3),
    )


def test_parse_response_reads_an_openai_body_with_only_tool_calls() -> None:
    body = {
        "id": "chatcmpl-5",
        "object": "chat.completion",
        "created": 3,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_x",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"q": "a"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
    }
    deltas = OPENAI_CHAT.parse_response(dumps(body))
    check_shape(deltas)
    assert deltas == [
        Start("chatcmpl-5", "gpt-4o", 3),
        ToolCallStart(0, "call_x", "f"),
        ToolCallDelta(0, '{"q": "a"}'),
        ToolCallEnd(0),
        Usage(5, 6),
        Finish(R.TOOL_CALLS, "tool_calls"),
    ]


def test_parse_response_turns_error_and_malformed_bodies_into_stream_errors() -> None:
    assert OPENAI_CHAT.parse_response(b'{"error": {"message": "nope", "type": "x"}}') == [
        StreamError(K.SERVER, "nope", None, "x")
    ]
    [error] = OPENAI_CHAT.parse_response(b"{not json")
    assert isinstance(error, StreamError) and error.kind == K.SERVER
    assert error.message.startswith("upstream sent malformed data")


def test_replayed_completion_encodes_to_a_stream_that_decodes_back() -> None:
    deltas, _ = decode([(CAPTURES / "n3_interleaved.sse").read_bytes()])
    again, _ = decode([encode(replay(accumulate(deltas)))])
    assert accumulate(again) == accumulate(deltas)
