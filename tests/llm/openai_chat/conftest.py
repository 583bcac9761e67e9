"""Fixtures the OpenAI Chat Completions test modules share."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.dialect_helpers import openai_client
from tests.replay_server import ReplayServer


@pytest.fixture
def client(server: ReplayServer) -> Iterator[openai.OpenAI]:
    with openai_client(server.url + "/v1", api_key="sk-test") as c:
        yield c
