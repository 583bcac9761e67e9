"""tokenrelay chat: a conversation with a real gateway, resumed across network drops."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from tests.asgi_servers import run_server
from tests.cutting_proxy import CuttingProxy
from tokenrelay.chat import COMMANDS, ChatSession, parse_command
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


# --- the terminal's commands -------------------------------------------------------------------


def chat_command(gateway: str, lines: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``tokenrelay chat`` as a user runs it, typing ``lines``; answers come on stdout,
    everything else on stderr."""
    result = subprocess.run(
        [sys.executable, "-m", "tokenrelay", "chat", "--url", gateway, *args],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},  # rich wraps at 80 columns otherwise
    )
    assert result.returncode == 0, result.stderr
    return result


def usages(stderr: str) -> list[tuple[str, int, int]]:
    """Each answer's (model, input tokens, output tokens), from the line after it."""
    return [
        (model, int(i), int(o))
        for model, i, o in re.findall(
            r"^(\S+) · first token \d+ ms · (\d+) in / (\d+) out", stderr, re.M
        )
    ]


def test_the_banner_says_every_command(gateway: str) -> None:
    result = chat_command(gateway, ["/exit"], "--model", "echo")
    banner = result.stderr.splitlines()
    assert gateway in banner[0] and "echo" in banner[0]
    assert all(f"/{c.name}" in banner[1] for c in COMMANDS)
    assert usages(result.stderr) == [] and result.stdout.count("you>") == 1


def test_help_lists_the_commands_and_sends_nothing(gateway: str) -> None:
    result = chat_command(gateway, ["/help", "/HELP"], "--model", "echo")
    for command in COMMANDS:
        assert result.stderr.count(command.help) == 2
        assert f"/{command.name} {command.usage}".strip() in result.stderr
    assert usages(result.stderr) == []  # nothing was asked
    assert "help" not in result.stdout.replace("you>", "")


def test_an_unknown_command_says_so_and_sends_nothing(gateway: str) -> None:
    result = chat_command(
        gateway, ["/frobnicate the thing", "/quit", "never read"], "--model", "echo"
    )
    assert "unknown command /frobnicate (/help lists them)" in result.stderr
    assert usages(result.stderr) == []
    assert "never read" not in result.stdout  # /quit ended the chat


def test_paths_and_double_slashes_are_prompts(gateway: str) -> None:
    result = chat_command(gateway, ["/etc/hosts maps names", "//help me out"], "--model", "echo")
    assert [m for m, _, _ in usages(result.stderr)] == ["echo", "echo"]
    assert "/etc/hosts maps names" in result.stdout
    assert "/help me out" in result.stdout and "//help" not in result.stdout


def test_model_lists_the_gateways_models_and_switches(gateway: str) -> None:
    result = chat_command(
        gateway, ["/model", "/model lorem", "hi", "/model nope", "hi again"], "--model", "echo"
    )
    assert "* echo\n  lorem\n" in result.stderr  # the current one marked
    assert "model: lorem" in result.stderr
    assert "no model 'nope' here; /model lists them" in result.stderr
    assert [m for m, _, _ in usages(result.stderr)] == ["lorem", "lorem"]
    assert "lorem ipsum dolor" in result.stdout  # lorem answered, not echo
    # Without --model the first is used, and /model marks it.
    assert "* echo\n" in chat_command(gateway, ["/model"]).stderr


def test_new_starts_a_new_conversation(gateway: str) -> None:
    result = chat_command(gateway, ["hello", "hello", "/new", "hello"], "--model", "echo")
    (_, first, _), (_, second, _), (_, fresh, _) = usages(result.stderr)
    assert second > first  # the second turn carried the first
    assert fresh == first  # /new: the history is gone
    assert "new conversation" in result.stderr


def test_system_sets_shows_and_removes_the_system_prompt(gateway: str) -> None:
    lines = ["hello", "/new", "/system Answer like a pirate.", "hello", "/system", "/new"]
    lines += ["/system off", "hello"]
    result = chat_command(gateway, lines, "--model", "echo")
    (_, plain, _), (_, with_system, _), (_, without, _) = usages(result.stderr)
    assert with_system > plain and without == plain
    assert result.stderr.count("system prompt: Answer like a pirate.") == 2  # set, shown
    assert "system prompt: (none)" in result.stderr


def test_retry_asks_the_last_question_again_in_place_of_its_answer(gateway: str) -> None:
    result = chat_command(
        gateway, ["/retry", "first", "second", "/retry", "/retry", "third"], "--model", "echo"
    )
    assert "no question to ask again" in result.stderr
    counts = [i for _, i, _ in usages(result.stderr)]
    assert len(counts) == 5
    first, second, again, again2, third = counts
    assert second > first
    assert again == again2 == second  # the conversation did not grow
    assert third > second
    assert result.stdout.count("second") == 3


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("/help", ("help", "")),
        ("  /Model   gpt-4o  ", ("model", "gpt-4o")),
        ("/system be\nbrief", ("system", "be\nbrief")),
        ("/quit", ("exit", "")),
        ("/nope x", ("nope", "x")),
        ("hello", None),
        ("/etc/hosts", None),
        ("//help", None),
        ("/ help", None),
        ("/42", None),
    ],
)
def test_a_line_is_a_command_when_its_first_word_is_a_slash_and_letters(
    line: str, parsed: tuple[str, str] | None
) -> None:
    assert parse_command(line) == parsed


def test_retry_keeps_the_conversation_when_there_is_nothing_to_ask(gateway: str) -> None:
    session = ChatSession(gateway, "echo")
    try:
        with pytest.raises(ValueError, match="no question"):
            session.retry()
        session.ask("one")
        session.system = "be brief"
        again = session.retry()
        assert again.text == "one"
        assert session.messages == [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "one"},
        ]
        session.clear()
        assert session.messages == [] and session.system == "be brief"
    finally:
        session.close()


def test_retry_after_a_refused_question_asks_that_question(gateway: str) -> None:
    session = ChatSession(gateway, "echo")
    try:
        session.ask("one")
        session.model = "gpt-nope"
        with pytest.raises(ResponseError):
            session.ask("two")  # refused: not in the conversation
        assert [m["content"] for m in session.messages] == ["one", "one"]
        session.model = "echo"
        again = session.retry()
        assert again.text == "two"  # the refused question, not "one"
        assert [m["content"] for m in session.messages] == ["one", "one", "two", "two"]
        assert session.retry().text == "two"  # now the last question in the conversation
        assert len(session.messages) == 4
    finally:
        session.close()
