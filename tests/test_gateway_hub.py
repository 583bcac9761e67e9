"""The stream hub: one producer per stream, readers that resume exactly, merge when
behind, and a grace period before the upstream is cancelled."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator

import pytest

from tests.neutral_streams import essence
from tokenrelay.gateway.hub import StreamHub, parse_event_id
from tokenrelay.llm import (
    ANTHROPIC,
    DIALECTS,
    OPENAI_CHAT,
    Delta,
    Finish,
    FinishReason,
    Message,
    Request,
    Start,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    accumulate,
)
from tokenrelay.llm.anthropic import PING_FRAME
from tokenrelay.llm.codec import Dialect, Frame
from tokenrelay.sse import Decoder, comment
from tokenrelay.store import MemoryStore

REQUEST = Request("m", (Message("user", (TextPart("hi"),)),), stream=True, include_usage=True)
SERVED = ["openai_chat", "anthropic", "openai_responses", "vercel_ui"]


def ping_for(dialect: Dialect) -> Frame | bytes | None:
    return PING_FRAME if dialect is ANTHROPIC else comment("ping")


def hub(grace: float = 30.0, ping: float = 15.0) -> StreamHub:
    return StreamHub(MemoryStore(), grace=grace, ping=ping, ping_frame=ping_for)


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


async def collect(frames: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in frames])


def events(wire: bytes) -> list[tuple[str, str]]:
    return [(e.id, e.data) for e in Decoder().feed(wire)]


def renumbered(wire: bytes) -> bytes:
    """Responses' sequence_number counts events, so a reader that merged text (the full
    read here found every entry waiting) numbers later events lower than an unmerged
    replay does; the numbers still only grow. Everything else must be byte-identical."""
    return re.sub(rb'"sequence_number":\d+', b'"sequence_number":_', wire)


def decoded(dialect: Dialect, wire: bytes) -> list[Delta]:
    decoder = dialect.decoder()
    return decoder.feed(wire) + decoder.close()


@pytest.mark.parametrize("name", SERVED)
def test_a_reader_gets_the_whole_stream_with_an_id_on_every_event(name: str) -> None:
    async def main() -> None:
        h = hub()
        await h.start("s1", {}, REQUEST, source(script()))
        wire = await collect(h.frames("s1", DIALECTS[name], REQUEST))
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
        await h.start("s1", {}, REQUEST, source(script(8)))
        dialect = DIALECTS[name]
        full = await collect(h.frames("s1", dialect, REQUEST))
        blocks = [b + b"\n\n" for b in full.split(b"\n\n") if b]
        all_events = events(full)
        assert len(blocks) == len(all_events)
        for n, (event_id, _) in enumerate(all_events):
            rest = await collect(h.frames("s1", dialect, REQUEST, parse_event_id(event_id)))
            assert renumbered(rest) == renumbered(b"".join(blocks[n + 1 :])), event_id

    asyncio.run(main())


def test_a_reader_that_falls_behind_gets_merged_text_and_loses_nothing() -> None:
    async def main() -> None:
        h = hub()
        deltas = script(500)
        await h.start("s1", {}, REQUEST, source(deltas))
        await asyncio.sleep(0.05)  # the producer has written everything: the reader is behind
        wire = await collect(h.frames("s1", OPENAI_CHAT, REQUEST))
        merged = events(wire)
        assert len(merged) < 20  # 500 words came as a handful of events
        assert essence(accumulate(decoded(OPENAI_CHAT, wire))) == essence(accumulate(deltas))
        # A resume from a merged event's id continues exactly after it.
        for n, (event_id, _) in enumerate(merged):
            rest = await collect(h.frames("s1", OPENAI_CHAT, REQUEST, parse_event_id(event_id)))
            prefix = b"".join(b + b"\n\n" for b in wire.split(b"\n\n")[: n + 1] if b)
            joined = decoded(OPENAI_CHAT, prefix + rest)
            assert essence(accumulate(joined)) == essence(accumulate(deltas)), event_id

    asyncio.run(main())


def test_random_disconnects_resume_with_no_gap_and_no_duplicate() -> None:
    async def main() -> None:
        rng = random.Random(5)
        h = hub()
        deltas = script(60)
        await h.start("s1", {}, REQUEST, source(deltas, pause=0.001))
        for trial in range(30):
            dialect = DIALECTS[rng.choice(SERVED[:3])]
            got = b""
            after = None
            while True:
                reader = h.frames("s1", dialect, REQUEST, after)
                done = False
                async for chunk in reader:
                    got += chunk
                    if rng.random() < 0.3:
                        break
                else:
                    done = True
                await reader.aclose()
                if done:
                    break
                last = events(got)[-1][0] if events(got) else None
                after = parse_event_id(last)
                # a torn last block is discarded by the client: keep whole events only
                got = got[: got.rfind(b"\n\n") + 2] if got else got
            assert essence(accumulate(decoded(dialect, got))) == essence(accumulate(deltas)), trial

    asyncio.run(main())


def test_last_reader_leaving_cancels_the_generation_after_the_grace_period() -> None:
    async def main() -> None:
        for grace in (0.0, 0.2):
            h = hub(grace=grace)
            closed = asyncio.Event()

            async def endless(closed: asyncio.Event = closed) -> AsyncIterator[Delta]:
                try:
                    yield Start("s", "m")
                    while True:
                        await asyncio.sleep(0.01)
                        yield TextDelta("x")
                finally:
                    closed.set()

            await h.start("s", {}, REQUEST, endless())
            reader = h.frames("s", OPENAI_CHAT, REQUEST)
            await anext(reader)
            await reader.aclose()
            loop = asyncio.get_running_loop()
            left = loop.time()
            await asyncio.wait_for(closed.wait(), 2)
            waited = loop.time() - left
            assert grace <= waited < grace + 0.1
            entries, done = await h.store.read("s", 0)
            assert done
            from tokenrelay.llm.pack import unpack

            tail = [unpack(e) for e in entries[-2:]]
            assert isinstance(tail[0], Usage) and tail[0].estimated
            assert isinstance(tail[1], Finish) and tail[1].raw == "cancelled"

    asyncio.run(main())


def test_a_reader_returning_within_the_grace_period_keeps_the_generation() -> None:
    async def main() -> None:
        h = hub(grace=0.3)
        await h.start("s", {}, REQUEST, source(script(40), pause=0.01))
        reader = h.frames("s", OPENAI_CHAT, REQUEST)
        first = await anext(reader)
        await reader.aclose()
        await asyncio.sleep(0.1)
        after = parse_event_id(events(first)[-1][0])
        rest = await collect(h.frames("s", OPENAI_CHAT, REQUEST, after))
        assert essence(accumulate(decoded(OPENAI_CHAT, first + rest))) == essence(
            accumulate(script(40))
        )

    asyncio.run(main())


def test_pings_keep_the_connection_alive_while_waiting() -> None:
    async def main() -> None:
        h = hub(ping=0.05)

        async def slow() -> AsyncIterator[Delta]:
            await asyncio.sleep(0.2)
            for d in script(2):
                yield d

        await h.start("s", {}, REQUEST, slow())
        anthropic_wire = await collect(h.frames("s", ANTHROPIC, REQUEST))
        assert anthropic_wire.startswith(b"event: ping\n")
        await h.start("t", {}, REQUEST, slow())
        openai_wire = await collect(h.frames("t", OPENAI_CHAT, REQUEST))
        assert openai_wire.startswith(b": ping\n\n")

    asyncio.run(main())


@pytest.mark.parametrize("text", ["", "1", "a.b", "1.", ".1", "1.2.3x"])
def test_malformed_event_ids_are_value_errors(text: str) -> None:
    if text == "":
        assert parse_event_id(text) is None
        return
    with pytest.raises(ValueError):
        parse_event_id(text)
