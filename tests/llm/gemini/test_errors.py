"""The Gemini dialect's error bodies, `tokenrelay.llm.gemini.errors`: parse_error and error_body."""

from __future__ import annotations

import orjson
import pytest

from tokenrelay.llm import (
    ErrorKind,
    StreamError,
)
from tokenrelay.llm.gemini import GEMINI


@pytest.mark.parametrize(
    ("kind", "status", "word"),
    [
        (ErrorKind.INVALID_REQUEST, 400, "INVALID_ARGUMENT"),
        (ErrorKind.AUTHENTICATION, 401, "UNAUTHENTICATED"),
        (ErrorKind.PERMISSION, 403, "PERMISSION_DENIED"),
        (ErrorKind.NOT_FOUND, 404, "NOT_FOUND"),
        (ErrorKind.REQUEST_TOO_LARGE, 400, "INVALID_ARGUMENT"),
        (ErrorKind.RATE_LIMIT, 429, "RESOURCE_EXHAUSTED"),
        (ErrorKind.SERVER, 500, "INTERNAL"),
        (ErrorKind.OVERLOADED, 503, "UNAVAILABLE"),
        (ErrorKind.TIMEOUT, 504, "DEADLINE_EXCEEDED"),
    ],
)
def test_error_bodies_use_google_status_words(kind: ErrorKind, status: int, word: str) -> None:
    code, body = GEMINI.error_body(StreamError(kind, "msg"))
    assert code == status
    assert body == {"error": {"code": status, "message": "msg", "status": word}}
    parsed = GEMINI.parse_error(code, orjson.dumps(body))
    expected = ErrorKind.INVALID_REQUEST if kind is ErrorKind.REQUEST_TOO_LARGE else kind
    assert parsed == StreamError(expected, "msg", status, word)


def test_error_body_keeps_a_google_word_of_the_same_kind() -> None:
    error = StreamError(ErrorKind.INVALID_REQUEST, "m", 400, "FAILED_PRECONDITION")
    assert GEMINI.error_body(error)[1]["error"]["status"] == "FAILED_PRECONDITION"


def test_parse_error_tolerates_arrays_and_non_json() -> None:
    wrapped = b'[{"error": {"code": 404, "message": "no model", "status": "NOT_FOUND"}}]'
    assert GEMINI.parse_error(404, wrapped).kind is ErrorKind.NOT_FOUND
    html = GEMINI.parse_error(502, b"<html>Bad Gateway</html>")
    assert (html.kind, html.status, html.message) == (
        ErrorKind.SERVER,
        502,
        "<html>Bad Gateway</html>",
    )
