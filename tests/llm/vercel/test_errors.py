"""The Vercel AI SDK UI message stream dialect's error bodies, `tokenrelay.llm.vercel.errors`:
parse_error and error_body.
"""

from __future__ import annotations

import orjson
import pytest

from tests.dialect_helpers import ERROR_STATUSES
from tokenrelay.llm import (
    ErrorKind,
    StreamError,
)
from tokenrelay.llm.vercel import VERCEL_UI


@pytest.mark.parametrize(("kind", "status"), ERROR_STATUSES)
def test_error_bodies_round_trip(kind: ErrorKind, status: int) -> None:
    code, body = VERCEL_UI.error_body(StreamError(kind, "msg"))
    assert (code, body) == (status, {"type": "error", "errorText": "msg"})
    assert VERCEL_UI.parse_error(code, orjson.dumps(body)) == StreamError(kind, "msg", status)


def test_parse_error_reads_other_shapes_and_plain_text() -> None:
    assert VERCEL_UI.parse_error(400, b'{"error": {"message": "bad"}}').message == "bad"
    assert VERCEL_UI.parse_error(500, b"Internal Server Error").message == "Internal Server Error"
