"""Packed deltas (the stream log's entries) unpack to equal deltas."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.neutral_streams import streams
from tokenrelay.llm import Delta, ErrorKind, Finish, FinishReason, StreamError, TextDelta
from tokenrelay.llm.pack import pack, unpack


@given(streams())
def test_every_delta_of_any_stream_survives_pack_and_unpack(deltas: list[Delta]) -> None:
    assert [unpack(pack(d)) for d in deltas] == deltas


@given(st.sampled_from(ErrorKind), st.text(), st.none() | st.integers(400, 599))
def test_errors_and_finishes_keep_their_enums(kind: ErrorKind, message: str,
                                               status: int | None) -> None:  # fmt: skip
    error = StreamError(kind, message, status, "raw", "param")
    assert unpack(pack(error)) == error
    assert type(unpack(pack(error)).kind) is ErrorKind  # type: ignore[union-attr]
    finish = Finish(FinishReason.LENGTH, "max_tokens", None, 2)
    assert unpack(pack(finish)) == finish


def test_logprobs_pass_through_untouched() -> None:
    delta = TextDelta("Foo", 0, {"content": [{"token": "Foo", "logprob": -0.25}]})
    assert unpack(pack(delta)) == delta


@pytest.mark.parametrize("data", [b"", b"[]", b'["?", 1]', b'["T"]', b'["Z", "nope"]', b"{}"])
def test_bytes_it_did_not_write_are_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a packed delta"):
        unpack(data)
