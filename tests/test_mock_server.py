"""The official SDKs against `tokenrelay mock` over loopback: answers and injected faults."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.asgi_servers import free_port
from tokenrelay.llm import accumulate
from tokenrelay.llm.gemini import GEMINI
from tokenrelay.llm.ollama import OLLAMA
from tokenrelay.mock import MockConfig, MockServer

pytestmark = pytest.mark.sdk

MESSAGE = "Hello wörld, streams are 👋 fun"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


_clients: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def oai(mock: MockServer, **kw: Any) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    client = openai.OpenAI(base_url=mock.url + "/v1", api_key="test-key", **kw)
    _clients.append(client)
    return client


def claude(mock: MockServer, **kw: Any) -> anthropic.Anthropic:
    kw.setdefault("max_retries", 0)
    client = anthropic.Anthropic(base_url=mock.url, api_key="test-key", **kw)
    _clients.append(client)
    return client


def user(text: str = MESSAGE) -> list[Any]:
    return [{"role": "user", "content": text}]


# --- answers ---------------------------------------------------------------------------


def test_openai_sdk_streams_echo_word_by_word_with_usage(mock: MockServer) -> None:
    stream = oai(mock).chat.completions.create(
        model="echo", messages=user(), stream=True, stream_options={"include_usage": True}
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces) == MESSAGE
    assert len(pieces) == len(MESSAGE.split())
    assert usage is not None and usage.completion_tokens == len(pieces)


def test_openai_sdk_stream_helper_rebuilds_scripted_tool_calls(mock: MockServer) -> None:
    with oai(mock).chat.completions.stream(
        model="tools", messages=user("Paris"), tools=[WEATHER, TIME]
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris", "days": 1}
    assert json.loads(calls[1].function.arguments) == {}


def test_openai_sdk_non_streamed_echo(mock: MockServer) -> None:
    answer = oai(mock).chat.completions.create(model="echo", messages=user())
    assert answer.choices[0].message.content == MESSAGE
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.completion_tokens == len(MESSAGE.split())


def test_openai_sdk_responses_stream_echo_and_tool_call(mock: MockServer) -> None:
    client = oai(mock)
    with client.responses.stream(model="echo", input=MESSAGE) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == MESSAGE == final.output_text
    schema = WEATHER["function"]["parameters"]
    tool = {"type": "function", "name": "get_weather", "parameters": schema}
    with client.responses.stream(model="tool", input="Rome", tools=[tool]) as stream:
        final = stream.get_final_response()
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Rome", "days": 1}


def test_openai_sdk_responses_non_streamed(mock: MockServer) -> None:
    assert oai(mock).responses.create(model="echo", input=MESSAGE).output_text == MESSAGE


def test_anthropic_sdk_streams_echo_thinking_and_tool_use(mock: MockServer) -> None:
    client = claude(mock)
    with client.messages.stream(model="echo", max_tokens=100, messages=user()) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == MESSAGE
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == len(MESSAGE.split())
    with client.messages.stream(model="think", max_tokens=100, messages=user("why")) as stream:
        final = stream.get_final_message()
    thinking, answer = final.content
    assert thinking.type == "thinking" and thinking.thinking == "Thinking about: why"
    assert thinking.signature and answer.type == "text" and answer.text == "why"
    tool = {"name": "get_weather", "input_schema": WEATHER["function"]["parameters"]}
    with client.messages.stream(
        model="tool", max_tokens=100, messages=user("Oslo"), tools=[tool]
    ) as stream:
        final = stream.get_final_message()
    (use,) = final.content
    assert use.type == "tool_use" and use.name == "get_weather"
    assert use.input == {"city": "Oslo", "days": 1}
    assert final.stop_reason == "tool_use"


def test_anthropic_sdk_non_streamed(mock: MockServer) -> None:
    message = claude(mock).messages.create(model="echo", max_tokens=50, messages=user())
    assert message.content[0].type == "text" and message.content[0].text == MESSAGE


def test_gemini_and_ollama_endpoints_stream_echo(mock: MockServer) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": MESSAGE}]}]}
    url = f"{mock.url}/v1beta/models/echo:streamGenerateContent?alt=sse"
    with httpx.stream("POST", url, json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        decoder = GEMINI.decoder()
        deltas = [d for chunk in response.iter_bytes() for d in decoder.feed(chunk)]
    assert accumulate(deltas + decoder.close()).choices[0].text == MESSAGE
    once = httpx.post(f"{mock.url}/v1beta/models/echo:generateContent", json=body).json()
    assert accumulate(GEMINI.parse_response(once)).choices[0].text == MESSAGE

    body = {"model": "echo", "messages": user()}
    with httpx.stream("POST", f"{mock.url}/api/chat", json=body) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        decoder = OLLAMA.decoder()
        deltas = [d for chunk in response.iter_bytes() for d in decoder.feed(chunk)]
    assert accumulate(deltas + decoder.close()).choices[0].text == MESSAGE


def test_token_pacing_follows_ttft_and_interval(mock: MockServer) -> None:
    headers = {"x-mock-ttft-ms": "150", "x-mock-token-ms": "40"}
    client = oai(mock, default_headers=headers)
    start = time.perf_counter()
    arrivals = []
    for chunk in client.chat.completions.create(
        model="echo", messages=user("a b c d e f"), stream=True
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() - start)
    assert len(arrivals) == 6
    assert 0.15 <= arrivals[0] < 0.15 + 0.5
    # Token k is due at TTFT + k x interval: the last one, 5 intervals after the first.
    assert 0.15 + 5 * 0.04 <= arrivals[-1] < 0.15 + 5 * 0.04 + 0.5


def test_server_settings_pace_every_request() -> None:
    with MockServer(MockConfig(ttft_ms=100)) as slow:
        start = time.perf_counter()
        oai(slow).chat.completions.create(model="echo", messages=user("x"))
        assert time.perf_counter() - start >= 0.1


# --- faults ----------------------------------------------------------------------------

OPENAI_STATUS = {
    "429": openai.RateLimitError,
    "500": openai.InternalServerError,
    "529": openai.InternalServerError,
    "401": openai.AuthenticationError,
}
ANTHROPIC_STATUS = {
    "429": anthropic.RateLimitError,
    "500": anthropic.InternalServerError,
    # anthropic < 2.x has no 529 class: it raises its 5xx class
    "529": getattr(anthropic, "OverloadedError", anthropic.InternalServerError),
    "401": anthropic.AuthenticationError,
}


@pytest.mark.parametrize("fault", sorted(OPENAI_STATUS))
def test_status_faults_raise_the_sdks_exception_for_that_status(
    mock: MockServer, fault: str
) -> None:
    headers = {"x-mock-fault": fault}
    with pytest.raises(OPENAI_STATUS[fault]) as oe:
        oai(mock).chat.completions.create(
            model="echo", messages=user(), stream=True, extra_headers=headers
        )
    with pytest.raises(ANTHROPIC_STATUS[fault]) as ae:
        claude(mock).messages.create(
            model="echo", max_tokens=10, messages=user(), stream=True, extra_headers=headers
        )
    assert oe.value.status_code == ae.value.status_code == int(fault)
    if fault == "429":
        assert oe.value.response.headers["retry-after"] == "1"


def test_fault_in_the_model_name_works_without_headers(mock: MockServer) -> None:
    with pytest.raises(openai.RateLimitError):
        oai(mock).chat.completions.create(model="echo@429", messages=user())


def test_times_faults_only_the_first_requests_so_sdk_retries_succeed(mock: MockServer) -> None:
    spec = "503;times=2;retry-after=0"
    client = oai(mock, max_retries=2)
    answer = client.chat.completions.create(
        model="echo", messages=user("ok"), extra_headers={"x-mock-fault": spec}
    )
    assert answer.choices[0].message.content == "ok"
    faulted = [r for r in mock.app.records if r.get("fault") == spec]
    assert [r["outcome"] for r in faulted] == ["fault", "fault", "completed"]


def test_drop_cuts_the_stream_after_k_tokens(mock: MockServer) -> None:
    stream = oai(mock).chat.completions.create(
        model="echo",
        messages=user("one two three four"),
        stream=True,
        extra_headers={"x-mock-fault": "drop:2"},
    )
    pieces = []
    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
    assert pieces == ["one", " two"]


def test_error_fault_sends_the_in_band_error_event(mock: MockServer) -> None:
    stream = oai(mock).chat.completions.create(
        model="echo",
        messages=user("one two three"),
        stream=True,
        extra_headers={"x-mock-fault": "error:1"},
    )
    with pytest.raises(openai.APIError, match="mock fault"):
        list(stream)
    with (
        pytest.raises(anthropic.APIStatusError, match=r"overloaded|mock fault"),
        claude(mock).messages.stream(
            model="echo",
            max_tokens=10,
            messages=user("a b"),
            extra_headers={"x-mock-fault": "error:1;kind=overloaded"},
        ) as astream,
    ):
        astream.get_final_message()


def test_stall_is_caught_by_the_clients_read_timeout(mock: MockServer) -> None:
    # A plain number: the SDK's own HTTP library (httpx, or httpx2 in openai 3.x) is its
    # business, so neither its Timeout class nor its exceptions appear here.
    client = oai(mock, timeout=0.3)
    stream = client.chat.completions.create(
        model="echo",
        messages=user("one two"),
        stream=True,
        extra_headers={"x-mock-fault": "stall:1;for=5"},
    )
    start = time.perf_counter()
    with pytest.raises(Exception) as caught:
        list(stream)
    assert "Timeout" in type(caught.value).__name__, repr(caught.value)
    assert time.perf_counter() - start < 3


def test_malformed_fault_sends_data_that_is_not_json(mock: MockServer) -> None:
    stream = oai(mock).chat.completions.create(
        model="echo",
        messages=user("one two"),
        stream=True,
        extra_headers={"x-mock-fault": "malformed:1"},
    )
    with pytest.raises(json.JSONDecodeError):
        list(stream)


# --- bad input -------------------------------------------------------------------------


def test_unknown_model_is_not_found_in_each_dialect(mock: MockServer) -> None:
    with pytest.raises(openai.NotFoundError, match="echo"):
        oai(mock).chat.completions.create(model="gpt-9", messages=user())
    with pytest.raises(anthropic.NotFoundError, match="echo"):
        claude(mock).messages.create(model="gpt-9", max_tokens=5, messages=user())


def test_bad_bodies_get_400_or_413_in_the_callers_dialect() -> None:
    with MockServer(MockConfig(max_body_bytes=1000)) as mock:
        response = httpx.post(f"{mock.url}/v1/chat/completions", content=b"{nope")
        assert response.status_code == 400
        assert "JSON" in response.json()["error"]["message"]
        response = httpx.post(
            f"{mock.url}/v1/chat/completions", json={"model": "echo", "messages": "hi"}
        )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "messages"
        response = httpx.post(f"{mock.url}/v1/messages", json={"model": 5})
        assert response.status_code == 400
        assert response.json()["type"] == "error"
        with pytest.raises(openai.APIStatusError) as info:
            oai(mock).chat.completions.create(model="echo", messages=user("x" * 2000))
        assert info.value.status_code == 413
        response = httpx.post(
            f"{mock.url}/v1/chat/completions",
            json={"model": "echo", "messages": user()},
            headers={"x-mock-fault": "boom"},
        )
        assert response.status_code == 400 and "x-mock-fault" in response.text


def test_client_disconnect_is_recorded(mock: MockServer) -> None:
    client = oai(mock, default_headers={"x-mock-token-ms": "50"})
    stream = client.chat.completions.create(
        model="lorem", messages=user(), stream=True, max_tokens=100
    )
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        outcomes = [r.get("outcome") for r in mock.app.records if r.get("model") == "lorem"]
        if outcomes and outcomes[-1] == "disconnected":
            break
        time.sleep(0.02)
    assert outcomes[-1] == "disconnected"
    listed = httpx.get(f"{mock.url}/mock/requests").json()
    assert any(r.get("outcome") == "disconnected" for r in listed)


def test_models_are_listed_in_openai_shape(mock: MockServer) -> None:
    ids = [m.id for m in oai(mock).models.list()]
    assert ids == ["echo", "lorem", "think", "tool", "tools"]


def test_tokenrelay_mock_command_serves_until_stopped() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenrelay", "mock", "--port", str(port), "--token-ms", "1"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x") as client:
            answer = client.chat.completions.create(model="echo", messages=user("hi there"))
        assert answer.choices[0].message.content == "hi there"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert f"http://127.0.0.1:{port}/v1" in err
