"""Google's ``google-genai`` and the ``ollama`` library, unmodified, against the gateway's
Gemini (``/v1beta/models/{model}:streamGenerateContent``, ``:generateContent``,
``GET /v1beta/models``) and Ollama (``POST /api/chat``, ``GET /api/tags``,
``GET /api/version``) endpoints, over real loopback HTTP, from every upstream kind (the
same matrix as ``test_gateway_sdk``): text and tool calls, streamed and not, usage, the
models list, errors in each dialect's own shape and status, and resume of an NDJSON stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import ollama
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.asgi_servers import run_server
from tests.test_gateway_sdk import (
    ECHO_TOKENS,
    KINDS,
    MESSAGE,
    WEATHER_ARGS,
    WEATHER_SCHEMA,
    check_calls,
    config_for,
    output_tokens,
    prompt_tokens,
)
from tokenrelay.gateway import create_app, parse_config
from tokenrelay.mock import MockServer

pytestmark = pytest.mark.sdk

DECLARATIONS = [
    types.FunctionDeclaration(
        name="get_weather", description="Weather in a city", parameters_json_schema=WEATHER_SCHEMA
    ),
    types.FunctionDeclaration(
        name="get_time", parameters_json_schema={"type": "object", "properties": {}}
    ),
]
GENAI_TOOLS = types.GenerateContentConfig(
    tools=[types.Tool(function_declarations=DECLARATIONS)],
    automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
)
OLLAMA_TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": WEATHER_SCHEMA,
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


@pytest.fixture(scope="module")
def gateway(mock: MockServer) -> Iterator[str]:
    with run_server(create_app(config_for(mock.url)), lifespan="on") as url:
        yield url


@pytest.fixture(scope="module")
def gemini(gateway: str) -> Iterator[genai.Client]:
    client = genai.Client(
        api_key="unused", http_options=types.HttpOptions(base_url=gateway, api_version="v1beta")
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def olla(gateway: str) -> Iterator[ollama.Client]:
    client = ollama.Client(host=gateway)
    yield client
    client.close()


def user(text: str = MESSAGE) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --- google-genai ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_genai_streams_text_with_usage_from_every_upstream(gemini: genai.Client, kind: str) -> None:
    chunks = list(gemini.models.generate_content_stream(model=f"{kind}-echo", contents=MESSAGE))
    assert len(chunks) >= 2  # streamed (the unpaced mock's tokens may merge in a backlog)
    assert "".join(c.text or "" for c in chunks) == MESSAGE
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    usage = last.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (
        prompt_tokens(False),
        ECHO_TOKENS,
    )


@pytest.mark.parametrize("model", ["echo", "tool", "tools"])
@pytest.mark.parametrize("kind", KINDS)
def test_genai_whole_answers_and_function_calls_from_every_upstream(
    gemini: genai.Client, kind: str, model: str
) -> None:
    config = GENAI_TOOLS if model != "echo" else None
    answer = gemini.models.generate_content(
        model=f"{kind}-{model}", contents=MESSAGE, config=config
    )
    if model == "echo":
        assert answer.text == MESSAGE
    else:
        calls = [(c.name, c.args) for c in answer.function_calls or []]
        check_calls(calls, model)
    usage = answer.usage_metadata
    assert usage is not None and usage.candidates_token_count == output_tokens(model)


def test_genai_streamed_function_call(gemini: genai.Client) -> None:
    calls = [
        (c.name, c.args)
        for chunk in gemini.models.generate_content_stream(
            model="anthropic-tool", contents=MESSAGE, config=GENAI_TOOLS
        )
        for c in chunk.function_calls or []
    ]
    assert calls == [("get_weather", WEATHER_ARGS)]


def test_genai_lists_the_gateways_models(gemini: genai.Client) -> None:
    names = [m.name for m in gemini.models.list()]
    assert "models/openai-echo" in names and len(names) == len(KINDS) * 3


def test_genai_unknown_model_is_its_404(gemini: genai.Client) -> None:
    with pytest.raises(genai_errors.ClientError) as info:
        gemini.models.generate_content(model="no-such-model", contents=MESSAGE)
    assert info.value.code == 404 and "no-such-model" in str(info.value.message)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/v1beta/models/openai-echo:streamGenerateContent?alt=sse", b"{not json", 400),
        ("/v1beta/models/openai-echo:streamGenerateContent?alt=sse", b'{"contents": 3}', 400),
        ("/v1beta/models/openai-echo:streamGenerateContent", b'{"contents": []}', 400),
        ("/v1beta/models/openai-echo:countTokens", b'{"contents": []}', 404),
        ("/v1beta/models/openai-echo", b'{"contents": []}', 404),
    ],
)
def test_gemini_bad_input_gets_geminis_error_shape(
    gateway: str, path: str, body: bytes, status: int
) -> None:
    response = httpx.post(
        gateway + path, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == status and error["message"] and error["status"]


def test_gemini_and_ollama_keys_are_checked(mock: MockServer) -> None:
    config = parse_config(
        {
            "gateway": {"api_keys_env": "GW_KEYS"},
            "providers": [{"name": "m", "kind": "mock"}],
            "models": [{"name": "echo", "route": ["m:echo"]}],
        },
        env={"GW_KEYS": "right-key"},
    )
    with run_server(create_app(config), lifespan="on") as url:
        for key, ok in (("right-key", True), ("wrong-key", False)):
            client = genai.Client(
                api_key=key, http_options=types.HttpOptions(base_url=url, api_version="v1beta")
            )
            try:
                if ok:
                    assert client.models.generate_content(model="echo", contents="hi").text == "hi"
                else:
                    with pytest.raises(genai_errors.ClientError) as info:
                        client.models.generate_content(model="echo", contents="hi")
                    assert info.value.code == 401
            finally:
                client.close()
        # Ollama's clients send the key as a bearer token; every Ollama endpoint but
        # the version wants it.
        for key, ok in (("right-key", True), ("wrong-key", False)):
            client = ollama.Client(host=url, headers={"Authorization": f"Bearer {key}"})
            try:
                if ok:
                    assert client.chat(model="echo", messages=user("hi")).message.content == "hi"
                    assert [m.model for m in client.list().models] == ["echo"]
                else:
                    with pytest.raises(ollama.ResponseError) as failed:
                        client.chat(model="echo", messages=user("hi"))
                    assert failed.value.status_code == 401
                    with pytest.raises(ollama.ResponseError) as failed:
                        client.list()
                    assert failed.value.status_code == 401
            finally:
                client.close()
        assert httpx.get(f"{url}/v1beta/models").status_code == 401
        assert httpx.get(f"{url}/api/version").status_code == 200
        # A key in the URL is not taken: URLs land in access logs.
        refused = httpx.post(
            f"{url}/v1beta/models/echo:generateContent?key=right-key",
            json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
        )
        assert refused.status_code == 401 and "right-key" not in refused.text


# --- ollama ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_ollama_streams_text_with_counts_from_every_upstream(
    olla: ollama.Client, kind: str
) -> None:
    parts = list(olla.chat(model=f"{kind}-echo", messages=user(), stream=True))
    assert len(parts) >= 2  # streamed (the unpaced mock's tokens may merge in a backlog)
    assert "".join(p.message.content or "" for p in parts) == MESSAGE
    last = parts[-1]
    assert last.done and last.done_reason == "stop"
    assert (last.prompt_eval_count, last.eval_count) == (prompt_tokens(False), ECHO_TOKENS)


@pytest.mark.parametrize("model", ["echo", "tool", "tools"])
@pytest.mark.parametrize("kind", KINDS)
def test_ollama_whole_answers_and_tool_calls_from_every_upstream(
    olla: ollama.Client, kind: str, model: str
) -> None:
    tools = OLLAMA_TOOLS if model != "echo" else None
    answer = olla.chat(model=f"{kind}-{model}", messages=user(), tools=tools, stream=False)
    assert answer.done
    if model == "echo":
        assert answer.message.content == MESSAGE
    else:
        calls = [
            (c.function.name, dict(c.function.arguments)) for c in answer.message.tool_calls or []
        ]
        check_calls(calls, model)


def test_ollama_lists_models_and_a_version(olla: ollama.Client, gateway: str) -> None:
    names = [m.model for m in olla.list().models]
    assert "ollama-echo" in names and len(names) == len(KINDS) * 3
    version = httpx.get(gateway + "/api/version").json()["version"]
    assert [int(x) for x in version.split(".")] >= [0, 5]


def test_ollama_unknown_model_is_its_404(olla: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        olla.chat(model="no-such-model", messages=user(), stream=False)
    assert info.value.status_code == 404 and "no-such-model" in info.value.error


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), (b'{"model": "openai-echo", "messages": 3}', 400), (b"[]", 400)],
)
def test_ollama_bad_input_gets_ollamas_error_shape(gateway: str, body: bytes, status: int) -> None:
    response = httpx.post(
        gateway + "/api/chat", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert isinstance(response.json()["error"], str) and response.json()["error"]


def test_ollama_stream_is_ndjson_and_resumes_from_its_start(gateway: str) -> None:
    """NDJSON has no event ids: ``GET /v1/streams/{id}`` (the ``x-stream-id`` header) gives
    the whole answer again, then its live tail, as NDJSON."""
    body = {"model": "mock-echo", "messages": user()}
    with httpx.stream("POST", gateway + "/api/chat", json=body) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        stream_id = response.headers["x-stream-id"]
        lines = [json.loads(line) for line in response.iter_lines()]  # every line is JSON
    assert "".join(x["message"]["content"] for x in lines) == MESSAGE and lines[-1]["done"]
    again = httpx.get(f"{gateway}/v1/streams/{stream_id}")
    assert again.headers["content-type"] == "application/x-ndjson"
    replay = [json.loads(line) for line in again.text.splitlines()]
    assert "".join(x["message"]["content"] for x in replay) == MESSAGE and replay[-1]["done"]


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
@pytest.mark.parametrize("kind", KINDS)
def test_ollama_generate_answers_a_prompt_from_every_upstream(
    olla: ollama.Client, kind: str, stream: bool
) -> None:
    """``/api/generate`` (what LangChain's ``OllamaLLM`` and other completion-style
    clients call): the prompt is a one-turn chat, the answer comes in ``response``."""
    if stream:
        parts = list(olla.generate(model=f"{kind}-echo", prompt=MESSAGE, stream=True))
        assert len(parts) >= 2
        assert "".join(p.response for p in parts) == MESSAGE
        last = parts[-1]
    else:
        last = olla.generate(model=f"{kind}-echo", prompt=MESSAGE, system="Be brief.")
        assert last.response == MESSAGE
    assert last.done and last.done_reason == "stop"
    assert last.eval_count == ECHO_TOKENS


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"suffix": "end"}, "suffix"),
        ({"raw": True}, "raw"),
        ({"context": [1, 2, 3]}, "context"),
        ({"template": "{{ .Prompt }}"}, "template"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": 3}, "prompt"),
    ],
)
def test_ollama_generate_refuses_what_a_chat_turn_cannot_honour(
    gateway: str, fields: dict[str, Any], param: str
) -> None:
    body = {"model": "mock-echo", "prompt": "hi", **fields}
    response = httpx.post(gateway + "/api/generate", json=body)
    assert response.status_code == 400
    assert param in response.json()["error"]


def test_ollama_generate_stream_lines_and_resume(gateway: str) -> None:
    body = {"model": "mock-echo", "prompt": MESSAGE}
    with httpx.stream("POST", gateway + "/api/generate", json=body) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        stream_id = response.headers["x-stream-id"]
        lines = [json.loads(line) for line in response.iter_lines()]
    assert all("message" not in x for x in lines)
    assert "".join(x["response"] for x in lines) == MESSAGE and lines[-1]["done"]
    again = httpx.get(f"{gateway}/v1/streams/{stream_id}")
    assert [json.loads(line) for line in again.text.splitlines()] == lines


@pytest.mark.parametrize(
    "path", ["/v1beta/models/openai-echo:generateContent", "/api/chat"], ids=["gemini", "ollama"]
)
def test_a_body_that_is_not_json_by_its_content_type_is_refused_in_the_dialect(
    gateway: str, path: str
) -> None:
    """A form or text/plain POST (what a web page may send cross-site without asking)
    never starts a generation. Neither dialect has a 415: both answer 400, as their own
    servers do for a bad request."""
    body = b'{"contents": [{"parts": [{"text": "hi"}]}], "model": "openai-echo"}'
    answer = httpx.post(gateway + path, content=body, headers={"content-type": "text/plain"})
    assert answer.status_code == 400
    error = answer.json()["error"]
    if path.startswith("/v1beta"):
        assert error["code"] == 400 and "application/json" in error["message"]
    else:
        assert "application/json" in error
