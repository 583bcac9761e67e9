"""The gateway under faults, over real loopback HTTP: the fake LLM (`MockServer`) is the
upstream and injects them (status codes, in-band errors, stalls, pacing), clients are the
official SDKs, raw httpx streams and raw sockets. Each test runs its own small gateway
(short timeouts, grace and backoff) so it is fast and sees only its own streams.

The mock's ``app.records`` says what happened upstream: how many requests a model got,
and whether each ``completed`` or was ``disconnected`` (with the time it ``ended``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import h11
import httpx
import openai
import pytest
from starlette.applications import Starlette

from tests.asgi_servers import run_server
from tests.dialect_helpers import anthropic_client, feed_all, openai_client
from tokenrelay.gateway import create_app, parse_config
from tokenrelay.llm import (
    DIALECTS,
    Completion,
    Delta,
    ErrorKind,
    FinishReason,
    Request,
    StreamError,
    TextDelta,
    accumulate,
)
from tokenrelay.mock import MockServer
from tokenrelay.mock.script import script
from tokenrelay.sse import Decoder, Event

pytestmark = pytest.mark.sdk

MESSAGE = "Hello wörld, streams are 👋 fun"
WORDS = MESSAGE.split()
DIALECT_NAMES = ["openai_chat", "openai_responses", "anthropic"]
PATHS = {
    "openai_chat": "/v1/chat/completions",
    "openai_responses": "/v1/responses",
    "anthropic": "/v1/messages",
}


def body(dialect: str, model: str, text: str = MESSAGE, **extra: Any) -> dict[str, Any]:
    """A streamed request for ``model`` in ``dialect``."""
    if dialect == "openai_responses":
        out: dict[str, Any] = {"model": model, "input": text, "stream": True}
    else:
        out = {"model": model, "messages": [{"role": "user", "content": text}], "stream": True}
        if dialect == "anthropic":
            out["max_tokens"] = 4096
        else:
            out["stream_options"] = {"include_usage": True}
    return {**out, **extra}


def lorem_text(count: int) -> str:
    answer = script(Request("lorem", (), max_tokens=count, stream=True), id="x")
    return "".join(d.text for d in answer.deltas if isinstance(d, TextDelta))


def records(mock: MockServer, model: str) -> list[dict[str, Any]]:
    return [r for r in mock.app.records if r.get("model") == model]


@dataclass
class Gateway:
    url: str
    app: Starlette

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the gateway's /metrics (0 when absent)."""
        text = httpx.get(self.url + "/metrics").text
        for line in text.splitlines():
            if not line.startswith(name + "{"):
                continue
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if labels.items() <= found.items():
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@contextlib.contextmanager
def serve(
    mock: MockServer | None,
    routes: dict[str, list[str]],
    *,
    providers: list[dict[str, Any]] | None = None,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> Iterator[Gateway]:
    """A gateway with ``routes`` (model name -> "provider:model" entries); the default
    provider ``up`` speaks OpenAI to ``mock``."""
    if providers is None:
        assert mock is not None
        providers = [{"name": "up", "kind": "openai", "base_url": mock.url + "/v1"}]
    gateway = {"grace_seconds": 0, "ping_seconds": 5, **settings}
    gateway.setdefault("retry", {"attempts": 2, "backoff": 0.01, "max_backoff": 0.05})
    gateway.setdefault("timeouts", {"connect": 2, "first_token": 5, "idle": 5, "total": 30})
    config = parse_config(
        {
            "gateway": gateway,
            "providers": providers,
            "models": [{"name": n, "route": r} for n, r in routes.items()],
        },
        env=env or {},
    )
    app = create_app(config)
    with run_server(app, lifespan="on") as url:
        yield Gateway(url, app)


def paced(mock: MockServer, token_ms: float, kind: str = "openai", **more: str) -> dict[str, Any]:
    """A provider named ``kind`` whose upstream sends a token every ``token_ms``."""
    base = mock.url + "/v1" if kind == "openai" else mock.url
    headers = {"x-mock-token-ms": f"{token_ms:g}", **more}
    return {"name": kind, "kind": kind, "base_url": base, "headers": headers}


def oai(url: str, **kw: Any) -> openai.OpenAI:
    return openai_client(url + "/v1", api_key=kw.pop("api_key", "unused"))


def decode(dialect: str, wire: bytes) -> Completion:
    return accumulate(deltas_of(dialect, wire))


def deltas_of(dialect: str, wire: bytes) -> list[Delta]:
    return feed_all(DIALECTS[dialect].decoder(), [wire])


def wait_for(predicate: Any, timeout: float = 5.0, step: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(step)


def stream_text(url: str, dialect: str, model: str, **extra: Any) -> tuple[int, bytes, Any]:
    with httpx.stream("POST", url + PATHS[dialect], json=body(dialect, model, **extra)) as r:
        return r.status_code, r.read(), r.headers


# --- retries and fallback, before the first token ----------------------------------------------


@pytest.fixture
def fresh_mock() -> Iterator[MockServer]:
    """A mock of the test's own: ``times=N`` faults count per server."""
    with MockServer() as server:
        yield server


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "ollama", "mock"])
def test_a_429_is_retried_after_its_retry_after_and_then_succeeds(
    fresh_mock: MockServer, kind: str
) -> None:
    fault = "429;retry-after=0;times=1"
    if kind == "mock":
        provider, model = {"name": "mock", "kind": "mock"}, f"echo@{fault}"
    else:
        provider, model = paced(fresh_mock, 0, kind, **{"x-mock-fault": fault}), "echo"
    with serve(fresh_mock, {"m": [f"{kind}:{model}"]}, providers=[provider]) as gw:
        with oai(gw.url) as client:
            answer = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": MESSAGE}]
            )
        assert answer.choices[0].message.content == MESSAGE
        errors = gw.metric("tokenrelay_upstream_errors_total", provider=kind, kind="rate_limit")
        assert errors == 1
    if kind != "mock":
        tried = records(fresh_mock, "echo")
        assert [(r["status"], r["outcome"]) for r in tried] == [(429, "fault"), (200, "completed")]


def test_a_route_entry_that_keeps_failing_falls_back_to_the_next(mock: MockServer) -> None:
    providers = [
        paced(mock, 0, "openai", **{"x-mock-fault": "500;times=100000"}),
        paced(mock, 0, "anthropic"),
    ]
    with serve(mock, {"m": ["openai:echo", "anthropic:echo"]}, providers=providers) as gw:
        before = len(mock.app.records)
        with anthropic_client(gw.url) as client:
            message = client.messages.create(
                model="m", max_tokens=100, messages=[{"role": "user", "content": MESSAGE}]
            )
        assert message.content[0].type == "text" and message.content[0].text == MESSAGE
        assert gw.metric("tokenrelay_upstream_errors_total", provider="openai") == 2
    tried = [(r["dialect"], r["status"]) for r in list(mock.app.records)[before:]]
    # retry.attempts = 2 on the first entry, then the answer comes from the second.
    assert tried == [("openai_chat", 500), ("openai_chat", 500), ("anthropic", 200)]


def test_every_entry_failing_answers_the_last_error_in_the_client_s_dialect(
    mock: MockServer,
) -> None:
    providers = [paced(mock, 0, "openai", **{"x-mock-fault": "503;times=100000"})]
    with serve(mock, {"m": ["openai:echo"]}, providers=providers) as gw:
        for dialect in DIALECT_NAMES:
            status, raw, _ = stream_text(gw.url, dialect, "m")
            assert status == 503
            error = json.loads(raw)
            if dialect == "anthropic":
                assert error["type"] == "error" and error["error"]["type"] == "overloaded_error"
            else:
                assert set(error["error"]) >= {"message", "type", "param", "code"}


# --- after the first token: never switch upstream ----------------------------------------------


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_a_mid_stream_failure_ends_with_an_error_event_and_no_switch(
    mock: MockServer, dialect: str
) -> None:
    model = "echo@error:2;kind=overloaded"
    providers = [paced(mock, 5, "openai"), paced(mock, 5, "anthropic")]
    routes = {"m": [f"openai:{model}", "anthropic:echo"]}
    with serve(mock, routes, providers=providers) as gw:
        before = len(mock.app.records)
        status, raw, headers = stream_text(gw.url, dialect, "m")
        assert status == 200 and headers["x-stream-id"]
        deltas = deltas_of(dialect, raw)
        text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
        assert text == MESSAGE[: MESSAGE.index(WORDS[2]) - 1]  # two words, then the error
        errors = [d for d in deltas if isinstance(d, StreamError)]
        # A failed response's code is a closed list without "overloaded".
        kind = ErrorKind.SERVER if dialect == "openai_responses" else ErrorKind.OVERLOADED
        assert len(errors) == 1 and errors[0].kind is kind
        assert "error:2" in errors[0].message
    after = list(mock.app.records)[before:]
    assert [(r["dialect"], r["outcome"]) for r in after] == [("openai_chat", "fault:error")]


def test_the_sdks_raise_on_a_mid_stream_error_event(mock: MockServer) -> None:
    with serve(mock, {"m": ["up:echo@error:2"]}) as gw:
        pieces = []
        with (
            oai(gw.url) as client,
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": MESSAGE}], stream=True
            ) as stream,
            pytest.raises(openai.APIError, match="error:2"),
        ):
            for chunk in stream:
                pieces += [c.delta.content or "" for c in chunk.choices]
        assert "".join(pieces) == "Hello wörld,"
        with (
            anthropic_client(gw.url) as claude,
            pytest.raises(anthropic.APIStatusError, match="error:2"),
            claude.messages.stream(
                model="m", max_tokens=100, messages=[{"role": "user", "content": MESSAGE}]
            ) as messages,
        ):
            for _ in messages.text_stream:
                pass


# --- first-token timeout ------------------------------------------------------------------------

TIMEOUTS = {"connect": 2, "first_token": 0.3, "idle": 5, "total": 30}


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_no_first_token_in_time_is_a_504_in_the_client_s_dialect(
    mock: MockServer, dialect: str
) -> None:
    providers = [paced(mock, 0, "openai", **{"x-mock-ttft-ms": "10000"})]
    with serve(mock, {"m": ["openai:echo"]}, providers=providers, timeouts=TIMEOUTS) as gw:
        before = len(mock.app.records)
        started = time.monotonic()
        status, raw, _ = stream_text(gw.url, dialect, "m")
        waited = time.monotonic() - started
        assert status == 504 and 0.3 <= waited < 1.5
        error = json.loads(raw)
        if dialect == "anthropic":
            assert error["type"] == "error" and error["error"]["type"] == "timeout_error"
            assert "first-token" in error["error"]["message"]
        else:
            assert "first-token" in error["error"]["message"]
        # The timed-out attempt is not retried (the deadline is spent) and is closed.
        (record,) = list(mock.app.records)[before:]
        wait_for(lambda: record.get("outcome") == "disconnected", 1)


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_a_first_token_timeout_after_pings_is_an_error_event(
    mock: MockServer, dialect: str
) -> None:
    """With pings every 0.1 s the response has started before the 0.3 s deadline: the
    status is 200 and the timeout comes as the dialect's error event, after pings."""
    providers = [paced(mock, 0, "openai", **{"x-mock-fault": "stall:0"})]
    routes = {"m": ["openai:echo"]}
    with serve(mock, routes, providers=providers, timeouts=TIMEOUTS, ping_seconds=0.1) as gw:
        status, raw, headers = stream_text(gw.url, dialect, "m")
    assert status == 200 and headers["x-stream-id"]
    if dialect == "anthropic":
        assert raw.startswith(b"event: ping\n")
    else:
        assert raw.startswith(b": ping\n\n")
    deltas = deltas_of(dialect, raw)
    errors = [d for d in deltas if isinstance(d, StreamError)]
    assert len(errors) == 1 and "first-token timeout" in errors[0].message
    # Responses' error codes have no timeout: there it is a server_error.
    if dialect != "openai_responses":
        assert errors[0].kind is ErrorKind.TIMEOUT
    assert not any(isinstance(d, TextDelta) for d in deltas)


# --- disconnects, grace and resume ---------------------------------------------------------------


def limited(dialect: str, model: str, tokens: int) -> dict[str, Any]:
    """A streamed request for ``tokens`` tokens of ``model`` (lorem)."""
    key = "max_output_tokens" if dialect == "openai_responses" else "max_tokens"
    return {**body(dialect, model), key: tokens}


def first_bytes(chunks: Iterator[bytes]) -> bytes:
    """Read until at least one whole event has arrived. The caller holds ``chunks``
    (``response.iter_raw()``): a dropped iterator would close the connection at once."""
    got = b""
    for chunk in chunks:
        got += chunk
        if b"\n\n" in got:
            return got
    raise AssertionError("the stream ended early")


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini", "ollama"])
def test_a_client_disconnect_closes_the_upstream_within_100ms_when_grace_is_0(
    mock: MockServer, kind: str
) -> None:
    with serve(mock, {"m": [f"{kind}:lorem"]}, providers=[paced(mock, 50, kind)]) as gw:
        for dialect in DIALECT_NAMES:
            before = len(mock.app.records)
            with httpx.stream(
                "POST", gw.url + PATHS[dialect], json=limited(dialect, "m", 200)
            ) as r:
                assert r.status_code == 200
                chunks = r.iter_raw()
                first_bytes(chunks)
                (record,) = list(mock.app.records)[before:]
                assert "outcome" not in record  # still generating
                closed = time.time()
            wait_for(lambda record=record: "ended" in record, 2)
            assert record["outcome"] == "disconnected"
            assert record["ended"] - closed < 0.1, (dialect, record["ended"] - closed)


def test_within_the_grace_period_a_resume_gets_the_whole_answer(mock: MockServer) -> None:
    text = " ".join(f"wörd{i}" for i in range(40))
    routes = {"m": ["openai:echo"]}
    with serve(mock, routes, providers=[paced(mock, 20)], grace_seconds=1) as gw:
        for dialect in DIALECT_NAMES:
            before = len(mock.app.records)
            with httpx.stream("POST", gw.url + PATHS[dialect], json=body(dialect, "m", text)) as r:
                head = first_bytes(r.iter_raw())
                stream_id = r.headers["x-stream-id"]
            head = head[: head.rindex(b"\n\n") + 2]  # whole events only
            last = Decoder().feed(head)[-1].id
            time.sleep(0.2)  # nobody is reading; the generation goes on
            (record,) = list(mock.app.records)[before:]
            assert "outcome" not in record
            rest = httpx.get(
                f"{gw.url}/v1/streams/{stream_id}", headers={"last-event-id": last}
            ).content
            answer = decode(dialect, head + rest)
            assert answer.choices[0].text == text and answer.usage is not None
            assert record["outcome"] == "completed"


def rebuilt(events: list[Event]) -> bytes:
    from tokenrelay.sse import encode

    return b"".join(
        encode(e.data, event=None if e.event == "message" else e.event, id=e.id) for e in events
    )


async def resume_trial(
    client: httpx.AsyncClient, url: str, rng: random.Random, dialect: str, text: str
) -> int:
    """One stream read over connections cut at random byte offsets, each resumed after
    the last whole event (by header or by query parameter); returns the connections."""
    events: list[Event] = []
    stream_id = ""
    connections = 0
    while True:
        cut = rng.randint(1, 2500) if connections < 5 else None
        if not stream_id:
            request = client.build_request(
                "POST", url + PATHS[dialect], json=body(dialect, "m", text)
            )
        else:
            last = events[-1].id if events else ""
            by_header = rng.random() < 0.5
            request = client.build_request(
                "GET",
                f"{url}/v1/streams/{stream_id}",
                headers={"last-event-id": last} if last and by_header else {},
                params={"last_event_id": last} if last and not by_header else {},
            )
        response = await client.send(request, stream=True)
        if response.status_code == 204 and stream_id:
            await response.aclose()
            break  # the cut came after the last event: nothing more will ever come
        assert response.status_code == 200
        stream_id = response.headers["x-stream-id"]
        connections += 1
        decoder, got, whole = Decoder(), 0, True
        async for chunk in response.aiter_raw():
            if cut is not None and got + len(chunk) >= cut:
                events += decoder.feed(chunk[: cut - got])  # a torn event stays in the decoder
                whole = False
                break
            got += len(chunk)
            events += decoder.feed(chunk)
        await response.aclose()
        if whole:
            break
    ids = [tuple(map(int, e.id.split("."))) for e in events]
    assert ids == sorted(set(ids)), "an event came twice or out of order"
    answer = decode(dialect, rebuilt(events))
    assert answer.error is None
    assert answer.choices[0].text == text, "a gap: the text is not the echo"
    assert answer.usage is not None and answer.choices[0].finish is not None
    assert answer.choices[0].finish.reason is FinishReason.STOP
    if dialect == "openai_responses":
        numbers = [json.loads(e.data)["sequence_number"] for e in events]
        assert numbers == sorted(set(numbers))
    return connections


RESUME_TRIALS = 240
SEED = 20240611


def test_resume_by_last_event_id_has_no_gap_and_no_duplicate_after_random_cuts(
    mock: MockServer,
) -> None:
    text = " ".join(f"tök{i}" for i in range(30)) + " 👋 end"
    rng = random.Random(SEED)

    async def main(url: str) -> list[int]:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            plan = [
                (random.Random(rng.random()), rng.choice(DIALECT_NAMES))
                for _ in range(RESUME_TRIALS)
            ]
            gate = asyncio.Semaphore(12)

            async def run(trial_rng: random.Random, dialect: str) -> int:
                async with gate:
                    return await resume_trial(client, url, trial_rng, dialect, text)

            return await asyncio.gather(*(run(r, d) for r, d in plan))

    with serve(mock, {"m": ["openai:echo"]}, providers=[paced(mock, 2)], grace_seconds=5) as gw:
        connections = asyncio.run(main(gw.url))
    assert len(connections) == RESUME_TRIALS
    cut = sum(c - 1 for c in connections)
    assert cut >= 2 * RESUME_TRIALS  # every trial was cut, most several times


# --- backpressure: a stalled reader ---------------------------------------------------------------


def raw_request(
    url: str, path: str, payload: dict[str, Any]
) -> tuple[socket.socket, h11.Connection]:
    """A POST on a raw socket with a 4 KiB receive buffer, so a reader that stops reading
    pushes back on the gateway almost at once."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.settimeout(10)
    conn = h11.Connection(h11.CLIENT)
    data = json.dumps(payload).encode()
    headers = [
        ("host", host),
        ("content-type", "application/json"),
        ("content-length", str(len(data))),
    ]
    sock.sendall(
        conn.send(h11.Request(method="POST", target=path, headers=headers))
        + conn.send(h11.Data(data=data))
        + conn.send(h11.EndOfMessage())
    )
    return sock, conn


def read_all(sock: socket.socket, conn: h11.Connection) -> bytes:
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return body


@pytest.mark.parametrize("dialect", DIALECT_NAMES)
def test_a_stalled_reader_gets_merged_text_while_the_upstream_runs_at_full_speed(
    mock: MockServer, dialect: str
) -> None:
    tokens = 3000
    routes = {"m": ["openai:lorem"]}
    with serve(mock, routes, providers=[paced(mock, 0)], grace_seconds=5) as gw:
        store = gw.app.state.gateway.hub.store
        stream_text(gw.url, dialect, "m")  # warm up: first-use caches are not per-token growth
        before = len(mock.app.records)
        tracemalloc.start()
        try:
            start = tracemalloc.take_snapshot()
            sock, conn = raw_request(gw.url, PATHS[dialect], limited(dialect, "m", tokens))
            with sock:
                wait_for(lambda: any(r.get("outcome") for r in list(mock.app.records)[before:]))
                (record,) = list(mock.app.records)[before:]
                assert (record["outcome"], record["tokens"]) == ("completed", tokens)
                log = list(store._logs.values())[-1]  # the newest stream's
                wait_for(lambda: log.finished)
                time.sleep(0.2)  # let the reader settle in its wait for the socket
                grown = sum(
                    s.size_diff for s in tracemalloc.take_snapshot().compare_to(start, "filename")
                )
                tracemalloc.stop()
                wire = read_all(sock, conn)
        finally:
            tracemalloc.stop()
    # The log holds each delta once, compactly (about 63 bytes a token here); the rest
    # (about 30 bytes a token, mostly fixed costs) stays far below what buffering the
    # unmerged frames would cost (150-250 bytes a token), or the 4 KiB a token that
    # orjson's oversized buffers once pinned in the log.
    log_bytes = sum(sys.getsizeof(e) for e in log.entries) + sys.getsizeof(log.entries)
    assert len(log.entries) == tokens + 3  # Start, the tokens, Usage, Finish
    assert log_bytes / tokens < 80, log_bytes
    assert (grown - log_bytes) / tokens < 100, f"{grown=} {log_bytes=}"
    events = Decoder().feed(wire)
    assert len(events) < tokens / 4  # the reader caught up with merged text
    answer = decode(dialect, wire)
    assert answer.choices[0].text == lorem_text(tokens)
    assert answer.usage is not None and answer.usage.output_tokens == tokens


# --- cancel, and usage whatever ended the stream ------------------------------------------------


def test_delete_cancels_the_upstream_and_every_reader_sees_the_cut(mock: MockServer) -> None:
    routes = {"m": ["openai:lorem"]}
    with serve(mock, routes, providers=[paced(mock, 50)], grace_seconds=30) as gw:
        for dialect in DIALECT_NAMES:
            before = len(mock.app.records)
            with httpx.stream(
                "POST", gw.url + PATHS[dialect], json=limited(dialect, "m", 200)
            ) as r:
                chunks = r.iter_raw()
                head = first_bytes(chunks)
                stream_id = r.headers["x-stream-id"]
                (record,) = list(mock.app.records)[before:]
                deleted = httpx.delete(f"{gw.url}/v1/streams/{stream_id}")
                assert deleted.json() == {"id": stream_id, "object": "stream", "cancelled": True}
                wire = head + b"".join(chunks)  # the open reader's stream ends, cleanly
            wait_for(lambda record=record: "ended" in record, 1)
            assert record["outcome"] == "disconnected" and record["tokens"] < 200
            cut = decode(dialect, wire)
            # Cut short, and saying so: the dialect's error event, never a finish.
            assert cut.error is not None and "stream cancelled" in cut.error.message
            assert cut.choices[0].finish is None
            if dialect == "openai_chat":  # its usage chunk comes before the error event;
                # Responses carries it in response.failed (read by the SDK, not our decoder),
                # Anthropic's error event has none: the metrics count it for all three.
                assert cut.usage is not None and cut.usage.output_tokens > 0
            assert cut.choices[0].text == lorem_text(200)[: len(cut.choices[0].text)]
            # A resume after the cancel replays the whole (short) stream, usage at the end.
            again = decode(dialect, httpx.get(f"{gw.url}/v1/streams/{stream_id}").content)
            assert again.choices[0].text == cut.choices[0].text and again.usage == cut.usage
            assert httpx.delete(f"{gw.url}/v1/streams/{stream_id}").json()["cancelled"] is False
        assert httpx.delete(f"{gw.url}/v1/streams/str_nope").status_code == 404


def test_a_stream_cut_by_a_disconnect_still_reports_its_usage(mock: MockServer) -> None:
    routes = {"m": ["openai:lorem"]}
    with serve(mock, routes, providers=[paced(mock, 20)]) as gw:
        with httpx.stream(
            "POST", gw.url + PATHS["anthropic"], json=limited("anthropic", "m", 200)
        ) as r:
            chunks = r.iter_raw()
            head = first_bytes(chunks)
            stream_id = r.headers["x-stream-id"]
        record = mock.app.records[-1]
        wait_for(lambda: "ended" in record, 1)
        assert record["outcome"] == "disconnected"
        # The upstream never said its usage: the gateway estimated it, and counted it.
        wait_for(lambda: gw.metric("tokenrelay_streams_ended_total", why="disconnected") == 1)
        output = gw.metric(
            "tokenrelay_tokens_total", model="m", direction="output", estimated="true"
        )
        prompt = gw.metric(
            "tokenrelay_tokens_total", model="m", direction="input", estimated="true"
        )
        assert output >= 1 and prompt >= 1
        # A reader resuming after the disconnect gets the stream's end: the cut, said so
        # (Anthropic's error event carries no usage: the metrics above have it).
        last = Decoder().feed(head[: head.rindex(b"\n\n") + 2])[-1].id
        tail = httpx.get(f"{gw.url}/v1/streams/{stream_id}", headers={"last-event-id": last})
        answer = decode("anthropic", head + tail.content)
        assert answer.error is not None and "grace period" in answer.error.message
        assert answer.choices[0].finish is None
        # A stream that completed counts the upstream's own figures.
        status, _, _ = stream_text(gw.url, "openai_chat", "m")
        assert status == 200
        wait_for(lambda: gw.metric("tokenrelay_streams_ended_total", why="completed") == 1)
        counted = gw.metric(
            "tokenrelay_tokens_total", model="m", direction="output", estimated="false"
        )
        assert counted == 16  # lorem without a limit: 16 words
