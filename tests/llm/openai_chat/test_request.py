"""The OpenAI Chat Completions dialect's request bodies, `tokenrelay.llm.openai_chat.request`:
parse_request and build_request.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.llm.openai_chat.helpers import calls, ids, names, texts
from tokenrelay.errors import RequestError
from tokenrelay.llm import (
    ImagePart,
    Message,
    Part,
    ReasoningPart,
    Request,
    TextPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from tokenrelay.llm.jsonio import dumps
from tokenrelay.llm.openai_chat import OPENAI_CHAT

pytestmark = pytest.mark.sdk

PNG = base64.b64encode(b"\x89PNG\r\n").decode()


def test_parse_request_reads_every_field() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": [{"type": "text", "text": "And kind."}]},
            {
                "role": "user",
                "name": "ann",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://x.test/a.png", "detail": "low"},
                    },
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "look", "arguments": '{"q": 1}'},
                    }
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": [{"type": "text", "text": "a cat"}],
            },
            {"role": "assistant", "content": "A cat."},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "look",
                    "description": "Looks.",
                    "parameters": {"type": "object"},
                },
            },
            {"type": "function", "function": {"name": "bare"}},
        ],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "max_tokens": 100,
        "temperature": 0.5,
        "top_p": 1,
        "stop": "END",
        "n": 2,
        "stream": True,
        "stream_options": {"include_usage": True},
        "logprobs": True,
        "top_logprobs": 3,
        "parallel_tool_calls": False,
        "user": "u-1",
        "reasoning_effort": "low",
        "seed": 7,
    }
    assert OPENAI_CHAT.parse_request(json.dumps(body)) == Request(
        model="gpt-4o",
        messages=(
            Message("system", (TextPart("Be brief."),)),
            Message("system", (TextPart("And kind."),)),
            Message(
                "user",
                (
                    TextPart("What is this?"),
                    ImagePart(url="https://x.test/a.png"),
                    ImagePart(data=PNG, media_type="image/png"),
                ),
                "ann",
            ),
            Message("assistant", (ToolCallPart("call_1", "look", '{"q": 1}'),)),
            Message("tool", (ToolResultPart("call_1", "a cat"),)),
            Message("assistant", (TextPart("A cat."),)),
        ),
        stream=True,
        max_tokens=100,
        temperature=0.5,
        top_p=1.0,
        stop=("END",),
        tools=(Tool("look", "Looks.", {"type": "object"}), Tool("bare")),
        tool_choice=ToolChoice("tool", "look"),
        parallel_tool_calls=False,
        include_usage=True,
        n=2,
        logprobs=True,
        top_logprobs=3,
        user="u-1",
        extra={"reasoning_effort": "low", "seed": 7},
        dialect="openai_chat",
    )


def test_max_completion_tokens_is_sent_on_under_its_own_name_only_to_openai_chat() -> None:
    request = OPENAI_CHAT.parse_request(
        {"model": "o3", "messages": [], "max_completion_tokens": 50, "max_tokens": 9}
    )
    assert request.max_tokens == 50
    body = OPENAI_CHAT.build_request(request)
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body
    other = Request("o3", (), max_tokens=50, dialect="anthropic", extra={"top_k": 5})
    assert OPENAI_CHAT.build_request(other) == {"model": "o3", "messages": [], "max_tokens": 50}


def test_build_request_writes_tool_results_as_tool_messages_and_images_as_data_urls() -> None:
    request = Request(
        "m",
        (
            Message("user", (ImagePart(data=PNG, media_type="image/png"),)),
            Message("assistant", (TextPart("ok"), ReasoningPart("hidden", "sig"))),
            Message("tool", (ToolResultPart("a", "1"), ToolResultPart("b", "2", is_error=True))),
        ),
    )
    assert OPENAI_CHAT.build_request(request)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
            ],
        },
        {"role": "assistant", "content": "ok"},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
    ]


BAD_REQUESTS: list[tuple[Any, str | None]] = [
    (b"{not json", None),
    (b"[]", None),
    ({"messages": []}, "model"),
    ({"model": 5, "messages": []}, "model"),
    ({"model": "m"}, "messages"),
    ({"model": "m", "messages": {}}, "messages"),
    ({"model": "m", "messages": ["hi"]}, "messages[0]"),
    ({"model": "m", "messages": [{"content": "hi"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"text": "x"}]}]},
        "messages[0].content[0].type",
    ),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        "messages[0].content[0].type",
    ),
    (
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages[0].content[0].text",
    ),
    (
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
        },
        "messages[0].content[0].image_url.url",
    ),
    ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    (
        {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"id": "a"}]}]},
        "messages[0].tool_calls[0].function",
    ),
    (
        {
            "model": "m",
            "messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {}}]}],
        },
        "messages[0].tool_calls[0].function.name",
    ),
    ({"model": "m", "messages": [], "temperature": "hot"}, "temperature"),
    ({"model": "m", "messages": [], "max_tokens": 0}, "max_tokens"),
    ({"model": "m", "messages": [], "max_completion_tokens": "9"}, "max_completion_tokens"),
    ({"model": "m", "messages": [], "stop": 5}, "stop"),
    ({"model": "m", "messages": [], "stop": ["a", 1]}, "stop"),
    ({"model": "m", "messages": [], "n": 0}, "n"),
    ({"model": "m", "messages": [], "stream": "yes"}, "stream"),
    (
        {"model": "m", "messages": [], "stream_options": {"include_usage": 1}},
        "stream_options.include_usage",
    ),
    ({"model": "m", "messages": [], "tools": [{"type": "custom"}]}, "tools[0].type"),
    ({"model": "m", "messages": [], "tools": [{"type": "function"}]}, "tools[0].function"),
    (
        {"model": "m", "messages": [], "tools": [{"type": "function", "function": {}}]},
        "tools[0].function.name",
    ),
    ({"model": "m", "messages": [], "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "m", "messages": [], "tool_choice": {"type": "function"}}, "tool_choice.function"),
    (
        {"model": "m", "messages": [], "tool_choice": {"type": "function", "function": {}}},
        "tool_choice.function.name",
    ),
]


@pytest.mark.parametrize(("body", "param"), BAD_REQUESTS)
def test_a_bad_request_names_the_offending_field(body: Any, param: str | None) -> None:
    with pytest.raises(RequestError) as caught:
        OPENAI_CHAT.parse_request(body)
    assert caught.value.param == param
    assert caught.value.status == 400


images = st.one_of(
    st.builds(lambda p: ImagePart(url=f"https://img.test/{p}.png"), ids),
    st.builds(
        lambda d: ImagePart(data=base64.b64encode(d).decode(), media_type="image/jpeg"),
        st.binary(min_size=1, max_size=8),  # image data is never empty (fields.base64_data)
    ),
)


def _parts(
    strategy: st.SearchStrategy[Part], min_size: int = 1
) -> st.SearchStrategy[tuple[Part, ...]]:
    return st.lists(strategy, min_size=min_size, max_size=3).map(tuple)


text_parts = texts.map(TextPart)


messages = st.one_of(
    st.builds(Message, st.just("system"), _parts(text_parts), names),
    st.builds(Message, st.just("user"), _parts(st.one_of(text_parts, images)), names),
    st.builds(
        lambda text, tool_calls, name: Message("assistant", text + tool_calls, name),
        _parts(text_parts, 0),
        _parts(calls, 0),
        names,
    ),
    st.builds(lambda i, c: Message("tool", (ToolResultPart(i, c),)), ids, st.text(max_size=8)),
)


tools = st.builds(
    Tool,
    ids,
    st.sampled_from(["", "Does it."]),
    st.sampled_from([{"type": "object", "properties": {}}, {"type": "object", "required": ["a"]}]),
)


tool_choices = st.one_of(
    st.none(),
    st.sampled_from(["auto", "none", "required"]).map(ToolChoice),
    ids.map(lambda n: ToolChoice("tool", n)),
)


finite = st.floats(0, 2, allow_nan=False)


@st.composite
def requests(draw: st.DrawFn) -> Request:
    stream = draw(st.booleans())
    max_tokens = draw(st.one_of(st.none(), st.integers(1, 10_000)))
    extra: dict[str, Any] = draw(
        st.sampled_from([{}, {"seed": 3}, {"reasoning_effort": "high", "metadata": {"k": "v"}}])
    )
    if max_tokens is not None and draw(st.booleans()):
        extra = {**extra, "max_completion_tokens": max_tokens}
    return Request(
        model=draw(texts),
        messages=tuple(draw(st.lists(messages, max_size=5))),
        stream=stream,
        max_tokens=max_tokens,
        temperature=draw(st.one_of(st.none(), finite)),
        top_p=draw(st.one_of(st.none(), finite)),
        stop=tuple(draw(st.lists(texts, max_size=3))),
        tools=tuple(draw(st.lists(tools, max_size=2))),
        tool_choice=draw(tool_choices),
        parallel_tool_calls=draw(st.one_of(st.none(), st.booleans())),
        include_usage=stream and draw(st.booleans()),
        n=draw(st.integers(1, 3)),
        logprobs=draw(st.booleans()),
        top_logprobs=draw(st.one_of(st.none(), st.integers(0, 20))),
        user=draw(st.sampled_from(["", "u-1"])),
        extra=extra,
        dialect="openai_chat",
    )


@given(requests())
def test_parse_of_build_gives_the_request_back(request: Request) -> None:
    assert OPENAI_CHAT.parse_request(dumps(OPENAI_CHAT.build_request(request))) == request
