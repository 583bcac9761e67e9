"""``Timing``: time to first token and inter-token gaps, as the producer sees them."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..llm.model import Delta, Start, Usage

__all__ = ["Timing"]


class Timing:
    """Time to the first content delta (from ``started``, a ``perf_counter`` time) and the
    gaps between content deltas, observed by the producer as deltas arrive."""

    __slots__ = ("_first", "_gap", "_last", "_started", "_ttft")

    def __init__(
        self,
        started: float,
        ttft: Callable[[float], None],
        gap: Callable[[float], None],
        first: Callable[[float], None] | None = None,
    ) -> None:
        self._started = started
        self._ttft = ttft
        self._gap = gap
        self._first = first  # also hears the time to first token
        self._last = 0.0

    def delta(self, delta: Delta) -> None:
        if isinstance(delta, Start | Usage):
            return
        now = time.perf_counter()
        if self._last:
            self._gap(now - self._last)
        else:
            ttft = now - self._started
            self._ttft(ttft)
            if self._first is not None:
                self._first(ttft)
        self._last = now
