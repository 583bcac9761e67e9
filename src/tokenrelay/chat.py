"""``tokenrelay chat``: a conversation with any tokenrelay gateway, in the terminal.

``ChatSession`` is the reusable part (no terminal): it keeps the conversation, sends each
turn to ``POST /v1/chat/completions`` as a stream, and when the connection drops before
the stream's end it resumes from ``GET /v1/streams/{id}`` with the last event id it saw —
the same generation, continued exactly where it broke, never a second generation.

``ChatTerminal`` is the command: it reads lines, runs the ones that are commands
(``COMMANDS``, the one list the banner, ``/help`` and the parser read: ``/help``,
``/model [name]``, ``/new``, ``/system [text]``, ``/retry``, ``/exit``) and asks the rest,
rendering each answer live with rich (Markdown, re-rendered as tokens arrive). A line is
a command when its first word is ``/`` and letters; ``//text`` sends ``/text``.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from .client import Timeout, connect
from .errors import TokenRelayError, TransportError
from .llm import OPENAI_CHAT, Accumulator, Completion, Delta, ErrorKind, StreamError, TextDelta
from .sse import NO_RECONNECT

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["COMMANDS", "ChatSession", "ChatTerminal", "Command", "Reply", "parse_command"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: the completion, seconds to its first token, and how many times the
    stream was resumed after a drop."""

    completion: Completion
    ttft: float | None
    resumes: int

    @property
    def text(self) -> str:
        return self.completion.choices[0].text if self.completion.choices else ""


class ChatSession:
    """A conversation with a gateway at ``base_url`` (``http://host:port``)."""

    def __init__(
        self,
        base_url: str,
        model: str = "",
        *,
        api_key: str = "",
        client: httpx.Client | None = None,
        max_resumes: int = 5,
        timeout: Timeout | None = None,
        on_resume: Callable[[int, BaseException], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.system = ""
        """The system prompt sent before the conversation ("": none)."""
        self._unanswered: str | None = None
        self.messages: list[dict[str, Any]] = []
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client()
        self._owns_client = client is None
        self.max_resumes = max_resumes
        self.timeout = timeout or Timeout(connect=10, idle=120)
        self.on_resume = on_resume

    def models(self) -> list[str]:
        response = self._client.get(f"{self.base_url}/v1/models", headers=self._headers)
        response.raise_for_status()
        return [m["id"] for m in response.json()["data"]]

    def ask(self, text: str, on_delta: Callable[[Delta], None] | None = None) -> Reply:
        """Send ``text`` as the next user turn and stream the answer (``on_delta`` sees
        each delta as it arrives). The answer joins the conversation."""
        if not self.model:
            names = self.models()
            if not names:
                raise RuntimeError("the gateway serves no models")
            self.model = names[0]
        self.messages.append({"role": "user", "content": text})
        system = [{"role": "system", "content": self.system}] if self.system else []
        body = {
            "model": self.model,
            "messages": [*system, *self.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        try:
            reply = self._stream(body, on_delta)
        except BaseException:
            self.messages.pop()
            self._unanswered = text  # for retry(): not in the conversation, not lost
            raise
        self._unanswered = None
        error = reply.completion.error
        if error is None:
            self.messages.append({"role": "assistant", "content": reply.text})
        return reply

    def retry(self, on_delta: Callable[[Delta], None] | None = None) -> Reply:
        """Ask the last question again: the one whose ``ask`` raised (interrupted, or
        refused), else the last in the conversation, its answer taken out first; if the
        new attempt fails, the conversation is as it was."""
        if self._unanswered is not None:
            return self.ask(self._unanswered, on_delta)
        kept = list(self.messages)
        if self.messages and self.messages[-1]["role"] == "assistant":
            self.messages.pop()
        if not self.messages or self.messages[-1]["role"] != "user":
            self.messages[:] = kept
            raise ValueError("no question to ask again")
        question = self.messages.pop()
        try:
            return self.ask(question["content"], on_delta)
        except BaseException:
            self.messages[:] = kept
            raise

    def clear(self) -> None:
        """Start a new conversation (the model and the system prompt stay)."""
        self.messages.clear()
        self._unanswered = None

    def _stream(self, body: Mapping[str, Any], on_delta: Callable[[Delta], None] | None) -> Reply:
        decoder = OPENAI_CHAT.decoder()
        accumulator = Accumulator()
        started = time.perf_counter()
        ttft: float | None = None
        stream_id = ""
        last_id: str | None = None
        resumes = 0
        while True:
            if stream_id:
                url, method, json = f"{self.base_url}/v1/streams/{stream_id}", "GET", None
            else:
                url, method, json = f"{self.base_url}/v1/chat/completions", "POST", body
            opened: list[httpx.Response] = []

            def on_chunk(_: bytes, opened: list[httpx.Response] = opened) -> None:
                # The first body bytes: the response (and its x-stream-id) is known, even
                # if the connection breaks before a whole event arrives.
                if not opened and events.response is not None:
                    opened.append(events.response)

            try:
                with connect(
                    url,
                    method=method,
                    json=json,
                    headers=self._headers,
                    last_event_id=last_id,
                    client=self._client,
                    timeout=self.timeout,
                    reconnect=NO_RECONNECT,
                    on_chunk=on_chunk,
                ) as events:
                    try:
                        for event in events:
                            last_id = event.id or last_id
                            for delta in decoder.feed_event(event):
                                if ttft is None and isinstance(delta, TextDelta):
                                    ttft = time.perf_counter() - started
                                accumulator.add(delta)
                                if on_delta is not None:
                                    on_delta(delta)
                    finally:
                        if opened and not stream_id:
                            stream_id = opened[0].headers.get("x-stream-id", "")
                    if decoder.complete:
                        return Reply(accumulator.completion(), ttft, resumes)
                    raise TransportError("the stream ended before its end")
            except TransportError as exc:
                if not stream_id or resumes >= self.max_resumes:
                    if not stream_id:
                        raise
                    error = StreamError(ErrorKind.SERVER, f"gave up after {resumes} resumes: {exc}")
                    accumulator.add(error)
                    return Reply(accumulator.completion(), ttft, resumes)
                resumes += 1
                if self.on_resume is not None:
                    self.on_resume(resumes, exc)
                time.sleep(min(0.25 * 2 ** (resumes - 1), 4.0))

    def close(self) -> None:
        if self._owns_client:
            self._client.close()


@dataclass(frozen=True, slots=True)
class Command:
    """One command of the terminal chat: ``/name usage``, and what it does."""

    name: str
    usage: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command("help", "", "list these commands"),
    Command("model", "[name]", "list the gateway's models, or switch to one"),
    Command("new", "", "start a new conversation (model and system prompt stay)"),
    Command("system", "[text | off]", "show, set or remove the system prompt"),
    Command("retry", "", "ask the last question again, in place of its answer"),
    Command("exit", "", "leave (also /quit or Ctrl-D)"),
)
_ALIASES = {"quit": "exit"}
_COMMAND = re.compile(r"/([A-Za-z]+)(?:\s+(.*))?", re.DOTALL)


def parse_command(line: str) -> tuple[str, str] | None:
    """``(name, argument)`` when ``line`` is a command (``/model  gpt`` -> ``("model",
    "gpt")``; ``/quit`` -> ``("exit", "")``; an unknown ``/x`` -> ``("x", "")``), None
    when it is a prompt: text, a path such as ``/etc/hosts is…``, or ``//x`` (the prompt
    ``/x``, see ``prompt_text``)."""
    match = _COMMAND.fullmatch(line.strip())
    if match is None:
        return None
    name = match.group(1).lower()
    return _ALIASES.get(name, name), (match.group(2) or "").strip()


def prompt_text(line: str) -> str:
    """The prompt a line that is not a command sends: ``//x`` sends ``/x``."""
    stripped = line.lstrip()
    return stripped[1:] if stripped.startswith("//") else line


class ChatTerminal:
    """The ``tokenrelay chat`` command: answers to ``out``, everything else (banner,
    commands, timings, errors) to ``err``, so ``> answers.md`` keeps only the answers."""

    def __init__(self, session: ChatSession, *, out: Console, err: Console) -> None:
        self.session = session
        self.out = out
        self.err = err
        self._handlers: dict[str, Callable[[str], bool]] = {
            "help": self._help,
            "model": self._model,
            "new": self._new,
            "system": self._system,
            "retry": self._retry,
            "exit": lambda _: False,
        }
        assert set(self._handlers) == {c.name for c in COMMANDS}

    def run(self) -> None:
        """Until ``/exit``, ``/quit`` or the end of input."""
        self._banner()
        while True:
            try:
                line = self.out.input("[bold cyan]you>[/] ")
            except EOFError:
                return
            if not line.strip():
                continue
            command = parse_command(line)
            if command is None:
                self._ask(functools.partial(self.session.ask, prompt_text(line)))
                continue
            name, argument = command
            handler = self._handlers.get(name)
            if handler is None:
                self._say(f"unknown command /{name} (/help lists them)", "yellow")
            elif not handler(argument):
                return

    def _say(self, text: str, style: str = "") -> None:
        self.err.print(text, style=style, markup=False, highlight=False)

    def _banner(self) -> None:
        model = self.session.model or "the gateway's first model"
        self._say(f"tokenrelay chat · {self.session.base_url} · {model}", "bold")
        names = " ".join(f"/{c.name}" for c in COMMANDS)
        self._say(f"commands: {names} (/help says more); //text sends /text", "dim")

    def _help(self, _: str) -> bool:
        width = max(len(f"/{c.name} {c.usage}") for c in COMMANDS)
        for c in COMMANDS:
            self._say(f"  {f'/{c.name} {c.usage}':<{width}}  {c.help}")
        self._say("  //text sends /text as a prompt; Ctrl-C stops an answer", "dim")
        return True

    def _model(self, name: str) -> bool:
        try:
            names = self.session.models()
        except (httpx.HTTPError, TokenRelayError) as exc:
            self._say(f"cannot list the models: {exc}", "red")
            return True
        current = self.session.model or (names[0] if names else "")
        if not name:
            for n in names:
                self._say(f"{'*' if n == current else ' '} {n}")
        elif name in names:
            self.session.model = name
            self._say(f"model: {name}", "dim")
        else:
            self._say(f"no model {name!r} here; /model lists them", "yellow")
        return True

    def _new(self, _: str) -> bool:
        self.session.clear()
        self._say("new conversation", "dim")
        return True

    def _system(self, text: str) -> bool:
        if text == "off":
            self.session.system = ""
        elif text:
            self.session.system = text
        self._say(f"system prompt: {self.session.system or '(none)'}", "dim")
        return True

    def _retry(self, _: str) -> bool:
        self._ask(self.session.retry)
        return True

    def _ask(self, ask: Callable[[Callable[[Delta], None]], Reply]) -> None:
        from rich.live import Live
        from rich.markdown import Markdown

        parts: list[str] = []
        try:
            with Live(Markdown(""), console=self.out, refresh_per_second=20) as live:

                def show(delta: Delta) -> None:
                    if isinstance(delta, TextDelta):
                        parts.append(delta.text)
                        live.update(Markdown("".join(parts)))

                reply = ask(show)
        except (TokenRelayError, httpx.HTTPError, ValueError, RuntimeError) as exc:
            self._say(str(exc), "red")
            return
        except KeyboardInterrupt:
            self._say("stopped (/retry asks again)", "yellow")
            return
        if reply.completion.error is not None:
            self._say(f"error: {reply.completion.error.message}", "red")
        usage = reply.completion.usage
        facts = [self.session.model]
        if reply.ttft is not None:
            facts.append(f"first token {reply.ttft * 1000:.0f} ms")
        if usage is not None:
            mark = "~" if usage.estimated else ""
            facts.append(f"{mark}{usage.input_tokens} in / {mark}{usage.output_tokens} out")
        if reply.resumes:
            facts.append(f"resumed {reply.resumes}x")
        self._say(" · ".join(facts), "dim")
