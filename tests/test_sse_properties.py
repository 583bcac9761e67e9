"""Properties over generated input: encode/decode round trips; no input crashes the decoder."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenrelay.errors import EventTooLargeError
from tokenrelay.sse import Event, encode
from tokenrelay.sse.decoder import PyDecoder

from .conftest import DECODERS

pytestmark = pytest.mark.parametrize("Decoder", DECODERS)

# Any Unicode text that UTF-8 can carry, with the characters that trip parsers made common.
TRICKY = st.sampled_from(
    [
        "\r",
        "\n",
        "\r\n",
        "\u2028",
        "\u2029",
        "\x85",
        "\x0b",
        "\x0c",
        "\0",
        "\ufeff",
        ":",
        " ",
        "\U0001f600",
        "\ufffd",
    ]
)
TEXT = st.lists(st.one_of(st.text(), TRICKY)).map("".join)
SINGLE_LINE = TEXT.map(lambda s: s.replace("\r", "").replace("\n", ""))
EVENTS = st.builds(
    Event,
    data=TEXT,
    event=SINGLE_LINE.filter(bool),  # an empty type reads back as "message"
    id=SINGLE_LINE.map(lambda s: s.replace("\0", "")),
    retry=st.none() | st.integers(min_value=0, max_value=10**12),
)


def sse_normal(data: str) -> str:
    """SSE carries LF as its only line break: CR and CRLF arrive as LF."""
    return re.sub("\r\n|\r", "\n", data)


def decode(Decoder: type[PyDecoder], stream: bytes, chunk: int) -> list[Event]:
    decoder = Decoder()
    events: list[Event] = []
    for i in range(0, len(stream), chunk):
        events += decoder.feed(stream[i : i + chunk])
    return events + decoder.close()


@given(st.lists(EVENTS, max_size=5), st.integers(min_value=1, max_value=64))
def test_decode_of_encode_gives_the_events_back(
    Decoder: type[PyDecoder], events: list[Event], chunk: int
) -> None:
    stream = b"".join(encode(e.data, event=e.event, id=e.id, retry=e.retry) for e in events)
    expected = [Event(sse_normal(e.data), e.event, e.id, e.retry) for e in events]
    assert decode(Decoder, stream, chunk) == expected


@given(EVENTS.filter(lambda e: "\r" not in e.data))
def test_event_without_cr_round_trips_exactly(Decoder: type[PyDecoder], event: Event) -> None:
    stream = encode(event.data, event=event.event, id=event.id, retry=event.retry)
    assert decode(Decoder, stream, len(stream)) == [event]


@given(st.binary(), st.text().map(str.encode), st.integers(min_value=1, max_value=32))
def test_no_byte_string_crashes_the_decoder(
    Decoder: type[PyDecoder], noise: bytes, text: bytes, chunk: int
) -> None:
    stream = noise + text + noise
    decoder = Decoder(max_line_bytes=64, max_event_bytes=128)
    try:
        for i in range(0, len(stream), chunk):
            for event in decoder.feed(stream[i : i + chunk]):
                assert isinstance(event.data, str)
        decoder.close()
    except EventTooLargeError:
        pass


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(
            [
                b"data:",
                b"data: x",
                b"id: 1",
                b"id",
                b"retry: 5",
                b"event: e",
                b":c",
                b"",
                b"\r",
                b"\n",
                b"\r\n",
                b"\xef\xbb\xbf",
                b"\xf0\x9f",
                b"\x98\x80",
                b"\0",
            ]
        )
    ),
    st.integers(min_value=1, max_value=8),
)
def test_chunking_never_changes_the_result(
    Decoder: type[PyDecoder], pieces: list[bytes], chunk: int
) -> None:
    stream = b"".join(pieces)
    assert decode(Decoder, stream, chunk) == decode(Decoder, stream, max(1, len(stream)))
    assert decode(Decoder, stream, 1) == decode(Decoder, stream, max(1, len(stream)))
