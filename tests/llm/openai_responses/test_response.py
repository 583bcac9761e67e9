"""The OpenAI Responses dialect's whole (non-streamed) responses,
`tokenrelay.llm.openai_responses.response`: parse_response and render_response, and what the
official `openai` SDK reads.
"""

from __future__ import annotations

from dataclasses import replace

import openai
import pytest

from tests.llm.openai_responses.helpers import rich_stream
from tests.replay_server import ReplayServer
from tokenrelay.llm import (
    ErrorKind,
    Finish,
    FinishReason,
    Start,
    StreamError,
    TextDelta,
    accumulate,
)
from tokenrelay.llm.jsonio import dumps
from tokenrelay.llm.openai_responses import OPENAI_RESPONSES

pytestmark = pytest.mark.sdk


def test_sdk_create_parses_the_non_streamed_response(
    server: ReplayServer, sdk: openai.OpenAI
) -> None:
    body = OPENAI_RESPONSES.render_response(accumulate(rich_stream()))
    server.respond(dumps(body), content_type="application/json")
    result = sdk.responses.create(model="gpt-test", input="hi")
    assert result.output_text == "Hello, world"
    assert [o.type for o in result.output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    assert result.usage is not None and result.usage.total_tokens == 30
    assert result.status == "completed"


@pytest.mark.parametrize(
    ("finish", "error", "status"),
    [
        (Finish(FinishReason.LENGTH), None, "incomplete"),
        (None, StreamError(ErrorKind.SERVER, "boom"), "failed"),
    ],
)
def test_sdk_create_parses_incomplete_and_failed_responses(
    server: ReplayServer,
    sdk: openai.OpenAI,
    finish: Finish | None,
    error: StreamError | None,
    status: str,
) -> None:
    completion = accumulate([Start("resp_n", "m"), TextDelta("x"), *([finish] if finish else [])])
    body = OPENAI_RESPONSES.render_response(replace(completion, error=error))
    server.respond(dumps(body), content_type="application/json")
    result = sdk.responses.create(model="gpt-test", input="hi")
    assert result.status == status
    assert (result.error is not None) == (error is not None)


def test_parse_response_reads_an_error_body() -> None:
    body = {"error": {"message": "nope", "type": "invalid_request_error", "code": None}}
    assert OPENAI_RESPONSES.parse_response(dumps(body)) == [
        StreamError(ErrorKind.INVALID_REQUEST, "nope", None, "invalid_request_error")
    ]


def test_render_then_parse_response_keeps_the_answer() -> None:
    completion = accumulate(rich_stream())
    deltas = OPENAI_RESPONSES.parse_response(dumps(OPENAI_RESPONSES.render_response(completion)))
    assert accumulate(deltas) == completion
