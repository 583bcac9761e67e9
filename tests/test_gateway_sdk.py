"""The official SDKs, unmodified, against the gateway over real loopback HTTP: every
client dialect (OpenAI chat completions, OpenAI responses, Anthropic messages) from every
upstream kind (openai, anthropic, gemini and ollama, all served by one `MockServer`, and
the in-process `mock`), for text and for tool calls.

One gateway serves the module: provider ``<kind>`` per kind, and models
``<kind>-<mock model>`` routed to ``<kind>:<mock model>``. What comes out must be exactly
the mock's script: the text, the tool names and JSON arguments, the finish reason and the
usage the upstream counted.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.asgi_servers import run_server
from tests.dialect_helpers import anthropic_client, openai_client
from tests.replay_server import replay_server
from tokenrelay.gateway import create_app, parse_config
from tokenrelay.llm import OPENAI_CHAT, Message, Request, TextPart, Tool, to_wire
from tokenrelay.llm.estimate import estimate_prompt_tokens
from tokenrelay.mock import MockServer
from tokenrelay.mock.script import script, split_words
from tokenrelay.sse import Decoder

pytestmark = pytest.mark.sdk

MESSAGE = "Hello wörld, streams are 👋 fun"
KINDS = ["openai", "anthropic", "gemini", "ollama", "mock"]
MOCK_MODELS = ["echo", "tool", "tools"]

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city"],
}
TIME_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}
# The mock fills string parameters with the last user message and integers with 1.
WEATHER_ARGS = {"city": MESSAGE, "days": 1}
ECHO_TOKENS = len(split_words(MESSAGE))
TOOL_TOKENS = 3  # the call's start, then its arguments in two fragments

OPENAI_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": WEATHER_SCHEMA,
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": TIME_SCHEMA}},
]
RESPONSES_TOOLS = [{"type": "function", **t["function"]} for t in OPENAI_TOOLS]
ANTHROPIC_TOOLS = [
    {
        **{k: v for k, v in t["function"].items() if k != "parameters"},
        "input_schema": t["function"]["parameters"],
    }
    for t in OPENAI_TOOLS
]
NEUTRAL_TOOLS = (
    Tool("get_weather", "Weather in a city", WEATHER_SCHEMA),
    Tool("get_time", "", TIME_SCHEMA),
)


def prompt_tokens(tools: bool) -> int:
    """What the mock counts for our prompt (it is the upstream: its count is the truth)."""
    request = Request(
        "m", (Message("user", (TextPart(MESSAGE),)),), tools=NEUTRAL_TOOLS if tools else ()
    )
    return estimate_prompt_tokens(request)


def config_for(mock_url: str) -> Any:
    base = {"openai": mock_url + "/v1", "mock": ""}
    return parse_config(
        {
            "gateway": {"ping_seconds": 5},
            "providers": [
                {"name": kind, "kind": kind, "base_url": base.get(kind, mock_url)} for kind in KINDS
            ],
            "models": [
                {"name": f"{kind}-{model}", "route": [f"{kind}:{model}"]}
                for kind in KINDS
                for model in MOCK_MODELS
            ],
        },
        env={},
    )


@pytest.fixture(scope="module")
def gateway(mock: MockServer) -> Iterator[str]:
    with run_server(create_app(config_for(mock.url)), lifespan="on") as url:
        yield url


@pytest.fixture(scope="module")
def oai(gateway: str) -> Iterator[openai.OpenAI]:
    with openai_client(gateway + "/v1") as client:
        yield client


@pytest.fixture(scope="module")
def claude(gateway: str) -> Iterator[anthropic.Anthropic]:
    with anthropic_client(gateway) as client:
        yield client


def user(text: str = MESSAGE) -> list[Any]:
    return [{"role": "user", "content": text}]


def check_calls(calls: list[tuple[str, Any]], model: str) -> None:
    want = [("get_weather", WEATHER_ARGS)]
    if model == "tools":
        want.append(("get_time", {}))
    assert calls == want


def output_tokens(model: str) -> int:
    return ECHO_TOKENS if model == "echo" else TOOL_TOKENS * (2 if model == "tools" else 1)


# --- OpenAI chat completions --------------------------------------------------------------


@pytest.mark.parametrize("model", MOCK_MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_openai_chat_stream_helper_rebuilds_the_answer(
    oai: openai.OpenAI, kind: str, model: str
) -> None:
    tools = {"tools": OPENAI_TOOLS} if model != "echo" else {}
    with oai.chat.completions.stream(
        model=f"{kind}-{model}",
        messages=user(),
        **tools,
        stream_options={"include_usage": True},
    ) as stream:
        assert stream._raw_stream.response.headers["x-stream-id"].startswith("str_")
        final = stream.get_final_completion()
    (choice,) = final.choices
    assert final.model == f"{kind}-{model}"
    assert final.usage is not None
    assert final.usage.completion_tokens == output_tokens(model)
    assert final.usage.prompt_tokens == prompt_tokens(model != "echo")
    if model == "echo":
        assert (choice.message.content, choice.finish_reason) == (MESSAGE, "stop")
        assert not choice.message.tool_calls
    else:
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls or []
        assert all(c.id and c.type == "function" for c in calls)
        check_calls([(c.function.name, json.loads(c.function.arguments)) for c in calls], model)


@pytest.mark.parametrize("model", MOCK_MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_openai_chat_create_stream_yields_the_chunks(
    oai: openai.OpenAI, kind: str, model: str
) -> None:
    tools = {"tools": OPENAI_TOOLS} if model != "echo" else {}
    stream = oai.chat.completions.create(
        model=f"{kind}-{model}",
        messages=user(),
        **tools,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert stream.response.headers["x-stream-id"]
    pieces: list[str] = []
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    finish, usage = None, None
    with stream:
        for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
                for call in choice.delta.tool_calls or []:
                    if call.function and call.function.name:
                        names[call.index] = names.get(call.index, "") + call.function.name
                    if call.function and call.function.arguments:
                        arguments[call.index] = (
                            arguments.get(call.index, "") + call.function.arguments
                        )
                finish = choice.finish_reason or finish
    assert usage is not None and usage.completion_tokens == output_tokens(model)
    if model == "echo":
        # An unpaced upstream outruns this reader: its words may come merged, none lost.
        assert ("".join(pieces), finish) == (MESSAGE, "stop")
    else:
        assert finish == "tool_calls"
        calls = [(names[i], json.loads(arguments.get(i) or "{}")) for i in sorted(names)]
        check_calls(calls, model)


@pytest.mark.parametrize("model", MOCK_MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_openai_chat_create_returns_the_whole_answer(
    oai: openai.OpenAI, kind: str, model: str
) -> None:
    tools = {"tools": OPENAI_TOOLS} if model != "echo" else {}
    answer = oai.chat.completions.create(model=f"{kind}-{model}", messages=user(), **tools)
    (choice,) = answer.choices
    assert answer.model == f"{kind}-{model}"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == output_tokens(model)
    assert answer.usage.prompt_tokens == prompt_tokens(model != "echo")
    if model == "echo":
        assert (choice.message.content, choice.finish_reason) == (MESSAGE, "stop")
    else:
        assert choice.finish_reason == "tool_calls"
        calls = choice.message.tool_calls or []
        check_calls([(c.function.name, json.loads(c.function.arguments)) for c in calls], model)


# --- OpenAI responses ----------------------------------------------------------------------


def check_response(response: Any, model: str) -> None:
    assert response.status == "completed"
    assert response.usage is not None
    assert response.usage.output_tokens == output_tokens(model)
    assert response.usage.input_tokens == prompt_tokens(model != "echo")
    if model == "echo":
        assert response.output_text == MESSAGE
        return
    calls = [item for item in response.output if item.type == "function_call"]
    assert all(c.call_id for c in calls)
    check_calls([(c.name, json.loads(c.arguments)) for c in calls], model)


@pytest.mark.parametrize("model", MOCK_MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_openai_responses_stream_helper_rebuilds_the_answer(
    oai: openai.OpenAI, kind: str, model: str
) -> None:
    tools = {"tools": RESPONSES_TOOLS} if model != "echo" else {}
    with oai.responses.stream(model=f"{kind}-{model}", input=MESSAGE, **tools) as stream:
        assert stream._raw_stream.response.headers["x-stream-id"]
        events = list(stream)
        final = stream.get_final_response()
    numbers = [e.sequence_number for e in events]
    # From 0, increasing; a reader behind (here: the unpaced mock's burst) merges runs of
    # text deltas into one event, which keeps the number of the last of them, so that a
    # number names the same place for every reader (starting_after).
    assert numbers[0] == 0 and all(a < b for a, b in itertools.pairwise(numbers))
    assert events[-1].type == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == (MESSAGE if model == "echo" else "")
    check_response(final, model)


@pytest.mark.parametrize("model", MOCK_MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_openai_responses_create_returns_the_whole_answer(
    oai: openai.OpenAI, kind: str, model: str
) -> None:
    tools = {"tools": RESPONSES_TOOLS} if model != "echo" else {}
    check_response(oai.responses.create(model=f"{kind}-{model}", input=MESSAGE, **tools), model)


# --- Anthropic messages ---------------------------------------------------------------------


def check_message(message: Any, model: str) -> None:
    assert message.usage.output_tokens == output_tokens(model)
    assert message.usage.input_tokens == prompt_tokens(model != "echo")
    if model == "echo":
        assert message.stop_reason == "end_turn"
        assert [(b.type, b.text) for b in message.content] == [("text", MESSAGE)]
        return
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert all(u.id for u in uses)
    check_calls([(u.name, u.input) for u in uses], model)


@pytest.mark.parametrize("model", MOCK_MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_anthropic_messages_stream_rebuilds_the_answer(
    claude: anthropic.Anthropic, kind: str, model: str
) -> None:
    tools = {"tools": ANTHROPIC_TOOLS} if model != "echo" else {}
    with claude.messages.stream(
        model=f"{kind}-{model}", max_tokens=100, messages=user(), **tools
    ) as stream:
        assert stream.response.headers["x-stream-id"]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == (MESSAGE if model == "echo" else "")
    check_message(final, model)


@pytest.mark.parametrize("model", MOCK_MODELS)
@pytest.mark.parametrize("kind", KINDS)
def test_anthropic_messages_create_returns_the_whole_answer(
    claude: anthropic.Anthropic, kind: str, model: str
) -> None:
    tools = {"tools": ANTHROPIC_TOOLS} if model != "echo" else {}
    message = claude.messages.create(
        model=f"{kind}-{model}", max_tokens=100, messages=user(), **tools
    )
    assert message.model == f"{kind}-{model}"
    check_message(message, model)


# --- the wire: stream ids and event ids ------------------------------------------------------

DIALECT_REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "openai_chat": ("/v1/chat/completions", {"messages": user(), "stream": True}),
    "openai_responses": ("/v1/responses", {"input": MESSAGE, "stream": True}),
    "anthropic": ("/v1/messages", {"messages": user(), "max_tokens": 100, "stream": True}),
}


@pytest.mark.parametrize("dialect", list(DIALECT_REQUESTS))
@pytest.mark.parametrize("kind", KINDS)
def test_every_streamed_event_has_an_id_and_the_response_a_stream_id(
    gateway: str, kind: str, dialect: str
) -> None:
    path, body = DIALECT_REQUESTS[dialect]
    with httpx.stream(
        "POST", gateway + path, json={**body, "model": f"{kind}-echo"}, timeout=10
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream_id = response.headers["x-stream-id"]
        raw = response.read()
    blocks = [b for b in raw.split(b"\n\n") if b and not b.startswith(b":")]
    assert blocks and all(b.startswith(b"id: ") or b"\nid: " in b for b in blocks)
    events = Decoder().feed(raw)
    ids = [e.id for e in events]
    assert len(events) == len(blocks) and all(ids) and len(set(ids)) == len(ids)
    # The whole stream again, by its id, in the dialect it was started in: byte for byte.
    again = httpx.get(f"{gateway}/v1/streams/{stream_id}", timeout=10)
    assert again.headers["x-stream-id"] == stream_id
    assert again.content == raw


# --- bad input: the right status and error shape in each dialect -----------------------------

BODIES: dict[str, dict[str, Any]] = {
    "openai_chat": {"messages": user()},
    "openai_responses": {"input": MESSAGE},
    "anthropic": {"messages": user(), "max_tokens": 100},
}
WRONG_TYPES = {  # (field, a value of the wrong type)
    "openai_chat": ("messages", "hello"),
    "openai_responses": ("input", 5),
    "anthropic": ("max_tokens", "ten"),
}
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}


def check_error(dialect: str, response: httpx.Response, status: int, param: str = "") -> str:
    """The error's message, after checking the status and the dialect's error shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()
    if dialect == "anthropic":
        assert error["type"] == "error" and set(error["error"]) >= {"type", "message"}
        assert error["error"]["type"] == ANTHROPIC_TYPES[status]
        assert param in error["error"]["message"]
        return str(error["error"]["message"])
    assert set(error["error"]) >= {"message", "type", "param", "code"}
    if param:
        assert error["error"]["param"] == param
    return str(error["error"]["message"])


def post(url: str, dialect: str, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        url + DIALECT_REQUESTS[dialect][0],
        content=content,
        headers={"content-type": "application/json", **headers},
        timeout=10,
    )


@pytest.mark.parametrize("dialect", list(BODIES))
def test_bad_requests_get_precise_errors_in_the_client_s_dialect(
    gateway: str, dialect: str
) -> None:
    check_error(dialect, post(gateway, dialect, b'{"model": "openai-echo", '), 400)
    check_error(dialect, post(gateway, dialect, b"[1, 2]"), 400)
    field, value = WRONG_TYPES[dialect]
    wrong = {**BODIES[dialect], "model": "openai-echo", field: value}
    check_error(dialect, post(gateway, dialect, json.dumps(wrong).encode()), 400, field)
    unknown = {**BODIES[dialect], "model": "no-such-model", "stream": True}
    message = check_error(dialect, post(gateway, dialect, json.dumps(unknown).encode()), 404)
    assert "no-such-model" in message and "openai-echo" in message
    # The gateway is still serving.
    assert httpx.get(gateway + "/healthz").json() == {"status": "ok"}


def test_the_sdks_raise_their_own_exceptions_for_gateway_errors(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.chat.completions.create(model="no-such-model", messages=user())
    assert caught.value.code is None or isinstance(caught.value.code, str)
    with pytest.raises(openai.BadRequestError):
        oai.responses.create(model="openai-echo", input=MESSAGE, temperature="hot")  # type: ignore[arg-type]
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="no-such-model", max_tokens=10, messages=user())


@pytest.fixture(scope="module")
def strict(mock: MockServer) -> Iterator[str]:
    """A gateway with client keys, a 4 KiB body limit and room for one stream."""
    config = parse_config(
        {
            "gateway": {
                "api_keys_env": "GATEWAY_KEYS",
                "max_body_bytes": 4096,
                "max_streams": 1,
                "grace_seconds": 0,
            },
            "providers": [
                {
                    "name": "up",
                    "kind": "openai",
                    "base_url": mock.url + "/v1",
                    "headers": {"x-mock-token-ms": "20"},
                }
            ],
            "models": [{"name": "slow", "route": ["up:lorem"]}],
        },
        env={"GATEWAY_KEYS": "key-one, key-two"},
    )
    with run_server(create_app(config), lifespan="on") as url:
        yield url


@pytest.mark.parametrize("dialect", list(BODIES))
def test_client_keys_are_required_by_bearer_or_x_api_key(strict: str, dialect: str) -> None:
    limit = "max_output_tokens" if dialect == "openai_responses" else "max_tokens"
    payload = json.dumps({**BODIES[dialect], "model": "slow", limit: 2}).encode()
    check_error(dialect, post(strict, dialect, payload), 401)
    check_error(dialect, post(strict, dialect, payload, authorization="Bearer key-three"), 401)
    check_error(dialect, post(strict, dialect, payload, **{"x-api-key": "nope"}), 401)
    assert post(strict, dialect, payload, authorization="Bearer key-one").status_code == 200
    assert post(strict, dialect, payload, **{"x-api-key": "key-two"}).status_code == 200
    assert httpx.get(strict + "/v1/models").status_code == 401
    assert httpx.get(strict + "/v1/streams/str_x").status_code == 401
    assert httpx.get(strict + "/healthz").status_code == 200


def test_the_sdks_authenticate_with_a_gateway_key(strict: str) -> None:
    with openai_client(strict + "/v1", api_key="key-one") as client:
        answer = client.chat.completions.create(model="slow", messages=user(), max_tokens=3)
        assert answer.choices[0].message.content == "lorem ipsum dolor"
    with openai_client(strict + "/v1", api_key="wrong") as client:
        with pytest.raises(openai.AuthenticationError):
            client.models.list()
    with anthropic_client(strict, api_key="key-two") as claude:
        message = claude.messages.create(model="slow", max_tokens=3, messages=user())
        assert message.content[0].type == "text" and message.content[0].text == "lorem ipsum dolor"
    with anthropic_client(strict, api_key="wrong") as claude:
        with pytest.raises(anthropic.AuthenticationError):
            claude.messages.create(model="slow", max_tokens=3, messages=user())


@pytest.mark.parametrize("dialect", list(BODIES))
def test_an_oversized_body_is_413(strict: str, dialect: str) -> None:
    big = {**BODIES[dialect], "model": "slow", "metadata": {"pad": "x" * 5000}}
    response = post(strict, dialect, json.dumps(big).encode(), authorization="Bearer key-one")
    check_error(dialect, response, 413)


def test_a_stream_over_the_limit_is_429_until_one_ends(strict: str) -> None:
    auth = {"authorization": "Bearer key-one"}
    payload = {**BODIES["openai_chat"], "model": "slow", "stream": True, "max_tokens": 200}
    with httpx.stream(
        "POST", strict + "/v1/chat/completions", json=payload, headers=auth, timeout=10
    ) as open_stream:
        assert open_stream.status_code == 200
        for dialect in BODIES:
            second = {**BODIES[dialect], "model": "slow", "stream": True}
            response = post(strict, dialect, json.dumps(second).encode(), **auth)
            check_error(dialect, response, 429)
            assert response.headers["retry-after"] == "1"
    # Grace 0: the generation ends with its reader, and the slot is free again.
    deadline = time.monotonic() + 2
    while httpx.get(strict + "/readyz").json()["active_streams"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with openai_client(strict + "/v1", api_key="key-one") as client:
        assert client.chat.completions.create(model="slow", messages=user(), max_tokens=1)


# --- the upstream key ----------------------------------------------------------------------------

UPSTREAM_KEY = "sk-upstream-secret-4f9c2e7a1b"


def echo_stream_body() -> bytes:
    """What an OpenAI upstream streams for the echo of MESSAGE."""
    request = Request(
        "echo", (Message("user", (TextPart(MESSAGE),)),), stream=True, include_usage=True
    )
    encoder = OPENAI_CHAT.encoder(request)
    frames = [f for d in script(request, id="chatcmpl-replay").deltas for f in encoder.encode(d)]
    return to_wire([*frames, *encoder.close()])


def test_the_upstream_key_reaches_the_upstream_and_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with replay_server() as upstream:
        config = parse_config(
            {
                "providers": [
                    {
                        "name": "up",
                        "kind": "openai",
                        "base_url": upstream.url + "/v1",
                        "api_key_env": "UPSTREAM_KEY",
                    }
                ],
                "models": [{"name": "m", "route": ["up:echo"]}],
                "gateway": {"retry": {"attempts": 1}},
            },
            env={"UPSTREAM_KEY": UPSTREAM_KEY},
        )
        assert UPSTREAM_KEY not in repr(config)
        answers: list[httpx.Response] = []
        with (
            run_server(create_app(config), lifespan="on") as url,
            openai_client(url + "/v1", api_key="client-key") as client,
        ):
            upstream.respond(echo_stream_body())
            stream = client.chat.completions.create(model="m", messages=user(), stream=True)
            assert UPSTREAM_KEY not in str(stream.response.headers)
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            assert text == MESSAGE
            _, path, headers, _ = upstream.requests[-1]
            assert path == "/v1/chat/completions"
            assert headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
            # An upstream that echoes the key in its error has it scrubbed, in every dialect.
            echo = {"error": {"message": f"Incorrect API key provided: {UPSTREAM_KEY}"}}
            for dialect, (path, body) in DIALECT_REQUESTS.items():
                for stream_it in (True, False):
                    upstream.respond(echo_stream_body())
                    answers.append(
                        httpx.post(url + path, json={**body, "model": "m", "stream": stream_it})
                    )
                    assert answers[-1].status_code == 200, dialect
                upstream.respond(json.dumps(echo).encode(), status=400)
                answers.append(httpx.post(url + path, json={**body, "model": "m"}))
                assert answers[-1].status_code == 400
                assert "[redacted]" in answers[-1].text
            answers += [httpx.get(url + p) for p in ("/metrics", "/v1/models", "/readyz")]
        assert len(upstream.requests) == 10
    for answer in answers:
        assert UPSTREAM_KEY not in str(answer.headers)
        assert UPSTREAM_KEY not in answer.text
    assert caplog.records and UPSTREAM_KEY not in caplog.text


# --- health, readiness, metrics and models ---------------------------------------------------


def test_health_readiness_and_metrics(gateway: str, oai: openai.OpenAI) -> None:
    assert httpx.get(gateway + "/healthz").json() == {"status": "ok"}
    assert httpx.get(gateway + "/readyz").json() == {"status": "ready", "active_streams": 0}
    oai.chat.completions.create(model="mock-echo", messages=user())
    metrics = httpx.get(gateway + "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        "tokenrelay_ttft_seconds_bucket",
        "tokenrelay_inter_token_seconds_bucket",
        'tokenrelay_tokens_total{direction="output",estimated="false",model="mock-echo"}',
        "tokenrelay_active_streams 0.0",
        'tokenrelay_requests_total{endpoint="/v1/chat/completions",status="200"}',
        "# TYPE tokenrelay_upstream_errors_total counter",
    ):
        assert name in metrics.text, name


def test_models_are_listed_in_the_openai_and_the_anthropic_shape(
    oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    names = [f"{kind}-{model}" for kind in KINDS for model in MOCK_MODELS]
    listed = oai.models.list()
    assert [m.id for m in listed] == names
    assert all(m.object == "model" for m in listed)
    page = claude.models.list()
    assert [m.id for m in page] == names
    assert all(m.type == "model" and m.display_name == m.id for m in page)


def test_unknown_endpoints_raise_each_sdks_own_not_found(
    oai: openai.OpenAI, claude: anthropic.Anthropic, gateway: str
) -> None:
    with pytest.raises(openai.NotFoundError) as embeddings:
        oai.embeddings.create(model="openai-echo", input="hi")
    assert "/v1/embeddings" in embeddings.value.message
    with pytest.raises(openai.NotFoundError):
        oai.completions.create(model="openai-echo", prompt="hi")
    with pytest.raises(anthropic.NotFoundError):
        claude.models.retrieve("openai-echo")  # GET /v1/models/{id}: not served
    ollama_shape = httpx.post(gateway + "/api/embed", json={"model": "x"})
    assert ollama_shape.status_code == 404 and isinstance(ollama_shape.json()["error"], str)
    wrong_method = httpx.put(gateway + "/v1/chat/completions", json={})
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["message"].startswith("PUT is not served")
    assert "POST" in wrong_method.headers["allow"]


@pytest.mark.parametrize("kind", KINDS)
def test_anthropic_clients_get_the_input_count_in_message_start_when_it_is_known(
    claude: anthropic.Anthropic, kind: str
) -> None:
    """As Anthropic's API does: an upstream that knows the prompt's count before the first
    token (Anthropic's message_start, Gemini's usageMetadata on every chunk, the in-process
    mock) has it in message_start; the others (OpenAI and Ollama count at the end) have it
    in message_delta, and message_start says 0."""
    starts, ends = [], []
    with claude.messages.create(
        model=f"{kind}-echo", max_tokens=100, messages=user(), stream=True
    ) as events:
        for event in events:
            if event.type == "message_start":
                starts.append(event.message.usage.input_tokens)
            elif event.type == "message_delta":
                ends.append(event.usage.input_tokens)
    known_early = kind in ("anthropic", "gemini", "mock")
    assert starts == [prompt_tokens(False) if known_early else 0]
    assert ends == [None if known_early else prompt_tokens(False)]


def test_responses_state_the_gateway_does_not_keep_is_refused_not_ignored(
    oai: openai.OpenAI,
) -> None:
    """Conversation objects and stored prompts are not kept here: a request relying on
    them gets a 400 naming the field (a client would otherwise lose its context
    silently). The rest of the state is kept: tests/test_gateway_responses_state.py."""
    for field, value in (("conversation", "conv_123"), ("prompt", {"id": "pmpt_1"})):
        with pytest.raises(openai.BadRequestError) as info:
            oai.responses.create(model="openai-echo", input=MESSAGE, extra_body={field: value})
        assert info.value.body is not None and info.value.body["param"] == field
    assert oai.responses.create(model="openai-echo", input=MESSAGE, store=False).store is False
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve("resp_123")
