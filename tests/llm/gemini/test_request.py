"""The Gemini dialect's request bodies, `tokenrelay.llm.gemini.request`: parse_request and
build_request.
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
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from tokenrelay.llm.gemini import GEMINI, parse_path, request_path

PNG = "iVBORw0KGgo="


def full_request(**changes: object) -> Request:
    base = Request(
        model="",
        messages=(
            Message("system", (TextPart("Be brief."),)),
            Message("user", (TextPart("Weather?"), ImagePart(data=PNG, media_type="image/png"))),
            Message("user", (ImagePart(url="gs://b/cat.jpg", media_type="image/jpeg"),)),
            Message(
                "assistant",
                (
                    ReasoningPart("thinking", "sig1"),
                    ReasoningPart("", "sig2"),
                    ToolCallPart("call_0", "get_weather", '{"city":"Paris"}'),
                    ToolCallPart("call_1", "get_weather", '{"city":"Rome"}'),
                ),
            ),
            Message(
                "tool",
                (ToolResultPart("call_0", "sunny"), ToolResultPart("call_1", "oops", True)),
            ),
            Message("assistant", (TextPart("Sunny in Paris."),)),
        ),
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
            Tool("noop"),
        ),
        tool_choice=ToolChoice("tool", "get_weather"),
        include_usage=True,
        n=2,
        reasoning_budget=1024,
        extra={"safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}]},
        dialect="gemini",
    )
    from dataclasses import replace

    return replace(base, **changes)  # type: ignore[arg-type]


def test_build_request_writes_a_generate_content_body() -> None:
    body = GEMINI.build_request(full_request())
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"][0] == {
        "role": "user",
        "parts": [{"text": "Weather?"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}],
    }
    assert body["contents"][2] == {
        "role": "model",
        "parts": [
            {"text": "thinking", "thought": True, "thoughtSignature": "sig1"},
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": "sig2",
            },
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
        ],
    }
    assert body["contents"][3] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
            {"functionResponse": {"name": "get_weather", "response": {"error": "oops"}}},
        ],
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
                {"name": "noop"},
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert body["generationConfig"] == {
        "maxOutputTokens": 100,
        "temperature": 0.5,
        "topP": 0.9,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "thinkingConfig": {"thinkingBudget": 1024},
    }
    assert body["safetySettings"][0]["threshold"] == "OFF"
    assert "model" not in body


def test_build_request_never_sends_call_ids() -> None:
    wire = orjson.dumps(GEMINI.build_request(full_request()))
    assert b'"id"' not in wire


def test_parse_request_inverts_build_request() -> None:
    request = full_request()
    assert GEMINI.parse_request(GEMINI.build_request(request)) == request


@pytest.mark.parametrize(
    "choice", [None, ToolChoice("auto"), ToolChoice("none"), ToolChoice("required")]
)
def test_tool_choices_round_trip(choice: ToolChoice | None) -> None:
    request = full_request(tool_choice=choice)
    assert GEMINI.parse_request(GEMINI.build_request(request)) == request


def test_parse_request_takes_the_model_and_stream_from_the_caller() -> None:
    body = orjson.dumps({"contents": [{"parts": [{"text": "hi"}]}]})
    model, stream = parse_path("/v1beta/models/gemini-2.5-flash:streamGenerateContent")
    request = GEMINI.parse_request(body, model=model, stream=stream)
    assert (request.model, request.stream) == ("gemini-2.5-flash", True)
    assert request.messages == (Message("user", (TextPart("hi"),)),)
    assert GEMINI.parse_request(body).model == ""
    assert request_path(request) == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert parse_path("/v1/models") == ("", False)


def test_parse_request_matches_function_responses_to_calls_by_name() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "go"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "a", "args": {}}},
                    {"functionCall": {"name": "b", "args": {"x": 1}}},
                    {"functionCall": {"name": "a", "args": {"y": 2}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "b", "response": {"n": 1}}},
                    {"functionResponse": {"name": "a", "response": {"output": {"k": "v"}}}},
                    {"functionResponse": {"name": "a", "response": {"output": "2"}}},
                    {"text": "and now?"},
                ],
            },
        ]
    }
    messages = GEMINI.parse_request(body).messages
    assert [p.id for p in messages[1].parts] == ["call_0", "call_1", "call_2"]  # type: ignore[union-attr]
    assert messages[2] == Message(
        "tool",
        (
            ToolResultPart("call_1", '{"n":1}'),
            ToolResultPart("call_0", '{"k":"v"}'),
            ToolResultPart("call_2", "2"),
        ),
    )
    assert messages[3] == Message("user", (TextPart("and now?"),))


def test_parse_request_reads_snake_case_fields_and_keeps_unknown_ones_in_extra() -> None:
    body = {
        "system_instruction": {"parts": [{"text": "sys"}]},
        "contents": [
            {"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": PNG}}]}
        ],
        "generation_config": {
            "max_output_tokens": 5,
            "topK": 3,
            "thinking_config": {"includeThoughts": True},
        },
        "tools": [{"googleSearch": {}}],
        "cachedContent": "cachedContents/1",
    }
    request = GEMINI.parse_request(body)
    assert request.messages[0] == Message("system", (TextPart("sys"),))
    assert request.messages[1].parts == (ImagePart(data=PNG, media_type="image/png"),)
    assert request.max_tokens == 5
    assert request.extra == {
        "cachedContent": "cachedContents/1",
        "tools": [{"googleSearch": {}}],
        "generationConfig": {"topK": 3, "thinkingConfig": {"includeThoughts": True}},
    }
    rebuilt = GEMINI.build_request(request)
    assert rebuilt["tools"] == [{"googleSearch": {}}]
    assert rebuilt["generationConfig"] == {
        "maxOutputTokens": 5,
        "topK": 3,
        "thinkingConfig": {"includeThoughts": True},
    }


def test_a_request_from_another_dialect_loses_its_extra_and_asks_for_thoughts() -> None:
    request = full_request(dialect="openai_chat", extra={"seed": 1})
    body = GEMINI.build_request(request)
    assert "seed" not in body and "safetySettings" not in body
    assert body["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024,
        "includeThoughts": True,
    }


def test_image_urls_become_file_data_and_data_urls_inline_data() -> None:
    request = Request(
        "m",
        (
            Message(
                "user",
                (
                    ImagePart(url="https://x.test/a.webp"),
                    ImagePart(url=f"data:image/png;base64,{PNG}"),
                ),
            ),
        ),
    )
    parts = GEMINI.build_request(request)["contents"][0]["parts"]
    assert parts == [
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://x.test/a.webp"}},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "contents"),
        ({"contents": "hi"}, "contents"),
        ({"contents": ["hi"]}, "contents[0]"),
        ({"contents": [{"role": "bot", "parts": []}]}, "contents[0].role"),
        ({"contents": [{"parts": "x"}]}, "contents[0].parts"),
        ({"contents": [{"parts": [{"video": 1}]}]}, "contents[0].parts[0]"),
        ({"contents": [{"parts": [{"text": 1}]}]}, "contents[0].parts[0].text"),
        (
            {"contents": [{"parts": [{"inlineData": {"data": PNG}}]}]},
            "contents[0].parts[0].inlineData.mimeType",
        ),
        (
            {"contents": [{"role": "user", "parts": [{"functionCall": {"name": "f"}}]}]},
            "contents[0].parts[0]",
        ),
        (
            {"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]},
            "contents[0].parts[0].functionCall.name",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"maxOutputTokens": "5"},
            },
            "generationConfig.maxOutputTokens",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ALWAYS"}},
            },
            "toolConfig.functionCallingConfig.mode",
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{}]}]},
            "tools[0].functionDeclarations[0].name",
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "systemInstruction": "sys"},
            "systemInstruction",
        ),
    ],
)
def test_bad_request_bodies_name_the_field(body: dict[str, object], param: str) -> None:
    with pytest.raises(RequestError) as info:
        GEMINI.parse_request(body)
    assert info.value.param == param


def test_non_json_bodies_are_request_errors() -> None:
    with pytest.raises(RequestError):
        GEMINI.parse_request(b"{")
