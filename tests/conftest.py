from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.redis_server import RedisServer
from tests.redis_server import redis_server as start_redis_server
from tests.replay_server import ReplayServer, replay_server
from tokenrelay.mock import MockServer
from tokenrelay.sse.decoder import CDecoder, PyDecoder

# Correctness, not speed, is tested here: a loaded CI machine must not fail a property.
settings.register_profile("tokenrelay", deadline=None, print_blob=True)
settings.load_profile("tokenrelay")

DATA = Path(__file__).parent / "data"
CONFORMANCE = DATA / "conformance" / "sse_vectors.json"
FIXTURES = DATA / "fixtures"


# The SSE decoder's tests run over both implementations, as uvicorn's run over both of its
# HTTP parsers: `pytestmark = pytest.mark.parametrize("Decoder", DECODERS)`. Without the C
# extension its cases skip here, and test_c_decoder_is_built fails in CI.
C_DECODER_MISSING = (
    "the C decoder (tokenrelay.sse._cdecoder) is not built, or TOKENRELAY_NO_EXTENSIONS is set"
)
DECODERS = [
    pytest.param(PyDecoder, id="py"),
    pytest.param(
        CDecoder,
        id="c",
        marks=pytest.mark.skipif(CDecoder is None, reason=C_DECODER_MISSING),
    ),
]


def load_vectors(kind: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(CONFORMANCE.read_text())
    return [case for case in cases if case["kind"] == kind]


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def random_splits(data: bytes, seed: int, rounds: int = 20) -> Iterator[list[bytes]]:
    """Seeded random chunkings of `data`, from few cuts to many."""
    rng = random.Random(seed)
    for _ in range(rounds):
        if len(data) < 2:
            yield [data]
            continue
        n = rng.randint(1, max(1, len(data) // 2))
        yield split_at(data, rng.sample(range(1, len(data)), min(n, len(data) - 1)))


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def halves(data: bytes, stride: int = 1) -> Iterator[tuple[int, list[bytes]]]:
    """``data`` split in two at every (stride-th) position, with the cut."""
    for cut in range(1, len(data), stride):
        yield cut, [data[:cut], data[cut:]]


def every_chunking(
    data: bytes, *, stride: int = 1, seeds: int = 3, rounds: int = 20
) -> Iterator[list[bytes]]:
    """Whole, one byte at a time, in two at every (stride-th) position, seeded random."""
    yield [data]
    yield byte_by_byte(data)
    for _, chunks in halves(data, stride):
        yield chunks
    for seed in range(seeds):
        yield from random_splits(data, seed, rounds)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    """The fake LLM over loopback, one per module."""
    with MockServer() as server:
        yield server


@pytest.fixture(scope="module")
def server() -> Iterator[ReplayServer]:
    """A loopback server that answers with whatever it is told to, one per module."""
    with replay_server() as s:
        yield s


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on loopback for the whole session (skips without one; fails in
    CI). A test may stop and start it; the next test gets it running again."""
    with start_redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of an empty Redis database: the server is (re)started and flushed first."""
    redis_server.start()
    redis_server.flush()
    return redis_server.url(0)
