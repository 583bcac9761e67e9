"""``SQLiteStore``: stream logs in one SQLite file, shared by the processes of one machine.

No server: the file survives restarts, and several gateway workers open it at once
(write-ahead log, ``synchronous=NORMAL``: a committed batch survives a killed process; a
power cut may lose the last fraction of a second). Every statement runs on one thread of
the store's own, so the event loop never waits on the disk.

Readers in the process that produces a stream are served from memory (``BackedStore``).
Readers of other processes' streams learn of new entries by polling: every
``poll_interval`` seconds (default 20 ms), while someone waits, one ``PRAGMA
data_version`` — a read of the shared-memory header that tells whether another connection
committed — and only when it changed, one query over the streams being waited for. An
idle process does not poll at all; cost measured in ``bench/RESULTS.md``.

Times (leases, retention, readers' records, aliases, counters' windows) are the machine's
wall clock, the same for every process sharing the file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from .base import (
    StoreLimitError,
    StreamExistsError,
    StreamFinishedError,
    StreamInfo,
    StreamNotFoundError,
    check_count,
    fixed_window,
)
from .behind import BackedStore, Batch, WriteResult, unavailable

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    id TEXT PRIMARY KEY,
    meta BLOB NOT NULL,
    owner TEXT NOT NULL,
    length INTEGER NOT NULL DEFAULT 0,
    finished INTEGER NOT NULL DEFAULT 0,
    lease_until REAL,            -- NULL: no lease
    expires REAL,                -- set when finished
    cancel INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS streams_running ON streams (finished, lease_until);
CREATE INDEX IF NOT EXISTS streams_expires ON streams (expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS entries (
    stream TEXT NOT NULL,
    pos INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (stream, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS readers (
    stream TEXT NOT NULL,
    instance TEXT NOT NULL,
    count INTEGER NOT NULL,
    until REAL NOT NULL,
    PRIMARY KEY (stream, instance)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT PRIMARY KEY,
    stream_id TEXT NOT NULL,
    until REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    name TEXT NOT NULL,
    window INTEGER NOT NULL,     -- its index: window-second periods since the epoch
    total INTEGER NOT NULL,
    until REAL NOT NULL,         -- the end of the next window: forgotten then
    PRIMARY KEY (name, window)
) WITHOUT ROWID;
"""

_LIVE = "(expires IS NULL OR expires > ?)"
_RUNNING = "finished = 0 AND (lease_until IS NULL OR lease_until > ?)"


class SQLiteStore(BackedStore):
    """Stream logs in the SQLite file at ``path`` (created with its directory if need
    be). ``clock`` is the wall clock, injectable only to agree with other processes."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retention: float = 600.0,
        poll_interval: float = 0.02,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(retention=retention)
        if poll_interval <= 0:
            raise ValueError("poll_interval must be > 0")
        self.path = Path(path)
        self.poll_interval = poll_interval
        self._clock = clock
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "tokenrelay-sqlite")
        self._db: sqlite3.Connection | None = None
        self._poller: asyncio.Task[None] | None = None
        self._poll_now = False  # something changed here: query at the next tick
        self._data_version = -1
        self._next_sweep = 0.0

    # -- the thread ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout = 10000")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    async def _run(self, what: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            return fn(self._connect())

        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, call)
        except sqlite3.OperationalError as exc:  # locked past busy_timeout, disk full...
            raise unavailable(f"{what} on {self.path.name}", exc) from None
        except RuntimeError as exc:  # the thread pool is shut down
            raise unavailable(f"{what}: store closed", exc) from None

    @staticmethod
    @contextlib.contextmanager
    def _transaction(db: sqlite3.Connection, immediate: bool = True) -> Any:
        db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _sweep(self, db: sqlite3.Connection, now: float) -> None:
        """Forget expired streams (at most once a second, inside a write)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        db.execute(
            "DELETE FROM entries WHERE stream IN "
            "(SELECT id FROM streams WHERE expires IS NOT NULL AND expires <= ?)",
            (now,),
        )
        db.execute("DELETE FROM streams WHERE expires IS NOT NULL AND expires <= ?", (now,))
        db.execute("DELETE FROM readers WHERE until <= ?", (now,))
        db.execute("DELETE FROM aliases WHERE until <= ?", (now,))
        db.execute("DELETE FROM counters WHERE until <= ?", (now,))

    # -- BackedStore's database ------------------------------------------------------------

    async def _create(
        self,
        stream_id: str,
        meta: Mapping[str, Any],
        owner: str,
        lease: float | None,
        limit: int | None,
        replace: bool,
    ) -> None:
        blob = orjson.dumps(dict(meta))

        def create(db: sqlite3.Connection) -> None:
            now = self._clock()
            with self._transaction(db):
                self._sweep(db, now)
                if limit is not None:
                    (running,) = db.execute(
                        f"SELECT COUNT(*) FROM streams WHERE {_RUNNING}", (now,)
                    ).fetchone()
                    if running >= limit:
                        raise StoreLimitError(f"{limit} streams are running")
                row = db.execute(
                    f"SELECT 1 FROM streams WHERE id = ? AND {_LIVE}", (stream_id, now)
                ).fetchone()
                if row is not None and not replace:
                    raise StreamExistsError(f"stream {stream_id!r} exists")
                db.execute("DELETE FROM entries WHERE stream = ?", (stream_id,))
                db.execute(
                    "INSERT OR REPLACE INTO streams (id, meta, owner, lease_until) "
                    "VALUES (?, ?, ?, ?)",
                    (stream_id, blob, owner, None if lease is None else now + lease),
                )

        await self._run("create", create)

    def _write_one(
        self, db: sqlite3.Connection, batch: Batch, now: float, only_if_abandoned: bool = False
    ) -> WriteResult:
        row = db.execute(
            f"SELECT length, finished FROM streams WHERE id = ? AND {_LIVE}",
            (batch.stream_id, now),
        ).fetchone()
        if row is None:
            return StreamNotFoundError(batch.stream_id)
        length, finished = row
        if finished:
            return StreamFinishedError(f"stream {batch.stream_id!r} is finished")
        skip = max(0, length - batch.start)
        new = batch.entries[skip:]
        if new:
            db.executemany(
                "INSERT OR REPLACE INTO entries (stream, pos, data) VALUES (?, ?, ?)",
                [(batch.stream_id, length + i, e) for i, e in enumerate(new)],
            )
        if batch.finish:
            db.execute(
                "UPDATE streams SET length = ?, finished = 1, expires = ?, cancel = 0 WHERE id = ?",
                (length + len(new), now + self.retention, batch.stream_id),
            )
            db.execute("DELETE FROM readers WHERE stream = ?", (batch.stream_id,))
        elif new:
            db.execute(
                "UPDATE streams SET length = ? WHERE id = ?",
                (length + len(new), batch.stream_id),
            )
        return None

    async def _write(self, batches: Sequence[Batch]) -> list[WriteResult]:
        def write(db: sqlite3.Connection) -> list[WriteResult]:
            now = self._clock()
            with self._transaction(db):
                return [self._write_one(db, batch, now) for batch in batches]

        return await self._run("write", write)

    async def _read(
        self, stream_id: str, start: int, limit: int | None
    ) -> tuple[list[bytes], bool]:
        def read(db: sqlite3.Connection) -> tuple[list[bytes], bool]:
            now = self._clock()
            with self._transaction(db, immediate=False):
                row = db.execute(
                    f"SELECT length, finished FROM streams WHERE id = ? AND {_LIVE}",
                    (stream_id, now),
                ).fetchone()
                if row is None:
                    raise StreamNotFoundError(stream_id)
                length, finished = row
                end = length if limit is None else min(length, start + limit)
                rows = []
                if end > start:
                    rows = db.execute(
                        "SELECT data FROM entries WHERE stream = ? AND pos >= ? AND pos < ? "
                        "ORDER BY pos",
                        (stream_id, start, end),
                    ).fetchall()
            if finished:  # a reader still reading keeps it: retention counts from here
                with contextlib.suppress(sqlite3.OperationalError):
                    db.execute(
                        "UPDATE streams SET expires = MAX(expires, ?) WHERE id = ?",
                        (now + self.retention, stream_id),
                    )
            if end <= start:
                return [], bool(finished) and start >= length
            return [r[0] for r in rows], bool(finished) and end >= length

        return await self._run("read", read)

    async def _info(self, stream_id: str) -> StreamInfo:
        def info(db: sqlite3.Connection) -> StreamInfo:
            now = self._clock()
            row = db.execute(
                "SELECT meta, length, finished, owner, lease_until FROM streams "
                f"WHERE id = ? AND {_LIVE}",
                (stream_id, now),
            ).fetchone()
            if row is None:
                raise StreamNotFoundError(stream_id)
            meta, length, finished, owner, lease_until = row
            abandoned = not finished and lease_until is not None and lease_until <= now
            return StreamInfo(
                stream_id, orjson.loads(meta), length, bool(finished), owner, abandoned
            )

        return await self._run("info", info)

    async def _delete(self, stream_id: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            with self._transaction(db):
                db.execute("DELETE FROM entries WHERE stream = ?", (stream_id,))
                db.execute("DELETE FROM streams WHERE id = ?", (stream_id,))
                db.execute("DELETE FROM readers WHERE stream = ?", (stream_id,))

        await self._run("delete", delete)

    async def _take_cancels(self, owner: str) -> list[str]:
        def take(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "UPDATE streams SET cancel = 0 WHERE owner = ? AND cancel = 1 AND finished = 0 "
                "RETURNING id",
                (owner,),
            ).fetchall()
            return [r[0] for r in rows]

        return await self._run("take cancels", take)

    async def _watch(self, stream_id: str | None, owner: str | None) -> None:
        if self._poller is None and not self._closed:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        try:
            while (self._watched() or self._cancel_watchers()) and not self._closed:
                await asyncio.sleep(self.poll_interval)
                await self._poll_once()
        finally:
            self._poller = None

    async def _poll_once(self) -> None:
        watched = dict(self._watched())
        owners = self._cancel_watchers()
        forced, self._poll_now = self._poll_now, False

        def poll(db: sqlite3.Connection) -> tuple[list[tuple[str, int, int]], list[str]] | None:
            (version,) = db.execute("PRAGMA data_version").fetchone()
            if version == self._data_version and not forced:
                return None
            self._data_version = version
            now = self._clock()
            found: dict[str, tuple[int, int]] = {}
            ids = list(watched)
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for sid, length, finished in db.execute(
                    f"SELECT id, length, finished FROM streams WHERE {_LIVE} AND id IN ({marks})",
                    (now, *chunk),
                ):
                    found[sid] = (length, finished)
            states = [(sid, *found.get(sid, (-1, 1))) for sid in ids]
            cancelled: list[str] = []
            if owners:
                marks = ",".join("?" * len(owners))
                cancelled = [
                    r[0]
                    for r in db.execute(
                        "SELECT DISTINCT owner FROM streams WHERE cancel = 1 AND finished = 0 "
                        f"AND owner IN ({marks})",
                        owners,
                    )
                ]
            return states, cancelled

        try:
            result = await self._run("poll", poll)
        except Exception:
            return  # the next tick tries again; readers keep waiting meanwhile
        if result is None:
            return
        states, cancelled = result
        for sid, length, finished in states:
            if length < 0:
                self._changed(sid)  # gone: wake its readers to find out
            else:
                self._changed(sid, length, bool(finished))
        for owner in cancelled:
            self._cancel_requested(owner)

    async def _close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(BaseException):
                await self._poller

        def close(db: sqlite3.Connection) -> None:
            db.close()

        if self._db is not None:
            with contextlib.suppress(Exception):
                await self._run("close", close)
            self._db = None
        self._thread.shutdown(wait=True)

    # -- ownership ---------------------------------------------------------------------------

    async def renew(self, owner: str, stream_ids: Sequence[str], lease: float) -> None:
        ids = list(stream_ids)
        if not ids:
            return

        def renew(db: sqlite3.Connection) -> None:
            until = self._clock() + lease
            with self._transaction(db):
                for i in range(0, len(ids), 500):
                    chunk = ids[i : i + 500]
                    marks = ",".join("?" * len(chunk))
                    db.execute(
                        "UPDATE streams SET lease_until = ? WHERE owner = ? AND finished = 0 "
                        f"AND lease_until IS NOT NULL AND id IN ({marks})",
                        (until, owner, *chunk),
                    )

        await self._run("renew", renew)

    async def _abandoned(self, owner: str | None) -> list[str]:
        def find(db: sqlite3.Connection) -> list[str]:
            if owner is not None:
                rows = db.execute(
                    "SELECT id FROM streams WHERE finished = 0 AND owner = ?", (owner,)
                )
            else:
                rows = db.execute(
                    "SELECT id FROM streams WHERE finished = 0 AND lease_until <= ?",
                    (self._clock(),),
                )
            return [r[0] for r in rows]

        return await self._run("abandoned", find)

    async def interrupt(
        self, stream_id: str, entries: Sequence[bytes], *, owner: str | None = None
    ) -> bool:
        def interrupt(db: sqlite3.Connection) -> bool:
            now = self._clock()
            with self._transaction(db):
                row = db.execute(
                    "SELECT owner, lease_until FROM streams WHERE id = ? AND finished = 0",
                    (stream_id,),
                ).fetchone()
                if row is None:
                    return False
                if owner is None:
                    if row[1] is None or row[1] > now:
                        return False
                elif row[0] != owner:
                    return False
                (length,) = db.execute(
                    "SELECT length FROM streams WHERE id = ?", (stream_id,)
                ).fetchone()
                self._write_one(db, Batch(stream_id, length, list(entries), True), now)
                return True

        done = await self._run("interrupt", interrupt)
        if done:
            self._poll_now = True
            self._changed(stream_id)
        return done

    async def _request_cancel(self, stream_id: str) -> bool:
        def request(db: sqlite3.Connection) -> bool:
            now = self._clock()
            with self._transaction(db):
                row = db.execute(
                    f"SELECT finished FROM streams WHERE id = ? AND {_LIVE}", (stream_id, now)
                ).fetchone()
                if row is None:
                    raise StreamNotFoundError(stream_id)
                if row[0]:
                    return False
                db.execute("UPDATE streams SET cancel = 1 WHERE id = ?", (stream_id,))
                return True

        done = await self._run("cancel", request)
        self._poll_now = True  # an owner in this process hears of it at the next tick
        return done

    async def set_readers(self, stream_id: str, instance: str, count: int, ttl: float) -> None:
        def record(db: sqlite3.Connection) -> None:
            if count <= 0:
                db.execute(
                    "DELETE FROM readers WHERE stream = ? AND instance = ?", (stream_id, instance)
                )
            else:
                db.execute(
                    "INSERT OR REPLACE INTO readers VALUES (?, ?, ?, ?)",
                    (stream_id, instance, count, self._clock() + ttl),
                )

        await self._run("readers", record)

    async def readers(self, stream_id: str, exclude: str = "") -> int:
        def count(db: sqlite3.Connection) -> int:
            (n,) = db.execute(
                "SELECT COALESCE(SUM(count), 0) FROM readers "
                "WHERE stream = ? AND instance != ? AND until > ?",
                (stream_id, exclude, self._clock()),
            ).fetchone()
            return int(n)

        return await self._run("readers", count)

    async def _running(self) -> int:
        def count(db: sqlite3.Connection) -> int:
            (n,) = db.execute(
                f"SELECT COUNT(*) FROM streams WHERE {_RUNNING}", (self._clock(),)
            ).fetchone()
            return int(n)

        return await self._run("running", count)

    # -- aliases (written at once, not behind: they are rare) --------------------------------

    async def put_alias(self, name: str, stream_id: str, ttl: float) -> None:
        def put(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)",
                (name, stream_id, self._clock() + ttl),
            )

        await self._run("put alias", put)

    async def alias(self, name: str) -> str | None:
        def find(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT stream_id FROM aliases WHERE name = ? AND until > ?",
                (name, self._clock()),
            ).fetchone()
            return None if row is None else str(row[0])

        return await self._run("alias", find)

    async def drop_alias(self, name: str, stream_id: str) -> None:
        def drop(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM aliases WHERE name = ? AND stream_id = ?", (name, stream_id))

        await self._run("drop alias", drop)

    # -- counters (written at once, not behind: a limit must hold across processes) -------

    async def add_count(self, name: str, amount: int, window: float) -> tuple[int, float]:
        check_count(amount, window)

        def add(db: sqlite3.Connection) -> tuple[int, float]:
            now = self._clock()
            index, left = fixed_window(now, window)
            if amount == 0:  # a read takes no write lock
                rows = db.execute(
                    "SELECT total FROM counters WHERE name = ? AND window = ?", (name, index)
                ).fetchall()
            else:  # fetched whole: the statement, and its write, end here
                rows = db.execute(
                    "INSERT INTO counters VALUES (?, ?, ?, ?) ON CONFLICT (name, window) "
                    "DO UPDATE SET total = total + excluded.total RETURNING total",
                    (name, index, amount, now + left + window),
                ).fetchall()
            return (int(rows[0][0]) if rows else 0), left

        return await self._run("add count", add)
