"""The encoder writes what readers parse back, and refuses what it cannot write faithfully."""

from __future__ import annotations

import pytest

from tokenrelay.sse import Decoder, Event, comment, encode


def test_single_line_data_is_one_data_line_and_a_blank_line() -> None:
    assert encode("hello") == b"data: hello\n\n"


def test_fields_come_before_data() -> None:
    assert encode("x", event="delta", id="42", retry=3000) == (
        b"event: delta\nid: 42\nretry: 3000\ndata: x\n\n"
    )


@pytest.mark.parametrize("data", ["a\nb", "a\r\nb", "a\rb"])
def test_each_kind_of_line_break_in_data_becomes_a_data_line(data: str) -> None:
    assert encode(data) == b"data: a\ndata: b\n\n"


def test_trailing_and_consecutive_line_breaks_are_preserved() -> None:
    encoded = encode("\n\r\nend\r")
    assert encoded == b"data: \ndata: \ndata: end\ndata: \n\n"
    assert Decoder().feed(encoded) == [Event("\n\nend\n")]


def test_empty_data_still_dispatches_an_event() -> None:
    assert Decoder().feed(encode("")) == [Event("")]


def test_bytes_data_is_written_as_is() -> None:
    assert encode(b'{"a":1}') == b'data: {"a":1}\n\n'
    assert encode(b"x\r\ny", id="1") == b"id: 1\ndata: x\ndata: y\n\n"


def test_leading_space_in_data_survives_the_optional_space_rule() -> None:
    assert Decoder().feed(encode("  indented")) == [Event("  indented")]


def test_empty_id_resets_the_last_event_id() -> None:
    decoder = Decoder("9")
    assert decoder.feed(encode("x", id="")) == [Event("x", id="")]


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\n"])
def test_event_type_with_line_break_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="event type"):
        encode("x", event=bad)


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b", "\0"])
def test_id_that_cannot_be_sent_unchanged_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="event id"):
        encode("x", id=bad)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100"])
def test_retry_must_be_a_non_negative_int(bad: object) -> None:
    with pytest.raises(ValueError, match="retry"):
        encode("x", retry=bad)  # type: ignore[arg-type]


def test_comment_is_a_block_that_dispatches_nothing() -> None:
    assert comment("ping") == b": ping\n\n"
    assert comment() == b":\n\n"
    assert comment("a\nb") == b": a\n: b\n\n"
    decoder = Decoder()
    assert decoder.feed(comment("ping") + comment("two\r\nlines")) == []
    assert decoder.feed(encode("after")) == [Event("after")]


def test_event_validates_itself_like_the_encoder() -> None:
    with pytest.raises(ValueError):
        Event("x", event="a\nb")
    with pytest.raises(ValueError):
        Event("x", id="a\0")
    with pytest.raises(ValueError):
        Event("x", retry=-5)


def test_event_is_frozen_and_slotted() -> None:
    event = Event("x")
    with pytest.raises(AttributeError):
        event.data = "y"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")


def test_decoded_events_are_ordinary_frozen_events() -> None:
    decoded = Decoder().feed(b"data: a\n\ndata: b\n\n" + b"data: c\n\n")
    assert [type(e) for e in decoded] == [Event, Event, Event]
    assert decoded == [Event("a"), Event("b"), Event("c")]
    assert hash(decoded[0]) == hash(Event("a"))
    with pytest.raises(AttributeError):
        decoded[0].data = "changed"  # type: ignore[misc]
