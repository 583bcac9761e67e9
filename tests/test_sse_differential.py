"""The decoder against a plain line-by-line oracle on generated streams and chunkings."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenrelay.errors import EventTooLargeError
from tokenrelay.sse import Event
from tokenrelay.sse.decoder import PyDecoder

from .conftest import DECODERS, split_at
from .spec_oracle import parse

pytestmark = pytest.mark.parametrize("Decoder", DECODERS)

# Pieces that make up realistic and hostile streams; concatenated in random order they hit
# every path of the decoder (blank-then-data splits, held CRs, BOMs, partial UTF-8...).
PIECES = st.sampled_from(
    [
        b"data: ",
        b"data:",
        b"data",
        b"data: hello",
        b'{"x": 1}',
        b"event: delta",
        b"event:",
        b"id: 7",
        b"id: \x00",
        b"id",
        b"retry: 250",
        b"retry: -1",
        b": ping",
        b":",
        b"other: field",
        b" ",
        b"\n",
        b"\n\n",
        b"\n\ndata: ",
        b"\r",
        b"\r\n",
        b"\xef\xbb\xbf",
        b"\xc3\xa9",
        b"\xf0\x9f\x98",
        b"\x80",
        b"\xe2\x80\xa8",
    ]
)
STREAMS = st.lists(PIECES, max_size=40).map(b"".join)


def chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    # Repeated cuts make empty chunks, which the decoder must take in its stride too.
    return split_at(stream, [c % (len(stream) + 1) for c in cuts])


def run(decoder: PyDecoder, chunks: list[bytes]) -> list[tuple[str, str, str, int | None]]:
    events: list[Event] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.close()
    return [(e.data, e.event, e.id, e.retry) for e in events]


@settings(max_examples=500)
@given(
    STREAMS, st.lists(st.integers(min_value=0, max_value=1000), max_size=12), st.text(max_size=3)
)
def test_decoder_agrees_with_the_oracle_at_any_chunking(
    Decoder: type[PyDecoder], stream: bytes, cuts: list[int], initial_id: str
) -> None:
    initial_id = initial_id.replace("\0", "").replace("\r", "").replace("\n", "")
    decoder = Decoder(initial_id)
    events = run(decoder, chunked(stream, cuts))
    expected = parse(stream, initial_id)
    assert events == expected.events
    assert decoder.last_event_id == expected.last_event_id
    assert decoder.retry == expected.retry


@settings(max_examples=500)
@given(
    STREAMS,
    st.lists(st.integers(min_value=0, max_value=1000), max_size=12),
    st.integers(min_value=1, max_value=40),
    st.integers(min_value=1, max_value=80),
)
def test_limits_are_enforced_exactly(
    Decoder: type[PyDecoder], stream: bytes, cuts: list[int], max_line: int, max_event: int
) -> None:
    expected = parse(stream)
    decoder = Decoder(max_line_bytes=max_line, max_event_bytes=max_event)
    delivered: list[tuple[str, str, str, int | None]] = []
    try:
        for chunk in chunked(stream, cuts):
            delivered += [(e.data, e.event, e.id, e.retry) for e in decoder.feed(chunk)]
        decoder.close()
    except EventTooLargeError:
        # Refused only for a reason, and only after delivering a correct prefix.
        # (a partial line at the end may be too long already, though never terminated)
        assert (
            max(expected.longest_line, expected.trailing_line) > max_line
            or max(expected.largest_event, expected.trailing_event) > max_event
        )
        assert delivered == expected.events[: len(delivered)]
    else:
        assert max(expected.longest_line, expected.trailing_line) <= max_line
        assert max(expected.largest_event, expected.trailing_event) <= max_event
        assert delivered == expected.events
