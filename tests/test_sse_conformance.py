"""Every parse vector of the shared conformance suite, whole, byte by byte and split."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from tokenrelay.sse import Event
from tokenrelay.sse.decoder import PyDecoder

from .conftest import DECODERS, load_vectors, random_splits

pytestmark = pytest.mark.parametrize("Decoder", DECODERS)

VECTORS = load_vectors("parse")


def run(
    Decoder: type[PyDecoder], case: dict[str, Any], chunks: list[bytes]
) -> tuple[list[tuple[str, str, str]], str, Any]:
    decoder = Decoder(case.get("initial_last_event_id", ""))
    events: list[Event] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.close()
    return (
        [(e.event, e.data, e.id) for e in events],
        decoder.last_event_id,
        decoder.retry,
    )


def expected(case: dict[str, Any]) -> tuple[list[tuple[str, str, str]], str, Any]:
    return (
        [(e["type"], e["data"], e["id"]) for e in case["expected"]],
        case["final_last_event_id"],
        case["final_retry"],
    )


@pytest.fixture(params=VECTORS, ids=[case["name"] for case in VECTORS])
def case(request: pytest.FixtureRequest) -> dict[str, Any]:
    vector: dict[str, Any] = request.param
    return vector


def test_vector_decodes_whole(Decoder: type[PyDecoder], case: dict[str, Any]) -> None:
    assert run(Decoder, case, [bytes.fromhex(case["input_hex"])]) == expected(case)


def test_vector_decodes_one_byte_at_a_time(Decoder: type[PyDecoder], case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["input_hex"])
    assert run(Decoder, case, [data[i : i + 1] for i in range(len(data))]) == expected(case)


def test_vector_decodes_split_at_every_single_point(
    Decoder: type[PyDecoder], case: dict[str, Any]
) -> None:
    data = bytes.fromhex(case["input_hex"])
    for cut in range(len(data) + 1):
        assert run(Decoder, case, [data[:cut], data[cut:]]) == expected(case), f"split at {cut}"


def test_vector_decodes_split_at_random_points(
    Decoder: type[PyDecoder], case: dict[str, Any]
) -> None:
    data = bytes.fromhex(case["input_hex"])
    seed = zlib.crc32(case["name"].encode())
    for chunks in random_splits(data, seed):
        assert run(Decoder, case, chunks) == expected(case), [c.hex() for c in chunks]


CHUNKED = [case for case in VECTORS if "chunks_hex" in case]


@pytest.mark.parametrize("case", CHUNKED, ids=[case["name"] for case in CHUNKED])
def test_vector_decodes_in_its_given_chunks(Decoder: type[PyDecoder], case: dict[str, Any]) -> None:
    chunks = [bytes.fromhex(c) for c in case["chunks_hex"]]
    assert b"".join(chunks).hex() == case["input_hex"]
    assert run(Decoder, case, chunks) == expected(case)


def test_every_parse_vector_is_collected(Decoder: type[PyDecoder]) -> None:
    # The suite must not shrink silently if the data file is replaced.
    assert len(VECTORS) >= 35
    assert CHUNKED
