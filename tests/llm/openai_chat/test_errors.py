"""The OpenAI Chat Completions dialect's error bodies, `tokenrelay.llm.openai_chat.errors`:
parse_error and error_body.
"""

from __future__ import annotations

import json

import openai
import pytest

from tests.llm.openai_chat.helpers import MESSAGES, WRITTEN, K
from tests.replay_server import ReplayServer
from tokenrelay.llm import (
    StreamError,
)
from tokenrelay.llm.jsonio import dumps
from tokenrelay.llm.openai_chat import OPENAI_CHAT

pytestmark = pytest.mark.sdk

SDK_ERRORS: list[tuple[StreamError, int, type[openai.APIStatusError], str]] = [
    (StreamError(K.INVALID_REQUEST, "bad"), 400, openai.BadRequestError, "invalid_request_error"),
    (StreamError(K.AUTHENTICATION, "who"), 401, openai.AuthenticationError, "authentication_error"),
    (StreamError(K.PERMISSION, "no"), 403, openai.PermissionDeniedError, "permission_error"),
    (StreamError(K.NOT_FOUND, "what"), 404, openai.NotFoundError, "not_found_error"),
    (StreamError(K.REQUEST_TOO_LARGE, "big"), 413, openai.APIStatusError, "invalid_request_error"),
    (StreamError(K.RATE_LIMIT, "slow"), 429, openai.RateLimitError, "rate_limit_error"),
    (StreamError(K.SERVER, "oops"), 500, openai.InternalServerError, "server_error"),
    (StreamError(K.TIMEOUT, "late"), 504, openai.InternalServerError, "timeout_error"),
    (StreamError(K.OVERLOADED, "busy"), 503, openai.InternalServerError, "overloaded_error"),
    (
        StreamError(K.OVERLOADED, "busy", 529, "overloaded_error"),
        503,
        openai.InternalServerError,
        "overloaded_error",
    ),
    (
        StreamError(K.INVALID_REQUEST, "no", 422),
        422,
        openai.UnprocessableEntityError,
        "invalid_request_error",
    ),
    (
        StreamError(K.INVALID_REQUEST, "dup", 409),
        409,
        openai.ConflictError,
        "invalid_request_error",
    ),
]


@pytest.mark.parametrize(("error", "status", "exc", "type_"), SDK_ERRORS)
def test_sdk_raises_the_right_exception_for_each_error_body(
    server: ReplayServer,
    client: openai.OpenAI,
    error: StreamError,
    status: int,
    exc: type[openai.APIStatusError],
    type_: str,
) -> None:
    got_status, body = OPENAI_CHAT.error_body(error)
    assert got_status == status
    assert set(body["error"]) == {"message", "type", "param", "code"}
    server.respond(dumps(body), status=got_status, headers={"x-should-retry": "false"})
    with pytest.raises(exc) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert type(caught.value) is exc
    assert caught.value.status_code == status
    assert caught.value.type == type_
    assert error.message in caught.value.message


def test_the_429_fixture_parses_and_renders_back_unchanged() -> None:
    raw = (WRITTEN / "openai_http_error_429.json").read_bytes()
    error = OPENAI_CHAT.parse_error(429, raw)
    assert error == StreamError(K.RATE_LIMIT, "Rate limit reached for requests", 429, "requests")
    assert OPENAI_CHAT.error_body(error) == (429, json.loads(raw))


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (502, b"<html>Bad Gateway</html>", StreamError(K.SERVER, "<html>Bad Gateway</html>", 502)),
        (503, b"", StreamError(K.OVERLOADED, "upstream HTTP 503", 503)),
        (404, b'{"detail": "Not Found"}', StreamError(K.NOT_FOUND, "Not Found", 404)),
        (400, b'{"error": "plain string"}', StreamError(K.INVALID_REQUEST, "plain string", 400)),
        (
            401,
            b'{"error": {"message": "Incorrect API key", "type": "invalid_request_error",'
            b' "code": "invalid_api_key"}}',
            StreamError(K.AUTHENTICATION, "Incorrect API key", 401, "invalid_request_error"),
        ),
        (
            529,
            b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}',
            StreamError(K.OVERLOADED, "Overloaded", 529, "overloaded_error"),
        ),
        (413, b'{"message": "too big"}', StreamError(K.REQUEST_TOO_LARGE, "too big", 413)),
    ],
)
def test_parse_error_tolerates_what_upstreams_send(
    status: int, body: bytes, expected: StreamError
) -> None:
    assert OPENAI_CHAT.parse_error(status, body) == expected
