"""The Anthropic Messages dialect's request bodies, `tokenrelay.llm.anthropic.request`:
parse_request and build_request.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from tokenrelay.llm.anthropic import ANTHROPIC, REDACTED

pytestmark = pytest.mark.sdk


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Call the tool.", "signature": "sig1"},
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [
                        {"type": "text", "text": "clock "},
                        {"type": "text", "text": "broken"},
                    ],
                    "is_error": True,
                },
                {"type": "text", "text": "And this picture?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "redacted_thinking", "data": "EmwKAhgB"},
                {"type": "text", "text": "A cat."},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}
            ],
        },
    ],
    "tools": [{"name": "get_weather", "description": "Weather now", "input_schema": SCHEMA}],
    "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 40,
    "stop_sequences": ["###"],
    "stream": True,
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "metadata": {"user_id": "u-1"},
    "service_tier": "auto",
}


PARSED = Request(
    model="claude-sonnet-4-5",
    messages=(
        Message("system", (TextPart("Be brief."), TextPart("Be kind."))),
        Message("user", (TextPart("Weather in Paris?"),)),
        Message(
            "assistant",
            (
                ReasoningPart("Call the tool.", "sig1"),
                TextPart("Checking."),
                ToolCallPart("toolu_1", "get_weather", '{"city":"Paris"}'),
                ToolCallPart("toolu_2", "now", "{}"),
            ),
        ),
        Message(
            "tool",
            (ToolResultPart("toolu_1", "18C"), ToolResultPart("toolu_2", "clock broken", True)),
        ),
        Message(
            "user",
            (TextPart("And this picture?"), ImagePart(data="iVBORw0KGgo=", media_type="image/png")),
        ),
        Message("assistant", (ReasoningPart("", REDACTED + "EmwKAhgB"), TextPart("A cat."))),
        Message("user", (ImagePart(url="https://x.test/a.png"),)),
    ),
    stream=True,
    max_tokens=1024,
    temperature=0.5,
    top_p=0.9,
    stop=("###",),
    tools=(Tool("get_weather", "Weather now", SCHEMA),),
    tool_choice=ToolChoice("required"),
    parallel_tool_calls=False,
    include_usage=True,
    reasoning_budget=2048,
    user="u-1",
    extra={"top_k": 40, "service_tier": "auto"},
    dialect="anthropic",
)


def test_parse_request_reads_every_field() -> None:
    assert ANTHROPIC.parse_request(orjson.dumps(BODY)) == PARSED


def test_build_request_is_the_inverse_of_parse_request() -> None:
    built = ANTHROPIC.build_request(PARSED)
    assert ANTHROPIC.parse_request(orjson.dumps(built)) == PARSED
    assert built["messages"][2]["content"][0]["type"] == "tool_result"  # merged with the text
    assert built["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert built["thinking"] == {"type": "enabled", "budget_tokens": 2048}


def test_build_request_merges_tool_messages_and_moves_system_messages_up() -> None:
    request = Request(
        "gpt-x",
        (
            Message("system", (TextPart("sys"),)),
            Message("user", (TextPart("go"),)),
            Message("assistant", (ToolCallPart("c1", "f", ""), ToolCallPart("c2", "g", '{"a":1}'))),
            Message("tool", (ToolResultPart("c1", "r1"),)),
            Message("tool", (ToolResultPart("c2", "r2"),)),
            Message("system", (TextPart("late"),)),
            Message("assistant", (ReasoningPart("unsigned"), TextPart("done"))),
            Message("assistant", (ReasoningPart("unsigned, alone"),)),
        ),
        extra={"seed": 1},
        dialect="openai_chat",
        user="u",
    )
    assert ANTHROPIC.build_request(request) == {
        "model": "gpt-x",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "sys"}, {"type": "text", "text": "late"}],
        "messages": [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
                    {"type": "tool_use", "id": "c2", "name": "g", "input": {"a": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "c1", "content": "r1"},
                    {"type": "tool_result", "tool_use_id": "c2", "content": "r2"},
                ],
            },
            {"role": "assistant", "content": "done"},  # unsigned reasoning dropped
        ],
        "metadata": {"user_id": "u"},
    }


def test_build_request_defaults_max_tokens_above_the_thinking_budget() -> None:
    request = Request("m", (Message("user", (TextPart("x"),)),), reasoning_budget=10_000)
    assert ANTHROPIC.build_request(request)["max_tokens"] == 14_096


def test_build_request_turns_data_urls_into_base64_images() -> None:
    image = ImagePart(url="data:image/jpeg;base64,/9j/4AAQ")
    body = ANTHROPIC.build_request(Request("m", (Message("user", (image,)),)))
    assert body["messages"][0]["content"] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"},
        }
    ]


def test_extra_fields_pass_only_to_the_same_dialect() -> None:
    messages = (Message("user", (TextPart("x"),)),)
    thinking = {"type": "adaptive"}
    parsed = ANTHROPIC.parse_request(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "thinking": thinking,
            "metadata": {"user_id": "u", "trace": "t"},
        }
    )
    assert parsed.extra == {"thinking": thinking, "metadata": {"user_id": "u", "trace": "t"}}
    built = ANTHROPIC.build_request(parsed)
    assert (built["thinking"], built["metadata"]) == (thinking, {"user_id": "u", "trace": "t"})
    foreign = Request("m", messages, extra={"seed": 3}, dialect="openai_chat")
    assert "seed" not in ANTHROPIC.build_request(foreign)


_ids = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


_words = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8)


_user_parts = st.lists(
    st.one_of(
        st.builds(TextPart, _words),
        st.builds(
            lambda d: ImagePart(data=base64.b64encode(d).decode(), media_type="image/png"),
            st.binary(min_size=1, max_size=8),
        ),
        st.builds(lambda u: ImagePart(url=f"https://x.test/{u}.png"), _ids),
    ),
    min_size=1,
    max_size=3,
)


_assistant_parts = (
    st.tuples(
        st.lists(st.builds(ReasoningPart, _words, _ids), max_size=1),
        st.lists(st.builds(TextPart, _words), max_size=2),
        st.lists(
            st.builds(
                lambda i, n, a: ToolCallPart(i, n, orjson.dumps(a).decode()),
                _ids,
                _ids,
                st.dictionaries(_ids, st.integers(-(2**53), 2**53) | _words, max_size=2),
            ),
            max_size=2,
        ),
    )
    .map(lambda t: t[0] + t[1] + t[2])
    .filter(bool)
)


_tool_parts = st.lists(
    st.builds(ToolResultPart, _ids, _words, st.booleans()), min_size=1, max_size=2
)


@st.composite
def carried_requests(draw: Any) -> Request:
    """Requests Anthropic carries exactly: one leading system message, no two tool
    messages in a row, signed reasoning, arguments as compact JSON objects."""
    messages: list[Message] = []
    if draw(st.booleans()):
        messages.append(
            Message(
                "system", tuple(draw(st.lists(st.builds(TextPart, _words), min_size=1, max_size=2)))
            )
        )
    previous = ""
    for _ in range(draw(st.integers(1, 6))):
        # Two tool messages in a row merge into one: not carried exactly.
        roles = ["user", "assistant"] if previous == "tool" else ["user", "assistant", "tool"]
        role = draw(st.sampled_from(roles))
        parts = {"user": _user_parts, "assistant": _assistant_parts, "tool": _tool_parts}[role]
        messages.append(Message(role, tuple(draw(parts))))
        previous = role
    tools = tuple(draw(st.lists(st.builds(Tool, _ids, _words, st.just(SCHEMA)), max_size=2)))
    choice = draw(
        st.none()
        | st.builds(ToolChoice, st.sampled_from(["auto", "none", "required"]))
        | st.builds(lambda n: ToolChoice("tool", n), _ids)
    )
    return Request(
        model=draw(_ids),
        messages=tuple(messages),
        stream=draw(st.booleans()),
        max_tokens=draw(st.integers(1, 100_000)),
        temperature=draw(st.none() | st.floats(0, 1)),
        top_p=draw(st.none() | st.floats(0, 1)),
        stop=tuple(draw(st.lists(_words, max_size=2))),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=None if choice is None else draw(st.none() | st.booleans()),
        include_usage=True,
        reasoning_budget=draw(st.none() | st.integers(1024, 8192)),
        user=draw(st.just("") | _ids),
        dialect="anthropic",
    )


@given(carried_requests())
def test_requests_survive_build_then_parse(request: Request) -> None:
    assert ANTHROPIC.parse_request(orjson.dumps(ANTHROPIC.build_request(request))) == request


def _with(path: str, value: Any) -> dict[str, Any]:
    """BODY with the field at ``path`` (dots, [n] for items) set to ``value`` (or removed
    when ``value`` is ``...``)."""
    body = json.loads(json.dumps(BODY))
    keys = [
        int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")
    ]
    target = body
    for key in keys[:-1]:
        target = target[key]
    if value is ...:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return body


@pytest.mark.parametrize(
    ("path", "value", "param"),
    [
        ("model", ..., "model"),
        ("model", 7, "model"),
        ("max_tokens", ..., "max_tokens"),
        ("max_tokens", "many", "max_tokens"),
        ("max_tokens", 0, "max_tokens"),
        ("messages", ..., "messages"),
        ("messages", {"role": "user"}, "messages"),
        ("messages[0]", "hi", "messages[0]"),
        ("messages[0].role", "system", "messages[0].role"),
        ("messages[0].role", ..., "messages[0].role"),
        ("messages[0].content", 5, "messages[0].content"),
        ("messages[0].content", [{"type": "document"}], "messages[0].content[0].type"),
        ("messages[0].content", [{"text": "no type"}], "messages[0].content[0].type"),
        ("messages[0].content", ["text"], "messages[0].content[0]"),
        ("messages[0].content", [{"type": "text"}], "messages[0].content[0].text"),
        ("messages[1].content[0].signature", 5, "messages[1].content[0].signature"),
        ("messages[1].content[2].input", [1], "messages[1].content[2].input"),
        ("messages[1].content[2].id", ..., "messages[1].content[2].id"),
        (
            "messages[0].content",
            [{"type": "tool_use", "id": "a", "name": "b"}],
            "messages[0].content[0].type",
        ),
        (
            "messages[1].content[1]",
            {"type": "tool_result", "tool_use_id": "a"},
            "messages[1].content[1].type",
        ),
        ("messages[2].content[0].tool_use_id", ..., "messages[2].content[0].tool_use_id"),
        ("messages[2].content[0].is_error", "yes", "messages[2].content[0].is_error"),
        (
            "messages[2].content[1].content[0]",
            {"type": "image"},
            "messages[2].content[1].content[0].type",
        ),
        ("messages[2].content[3].source.type", "file", "messages[2].content[3].source.type"),
        (
            "messages[2].content[3].source.media_type",
            ...,
            "messages[2].content[3].source.media_type",
        ),
        ("messages[4].content[0].source", ..., "messages[4].content[0].source"),
        ("system", 5, "system"),
        ("system[0]", {"type": "image"}, "system[0].type"),
        ("tools", {}, "tools"),
        ("tools[0].input_schema", ..., "tools[0].input_schema"),
        ("tools[0].name", ..., "tools[0].name"),
        ("tools[0]", {"type": "web_search_20250305", "name": "web_search"}, "tools[0].type"),
        ("tool_choice.type", "sometimes", "tool_choice.type"),
        ("tool_choice", {"type": "tool"}, "tool_choice.name"),
        ("tool_choice.disable_parallel_tool_use", "no", "tool_choice.disable_parallel_tool_use"),
        ("temperature", "hot", "temperature"),
        ("stop_sequences", "###", "stop_sequences"),
        ("stop_sequences", ["ok", 1], "stop_sequences[1]"),
        ("stream", "yes", "stream"),
        ("thinking", {"type": "enabled"}, "thinking.budget_tokens"),
        ("thinking", {"budget_tokens": 5}, "thinking.type"),
        ("metadata.user_id", 5, "metadata.user_id"),
    ],
)
def test_bad_request_field_is_named(path: str, value: Any, param: str) -> None:
    with pytest.raises(RequestError) as info:
        ANTHROPIC.parse_request(orjson.dumps(_with(path, value)))
    assert info.value.param == param


@pytest.mark.parametrize("body", [b"{oops", b"[]", b'"text"'])
def test_body_that_is_not_a_json_object_is_a_request_error(body: bytes) -> None:
    with pytest.raises(RequestError):
        ANTHROPIC.parse_request(body)
