"""Named client keys at the gateway: their limits (models, concurrent generations,
requests and tokens per minute: 404/429 in the caller's dialect, with ``retry-after``,
before any upstream call), their usage (Prometheus counters matching the mock's exact
token counts) and the one log line each request leaves at its end (its fields, and never
a prompt, an answer or a key). Over real loopback HTTP, with the official SDKs."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.asgi_servers import run_server
from tests.dialect_helpers import anthropic_client, openai_client
from tokenrelay.gateway import create_app, parse_config
from tokenrelay.gateway.config import ConfigError
from tokenrelay.gateway.requestlog import Exchange
from tokenrelay.mock import MockServer

SECRETS = {
    "ALICE": "sk-alice-9f8e7d",
    "BOB": "sk-bob-1a2b3c",
    "CAROL": "sk-carol-77aa",
    "DAVE": "sk-dave-0c0c",
    "ERIN": "sk-erin-5e5e",
    "FRANK": "sk-frank-6f6f",
}
PROMPT = "the secret prompt words"


def config(mock_url: str, **gateway: Any) -> Any:
    return parse_config(
        {
            "gateway": {"ping_seconds": 5, **gateway},
            "providers": [
                {"name": "up", "kind": "openai", "base_url": mock_url + "/v1"},
                {"name": "slow", "kind": "mock", "options": {"token_ms": 20}},
            ],
            "models": [
                {"name": "echo", "route": ["up:echo"]},
                {"name": "flaky", "route": ["up:echo@503;times=1"]},
                {"name": "lorem", "route": ["slow:lorem"]},
            ],
            "keys": [
                {"name": "alice", "secret_env": "ALICE", "requests_per_minute": 3},
                {"name": "bob", "secret_env": "BOB", "models": ["echo", "lorem"], "max_streams": 1},
                {"name": "carol", "secret_env": "CAROL", "tokens_per_minute": 100},
                {"name": "dave", "secret_env": "DAVE"},
                # Per-minute limits make admission await the store: the race to close.
                {
                    "name": "erin",
                    "secret_env": "ERIN",
                    "max_streams": 1,
                    "requests_per_minute": 1000,
                    "tokens_per_minute": 100000,
                },
                {"name": "frank", "secret_env": "FRANK", "requests_per_minute": 1000},
            ],
        },
        env=SECRETS,
    )


@pytest.fixture
def gateway(mock: MockServer) -> Iterator[str]:
    """A fresh gateway per test: the per-minute windows start empty."""
    with run_server(create_app(config(mock.url)), lifespan="on") as url:
        yield url


def chat(url: str, secret: str, model: str = "echo", **kw: Any) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": PROMPT}], **kw},
        headers={"authorization": f"Bearer {secret}"},
        timeout=30,
    )


def upstream_calls(mock: MockServer) -> int:
    return len(httpx.get(mock.url + "/mock/requests").json())


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "env", "says"),
    [
        ({"name": "a", "secret": "sk-x"}, {}, "secret_env"),
        ({"name": "a", "secret_env": "NOPE"}, {}, "NOPE is not set"),
        ({"name": "a", "secret_env": "K", "models": ["gpt-9"]}, {"K": "s"}, "gpt-9"),
        ({"name": "", "secret_env": "K"}, {"K": "s"}, "name"),
        ({"name": "a", "secret_env": "K", "requests_per_minute": 0}, {"K": "s"}, "requests"),
        ({"name": "a", "secret_env": "K", "burst": 3}, {"K": "s"}, "burst"),
    ],
)
def test_a_bad_key_table_names_what_to_fix(
    key: dict[str, Any], env: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_config(
            {
                "models": [{"name": "m", "route": ["p:x"]}],
                "providers": [{"name": "p", "kind": "mock"}],
                "keys": [key],
            },
            env=env,
        )


def test_two_keys_may_not_share_a_name_or_a_secret_and_secrets_never_print() -> None:
    base: dict[str, Any] = {"providers": [{"name": "p", "kind": "mock"}], "models": []}
    same_name = [{"name": "a", "secret_env": "A"}, {"name": "a", "secret_env": "B"}]
    same_secret = [{"name": "a", "secret_env": "A"}, {"name": "b", "secret_env": "B"}]
    with pytest.raises(ConfigError, match="name"):
        parse_config({**base, "keys": same_name}, env={"A": "x", "B": "y"})
    with pytest.raises(ConfigError, match="secret"):
        parse_config({**base, "keys": same_secret}, env={"A": "x", "B": "x"})
    loaded = parse_config({**base, "keys": same_secret}, env={"A": "sk-1", "B": "sk-2"})
    assert "sk-1" not in repr(loaded) and "sk-1" not in repr(loaded.keys)


# --- limits ------------------------------------------------------------------------------------


def test_requests_per_minute_answer_429_with_retry_after_before_any_upstream_call(
    gateway: str, mock: MockServer
) -> None:
    for _ in range(3):
        assert chat(gateway, SECRETS["ALICE"]).status_code == 200
    before = upstream_calls(mock)
    with openai_client(gateway + "/v1", SECRETS["ALICE"]) as oai:
        with pytest.raises(openai.RateLimitError) as refused:
            oai.with_options(max_retries=0).chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "hi"}]
            )
    assert "requests_per_minute" in refused.value.message and "alice" in refused.value.message
    wait = int(refused.value.response.headers["retry-after"])
    assert 1 <= wait <= 60
    with anthropic_client(gateway, SECRETS["ALICE"]) as claude:
        with pytest.raises(anthropic.RateLimitError):
            claude.with_options(max_retries=0).messages.create(
                model="echo", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
    assert upstream_calls(mock) == before  # refused before any upstream call
    assert chat(gateway, SECRETS["BOB"]).status_code == 200  # another key is not limited
    assert (
        metric(gateway, "tokenrelay_limited_total", key="alice", limit="requests_per_minute") == 2
    )


def test_a_key_uses_only_its_models_and_sees_only_them(gateway: str, mock: MockServer) -> None:
    """Another model does not exist for a key: the same 404 as a name never configured,
    so a key cannot list what it may not use by asking."""
    before = upstream_calls(mock)
    refused = chat(gateway, SECRETS["BOB"], model="flaky")
    unknown = chat(gateway, SECRETS["BOB"], model="nope")
    assert refused.status_code == unknown.status_code == 404
    error = refused.json()["error"]
    assert error["param"] == "model" and "does not exist" in error["message"]
    assert error["message"].replace("'flaky'", "'nope'") == unknown.json()["error"]["message"]
    assert "flaky" not in unknown.json()["error"]["message"]  # the list names its own only
    assert upstream_calls(mock) == before
    with openai_client(gateway + "/v1", SECRETS["BOB"]) as oai:
        assert [m.id for m in oai.models.list()] == ["echo", "lorem"]
    with openai_client(gateway + "/v1", SECRETS["ALICE"]) as oai:
        assert [m.id for m in oai.models.list()] == ["echo", "flaky", "lorem"]


def test_max_streams_counts_a_key_s_running_generations(gateway: str) -> None:
    body = {"model": "lorem", "max_tokens": 60, "stream": True,
            "messages": [{"role": "user", "content": "go"}]}  # fmt: skip
    headers = {"authorization": f"Bearer {SECRETS['BOB']}"}
    with httpx.stream(
        "POST", gateway + "/v1/chat/completions", json=body, headers=headers
    ) as first:
        assert first.status_code == 200
        second = chat(gateway, SECRETS["BOB"], stream=True)
        assert second.status_code == 429 and "max_streams" in second.json()["error"]["message"]
        assert second.headers["retry-after"] == "1"
        assert chat(gateway, SECRETS["ALICE"]).status_code == 200  # others are not held
        first.read()
    deadline = time.monotonic() + 5
    while (again := chat(gateway, SECRETS["BOB"])).status_code == 429:
        assert time.monotonic() < deadline, again.text  # the stream has ended: counted out
        time.sleep(0.05)
    assert again.status_code == 200


def test_tokens_per_minute_count_what_finished_requests_used(
    gateway: str, mock: MockServer
) -> None:
    """A request is admitted while the minute's tokens plus its prompt's estimate (a
    token per four bytes) stay within the limit; its own tokens count when it ends."""
    used: list[int] = []
    for _ in range(20):
        answer = chat(gateway, SECRETS["CAROL"])
        if answer.status_code != 200:
            break
        usage = answer.json()["usage"]
        used.append(usage["prompt_tokens"] + usage["completion_tokens"])
    assert answer.status_code == 429 and len(used) >= 2, (answer.text, used)
    message = answer.json()["error"]["message"]
    assert "tokens_per_minute" in message and int(answer.headers["retry-after"]) >= 1
    counted, asked = map(
        int, re.findall(r"(\d+) of 100 tokens used this minute, about (\d+)", message)[0]
    )
    assert counted == sum(used)
    assert counted + asked > 100 >= counted - used[-1] + asked  # refused now, admitted before


# --- usage and the log line ---------------------------------------------------------------


def test_usage_counters_match_the_upstream_s_exact_counts(gateway: str) -> None:
    answers = [chat(gateway, SECRETS["BOB"]) for _ in range(2)]
    streamed = chat(gateway, SECRETS["BOB"], stream=True, stream_options={"include_usage": True})
    usage = [a.json()["usage"] for a in answers]
    last = [
        json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")
    ]
    usage.append(last[-1]["usage"])
    prompt = sum(u["prompt_tokens"] for u in usage)
    output = sum(u["completion_tokens"] for u in usage)
    labels = {"key": "bob", "model": "echo", "estimated": "false"}
    assert metric(gateway, "tokenrelay_key_tokens_total", direction="input", **labels) == prompt
    assert metric(gateway, "tokenrelay_key_tokens_total", direction="output", **labels) == output
    assert (
        metric(gateway, "tokenrelay_key_requests_total", key="bob", model="echo", status="200") == 3
    )
    assert chat(gateway, "sk-wrong").status_code == 401
    assert metric(gateway, "tokenrelay_key_requests_total", key="", status="401") == 1
    assert SECRETS["BOB"] not in httpx.get(gateway + "/metrics").text


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def request_lines() -> Iterator[Lines]:
    logger = logging.getLogger("tokenrelay.requests")
    handler, level = Lines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def wait_lines(handler: Lines, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while len(handler.lines) < n:
        assert time.monotonic() < deadline, handler.lines
        time.sleep(0.02)
    return [json.loads(line) for line in handler.lines]


def test_an_answer_that_comes_whole_is_sent_before_its_line_is_written(
    request_lines: Lines,
) -> None:
    # The fake LLM unpaced gives the whole answer in one step of the producer: the stream
    # ends before its handler has sent the head; the line's formatting and write to
    # stderr wait for the answer to be on its way.
    app = create_app(
        parse_config(
            {
                "gateway": {"log_format": "json"},
                "providers": [{"name": "now", "kind": "mock"}],
                "models": [{"name": "echo", "route": ["now:echo"]}],
            },
            env={},
        )
    )
    order: list[str] = []

    class Marks(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            order.append("line")

    async def server(scope: Any, receive: Any, send: Any) -> None:
        # The app gets this as the server's own send (no middleware: its direct path).
        async def recording(message: Any) -> None:
            if message["type"] == "http.response.start":
                order.append("head")
            await send(message)

        await app(scope, receive, recording if scope["type"] == "http" else send)

    marks = Marks()
    logging.getLogger("tokenrelay.requests").addHandler(marks)
    try:
        with run_server(server, lifespan="on") as url:
            body = {
                "model": "echo",
                "stream": True,
                "messages": [{"role": "user", "content": "a b"}],
            }
            answered = httpx.post(url + "/v1/chat/completions", json=body)
            assert answered.status_code == 200 and "[DONE]" in answered.text
            assert wait_lines(request_lines, 1)[0]["end"] == "completed"
    finally:
        logging.getLogger("tokenrelay.requests").removeHandler(marks)
    assert order == ["head", "line"]


def test_one_json_line_per_request_at_its_end_never_a_prompt_answer_or_key(
    mock: MockServer, request_lines: Lines
) -> None:
    app = create_app(config(mock.url, log_format="json"))
    with run_server(app, lifespan="on") as url:
        streamed = chat(url, SECRETS["BOB"], stream=True)
        stream_id = streamed.headers["x-stream-id"]
        retried = chat(url, SECRETS["ALICE"], model="flaky")  # a 503, then a retry
        refused = chat(url, SECRETS["BOB"], model="flaky")
        unauthorised = chat(url, "sk-wrong")
        assert [r.status_code for r in (streamed, retried, refused, unauthorised)] == [
            200,
            200,
            404,
            401,
        ]
        lines = wait_lines(request_lines, 4)
    first, second, third, fourth = lines
    assert first["stream"] == stream_id and first["key"] == "bob"
    assert first["dialect"] == "openai_chat" and first["endpoint"] == "/v1/chat/completions"
    assert (first["model"], first["route"], first["attempts"]) == ("echo", "up:echo", 1)
    assert (first["status"], first["end"], first["estimated"]) == (200, "completed", False)
    assert first["ttft_ms"] > 0 and first["duration_ms"] >= first["ttft_ms"]
    assert first["input_tokens"] > 0 and first["output_tokens"] == len(PROMPT.split())
    assert second["route"] == "up:echo@503;times=1" and second["attempts"] == 2
    assert second["status"] == 200 and second["stream"] is None  # not streamed
    assert (third["status"], third["end"], third["key"]) == (404, "refused", "bob")
    assert (fourth["status"], fourth["key"], fourth["model"]) == (401, None, None)
    everything = "\n".join(request_lines.lines)
    for secret in [*SECRETS.values(), "sk-wrong", "secret prompt"]:
        assert secret not in everything


def test_a_stream_s_line_waits_for_its_generation_to_end(
    mock: MockServer, request_lines: Lines
) -> None:
    """The client leaves after the first token; the generation goes on for the grace
    period, and the line is written when it ends (``disconnected``), not before."""
    app = create_app(config(mock.url, grace_seconds=0.5))

    async def leave_early(url: str) -> None:
        body = {"model": "lorem", "max_tokens": 500, "stream": True,
                "messages": [{"role": "user", "content": "go"}]}  # fmt: skip
        headers = {"authorization": f"Bearer {SECRETS['ALICE']}"}
        async with httpx.AsyncClient() as client:
            async with client.stream(
                "POST", url + "/v1/chat/completions", json=body, headers=headers
            ) as response:
                async for _ in response.aiter_lines():
                    break

    with run_server(app, lifespan="on") as url:
        asyncio.run(leave_early(url))
        assert request_lines.lines == []  # still generating, for a resume
        deadline = time.monotonic() + 10
        while not request_lines.lines:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    line = request_lines.lines[0]
    assert " end=disconnected" in line and " status=200" in line and " key=alice" in line
    assert line.startswith("stream=str_")


def test_a_prompt_larger_than_the_key_s_tokens_per_minute_is_refused_at_once(
    gateway: str, mock: MockServer
) -> None:
    before = upstream_calls(mock)
    huge = chat(gateway, SECRETS["CAROL"], messages=[{"role": "user", "content": "x" * 800}])
    assert huge.status_code == 429 and "retry-after" not in huge.headers  # waiting won't help
    assert "request too large" in huge.json()["error"]["message"]
    assert upstream_calls(mock) == before


async def simultaneous(url: str, secret: str, n: int) -> list[int]:
    """``n`` streamed requests that arrive together (every connection open first, then
    each request written at once), and the status of each."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(
        {
            "model": "lorem",
            "max_tokens": 40,
            "stream": True,
            "messages": [{"role": "user", "content": "go"}],
        }
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}:{port}\r\n"
        f"authorization: Bearer {secret}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(n)]
    for _, writer in connections:
        writer.write(head + body)
    statuses = []
    for reader, writer in connections:
        status = int((await reader.readline()).split()[1])
        await reader.read()  # to the end: the stream runs out, or the refusal
        writer.close()
        statuses.append(status)
    return statuses


def test_a_text_line_quotes_the_values_that_would_break_it() -> None:
    # key=value pairs stay one line and parseable whatever a key's or a model's name is.
    exchange = Exchange("/v1/chat/completions", "openai_chat", "text", True)
    exchange.key, exchange.model = 'a "b"=c', "m\nx"
    line = exchange.line()
    assert 'key="a \\"b\\"=c"' in line and 'model="m\\nx"' in line and "\n" not in line
    exchange.key, exchange.model = "alice", "gpt-4o"
    line = exchange.line()
    assert "key=alice" in line and "model=gpt-4o" in line
