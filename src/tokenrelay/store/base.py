"""The stream log contract: what a gateway needs to decouple generation from delivery,
within one process or across many.

**The log.** One producer appends the entries of a stream (serialised deltas) as they are
generated; any number of readers, in any process sharing the store, read them from any
position and wait for more. A stream is *finished* when its producer says so, and is then
kept for the store's retention time so late readers can still resume it — counted from
its last read, so that a reader still reading always gets to the end; after that it is
gone. Positions are entry indexes from 0, so "the events after id k" is
``read(stream, k + 1)``.

**Writing behind.** ``append`` never waits for a round trip to a database: a shared
backend keeps the running streams produced in its own process in memory, serves and wakes
that process's readers from there at once, and writes the entries to the database in
batches behind the producer (everything that arrived during the previous write goes in
the next one). Readers in other processes see entries after that write (milliseconds).

**Owners and leases.** A stream is created by its *owner* (an instance name, e.g. a host
and process) with a lease of ``lease`` seconds, which the owner renews while it runs the
generation. When the owner is gone (killed, machine lost) the lease runs out: the stream
is *abandoned*, and whoever notices first ``interrupt``\\ s it, once, with the entries the
gateway wants at its end (an error event saying so). Readers anywhere count
(``set_readers``), and a ``DELETE`` anywhere reaches the owner (``request_cancel`` →
``cancel_requests``).

**Cancelling.** Every wait here (``read_wait``, ``cancel_requests``) may be cancelled at
any point without losing or skipping an entry: positions are explicit, so a reader simply
reads from the same position again.

**Aliases.** A short-lived name pointing at a stream id (``put_alias``) lets any process
sharing the store find a stream by a name of its own, such as a chat's running stream.

**Counters.** A total per name in fixed windows of time (``add_count``), the same for
every process sharing the store: per-key rate limits that hold across the gateway.

Implementations: ``MemoryStore`` (one process: its streams die with it), ``SQLiteStore``
(one file; the processes of one machine), ``RedisStore`` (a fleet). The same contract suite
(``tests/test_store.py``) runs unchanged over all three.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import TokenRelayError

__all__ = [
    "StoreError",
    "StoreLimitError",
    "StoreUnavailableError",
    "StreamExistsError",
    "StreamFinishedError",
    "StreamInfo",
    "StreamNotFoundError",
    "StreamStore",
]


class StoreError(TokenRelayError):
    """A stream store refused an operation."""


class StreamNotFoundError(StoreError, KeyError):
    """No stream has this id (never created, or expired after its retention time)."""

    def __str__(self) -> str:  # KeyError's repr-quoting would show "'id'" in messages
        return str(self.args[0]) if self.args else ""


class StreamExistsError(StoreError):
    """A stream with this id exists already."""


class StreamFinishedError(StoreError):
    """The stream is finished: nothing more can be appended."""


class StoreLimitError(StoreError):
    """``create`` with a ``limit``: that many streams are running already."""


class StoreUnavailableError(StoreError):
    """The store's server or file cannot be reached now (Redis down, database locked);
    the operation may succeed later."""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A stream's metadata (as given to ``create``), its length, whether it is done, who
    owns it and whether that owner's lease has run out while it was still running."""

    id: str
    meta: Mapping[str, Any]
    length: int
    finished: bool
    owner: str = ""
    abandoned: bool = False


class StreamStore(Protocol):
    """Append-only logs of byte entries, one per stream id, readable from any position,
    with the ownership records that let several gateway processes share them."""

    retention: float
    """Seconds a finished stream is kept."""

    shared: bool
    """Whether other processes can see this store's streams (False for ``MemoryStore``)."""

    # -- the log -----------------------------------------------------------------------

    async def create(
        self,
        stream_id: str,
        meta: Mapping[str, Any],
        *,
        owner: str = "",
        lease: float | None = None,
        limit: int | None = None,
    ) -> None:
        """Start an empty stream owned by ``owner`` (``StreamExistsError`` if the id is
        taken). ``lease``: seconds until the stream counts as abandoned unless ``renew``ed
        (None: never). ``limit``: ``StoreLimitError`` instead, when ``limit`` streams or
        more are running (not finished, and not abandoned) — checked and created at once."""

    async def append(self, stream_id: str, entries: Sequence[bytes]) -> int:
        """Add entries at the end; returns the new length. Readers in this process are
        woken at once; the write to a shared backend happens behind (see the module
        docstring). ``StreamFinishedError`` once the stream is finished (also when another
        process ``interrupt``\\ ed it)."""

    async def finish(self, stream_id: str) -> None:
        """No more entries will come; the stream is kept for the retention time.
        Finishing a finished stream does nothing."""

    async def flush(self) -> None:
        """Wait until everything appended and finished in this process is written."""

    async def read(
        self, stream_id: str, start: int, limit: int | None = None
    ) -> tuple[list[bytes], bool]:
        """Entries from ``start`` (at most ``limit``), and whether the stream is finished
        with nothing after them: True means the reader has everything."""

    async def read_wait(
        self, stream_id: str, start: int, timeout: float | None = None
    ) -> tuple[list[bytes], bool]:
        """``read`` once there is something to read: entries from ``start``, or none and
        True when the stream is finished. Waits at most ``timeout`` seconds (None: no
        limit), then returns ``([], False)``. One round trip when there is something."""

    async def info(self, stream_id: str) -> StreamInfo:
        """The stream's metadata and state (``StreamNotFoundError`` if unknown)."""

    async def delete(self, stream_id: str) -> None:
        """Forget the stream now; waiting readers wake and find it gone."""

    # -- owners, leases, readers, cancellation -----------------------------------------

    async def renew(self, owner: str, stream_ids: Sequence[str], lease: float) -> None:
        """Extend, to ``lease`` seconds from now, the leases of these running streams
        that ``owner`` owns (one round trip for all; others are ignored)."""

    async def abandoned(self, owner: str | None = None) -> list[str]:
        """Running streams whose lease has run out; with ``owner``, every running
        stream of that owner instead (a restarted instance ends what it owned)."""

    async def interrupt(
        self, stream_id: str, entries: Sequence[bytes], *, owner: str | None = None
    ) -> bool:
        """End a stream whose owner is gone: append ``entries`` and finish it, at once and
        only once. True for the one caller that did it. Only an abandoned stream is
        interrupted, or with ``owner``, a running stream of that owner."""

    async def request_cancel(self, stream_id: str) -> bool:
        """Ask the stream's owner, wherever it runs, to stop the generation (it hears of
        it from ``cancel_requests``). False when the stream is finished already."""

    async def cancel_requests(self, owner: str, timeout: float | None = None) -> list[str]:
        """The running streams of ``owner`` that someone asked to cancel since the last
        call, as soon as there is one; ``[]`` after ``timeout`` seconds."""

    async def set_readers(self, stream_id: str, instance: str, count: int, ttl: float) -> None:
        """Record that ``instance`` has ``count`` readers of the stream for the next
        ``ttl`` seconds (renew it while they read; 0 removes the record)."""

    async def readers(self, stream_id: str, exclude: str = "") -> int:
        """Readers of the stream recorded by instances other than ``exclude``."""

    async def running(self) -> int:
        """Streams running now (not finished, not abandoned), across every process."""

    # -- aliases -----------------------------------------------------------------------

    async def put_alias(self, name: str, stream_id: str, ttl: float) -> None:
        """Point ``name`` at ``stream_id`` for ``ttl`` seconds from now (replacing what it
        pointed at). A name is any string of up to a few hundred characters."""

    async def alias(self, name: str) -> str | None:
        """The stream id ``name`` points at, or None (never put, or expired)."""

    async def drop_alias(self, name: str, stream_id: str) -> None:
        """Remove ``name`` only if it still points at ``stream_id`` (a newer put wins)."""

    # -- counters ----------------------------------------------------------------------

    async def add_count(self, name: str, amount: int, window: float) -> tuple[int, float]:
        """Add ``amount`` (may be 0: just read) to counter ``name`` in the current window
        and return (the window's total after it, seconds until the window ends). Windows
        are fixed: consecutive ``window``-second intervals since the Unix epoch (so every
        process agrees on them, by the store's clock: Redis's TIME for Redis, the machine's
        time for SQLite and memory); a counter starts at 0 in each window, and old windows
        are forgotten (kept no longer than two windows). A name is any string of up to a
        few hundred characters, used with one ``window``. ``ValueError`` unless
        ``window > 0`` and ``amount >= 0``."""

    async def aclose(self) -> None:
        """Write what is pending and release the store's resources."""


def check_count(amount: int, window: float) -> None:
    """``add_count``'s ``ValueError``\\ s, for every backend."""
    if not (window > 0 and math.isfinite(window)):
        raise ValueError("window must be a number of seconds > 0")
    if amount < 0:
        raise ValueError("amount must be >= 0")


def fixed_window(now: float, window: float) -> tuple[int, float]:
    """The index of the ``window``-second window holding ``now`` (seconds since the
    epoch), and the seconds left in it: in (0, window]."""
    index = math.floor(now / window)
    left = (index + 1) * window - now
    if left <= 0:  # rounding, right at a boundary: the next window has begun
        return index + 1, window
    return index, min(left, window)
