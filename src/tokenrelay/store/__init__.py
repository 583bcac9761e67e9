"""Stream logs behind one small protocol (``StreamStore``): the gateway's producer
appends, readers anywhere read after any position and wait for more, and the records of
owners, leases, readers and cancellations let several gateway processes share them.

``MemoryStore`` for one process; ``SQLiteStore`` for the processes of one machine (one
file, no server); ``RedisStore`` for a fleet (extra ``redis``). ``open_store(url)``
opens one from a URL: ``memory``, ``sqlite:///path/to/streams.db``, ``redis://host:6379/0``.
"""

from .base import (
    StoreError,
    StoreLimitError,
    StoreUnavailableError,
    StreamExistsError,
    StreamFinishedError,
    StreamInfo,
    StreamNotFoundError,
    StreamStore,
)
from .memory import MemoryStore
from .open import open_store, parse_store_url
from .redis import RedisStore  # imports redis-py only when one is made
from .sqlite import SQLiteStore

__all__ = [
    "MemoryStore",
    "RedisStore",
    "SQLiteStore",
    "StoreError",
    "StoreLimitError",
    "StoreUnavailableError",
    "StreamExistsError",
    "StreamFinishedError",
    "StreamInfo",
    "StreamNotFoundError",
    "StreamStore",
    "open_store",
    "parse_store_url",
]
