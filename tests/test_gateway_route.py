"""route.generate's deadlines after the first delta: one entry per generation in one
timer per loop, moved on every delta; an idle gap or the total time ends the stream with
a timeout error event, a slow consumer does not count against the upstream, and a
cancellation from outside stays a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest

from tokenrelay.gateway import route
from tokenrelay.gateway.config import ModelRoute, RetryPolicy, Timeouts
from tokenrelay.gateway.route import generate
from tokenrelay.llm import Delta, Message, Request, TextDelta, TextPart
from tokenrelay.llm.model import ErrorKind, StreamError
from tokenrelay.providers.base import ProviderConfig

REQUEST = Request("m", (Message("user", (TextPart("hi"),)),), stream=True)
ROUTE = ModelRoute("m", (("p", "up"),))


class Paced:
    """A provider whose deltas come after the given pauses (seconds)."""

    def __init__(self, pauses: list[float]) -> None:
        self.config = ProviderConfig("p", "mock")
        self.pauses = pauses
        self.closed = False

    async def stream(self, request: Request, model: str) -> AsyncGenerator[Delta, None]:
        try:
            for i, pause in enumerate(self.pauses):
                await asyncio.sleep(pause)
                yield TextDelta(f"t{i} ")
        finally:
            self.closed = True

    async def models(self) -> list[str]:
        return []

    async def aclose(self) -> None:
        pass


def run(provider: Paced, consume_pause: float = 0.0, **timeouts: Any) -> list[Delta]:
    async def main() -> list[Delta]:
        got = []
        async for delta in generate(
            ROUTE,
            {"p": provider},  # type: ignore[dict-item]
            REQUEST,
            retry=RetryPolicy(attempts=1),
            timeouts=Timeouts(**{"first_token": 5.0, "idle": 5.0, "total": 30.0, **timeouts}),
        ):
            got.append(delta)
            if consume_pause:
                await asyncio.sleep(consume_pause)
        return got

    return asyncio.run(main())


def test_an_idle_gap_ends_the_stream_with_a_timeout_event() -> None:
    provider = Paced([0, 0.01, 0.01, 0.5, 0])
    got = run(provider, idle=0.2)
    assert [d.text for d in got[:3]] == ["t0 ", "t1 ", "t2 "]  # type: ignore[union-attr]
    error = got[3]
    assert isinstance(error, StreamError) and error.kind is ErrorKind.TIMEOUT
    assert "idle" in error.message and len(got) == 4
    assert provider.closed


def test_the_total_deadline_ends_a_stream_that_never_idles() -> None:
    provider = Paced([0.05] * 40)
    got = run(provider, idle=0.2, total=0.5)
    error = got[-1]
    assert isinstance(error, StreamError) and "total" in error.message
    assert 5 <= len(got) - 1 < 40
    assert provider.closed


def test_a_deadline_moved_by_each_delta_never_fires_on_a_steady_stream() -> None:
    got = run(Paced([0.03] * 20), idle=0.1)
    assert len(got) == 20 and all(isinstance(d, TextDelta) for d in got)


def test_a_slow_consumer_does_not_count_as_upstream_idleness() -> None:
    # The consumer takes longer than the idle timeout between deltas: only the upstream's
    # own waits are timed.
    got = run(Paced([0, 0, 0, 0]), consume_pause=0.15, idle=0.1)
    assert len(got) == 4 and all(isinstance(d, TextDelta) for d in got)


def test_a_cancellation_from_outside_is_not_taken_for_a_timeout() -> None:
    async def main() -> None:
        got: list[Delta] = []

        async def consume() -> None:
            async for delta in generate(
                ROUTE,
                {"p": Paced([0, 10])},  # type: ignore[dict-item]
                REQUEST,
                retry=RetryPolicy(attempts=1),
                timeouts=Timeouts(first_token=5.0, idle=0.2, total=30.0),
            ):
                got.append(delta)

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(got) == 1

    asyncio.run(main())


def test_a_cancellation_at_the_moment_the_deadline_fires_stays_a_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fire = route._Deadline.fire

    def fire_and_cancel(self: route._Deadline, now: float) -> None:
        fire(self, now)
        self._task.cancel()  # someone else cancels the task in the same loop iteration

    monkeypatch.setattr(route._Deadline, "fire", fire_and_cancel)

    async def main() -> None:
        async def consume() -> None:
            async for _ in generate(
                ROUTE,
                {"p": Paced([0, 10])},  # type: ignore[dict-item]
                REQUEST,
                retry=RetryPolicy(attempts=1),
                timeouts=Timeouts(first_token=5.0, idle=0.1, total=30.0),
            ):
                pass

        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(consume(), 5)

    asyncio.run(main())


def paced(pauses: list[float], **timeouts: float) -> AsyncIterator[Delta]:
    """One generation from a ``Paced`` upstream, one attempt."""
    return generate(
        ROUTE,
        {"p": Paced(pauses)},  # type: ignore[dict-item]
        REQUEST,
        retry=RetryPolicy(attempts=1),
        timeouts=Timeouts(**{"first_token": 5.0, "idle": 5.0, "total": 30.0, **timeouts}),
    )


def test_the_streams_of_a_loop_share_one_timer_that_fires_each_deadline_on_time() -> None:
    # Sixty generations at once: the stalled ones end with an idle timeout about when
    # theirs runs out, the steady ones are not disturbed, and once every generation has
    # ended the loop's deadlines hold nothing (no entry, no timer).
    async def one(pauses: list[float]) -> tuple[list[Delta], float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        got = [d async for d in paced(pauses, idle=0.2)]
        return got, loop.time() - start

    async def probe() -> float:
        # How late the loop itself runs a plain timer of the same span: a loop held up by
        # the machine (a collection, a busy CI host) delays every timer alike.
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(0.25)
        return loop.time() - start - 0.25

    async def main() -> None:
        steady, stalled = [0.0] + [0.02] * 20, [0.0, 0.05, 5.0]
        late = asyncio.ensure_future(probe())
        results = await asyncio.gather(*(one(stalled if i % 3 == 0 else steady) for i in range(60)))
        slack = 0.15 + max(0.0, await late)
        timers = route._DEADLINES[asyncio.get_running_loop()]
        assert not timers._heap and timers._handle is None and timers.closed == 0
        for i, (got, seconds) in enumerate(results):
            if i % 3:
                assert len(got) == 21 and all(isinstance(d, TextDelta) for d in got)
            else:
                error = got[-1]
                assert len(got) == 3 and isinstance(error, StreamError), got
                assert "idle" in error.message
                assert 0.25 - 0.01 <= seconds < 0.25 + slack  # 0.05 + the idle 0.2

    asyncio.run(main())


def test_closed_deadlines_do_not_pile_up_while_others_stay_open() -> None:
    # A long-lived stream keeps the loop's timer; thousands of short ones end meanwhile:
    # their entries are swept out, so the heap stays small.
    async def main() -> None:
        loop = asyncio.get_running_loop()
        long = asyncio.ensure_future(one_stream([0.0, 0.3]))
        await asyncio.sleep(0.01)
        for _ in range(20):
            await asyncio.gather(*(one_stream([0.0, 0.0]) for _ in range(100)))
        timers = route._DEADLINES[loop]
        assert len(timers._heap) <= 600
        assert len(await long) == 2

    async def one_stream(pauses: list[float]) -> list[Delta]:
        return [d async for d in paced(pauses, idle=60.0, total=600.0)]

    asyncio.run(main())
