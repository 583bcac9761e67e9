"""SSE clients over httpx (sync and async, reconnecting), and adapters for responses
from httpx, requests and aiohttp. Needs the ``client`` extra (httpx).
"""

from .adapters import aiter_events, iter_events
from .stream import AsyncEventStream, EventStream, StopOn, Timeout, aconnect, connect

__all__ = [
    "AsyncEventStream",
    "EventStream",
    "StopOn",
    "Timeout",
    "aconnect",
    "aiter_events",
    "connect",
    "iter_events",
]
