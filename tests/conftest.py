from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import settings

# Correctness, not speed, is tested here: a loaded CI machine must not fail a property.
settings.register_profile("tokenrelay", deadline=None, print_blob=True)
settings.load_profile("tokenrelay")

DATA = Path(__file__).parent / "data"
CONFORMANCE = DATA / "conformance" / "sse_vectors.json"
FIXTURES = DATA / "fixtures"


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
