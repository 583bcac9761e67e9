"""Properties every dialect in ``tokenrelay.llm.DIALECTS`` keeps, run once over all of them
(as uvicorn runs one suite over both of its HTTP parsers): a random neutral stream survives
encode then decode, and no bytes crash a decoder. What a dialect genuinely carries
differently is data in ``ROUND_TRIPS``, not a copy of the test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.dialect_helpers import feed_all
from tests.llm.anthropic.helpers import check_sdk_shape
from tests.neutral_streams import CARRIES, essence, streams
from tokenrelay.llm import DIALECTS, Completion, Delta, accumulate


@dataclass(frozen=True, slots=True)
class RoundTrip:
    """How one dialect carries a random neutral stream there and back."""

    features: frozenset[str]
    """What tests/neutral_streams.py may draw: what the wire carries end to end."""
    keeps: tuple[str, ...] = ()
    """Completion fields that survive besides the essence (ids, model, timestamp)."""
    call_ids: bool = True
    """Tool-call ids survive."""
    refusal_as_text: bool = False
    """A refusal comes back as text: the wire has no refusal of its own."""
    options: Mapping[str, bool] = field(default_factory=dict)
    """Options for the dialect's encoder."""
    check_wire: Callable[[bytes], object] | None = None
    """What else the encoded bytes must satisfy (the shape an official SDK relies on)."""


ROUND_TRIPS: dict[str, RoundTrip] = {
    "openai_chat": RoundTrip(CARRIES["openai_chat"], keeps=("id", "model", "created")),
    "openai_responses": RoundTrip(CARRIES["openai_responses"], keeps=("id", "model", "created")),
    # Anthropic's message_delta carries the reasoning tokens too (CARRIES leaves them out:
    # they are what a chain of two dialects may keep).
    "anthropic": RoundTrip(
        CARRIES["anthropic"] | {"reasoning_tokens"}, call_ids=False, check_wire=check_sdk_shape
    ),
    "gemini": RoundTrip(CARRIES["gemini"], keeps=("id", "model", "created")),
    "ollama": RoundTrip(CARRIES["ollama"], keeps=("model", "created")),
    "vercel_ui": RoundTrip(
        frozenset({"reasoning", "refusal", "tools"}),
        keeps=("id",),
        refusal_as_text=True,
        options={"message_metadata": True},
    ),
}


def expected(before: Completion, case: RoundTrip) -> dict[str, Any]:
    want = essence(before)
    if case.refusal_as_text:
        for choice in want["choices"]:
            choice["text"] += choice["refusal"]
            choice["refusal"] = ""
    return want


def call_ids(completion: Completion) -> list[list[str]]:
    return [[call.id for call in choice.tool_calls] for choice in completion.choices]


@pytest.mark.parametrize("name", sorted(DIALECTS))
@given(data=st.data())
def test_random_streams_survive_encode_then_decode(name: str, data: st.DataObject) -> None:
    dialect, case = DIALECTS[name], ROUND_TRIPS[name]
    stream: list[Delta] = data.draw(streams(case.features), label="stream")
    wire = dialect.encoder(None, **case.options).encode_all(stream)
    if case.check_wire is not None:
        case.check_wire(wire)
    before, after = accumulate(stream), accumulate(feed_all(dialect.decoder(), [wire]))
    assert essence(after) == expected(before, case)
    for attribute in case.keeps:
        assert getattr(after, attribute) == getattr(before, attribute), attribute
    if case.call_ids:
        assert call_ids(after) == call_ids(before)


@pytest.mark.parametrize("name", sorted(DIALECTS))
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_no_bytes_crash_the_decoder(name: str, chunks: list[bytes]) -> None:
    feed_all(DIALECTS[name].decoder(), chunks)
