"""The stream-store contract, run unchanged over every implementation: MemoryStore, and
the shared backends (SQLite on one file, Redis on one database) through two store objects
standing for two gateway processes.

Everything here uses the public API with real, short times (leases and retentions of a
few tenths of a second, real sleeps). ``make_pair()`` gives (producer, other): two stores
on one backend; for MemoryStore, which one process cannot share across objects, the same
store twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import RedisServer
from tokenrelay.store import (
    MemoryStore,
    StoreLimitError,
    StoreUnavailableError,
    StreamExistsError,
    StreamFinishedError,
    StreamNotFoundError,
    StreamStore,
)
from tokenrelay.store.redis import RedisStore
from tokenrelay.store.sqlite import SQLiteStore

LEASE = 0.3  # seconds: short enough to wait for, long enough not to run out by accident
RETENTION = 0.3
SLACK = 0.5  # what a loaded machine may add to a timed wait


class Backend:
    """Opens stores of one kind on one shared place (a file, a Redis database), and closes
    them at the end of the test, in the test's event loop."""

    def __init__(self, kind: str, path: Path, redis_url: str) -> None:
        self.kind = kind
        self.path = path
        self.redis_url = redis_url
        self.opened: list[StreamStore] = []

    def open(self, retention: float = 60.0) -> StreamStore:
        store: StreamStore
        if self.kind == "memory":
            store = MemoryStore(retention=retention)
        elif self.kind == "sqlite":
            store = SQLiteStore(self.path, retention=retention)
        else:
            store = RedisStore(self.redis_url, retention=retention)
        self.opened.append(store)
        return store

    def pair(self, retention: float = 60.0) -> tuple[StreamStore, StreamStore]:
        producer = self.open(retention)
        other = producer if self.kind == "memory" else self.open(retention)
        return producer, other

    def run(self, main: Callable[[], Awaitable[None]], timeout: float = 30.0) -> None:
        async def scope() -> None:
            try:
                async with asyncio.timeout(timeout):
                    await main()
            finally:
                for store in self.opened:
                    await store.aclose()
                self.opened.clear()

        asyncio.run(scope())


SHARED = ["sqlite", "redis"]
MakeStore = Callable[..., StreamStore]
MakePair = Callable[..., tuple[StreamStore, StreamStore]]
Run = Callable[[Callable[[], Awaitable[None]]], None]


@pytest.fixture(params=["memory", *SHARED])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    return Backend(request.param, tmp_path / "streams.db", url)


@pytest.fixture
def make_store(backend: Backend) -> MakeStore:
    """``make_store(retention=60.0)``: a new store on the test's backend."""
    return backend.open


@pytest.fixture
def make_pair(backend: Backend) -> MakePair:
    """``make_pair(retention=60.0)``: (producer, other), two stores on one backend (the
    same MemoryStore twice)."""
    return backend.pair


@pytest.fixture
def run(backend: Backend) -> Run:
    """``run(main)``: ``asyncio.run`` a test's body, then close every store it opened."""
    return backend.run


@contextlib.contextmanager
def takes(at_least: float, at_most: float) -> Iterator[None]:
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    # a timer may fire up to the clock's resolution early
    assert at_least - 0.01 <= elapsed <= at_most, f"took {elapsed:.3f} s"


async def follow(store: StreamStore, stream_id: str, timeout: float = 5.0) -> list[bytes]:
    """Every entry of the stream, read as it comes with read_wait, until it is done."""
    got: list[bytes] = []
    while True:
        entries, done = await store.read_wait(stream_id, len(got), timeout)
        if not entries and not done:
            raise AssertionError(f"nothing came for {timeout} s after {len(got)} entries")
        got += entries
        if done:
            return got


async def started(task: asyncio.Task[object]) -> None:
    """Give a just-created waiting task time to reach its wait (a round trip or two)."""
    await asyncio.sleep(0.05)
    assert not task.done()


# -- the log -------------------------------------------------------------------------------


def test_append_then_read_from_any_position(make_store: MakeStore, run: Run) -> None:
    async def main() -> None:
        s = make_store()
        await s.create("s1", {"dialect": "openai_chat"})
        assert await s.append("s1", [b"a", b"b"]) == 2
        assert await s.append("s1", []) == 2
        assert await s.append("s1", [b"c"]) == 3
        assert await s.read("s1", 0) == ([b"a", b"b", b"c"], False)
        assert await s.read("s1", 2) == ([b"c"], False)
        assert await s.read("s1", 3) == ([], False)
        assert await s.read("s1", 0, limit=2) == ([b"a", b"b"], False)
        info = await s.info("s1")
        assert (info.length, info.finished, info.meta["dialect"]) == (3, False, "openai_chat")

    run(main)


def test_finished_stream_reports_done_only_when_everything_is_read(
    make_store: MakeStore, run: Run
) -> None:
    async def main() -> None:
        s = make_store()
        await s.create("s", {})
        await s.append("s", [b"a", b"b"])
        await s.finish("s")
        await s.finish("s")  # finishing a finished stream does nothing
        assert await s.read("s", 0, limit=1) == ([b"a"], False)
        assert await s.read("s", 1) == ([b"b"], True)
        assert await s.read("s", 2) == ([], True)
        assert (await s.info("s")).finished
        with pytest.raises(StreamFinishedError):
            await s.append("s", [b"c"])

    run(main)


def test_ids_are_unique_and_unknown_ids_are_not_found(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {})
        for s in (producer, other):
            with pytest.raises(StreamExistsError):
                await s.create("s", {})
            for call in (s.read("nope", 0), s.info("nope"), s.append("nope", [b"x"]),
                         s.finish("nope"), s.read_wait("nope", 0, 0.1),
                         s.request_cancel("nope")):  # fmt: skip
                with pytest.raises(StreamNotFoundError):
                    await call
            assert await s.interrupt("nope", [b"x"]) is False

    run(main)


def test_read_wait_wakes_on_append_and_on_finish(make_store: MakeStore, run: Run) -> None:
    async def main() -> None:
        s = make_store()
        await s.create("s", {})
        waiters = [asyncio.create_task(s.read_wait("s", 0, 5)) for _ in range(50)]
        await asyncio.sleep(0.02)
        assert not any(w.done() for w in waiters)
        await s.append("s", [b"x"])
        assert await asyncio.gather(*waiters) == [([b"x"], False)] * 50
        assert await s.read_wait("s", 0, 0) == ([b"x"], False)  # already there: at once
        late = asyncio.create_task(s.read_wait("s", 1, 5))
        await started(late)
        await s.finish("s")
        assert await late == ([], True)

    run(main)


def test_read_wait_times_out_and_leaves_nothing_behind(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {})
        for s in (producer, other):
            with takes(0.1, 0.1 + SLACK):
                assert await s.read_wait("s", 0, 0.1) == ([], False)
            results = await asyncio.gather(*(s.read_wait("s", 0, 0.05) for _ in range(50)))
            assert results == [([], False)] * 50
        # nothing keeps running for them (a RedisStore keeps its one pub/sub listener)
        await asyncio.sleep(0.1)
        left = asyncio.all_tasks() - {asyncio.current_task()}
        assert len(left) <= (1 if isinstance(other, RedisStore) else 0), left
        # the timed-out waits took nothing: a later entry reaches a new reader on each side
        await producer.append("s", [b"a"])
        await producer.finish("s")
        for s in (producer, other):
            assert await s.read_wait("s", 0, 2) == ([b"a"], True)

    run(main)


def test_finished_streams_expire_after_the_retention_time(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair(RETENTION)
        await producer.create("old", {})
        await producer.append("old", [b"a"])
        await producer.create("live", {})
        await producer.finish("old")
        await producer.flush()
        for s in (producer, other):
            assert await s.read("old", 0) == ([b"a"], True)
        await asyncio.sleep(RETENTION + 0.2)
        for s in (producer, other):
            with pytest.raises(StreamNotFoundError):
                await s.read("old", 0)
            with pytest.raises(StreamNotFoundError):
                await s.info("old")
            # an unfinished stream does not expire by itself
            assert (await s.info("live")).finished is False
        await producer.create("old", {})  # the id is free again

    run(main)


def test_a_finished_stream_still_being_read_outlives_its_retention(
    make_pair: MakePair, run: Run
) -> None:
    async def main() -> None:
        producer, other = make_pair(RETENTION)
        await producer.create("s", {})
        await producer.append("s", [b"a", b"b", b"c"])
        await producer.finish("s")
        await producer.flush()
        # A slow reader reading one entry at a time, each within the retention time of
        # the last: the stream stays until it has read everything.
        for pos in range(3):
            await asyncio.sleep(RETENTION * 0.7)
            assert (await other.read("s", pos, limit=1))[0] == [b"abc"[pos : pos + 1]]
        await asyncio.sleep(RETENTION + 0.2)
        with pytest.raises(StreamNotFoundError):
            await other.read("s", 0)

    run(main)


def test_delete_wakes_waiters_who_then_find_the_stream_gone(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {})
        waiters = [asyncio.create_task(s.read_wait("s", 0, 5)) for s in (producer, other)]
        await started(waiters[-1])
        await producer.delete("s")
        for waiter in waiters:
            with pytest.raises(StreamNotFoundError):
                await waiter
        for s in (producer, other):
            with pytest.raises(StreamNotFoundError):
                await s.info("s")

    run(main)


def test_a_reader_following_a_live_stream_gets_every_entry_once(
    make_store: MakeStore, run: Run
) -> None:
    async def main() -> None:
        s = make_store()
        await s.create("s", {})

        async def produce() -> None:
            for i in range(200):
                await s.append("s", [str(i).encode()] * (i % 3))
                if i % 7 == 0:
                    await asyncio.sleep(0)
            await s.finish("s")

        readers = [asyncio.create_task(follow(s, "s")) for _ in range(5)]
        await produce()
        expected = [str(i).encode() for i in range(200) for _ in range(i % 3)]
        assert await asyncio.gather(*readers) == [expected] * 5

    run(main)


@pytest.mark.parametrize("kind", ["memory", *SHARED])
def test_negative_retention_and_start_are_refused(kind: str, tmp_path: Path) -> None:
    openers: dict[str, Callable[..., StreamStore]] = {
        "memory": MemoryStore,
        "sqlite": lambda **kw: SQLiteStore(tmp_path / "s.db", **kw),
        "redis": lambda **kw: RedisStore("redis://127.0.0.1:1/0", **kw),  # never connects
    }
    opener = openers[kind]
    with pytest.raises(ValueError):
        opener(retention=-1)

    async def main() -> None:
        s = opener(retention=0)
        try:
            with pytest.raises(ValueError):
                await s.read("s", -1)
        finally:
            await s.aclose()

    asyncio.run(main())


# -- two stores on one backend -------------------------------------------------------------


def test_entries_appended_on_one_store_are_read_on_the_other_after_flush(
    make_pair: MakePair, run: Run
) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {"model": "m"})
        assert (await other.info("s")).meta == {"model": "m"}  # create is not written behind
        for i in range(10):
            await producer.append("s", [b"%d" % i, b"%d'" % i])
        await producer.flush()
        expected = [e for i in range(10) for e in (b"%d" % i, b"%d'" % i)]
        assert await other.read("s", 0) == (expected, False)
        assert await other.read("s", 5, limit=3) == (expected[5:8], False)
        assert (await other.info("s")).length == 20
        await producer.finish("s")
        await producer.flush()
        assert await other.read("s", 19) == (expected[19:], True)
        assert await other.read("s", 20) == ([], True)
        with pytest.raises(StreamFinishedError):
            await other.append("s", [b"late"])

    run(main)


def test_followers_on_both_stores_get_every_entry_once_in_order(
    make_pair: MakePair, run: Run
) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {})
        rng = random.Random(7)
        followers = [asyncio.create_task(follow(other, "s")) for _ in range(3)]
        followers += [asyncio.create_task(follow(producer, "s")) for _ in range(2)]
        await started(followers[0])
        expected = [b"%d" % i for i in range(200)]
        sent = 0
        while sent < len(expected):
            n = rng.randint(0, 5)
            await producer.append("s", expected[sent : sent + n])
            sent += n
            await asyncio.sleep(rng.choice([0, 0, 0.001, 0.003]))
        await producer.finish("s")
        assert await asyncio.gather(*followers) == [expected] * 5
        await producer.flush()
        assert await other.read("s", 0) == (expected, True)

    run(main)


def test_readers_of_many_streams_starting_at_once_on_a_fresh_store_are_all_woken(
    make_pair: MakePair, run: Run
) -> None:
    # Their first waits subscribe to their streams' notifications at the same moment
    # (Redis: the first subscriptions open the store's pub/sub connection together; one
    # opened twice left a subscription on a connection nobody read: its reader heard
    # nothing, ever).
    async def main() -> None:
        producer, other = make_pair()
        ids = [f"s{i}" for i in range(8)]
        for stream_id in ids:
            await producer.create(stream_id, {})
            await producer.append(stream_id, [b"a"])
        await producer.flush()
        waiters = [asyncio.create_task(other.read_wait(i, 1, 5.0)) for i in ids]
        await asyncio.sleep(0.3)  # every waiter is waiting
        assert not any(w.done() for w in waiters)
        with takes(0, 1.0):
            for stream_id in ids:
                await producer.append(stream_id, [b"b"])
            assert await asyncio.gather(*waiters) == [([b"b"], False)] * len(ids)

    run(main)


def test_finish_on_one_store_wakes_read_wait_on_the_other(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {})
        await producer.append("s", [b"a"])
        await producer.flush()
        waiter = asyncio.create_task(other.read_wait("s", 1, 5))
        await started(waiter)
        with takes(0, 1.0):
            await producer.finish("s")
            assert await waiter == ([], True)
        assert (await other.info("s")).finished

    run(main)


def test_read_wait_on_the_other_store_times_out_on_time(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {})
        await producer.append("s", [b"a"])
        await producer.flush()
        for timeout in (0.05, 0.3):
            with takes(timeout, timeout + SLACK):
                assert await other.read_wait("s", 1, timeout) == ([], False)
        assert await other.read_wait("s", 0, 0.1) == ([b"a"], False)

    run(main)


def test_a_cancelled_read_wait_loses_nothing(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {})
        for s in (producer, other):
            waiter = asyncio.create_task(s.read_wait("s", 0, 5))
            await started(waiter)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        await producer.append("s", [b"a", b"b"])
        await producer.flush()
        for s in (producer, other):
            assert await s.read_wait("s", 0, 2) == ([b"a", b"b"], False)
        # cancelled just as the entries arrive
        waiters = [asyncio.create_task(s.read_wait("s", 2, 5)) for s in (producer, other)]
        await started(waiters[-1])
        await producer.append("s", [b"c"])
        await producer.finish("s")
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        for s in (producer, other):
            assert await s.read_wait("s", 2, 2) == ([b"c"], True)

    run(main)


@pytest.mark.parametrize("backend", SHARED, indirect=True)
def test_aclose_writes_what_is_pending(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {})
        expected = [b"%d" % i for i in range(100)]
        for i in range(0, 100, 10):
            await producer.append("s", expected[i : i + 10])
        await producer.finish("s")
        await producer.aclose()  # no flush
        assert await other.read("s", 0) == (expected, True)

    run(main)


# -- owners, leases, interruption ----------------------------------------------------------


def test_a_stream_whose_lease_runs_out_is_abandoned_and_interrupted_once(
    make_pair: MakePair, run: Run
) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {}, owner="A", lease=LEASE)
        await producer.append("s", [b"a", b"b"])
        await producer.flush()
        assert (await other.info("s")).abandoned is False
        assert await other.abandoned() == []
        await asyncio.sleep(LEASE + 0.1)
        assert (await other.info("s")).abandoned is True
        assert await other.abandoned() == ["s"]
        assert await other.running() == 0
        stores = [producer, other] * 3
        won = await asyncio.gather(*(s.interrupt("s", [b"gone"]) for s in stores[:5]))
        assert sorted(won) == [False] * 4 + [True]
        assert await other.read("s", 0) == ([b"a", b"b", b"gone"], True)
        info = await other.info("s")
        assert (info.finished, info.abandoned, info.owner) == (True, False, "A")
        assert await other.abandoned() == []
        assert await other.interrupt("s", [b"again"]) is False

    run(main)


def test_the_owners_store_also_reports_its_stream_abandoned(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {}, owner="A", lease=LEASE)
        await producer.append("s", [b"a"])
        await asyncio.sleep(LEASE + 0.1)
        assert (await other.info("s")).abandoned is True
        assert (await producer.info("s")).abandoned is True

    run(main)


def test_a_renewed_stream_is_not_abandoned(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {}, owner="A", lease=LEASE)
        await producer.create("t", {}, owner="B", lease=LEASE)
        for _ in range(5):
            await asyncio.sleep(LEASE / 3)
            # only the owner's own streams are renewed; unknown ids are ignored
            await producer.renew("A", ["s", "t", "nope"], LEASE)
        assert (await other.info("s")).abandoned is False
        assert (await other.info("t")).abandoned is True
        assert await other.abandoned() == ["t"]
        assert await other.interrupt("s", [b"x"]) is False
        assert await other.running() == 1
        await producer.append("s", [b"still mine"])
        await producer.finish("s")

    run(main)


def test_a_stream_with_a_live_lease_is_not_interrupted(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {}, owner="A", lease=30)
        for s in (producer, other):
            assert await s.interrupt("s", [b"x"]) is False
        await producer.append("s", [b"a"])
        await producer.finish("s")
        await producer.flush()
        assert await other.read("s", 0) == ([b"a"], True)

    run(main)


def test_a_stream_without_a_lease_is_never_abandoned(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {}, owner="A", lease=None)
        await asyncio.sleep(LEASE + 0.1)
        for s in (producer, other):
            assert (await s.info("s")).abandoned is False
            assert await s.abandoned() == []
            assert await s.interrupt("s", [b"x"]) is False
            assert await s.running() == 1

    run(main)


def test_interrupt_with_an_owner_ends_that_owners_running_streams(
    make_pair: MakePair, run: Run
) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("x1", {}, owner="X", lease=30)
        await producer.create("x2", {}, owner="X")
        await producer.create("x3", {}, owner="X")
        await producer.create("y1", {}, owner="Y", lease=30)
        await producer.append("x1", [b"a"])
        await producer.finish("x3")
        await producer.flush()
        assert sorted(await other.abandoned(owner="X")) == ["x1", "x2"]
        assert await other.abandoned(owner="Z") == []
        assert await other.interrupt("y1", [b"bye"], owner="X") is False
        assert await other.interrupt("x3", [b"bye"], owner="X") is False  # finished
        assert await other.interrupt("x1", [b"bye"], owner="X") is True
        assert await other.interrupt("x1", [b"bye"], owner="X") is False
        assert await other.read("x1", 0) == ([b"a", b"bye"], True)
        assert await other.abandoned(owner="X") == ["x2"]
        assert await other.running() == 2  # x2, y1

    run(main)


def test_the_producer_learns_at_its_next_write_that_its_stream_was_interrupted(
    make_pair: MakePair, run: Run
) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {}, owner="A", lease=LEASE)
        await producer.append("s", [b"a"])
        await producer.flush()
        await asyncio.sleep(LEASE + 0.1)
        assert await other.interrupt("s", [b"gone"]) is True
        with pytest.raises(StreamFinishedError):
            # written behind: the append may be taken, and the write after it refused
            await producer.append("s", [b"late"])
            await producer.flush()
            await producer.append("s", [b"later"])
        for s in (producer, other):
            assert await s.read("s", 0) == ([b"a", b"gone"], True)

    run(main)


# -- cancellation --------------------------------------------------------------------------


def test_request_cancel_reaches_the_owner_through_the_other_store(
    make_pair: MakePair, run: Run
) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {}, owner="A")
        await producer.create("t", {}, owner="B")
        # the owner waits first
        waiter = asyncio.create_task(producer.cancel_requests("A", timeout=5))
        await started(waiter)
        with takes(0, 1.0):
            assert await other.request_cancel("s") is True
            assert await waiter == ["s"]
        assert await producer.cancel_requests("A", timeout=0.1) == []
        # the request comes first
        assert await producer.request_cancel("s") is True
        assert await other.cancel_requests("A", timeout=2) == ["s"]
        assert await other.cancel_requests("A", timeout=0.1) == []
        assert await other.cancel_requests("B", timeout=0.1) == []

    run(main)


def test_request_cancel_of_a_finished_stream_is_refused(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {}, owner="A")
        await producer.finish("s")
        await producer.flush()
        for s in (producer, other):
            assert await s.request_cancel("s") is False
            with pytest.raises(StreamNotFoundError):
                await s.request_cancel("nope")
        assert await other.cancel_requests("A", timeout=0.1) == []

    run(main)


def test_cancel_requests_returns_nothing_after_its_timeout(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {}, owner="A")
        for s in (producer, other):
            with takes(0.2, 0.2 + SLACK):
                assert await s.cancel_requests("A", timeout=0.2) == []

    run(main)


def test_cancel_requests_keeps_its_timeout_when_another_caller_takes_the_request(
    make_pair: MakePair, run: Run
) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {}, owner="A")

        async def request_later() -> None:
            await asyncio.sleep(0.4)
            await producer.request_cancel("s")

        requester = asyncio.create_task(request_later())
        with takes(0.5, 0.5 + 0.3):
            found = await asyncio.gather(*(other.cancel_requests("A", 0.5) for _ in range(2)))
        await requester
        assert sorted(found) == [[], ["s"]]

    run(main)


def test_a_cancelled_cancel_requests_loses_no_request(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {}, owner="A")
        waiter = asyncio.create_task(other.cancel_requests("A", timeout=5))
        await started(waiter)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await producer.request_cancel("s") is True
        assert await other.cancel_requests("A", timeout=2) == ["s"]

    run(main)


# -- readers and running streams -----------------------------------------------------------


def test_readers_are_counted_by_instance_across_stores(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {})
        assert await other.readers("s") == 0
        await producer.set_readers("s", "i1", 2, ttl=30)
        await other.set_readers("s", "i2", 3, ttl=30)
        await other.set_readers("s", "i2", 4, ttl=30)  # replaces i2's record
        for s in (producer, other):
            assert await s.readers("s") == 6
            assert await s.readers("s", exclude="i1") == 4
            assert await s.readers("s", exclude="i2") == 2
        await other.set_readers("s", "i2", 0, ttl=30)
        assert await producer.readers("s") == 2
        assert await producer.readers("s", exclude="i1") == 0

    run(main)


def test_reader_records_expire_after_their_ttl(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {})
        await producer.set_readers("s", "long", 3, ttl=30)
        await other.set_readers("s", "short", 2, ttl=0.2)
        assert await other.readers("s") == 5
        await asyncio.sleep(0.3)
        assert await other.readers("s") == 3
        assert await producer.readers("s") == 3

    run(main)


def test_running_counts_streams_neither_finished_nor_abandoned(
    make_pair: MakePair, run: Run
) -> None:
    async def main() -> None:
        producer, other = make_pair()
        assert await other.running() == 0
        await producer.create("free", {}, owner="A")
        await producer.create("leased", {}, owner="A", lease=LEASE)
        await producer.create("done", {}, owner="A", lease=30)
        assert await other.running() == 3
        await producer.finish("done")
        await producer.flush()
        assert await other.running() == 2
        await asyncio.sleep(LEASE + 0.1)
        assert await other.running() == 1
        assert await producer.running() == 1

    run(main)


def test_create_with_a_limit_refuses_at_the_limit_until_one_finishes(
    make_pair: MakePair, run: Run
) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("a", {}, limit=2)
        await producer.create("b", {}, limit=2)
        for s in (producer, other):
            with pytest.raises(StoreLimitError):
                await s.create("c", {}, limit=2)
        await producer.create("c", {})  # no limit: no check
        await producer.finish("c")
        await producer.finish("a")
        await producer.flush()
        await other.create("d", {}, limit=2)  # the refused id was not taken either
        with pytest.raises(StoreLimitError):
            await producer.create("e", {}, limit=2)

    run(main)


def test_the_store_that_finished_a_stream_counts_it_finished_at_once(
    make_store: MakeStore, run: Run
) -> None:
    async def main() -> None:
        s = make_store()
        await s.create("a", {}, owner="A", limit=1)
        await s.finish("a")  # no flush: the store knows what it finished itself
        assert await s.running() == 0
        assert await s.abandoned(owner="A") == []
        assert await s.request_cancel("a") is False
        await s.create("b", {}, limit=1)

    run(main)


def test_an_abandoned_stream_frees_its_slot(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("a", {}, owner="A", lease=LEASE, limit=1)
        with pytest.raises(StoreLimitError):
            await other.create("b", {}, limit=1)
        await asyncio.sleep(LEASE + 0.1)
        await other.create("b", {}, limit=1)

    run(main)


# -- aliases -------------------------------------------------------------------------------

ALIAS_TTL = 0.3


async def expires(store: StreamStore, name: str, within: float = 2.0) -> None:
    """Wait until ``name`` points nowhere, failing if that takes ``within`` seconds."""
    deadline = time.monotonic() + within
    while await store.alias(name) is not None:
        assert time.monotonic() < deadline, f"alias {name!r} still there after {within} s"
        await asyncio.sleep(0.02)


def test_an_alias_points_at_its_stream_on_every_store(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.put_alias("chat", "s1", ttl=30)
        for s in (producer, other):
            assert await s.alias("chat") == "s1"
        await other.put_alias("chat", "s2", ttl=30)  # replaces what it pointed at
        for s in (producer, other):
            assert await s.alias("chat") == "s2"

    run(main)


def test_an_alias_never_put_is_none(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.create("s", {})
        await producer.put_alias("chat-1", "s", ttl=30)
        for s in (producer, other):
            for name in ("nope", "s", "chat", "chat-1 ", "chat-10"):
                assert await s.alias(name) is None

    run(main)


def test_alias_names_are_arbitrary_strings(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        names = ["x" * 300, "ünï ☃ 名前", "a:b:m", "tabs\tand\nlines", "nul\0byte", ""]
        for i, name in enumerate(names):
            await producer.put_alias(name, f"s{i}", ttl=30)
        for s in (producer, other):
            assert [await s.alias(name) for name in names] == [f"s{i}" for i in range(6)]

    run(main)


def test_an_alias_expires_after_its_ttl_unless_put_again(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        for name in ("short", "renewed"):
            await producer.put_alias(name, name, ttl=ALIAS_TTL)
        await producer.put_alias("long", "long", ttl=30)
        await producer.put_alias("renewed", "renewed", ttl=30)  # 30 s from now
        assert await other.alias("short") == "short"
        for s in (producer, other):
            with takes(0, 2.0):
                await expires(s, "short")
        await asyncio.sleep(ALIAS_TTL)  # past the first ttl of "renewed" for certain
        for s in (producer, other):
            assert await s.alias("short") is None
            assert await s.alias("renewed") == "renewed"
            assert await s.alias("long") == "long"
        await other.put_alias("short", "again", ttl=30)  # an expired name is free again
        assert await producer.alias("short") == "again"

    run(main)


def test_drop_alias_removes_it_only_while_it_points_at_that_stream(
    make_pair: MakePair, run: Run
) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await producer.put_alias("chat", "s1", ttl=30)
        await producer.put_alias("chat", "s2", ttl=30)  # a newer stream took the chat
        await other.drop_alias("chat", "s1")  # the older one ending: the newer put wins
        for s in (producer, other):
            assert await s.alias("chat") == "s2"
        await other.drop_alias("chat", "s2")
        for s in (producer, other):
            assert await s.alias("chat") is None
        await producer.drop_alias("chat", "s2")  # gone already, or never put: nothing
        await producer.drop_alias("nope", "s1")
        await producer.put_alias("chat", "s3", ttl=30)
        assert await other.alias("chat") == "s3"

    run(main)


# -- counters ------------------------------------------------------------------------------

LONG_WINDOW = 3600.0  # a boundary falls within a test's few seconds once in a long while
SHORT_WINDOW = 0.5


async def in_one_window(store: StreamStore, name: str, window: float, needed: float) -> None:
    """Return when ``window``'s current window has ``needed`` seconds left (waiting for
    the next one if it has fewer), so what follows is counted in one window."""
    _, left = await store.add_count(name, 0, window)
    if left < needed:
        await asyncio.sleep(left + 0.02)
        _, left = await store.add_count(name, 0, window)
    assert left >= needed, f"{left:.3f} s left in a window of {window} s"


def test_counts_add_up_within_a_window_on_every_store(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await in_one_window(producer, "rpm:alice", LONG_WINDOW, 5.0)
        assert (await producer.add_count("rpm:alice", 0, LONG_WINDOW))[0] == 0
        assert (await producer.add_count("rpm:alice", 1, LONG_WINDOW))[0] == 1
        assert (await other.add_count("rpm:alice", 2, LONG_WINDOW))[0] == 3
        assert (await producer.add_count("rpm:alice", 40, LONG_WINDOW))[0] == 43
        for s in (producer, other):  # an amount of 0 only reads
            assert (await s.add_count("rpm:alice", 0, LONG_WINDOW))[0] == 43
        assert (await other.add_count("rpm:alice", 1, LONG_WINDOW))[0] == 44

    run(main)


def test_the_seconds_left_count_down_to_the_end_of_the_window(
    make_pair: MakePair, run: Run
) -> None:
    async def main() -> None:
        producer, other = make_pair()
        for window in (SHORT_WINDOW, 7.0, LONG_WINDOW):
            for s, amount in ((producer, 1), (other, 0)):
                _, left = await s.add_count("c", amount, window)
                assert 0 < left <= window
        # the stores agree on when a window ends (one clock: the machine's, or Redis's)
        await in_one_window(producer, "c", LONG_WINDOW, 5.0)
        _, first = await producer.add_count("c", 1, LONG_WINDOW)
        _, second = await other.add_count("c", 1, LONG_WINDOW)
        assert first - SLACK <= second <= first

    run(main)


def test_a_new_window_starts_from_zero(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        total, left = await producer.add_count("rps", 3, SHORT_WINDOW)
        assert total == 3
        assert 0 < left <= SHORT_WINDOW
        await asyncio.sleep(left + 0.02)  # into a later window, whatever the delays
        assert (await other.add_count("rps", 0, SHORT_WINDOW))[0] == 0
        total, left = await other.add_count("rps", 2, SHORT_WINDOW)
        assert total == 2
        assert 0 < left <= SHORT_WINDOW
        await asyncio.sleep(left + 2 * SHORT_WINDOW)  # two windows on: long forgotten
        for s in (producer, other):
            total, left = await s.add_count("rps", 0, SHORT_WINDOW)
            assert total == 0
            assert 0 < left <= SHORT_WINDOW

    run(main)


def test_counters_of_different_names_are_independent(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        names = ["rpm:alice", "rpm:bob", "tpm:alice", "rpm:alice:1", "rpm", "x" * 300,
                 "ünï ☃ 名前", "tabs\tand\nlines", "nul\0byte", ""]  # fmt: skip
        await in_one_window(producer, "any", LONG_WINDOW, 5.0)
        for i, name in enumerate(names):
            await (producer, other)[i % 2].add_count(name, i + 1, LONG_WINDOW)
        for s in (producer, other):
            totals = [(await s.add_count(name, 0, LONG_WINDOW))[0] for name in names]
            assert totals == [i + 1 for i in range(len(names))]
        assert (await other.add_count("rpm:carol", 0, LONG_WINDOW))[0] == 0

    run(main)


def test_concurrent_counts_lose_no_increment(make_pair: MakePair, run: Run) -> None:
    async def main() -> None:
        producer, other = make_pair()
        await in_one_window(producer, "rpm", LONG_WINDOW, 10.0)
        stores = [producer, other] * 25
        results = await asyncio.gather(*(s.add_count("rpm", 1, LONG_WINDOW) for s in stores))
        # each call saw its own total: every one from 1 to 50, once
        assert sorted(total for total, _ in results) == list(range(1, 51))
        for s in (producer, other):
            assert (await s.add_count("rpm", 0, LONG_WINDOW))[0] == 50

    run(main)


def test_add_count_refuses_a_window_not_above_zero_and_a_negative_amount(
    make_store: MakeStore, run: Run
) -> None:
    async def main() -> None:
        s = make_store()
        for window in (0, -1, float("nan"), float("inf")):
            with pytest.raises(ValueError):
                await s.add_count("c", 1, window)
        with pytest.raises(ValueError):
            await s.add_count("c", -1, 60)
        assert (await s.add_count("c", 0, 60))[0] == 0  # nothing refused was counted

    run(main)


# -- backend-specific ----------------------------------------------------------------------


def test_sqlite_keeps_a_finished_stream_across_reopening_until_its_retention_ends(
    tmp_path: Path,
) -> None:
    path = tmp_path / "streams.db"

    async def write() -> None:
        store = SQLiteStore(path, retention=0.5)
        await store.create("s", {"k": 1}, owner="A")
        await store.append("s", [b"a", b"b"])
        await store.finish("s")
        await store.aclose()

    async def reopen() -> None:
        store = SQLiteStore(path, retention=0.5)
        try:
            assert await store.read("s", 0) == ([b"a", b"b"], True)
            info = await store.info("s")
            assert (info.meta, info.length, info.finished, info.owner) == ({"k": 1}, 2, True, "A")
            await asyncio.sleep(0.6)  # the retention, counted from the last read
            with pytest.raises(StreamNotFoundError):
                await store.read("s", 0)
        finally:
            await store.aclose()

    asyncio.run(write())
    asyncio.run(reopen())


async def follow_through_outages(store: StreamStore, stream_id: str) -> list[bytes]:
    """``follow``, as a gateway's reader would across a Redis outage: read again after an
    error (during the outage, and after a restart until the producer has written the
    stream again), but never wait 5 s for nothing."""
    got: list[bytes] = []
    while True:
        try:
            entries, done = await store.read_wait(stream_id, len(got), 5)
        except (StoreUnavailableError, StreamNotFoundError):
            await asyncio.sleep(0.05)
            continue
        if not entries and not done:
            raise AssertionError(f"nothing came for 5 s after {len(got)} entries")
        got += entries
        if done:
            return got


def test_redis_restarted_empty_gets_the_whole_stream_again_from_its_producer(
    redis_server: RedisServer,
    redis_url: str,
) -> None:
    async def refused(call: Awaitable[object]) -> None:
        with takes(0, 4.0), pytest.raises(StoreUnavailableError):
            await call

    async def main() -> None:
        producer = RedisStore(redis_url, timeout=2.0)
        other = RedisStore(redis_url, timeout=2.0)
        expected = [b"%d" % i for i in range(20)]
        try:
            await producer.create("s", {}, owner="A")
            await producer.append("s", expected[:2])
            await producer.flush()
            local = asyncio.create_task(follow(producer, "s"))
            remote = asyncio.create_task(follow_through_outages(other, "s"))
            await started(remote)

            redis_server.stop()
            for i in range(2, 10):  # the producer carries on, and so do its own readers
                assert await producer.append("s", [expected[i]]) == i + 1
            assert await producer.read_wait("s", 9, 1) == ([b"9"], False)
            await refused(other.read("s", 0))
            await refused(other.info("s"))
            await refused(producer.running())
            await refused(producer.create("t", {}))
            await refused(other.request_cancel("s"))
            await refused(other.put_alias("chat", "s", 30))
            await refused(other.alias("chat"))
            await refused(other.drop_alias("chat", "s"))
            await refused(other.add_count("rpm", 1, 60))
            await refused(other.add_count("rpm", 0, 60))

            redis_server.start()
            async with asyncio.timeout(10):
                await producer.flush()  # the tail writes the stream again, whole
            assert await other.read("s", 0) == (expected[:10], False)
            assert (await other.info("s")).owner == "A"
            await asyncio.sleep(0.2)  # the remote reader waits for notifications again
            for entry in expected[10:]:
                await producer.append("s", [entry])
                await asyncio.sleep(0.01)
            await producer.finish("s")
            assert await local == expected
            assert await remote == expected
            await producer.flush()
            assert await other.read("s", 0) == (expected, True)
        finally:
            redis_server.start()
            await producer.aclose()
            await other.aclose()

    asyncio.run(main())


def test_finished_streams_in_memory_are_not_walked_by_the_garbage_collector() -> None:
    # A finished stream stays retention seconds (thousands on a busy gateway): its log
    # must not grow the collector's full collections, which pause every stream. What is
    # read back is unchanged.
    import gc

    store = MemoryStore()

    def meta() -> dict[str, Any]:  # a stream's own, as the gateway's StreamMeta.to_dict
        return {"dialect": "openai_chat", "model": "m", "settings": {"tools": [["f", "", {}]]}}

    async def main() -> None:
        for i in range(1000):
            await store.create(f"s{i}", meta())
            await store.append(f"s{i}", [b"a", b"bc"])
        gc.collect()
        before = len(gc.get_objects())
        for i in range(1000):
            await store.finish(f"s{i}")
        gc.collect()
        assert len(gc.get_objects()) - before <= -4000  # 5 of the 6 per stream gone
        info = await store.info("s7")
        assert info.meta == meta() and info.finished and info.length == 2
        assert await store.read("s7", 1) == ([b"bc"], True)

    asyncio.run(main())
