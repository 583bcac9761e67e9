"""Providers against the fake LLM: every HTTP kind over real loopback, and in-process.

Each HTTP kind talks to `tokenrelay.mock.MockServer` in its own dialect; the in-process
`MockProvider` must answer as the server does. Faults are named in the `x-mock-fault`
header for HTTP kinds (Gemini carries the model in the URL path, where `drop:3` cannot
go) and after `@` in the model name for the in-process mock.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import replace
from email.utils import formatdate
from typing import Any

import pytest

from tests.asgi_servers import free_port, run_server
from tokenrelay.llm import (
    OPENAI_CHAT,
    Completion,
    Delta,
    ErrorKind,
    Message,
    Request,
    Start,
    StreamError,
    TextDelta,
    TextPart,
    Tool,
    accumulate,
    to_wire,
)
from tokenrelay.mock import ConnectionDropped, MockServer, script
from tokenrelay.providers import (
    HTTP_KINDS,
    PROVIDER_KINDS,
    HTTPProvider,
    MockProvider,
    Provider,
    ProviderConfig,
    UpstreamError,
    create_provider,
)
from tokenrelay.providers.http import KINDS as KIND_TABLE
from tokenrelay.providers.http import parse_retry_after

MESSAGE = "Hello wörld, streams are 👋 fun"
KEY = "sk-test-very-secret-0123456789"
WEATHER = Tool(
    "get_weather",
    "Weather in a city",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)
REQUEST = Request("client-model", (Message("user", (TextPart(MESSAGE),)),), tools=(WEATHER,))
HTTP = list(HTTP_KINDS)
ALL = [*HTTP, "mock"]

Scope = MutableMapping[str, Any]
ASGI = Callable[[Scope, Any, Any], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class HeaderRecorder:
    """The mock server's app, recording each request's headers on the way in."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers: list[dict[str, str]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    server = MockServer()
    server.app = HeaderRecorder(server.app)  # type: ignore[assignment]
    with server:
        yield server


def records(mock: MockServer) -> Any:
    return mock.app.app.records  # type: ignore[attr-defined]


def seen_headers(mock: MockServer) -> list[dict[str, str]]:
    return mock.app.headers  # type: ignore[attr-defined,no-any-return]


def base_url(kind: str, url: str) -> str:
    return url + "/v1" if kind == "openai" else url


@asynccontextmanager
async def provider(
    kind: str, mock: MockServer | None = None, *, url: str = "", **config: Any
) -> AsyncIterator[Provider]:
    """A provider of ``kind`` pointed at ``mock`` (or ``url``), closed afterwards."""
    if mock is not None:
        url = mock.url
    base = base_url(kind, url) if kind in HTTP_KINDS else ""
    p = create_provider(ProviderConfig("up", kind, base_url=base, **config))
    try:
        yield p
    finally:
        await p.aclose()


def with_fault(kind: str, model: str, fault: str) -> tuple[str, dict[str, str]]:
    """The model name and headers that ask ``kind``'s upstream for ``fault``."""
    if kind == "mock":
        return f"{model}@{fault}", {}
    return model, {"x-mock-fault": fault}


async def collect(p: Provider, model: str, request: Request = REQUEST) -> list[Delta]:
    return [delta async for delta in p.stream(request, model)]


async def attempt(
    kind: str, mock: MockServer, model: str, fault: str = "", **config: Any
) -> list[Delta]:
    headers: dict[str, str] = {}
    if fault:
        model, headers = with_fault(kind, model, fault)
    async with provider(kind, mock, headers=headers, **config) as p:
        return await collect(p, model)


def expected(model: str) -> Completion:
    return accumulate(script(replace(REQUEST, model=model, stream=True), id="expected").deltas)


def texts(deltas: list[Delta]) -> list[str]:
    return [d.text for d in deltas if isinstance(d, TextDelta)]


# --- answers ---------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("model", ["echo", "tool", "think"])
@pytest.mark.parametrize("kind", ALL)
async def test_deltas_accumulate_to_the_mock_answer(
    kind: str, model: str, mock: MockServer
) -> None:
    deltas = await attempt(kind, mock, model)
    got, want = accumulate(deltas), expected(model)
    assert not any(isinstance(d, StreamError) for d in deltas)
    assert got.usage is not None and want.usage is not None
    assert (got.usage.input_tokens, got.usage.output_tokens) == (
        want.usage.input_tokens,
        want.usage.output_tokens,
    )
    [choice], [answer] = got.choices, want.choices
    assert choice.text == answer.text
    assert choice.reasoning == answer.reasoning
    assert choice.finish is not None and answer.finish is not None
    assert choice.finish.reason == answer.finish.reason
    calls = [(c.name, json.loads(c.arguments)) for c in choice.tool_calls]
    assert calls == [(c.name, json.loads(c.arguments)) for c in answer.tool_calls]
    if model == "tool":
        assert calls == [("get_weather", {"city": MESSAGE, "days": 1})]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ALL)
async def test_text_arrives_word_by_word(kind: str, mock: MockServer) -> None:
    deltas = await attempt(kind, mock, "echo")
    assert "".join(texts(deltas)) == MESSAGE
    assert len(texts(deltas)) == len(MESSAGE.split())


# --- errors before the first delta -------------------------------------------------------

STATUS_FAULTS = [
    # fault, kind, status, retryable, retry_after
    ("429;retry-after=2", ErrorKind.RATE_LIMIT, 429, True, 2.0),
    ("500", ErrorKind.SERVER, 500, True, None),
    ("529", ErrorKind.OVERLOADED, 529, True, None),
    # The upstream refusing the gateway's key is the gateway's fault: a 502, never the
    # client's own 401 (its SDK would blame the client's key).
    ("401", ErrorKind.SERVER, 502, False, None),
    ("403", ErrorKind.SERVER, 502, False, None),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fault", "error_kind", "status", "retryable", "retry_after"), STATUS_FAULTS
)
@pytest.mark.parametrize("kind", ALL)
async def test_status_fault_raises_upstream_error(
    kind: str,
    fault: str,
    error_kind: ErrorKind,
    status: int,
    retryable: bool,
    retry_after: float | None,
    mock: MockServer,
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await attempt(kind, mock, "echo", fault)
    error = caught.value
    assert (error.error.kind, error.error.status) == (error_kind, status)
    assert error.retryable is retryable
    assert error.retry_after == retry_after


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ALL)
async def test_unknown_model_is_not_found_and_not_retryable(kind: str, mock: MockServer) -> None:
    with pytest.raises(UpstreamError) as caught:
        await attempt(kind, mock, "no-such-model")
    assert caught.value.error.kind == ErrorKind.NOT_FOUND
    assert caught.value.error.status == 404
    assert not caught.value.retryable


@pytest.mark.anyio
@pytest.mark.parametrize("kind", HTTP)
async def test_connection_refused_is_a_retryable_upstream_error(kind: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with provider(kind, url=url, api_key=KEY, connect_timeout=2) as p:
        with pytest.raises(UpstreamError) as caught:
            await collect(p, "echo")
    assert caught.value.retryable
    assert caught.value.error.status == 502
    assert KEY not in str(caught.value)


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["drop:0", "error:0", "malformed:0"])
@pytest.mark.parametrize("kind", ALL)
async def test_failure_before_the_first_token_raises_retryable(
    kind: str, fault: str, mock: MockServer
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await attempt(kind, mock, "echo", fault)
    assert caught.value.retryable


# --- errors after the first delta ---------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ALL)
async def test_drop_after_k_tokens_ends_with_an_early_close_error(
    kind: str, mock: MockServer
) -> None:
    deltas = await attempt(kind, mock, "echo", "drop:3")
    assert texts(deltas) == texts(list(expected_deltas("echo")))[:3]
    assert deltas[-1] == StreamError(ErrorKind.SERVER, "upstream closed the stream early", 502)


def expected_deltas(model: str) -> tuple[Delta, ...]:
    return script(replace(REQUEST, model=model, stream=True), id="expected").deltas


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ALL)
async def test_in_band_error_after_k_tokens_is_a_stream_error(kind: str, mock: MockServer) -> None:
    deltas = await attempt(kind, mock, "echo", "error:2;kind=overloaded")
    assert texts(deltas) == texts(list(expected_deltas("echo")))[:2]
    last = deltas[-1]
    assert isinstance(last, StreamError)
    # Ollama's in-band error is a bare message: it carries no kind.
    assert last.kind == (ErrorKind.SERVER if kind == "ollama" else ErrorKind.OVERLOADED)
    assert "error:2" in last.message
    assert sum(isinstance(d, StreamError) for d in deltas) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ALL)
async def test_malformed_data_after_a_token_is_a_stream_error(kind: str, mock: MockServer) -> None:
    deltas = await attempt(kind, mock, "echo", "malformed:1")
    assert texts(deltas) == texts(list(expected_deltas("echo")))[:1]
    last = deltas[-1]
    assert isinstance(last, StreamError) and last.kind == ErrorKind.SERVER


@pytest.mark.anyio
async def test_fault_in_the_model_suffix_works_over_http(mock: MockServer) -> None:
    deltas = await attempt("openai", mock, "echo@drop:2")
    assert len(texts(deltas)) == 2
    assert isinstance(deltas[-1], StreamError)


# --- cancellation ------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", HTTP)
async def test_closing_the_stream_disconnects_the_upstream_at_once(
    kind: str, mock: MockServer
) -> None:
    # At once: well before the upstream's next token (300 ms), whose write would tell it.
    async with provider(kind, mock, headers={"x-mock-token-ms": "300"}) as p:
        stream = p.stream(REQUEST, "lorem")
        await stream.__anext__()
        record = records(mock)[-1]
        assert "outcome" not in record  # still streaming
        closed = time.monotonic()
        await stream.aclose()
        while record.get("outcome") != "disconnected":
            assert time.monotonic() - closed < 0.2, record
            await asyncio.sleep(0.002)
        # The next stream on the same provider opens a fresh connection and works.
        assert "".join(texts(await collect(p, "echo"))) == MESSAGE


@pytest.mark.anyio
async def test_closing_the_mock_provider_stops_its_generation() -> None:
    async with provider("mock", options={"token_ms": 1000}) as p:
        stream = p.stream(REQUEST, "lorem")
        await stream.__anext__()
        started = time.monotonic()
        await stream.aclose()
        assert time.monotonic() - started < 0.5  # not the next token's second


# --- keys ------------------------------------------------------------------------------------

KEY_HEADERS = {
    "openai": {"authorization": f"Bearer {KEY}"},
    "anthropic": {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
    "gemini": {"x-goog-api-key": KEY},
    "ollama": {"authorization": f"Bearer {KEY}"},
}


@pytest.mark.anyio
@pytest.mark.parametrize("kind", HTTP)
async def test_the_key_reaches_the_upstream_in_its_header(kind: str, mock: MockServer) -> None:
    await attempt(kind, mock, "echo", api_key=KEY)
    headers = seen_headers(mock)[-1]
    assert headers.items() >= KEY_HEADERS[kind].items()
    others = {"authorization", "x-api-key", "x-goog-api-key"} - set(KEY_HEADERS[kind])
    assert not others & set(headers)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", HTTP)
async def test_no_key_sends_no_key_header(kind: str, mock: MockServer) -> None:
    await attempt(kind, mock, "echo")
    assert not {"authorization", "x-api-key", "x-goog-api-key"} & set(seen_headers(mock)[-1])


@pytest.mark.anyio
@pytest.mark.parametrize("kind", HTTP)
async def test_the_key_appears_in_no_error_message(kind: str, mock: MockServer) -> None:
    for fault in ("401", "drop:0", "error:0", "500"):
        with pytest.raises(UpstreamError) as caught:
            await attempt(kind, mock, "echo", fault, api_key=KEY)
        assert KEY not in str(caught.value) and KEY not in caught.value.error.message
        assert KEY not in repr(caught.value.error)


def answering(status: int, content_type: str, body: bytes, headers: dict[str, str]) -> ASGI:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        raw = [(b"content-type", content_type.encode())]
        raw += [(k.encode(), v.encode()) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.anyio
async def test_an_upstream_echoing_the_key_has_it_scrubbed() -> None:
    body = json.dumps({"error": {"message": f"Bad request from key {KEY}."}}).encode()
    with run_server(answering(400, "application/json", body, {})) as url:
        async with provider("openai", url=url, api_key=KEY) as p:
            with pytest.raises(UpstreamError) as caught:
                await collect(p, "echo")
    assert KEY not in str(caught.value)
    assert "Bad request from key [redacted]" in caught.value.error.message
    assert caught.value.error.kind == ErrorKind.INVALID_REQUEST
    assert "secret" not in repr(caught.value) and "secret" not in repr(p)


@pytest.mark.anyio
async def test_an_upstream_refusing_the_key_is_a_502_told_to_the_operator(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {KEY}."}}).encode()
    with run_server(answering(401, "application/json", body, {})) as url:
        async with provider("openai", url=url, api_key=KEY) as p:
            with pytest.raises(UpstreamError) as caught:
                await collect(p, "echo")
    error = caught.value.error
    assert (error.kind, error.status, caught.value.retryable) == (ErrorKind.SERVER, 502, False)
    assert "refused the gateway's credentials (401)" in error.message
    assert KEY not in str(caught.value) and KEY not in caplog.text
    assert "check its API key" in caplog.text


# --- odd answers ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_200_that_is_not_an_event_stream_is_an_upstream_error() -> None:
    with run_server(answering(200, "text/html", b"<html>hello</html>", {})) as url:
        async with provider("openai", url=url) as p:
            with pytest.raises(UpstreamError) as caught:
                await collect(p, "echo")
    assert not caught.value.retryable
    assert "text/html" in str(caught.value)


@pytest.mark.anyio
async def test_a_whole_json_answer_to_a_streamed_request_is_read_as_deltas() -> None:
    completion = accumulate(expected_deltas("echo"))
    body = json.dumps(OPENAI_CHAT.render_response(completion)).encode()
    with run_server(answering(200, "application/json", body, {})) as url:
        async with provider("openai", url=url) as p:
            deltas = await collect(p, "echo")
    assert accumulate(deltas).choices[0].text == MESSAGE


@pytest.mark.anyio
async def test_an_error_body_is_read_no_further_than_64_kib() -> None:
    body = b'{"error": {"message": "' + b"x" * 200_000 + b'"}}'
    with run_server(answering(503, "application/json", body, {"retry-after-ms": "1500"})) as url:
        async with provider("openai", url=url) as p:
            with pytest.raises(UpstreamError) as caught:
                await collect(p, "echo")
    assert caught.value.retryable
    assert caught.value.retry_after == 1.5
    assert caught.value.error.status == 503
    assert len(caught.value.error.message) <= 64 * 1024


@pytest.mark.anyio
async def test_an_error_status_whose_body_is_cut_still_raises_by_status() -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", b"1000")]
        await send({"type": "http.response.start", "status": 502, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"error": {', "more_body": True})
        raise ConnectionDropped("cut the error body")

    with run_server(app) as url:
        async with provider("anthropic", url=url) as p:
            with pytest.raises(UpstreamError) as caught:
                await collect(p, "echo")
    assert (caught.value.error.status, caught.value.retryable) == (502, True)


@pytest.mark.anyio
async def test_an_empty_event_stream_is_an_upstream_error() -> None:
    with run_server(answering(200, "text/event-stream", b"", {})) as url:
        async with provider("openai", url=url) as p:
            with pytest.raises(UpstreamError) as caught:
                await collect(p, "echo")
    assert caught.value.retryable


def test_retry_after_is_read_from_ms_seconds_or_a_date() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    now = 1_800_000_000.0
    assert parse_retry_after({"retry-after": formatdate(now + 30, usegmt=True)}, now) == 30.0
    assert parse_retry_after({"retry-after": formatdate(now - 30, usegmt=True)}, now) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


# --- models ----------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic", "mock"])
async def test_models_lists_the_upstream_models(kind: str, mock: MockServer) -> None:
    async with provider(kind, mock) as p:
        assert await p.models() == ["echo", "lorem", "think", "tool", "tools"]


@pytest.mark.anyio
@pytest.mark.parametrize("kind", HTTP)
async def test_models_is_empty_when_the_upstream_cannot_list(kind: str) -> None:
    async with provider(kind, url=f"http://127.0.0.1:{free_port()}") as p:
        assert await p.models() == []


@pytest.mark.anyio
async def test_models_reads_the_gemini_and_ollama_list_shapes() -> None:
    body = json.dumps({"models": [{"name": "models/gemini-x"}, {"name": "llama3:8b"}]}).encode()
    with run_server(answering(200, "application/json", body, {})) as url:
        async with provider("gemini", url=url) as p:
            assert await p.models() == ["gemini-x", "llama3:8b"]


# --- the in-process mock -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_mock_provider_is_paced_by_its_options() -> None:
    async with provider("mock", options={"ttft_ms": 60, "token_ms": 20}) as p:
        started = time.monotonic()
        stamps = []
        async for delta in p.stream(REQUEST, "echo"):
            if isinstance(delta, TextDelta):
                stamps.append(time.monotonic() - started)
    assert 0.055 <= stamps[0] < 0.2
    words = len(MESSAGE.split())
    assert stamps[-1] >= 0.06 + 0.02 * (words - 1) - 0.005


@pytest.mark.anyio
async def test_mock_fault_times_fails_the_first_attempts_only() -> None:
    async with provider("mock") as p:
        with pytest.raises(UpstreamError):
            await collect(p, "echo@503;times=1")
        assert "".join(texts(await collect(p, "echo@503;times=1"))) == MESSAGE


@pytest.mark.anyio
async def test_mock_bad_fault_text_is_an_invalid_request() -> None:
    async with provider("mock") as p:
        with pytest.raises(UpstreamError) as caught:
            await collect(p, "echo@explode")
    assert caught.value.error.kind == ErrorKind.INVALID_REQUEST
    assert not caught.value.retryable


@pytest.mark.anyio
async def test_mock_tool_model_without_tools_is_an_invalid_request() -> None:
    async with provider("mock") as p:
        with pytest.raises(UpstreamError) as caught:
            await collect(p, "tool", replace(REQUEST, tools=()))
    assert caught.value.error.status == 400 and not caught.value.retryable


@pytest.mark.anyio
async def test_mock_stall_sleeps_then_ends_as_closed_early() -> None:
    async with provider("mock") as p:
        started = time.monotonic()
        deltas = await collect(p, "echo@stall:1;for=0.1")
    assert time.monotonic() - started >= 0.1
    assert len(texts(deltas)) == 1
    assert isinstance(deltas[-1], StreamError)


# --- the registry ---------------------------------------------------------------------------


def test_registry_builds_each_kind() -> None:
    assert {"openai", "anthropic", "gemini", "ollama", "mock"} <= set(PROVIDER_KINDS)
    for kind in HTTP_KINDS:
        assert isinstance(create_provider(ProviderConfig("p", kind)), HTTPProvider)
    assert isinstance(create_provider(ProviderConfig("p", "mock")), MockProvider)


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown kind 'nope'") as caught:
        create_provider(ProviderConfig("p", "nope"))
    for kind in ("openai", "anthropic", "gemini", "ollama", "mock"):
        assert kind in str(caught.value)


def test_base_url_defaults_to_the_kind_s_public_server() -> None:
    p = HTTPProvider(ProviderConfig("p", "anthropic"))
    assert p.base_url == "https://api.anthropic.com"
    assert HTTPProvider(ProviderConfig("p", "openai", base_url="http://h/v1/")).base_url == (
        "http://h/v1"
    )


def hostile_stream(kind: str, tail: str) -> tuple[str, bytes]:
    """``kind``'s stream with content, then an in-band error quoting the key ("error") or
    data that is not JSON quoting it ("malformed")."""
    dialect = KIND_TABLE[kind].dialect
    encoder = dialect.encoder(Request("m", (), stream=True))
    deltas: list[Delta] = [Start("s", "m"), TextDelta("hello")]
    if tail == "error":
        deltas.append(StreamError(ErrorKind.SERVER, f"boom, your key is {KEY}", 500))
    frames = [f for d in deltas for f in encoder.encode(d)]
    wire = to_wire(frames, dialect.framing)
    if tail == "malformed":
        garbage = f"{{not json Bearer {KEY}".encode()
        wire += garbage + b"\n" if dialect.framing == "ndjson" else b"data: " + garbage + b"\n\n"
    return dialect.media_type, wire


@pytest.mark.anyio
@pytest.mark.parametrize("tail", ["error", "malformed"])
@pytest.mark.parametrize("kind", HTTP)
async def test_the_key_is_scrubbed_from_what_an_upstream_sends_after_the_first_delta(
    kind: str, tail: str
) -> None:
    media_type, wire = hostile_stream(kind, tail)
    with run_server(answering(200, media_type, wire, {})) as url:
        async with provider(kind, url=base_url(kind, url), api_key=KEY) as p:
            deltas = await collect(p, "echo")
    assert "hello" in "".join(texts(deltas))
    error = deltas[-1]
    assert isinstance(error, StreamError), deltas
    assert KEY not in repr(error) and "Bearer" not in error.message


def redirecting(to: str) -> ASGI:
    return answering(307, "text/plain", b"moved", {"location": to})


@pytest.mark.anyio
@pytest.mark.parametrize("kind", HTTP)
async def test_an_upstream_redirect_is_not_followed_and_no_credential_leaves(
    kind: str, mock: MockServer
) -> None:
    before = len(seen_headers(mock))
    target = base_url(kind, mock.url) + "/chat/completions"
    headers = {"x-team-token": "team-secret-0123456789", "x-tenant": "acme"}
    with run_server(redirecting(target)) as url:
        async with provider(kind, url=base_url(kind, url), api_key=KEY, headers=headers) as p:
            with pytest.raises(UpstreamError) as caught:
                await collect(p, "echo")
    assert len(seen_headers(mock)) == before  # nothing (no key header) reached the other host
    error = caught.value.error
    assert (error.kind, error.status, caught.value.retryable) == (ErrorKind.SERVER, 502, False)
    assert "redirect (307)" in error.message


@pytest.mark.anyio
async def test_configured_secret_headers_are_scrubbed_too() -> None:
    body = json.dumps({"error": {"message": "token team-secret-0123456789 is bad"}}).encode()
    with run_server(answering(400, "application/json", body, {})) as url:
        headers = {"x-team-token": "team-secret-0123456789"}
        async with provider("openai", url=url, headers=headers) as p:
            with pytest.raises(UpstreamError) as caught:
                await collect(p, "echo")
    assert "team-secret" not in caught.value.error.message
    assert "token [redacted] is bad" in caught.value.error.message
