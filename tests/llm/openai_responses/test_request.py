"""The OpenAI Responses dialect's request bodies, `tokenrelay.llm.openai_responses.request`:
parse_request and build_request.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import openai
import pytest

from tests.llm.openai_responses.helpers import encode, rich_stream
from tests.replay_server import ReplayServer
from tokenrelay.errors import RequestError
from tokenrelay.llm import (
    ImagePart,
    Message,
    ReasoningPart,
    Request,
    TextPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from tokenrelay.llm.jsonio import dumps
from tokenrelay.llm.openai_responses import OPENAI_RESPONSES

pytestmark = pytest.mark.sdk


def test_sdk_request_body_parses(server: ReplayServer, sdk: openai.OpenAI) -> None:
    server.respond(encode(rich_stream()))
    tools: Any = [
        {"type": "function", "name": "get_weather", "description": "Weather",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
         "strict": False},
    ]  # fmt: skip
    sdk.responses.create(
        model="gpt-test",
        instructions="Be brief.",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]}],
        tools=tools,
        max_output_tokens=50,
        stream=True,
    ).close()
    request = OPENAI_RESPONSES.parse_request(server.requests[-1][3])
    assert request.messages == (
        Message("system", (TextPart("Be brief."),)),
        Message("user", (TextPart("Weather?"),)),
    )
    assert request.tools[0].name == "get_weather" and request.stream
    assert request.max_tokens == 50 and "tools" not in request.extra


FULL_REQUEST = Request(
    model="gpt-4.1",
    messages=(
        Message("system", (TextPart("Be brief."),)),
        Message("user", (TextPart("Look:"), ImagePart(url="https://example.com/a.png"))),
        Message(
            "assistant",
            (
                ReasoningPart("I should call tools.", "enc=="),
                TextPart("Checking."),
                ToolCallPart("call_1", "get_weather", '{"city":"Paris"}'),
                ToolCallPart("call_2", "now", "{}"),
            ),
        ),
        Message("tool", (ToolResultPart("call_1", "sunny"), ToolResultPart("call_2", "noon"))),
        Message("system", (TextPart("Answer in French."),)),
        Message("user", (TextPart("Merci"),)),
    ),
    stream=True,
    max_tokens=100,
    temperature=0.5,
    top_p=0.9,
    tools=(
        Tool("get_weather", "Weather", {"type": "object", "properties": {"city": {}}}),
        Tool("now"),
    ),
    tool_choice=ToolChoice("tool", "get_weather"),
    parallel_tool_calls=False,
    include_usage=True,
    user="u1",
    extra={"store": False, "metadata": {"k": "v"}, "reasoning": {"effort": "low"},
           "previous_response_id": "resp_0", "include": ["reasoning.encrypted_content"]},
    dialect="openai_responses",
)  # fmt: skip


@pytest.mark.parametrize(
    "request_",
    [
        FULL_REQUEST,
        Request("m", (Message("user", (TextPart("hi"),)),), include_usage=True,
                dialect="openai_responses"),
        replace(FULL_REQUEST, tool_choice=ToolChoice("none"), stream=False),
        replace(FULL_REQUEST, extra={"tools": [{"type": "web_search"}]}, tools=()),
    ],
)  # fmt: skip
def test_parse_of_build_gives_the_request_back(request_: Request) -> None:
    body = OPENAI_RESPONSES.build_request(request_)
    assert OPENAI_RESPONSES.parse_request(dumps(body)) == request_


def test_build_request_writes_the_responses_shape() -> None:
    body = OPENAI_RESPONSES.build_request(FULL_REQUEST)
    assert body["instructions"] == "Be brief."
    assert body["input"][0] == {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "Look:"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"},
        ],
    }
    assert [item["type"] for item in body["input"][1:6]] == [
        "reasoning", "message", "function_call", "function_call", "function_call_output"
    ]  # fmt: skip
    assert "id" not in body["input"][1]  # a store=false upstream would look it up
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert body["max_output_tokens"] == 100 and body["store"] is False


def test_requests_from_other_dialects_get_non_strict_tools_and_lose_what_has_no_place() -> None:
    request = Request(
        "m",
        (
            Message("user", (ImagePart(data="AAAA", media_type="image/jpeg"),)),
            Message("assistant", (ReasoningPart("unsigned thoughts"), TextPart("ok"))),
        ),
        tools=(Tool("f"),),
        stop=("END",),
        n=2,
        reasoning_budget=8000,
        extra={"seed": 1},
        dialect="openai_chat",
    )
    body = OPENAI_RESPONSES.build_request(request)
    assert body["tools"][0]["strict"] is False
    assert body["reasoning"] == {"effort": "medium"}
    assert body["input"][0]["content"][0]["image_url"] == "data:image/jpeg;base64,AAAA"
    assert [item["type"] for item in body["input"]] == ["message", "message"]  # no reasoning
    assert not {"stop", "n", "seed"} & body.keys()


def test_parse_request_reads_the_loose_forms() -> None:
    request = OPENAI_RESPONSES.parse_request(
        {
            "model": "m",
            "input": [
                {"role": "developer", "content": "Rules."},
                {"role": "user", "content": "Hi"},
                {"type": "function_call_output", "call_id": "c",
                 "output": [{"type": "input_text", "text": "a"},
                            {"type": "input_text", "text": "b"}]},
                {"type": "reasoning", "id": "rs_1",
                 "summary": [{"type": "summary_text", "text": "one"},
                             {"type": "summary_text", "text": "two"}]},
            ],
            "tools": [{"type": "function", "name": "f", "strict": True}, {"type": "web_search"}],
            "tool_choice": {"type": "web_search"},
            "seed": 3,
        }
    )  # fmt: skip
    assert request.messages == (
        Message("system", (TextPart("Rules."),)),
        Message("user", (TextPart("Hi"),)),
        Message("tool", (ToolResultPart("c", "ab"),)),
        Message("assistant", (ReasoningPart("one\n\ntwo"),)),
    )
    assert request.tools == (Tool("f"),) and request.tool_choice is None
    assert request.extra["tools"][1] == {"type": "web_search"}
    assert request.extra["tool_choice"] == {"type": "web_search"}
    assert request.extra["seed"] == 3 and request.include_usage


def test_parse_request_takes_a_string_input() -> None:
    request = OPENAI_RESPONSES.parse_request(b'{"model":"m","input":"hello","stream":true}')
    assert request.messages == (Message("user", (TextPart("hello"),)),) and request.stream


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": 3, "input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": 3}, "input"),
        ({"model": "m", "input": ["x"]}, "input[0]"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"role": "user"}]}, "input[0].content"),
        ({"model": "m", "input": [{"role": "user", "content": 3}]}, "input[0].content"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file"}]}]},
         "input[0].content[0].type"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]},
         "input[0].content[0].text"),
        ({"model": "m", "input": [{"role": "user",
                                   "content": [{"type": "input_image", "file_id": "f"}]}]},
         "input[0].content[0].file_id"),
        ({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
         "input[0].call_id"),
        ({"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": 1}]},
         "input[0].output"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"model": "m", "input": "x", "tools": {}}, "tools"),
        ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "m", "input": "x", "max_output_tokens": "9"}, "max_output_tokens"),
        ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "x", "temperature": "hot"}, "temperature"),
        ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "m", "input": "x", "reasoning": "high"}, "reasoning"),
    ],
)  # fmt: skip
def test_bad_request_names_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as info:
        OPENAI_RESPONSES.parse_request(body)
    assert info.value.param == param


def test_request_body_that_is_not_json_is_rejected() -> None:
    with pytest.raises(RequestError):
        OPENAI_RESPONSES.parse_request(b"{nope")
