"""The Ollama dialect's request bodies, `tokenrelay.llm.ollama.request`: parse_request and
build_request.
"""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest

from tokenrelay.errors import RequestError
from tokenrelay.llm import (
    ImagePart,
    Message,
    ReasoningPart,
    Request,
    TextPart,
    Tool,
    ToolCallPart,
    ToolResultPart,
)
from tokenrelay.llm.ollama import OLLAMA

PNG = "iVBORw0KGgoAAAANSUhEUg=="


def full_request(**changes: object) -> Request:
    base = Request(
        model="llama3.2",
        messages=(
            Message("system", (TextPart("Be brief."),)),
            Message("user", (TextPart("Weather?"), ImagePart(data=PNG, media_type="image/png"))),
            Message(
                "assistant",
                (
                    ReasoningPart("thinking"),
                    ToolCallPart("call_0", "get_weather", '{"city":"Paris"}'),
                    ToolCallPart("call_1", "get_time", "{}"),
                ),
            ),
            Message("tool", (ToolResultPart("call_1", "noon"),)),
            Message("tool", (ToolResultPart("call_0", "sunny"),)),
            Message("assistant", (TextPart("Sunny."),)),
        ),
        stream=True,
        max_tokens=100,
        temperature=0.5,
        top_p=0.9,
        stop=("END",),
        tools=(
            Tool(
                "get_weather",
                "Weather",
                {"type": "object", "properties": {"city": {"type": "string"}}},
            ),
        ),
        include_usage=True,
        extra={
            "options": {"seed": 7, "num_ctx": 4096},
            "think": True,
            "keep_alive": "5m",
            "format": "json",
        },
        dialect="ollama",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_build_request_writes_an_api_chat_body() -> None:
    body = OLLAMA.build_request(full_request())
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?", "images": [PNG]},
        {
            "role": "assistant",
            "content": "",
            "thinking": "thinking",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_time", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "noon", "tool_name": "get_time"},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "assistant", "content": "Sunny."},
    ]
    assert body["options"] == {
        "num_predict": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "num_ctx": 4096,
    }
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert (body["stream"], body["think"], body["keep_alive"], body["format"]) == (
        True,
        True,
        "5m",
        "json",
    )


def test_parse_request_inverts_build_request() -> None:
    request = full_request()
    assert OLLAMA.parse_request(orjson.dumps(OLLAMA.build_request(request))) == request
    quiet = full_request(stream=False, extra={})
    assert OLLAMA.parse_request(OLLAMA.build_request(quiet)) == quiet


def test_stream_defaults_to_true() -> None:
    request = OLLAMA.parse_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert request.stream is True
    assert request.messages == (Message("user", (TextPart("hi"),)),)


def test_negative_num_predict_means_no_limit_and_stays_in_extra() -> None:
    request = OLLAMA.parse_request({"model": "m", "messages": [], "options": {"num_predict": -1}})
    assert request.max_tokens is None
    assert request.extra == {"options": {"num_predict": -1}}


def test_tool_results_without_names_answer_the_oldest_open_call() -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "a", "arguments": {}}},
                    {"function": {"name": "b", "arguments": {}}},
                ],
            },
            {"role": "tool", "content": "1"},
            {"role": "tool", "content": "2"},
        ],
    }
    messages = OLLAMA.parse_request(body).messages
    assert [m.parts[0] for m in messages[1:]] == [
        ToolResultPart("call_0", "1"),
        ToolResultPart("call_1", "2"),
    ]


def test_a_request_from_another_dialect_sends_no_extra_and_think_from_the_budget() -> None:
    body = OLLAMA.build_request(full_request(dialect="anthropic", reasoning_budget=2048))
    assert body["think"] is True
    assert "keep_alive" not in body and "seed" not in body["options"]


def test_images_by_data_url_are_unpacked_and_by_http_url_refused() -> None:
    request = Request("m", (Message("user", (ImagePart(url=f"data:image/png;base64,{PNG}"),)),))
    assert OLLAMA.build_request(request)["messages"][0]["images"] == [PNG]
    with pytest.raises(RequestError) as info:
        OLLAMA.build_request(
            Request("m", (Message("user", (ImagePart(url="https://x.test/a.png"),)),))
        )
    assert info.value.param == "messages[0]"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": {}}, "messages"),
        ({"model": "m", "messages": [1]}, "messages[0]"),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "bot"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "images": [5]}]}, "messages[0].images[0]"),
        (
            {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{}]}]},
            "messages[0].tool_calls[0].function",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": 3}}],
                    }
                ],
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"model": "m", "messages": [], "stream": "yes"}, "stream"),
        ({"model": "m", "messages": [], "options": {"temperature": "hot"}}, "options.temperature"),
        ({"model": "m", "messages": [], "options": {"stop": [1]}}, "options.stop"),
        ({"model": "m", "messages": [], "tools": [{"type": "web"}]}, "tools[0].type"),
        ({"model": "m", "messages": [], "tools": [{"function": {}}]}, "tools[0].function.name"),
    ],
)
def test_bad_request_bodies_name_the_field(body: dict[str, object], param: str) -> None:
    with pytest.raises(RequestError) as info:
        OLLAMA.parse_request(body)
    assert info.value.param == param


def test_generate_request_is_a_one_turn_chat() -> None:
    from tokenrelay.llm import OLLAMA_GENERATE

    request = OLLAMA_GENERATE.parse_request(
        {
            "model": "m",
            "prompt": "hi",
            "system": "be brief",
            "options": {"num_predict": 5},
            "stream": False,
        }
    )
    assert [(m.role, m.text) for m in request.messages] == [("system", "be brief"), ("user", "hi")]
    assert request.max_tokens == 5 and request.stream is False
    with pytest.raises(RequestError) as info:
        OLLAMA_GENERATE.parse_request({"model": "m", "prompt": "x", "suffix": "y"})
    assert info.value.param == "suffix"
