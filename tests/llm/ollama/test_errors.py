"""The Ollama dialect's error bodies, `tokenrelay.llm.ollama.errors`: parse_error and error_body,
and what the official `ollama` SDK reads.
"""

from __future__ import annotations

import orjson
import pytest

from tests.dialect_helpers import ERROR_STATUSES
from tests.replay_server import replay_server
from tokenrelay.llm import (
    ErrorKind,
    StreamError,
)
from tokenrelay.llm.ollama import OLLAMA


@pytest.mark.parametrize(("kind", "status"), ERROR_STATUSES)
def test_error_bodies_round_trip(kind: ErrorKind, status: int) -> None:
    code, body = OLLAMA.error_body(StreamError(kind, "msg"))
    assert (code, body) == (status, {"error": "msg"})
    assert OLLAMA.parse_error(code, orjson.dumps(body)) == StreamError(kind, "msg", status)


def test_parse_error_tolerates_non_json() -> None:
    error = OLLAMA.parse_error(502, b"Bad Gateway")
    assert (error.kind, error.status, error.message) == (ErrorKind.SERVER, 502, "Bad Gateway")


@pytest.mark.parametrize("kind", [ErrorKind.NOT_FOUND, ErrorKind.INVALID_REQUEST, ErrorKind.SERVER])
def test_official_client_raises_error_bodies_with_their_status(kind: ErrorKind) -> None:
    ollama = pytest.importorskip("ollama")
    status, body = OLLAMA.error_body(StreamError(kind, "model 'x' not found"))
    with replay_server() as server:
        server.respond(orjson.dumps(body), status=status)
        with ollama.Client(host=server.url) as client, pytest.raises(ollama.ResponseError) as info:
            client.chat(model="x", messages=[], stream=False)
    assert info.value.status_code == status
    assert info.value.error == "model 'x' not found"
