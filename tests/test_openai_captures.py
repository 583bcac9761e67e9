"""Real OpenAI Chat Completions streams decode identically at every chunking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tokenrelay.sse import Decoder, Event

from .conftest import FIXTURES, random_splits

CAPTURES = sorted((FIXTURES / "openai-captures").glob("*.sse"))


def decode(chunks: list[bytes]) -> list[Event]:
    decoder = Decoder()
    events: list[Event] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def check(events: list[Event], expected_count: int) -> None:
    assert len(events) == expected_count
    assert events[-1].data == "[DONE]"
    for event in events[:-1]:
        chunk = event.json()
        assert chunk["object"] == "chat.completion.chunk"
    assert all(e.event == "message" for e in events)


@pytest.fixture(params=CAPTURES, ids=[p.name for p in CAPTURES])
def capture(request: pytest.FixtureRequest) -> tuple[bytes, int]:
    path: Path = request.param
    raw = path.read_bytes()
    # Counted from the file independently of the decoder: one `data:` line per event.
    count = sum(1 for line in raw.split(b"\n") if line.startswith(b"data: "))
    return raw, count


def test_captures_were_found() -> None:
    assert len(CAPTURES) == 12


def test_capture_decodes_whole(capture: tuple[bytes, int]) -> None:
    raw, count = capture
    check(decode([raw]), count)


def test_capture_decodes_one_byte_at_a_time(capture: tuple[bytes, int]) -> None:
    raw, count = capture
    check(decode([raw[i : i + 1] for i in range(len(raw))]), count)


def test_capture_decodes_in_every_fixed_chunk_size(capture: tuple[bytes, int]) -> None:
    raw, _ = capture
    whole = decode([raw])
    for size in [*range(2, 65), 100, 256, 1000, 4096]:
        assert decode([raw[i : i + size] for i in range(0, len(raw), size)]) == whole, size


def test_capture_decodes_split_at_every_single_point(capture: tuple[bytes, int]) -> None:
    raw, _ = capture
    whole = decode([raw])
    for cut in range(len(raw) + 1):
        assert decode([raw[:cut], raw[cut:]]) == whole, cut


def test_capture_decodes_at_random_splits(capture: tuple[bytes, int]) -> None:
    raw, count = capture
    for chunks in random_splits(raw, seed=len(raw)):
        check(decode(chunks), count)


def test_capture_decodes_with_crlf_and_cr_line_ends(capture: tuple[bytes, int]) -> None:
    raw, count = capture
    for newline in (b"\r\n", b"\r"):
        converted = raw.replace(b"\n", newline)
        check(decode([converted[i : i + 7] for i in range(0, len(converted), 7)]), count)


def test_text_capture_reassembles_the_sentence() -> None:
    raw = (FIXTURES / "openai-captures" / "text.sse").read_bytes()
    events = decode([raw[i : i + 5] for i in range(0, len(raw), 5)])
    text = "".join(
        choice["delta"].get("content") or ""
        for event in events[:-1]
        for choice in json.loads(event.data)["choices"]
    )
    assert text.startswith("I'm unable to provide")
