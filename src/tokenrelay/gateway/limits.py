"""Each client key's limits, checked when a generation request arrives, before any upstream
call: the models it may use (403), the generations it may run at once (429), requests
and tokens per minute (429 with ``retry-after``: the seconds until the minute's window
ends).

Where a limit holds: requests and tokens per minute are counted in the stream store
(``add_count``: fixed one-minute windows), so they hold for the whole gateway with a
shared store — SQLite for the workers of one machine, Redis for a fleet — and per process
with the memory store. Concurrent generations are counted per instance. Tokens are
those of finished requests (input + output, the upstream's count or the estimate): a
request is admitted while the minute's tokens are under the limit, and its own tokens
count once it ends.
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

    async def admit(self, key: ClientKey, model: str) -> Refusal | None:
        """Check ``key`` may start a generation of ``model`` now; count the request. A
        ``StoreError`` propagates (the caller answers 503)."""
        if not key.may_use(model):
            allowed = ", ".join(key.models)
            error = StreamError(
                ErrorKind.PERMISSION,
                f"key {key.name!r} may not use model {model!r} (its models: {allowed})",
                403,
                param="model",
            )
            return Refusal(error, "models")
        if key.max_streams is not None and self._running.get(key.name, 0) >= key.max_streams:
            return _over(key, "max_streams", f"{key.max_streams} generations running", 1.0)
        if key.tokens_per_minute is not None:
            used, left = await self.store.add_count(f"tpm:{key.name}", 0, WINDOW)
            if used >= key.tokens_per_minute:
                what = f"{used} of {key.tokens_per_minute} tokens this minute"
                return _over(key, "tokens_per_minute", what, left)
        if key.requests_per_minute is not None:
            made, left = await self.store.add_count(f"rpm:{key.name}", 1, WINDOW)
            if made > key.requests_per_minute:
                what = f"{key.requests_per_minute} requests this minute"
                return _over(key, "requests_per_minute", what, left)
        return None

    def started(self, key: ClientKey) -> None:
        """A generation of ``key`` runs (until ``ended``)."""
        if key.max_streams is not None:
            self._running[key.name] = self._running.get(key.name, 0) + 1

    def ended(self, key: ClientKey) -> None:
        if key.max_streams is not None:
            left = self._running.get(key.name, 0) - 1
            if left > 0:
                self._running[key.name] = left
            else:
                self._running.pop(key.name, None)

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
