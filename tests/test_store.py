"""The stream-store contract, run against every implementation (MemoryStore today)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tokenrelay.store import (
    MemoryStore,
    StreamExistsError,
    StreamFinishedError,
    StreamNotFoundError,
    StreamStore,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


Factory = Callable[[float], StreamStore]


@pytest.fixture(params=["memory"])
def make_store(request: pytest.FixtureRequest, clock: FakeClock) -> Factory:
    def make(retention: float = 60.0) -> StreamStore:
        return MemoryStore(retention=retention, clock=clock)

    return make


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_append_then_read_from_any_position(make_store: Factory) -> None:
    async def main() -> None:
        s = make_store(60.0)
        await s.create("s1", {"dialect": "openai_chat"})
        assert await s.append("s1", [b"a", b"b"]) == 2
        assert await s.append("s1", [b"c"]) == 3
        assert await s.read("s1", 0) == ([b"a", b"b", b"c"], False)
        assert await s.read("s1", 2) == ([b"c"], False)
        assert await s.read("s1", 3) == ([], False)
        assert await s.read("s1", 0, limit=2) == ([b"a", b"b"], False)
        info = await s.info("s1")
        assert (info.length, info.finished, info.meta["dialect"]) == (3, False, "openai_chat")

    run(main())


def test_finished_stream_reports_done_only_when_everything_is_read(make_store: Factory) -> None:
    async def main() -> None:
        s = make_store(60.0)
        await s.create("s", {})
        await s.append("s", [b"a", b"b"])
        await s.finish("s")
        await s.finish("s")  # idempotent
        assert await s.read("s", 0, limit=1) == ([b"a"], False)
        assert await s.read("s", 1) == ([b"b"], True)
        assert await s.read("s", 2) == ([], True)
        with pytest.raises(StreamFinishedError):
            await s.append("s", [b"c"])

    run(main())


def test_ids_are_unique_and_unknown_ids_are_not_found(make_store: Factory) -> None:
    async def main() -> None:
        s = make_store(60.0)
        await s.create("s", {})
        with pytest.raises(StreamExistsError):
            await s.create("s", {})
        for call in (s.read("nope", 0), s.info("nope"), s.append("nope", [b"x"]),
                     s.finish("nope"), s.wait("nope", 0, 0.1)):  # fmt: skip
            with pytest.raises(StreamNotFoundError):
                await call

    run(main())


def test_wait_wakes_on_append_and_on_finish(make_store: Factory) -> None:
    async def main() -> None:
        s = make_store(60.0)
        await s.create("s", {})
        waiters = [asyncio.create_task(s.wait("s", 0, 5)) for _ in range(50)]
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiters)
        await s.append("s", [b"x"])
        assert all(await asyncio.gather(*waiters))
        assert await s.wait("s", 0, 0)  # already there: at once
        late = asyncio.create_task(s.wait("s", 1, 5))
        await asyncio.sleep(0)
        await s.finish("s")
        assert await late

    run(main())


def test_wait_times_out_and_leaves_no_waiter_behind(make_store: Factory) -> None:
    async def main() -> None:
        s = make_store(60.0)
        await s.create("s", {})
        assert await s.wait("s", 0, 0.01) is False
        if isinstance(s, MemoryStore):
            assert s._logs["s"].waiters == []

    run(main())


def test_finished_streams_expire_after_the_retention_time(
    make_store: Factory, clock: FakeClock
) -> None:
    async def main() -> None:
        s = make_store(30.0)
        await s.create("old", {})
        await s.append("old", [b"a"])
        await s.create("live", {})
        await s.finish("old")
        clock.now += 29
        assert (await s.read("old", 0))[0] == [b"a"]
        clock.now += 2
        with pytest.raises(StreamNotFoundError):
            await s.read("old", 0)
        clock.now += 3600  # an unfinished stream never expires by itself
        assert (await s.info("live")).finished is False

    run(main())


def test_delete_wakes_waiters_who_then_find_the_stream_gone(make_store: Factory) -> None:
    async def main() -> None:
        s = make_store(60.0)
        await s.create("s", {})
        waiter = asyncio.create_task(s.wait("s", 0, 5))
        await asyncio.sleep(0)
        await s.delete("s")
        with pytest.raises(StreamNotFoundError):
            await waiter

    run(main())


def test_a_reader_following_a_live_stream_gets_every_entry_once(make_store: Factory) -> None:
    async def main() -> None:
        s = make_store(60.0)
        await s.create("s", {})

        async def produce() -> None:
            for i in range(200):
                await s.append("s", [str(i).encode()] * (i % 3))
                if i % 7 == 0:
                    await asyncio.sleep(0)
            await s.finish("s")

        async def follow() -> list[bytes]:
            got: list[bytes] = []
            while True:
                await s.wait("s", len(got), 5)
                entries, done = await s.read("s", len(got))
                got += entries
                if done:
                    return got

        readers = [asyncio.create_task(follow()) for _ in range(5)]
        await produce()
        expected = [str(i).encode() for i in range(200) for _ in range(i % 3)]
        assert all(r == expected for r in await asyncio.gather(*readers))

    run(main())


def test_negative_retention_and_start_are_refused() -> None:
    with pytest.raises(ValueError):
        MemoryStore(retention=-1)

    async def main() -> None:
        s = MemoryStore()
        await s.create("s", {})
        with pytest.raises(ValueError):
            await s.read("s", -1)

    run(main())
