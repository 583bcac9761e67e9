"""tokenrelay chat: a conversation with a real gateway, resumed across network drops."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from tests.asgi_servers import run_server
from tests.cutting_proxy import CuttingProxy
from tokenrelay.chat import ChatSession
from tokenrelay.errors import ResponseError
from tokenrelay.gateway import create_app, parse_config

TEXT = "The quick brown fox jumps over the lazy dog " * 6


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    config = parse_config(
        {
            "gateway": {"grace_seconds": 5},
            "providers": [{"name": "m", "kind": "mock", "options": {"token_ms": 4}}],
            "models": [{"name": "echo", "route": ["m:echo"]},
                       {"name": "lorem", "route": ["m:lorem"]}],
        },
        env={},
    )  # fmt: skip
    with run_server(create_app(config), lifespan="on") as url:
        yield url


def test_a_conversation_keeps_its_turns(gateway: str) -> None:
    session = ChatSession(gateway)
    try:
        first = session.ask("hello there")
        assert first.text == "hello there" and session.model == "echo"
        assert first.ttft is not None and first.resumes == 0
        usage = first.completion.usage
        assert usage is not None and usage.output_tokens == 2
        second = session.ask("again")
        assert second.text == "again"
        assert [m["role"] for m in session.messages] == ["user", "assistant"] * 2
    finally:
        session.close()


@pytest.mark.parametrize("cut", [300, 700, 1500, 3000])
def test_a_dropped_stream_resumes_where_it_broke_with_nothing_lost_or_doubled(
    gateway: str, cut: int
) -> None:
    proxy = CuttingProxy(urlparse(gateway).port or 0, [cut, None, None])
    with proxy.running() as url:
        notices: list[int] = []
        session = ChatSession(url, "echo", on_resume=lambda n, exc: notices.append(n))
        try:
            reply = session.ask(TEXT)
        finally:
            session.close()
    assert reply.text == TEXT
    assert reply.resumes == 1 and notices == [1]
    assert proxy.connections == 2  # the POST, then one GET /v1/streams/{id}: one generation


def test_an_unknown_model_is_the_gateways_error(gateway: str) -> None:
    session = ChatSession(gateway, "gpt-nope")
    try:
        with pytest.raises(ResponseError) as info:
            session.ask("hi")
        assert info.value.status == 404
        assert session.messages == []
    finally:
        session.close()


def test_tokenrelay_chat_command_round_trip(gateway: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokenrelay", "chat", "--url", gateway, "--model", "echo"],
        input="hi from the shell\n/exit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "hi from the shell" in result.stdout
    assert "first token" in result.stderr
