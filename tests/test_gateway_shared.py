"""Several gateway processes sharing one stream store, as operators run them: real
``tokenrelay serve`` processes on loopback (two instances on one Redis or one SQLite file,
or one ``serve --workers 2``), a real ``redis-server``, and ``tokenrelay mock`` as the
upstream where a test needs to see what happened upstream. Clients are raw httpx streams.

What they show: a stream cut anywhere resumes on another instance with no gap, no
duplicate and no stall; an instance killed mid-stream is noticed within its lease and its
streams end with the dialect's "interrupted" error (at once when a worker of the same name
replaces it); a DELETE anywhere closes the owner's upstream; readers on other instances
keep a generation alive past the grace period; Redis going away and coming back breaks
nothing for good; finished streams outlive a restart until their retention ends; a
SIGTERM drains running generations into the store; the store's stream limit counts every
instance; another instance serves the same events in every dialect.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dialect_helpers import feed_all
from tests.gateway_procs import Proc, Procs, gateway_toml, mock_records, procs_running
from tokenrelay.llm import DIALECTS, Request, TextDelta, accumulate
from tokenrelay.mock.script import script
from tokenrelay.sse import Decoder, Event, encode

CHAT = "/v1/chat/completions"
SEED = 20260611


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """The test's processes; every one is killed (by process group) at the end."""
    with procs_running(tmp_path) as started:
        yield started


@pytest.fixture(params=["redis", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One shared store: an empty database of the session's Redis, or a fresh SQLite file."""
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    return f"sqlite://{tmp_path / 'streams.db'}"


def store_table(url: str, **settings: Any) -> dict[str, Any]:
    """``[gateway.store]`` for ``url``, as an operator writes it in the file."""
    if url.startswith("sqlite://"):
        return {"kind": "sqlite", "path": url.removeprefix("sqlite://"), **settings}
    return {"kind": "redis", "url": url, **settings}


def fake(token_ms: float) -> dict[str, Any]:
    """The in-process fake LLM, a token every ``token_ms``."""
    return {"name": "fake", "kind": "mock", "options": {"token_ms": token_ms}}


def upstream(mock: Proc) -> dict[str, Any]:
    """An OpenAI-compatible upstream: a ``tokenrelay mock`` process."""
    return {"name": "up", "kind": "openai", "base_url": mock.url + "/v1"}


def chat(tokens: int, model: str = "lorem") -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
        "max_tokens": tokens,
        "stream_options": {"include_usage": True},
    }


def lorem_text(tokens: int) -> str:
    answer = script(Request("lorem", (), max_tokens=tokens, stream=True), id="x")
    return "".join(d.text for d in answer.deltas if isinstance(d, TextDelta))


def event_id(event: Event) -> tuple[int, int]:
    k, _, j = event.id.partition(".")
    return int(k), int(j)


def content(event: Event) -> str:
    """The text an OpenAI chat chunk carries ("" for any other event)."""
    if event.data == "[DONE]":
        return ""
    data = json.loads(event.data)
    choices = data.get("choices") or [{}]
    return str(choices[0].get("delta", {}).get("content") or "")


def text_of(events: list[Event]) -> str:
    return "".join(content(e) for e in events)


def errors_of(events: list[Event]) -> list[dict[str, Any]]:
    return [
        json.loads(e.data)["error"]
        for e in events
        if e.data != "[DONE]" and "error" in json.loads(e.data)
    ]


def no_tracebacks(*gateways: Proc) -> None:
    for gateway in gateways:
        log = gateway.log()
        assert "Traceback" not in log, f"{gateway.name}:\n{log[-3000:]}"


@dataclass
class Followed:
    """A stream read by one client: its events with the (monotonic) time each came."""

    status: int = 0
    stream_id: str = ""
    events: list[Event] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    ended: float = 0.0

    def text_after(self, moment: float) -> str:
        return "".join(
            content(e) for e, t in zip(self.events, self.times, strict=True) if t > moment
        )


async def follow(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    followed: Followed,
    *,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    stop: asyncio.Event | None = None,
) -> Followed:
    """Read a stream into ``followed`` until it ends (or ``stop`` is set: then the
    connection is dropped)."""
    async with client.stream(method, url, json=body, headers=headers) as response:
        followed.status = response.status_code
        followed.stream_id = response.headers.get("x-stream-id", "")
        if response.status_code != 200:
            await response.aread()
            followed.ended = time.monotonic()
            return followed
        decoder = Decoder()
        chunks = response.aiter_raw()
        while True:
            step = asyncio.ensure_future(anext(chunks, None))
            waits: set[asyncio.Future[Any]] = {step}
            stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
            if stopping is not None:
                waits.add(stopping)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if stopping is not None and stopping.done():
                step.cancel()
                await asyncio.gather(step, return_exceptions=True)
                break
            if stopping is not None:
                stopping.cancel()
            chunk = step.result()
            if chunk is None:
                break
            now = time.monotonic()
            for event in decoder.feed(chunk):
                followed.events.append(event)
                followed.times.append(now)
    followed.ended = time.monotonic()
    return followed


async def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


# --- 1, 2. random cuts, resumed on another instance ------------------------------------------

TOKENS = 300  # words of lorem per stream
MAX_CUTS = 8  # per stream; then it is read to its end
CUT_BYTES = 5000  # a connection is cut after 1..CUT_BYTES bytes (a chunk is ~190)


def rebuilt(events: list[Event]) -> bytes:
    """Decoded events encoded again (for a dialect's decoder)."""
    return b"".join(
        encode(e.data, event=None if e.event == "message" else e.event, id=e.id) for e in events
    )


def others(events: list[Event]) -> list[tuple[str, str]]:
    """The events that carry no text, as (id, data): role, finish, usage, errors, [DONE]."""
    return [(e.id, e.data) for e in events if not content(e)]


def same_stream(got: list[Event], expected: list[Event]) -> None:
    """The same events, but for text a reader that was behind got merged."""
    assert text_of(got) == text_of(expected)
    assert others(got) == others(expected)


def check_resumed(pieces: list[Event], whole: list[Event], tokens: int) -> None:
    """``pieces``: a stream read over cut connections, each resumed after the last whole
    event; ``whole``: the same stream read at once after it finished. A reader that was
    behind got adjacent text merged (legitimately, differently in each read), so the text
    is compared, and the ids must only increase; every other event is identical."""
    ids = [event_id(e) for e in pieces]
    assert all(a < b for a, b in itertools.pairwise(ids)), "an event twice or out of order"
    assert pieces[-1].data == "[DONE]" and whole[-1].data == "[DONE]"
    assert text_of(pieces) == lorem_text(tokens), "a gap or a duplicate"
    same_stream(pieces, whole)


async def cut_and_resume(
    client: httpx.AsyncClient, urls: list[str], rng: random.Random, tokens: int
) -> tuple[int, float]:
    """One stream started on a random instance, its connection cut at random byte offsets
    up to ``MAX_CUTS`` times, each time resumed on the next instance by ``Last-Event-ID``
    (header or query parameter); returns the cuts, and the longest wait for a chunk."""
    events: list[Event] = []
    stream_id = ""
    at = rng.randrange(len(urls))
    stalls: list[float] = []
    cuts = 0
    while True:
        url = urls[at]
        cut = rng.randint(1, CUT_BYTES) if cuts < MAX_CUTS else None
        if not stream_id:
            request = client.build_request("POST", url + CHAT, json=chat(tokens))
        else:
            last = events[-1].id if events else ""
            by_header = rng.random() < 0.5
            request = client.build_request(
                "GET",
                f"{url}/v1/streams/{stream_id}",
                headers={"last-event-id": last} if last and by_header else {},
                params={"last_event_id": last} if last and not by_header else {},
            )
        since = time.monotonic()
        response = await client.send(request, stream=True)
        whole = True
        try:
            assert response.status_code == 200, (response.status_code, await response.aread())
            stream_id = response.headers["x-stream-id"]
            decoder, got = Decoder(), 0
            async for chunk in response.aiter_raw():
                now = time.monotonic()
                stalls.append(now - since)
                since = now
                if cut is not None and got + len(chunk) >= cut:
                    events += decoder.feed(chunk[: cut - got])  # a torn event is dropped
                    whole = False
                    break
                got += len(chunk)
                events += decoder.feed(chunk)
        finally:
            await response.aclose()
        if whole:
            break
        if events and events[-1].data == "[DONE]":
            break  # cut after the end: a client has it all and does not resume
        cuts += 1
        at = (at + 1) % len(urls)  # the resume goes to the other instance
    full = await client.get(f"{urls[rng.randrange(len(urls))]}/v1/streams/{stream_id}")
    assert full.status_code == 200
    check_resumed(events, Decoder().feed(full.content), tokens)
    return cuts, max(stalls)


@dataclass
class Trials:
    cuts: list[int] = field(default_factory=list)  # per stream
    stalls: list[float] = field(default_factory=list)  # per stream: the longest wait

    def stalled(self, longer_than: float) -> list[float]:
        return sorted(s for s in self.stalls if s > longer_than)


async def resume_trials(urls: list[str], target: int, concurrency: int = 12) -> Trials:
    """Streams cut and resumed, ``concurrency`` at a time, until ``target`` cuts were
    resumed."""
    rng = random.Random(SEED)
    trials = Trials()
    # No keep-alive: every resume is a new connection (with workers, to either of them).
    limits = httpx.Limits(max_connections=4 * concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=20) as client:

        async def worker(worker_rng: random.Random) -> None:
            while sum(trials.cuts) < target:
                cuts, stall = await cut_and_resume(client, urls, worker_rng, TOKENS)
                trials.cuts.append(cuts)
                trials.stalls.append(stall)

        await asyncio.gather(*(worker(random.Random(rng.random())) for _ in range(concurrency)))
    return trials


TRIALS = 1000
# A stream makes a token every 2 ms: a reader waiting this long for its next bytes was
# left behind (the keep-alive ping, after ping_seconds = 15, is what would wake it).
STALL = 3.0


@pytest.mark.slow
def test_streams_cut_at_random_resume_on_the_other_instance_with_no_gap_or_duplicate(
    procs: Procs, redis_url: str
) -> None:
    config = gateway_toml(
        gateway={"grace_seconds": 30},
        provider=fake(2),
        models={"lorem": "fake:lorem"},
    )
    a = procs.gateway("a", config, store=redis_url)
    b = procs.gateway("b", config, store=redis_url)
    started = time.monotonic()
    trials = asyncio.run(resume_trials([a.url, b.url], TRIALS))
    took = time.monotonic() - started
    cuts = trials.cuts
    print(f"{sum(cuts)} cuts resumed on the other instance, {len(cuts)} streams, {took:.1f} s")
    assert sum(cuts) >= TRIALS
    assert sum(1 for c in cuts if c >= 3) > len(cuts) / 2  # most switched instance 3+ times
    no_tracebacks(a, b)
    stalled = trials.stalled(STALL)
    assert not stalled, f"{len(stalled)} of {len(cuts)} streams had a reader wait {stalled} s"


@pytest.mark.slow
def test_streams_cut_at_random_resume_on_any_worker_with_no_gap_or_duplicate(
    procs: Procs, tmp_path: Path
) -> None:
    # One port, two workers: the kernel hands each new connection (no keep-alive) to
    # either worker, so a resume lands on the producing worker or on the other one; both
    # must give the same events.
    config = gateway_toml(
        gateway={"grace_seconds": 30},
        provider=fake(2),
        models={"lorem": "fake:lorem"},
    )
    served = procs.gateway(
        "workers", config, store=f"sqlite://{tmp_path / 'streams.db'}", workers=2
    )
    started = time.monotonic()
    trials = asyncio.run(resume_trials([served.url], TRIALS))
    took = time.monotonic() - started
    cuts = trials.cuts
    print(f"{sum(cuts)} cuts resumed on either worker, {len(cuts)} streams, {took:.1f} s")
    assert sum(cuts) >= TRIALS
    # Both workers produced streams (their instance names in the store's owner column).
    with sqlite3.connect(tmp_path / "streams.db") as db:
        owners = {owner for (owner,) in db.execute("SELECT DISTINCT owner FROM streams")}
    assert len(owners) == 2, owners
    no_tracebacks(served)
    stalled = trials.stalled(STALL)
    assert not stalled, f"{len(stalled)} of {len(cuts)} streams had a reader wait {stalled} s"


# --- 3. the owner killed mid-stream ------------------------------------------------------------

LEASE = 2.0


def test_a_reader_on_another_instance_gets_interrupted_within_the_lease_after_a_sigkill(
    procs: Procs, store_url: str
) -> None:
    config = gateway_toml(
        gateway={"grace_seconds": 30},
        store=store_table(store_url, lease_seconds=LEASE),
        provider=fake(10),
        models={"lorem": "fake:lorem"},
    )
    a = procs.gateway("a", config)
    b = procs.gateway("b", config)
    tokens = 2000  # 20 s: far longer than the test

    async def main() -> tuple[Followed, Followed, float]:
        async with httpx.AsyncClient(timeout=30) as client:
            posted, followed = Followed(), Followed()
            post = asyncio.ensure_future(
                follow(client, "POST", a.url + CHAT, posted, body=chat(tokens))
            )
            await wait_until(lambda: posted.events, 10, "the first event on A")
            reader = asyncio.ensure_future(
                follow(client, "GET", f"{b.url}/v1/streams/{posted.stream_id}", followed)
            )
            await wait_until(lambda: len(followed.events) >= 30, 10, "30 events on B")
            a.kill_group(signal.SIGKILL)
            killed = time.monotonic()
            await asyncio.wait_for(reader, LEASE + 10)
            post.cancel()
            await asyncio.gather(post, return_exceptions=True)
            return posted, followed, killed

    posted, followed, killed = asyncio.run(main())
    assert followed.status == 200
    waited = followed.ended - killed
    # The lease was renewed at most a tick (lease / 3) before the kill; B's tick notices
    # the lease ran out within another tick.
    assert 0.9 <= waited <= LEASE + 1 + 0.5, waited
    (error,) = errors_of(followed.events)
    assert error["type"] == "interrupted" and "interrupted" in error["message"]
    assert json.loads(followed.events[-1].data) == {"error": error}  # the last event
    text = text_of(followed.events)
    assert len(text.split()) >= 29  # what B had at the kill (30 events: role + 29 words)
    assert text == lorem_text(tokens)[: len(text)]  # intact up to the error
    assert text.startswith(text_of(posted.events)) or text_of(posted.events).startswith(text)
    # A resume from anywhere now replays the same end.
    again = Decoder().feed(httpx.get(f"{b.url}/v1/streams/{posted.stream_id}", timeout=10).content)
    assert text_of(again) == text and errors_of(again) == [error]
    no_tracebacks(b)
    print(f"interrupted {waited:.2f} s after the SIGKILL (lease {LEASE:g} s)")


# --- 4. DELETE on another instance -------------------------------------------------------------


def newest_record(mock: Proc, before: int) -> dict[str, Any]:
    (record,) = mock_records(mock)[before:]
    return record


DELETES = 40


def test_delete_on_another_instance_closes_the_owner_s_upstream_within_250ms(
    procs: Procs, store_url: str
) -> None:
    mock = procs.mock(token_ms=10)
    config = gateway_toml(
        gateway={"grace_seconds": 30},
        provider=upstream(mock),
        models={"lorem": "up:lorem"},
    )
    a = procs.gateway("a", config, store=store_url)
    b = procs.gateway("b", config, store=store_url)

    async def cycle(client: httpx.AsyncClient) -> tuple[Followed, dict[str, Any], float, float]:
        posted = Followed()
        post = asyncio.ensure_future(follow(client, "POST", a.url + CHAT, posted, body=chat(1000)))
        await wait_until(lambda: len(posted.events) >= 3, 10, "events on A")
        sent = time.time()  # the mock's records use the same (wall) clock
        started = time.monotonic()
        deleted = await client.delete(f"{b.url}/v1/streams/{posted.stream_id}")
        answered = time.monotonic() - started
        assert deleted.status_code == 200, deleted.content
        await asyncio.wait_for(post, 10)  # A's reader gets the stream's end
        return posted, deleted.json(), sent, answered

    async def main() -> list[tuple[Followed, dict[str, Any], float, float]]:
        async with httpx.AsyncClient(timeout=30) as client:
            return [await cycle(client) for _ in range(DELETES)]

    before = len(mock_records(mock))
    cycles = asyncio.run(main())
    records = mock_records(mock)[before:]
    assert len(records) == DELETES  # one upstream request per stream, in order
    closed, answered = [], []
    for (posted, deleted, sent, took), record in zip(cycles, records, strict=True):
        assert deleted == {"id": posted.stream_id, "object": "stream", "cancelled": True}
        assert record["outcome"] == "disconnected" and record["tokens"] < 1000
        closed.append(record["ended"] - sent)
        answered.append(took)
        # A's reader got the end of the cancelled stream, with no gap before it: the
        # error event that says it was cut.
        text = text_of(posted.events)
        assert text == lorem_text(1000)[: len(text)]
        assert "stream cancelled" in json.loads(posted.events[-1].data)["error"]["message"]
    print(
        f"{DELETES} DELETEs on the other instance: upstream closed after at most "
        f"{max(closed) * 1000:.0f} ms; answered after at most {max(answered) * 1000:.0f} ms"
    )
    assert max(closed) < 0.25, sorted(closed)[-3:]
    # The DELETE answers once the owner has ended the stream, not at its 2 s deadline.
    assert max(answered) < 1.0, sorted(answered)[-3:]
    posted = cycles[-1][0]
    # Finished now: a second DELETE, on either instance, cancels nothing.
    for gateway in (b, a):
        again = httpx.delete(f"{gateway.url}/v1/streams/{posted.stream_id}", timeout=10)
        assert again.status_code == 200 and again.json()["cancelled"] is False
    # Nor does a DELETE of a stream that completed on its own.
    with httpx.stream("POST", a.url + CHAT, json=chat(5), timeout=10) as response:
        response.read()
        done_id = response.headers["x-stream-id"]
    late = httpx.delete(f"{b.url}/v1/streams/{done_id}", timeout=10)
    assert late.status_code == 200 and late.json()["cancelled"] is False
    assert httpx.delete(f"{b.url}/v1/streams/str_nope", timeout=10).status_code == 404
    no_tracebacks(a, b)


# --- 5. readers anywhere count for the grace period --------------------------------------------

GRACE = 1.0


@pytest.mark.slow
def test_a_reader_on_another_instance_keeps_the_generation_running_past_the_grace_period(
    procs: Procs, store_url: str
) -> None:
    mock = procs.mock(token_ms=10)
    config = gateway_toml(
        gateway={"grace_seconds": GRACE},
        provider=upstream(mock),
        models={"lorem": "up:lorem"},
    )
    a = procs.gateway("a", config, store=store_url)
    b = procs.gateway("b", config, store=store_url)
    tokens = 1500  # 15 s: the upstream never finishes on its own here
    reading = 4.0
    before = len(mock_records(mock))

    async def main() -> tuple[Followed, float, float, dict[str, Any]]:
        async with httpx.AsyncClient(timeout=30) as client:
            posted, followed = Followed(), Followed()
            drop, leave = asyncio.Event(), asyncio.Event()
            post = asyncio.ensure_future(
                follow(client, "POST", a.url + CHAT, posted, body=chat(tokens), stop=drop)
            )
            await wait_until(lambda: posted.events, 10, "the first event on A")
            drop.set()  # the POST's reader leaves: A has no reader of its own
            await post
            dropped = time.monotonic()
            reader = asyncio.ensure_future(
                follow(
                    client, "GET", f"{b.url}/v1/streams/{posted.stream_id}", followed, stop=leave
                )
            )
            await asyncio.sleep(reading)
            record = newest_record(mock, before)  # still generating?
            left = time.time()
            leave.set()
            await reader
            return followed, dropped, left, dict(record)

    followed, dropped, left, record = asyncio.run(main())
    assert followed.status == 200
    assert "outcome" not in record, record  # B's reader kept it running past the grace
    late = followed.text_after(dropped + GRACE + 1.0)
    assert len(late.split()) >= 50, late  # ~200 words came in that last stretch
    text = text_of(followed.events)
    assert text == lorem_text(tokens)[: len(text)]
    # B's reader left: A notices at its next tick (<= 1 s), then waits the grace period.
    deadline = time.monotonic() + GRACE + 5
    while "ended" not in (record := newest_record(mock, before)):
        assert time.monotonic() < deadline, "the upstream was never closed"
        time.sleep(0.02)
    assert record["outcome"] == "disconnected"
    closed_after = record["ended"] - left
    assert GRACE - 0.1 <= closed_after <= GRACE + 2.0, closed_after
    no_tracebacks(a, b)
    print(f"upstream closed {closed_after:.2f} s after the last reader (on B) left")


# --- 6. Redis stopped and started again mid-stream ---------------------------------------------

BOUND = 10.0  # seconds any one request may take while Redis is away


async def timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await asyncio.wait_for(request, BOUND + 5)
    return response, time.monotonic() - started


@pytest.mark.slow
def test_redis_going_away_and_coming_back_breaks_nothing_for_good(
    procs: Procs, redis_server: Any, redis_url: str
) -> None:
    config = gateway_toml(
        gateway={"grace_seconds": 30},
        store=store_table(redis_url),
        provider=fake(5),
        models={"lorem": "fake:lorem"},
    )
    a = procs.gateway("a", config)
    b = procs.gateway("b", config)
    short, long = 300, 1400  # 1.5 s: ends while Redis is away; 7 s: runs across the outage
    timings: dict[str, float] = {}

    async def main() -> None:
        async with httpx.AsyncClient(timeout=BOUND) as client:
            first, second, followed = Followed(), Followed(), Followed()
            post = asyncio.ensure_future(
                follow(client, "POST", a.url + CHAT, first, body=chat(short))
            )
            post2 = asyncio.ensure_future(
                follow(client, "POST", a.url + CHAT, second, body=chat(long))
            )
            await wait_until(lambda: first.events and second.events, 10, "two streams on A")
            stream_id = first.stream_id
            reader = asyncio.ensure_future(
                follow(client, "GET", f"{b.url}/v1/streams/{stream_id}", followed)
            )
            await wait_until(lambda: len(followed.events) >= 20, 10, "20 events on B")
            redis_server.stop()
            stopped = time.monotonic()

            # B's reader, fed from Redis, ends saying so (in its dialect, without an id).
            await asyncio.wait_for(reader, BOUND)
            timings["reader on B ended"] = followed.ended - stopped
            (error,) = errors_of(followed.events)
            assert "store is unavailable" in error["message"], error
            seen = text_of(followed.events)
            assert seen == lorem_text(short)[: len(seen)]

            # Both instances live; new streams are refused in the client's dialect.
            for gateway in (a, b):
                health, took = await timed(client.get(gateway.url + "/healthz"))
                assert health.status_code == 200 and took < BOUND
                refused, took = await timed(client.post(gateway.url + CHAT, json=chat(5)))
                timings[f"openai POST on {gateway.name}"] = took
                assert refused.status_code == 503 and took < BOUND, (refused, took)
                assert "store is unavailable" in refused.json()["error"]["message"]
                claude, took = await timed(
                    client.post(
                        gateway.url + "/v1/messages",
                        json={
                            "model": "lorem",
                            "max_tokens": 5,
                            "messages": [{"role": "user", "content": "go"}],
                            "stream": True,
                        },
                        headers={"anthropic-version": "2023-06-01"},
                    )
                )
                timings[f"anthropic POST on {gateway.name}"] = took
                assert claude.status_code == 503 and took < BOUND, (claude, took)
                assert claude.json()["type"] == "error"
                assert claude.json()["error"]["type"] == "overloaded_error"
                resume, took = await timed(client.get(f"{gateway.url}/v1/streams/{stream_id}"))
                assert resume.status_code == 503 and took < BOUND, (resume.content, took)

            # A's own readers, served from A's memory, carry on: the short stream ends.
            await asyncio.wait_for(post, BOUND)
            assert text_of(first.events) == lorem_text(short)
            assert first.events[-1].data == "[DONE]"

            assert not post2.done(), "the long stream should run across the outage"
            redis_server.start()  # empty: Redis keeps nothing here
            timings["outage"] = time.monotonic() - stopped
            # A writes what Redis lost again; then B serves the rest after its last id.
            deadline = time.monotonic() + BOUND
            while True:
                rest, _ = await timed(
                    client.get(
                        f"{b.url}/v1/streams/{stream_id}",
                        headers={"last-event-id": followed.events[-1].id},
                    )
                )
                if rest.status_code == 200:
                    break
                # Not there yet (404), or not whole yet while A writes it again (400).
                assert rest.status_code in (400, 404, 503), rest.content
                assert time.monotonic() < deadline, "the stream never came back"
                await asyncio.sleep(0.1)
            timings["readable on B again"] = time.monotonic() - stopped
            tail = Decoder().feed(rest.content)
            assert seen + text_of(tail) == lorem_text(short)
            assert tail[-1].data == "[DONE]"
            # The long one, still running, is followed on B to its end: nothing lost.
            across = Followed()
            await asyncio.wait_for(
                follow(client, "GET", f"{b.url}/v1/streams/{second.stream_id}", across), BOUND
            )
            assert text_of(across.events) == lorem_text(long)
            await asyncio.wait_for(post2, BOUND)
            assert text_of(second.events) == lorem_text(long)

            # New streams work again, on both, also across instances.
            for one, other in ((a, b), (b, a)):
                fresh = Followed()
                await follow(client, "POST", one.url + CHAT, fresh, body=chat(20))
                assert fresh.status == 200 and text_of(fresh.events) == lorem_text(20)
                again = await client.get(f"{other.url}/v1/streams/{fresh.stream_id}")
                assert text_of(Decoder().feed(again.content)) == lorem_text(20)
            # And a DELETE still reaches the owner (its cancel listener is back).
            running = Followed()
            task = asyncio.ensure_future(
                follow(client, "POST", a.url + CHAT, running, body=chat(2000))
            )
            await wait_until(lambda: running.events, 10, "a new stream on A")
            deleted, took = await timed(client.delete(f"{b.url}/v1/streams/{running.stream_id}"))
            assert deleted.json()["cancelled"] is True and took < 2.5
            await asyncio.wait_for(task, BOUND)

    asyncio.run(main())
    for gateway in (a, b):
        assert gateway.alive() and httpx.get(gateway.url + "/healthz").status_code == 200
    no_tracebacks(a, b)
    print(", ".join(f"{k}: {v:.2f} s" for k, v in timings.items()))


# --- 7. finished streams outlive a restart, until their retention ends -------------------------

RETENTION = 4.0


def test_a_finished_stream_stays_resumable_across_a_restart_until_its_retention_ends(
    procs: Procs, store_url: str
) -> None:
    config = gateway_toml(
        gateway={"grace_seconds": 30, "retention_seconds": RETENTION},
        store=store_table(store_url),
        provider=fake(1),
        models={"lorem": "fake:lorem"},
    )
    first = procs.gateway("first", config)
    with httpx.stream("POST", first.url + CHAT, json=chat(50), timeout=10) as response:
        events = Decoder().feed(response.read())
        stream_id = response.headers["x-stream-id"]
    finished = time.monotonic()
    assert text_of(events) == lorem_text(50) and events[-1].data == "[DONE]"
    first.terminate()
    # uvicorn re-raises SIGTERM once it has shut down gracefully (as test_serve_cli sees).
    assert first.wait(15) in (0, -signal.SIGTERM)
    # The same port, so the same instance name: what a restart looks like.
    second = procs.gateway("second", config, port=first.port)
    whole = httpx.get(f"{second.url}/v1/streams/{stream_id}", timeout=10)
    middle = events[len(events) // 2]
    rest = httpx.get(
        f"{second.url}/v1/streams/{stream_id}", headers={"last-event-id": middle.id}, timeout=10
    )
    read = time.monotonic()
    assert read - finished < RETENTION, "the restart took longer than the retention time"
    assert whole.status_code == 200 and rest.status_code == 200
    # Read at once, a finished stream comes with its text merged (fewer events): the same
    # text, and every other event identical.
    same_stream(Decoder().feed(whole.content), events)
    same_stream(Decoder().feed(rest.content), events[len(events) // 2 + 1 :])
    # Then it is forgotten, at the end of its retention time — counted from its last
    # read (a reader still reading gets to the end) — and not before.
    time.sleep(RETENTION * 0.6)
    still = httpx.get(f"{second.url}/v1/streams/{stream_id}", timeout=10)
    last_read = time.monotonic()
    assert still.status_code == 200, "forgotten before its retention time"
    time.sleep(max(0.0, last_read + RETENTION + 0.5 - time.monotonic()))
    gone = httpx.get(f"{second.url}/v1/streams/{stream_id}", timeout=10)
    now = time.monotonic()
    assert gone.status_code == 404, "still resumable after its retention time"
    assert "finished streams are kept" in gone.json()["error"]["message"]
    no_tracebacks(first, second)
    print(
        f"resumable {read - finished:.2f} s after it finished, across the restart; "
        f"gone after {now - finished:.2f} s (retention {RETENTION:g} s)"
    )


# --- 8. a rolling restart: SIGTERM drains into the store ---------------------------------------

DRAIN = 3.0


def test_sigterm_keeps_producing_into_the_store_for_the_drain_time(
    procs: Procs, store_url: str
) -> None:
    config = gateway_toml(
        gateway={"grace_seconds": 30},
        store=store_table(store_url),
        provider=fake(10),
        models={"lorem": "fake:lorem"},
    )
    a = procs.gateway("a", config, drain_seconds=DRAIN)
    b = procs.gateway("b", config)
    short, long = 200, 1000  # 2 s: completes within the drain; 10 s: does not

    async def main() -> tuple[Followed, Followed, float, float]:
        async with httpx.AsyncClient(timeout=30) as client:
            posts = [Followed(), Followed()]
            tasks = [
                asyncio.ensure_future(follow(client, "POST", a.url + CHAT, f, body=chat(n)))
                for f, n in zip(posts, (short, long), strict=True)
            ]
            await wait_until(lambda: all(f.events for f in posts), 10, "two streams on A")
            followers = [Followed(), Followed()]
            reading = [
                asyncio.ensure_future(follow(client, "GET", f"{b.url}/v1/streams/{p.stream_id}", f))
                for p, f in zip(posts, followers, strict=True)
            ]
            await wait_until(lambda: all(len(f.events) >= 10 for f in followers), 10, "events on B")
            a.terminate()
            termed = time.monotonic()
            await asyncio.wait_for(asyncio.gather(*reading), DRAIN + 10)
            await asyncio.gather(*tasks, return_exceptions=True)
            exit_code = await asyncio.to_thread(a.wait, DRAIN + 10)
            exited = time.monotonic() - termed
            assert exit_code in (0, -signal.SIGTERM), a.log()[-3000:]
            return followers[0], followers[1], termed, exited

    done, cut, termed, exited = asyncio.run(main())
    # The short one was produced to its end after A got SIGTERM, and completed.
    assert done.text_after(termed) and text_of(done.events) == lorem_text(short)
    assert done.events[-1].data == "[DONE]" and not errors_of(done.events)
    # The long one kept coming on B for the drain time, then ended as interrupted.
    assert len(cut.text_after(termed + DRAIN - 1).split()) >= 20
    (error,) = errors_of(cut.events)
    assert error["type"] == "interrupted", error
    text = text_of(cut.events)
    assert text == lorem_text(long)[: len(text)]
    assert DRAIN - 0.5 <= cut.ended - termed <= DRAIN + 2, cut.ended - termed
    assert exited <= DRAIN + 5, exited
    # What B read is what the store keeps.
    again = Decoder().feed(httpx.get(f"{b.url}/v1/streams/{cut.stream_id}", timeout=10).content)
    assert text_of(again) == text and errors_of(again) == [error]
    no_tracebacks(a, b)
    print(
        f"interrupted {cut.ended - termed:.2f} s after SIGTERM (drain {DRAIN:g} s); "
        f"A exited after {exited:.2f} s"
    )


# --- serve --workers: a dead worker's successor ends what it left running ---------------------


def worker_pids(supervisor: Proc) -> list[int]:
    """The worker processes of ``serve --workers`` (spawned interpreters), not the
    resource tracker that multiprocessing may also start."""
    found = []
    for task in Path(f"/proc/{supervisor.pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


def test_a_killed_worker_is_restarted_and_ends_its_streams_at_once(
    procs: Procs, tmp_path: Path
) -> None:
    lease = 30.0  # far longer than the test: only the restart can end the stream
    config = gateway_toml(
        gateway={"grace_seconds": 30},
        store=store_table(f"sqlite://{tmp_path / 'streams.db'}", lease_seconds=lease),
        provider=fake(10),
        models={"lorem": "fake:lorem"},
    )
    served = procs.gateway("workers", config, workers=2)
    workers = worker_pids(served)
    assert len(workers) == 2
    with httpx.stream("POST", served.url + CHAT, json=chat(3000), timeout=10) as response:
        head = b""
        for chunk in response.iter_raw():
            head += chunk
            if head.count(b"\n\n") >= 5:
                break
        stream_id = response.headers["x-stream-id"]
    for pid in workers:  # whichever owns it
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    served.wait_ready()
    # Workers come back under their names; the owner's successor ended the stream.
    deadline = killed + 10
    while True:
        resumed = httpx.get(f"{served.url}/v1/streams/{stream_id}", timeout=10)
        events = Decoder().feed(resumed.content)
        if errors_of(events):
            break
        assert time.monotonic() < deadline, "the stream was not ended by the new worker"
        time.sleep(0.1)
    ended = time.monotonic() - killed
    (error,) = errors_of(events)
    assert error["type"] == "interrupted"
    text = text_of(events)
    assert text == lorem_text(3000)[: len(text)]
    assert sorted(worker_pids(served)) != sorted(workers) and len(worker_pids(served)) == 2
    print(f"ended {ended:.2f} s after both workers were killed (lease {lease:g} s)")


# --- [gateway.store] max_streams: one limit across instances ----------------------------------


def test_the_store_s_stream_limit_counts_the_streams_of_every_instance(
    procs: Procs, store_url: str
) -> None:
    config = gateway_toml(
        gateway={"grace_seconds": 30},
        store=store_table(store_url, max_streams=2),
        provider=fake(10),
        models={"lorem": "fake:lorem"},
    )
    a = procs.gateway("a", config)
    b = procs.gateway("b", config)

    async def main() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            running = [Followed(), Followed()]
            stop = asyncio.Event()
            tasks = [
                asyncio.ensure_future(
                    follow(client, "POST", g.url + CHAT, f, body=chat(3000), stop=stop)
                )
                for g, f in zip((a, b), running, strict=True)
            ]
            await wait_until(lambda: all(f.events for f in running), 10, "a stream on each")
            for gateway in (a, b):
                refused = await client.post(gateway.url + CHAT, json=chat(5))
                assert refused.status_code == 429, refused.content
                assert "global limit" in refused.json()["error"]["message"]
                assert refused.headers["retry-after"] == "1"
            cancelled = await client.delete(f"{b.url}/v1/streams/{running[0].stream_id}")
            assert cancelled.json()["cancelled"] is True
            room = Followed()
            await follow(client, "POST", b.url + CHAT, room, body=chat(5))
            assert room.status == 200 and text_of(room.events) == lorem_text(5)
            stop.set()
            await asyncio.gather(*tasks)

    asyncio.run(main())
    no_tracebacks(a, b)


# --- every dialect: the stream another instance serves is the same stream ----------------------

DIALECT_REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "openai_chat": ("/v1/chat/completions", {**chat(40), "temperature": 0.5}),
    "anthropic": (
        "/v1/messages",
        {
            "model": "lorem",
            "max_tokens": 40,
            "temperature": 0.5,
            "messages": [{"role": "user", "content": "go"}],
            "stream": True,
        },
    ),
    "openai_responses": (
        "/v1/responses",
        {
            "model": "lorem",
            "input": "go",
            "max_output_tokens": 40,
            "temperature": 0.5,
            "metadata": {"team": "a"},
            "stream": True,
        },
    ),
}


def is_text_delta(event: Event) -> bool:
    data = json.loads(event.data) if event.data != "[DONE]" else {}
    if event.event == "content_block_delta":
        return bool(data["delta"].get("type") == "text_delta")
    if event.event == "response.output_text.delta":
        return True
    return bool(content(event))


def without_text(events: list[Event]) -> list[tuple[str, str, Any]]:
    """Every event but the text deltas (which a reader that was behind gets merged), as
    (id, name, data) — without Responses' sequence numbers, which count those deltas."""
    out = []
    for event in events:
        if is_text_delta(event):
            continue
        data = json.loads(event.data) if event.data != "[DONE]" else event.data
        if isinstance(data, dict):
            data.pop("sequence_number", None)
        out.append((event.id, event.event, data))
    return out


@pytest.mark.parametrize("dialect", list(DIALECT_REQUESTS))
def test_a_stream_read_on_another_instance_is_the_same_stream_in_every_dialect(
    procs: Procs, redis_url: str, dialect: str
) -> None:
    config = gateway_toml(
        gateway={"grace_seconds": 30},
        store=store_table(redis_url),
        provider=fake(1),
        models={"lorem": "fake:lorem"},
    )
    a = procs.gateway("a", config)
    b = procs.gateway("b", config)
    path, request = DIALECT_REQUESTS[dialect]
    with httpx.stream("POST", a.url + path, json=request, timeout=10) as response:
        assert response.status_code == 200
        original = Decoder().feed(response.read())
        stream_id = response.headers["x-stream-id"]
    again = Decoder().feed(httpx.get(f"{b.url}/v1/streams/{stream_id}", timeout=10).content)
    decoded = [
        accumulate(feed_all(DIALECTS[dialect].decoder(), [rebuilt(e)])) for e in (original, again)
    ]
    assert decoded[0].choices[0].text == decoded[1].choices[0].text == lorem_text(40)
    # The response objects a client's SDK builds (the request's settings they echo, ids,
    # usage) must not depend on which instance it read the stream from.
    assert without_text(again) == without_text(original)


def ui_text(events: list[Event]) -> str:
    """The text of an AI SDK UI message stream's ``text-delta`` chunks."""
    chunks = [json.loads(e.data) for e in events if e.data != "[DONE]"]
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


@pytest.mark.slow
def test_an_ai_sdk_chat_resumes_on_another_instance(procs: Procs, store_url: str) -> None:
    """``useChat``'s resume (``GET /v1/ui/chat/{id}/stream``) finds the chat's running
    stream from any instance sharing the store; once it is finished, 204 everywhere."""
    mock = procs.mock(token_ms=10)
    config = gateway_toml(
        gateway={"grace_seconds": 30},
        provider=upstream(mock),
        models={"lorem": "up:lorem"},
    )
    a = procs.gateway("a", config, store=store_url)
    b = procs.gateway("b", config, store=store_url)
    body = {
        "id": "chat-anywhere",
        "model": "lorem",
        "maxOutputTokens": 150,
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "go"}]}],
    }
    with httpx.stream("POST", a.url + "/v1/ui/chat", json=body, timeout=10) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        while not next(lines).startswith('data: {"type":"text-delta"'):
            pass  # the page goes away after the first words
    resumed = httpx.get(f"{b.url}/v1/ui/chat/chat-anywhere/stream", timeout=30)
    assert resumed.status_code == 200
    assert resumed.headers["x-vercel-ai-ui-message-stream"] == "v1"
    events = Decoder().feed(resumed.content)
    assert json.loads(events[0].data)["type"] == "start"  # a whole replay: the SDK resets
    assert ui_text(events) == lorem_text(150)
    assert events[-1].data == "[DONE]"
    for gateway in (a, b):
        again = httpx.get(f"{gateway.url}/v1/ui/chat/chat-anywhere/stream", timeout=10)
        assert again.status_code == 204
    no_tracebacks(a, b)


@pytest.mark.slow
def test_a_stored_response_is_read_continued_and_resumed_from_another_instance(
    procs: Procs, store_url: str
) -> None:
    """The Responses API's state lives in the store: a response made on A is retrieved
    and continued (``previous_response_id``) on B, and a background stream started on A
    resumes on B by ``starting_after``."""
    import openai

    from tests.dialect_helpers import openai_client

    mock = procs.mock(token_ms=10)
    config = gateway_toml(
        gateway={"grace_seconds": 30},
        provider=upstream(mock),
        models={"lorem": "up:lorem", "echo": "up:echo"},
    )
    a = procs.gateway("a", config, store=store_url)
    b = procs.gateway("b", config, store=store_url)
    with openai_client(a.url + "/v1") as on_a, openai_client(b.url + "/v1") as on_b:
        first = on_a.responses.create(model="echo", input="My name is Ada")
        assert on_b.responses.retrieve(first.id).output_text == "My name is Ada"
        second = on_b.responses.create(
            model="echo", input="And yours?", previous_response_id=first.id
        )
        assert second.output_text == "And yours?"
        items = on_b.responses.input_items.list(second.id, order="asc")
        assert len(items.data) == 1  # its own input (the first turn is first's)
        seen: list[Any] = []
        with on_a.responses.create(
            model="lorem", input="go", stream=True, background=True, max_output_tokens=150
        ) as events:
            for event in events:
                seen.append(event)
                if event.type == "response.output_text.delta" and len(seen) > 10:
                    break
        with on_b.responses.retrieve(
            seen[0].response.id, stream=True, starting_after=seen[-1].sequence_number
        ) as resumed:
            rest = list(resumed)
        text = "".join(e.delta for e in seen + rest if e.type == "response.output_text.delta")
        assert text == lorem_text(150)
        with pytest.raises(openai.NotFoundError):
            on_b.responses.retrieve("resp_" + "0" * 32)
    no_tracebacks(a, b)


@pytest.mark.slow
def test_a_key_s_requests_per_minute_hold_across_instances(procs: Procs, store_url: str) -> None:
    """Per-minute limits are counted in the shared store: four requests a minute for the
    key, whichever instances they land on. Each instance logs one line per request."""
    mock = procs.mock(token_ms=1)
    config = gateway_toml(
        gateway={"log_format": "json"}, provider=upstream(mock), models={"echo": "up:echo"}
    )
    config += '\n[[keys]]\nname = "team"\nsecret_env = "TEAM_KEY"\nrequests_per_minute = 4\n'
    env = {"TEAM_KEY": "sk-team-shared"}
    a = procs.gateway("a", config, store=store_url, env=env)
    b = procs.gateway("b", config, store=store_url, env=env)
    headers = {"authorization": "Bearer sk-team-shared"}
    body = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}
    left = 60 - time.time() % 60  # the windows are whole minutes of the clock
    if left < 10:
        time.sleep(left + 0.2)  # not across a window's end
    statuses = [
        httpx.post(f"{g.url}/v1/chat/completions", json=body, headers=headers, timeout=10)
        for g in (a, b, a, b, a, b)
    ]
    codes = [r.status_code for r in statuses]
    assert codes == [200, 200, 200, 200, 429, 429], codes
    assert "requests_per_minute" in statuses[4].json()["error"]["message"]
    lines = [
        json.loads(line)
        for g in (a, b)
        for line in g.log().splitlines()
        if line.startswith("{") and '"endpoint"' in line
    ]
    assert sorted(x["status"] for x in lines) == [200, 200, 200, 200, 429, 429]
    assert {x["key"] for x in lines} == {"team"}
    assert "sk-team-shared" not in a.log() + b.log()
    no_tracebacks(a, b)


@pytest.mark.slow
def test_concurrent_requests_cannot_all_pass_the_stream_limits(
    procs: Procs, store_url: str
) -> None:
    """Each slot is taken when the request arrives, before any store round trip: a burst
    of simultaneous requests gets exactly the key's max_streams, and the instance's."""
    from tests.test_gateway_keys import simultaneous

    mock = procs.mock(token_ms=20)
    config = gateway_toml(
        gateway={"max_streams": 3}, provider=upstream(mock), models={"lorem": "up:lorem"}
    )
    config += (
        '\n[[keys]]\nname = "one"\nsecret_env = "ONE_KEY"\nmax_streams = 1\n'
        "requests_per_minute = 1000\ntokens_per_minute = 1000000\n"
        '\n[[keys]]\nname = "many"\nsecret_env = "MANY_KEY"\nrequests_per_minute = 1000\n'
    )
    gateway = procs.gateway(
        "a", config, store=store_url, env={"ONE_KEY": "sk-one", "MANY_KEY": "sk-many"}
    )
    one = asyncio.run(simultaneous(gateway.url, "sk-one", 10))
    assert sorted(one) == [200] + [429] * 9, one
    deadline = time.monotonic() + 5
    while httpx.get(gateway.url + "/readyz").json()["active_streams"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    many = asyncio.run(simultaneous(gateway.url, "sk-many", 12))
    assert many.count(200) == 3 and many.count(429) == 9, many
    no_tracebacks(gateway)
