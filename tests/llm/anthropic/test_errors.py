"""The Anthropic Messages dialect's error bodies, `tokenrelay.llm.anthropic.errors`: parse_error
and error_body.
"""

from __future__ import annotations

import anthropic
import orjson
import pytest

from tests.llm.anthropic.helpers import HELLO, WRITTEN
from tests.replay_server import ReplayServer
from tokenrelay.llm import (
    ErrorKind,
    StreamError,
)
from tokenrelay.llm.anthropic import ANTHROPIC

pytestmark = pytest.mark.sdk


def test_http_529_body_parses_to_an_overloaded_error() -> None:
    body = (WRITTEN / "anthropic_http_error_529.json").read_bytes()
    assert ANTHROPIC.parse_error(529, body) == StreamError(
        ErrorKind.OVERLOADED, "Overloaded", 529, "overloaded_error"
    )


ERROR_CLASSES = [
    (ErrorKind.INVALID_REQUEST, 400, "BadRequestError"),
    (ErrorKind.AUTHENTICATION, 401, "AuthenticationError"),
    (ErrorKind.PERMISSION, 403, "PermissionDeniedError"),
    (ErrorKind.NOT_FOUND, 404, "NotFoundError"),
    (ErrorKind.REQUEST_TOO_LARGE, 413, "ContentTooLargeError"),
    (ErrorKind.RATE_LIMIT, 429, "RateLimitError"),
    (ErrorKind.SERVER, 500, "InternalServerError"),
    (ErrorKind.TIMEOUT, 504, "GatewayTimeoutError"),
    (ErrorKind.OVERLOADED, 529, "OverloadedError"),
]


@pytest.mark.parametrize(("kind", "status", "name"), ERROR_CLASSES)
def test_sdk_raises_the_matching_exception_for_each_error_body(
    server: ReplayServer,
    client: anthropic.Anthropic,
    kind: ErrorKind,
    status: int,
    name: str,
) -> None:
    code, body = ANTHROPIC.error_body(StreamError(kind, "went wrong"))
    assert code == status
    server.respond(orjson.dumps(body), status=code)
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(model="m", max_tokens=9, messages=HELLO)
    # The SDK's own class for the status; a release without one (anthropic < 2.x has no
    # 413, 504 or 529 class) raises its generic class for the status range instead.
    cls = getattr(anthropic, name, None)
    if cls is not None:
        assert type(info.value) is cls
    assert info.value.status_code == status
    assert info.value.body == body
    assert ANTHROPIC.parse_error(code, orjson.dumps(body)).kind == kind


def test_error_body_keeps_an_upstream_status() -> None:
    assert ANTHROPIC.error_body(StreamError(ErrorKind.OVERLOADED, "busy", 503))[0] == 503
    assert ANTHROPIC.error_body(StreamError(ErrorKind.OVERLOADED, "busy"))[0] == 529


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            500,
            b"<html>Bad gateway</html>",
            StreamError(ErrorKind.SERVER, "<html>Bad gateway</html>", 500),
        ),
        (429, b"", StreamError(ErrorKind.RATE_LIMIT, "upstream HTTP 429", 429)),
        (
            400,
            b'{"error": {"message": "bad", "type": "invalid_request_error"}}',
            StreamError(ErrorKind.INVALID_REQUEST, "bad", 400, "invalid_request_error"),
        ),
        (
            409,
            b'{"type": "error", "error": {"type": "conflict_error", "message": "c"}}',
            StreamError(ErrorKind.INVALID_REQUEST, "c", 409, "conflict_error"),
        ),
        (503, b'{"error": "down"}', StreamError(ErrorKind.OVERLOADED, "down", 503)),
    ],
)
def test_parse_error_tolerates_any_body(status: int, body: bytes, expected: StreamError) -> None:
    assert ANTHROPIC.parse_error(status, body) == expected
