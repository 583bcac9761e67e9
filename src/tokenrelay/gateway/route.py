"""One generation along a model's route: retries and fallbacks before the first delta,
deadlines throughout, and never a switch of upstream after the first delta.

``generate`` yields the deltas of the first attempt that produces one. Before that,
an ``UpstreamError`` that is retryable is tried again on the same route entry (up to
``retry.attempts`` times, waiting the upstream's ``Retry-After`` or an exponential
backoff with full jitter), then the next entry is tried; when every entry failed, the
last error is raised for the caller to answer in the client's dialect. After the first
delta, any failure (an upstream error event, a timeout) is yielded as a ``StreamError``
and the generation ends: the client may already have acted on what it received (run a
tool, shown text), so replaying it from another upstream would be wrong.

The first *content* delta commits (text, reasoning, a tool call, a finish): an upstream
that answers 200 and then an error event before any content is retried like one that
answered with an error status.

Deadlines: ``first_token`` from the start of the generation (across retries) to the first
content delta; ``idle`` between two deltas; ``total`` for the whole generation.

Reasoning signatures (Anthropic's thinking signature, Gemini's thought signature, OpenAI's
``encrypted_content``) mean something only to the provider that made them: they reach the
client only from an upstream that speaks the client's own dialect (``request.dialect``),
which can check them when the client sends them back. From any other upstream (another
dialect, the in-process mock or local model) they are left out, never passed on as a
value a real upstream of the client's dialect would reject.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace

from ..llm.model import Delta, ErrorKind, ReasoningDelta, Request, Start, StreamError, Usage
from ..providers.base import Provider, UpstreamError, trace_headers
from ..providers.http import KINDS as HTTP_KINDS
from .config import ModelRoute, RetryPolicy, Timeouts

__all__ = ["generate"]


def _dialect_of(provider: Provider) -> str:
    """The dialect an upstream speaks ("" for the in-process ones: mock, local)."""
    kind = HTTP_KINDS.get(provider.config.kind)
    return kind.dialect.name if kind is not None else ""


def backoff(
    policy: RetryPolicy, attempt: int, retry_after: float | None, rng: Callable[[], float]
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based)."""
    if retry_after is not None:
        return float(min(retry_after, policy.max_backoff))
    ceiling: float = min(policy.max_backoff, policy.backoff * 2.0 ** (attempt - 1))
    return ceiling * (0.5 + 0.5 * rng())  # jitter, never less than half the step


def _timeout(kind: str, seconds: float) -> StreamError:
    return StreamError(ErrorKind.TIMEOUT, f"upstream {kind} timeout ({seconds:g} s)", 504)


class _Deadlines:
    """The idle and total deadlines of the streams committed on one loop, behind one
    timer: a heap of (time, seq, deadline), the timer set for its earliest entry. One
    ``call_at`` per stream would cost every open stream half a kilobyte (uvloop's timer
    handle); an entry here is a tuple. An entry whose deadline moved on or closed is
    skipped when it comes up; closed ones are swept out when they are most of the heap."""

    __slots__ = ("_at", "_handle", "_heap", "_seq", "closed")

    def __init__(self) -> None:
        # (The value of a weak mapping keyed by the loop: no reference to it but the
        # timer handle's, which lasts while a deadline is pending.)
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._seq = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0  # when the timer fires
        self.closed = 0  # entries of closed deadlines still in the heap

    def add(self, deadline: _Deadline, when: float) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), deadline))
        if self._handle is None or when < self._at:
            if self._handle is not None:
                self._handle.cancel()
            self._at = when
            self._handle = asyncio.get_running_loop().call_at(when, self._fire)

    def sweep(self) -> None:
        """Drop closed deadlines' entries: all of them (and the timer) when nothing else
        is left, else once they are most of a large heap."""
        if self.closed >= len(self._heap):
            self._heap.clear()
            self.closed = 0
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
        elif self.closed > 256 and self.closed * 2 > len(self._heap):
            self._heap = [e for e in self._heap if not e[2].closed]
            heapq.heapify(self._heap)
            self.closed = sum(1 for e in self._heap if e[2].closed)

    def _fire(self) -> None:
        self._handle = None
        loop = asyncio.get_running_loop()
        heap, now = self._heap, loop.time()
        while heap and heap[0][0] <= now:
            when, _, deadline = heapq.heappop(heap)
            if deadline.scheduled != when:
                continue  # moved on since
            if deadline.closed:
                self.closed -= 1
            else:
                deadline.fire(now)  # may add an entry, and set a timer for it
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if heap:
            self._at = heap[0][0]
            self._handle = loop.call_at(self._at, self._fire)


_DEADLINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = (
    weakref.WeakKeyDictionary()
)


class _Deadline:
    """One deadline for a task's waits, moved on every delta at the cost of two attribute
    writes: its entry in the loop's ``_Deadlines`` is replaced only when it comes up and
    finds the deadline moved on. (``asyncio.timeout_at`` around each wait schedules and
    cancels a timer per delta.)

    While ``armed`` and past ``when``, it cancels the task; ``expired()`` then tells the
    ``CancelledError`` that it caused apart from a cancellation from outside (as
    ``asyncio.timeout`` does, by the task's cancellation count)."""

    __slots__ = ("_base", "_fired", "_task", "_timers", "armed", "closed", "scheduled", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        task = asyncio.current_task()
        assert task is not None
        timers = _DEADLINES.get(loop)
        if timers is None:
            timers = _DEADLINES[loop] = _Deadlines()
        self._timers = timers
        self._task = task
        self._base = task.cancelling()
        self.scheduled = 0.0  # when its entry comes up (0: none)
        self._fired = False
        self.armed = False
        self.closed = False
        self.when = 0.0

    def arm(self, when: float) -> None:
        self.when = when
        self.armed = True
        if not self.scheduled or when < self.scheduled:
            self.scheduled = when
            self._timers.add(self, when)

    def fire(self, now: float) -> None:
        """Its entry came up (``_Deadlines``)."""
        self.scheduled = 0.0
        if not self.armed:
            return  # the next arm schedules it again
        if now < self.when:
            self.scheduled = self.when
            self._timers.add(self, self.when)
            return
        self._fired = True
        self.armed = False
        self._task.cancel()

    def expired(self) -> bool:
        """Whether the ``CancelledError`` being handled came from this deadline alone."""
        if not self._fired:
            return False
        self._fired = False
        return self._task.uncancel() <= self._base

    def close(self) -> None:
        self.armed = False
        if not self.closed:
            self.closed = True
            if self.scheduled:
                self._timers.closed += 1
                self._timers.sweep()


async def _head(stream: AsyncIterator[Delta]) -> list[Delta]:
    """The deltas up to and including the first one with content: what an attempt must
    produce before the gateway commits to it. An error event before any content is a
    failed attempt like an HTTP error (retryable when its kind is)."""
    head: list[Delta] = []
    while True:
        delta = await anext(stream)
        if isinstance(delta, StreamError):
            raise UpstreamError.reported(delta)
        head.append(delta)
        if not isinstance(delta, Start | Usage):
            return head


async def generate(
    route: ModelRoute,
    providers: Mapping[str, Provider],
    request: Request,
    *,
    retry: RetryPolicy,
    timeouts: Timeouts,
    rng: Callable[[], float] = random.random,
    on_error: Callable[[str, StreamError], None] | None = None,
    on_attempt: Callable[[str, str], Mapping[str, str] | None] | None = None,
) -> AsyncIterator[Delta]:
    """The deltas of one generation (see the module docstring). ``on_error(provider,
    error)`` hears of every failed attempt and of an error after the first delta;
    ``on_attempt(provider, upstream_model)`` of every attempt as it begins, and may
    return headers to send with it (its trace context: ``trace_headers``)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    first_deadline = started + min(timeouts.first_token, timeouts.total)
    total_deadline = started + timeouts.total
    last_error: UpstreamError | None = None
    for provider_name, upstream_model in route.route:
        provider = providers[provider_name]
        for attempt in range(1, retry.attempts + 1):
            headers = on_attempt(provider_name, upstream_model) if on_attempt else None
            # (The provider sends it as ``upstream_model``: no copy of the request here.)
            stream = provider.stream(request, upstream_model)
            try:
                try:
                    # The request goes out at the first read: with the attempt's headers.
                    token = trace_headers.set(headers) if headers else None
                    try:
                        async with asyncio.timeout_at(first_deadline):
                            head = await _head(stream)
                    finally:
                        if token is not None:
                            trace_headers.reset(token)
                except StopAsyncIteration:
                    raise UpstreamError(
                        StreamError(ErrorKind.SERVER, "upstream sent an empty stream", 502),
                        retryable=True,
                    ) from None
                except TimeoutError:
                    raise UpstreamError(
                        _timeout("first-token", timeouts.first_token), retryable=False
                    ) from None
            except UpstreamError as exc:
                with contextlib.suppress(Exception):
                    await stream.aclose()
                if on_error is not None:
                    on_error(provider_name, exc.error)
                last_error = exc
                if exc.error.kind is ErrorKind.TIMEOUT and loop.time() >= first_deadline:
                    raise
                if not exc.retryable:
                    break  # the next route entry may still serve it
                if attempt < retry.attempts:
                    delay = backoff(retry, attempt, exc.retry_after, rng)
                    if loop.time() + delay >= first_deadline:
                        break
                    await asyncio.sleep(delay)
                continue
            # Committed to this upstream from here on.
            deadline = _Deadline(loop)
            idle_seconds = timeouts.idle
            unsigned = bool(request.dialect) and _dialect_of(provider) != request.dialect
            try:
                for delta in head:
                    if unsigned and isinstance(delta, ReasoningDelta) and delta.signature:
                        if not delta.text:
                            continue
                        delta = replace(delta, signature=None)
                    yield delta
                while True:
                    deadline.arm(min(loop.time() + idle_seconds, total_deadline))
                    try:
                        delta = await anext(stream)
                    except StopAsyncIteration:
                        return
                    except asyncio.CancelledError:
                        if not deadline.expired():
                            raise
                        idle = deadline.when < total_deadline
                        error = _timeout(
                            "idle" if idle else "total", timeouts.idle if idle else timeouts.total
                        )
                        if on_error is not None:
                            on_error(provider_name, error)
                        yield error
                        return
                    deadline.armed = False
                    if unsigned and isinstance(delta, ReasoningDelta) and delta.signature:
                        if not delta.text:
                            continue
                        delta = replace(delta, signature=None)
                    yield delta
                    if isinstance(delta, StreamError):
                        if on_error is not None:
                            on_error(provider_name, delta)
                        return
            finally:
                deadline.close()
                await stream.aclose()
    assert last_error is not None, "a route has at least one entry"
    raise last_error
