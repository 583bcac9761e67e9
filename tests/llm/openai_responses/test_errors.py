"""The OpenAI Responses dialect's error bodies, `tokenrelay.llm.openai_responses.errors`:
parse_error and error_body.
"""

from __future__ import annotations

import openai
import pytest

from tests.replay_server import ReplayServer
from tokenrelay.llm import (
    ErrorKind,
    StreamError,
)
from tokenrelay.llm.jsonio import dumps
from tokenrelay.llm.openai_responses import OPENAI_RESPONSES

pytestmark = pytest.mark.sdk


@pytest.mark.parametrize(
    ("kind", "status", "exception"),
    [
        (ErrorKind.INVALID_REQUEST, 400, openai.BadRequestError),
        (ErrorKind.AUTHENTICATION, 401, openai.AuthenticationError),
        (ErrorKind.PERMISSION, 403, openai.PermissionDeniedError),
        (ErrorKind.NOT_FOUND, 404, openai.NotFoundError),
        (ErrorKind.REQUEST_TOO_LARGE, 413, openai.APIStatusError),
        (ErrorKind.RATE_LIMIT, 429, openai.RateLimitError),
        (ErrorKind.SERVER, 500, openai.InternalServerError),
        (ErrorKind.TIMEOUT, 504, openai.InternalServerError),
        (ErrorKind.OVERLOADED, 503, openai.InternalServerError),
    ],
)
def test_sdk_raises_the_right_exception_for_each_error_body(
    server: ReplayServer,
    sdk: openai.OpenAI,
    kind: ErrorKind,
    status: int,
    exception: type[Exception],
) -> None:
    sent_status, body = OPENAI_RESPONSES.error_body(StreamError(kind, f"{kind} happened"))
    assert sent_status == status
    server.respond(dumps(body), status=sent_status)
    with pytest.raises(exception) as info:
        sdk.responses.create(model="gpt-test", input="hi")
    assert isinstance(info.value, openai.APIStatusError)
    assert info.value.status_code == status
    assert f"{kind} happened" in info.value.message


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_error_body_parses_back_to_its_kind(kind: ErrorKind) -> None:
    status, body = OPENAI_RESPONSES.error_body(StreamError(kind, "msg"))
    error = OPENAI_RESPONSES.parse_error(status, dumps(body))
    assert (error.message, error.status) == ("msg", status)
    # 529 is sent as 503, which reads back as overloaded too
    assert error.kind is kind


def test_parse_error_tolerates_a_body_that_is_not_json() -> None:
    error = OPENAI_RESPONSES.parse_error(502, b"<html>Bad gateway</html>")
    assert (error.kind, error.status, error.message) == (
        ErrorKind.SERVER, 502, "<html>Bad gateway</html>"
    )  # fmt: skip
