"""The fake LLM's models and fault grammar (pure: no server)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenrelay.errors import RequestError
from tokenrelay.llm import (
    ErrorKind,
    FinishReason,
    Message,
    Request,
    TextPart,
    Tool,
    ToolChoice,
    Usage,
    accumulate,
)
from tokenrelay.mock import parse_fault, script
from tokenrelay.mock.script import split_words


def ask(text: str, model: str = "echo", **kw: object) -> Request:
    return Request(model=model, messages=(Message("user", (TextPart(text),)),), **kw)  # type: ignore[arg-type]


@given(st.text())
def test_echo_pieces_join_to_exactly_the_message(text: str) -> None:
    assert "".join(split_words(text)) == text
    answer = accumulate(script(ask(text), id="x").deltas)
    assert answer.choices[0].text == text
    assert answer.choices[0].finish is not None
    assert answer.choices[0].finish.reason is FinishReason.STOP


def test_echo_streams_one_token_per_word_and_counts_them() -> None:
    answer = script(ask("Hello wörld, how are you?"), id="x")
    assert answer.token_count == 5
    usage = [d for d in answer.deltas if isinstance(d, Usage)]
    assert usage[-1].output_tokens == 5 and not usage[-1].estimated
    assert usage[-1].input_tokens > 0


def test_echo_answers_the_last_user_message() -> None:
    request = Request(
        model="echo",
        messages=(
            Message("system", (TextPart("be brief"),)),
            Message("user", (TextPart("first"),)),
            Message("assistant", (TextPart("reply"),)),
            Message("user", (TextPart("second one"),)),
        ),
    )
    assert accumulate(script(request, id="x").deltas).choices[0].text == "second one"


def test_lorem_streams_max_tokens_tokens_and_finishes_with_length() -> None:
    answer = script(ask("", "lorem", max_tokens=7), id="x")
    assert answer.token_count == 7
    completion = accumulate(answer.deltas)
    assert len(completion.choices[0].text.split()) == 7
    assert completion.choices[0].finish.reason is FinishReason.LENGTH  # type: ignore[union-attr]


def test_lorem_without_a_limit_stops_after_sixteen_tokens() -> None:
    completion = accumulate(script(ask("", "lorem"), id="x").deltas)
    assert len(completion.choices[0].text.split()) == 16
    assert completion.choices[0].finish.reason is FinishReason.STOP  # type: ignore[union-attr]


def test_think_reasons_with_a_signature_then_echoes() -> None:
    completion = accumulate(script(ask("why", "think"), id="x").deltas)
    assert completion.choices[0].reasoning == "Thinking about: why"
    assert len(completion.choices[0].reasoning_signature) == 64
    assert completion.choices[0].text == "why"


WEATHER = Tool(
    "get_weather",
    "Weather in a city",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "metric": {"type": "boolean"},
        },
        "required": ["city"],
    },
)
TIME = Tool("get_time", "", {"type": "object", "properties": {}})


def test_tool_calls_the_first_tool_with_arguments_from_its_schema() -> None:
    completion = accumulate(script(ask("Paris", "tool", tools=(WEATHER, TIME)), id="x").deltas)
    (call,) = completion.choices[0].tool_calls
    assert call.name == "get_weather"
    assert call.arguments == '{"city":"Paris","days":1,"metric":true}'
    assert completion.choices[0].finish.reason is FinishReason.TOOL_CALLS  # type: ignore[union-attr]


def test_tools_calls_every_tool_and_a_call_without_parameters_gets_an_empty_object() -> None:
    completion = accumulate(script(ask("Paris", "tools", tools=(WEATHER, TIME)), id="x").deltas)
    assert [c.name for c in completion.choices[0].tool_calls] == ["get_weather", "get_time"]
    assert completion.choices[0].tool_calls[1].arguments == "{}"
    assert len({c.id for c in completion.choices[0].tool_calls}) == 2


def test_tool_choice_picks_the_named_tool() -> None:
    request = ask("x", "tool", tools=(WEATHER, TIME), tool_choice=ToolChoice("tool", "get_time"))
    (call,) = accumulate(script(request, id="x").deltas).choices[0].tool_calls
    assert call.name == "get_time"


def test_tool_models_refuse_a_request_without_tools() -> None:
    with pytest.raises(RequestError) as info:
        script(ask("x", "tool"), id="x")
    assert info.value.param == "tools"


def test_unknown_model_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        script(ask("x", "gpt-5"), id="x")


@pytest.mark.parametrize(
    ("spec", "kind", "after", "status", "retry_after", "times"),
    [
        ("429", "status", 0, 429, 1.0, None),
        ("429;retry-after=0;times=2", "status", 0, 429, 0.0, 2),
        ("529", "status", 0, 529, None, None),
        ("500;times=1", "status", 0, 500, None, 1),
        ("drop:3", "drop", 3, 0, None, None),
        ("stall:0;for=2", "stall", 0, 0, None, None),
        ("error:2", "error", 2, 0, None, None),
        ("malformed:1", "malformed", 1, 0, None, None),
    ],
)
def test_fault_grammar(
    spec: str, kind: str, after: int, status: int, retry_after: float | None, times: int | None
) -> None:
    fault = parse_fault(spec)
    assert (fault.kind, fault.after, fault.status, fault.retry_after, fault.times) == (
        kind,
        after,
        status,
        retry_after,
        times,
    )


def test_fault_error_kind_follows_the_status_or_the_kind_parameter() -> None:
    assert parse_fault("529").error_kind is ErrorKind.OVERLOADED
    assert parse_fault("429").error_kind is ErrorKind.RATE_LIMIT
    assert parse_fault("error:1;kind=overloaded").error_kind is ErrorKind.OVERLOADED
    assert parse_fault("stall:1;for=2.5").stall_seconds == 2.5


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "boom",
        "200",
        "429:3",
        "drop:x",
        "drop:1;when=now",
        "error:1;kind=nope",
        "stall:-1",
    ],
)
def test_bad_fault_text_is_a_value_error_saying_what_is_wrong(spec: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        parse_fault(spec)
