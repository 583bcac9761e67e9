"""Stream logs behind one small protocol: the gateway's producer appends, readers read
after any position and wait for more. ``MemoryStore`` for one process; SQLite and Redis
backends follow the same contract."""

from .base import (
    StoreError,
    StreamExistsError,
    StreamFinishedError,
    StreamInfo,
    StreamNotFoundError,
    StreamStore,
)
from .memory import MemoryStore

__all__ = [
    "MemoryStore",
    "StoreError",
    "StreamExistsError",
    "StreamFinishedError",
    "StreamInfo",
    "StreamNotFoundError",
    "StreamStore",
]
