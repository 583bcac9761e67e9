"""A hostile upstream against the whole gateway: the upstream's key, and the value of a
secret-named header, must reach no client and no log, whatever the upstream does with them.

One loopback upstream serves every provider kind (openai, anthropic, gemini, ollama), each
provider configured with the key (``api_key_env``) and an ``x-team-token`` header. The
upstream model name picks its behaviour (model ``openai-error-after`` routes to
``openai:error-after``), and every behaviour quotes both secrets wherever it can: error
bodies, in-band error events before and after content, malformed data, response headers
and cookies, redirects, wrong content types, 200 JSON answers. Each is asked for from every
client endpoint, streamed and not, then read again through ``/v1/streams/{id}``; then the
model list, metrics and readiness are read. Everything a client sees (status, headers,
body) and every log record (every logger, uvicorn's included, and the process's stdout and
stderr) is searched for the secrets, raw, URL-encoded, base64-encoded and in part.

Not searched: what the model *says*. An upstream that answers with the key as its text
(``echo``) has it passed on: the gateway cannot tell a model quoting a string from a
leak, and scrubbing content would corrupt legitimate answers. Those cells are the
detector's control instead: the key must be found there.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

from tests.asgi_servers import run_server
from tokenrelay.gateway import create_app, parse_config
from tokenrelay.llm import Delta, ErrorKind, Request, Start, StreamError, TextDelta, to_wire
from tokenrelay.llm.model import Finish, FinishReason, Usage, kind_of_status
from tokenrelay.providers.http import KINDS

KEY = "sk-hostile+/=Qx7vR2mK9pL4wZ8nTc3yHb6J"  # "+/=": its URL-encoded form differs
TEAM = "team+/=Vd5sN1qG8jF3kX0aPz4uWe7"
SECRETS = {"upstream key": KEY, "x-team-token": TEAM}
WINDOW = 16  # this many consecutive characters of a secret are a leak too
QUOTED = f"Incorrect API key provided: {KEY} (team token {TEAM})"

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# --- the hostile upstream -------------------------------------------------------------------

STATUSES = [400, 401, 403, 429, 500, 503]
BEHAVIOURS = [
    *(f"status-{s}" for s in STATUSES),  # the kind's own error body, its message quoting
    "fields-400",  # an error body with the secrets in type, code, param, status, detail
    "long-500",  # a text error body cut at 1,000 characters, inside the key
    "huge-500",  # a text error body cut at 64 KiB (the read limit), inside the key
    "error-before",  # an in-band error event before any content, its message quoting
    "error-after",  # ... after content
    "fields-before",  # an in-band error with the secrets in its type, code, param, status
    "fields-after",
    "malformed-before",  # data that is not JSON, quoting the secrets
    "malformed-after",
    "ok",  # a good stream (the secrets only in its headers, as in every answer)
    "redirect-307",  # to another server, the secrets in the Location's query
    "redirect-308",
    "wrong-type",  # a 200 text/html page quoting the secrets
    "json-error",  # a 200 application/json answer that is an error object quoting them
    "json-malformed",  # a 200 application/json answer that is not JSON, quoting them
    "echo",  # the control: the key as the model's text, passed on by design
]
UPSTREAM_KINDS = list(KINDS)

# The secrets in every header a response may carry, on every answer.
HOSTILE_HEADERS = [
    (b"x-echo", KEY.encode()),
    (b"x-team-token", TEAM.encode()),
    (b"set-cookie", f"session={KEY}; Path=/".encode()),
    (b"set-cookie", f"team={quote(TEAM)}; Path=/".encode()),
    (b"www-authenticate", f'Bearer realm="{KEY}", error="{TEAM}"'.encode()),
]
# Every field an error object of any dialect might be read from.
FIELDS_ERROR = {
    "type": "error",
    "error": {
        "message": "bad request",
        "type": KEY,
        "code": KEY,
        "param": TEAM,
        "status": TEAM,
        "details": [KEY],
    },
    "detail": KEY,
}


def wire(kind: str, deltas: list[Delta], close: bool = False) -> bytes:
    """``deltas`` in ``kind``'s upstream dialect, closed as the dialect closes a stream
    when ``close``."""
    dialect = KINDS[kind].dialect
    encoder = dialect.encoder(Request("m", (), stream=True))
    frames = [frame for delta in deltas for frame in encoder.encode(delta)]
    if close:
        frames += encoder.close()
    return to_wire(frames, dialect.framing)


def frame(kind: str, data: bytes) -> bytes:
    """``data`` as one event (one line) of ``kind``'s stream, not necessarily JSON."""
    if KINDS[kind].dialect.framing == "ndjson":
        return data + b"\n"
    event = b"event: error\n" if kind == "anthropic" else b""
    return event + b"data: " + data + b"\n\n"


def story(text: str) -> list[Delta]:
    return [
        Start("hostile-1", "hostile"),
        TextDelta(text),
        Usage(3, 1),
        Finish(FinishReason.STOP, "stop"),
    ]


OPENING: list[Delta] = [Start("hostile-1", "hostile")]
CONTENT: list[Delta] = [*OPENING, TextDelta("hello ")]
GARBAGE = f"{{not json, Bearer {KEY} x-team-token: {TEAM}".encode()


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()


def answer(kind: str, behaviour: str, target: str) -> Answer:
    """What the hostile upstream answers ``kind``'s request for ``behaviour``."""
    dialect = KINDS[kind].dialect
    sse = dialect.media_type
    name, _, arg = behaviour.rpartition("-")
    if name == "status":
        status = int(arg)
        _, error = dialect.error_body(StreamError(kind_of_status(status), QUOTED, status))
        extra = ((b"retry-after", b"1"),) if status == 429 else ()
        return Answer(status, "application/json", json.dumps(error).encode(), extra)
    if behaviour == "fields-400":
        return Answer(400, "application/json", json.dumps(FIELDS_ERROR).encode())
    if behaviour in ("long-500", "huge-500"):
        cut = 1000 if behaviour == "long-500" else 64 * 1024
        filler = "x" * (cut - len(KEY) + 4)  # all of the key but its last 4 characters
        return Answer(500, "text/plain", f"{filler}{KEY} {TEAM}".encode())
    if name == "redirect":
        location = f"{target}/steal?key={KEY}&token={quote(TEAM)}"
        return Answer(int(arg), "text/plain", b"moved", ((b"location", location.encode()),))
    before = arg == "before"
    prefix = wire(kind, OPENING if before else CONTENT)
    if name == "error":
        tail = wire(kind, [StreamError(ErrorKind.SERVER, QUOTED, 500)])
        return Answer(200, sse, prefix + tail)
    if name == "fields":
        return Answer(200, sse, prefix + frame(kind, json.dumps(FIELDS_ERROR).encode()))
    if name == "malformed":
        return Answer(200, sse, prefix + frame(kind, GARBAGE))
    if behaviour == "ok":
        return Answer(200, sse, wire(kind, story("hello world"), close=True))
    if behaviour == "echo":
        return Answer(200, sse, wire(kind, story(KEY), close=True))
    if behaviour == "wrong-type":
        return Answer(200, "text/html", f"<html>key {KEY} token {TEAM}</html>".encode())
    if behaviour == "json-error":
        _, error = dialect.error_body(StreamError(ErrorKind.SERVER, QUOTED, 500))
        return Answer(200, "application/json", json.dumps(error).encode())
    if behaviour == "json-malformed":
        return Answer(200, "application/json", b'{"choices": [' + GARBAGE)
    raise AssertionError(behaviour)


GEMINI_PATH = re.compile(r"/models/([^/:]+):")


class HostileUpstream:
    """The upstream: behaviour from the upstream model (in the body, or in Gemini's
    path), kind from the path. Records each request's path and headers."""

    def __init__(self) -> None:
        self.target = ""
        self.seen: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen.append((path, headers))
        kind = next(k for k, tail in PATHS.items() if tail in path)
        found = GEMINI_PATH.search(path)
        model = found.group(1) if found else json.loads(body)["model"]
        reply = answer(kind, model, self.target)
        raw = [(b"content-type", reply.content_type.encode()), *HOSTILE_HEADERS, *reply.headers]
        await send({"type": "http.response.start", "status": reply.status, "headers": raw})
        await send({"type": "http.response.body", "body": reply.body})


PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/",
    "ollama": "/api/chat",
}


class Recorder:
    """The other host a redirect points at: it must hear nothing."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((scope["path"], scope["query_string"].decode(), headers))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


# --- what to search for ----------------------------------------------------------------------


def encodings(secret: str) -> dict[str, str]:
    """A secret URL-encoded, and base64-encoded at each of the three alignments (the
    characters the secret alone decides, wherever it sits in the encoded bytes)."""
    found = {"URL-encoded": quote(secret, safe=""), "form-encoded": quote_plus(secret)}
    raw = secret.encode()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start, end = (offset + 2) // 3 * 4, (offset + len(raw)) // 3 * 4
        found[f"base64 (+{offset})"] = encoded[start:end]
    return found


ENCODINGS = {name: encodings(secret) for name, secret in SECRETS.items()}


def longest_part(secret: str, text: str) -> int:
    """The most consecutive characters of ``secret`` found in ``text`` (0 if fewer than
    ``WINDOW``)."""
    for size in range(len(secret), WINDOW - 1, -1):
        if any(secret[i : i + size] in text for i in range(len(secret) - size + 1)):
            return size
    return 0


def leaks(text: str) -> list[str]:
    """Which secrets ``text`` holds, and in what form: whole, in part (``WINDOW`` or
    more consecutive characters), or encoded."""
    found = []
    for name, secret in SECRETS.items():
        part = longest_part(secret, text)
        if part == len(secret):
            found.append(f"{name}, whole")
        elif part:
            found.append(f"{name}, {part} of its {len(secret)} characters")
        found += [f"{name}, {how}" for how, form in ENCODINGS[name].items() if form in text]
    return found


# --- the gateway under attack ------------------------------------------------------------------

ENDPOINTS = ["/v1/chat/completions", "/v1/responses", "/v1/messages"]


def body(endpoint: str, model: str, stream: bool) -> dict[str, Any]:
    if endpoint == "/v1/responses":
        return {"model": model, "input": "hi", "stream": stream}
    return {
        "model": model,
        "max_tokens": 16,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    }


def seen_by_client(response: httpx.Response) -> str:
    """Everything a client gets: status line, every header as sent, the whole body."""
    headers = "\n".join(f"{k.decode()}: {v.decode()}" for k, v in response.headers.raw)
    return f"{response.status_code}\n{headers}\n\n{response.content.decode('latin-1')}"


class Logs(logging.Handler):
    """Every record of the loggers that do not reach the root (uvicorn's), formatted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


UVICORN_LOGGERS = ["uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"]


@contextlib.contextmanager
def uvicorn_logs() -> Iterator[Logs]:
    """uvicorn's records, at every level, while the servers run (it configures its
    loggers itself when a server starts: call this after they have)."""
    handler = Logs()
    loggers = [logging.getLogger(name) for name in UVICORN_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def gateway_config(upstream: str) -> Any:
    return parse_config(
        {
            "gateway": {"retry": {"attempts": 1}, "timeouts": {"first_token": 10}},
            "providers": [
                {
                    "name": kind,
                    "kind": kind,
                    "base_url": upstream + "/v1" if kind == "openai" else upstream,
                    "api_key_env": "HOSTILE_UPSTREAM_KEY",
                    "headers": {"x-team-token": TEAM, "x-tenant": "acme"},
                }
                for kind in UPSTREAM_KINDS
            ],
            "models": [
                {"name": f"{kind}-{behaviour}", "route": [f"{kind}:{behaviour}"]}
                for kind in UPSTREAM_KINDS
                for behaviour in BEHAVIOURS
            ],
        },
        env={"HOSTILE_UPSTREAM_KEY": KEY},
    )


@dataclass
class Cell:
    """One request of the matrix and what came of it."""

    name: str
    seen: str  # what the client got
    logs: str  # what was logged meanwhile
    status: int

    def leaks(self) -> list[str]:
        found = [f"client: {f}" for f in leaks(self.seen)]
        return found + [f"log: {f}" for f in leaks(self.logs)]


def test_no_upstream_secret_reaches_a_client_or_a_log(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    upstream, elsewhere = HostileUpstream(), Recorder()
    cells: list[Cell] = []
    controls: list[Cell] = []
    with (
        run_server(elsewhere) as target,
        run_server(upstream) as upstream_url,
        run_server(create_app(gateway_config(upstream_url)), lifespan="on") as url,
        uvicorn_logs() as server_logs,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        upstream.target = target
        logged = served = 0

        def cell(name: str, response: httpx.Response) -> Cell:
            # The records logged since the previous cell are this one's (the gateway
            # logs an attempt's failure before it answers).
            nonlocal logged, served
            lines = [caplog.handler.format(r) for r in caplog.records[logged:]]
            lines += server_logs.lines[served:]
            logged, served = len(caplog.records), len(server_logs.lines)
            done = Cell(name, seen_by_client(response), "\n".join(lines), response.status_code)
            (controls if "-echo " in name else cells).append(done)
            return done

        for kind in UPSTREAM_KINDS:
            for behaviour in BEHAVIOURS:
                model = f"{kind}-{behaviour}"
                for endpoint in ENDPOINTS:
                    for stream in (True, False):
                        name = f"{model} {endpoint} {'stream' if stream else 'whole'}"
                        response = client.post(endpoint, json=body(endpoint, model, stream))
                        cell(name, response)
                        stream_id = response.headers.get("x-stream-id")
                        if stream_id is None:
                            continue
                        again = client.get(f"/v1/streams/{stream_id}")
                        cell(f"{name} resumed", again)
                        first = re.search(rb"^id: (\S+)$", response.content, re.M)
                        if first is not None:
                            after = {"last-event-id": first.group(1).decode()}
                            later = client.get(f"/v1/streams/{stream_id}", headers=after)
                            cell(f"{name} resumed after {after['last-event-id']}", later)
        for path, headers in [
            ("/v1/models", {}),
            ("/v1/models", {"anthropic-version": "2023-06-01"}),
            ("/metrics", {}),
            ("/readyz", {}),
        ]:
            cell(f"GET {path} {headers}", client.get(path, headers=headers))
    everything = [caplog.handler.format(r) for r in caplog.records] + server_logs.lines
    output = capfd.readouterr()

    # The attack was real: every provider sent both secrets to the upstream...
    for kind, tail in PATHS.items():
        sent = [h for path, h in upstream.seen if tail in path]
        assert sent, kind
        assert all(KEY in " ".join(h.values()) and h["x-team-token"] == TEAM for h in sent)
    # ... the detector finds the key where it is passed on by design (the model's text)...
    answered = [c for c in controls if c.status == 200]
    assert len(answered) == len(controls) == len(UPSTREAM_KINDS) * len(ENDPOINTS) * 4
    missed = [c.name for c in answered if not any("upstream key, whole" in f for f in c.leaks())]
    assert not missed
    # ... and the logs were captured: the operator was told of the refused key, and
    # uvicorn logged the gateway's requests.
    assert any("check its API key" in line for line in everything)
    assert any("POST /v1/messages" in line for line in server_logs.lines)

    leaking = {c.name: found for c in cells if (found := c.leaks())}
    elsewhere_heard = [f"{path}?{query}" for path, query, _ in elsewhere.requests]
    stray = leaks("\n".join(everything)) + leaks(output.out + output.err)
    print(
        f"hostile upstream matrix: {len(cells)} cells "
        f"({len(UPSTREAM_KINDS)} upstream kinds x {len(BEHAVIOURS) - 1} behaviours x "
        f"{len(ENDPOINTS)} endpoints x streamed/whole, plus resumes and GETs), "
        f"{len(controls)} control cells; {len(leaking)} leaking cells"
    )
    assert not elsewhere_heard, f"a redirect was followed: {elsewhere_heard}"
    assert not leaking and not stray, "\n".join(
        [f"{name}: {found}" for name, found in leaking.items()] + [f"anywhere: {stray}"]
    )
