"""Google's ``google-genai`` and the ``ollama`` library read what our Gemini and Ollama
encoders write, through the mock (the same scripts and encoders the gateway's upstream side
and, later, its Gemini and Ollama endpoints use): text streamed and not, function calls,
usage and status errors, as each SDK parses them.

The clients are built the way their documentation says (base URL or host pointed at the
mock); nothing here depends on which HTTP library an SDK uses inside.
"""

from __future__ import annotations

from collections.abc import Iterator

import ollama
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tokenrelay.mock import MockServer

pytestmark = pytest.mark.sdk

MESSAGE = "The quick brown fox jumps over the lazy dog."
WEATHER_DECL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


@pytest.fixture
def gemini(mock: MockServer) -> Iterator[genai.Client]:
    client = genai.Client(
        api_key="test-key",
        http_options=types.HttpOptions(base_url=mock.url, api_version="v1beta"),
    )
    yield client
    client.close()


# --- google-genai ----------------------------------------------------------------------


def test_genai_streams_text_and_usage(gemini: genai.Client) -> None:
    chunks = list(gemini.models.generate_content_stream(model="echo", contents=MESSAGE))
    assert len(chunks) > 3  # a word at a time, not one lump
    assert "".join(c.text or "" for c in chunks) == MESSAGE
    last = chunks[-1]
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP
    usage = last.usage_metadata
    assert usage is not None and usage.candidates_token_count == len(MESSAGE.split())
    assert usage.prompt_token_count and usage.prompt_token_count > 0


def test_genai_non_streamed_text(gemini: genai.Client) -> None:
    response = gemini.models.generate_content(model="echo", contents=MESSAGE)
    assert response.text == MESSAGE
    assert response.candidates and response.candidates[0].finish_reason == "STOP"


def test_genai_function_call_streamed_and_not(gemini: genai.Client) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(**WEATHER_DECL)])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    client = gemini
    once = client.models.generate_content(model="tool", contents="Oslo", config=config)
    assert once.function_calls is not None
    (call,) = once.function_calls
    assert call.name == "get_weather" and call.args == {"city": "Oslo"}
    streamed = [
        fc
        for chunk in client.models.generate_content_stream(
            model="tool", contents="Oslo", config=config
        )
        for fc in chunk.function_calls or []
    ]
    assert [(fc.name, fc.args) for fc in streamed] == [("get_weather", {"city": "Oslo"})]


@pytest.mark.parametrize(
    ("status", "error"), [(429, genai_errors.ClientError), (503, genai_errors.ServerError)]
)
def test_genai_status_errors(gemini: genai.Client, status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        gemini.models.generate_content(model=f"echo@{status}", contents=MESSAGE)
    assert isinstance(info.value, genai_errors.APIError) and info.value.code == status


# --- ollama ----------------------------------------------------------------------------


@pytest.fixture
def ollama_client(mock: MockServer) -> Iterator[ollama.Client]:
    client = ollama.Client(host=mock.url)
    yield client
    client.close()


def test_ollama_streams_text_and_counts(ollama_client: ollama.Client) -> None:
    parts = list(
        ollama_client.chat(
            model="echo", messages=[{"role": "user", "content": MESSAGE}], stream=True
        )
    )
    assert len(parts) > 3
    assert "".join(p.message.content or "" for p in parts) == MESSAGE
    last = parts[-1]
    assert last.done and last.done_reason == "stop"
    assert last.eval_count == len(MESSAGE.split())
    assert last.prompt_eval_count and last.prompt_eval_count > 0


def test_ollama_non_streamed_and_tool_call(ollama_client: ollama.Client) -> None:
    client = ollama_client
    answer = client.chat(model="echo", messages=[{"role": "user", "content": MESSAGE}])
    assert answer.message.content == MESSAGE and answer.done
    tool = {"type": "function", "function": WEATHER_DECL}
    called = client.chat(model="tool", messages=[{"role": "user", "content": "Oslo"}], tools=[tool])
    calls = called.message.tool_calls or []
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Oslo"})
    ]


def test_ollama_status_error(ollama_client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        ollama_client.chat(
            model="echo@503", messages=[{"role": "user", "content": MESSAGE}], stream=False
        )
    assert info.value.status_code == 503


@pytest.mark.anyio
async def test_ollama_async_stream(mock: MockServer) -> None:
    text = ""
    client = ollama.AsyncClient(host=mock.url)
    try:
        async for part in await client.chat(
            model="echo", messages=[{"role": "user", "content": MESSAGE}], stream=True
        ):
            text += part.message.content or ""
    finally:
        await client.close()
    assert text == MESSAGE
