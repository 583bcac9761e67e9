"""The Ollama dialect's whole (non-streamed) responses, `tokenrelay.llm.ollama.response`:
parse_response and render_response.
"""

from __future__ import annotations

import orjson
import pytest

from tests.llm.ollama.helpers import EXPECTED
from tests.replay_server import replay_server
from tokenrelay.llm import (
    accumulate,
)
from tokenrelay.llm.ollama import OLLAMA


def test_render_response_then_parse_response_gives_the_completion_back() -> None:
    completion = accumulate(EXPECTED)
    body = OLLAMA.render_response(completion)
    assert body["done"] is True and body["done_reason"] == "stop"
    assert body["created_at"] == "2025-07-07T20:22:19.184789Z"
    assert accumulate(OLLAMA.parse_response(orjson.dumps(body))) == completion
    assert accumulate(OLLAMA.parse_response(body)) == completion


def test_official_client_reads_a_non_streamed_answer() -> None:
    ollama = pytest.importorskip("ollama")
    body = orjson.dumps(OLLAMA.render_response(accumulate(EXPECTED)))
    with replay_server() as server:
        server.respond(body, content_type="application/json")
        with ollama.Client(host=server.url) as client:
            response = client.chat(model="llama3.2", messages=[], stream=False)
    assert response.message.content == "Hello"
    assert response.message.tool_calls[0].function.arguments == {"city": "Tokyo"}
    assert response.eval_count == 15
