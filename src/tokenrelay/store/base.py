"""The stream log contract: what a gateway needs to decouple generation from delivery.

One producer appends the entries of a stream (serialised deltas) as they are generated;
any number of readers read them from any position and wait for more. A stream is
*finished* when its producer says so, and is then kept for the store's retention time so
late readers can still resume it; after that it is gone. Positions are entry indexes from
0, so "the events after id k" is ``read(stream, k + 1)``.

Implementations: ``MemoryStore`` (one process). SQLite and Redis backends implement the
same ``StreamStore`` protocol and pass the same contract tests (``tests/test_store.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import TokenRelayError

__all__ = [
    "StoreError",
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


class StreamExistsError(StoreError):
    """A stream with this id exists already."""


class StreamFinishedError(StoreError):
    """The stream is finished: nothing more can be appended."""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """A stream's metadata (as given to ``create``), its length and whether it is done."""

    id: str
    meta: Mapping[str, Any]
    length: int
    finished: bool


class StreamStore(Protocol):
    """Append-only logs of byte entries, one per stream id, readable from any position."""

    async def create(self, stream_id: str, meta: Mapping[str, Any]) -> None:
        """Start an empty stream (``StreamExistsError`` if the id is taken)."""

    async def append(self, stream_id: str, entries: Sequence[bytes]) -> int:
        """Add entries at the end; returns the new length. Wakes every waiting reader."""

    async def finish(self, stream_id: str) -> None:
        """No more entries will come; the stream is kept for the retention time.
        Finishing a finished stream does nothing."""

    async def read(
        self, stream_id: str, start: int, limit: int | None = None
    ) -> tuple[list[bytes], bool]:
        """Entries from ``start`` (at most ``limit``), and whether the stream is finished
        with nothing after them: True means the reader has everything."""

    async def wait(self, stream_id: str, start: int, timeout: float | None) -> bool:
        """Wait until the stream has an entry at ``start`` or is finished; False if the
        timeout passed first. Returns at once when that is already so."""

    async def info(self, stream_id: str) -> StreamInfo:
        """The stream's metadata and state (``StreamNotFoundError`` if unknown)."""

    async def delete(self, stream_id: str) -> None:
        """Forget the stream now; waiting readers wake and find it gone."""

    async def aclose(self) -> None:
        """Release the store's resources."""
