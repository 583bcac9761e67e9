"""Each client key's limits, checked when a generation request arrives, before any upstream
call: the generations it may run at once (429), requests and tokens per minute (429 with
``retry-after``: the seconds until the minute's window ends). (The models a key may use
are the gateway's to check: another model does not exist for it, a 404.)

Where a limit holds: requests and tokens per minute are counted in the stream store
(``add_count``: fixed one-minute windows), so they hold for the whole gateway with a
shared store — SQLite for the workers of one machine, Redis for a fleet — and per process
with the memory store. Concurrent generations are counted per instance, and a slot is
taken at once when a request arrives (before any store round trip). Tokens are those of
finished requests (input + output, the upstream's count or the estimate): a request is
admitted while the minute's tokens plus its own prompt's (estimated from its size: a
token per four bytes) stay within the limit — one larger than the whole limit never is —
and its tokens count once it ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..llm.model import ErrorKind, StreamError, Usage
from ..store import StreamStore
from .config import ClientKey

__all__ = ["Limits", "Refusal"]

WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not admitted, with the seconds to wait (None: waiting won't help)."""

    error: StreamError
    limit: str  # the limit's name, for the metric
    retry_after: float | None = None


class Limits:
    """The limits of every key, over one store (see the module docstring)."""

    def __init__(self, store: StreamStore) -> None:
        self.store = store
        self._running: dict[str, int] = {}

    def reserve(self, key: ClientKey) -> Refusal | None:
        """Hold one of ``key``'s ``max_streams`` slots for a generation about to start,
        at once (no await between the check and the count, so concurrent requests cannot
        all pass); ``release`` it when the generation ends or never starts."""
        if key.max_streams is None:
            return None
        running = self._running.get(key.name, 0)
        if running >= key.max_streams:
            return _over(key, "max_streams", f"{key.max_streams} generations running", 1.0)
        self._running[key.name] = running + 1
        return None

    def release(self, key: ClientKey) -> None:
        if key.max_streams is not None:
            left = self._running.get(key.name, 0) - 1
            if left > 0:
                self._running[key.name] = left
            else:
                self._running.pop(key.name, None)

    async def admit(self, key: ClientKey, prompt_tokens: int) -> Refusal | None:
        """Check ``key``'s per-minute limits for a request whose prompt is about
        ``prompt_tokens``, and count the request. A ``StoreError`` propagates (the caller
        answers 503)."""
        if key.tokens_per_minute is not None:
            limit = key.tokens_per_minute
            if prompt_tokens > limit:  # never fits, whatever the wait
                error = StreamError(
                    ErrorKind.RATE_LIMIT,
                    f"request too large for key {key.name!r}: its prompt is about "
                    f"{prompt_tokens} tokens, over its tokens_per_minute ({limit})",
                    429,
                )
                return Refusal(error, "tokens_per_minute")
            used, left = await self.store.add_count(f"tpm:{key.name}", 0, WINDOW)
            if used + prompt_tokens > limit:
                what = f"{used} of {limit} tokens used this minute, about {prompt_tokens} asked"
                return _over(key, "tokens_per_minute", what, left)
        if key.requests_per_minute is not None:
            made, left = await self.store.add_count(f"rpm:{key.name}", 1, WINDOW)
            if made > key.requests_per_minute:
                what = f"{key.requests_per_minute} requests this minute"
                return _over(key, "requests_per_minute", what, left)
        return None

    async def used(self, key: ClientKey, usage: Usage) -> None:
        """Count a finished request's tokens (a ``StoreError`` propagates)."""
        if key.tokens_per_minute is not None:
            tokens = usage.input_tokens + usage.output_tokens
            if tokens > 0:
                await self.store.add_count(f"tpm:{key.name}", tokens, WINDOW)


def _over(key: ClientKey, limit: str, what: str, wait: float) -> Refusal:
    seconds = max(1, math.ceil(wait))
    error = StreamError(
        ErrorKind.RATE_LIMIT,
        f"key {key.name!r} is over its {limit} limit ({what}); retry in {seconds} s",
        429,
    )
    return Refusal(error, limit, float(seconds))
