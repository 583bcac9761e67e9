"""Fixtures the Anthropic Messages test modules share."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from tests.dialect_helpers import anthropic_client
from tests.replay_server import ReplayServer


@pytest.fixture(scope="module")
def client(server: ReplayServer) -> Iterator[anthropic.Anthropic]:
    with anthropic_client(server.url, api_key="x") as c:
        yield c
