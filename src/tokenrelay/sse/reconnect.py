"""When and how an SSE client reconnects (WHATWG HTML §9.2.3-9.2.4), without I/O.

``ReconnectPolicy`` is the configuration; ``Reconnector`` runs it for one logical stream
across its connections. Both the sync and the async client drive the same
``Reconnector``: it says which headers to send, whether a response may be read, and how
long to wait before the next attempt. It never reads a clock or draws a random number
of its own; the driver passes them in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ..errors import ReconnectError
from .decoder import DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES, Decoder

__all__ = ["NO_RECONNECT", "ReconnectPolicy", "Reconnector", "Verdict", "is_event_stream"]

Verdict = Literal["read", "stop", "fail"]


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How a client reconnects after the network fails or the body ends.

    - ``delay``: the reconnection time in seconds until the server sets one with
      ``retry:`` (browsers use 3-5 s). The first reconnect after a connection that
      delivered events waits exactly this long.
    - Each further attempt that delivers no event multiplies the wait by ``factor``, up
      to ``max_delay``, and takes off a random share of up to ``jitter`` (0.5: the wait
      is 50-100 % of the nominal), so many clients do not return at the same instant.
    - ``max_attempts``: consecutive attempts without an event before giving up (None:
      never give up; 0: never reconnect). ``deadline``: seconds after the stream broke
      after which no new attempt starts (None: no deadline).
    """

    delay: float = 3.0
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    max_attempts: int | None = 10
    deadline: float | None = None

    def __post_init__(self) -> None:
        if self.delay < 0 or self.max_delay < 0 or self.factor < 1:
            raise ValueError("delay and max_delay must be >= 0 and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ValueError("max_attempts must be >= 0 or None")


NO_RECONNECT = ReconnectPolicy(max_attempts=0)
"""For one-shot streams, such as a single LLM completion: the first failure is final."""


def is_event_stream(status: int, content_type: str | None) -> bool:
    """Status 200 and a ``text/event-stream`` content type (its parameters ignored)."""
    essence = (content_type or "").partition(";")[0].strip().lower()
    return status == 200 and essence == "text/event-stream"


class Reconnector:
    """The state of one logical stream across reconnections.

    The driver loop, identical for sync and async clients::

        while True:
            send a request with reconnector.request_headers()
            reconnector.verdict(status, content_type): read, stop (204) or fail
            feed the body to reconnector.decoder, delivering its events
            wait reconnector.disconnected(error, delivered)  # or it raises to stop

    ``clock`` returns seconds (monotonic); ``random`` returns a float in [0, 1).
    """

    __slots__ = ("_attempts", "_broken_at", "_clock", "_random", "decoder", "policy")

    def __init__(
        self,
        policy: ReconnectPolicy,
        *,
        clock: Callable[[], float],
        random: Callable[[], float],
        last_event_id: str = "",
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        self.policy = policy
        self.decoder = Decoder(
            last_event_id, max_line_bytes=max_line_bytes, max_event_bytes=max_event_bytes
        )
        self._clock = clock
        self._random = random
        self._attempts = 0  # consecutive connections that delivered no event
        self._broken_at: float | None = None  # when the stream last broke

    @property
    def attempts(self) -> int:
        """Reconnection attempts since the stream last delivered an event."""
        return self._attempts

    def request_headers(self) -> dict[str, bytes]:
        """Headers for the next request; ``Last-Event-ID`` once there is one (UTF-8)."""
        headers = {"Accept": b"text/event-stream", "Cache-Control": b"no-cache"}
        if self.decoder.last_event_id:
            headers["Last-Event-ID"] = self.decoder.last_event_id.encode()
        return headers

    def verdict(self, status: int, content_type: str | None) -> Verdict:
        """What to do with a response, before reading its body.

        ``"read"`` for 200 with a ``text/event-stream`` content type (parameters
        ignored); ``"stop"`` for 204 No Content, the server's way to say "do not come
        back" (end without error); ``"fail"`` for anything else: the driver raises
        ``ResponseError`` and never retries, as the spec says.
        """
        if status == 204:
            return "stop"
        return "read" if is_event_stream(status, content_type) else "fail"

    def disconnected(self, error: BaseException | None, delivered: bool) -> float | None:
        """The connection ended (``error`` None: the body ended); how long to wait?

        ``delivered`` says whether this connection produced at least one event. Returns
        the delay in seconds before the next attempt, or None to end the stream quietly
        (reconnecting is off and the body simply ended). Raises ``error`` itself when
        reconnecting is off, and ``ReconnectError`` (from the last error) once attempts
        or the deadline run out.
        """
        self.decoder.close()  # drop a partial event; keep last event ID and retry
        now = self._clock()
        policy = self.policy
        if delivered:
            self._attempts = 0
            self._broken_at = now
        elif self._broken_at is None:
            self._broken_at = now
        if policy.max_attempts == 0:
            if error is not None:
                raise error
            return None
        if policy.max_attempts is not None and self._attempts >= policy.max_attempts:
            raise ReconnectError(
                f"gave up after {self._attempts} reconnection attempts without an event",
                self._attempts,
            ) from error
        base = policy.delay if self.decoder.retry is None else self.decoder.retry / 1000
        delay = base
        if self._attempts:
            delay = min(policy.max_delay, base * policy.factor**self._attempts)
            delay *= 1 - policy.jitter * self._random()
        if policy.deadline is not None and now + delay - self._broken_at > policy.deadline:
            raise ReconnectError(
                f"gave up: no event for {policy.deadline:g} s after the stream broke",
                self._attempts,
            ) from error
        self._attempts += 1
        return delay
