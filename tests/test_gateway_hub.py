"""The stream hub over a ``MemoryStore``, read through the gateway's one delivery loop
(``HubStreamResponse``, driven as an ASGI app): one producer per stream, readers that
resume exactly and merge when behind, a grace period before the upstream is cancelled,
one ``StreamEnded`` record for every way a stream ends and what its readers see at its
end, draining on close, and ``cancel_anywhere``."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest

from tests.dialect_helpers import AsgiClient, data_lines, read_stream
from tests.neutral_streams import essence
from tokenrelay.gateway.hub import StreamHub, parse_event_id
from tokenrelay.gateway.stream import (
    EndReason,
    StreamEnded,
    StreamMeta,
    cancelled_error,
    interrupted_error,
)
from tokenrelay.llm import (
    ANTHROPIC,
    DIALECTS,
    OPENAI_CHAT,
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    Message,
    Request,
    Start,
    StreamError,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    accumulate,
)
from tokenrelay.llm.anthropic import PING_FRAME
from tokenrelay.llm.dialect import Dialect
from tokenrelay.llm.estimate import estimate_usage
from tokenrelay.llm.frame import Frame
from tokenrelay.llm.pack import unpack
from tokenrelay.providers.base import UpstreamError
from tokenrelay.sse import Decoder, comment
from tokenrelay.store import MemoryStore, StoreUnavailableError, StreamNotFoundError
from tokenrelay.store.base import StreamExistsError

REQUEST = Request("m", (Message("user", (TextPart("hi"),)),), stream=True, include_usage=True)
META = StreamMeta(dialect="openai_chat", model="m")
SERVED = ["openai_chat", "anthropic", "openai_responses", "vercel_ui"]


def ping_for(dialect: Dialect) -> Frame | bytes | None:
    return PING_FRAME if dialect is ANTHROPIC else comment("ping")


def hub(
    grace: float = 30.0, ping: float = 15.0, on_end: Callable[[StreamEnded], None] | None = None
) -> StreamHub:
    return StreamHub(MemoryStore(), grace=grace, ping=ping, ping_frame=ping_for, on_end=on_end)


def script(words: int = 20) -> list[Delta]:
    out: list[Delta] = [Start("s1", "m", 1)]
    out += [TextDelta(f" w{i}") for i in range(words)]
    out += [ToolCallStart(0, "call_1", "f"), ToolCallDelta(0, '{"a":'), ToolCallDelta(0, "1}"),
            ToolCallEnd(0), Usage(3, words + 3), Finish(FinishReason.TOOL_CALLS)]  # fmt: skip
    return out


async def source(deltas: list[Delta], pause: float = 0.0) -> AsyncIterator[Delta]:
    for delta in deltas:
        if pause:
            await asyncio.sleep(pause)
        yield delta


def events(wire: bytes) -> list[tuple[str, str]]:
    return [(e.id, e.data) for e in Decoder().feed(wire)]


def blocks(wire: bytes) -> list[bytes]:
    """The SSE events of ``wire`` as sent, one block each."""
    return [b + b"\n\n" for b in wire.split(b"\n\n") if b]


def id_line(block: bytes) -> bytes:
    """The value of the ``id:`` line of one sent event (b"" without one)."""
    found = re.search(rb"^id: (.*)$", block, re.M)
    return found[1] if found else b""


def renumbered(wire: bytes) -> bytes:
    """Responses' sequence_number counts events, so a reader that merged text (the full
    read here found every entry waiting) numbers later events lower than an unmerged
    replay does; the numbers still only grow. Everything else must be byte-identical."""
    return re.sub(rb'"sequence_number":\d+', b'"sequence_number":_', wire)


def decoded(dialect: Dialect, wire: bytes) -> list[Delta]:
    decoder = dialect.decoder()
    return decoder.feed(wire) + decoder.close()


async def log_of(h: StreamHub, stream_id: str) -> list[Delta]:
    entries, done = await h.store.read(stream_id, 0)
    assert done
    return [unpack(e) for e in entries]


class Upstream:
    """A generation for the hub: ``deltas`` (``pause`` seconds apart), then with
    ``forever`` a word every 10 ms until it is closed, then ``error`` raised if given.
    ``closed`` is set once the generator has been closed (the provider's ``aclose``)."""

    def __init__(
        self,
        deltas: list[Delta],
        *,
        pause: float = 0.0,
        forever: bool = False,
        error: Exception | None = None,
    ) -> None:
        self.deltas = deltas
        self.pause = pause
        self.forever = forever
        self.error = error
        self.closed = asyncio.Event()

    async def run(self) -> AsyncIterator[Delta]:
        try:
            for delta in self.deltas:
                if self.pause:
                    await asyncio.sleep(self.pause)
                yield delta
            while self.forever:
                await asyncio.sleep(0.01)
                yield TextDelta(" x")
            if self.error is not None:
                raise self.error
        finally:
            self.closed.set()


class Ends:
    """An ``on_end``: every record it is handed, in order."""

    def __init__(self) -> None:
        self.records: list[StreamEnded] = []
        self._any = asyncio.Event()

    def __call__(self, ended: StreamEnded) -> None:
        self.records.append(ended)
        self._any.set()

    async def first(self) -> StreamEnded:
        await asyncio.wait_for(self._any.wait(), 2)
        return self.records[0]

    def reason(self, stream_id: str) -> EndReason:
        (record,) = [r for r in self.records if r.stream_id == stream_id]
        return record.reason


# -- every way a stream ends -------------------------------------------------------------

TEXT: list[Delta] = [Start("s1", "m", 1), TextDelta(" a"), TextDelta(" b")]
BROKE = StreamError(ErrorKind.SERVER, "the upstream broke", 500)
DELETED = cancelled_error(EndReason.DELETED)
ABANDONED = cancelled_error(EndReason.DISCONNECTED)


async def nothing(h: StreamHub) -> None:
    return None


async def delete(h: StreamHub) -> None:
    await asyncio.sleep(0.03)
    assert h.cancel("s1")  # EndReason.DELETED is the default: what DELETE does


async def leave(h: StreamHub) -> None:
    # The one reader leaves after its first events; the hub's grace period is 0.
    client = AsgiClient(leave_after=lambda body: True)
    await read_stream(h, h.reader("s1", OPENAI_CHAT, REQUEST), client=client)
    assert client.left and not client.ended


async def shut_down(h: StreamHub) -> None:
    await asyncio.sleep(0.03)
    await h.aclose()


@dataclass(frozen=True)
class Ending:
    """One way for stream "s1" to end: its upstream, what ends it once started, the
    reason recorded and the last two entries of its log (given the estimated usage)."""

    reason: EndReason
    upstream: Callable[[], Upstream]
    end: Callable[[StreamHub], Awaitable[None]]
    tail: Callable[[Usage], list[Delta]]


def endless() -> Upstream:
    return Upstream(TEXT, forever=True)


ENDINGS = {
    "completed": Ending(
        EndReason.COMPLETED,
        lambda: Upstream(script(5)),
        nothing,
        lambda estimate: script(5)[-2:],  # the upstream's usage and finish, nothing after
    ),
    "upstream error": Ending(
        EndReason.ERROR,
        lambda: Upstream(TEXT, error=UpstreamError(BROKE, retryable=False)),
        nothing,
        lambda estimate: [BROKE, estimate],
    ),
    "error event": Ending(
        EndReason.ERROR, lambda: Upstream([*TEXT, BROKE]), nothing, lambda e: [BROKE, e]
    ),
    # Cut short: usage (estimated), then the error event that tells it from a whole answer.
    "deleted": Ending(EndReason.DELETED, endless, delete, lambda e: [e, DELETED]),
    "disconnected": Ending(EndReason.DISCONNECTED, endless, leave, lambda e: [e, ABANDONED]),
    "shutdown": Ending(EndReason.SHUTDOWN, endless, shut_down, lambda e: [e, interrupted_error()]),
}


async def end_stream(how: str, ends: Ends | None = None) -> StreamHub:
    """A hub (grace 0) whose stream "s1" has ended the way ``how`` names, its upstream
    closed; the hub is closed too."""
    ending = ENDINGS[how]
    h = hub(grace=0, on_end=ends)
    upstream = ending.upstream()
    await h.start("s1", META, REQUEST, upstream.run())
    await ending.end(h)
    await asyncio.wait_for(upstream.closed.wait(), 2)
    if ends is not None:
        await ends.first()
    await h.aclose()
    await asyncio.sleep(0.02)  # time for a second record, were there one
    return h


@pytest.mark.parametrize("how", list(ENDINGS))
def test_every_way_a_stream_ends_hands_one_record_with_its_reason_and_usage(how: str) -> None:
    async def main() -> None:
        ends = Ends()
        h = await end_stream(how, ends)
        (record,) = ends.records
        assert record.stream_id == "s1" and record.meta == META
        assert record.reason is ENDINGS[how].reason
        log = await log_of(h, "s1")
        text = "".join(d.text for d in log if isinstance(d, TextDelta))
        estimate = estimate_usage(REQUEST, text)
        assert estimate.output_tokens > 0
        # The log ends with usage (the upstream's, or an estimate) and with what says how
        # it ended; the record has the same usage.
        assert log[-2:] == ENDINGS[how].tail(estimate)
        (usage,) = [d for d in log if isinstance(d, Usage)]
        assert record.usage == usage
        if how == "completed":
            assert log == script(5) and not usage.estimated
        assert not h.cancel("s1") and h.active == 0

    asyncio.run(main())


def test_a_completed_stream_ends_with_the_upstreams_finish_and_usage() -> None:
    async def main() -> None:
        h = await end_stream("completed")
        lines = data_lines(await read_stream(h, h.reader("s1", OPENAI_CHAT, REQUEST)))
        finishes = [c["finish_reason"] for c in choices_of(lines) if c["finish_reason"]]
        assert finishes == ["tool_calls"]
        assert lines[-1] == "[DONE]"
        usage = lines[-2]
        assert isinstance(usage, dict) and usage["usage"]["completion_tokens"] == 8

    asyncio.run(main())


@pytest.mark.parametrize("how", ["upstream error", "error event"])
def test_an_upstream_error_ends_the_stream_with_the_dialects_error_event(how: str) -> None:
    async def main() -> None:
        h = await end_stream(how)
        lines = data_lines(await read_stream(h, h.reader("s1", OPENAI_CHAT, REQUEST)))
        last = lines[-1]
        assert isinstance(last, dict) and last["error"]["message"] == BROKE.message

    asyncio.run(main())


def test_a_stream_ended_by_shutdown_ends_with_the_interruption_and_usage() -> None:
    async def main() -> None:
        h = await end_stream("shutdown")
        wire = await read_stream(h, h.reader("s1", OPENAI_CHAT, REQUEST))
        *_, last = data_lines(wire)
        assert isinstance(last, dict) and "interrupted" in last["error"]["message"]
        assert all(b"\nid: " in b"\n" + block for block in blocks(wire))  # resumable
        *_, usage, error = await log_of(h, "s1")
        assert error == interrupted_error()
        assert isinstance(usage, Usage) and usage.estimated
        # openai_chat puts the usage chunk on the wire before the error event
        assert any(isinstance(line, dict) and line.get("usage") for line in data_lines(wire))

    asyncio.run(main())


@pytest.mark.parametrize("how", ["deleted", "disconnected"])
@pytest.mark.parametrize("name", SERVED)
def test_a_cut_stream_ends_with_the_dialects_error_event_never_a_finish(
    how: str, name: str
) -> None:
    async def main() -> None:
        h = await end_stream(how)
        dialect = DIALECTS[name]
        deltas = decoded(dialect, await read_stream(h, h.reader("s1", dialect, REQUEST)))
        errors = [d for d in deltas if isinstance(d, StreamError)]
        assert len(errors) == 1 and "stream cancelled" in errors[0].message, deltas[-3:]
        assert not any(isinstance(d, Finish) for d in deltas)

    asyncio.run(main())


def choices_of(lines: list[object]) -> list[dict[str, object]]:
    return [c for line in lines if isinstance(line, dict) for c in line.get("choices", [])]


# -- the upstream first -------------------------------------------------------------------


async def log_exists(h: StreamHub, stream_id: str) -> bool:
    try:
        await h.store.info(stream_id)
    except StreamNotFoundError:
        return False
    return True


@pytest.mark.parametrize("limit", [None, 10])
def test_the_upstream_hears_of_a_stream_before_its_log_is_made_unless_a_global_limit_counts(
    limit: int | None,
) -> None:
    # The generation's first step is where a provider sends its request: without a global
    # limit it runs before the log is created (the two overlap: a round trip, in a shared
    # store), and the stream is whole all the same; under one, the store counts first.
    async def main() -> None:
        h = StreamHub(MemoryStore(), grace=30, ping=15, ping_frame=ping_for, global_limit=limit)
        seen: list[bool] = []

        async def upstream() -> AsyncIterator[Delta]:
            seen.append(await log_exists(h, "s"))
            for delta in [*TEXT, Finish(FinishReason.STOP)]:
                yield delta

        first = await h.start("s", META, REQUEST, upstream())
        assert await first == TEXT[0]
        await h.finished("s")
        assert seen == [limit is not None]
        assert await log_of(h, "s") == [
            *TEXT, Finish(FinishReason.STOP), estimate_usage(REQUEST, " a b")
        ]  # fmt: skip
        await h.aclose()

    asyncio.run(main())


def test_a_stream_counts_as_active_once_its_log_is_made() -> None:
    # While ``start`` makes the log (its caller counts the stream as starting until then),
    # the stream is not active yet: counted in both, a burst of requests was refused below
    # the instance's max_streams.
    async def main() -> None:
        h = hub()
        seen: list[int] = []

        async def upstream() -> AsyncIterator[Delta]:
            seen.append(h.active)  # the first step: the log is being made
            for delta in TEXT:
                yield delta

        first = await h.start("s", META, REQUEST, upstream())
        assert seen == [0] and h.active == 1
        await first
        await h.finished("s")
        assert h.active == 0
        await h.aclose()

    asyncio.run(main())


def test_a_stream_whose_log_cannot_be_made_stops_its_upstream_and_never_was() -> None:
    # The upstream has heard of the stream when the store refuses its log (here: the id
    # is taken by a finished stream): the generation stops, appends nothing, and leaves
    # no record; the refusal reaches the caller.
    async def main() -> None:
        ends = Ends()
        h = hub(on_end=ends)
        await (await h.start("s", META, REQUEST, source(TEXT)))
        await h.finished("s")
        before = await log_of(h, "s")
        state: list[str] = []

        async def upstream() -> AsyncIterator[Delta]:
            state.append("started")
            try:
                while True:
                    yield TextDelta(" x")
                    await asyncio.sleep(0.01)
            finally:
                state.append("closed")

        with pytest.raises(StreamExistsError):
            await h.start("s", META, REQUEST, upstream())
        for _ in range(100):
            if "closed" in state:
                break
            await asyncio.sleep(0.01)
        assert state == ["started", "closed"]  # the upstream heard first, and was stopped
        await asyncio.sleep(0.02)  # time for a record, were there one
        assert await log_of(h, "s") == before
        assert [r.stream_id for r in ends.records] == ["s"]
        assert h.active == 0
        await h.aclose()

    asyncio.run(main())


def test_an_upstream_failing_while_the_log_is_made_has_its_error_and_end_logged() -> None:
    # The first step fails (a refused connection, say) before the log exists: the error
    # waits for the log, then goes in with the stream's end, as it always did.
    async def main() -> None:
        ends = Ends()
        h = hub(on_end=ends)
        up = Upstream([], error=UpstreamError(BROKE, retryable=False))
        first = await h.start("s", META, REQUEST, up.run())
        failure = await first
        assert isinstance(failure, UpstreamError) and failure.error == BROKE
        await h.finished("s")
        logged = await log_of(h, "s")
        assert logged[0] == BROKE and isinstance(logged[-1], Usage)
        assert ends.reason("s") is EndReason.ERROR
        await h.aclose()

    asyncio.run(main())


def test_a_second_stream_with_a_running_ones_id_is_refused_before_its_upstream_hears() -> None:
    async def main() -> None:
        h = hub()
        running = Upstream(TEXT, forever=True)
        await (await h.start("s", META, REQUEST, running.run()))
        started: list[bool] = []

        async def second() -> AsyncIterator[Delta]:
            started.append(True)
            yield TEXT[0]

        generation = second()
        with pytest.raises(StreamExistsError):
            await h.start("s", META, REQUEST, generation)
        await generation.aclose()
        assert not started and h.active == 1
        await h.aclose()
        assert running.closed.is_set()

    asyncio.run(main())


# -- draining on close, cancel_anywhere -----------------------------------------------------


def test_aclose_lets_what_finishes_within_the_drain_time_complete_and_ends_the_rest() -> None:
    async def main() -> None:
        ends = Ends()
        h = hub(on_end=ends)
        fast, slow = Upstream(script(5), pause=0.02), endless()
        await h.start("fast", META, REQUEST, fast.run())  # done in about 0.25 s
        await h.start("slow", META, REQUEST, slow.run())
        loop = asyncio.get_running_loop()
        began = loop.time()
        await h.aclose(drain=0.5)
        took = loop.time() - began
        assert 0.5 <= took < 0.9  # the drain time, then at once (the slow one is endless)
        assert ends.reason("fast") is EndReason.COMPLETED
        assert ends.reason("slow") is EndReason.SHUTDOWN and slow.closed.is_set()
        assert await log_of(h, "fast") == script(5)
        assert (await log_of(h, "slow"))[-1] == interrupted_error()

    asyncio.run(main())


def test_aclose_returns_once_every_generation_has_finished_within_the_drain_time() -> None:
    async def main() -> None:
        ends = Ends()
        h = hub(on_end=ends)
        await h.start("s1", META, REQUEST, Upstream(script(5), pause=0.02).run())
        loop = asyncio.get_running_loop()
        began = loop.time()
        await h.aclose(drain=10)
        assert loop.time() - began < 1
        assert [r.reason for r in ends.records] == [EndReason.COMPLETED]

    asyncio.run(main())


def test_cancel_anywhere_stops_a_stream_running_here_and_says_what_it_did() -> None:
    async def main() -> None:
        ends = Ends()
        h = hub(on_end=ends)
        upstream = endless()
        await h.start("s1", META, REQUEST, upstream.run())
        await asyncio.sleep(0.03)
        assert await h.cancel_anywhere("s1") is True
        await asyncio.wait_for(upstream.closed.wait(), 1)
        assert (await ends.first()).reason is EndReason.DELETED
        assert await h.cancel_anywhere("s1") is False  # finished already
        with pytest.raises(StreamNotFoundError):
            await h.cancel_anywhere("unknown")
        await h.aclose()
        assert len(ends.records) == 1

    asyncio.run(main())


# -- readers ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVED)
def test_a_reader_gets_the_whole_stream_with_an_id_on_every_event(name: str) -> None:
    async def main() -> None:
        h = hub()
        await h.start("s1", META, REQUEST, source(script()))
        client = AsgiClient()
        wire = await read_stream(h, h.reader("s1", DIALECTS[name], REQUEST), client=client)
        assert client.ended
        ids = [i for i, _ in events(wire)]
        assert ids and all(ids) and len(set(ids)) == len(ids)
        if name != "vercel_ui":
            want = essence(accumulate(script()))
            assert essence(accumulate(decoded(DIALECTS[name], wire))) == want

    asyncio.run(main())


@pytest.mark.parametrize("name", SERVED)
def test_resuming_after_any_id_sends_exactly_the_rest(name: str) -> None:
    async def main() -> None:
        h = hub()
        await h.start("s1", META, REQUEST, source(script(8)))
        dialect = DIALECTS[name]
        full = await read_stream(h, h.reader("s1", dialect, REQUEST))
        sent = blocks(full)
        all_events = events(full)
        assert len(sent) == len(all_events)
        for n, (event_id, _) in enumerate(all_events):
            reader = h.reader("s1", dialect, REQUEST, parse_event_id(event_id))
            rest = await read_stream(h, reader)
            assert renumbered(rest) == renumbered(b"".join(sent[n + 1 :])), event_id

    asyncio.run(main())


def test_a_reader_that_falls_behind_gets_merged_text_and_loses_nothing() -> None:
    async def main() -> None:
        h = hub()
        deltas = script(500)
        await h.start("s1", META, REQUEST, source(deltas))
        await asyncio.sleep(0.05)  # the producer has written everything: the reader is behind
        wire = await read_stream(h, h.reader("s1", OPENAI_CHAT, REQUEST))
        merged = events(wire)
        assert len(merged) < 20  # 500 words came as a handful of events
        assert essence(accumulate(decoded(OPENAI_CHAT, wire))) == essence(accumulate(deltas))
        # A resume from a merged event's id continues exactly after it.
        for n, (event_id, _) in enumerate(merged):
            reader = h.reader("s1", OPENAI_CHAT, REQUEST, parse_event_id(event_id))
            rest = await read_stream(h, reader)
            prefix = b"".join(b + b"\n\n" for b in wire.split(b"\n\n")[: n + 1] if b)
            joined = decoded(OPENAI_CHAT, prefix + rest)
            assert essence(accumulate(joined)) == essence(accumulate(deltas)), event_id

    asyncio.run(main())


def test_random_disconnects_resume_with_no_gap_and_no_duplicate() -> None:
    async def main() -> None:
        rng = random.Random(5)
        h = hub()
        deltas = script(60)
        await h.start("s1", META, REQUEST, source(deltas, pause=0.001))
        for trial in range(30):
            dialect = DIALECTS[rng.choice(SERVED[:3])]
            got = b""
            after = None
            while True:
                client = AsgiClient(leave_after=lambda body: rng.random() < 0.3)
                got += await read_stream(h, h.reader("s1", dialect, REQUEST, after), client=client)
                if not client.left:
                    assert client.ended
                    break
                # the response sends whole events: the client's last id is the last event's
                after = parse_event_id(events(got)[-1][0])
            assert essence(accumulate(decoded(dialect, got))) == essence(accumulate(deltas)), trial

    asyncio.run(main())


def test_last_reader_leaving_cancels_the_generation_after_the_grace_period() -> None:
    async def main() -> None:
        for grace in (0.0, 0.2):
            ends = Ends()
            h = hub(grace=grace, on_end=ends)
            upstream = endless()
            await h.start("s", META, REQUEST, upstream.run())
            client = AsgiClient(leave_after=lambda body: True)
            await read_stream(h, h.reader("s", OPENAI_CHAT, REQUEST), client=client)
            loop = asyncio.get_running_loop()
            left = loop.time()
            await asyncio.wait_for(upstream.closed.wait(), 2)
            waited = loop.time() - left
            assert grace <= waited < grace + 0.1
            assert (await ends.first()).reason is EndReason.DISCONNECTED
            *_, usage, error = await log_of(h, "s")
            assert isinstance(usage, Usage) and usage.estimated
            assert error == ABANDONED

    asyncio.run(main())


def test_a_reader_returning_within_the_grace_period_keeps_the_generation() -> None:
    async def main() -> None:
        ends = Ends()
        h = hub(grace=0.3, on_end=ends)
        await h.start("s", META, REQUEST, source(script(40), pause=0.01))
        client = AsgiClient(leave_after=lambda body: True)
        first = await read_stream(h, h.reader("s", OPENAI_CHAT, REQUEST), client=client)
        await asyncio.sleep(0.1)
        after = parse_event_id(events(first)[-1][0])
        rest = await read_stream(h, h.reader("s", OPENAI_CHAT, REQUEST, after))
        assert essence(accumulate(decoded(OPENAI_CHAT, first + rest))) == essence(
            accumulate(script(40))
        )
        assert (await ends.first()).reason is EndReason.COMPLETED

    asyncio.run(main())


@pytest.mark.parametrize("dialect", [OPENAI_CHAT, ANTHROPIC])
def test_pings_keep_the_connection_alive_while_the_upstream_pauses(dialect: Dialect) -> None:
    async def main() -> None:
        h = hub()
        deltas = script(4)

        async def pausing() -> AsyncIterator[Delta]:
            for n, delta in enumerate(deltas):
                if n in (0, 3):
                    await asyncio.sleep(0.2)  # before the first event, and after a few
                yield delta

        await h.start("s", META, REQUEST, pausing())
        wire = await read_stream(h, h.reader("s", dialect, REQUEST), ping=0.05)
        if dialect is ANTHROPIC:
            assert wire.startswith(b"event: ping\n")
            # A ping between events carries the last event's id: resuming stays exact.
            sent = blocks(wire)
            middle = [
                (ping, sent[n - 1])
                for n, ping in enumerate(sent)
                if n and ping.startswith(b"event: ping\n") and b"event: ping\n" not in sent[n - 1]
            ]
            assert middle
            assert all(id_line(ping) == id_line(before) != b"" for ping, before in middle)
        else:
            assert wire.startswith(b": ping\n\n")
            assert wire.count(b": ping\n\n") >= 4
        want = essence(accumulate(deltas))
        assert essence(accumulate(decoded(dialect, wire))) == want

    asyncio.run(main())


@pytest.mark.parametrize("text", ["", "1", "a.b", "1.", ".1", "1.2.3x"])
def test_malformed_event_ids_are_value_errors(text: str) -> None:
    if text == "":
        assert parse_event_id(text) is None
        return
    with pytest.raises(ValueError):
        parse_event_id(text)


class _FailingAppends(MemoryStore):
    """A memory store whose appends fail, as a shared store's may when it goes away."""

    async def append(self, stream_id: str, entries: Sequence[bytes]) -> int:
        raise StoreUnavailableError("the store went away")


def test_a_store_failing_at_the_first_append_refuses_the_request_with_503() -> None:
    # The first delta resolves the handler's future once it is in the log: a log that
    # cannot take it means a 503 in the caller's dialect, not a 200 whose stream fails.
    async def main() -> None:
        h = StreamHub(_FailingAppends(), grace=30, ping=15, ping_frame=ping_for)
        first = await h.start("s", META, REQUEST, source(script(3)))
        result = await asyncio.wait_for(first, 2)
        assert isinstance(result, UpstreamError)
        assert result.error.status == 503 and result.retry_after == 1.0
        assert "store" in result.error.message
        await h.finished("s")
        await h.aclose()

    asyncio.run(main())
