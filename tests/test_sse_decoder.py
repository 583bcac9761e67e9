"""Decoder behaviour beyond the conformance vectors: chunk edges, limits, reuse."""

from __future__ import annotations

import pytest

from tokenrelay.errors import EventTooLargeError, TokenRelayError
from tokenrelay.sse import Event
from tokenrelay.sse.decoder import PyDecoder

from .conftest import DECODERS

pytestmark = pytest.mark.parametrize("Decoder", DECODERS)


def feed_all(decoder: PyDecoder, *chunks: bytes) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events


def test_cr_at_chunk_end_dispatches_without_waiting_and_swallows_following_lf(
    Decoder: type[PyDecoder],
) -> None:
    decoder = Decoder()
    assert decoder.feed(b"data: a\r\r") == [Event("a")]
    # The LF completes the CRLF begun by the last CR: it must not end another line.
    assert decoder.feed(b"\ndata: b\r") == []
    assert decoder.feed(b"\n\r\n") == [Event("b")]


def test_lone_cr_then_data_starts_a_new_line(Decoder: type[PyDecoder]) -> None:
    assert feed_all(Decoder(), b"data: a\r", b"data: b\r\r") == [Event("a\nb")]


def test_bom_split_over_three_chunks_is_dropped_once(Decoder: type[PyDecoder]) -> None:
    decoder = Decoder()
    events = feed_all(decoder, b"\xef", b"\xbb", b"\xbf", b"\xef\xbb\xbfdata: x\n\n")
    # Only the first BOM is dropped; the second makes the field name "\ufeffdata".
    assert events == []
    assert feed_all(Decoder(), b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [Event("x")]


def test_bytes_that_only_start_like_a_bom_are_kept(Decoder: type[PyDecoder]) -> None:
    assert feed_all(Decoder(), b"\xef", b"\xbbX\n\ndata: y\n\n") == [Event("y")]
    assert feed_all(Decoder(), b"\xef\xbb", b"", b"\n", b"data: z\n\n") == [Event("z")]


def test_multibyte_character_split_across_chunks_is_kept_whole(Decoder: type[PyDecoder]) -> None:
    data = "data: h\u00e9llo \U0001f600 \u2028 end\n\n".encode()
    for cut in range(len(data)):
        assert feed_all(Decoder(), data[:cut], data[cut:]) == [
            Event("h\u00e9llo \U0001f600 \u2028 end")
        ]


def test_invalid_utf8_becomes_replacement_characters(Decoder: type[PyDecoder]) -> None:
    events = feed_all(Decoder(), b"event: \xff\ndata: a\xc3\n", b"data: \xe2\x82\n\n")
    assert events == [Event("a\ufffd\n\ufffd", event="\ufffd")]


def test_unterminated_event_is_discarded_at_close_with_its_id(Decoder: type[PyDecoder]) -> None:
    decoder = Decoder()
    assert feed_all(decoder, b"id: 1\ndata: a\n\nid: 2\ndata: b\n") == [Event("a", id="1")]
    assert decoder.close() == []
    assert decoder.last_event_id == "1"


def test_decoder_is_reusable_after_close_and_keeps_id_and_retry(Decoder: type[PyDecoder]) -> None:
    decoder = Decoder()
    feed_all(decoder, b"retry: 500\nid: 7\ndata: a\n\ndata: partial")
    decoder.close()
    # The next connection's stream may start with its own BOM; the partial line is gone.
    assert decoder.feed(b"\xef\xbb\xbfdata: b\n\n") == [Event("b", id="7")]
    assert decoder.retry == 500


def test_initial_last_event_id_is_reported_until_replaced(Decoder: type[PyDecoder]) -> None:
    decoder = Decoder("41")
    assert decoder.last_event_id == "41"
    assert decoder.feed(b"data: x\n\n") == [Event("x", id="41")]
    assert decoder.feed(b"id: 42\n\n") == []
    assert decoder.last_event_id == "42"


def test_event_carries_the_retry_of_its_own_block_only(Decoder: type[PyDecoder]) -> None:
    events = feed_all(Decoder(), b"retry: 10\ndata: a\n\ndata: b\n\n")
    assert [e.retry for e in events] == [10, None]


def test_line_over_limit_raises_with_the_limit_in_the_message(Decoder: type[PyDecoder]) -> None:
    decoder = Decoder(max_line_bytes=64)
    with pytest.raises(EventTooLargeError, match="64 bytes") as info:
        for _ in range(10):
            decoder.feed(b"data: " + b"x" * 20)
    assert info.value.what == "line"
    assert info.value.limit == 64
    assert isinstance(info.value, TokenRelayError)


def test_line_over_limit_inside_one_large_chunk_raises(Decoder: type[PyDecoder]) -> None:
    with pytest.raises(EventTooLargeError):
        Decoder(max_line_bytes=100).feed(b"data: " + b"y" * 200 + b"\n\n")


def test_line_at_exactly_the_limit_is_accepted(Decoder: type[PyDecoder]) -> None:
    line = b"data: " + b"z" * 94
    assert len(line) == 100
    assert Decoder(max_line_bytes=100).feed(line + b"\n\n") == [Event("z" * 94)]
    assert feed_all(Decoder(max_line_bytes=100), line[:50], line[50:], b"\n\n") == [Event("z" * 94)]


def test_event_over_limit_raises_without_buffering_further(Decoder: type[PyDecoder]) -> None:
    decoder = Decoder(max_event_bytes=1000)
    with pytest.raises(EventTooLargeError) as info:
        for _ in range(200):
            decoder.feed(b"data: 0123456789\n")
    assert info.value.what == "event"
    assert "max_event_bytes" in str(info.value)


def test_events_before_the_oversized_line_are_delivered_then_the_error_raised(
    Decoder: type[PyDecoder],
) -> None:
    decoder = Decoder(max_line_bytes=32)
    events = decoder.feed(b"data: a\n\ndata: b\n\n" + b"data: " + b"x" * 100 + b"\n\n")
    assert events == [Event("a"), Event("b")]
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"data: c\n\n")
    # The decoder refuses more of this stream, but close() makes it ready for the next one.
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"data: c\n\n")
    assert decoder.close() == []
    assert decoder.feed(b"data: d\n\n") == [Event("d")]


def test_owed_error_is_raised_by_close_if_no_feed_came(Decoder: type[PyDecoder]) -> None:
    decoder = Decoder(max_event_bytes=16)
    assert decoder.feed(b"data: a\n\ndata: " + b"q" * 40 + b"\n\n") == [Event("a")]
    with pytest.raises(EventTooLargeError):
        decoder.close()
    assert decoder.close() == []


def test_limits_must_be_positive(Decoder: type[PyDecoder]) -> None:
    with pytest.raises(ValueError):
        Decoder(max_line_bytes=0)
    with pytest.raises(ValueError):
        Decoder(max_event_bytes=-1)


def test_large_line_in_small_chunks_is_assembled(Decoder: type[PyDecoder]) -> None:
    payload = b"x" * (1 << 20)
    stream = b"data: " + payload + b"\n\n"
    decoder = Decoder()
    events = feed_all(decoder, *(stream[i : i + 1024] for i in range(0, len(stream), 1024)))
    assert len(events) == 1
    assert events[0].data == payload.decode()


def test_event_json_parses_data(Decoder: type[PyDecoder]) -> None:
    assert Decoder().feed(b'data: {"a": [1, 2]}\n\n')[0].json() == {"a": [1, 2]}


def test_event_spread_over_chunks_is_measured_whole_when_it_completes(
    Decoder: type[PyDecoder],
) -> None:
    decoder = Decoder(max_line_bytes=8, max_event_bytes=8)
    assert decoder.feed(b"data: \n") == []
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"data: \n\n")  # 14 bytes of event in all


def test_oversized_start_of_a_chunk_dispatches_nothing(Decoder: type[PyDecoder]) -> None:
    decoder = Decoder(max_line_bytes=6, max_event_bytes=7)
    assert decoder.feed(b"data: \n") == []
    with pytest.raises(EventTooLargeError):
        decoder.feed(b"data: \n")
    assert decoder.close() == []
