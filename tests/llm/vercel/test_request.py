"""The Vercel AI SDK UI message stream dialect's request bodies, `tokenrelay.llm.vercel.request`:
parse_request and build_request.
"""

from __future__ import annotations

import orjson
import pytest

from tokenrelay.errors import RequestError
from tokenrelay.llm import (
    ImagePart,
    Message,
    ReasoningPart,
    Request,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from tokenrelay.llm.vercel import VERCEL_UI


def test_use_chat_body_parses_into_turns_tool_calls_and_results() -> None:
    body = {
        "id": "chat-1",
        "trigger": "submit-message",
        "model": "gpt-4o",
        "temperature": 0.2,
        "messages": [
            {"id": "s", "role": "system", "parts": [{"type": "text", "text": "Be brief."}]},
            {
                "id": "u1",
                "role": "user",
                "parts": [
                    {"type": "text", "text": "Weather here?"},
                    {"type": "file", "mediaType": "image/png", "url": "data:image/png;base64,AAA="},
                ],
            },
            {
                "id": "a1",
                "role": "assistant",
                "parts": [
                    {"type": "step-start"},
                    {"type": "reasoning", "text": "need tools", "state": "done"},
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool-get_weather",
                        "toolCallId": "c1",
                        "state": "output-available",
                        "input": {"city": "Paris"},
                        "output": {"temp": 21},
                    },
                    {
                        "type": "dynamic-tool",
                        "toolName": "lookup",
                        "toolCallId": "c2",
                        "state": "output-error",
                        "input": {},
                        "errorText": "down",
                    },
                    {"type": "step-start"},
                    {"type": "source-url", "sourceId": "s1", "url": "https://x.test"},
                    {"type": "text", "text": "21 degrees."},
                    {
                        "type": "tool-ask",
                        "toolCallId": "c3",
                        "state": "input-streaming",
                        "input": {},
                    },
                ],
            },
        ],
    }
    request = VERCEL_UI.parse_request(orjson.dumps(body))
    assert request == Request(
        model="gpt-4o",
        messages=(
            Message("system", (TextPart("Be brief."),)),
            Message(
                "user",
                (
                    TextPart("Weather here?"),
                    ImagePart(url="data:image/png;base64,AAA=", media_type="image/png"),
                ),
            ),
            Message(
                "assistant",
                (
                    ReasoningPart("need tools"),
                    TextPart("Checking."),
                    ToolCallPart("c1", "get_weather", '{"city":"Paris"}'),
                    ToolCallPart("c2", "lookup", "{}"),
                ),
            ),
            Message(
                "tool", (ToolResultPart("c1", '{"temp":21}'), ToolResultPart("c2", "down", True))
            ),
            Message("assistant", (TextPart("21 degrees."),)),
        ),
        stream=True,
        extra={"id": "chat-1", "trigger": "submit-message", "temperature": 0.2},
        dialect="vercel_ui",
    )


def test_denied_tool_calls_answer_with_an_error_result() -> None:
    body = {
        "messages": [
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool-rm",
                        "toolCallId": "c",
                        "state": "output-denied",
                        "input": {"path": "/"},
                        "approval": {"id": "a", "approved": False, "reason": "Too risky."},
                    }
                ],
            }
        ]
    }
    messages = VERCEL_UI.parse_request(body).messages
    assert messages[1] == Message(
        "tool", (ToolResultPart("c", "The user denied the tool call. Too risky.", True),)
    )
    assert VERCEL_UI.parse_request(body).model == ""


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "messages"),
        ({"messages": [3]}, "messages[0]"),
        ({"messages": [{"parts": []}]}, "messages[0].role"),
        ({"messages": [{"role": "tool", "parts": []}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "parts": "hi"}]}, "messages[0].parts"),
        ({"messages": [{"role": "user", "parts": [{"text": "x"}]}]}, "messages[0].parts[0].type"),
        (
            {"messages": [{"role": "user", "parts": [{"type": "text"}]}]},
            "messages[0].parts[0].text",
        ),
        ({"messages": [{"role": "user", "parts": [{"type": "file"}]}]}, "messages[0].parts[0].url"),
        (
            {
                "messages": [
                    {"role": "assistant", "parts": [{"type": "tool-x", "state": "input-available"}]}
                ]
            },
            "messages[0].parts[0].toolCallId",
        ),
        ({"messages": [], "model": 4}, "model"),
    ],
)
def test_bad_request_bodies_name_the_field(body: dict[str, object], param: str) -> None:
    with pytest.raises(RequestError) as info:
        VERCEL_UI.parse_request(body)
    assert info.value.param == param
