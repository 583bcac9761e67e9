"""The one set of rules for reading upstream JSON leniently (``llm.lenient``), and that
every decoder follows it."""

from __future__ import annotations

import math

import pytest

from tokenrelay.llm import GEMINI, OLLAMA, Usage
from tokenrelay.llm.lenient import as_int, as_list, as_obj, as_objs, as_str


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (7, 7),
        (-3, -3),
        (1712345678.9, 1712345678),  # OpenAI-compatible servers send `created` like this
        (12.0, 12),
        (True, 0),
        (False, 0),
        (math.inf, 0),
        (math.nan, 0),
        ("7", 0),
        (None, 0),
        ([7], 0),
    ],
)
def test_an_integer_is_a_json_integer_or_a_truncated_finite_number(
    value: object, expected: int
) -> None:
    assert as_int(value) == expected


def test_a_field_of_the_wrong_type_reads_as_the_empty_one() -> None:
    assert as_str("a") == "a"
    assert as_str(1) == ""
    assert as_obj({"a": 1}) == {"a": 1}
    assert as_obj([("a", 1)]) == {}
    assert as_list([1]) == [1]
    assert as_list({"a": 1}) == []
    assert as_objs([{"a": 1}, 2, "b", {}]) == [{"a": 1}, {}]
    assert as_objs({"a": 1}) == []


def test_gemini_reads_float_token_counts_by_the_same_rule() -> None:
    chunk = (
        b'data: {"candidates":[{"content":{"parts":[{"text":"hi"}]},"index":0}],'
        b'"usageMetadata":{"promptTokenCount":3.0,"candidatesTokenCount":2,'
        b'"thoughtsTokenCount":true}}\n\n'
    )
    usage = [d for d in GEMINI.decoder().feed(chunk) if isinstance(d, Usage)]
    assert usage == [Usage(3, 2, 0, 0)]


def test_ollama_reads_float_token_counts_by_the_same_rule() -> None:
    line = (
        b'{"model":"m","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant",'
        b'"content":""},"done":true,"done_reason":"stop","prompt_eval_count":5.0,'
        b'"eval_count":true}\n'
    )
    usage = [d for d in OLLAMA.decoder().feed(line) if isinstance(d, Usage)]
    assert usage == [Usage(5, 0, 0, 0)]
