"""The reconnect policy alone: no sockets, a fake clock and fake randomness."""

from __future__ import annotations

import pytest

from tokenrelay.errors import ReadError, ReconnectError
from tokenrelay.sse import NO_RECONNECT, Reconnector, ReconnectPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def reconnector(policy: ReconnectPolicy, rand: float = 0.5, **kw: str) -> tuple[Reconnector, Clock]:
    clock = Clock()
    return Reconnector(policy, clock=clock, random=lambda: rand, **kw), clock


def test_first_reconnect_after_events_waits_exactly_the_reconnection_time() -> None:
    rc, _ = reconnector(ReconnectPolicy(delay=3.0))
    assert rc.disconnected(None, delivered=True) == 3.0


def test_server_retry_replaces_the_default_delay() -> None:
    rc, _ = reconnector(ReconnectPolicy(delay=3.0))
    rc.decoder.feed(b"retry: 250\n\n")
    assert rc.disconnected(ReadError("x"), delivered=True) == 0.25


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = ReconnectPolicy(delay=1.0, factor=2.0, max_delay=5.0, jitter=0.5, max_attempts=None)
    rc, _ = reconnector(policy, rand=0.5)  # jitter takes off 25 % of each nominal wait
    delays = [rc.disconnected(None, delivered=False) for _ in range(6)]
    assert delays == [1.0, 1.5, 3.0, 3.75, 3.75, 3.75]


def test_jitter_stays_within_its_share() -> None:
    policy = ReconnectPolicy(delay=1.0, factor=2.0, max_delay=100, jitter=0.5)
    for rand in (0.0, 0.999):
        rc, _ = reconnector(policy, rand=rand)
        rc.disconnected(None, delivered=False)
        second = rc.disconnected(None, delivered=False)
        assert 1.0 <= second <= 2.0


def test_a_connection_that_delivers_resets_the_backoff() -> None:
    rc, _ = reconnector(ReconnectPolicy(delay=1.0, jitter=0))
    for _ in range(3):
        rc.disconnected(None, delivered=False)
    assert rc.attempts == 3
    assert rc.disconnected(None, delivered=True) == 1.0
    assert rc.attempts == 1


def test_gives_up_after_max_attempts_from_the_last_error() -> None:
    rc, _ = reconnector(ReconnectPolicy(delay=0, max_attempts=2))
    rc.disconnected(None, delivered=False)
    rc.disconnected(None, delivered=False)
    cause = ReadError("reset")
    with pytest.raises(ReconnectError) as info:
        rc.disconnected(cause, delivered=False)
    assert info.value.attempts == 2
    assert info.value.__cause__ is cause


def test_gives_up_past_the_deadline_counted_from_the_break() -> None:
    rc, clock = reconnector(ReconnectPolicy(delay=1.0, jitter=0, deadline=5.0, max_attempts=None))
    assert rc.disconnected(None, delivered=True) == 1.0  # broke at t=100
    clock.now = 101.5
    assert rc.disconnected(None, delivered=False) == 2.0  # next attempt at 103.5: fine
    clock.now = 103.6
    with pytest.raises(ReconnectError, match="5 s"):
        rc.disconnected(None, delivered=False)  # would start at 107.6, past 105


def test_no_reconnect_raises_the_error_or_ends_quietly() -> None:
    rc, _ = reconnector(NO_RECONNECT)
    assert rc.disconnected(None, delivered=True) is None
    error = ReadError("reset")
    with pytest.raises(ReadError):
        rc.disconnected(error, delivered=True)


def test_headers_carry_last_event_id_once_there_is_one_as_utf8() -> None:
    rc, _ = reconnector(ReconnectPolicy())
    assert rc.request_headers() == {"Accept": b"text/event-stream", "Cache-Control": b"no-cache"}
    rc.decoder.feed("id: caf\u00e9\n\n".encode())
    assert rc.request_headers()["Last-Event-ID"] == "caf\u00e9".encode()


def test_initial_last_event_id_is_sent_on_the_first_request() -> None:
    rc, _ = reconnector(ReconnectPolicy(), last_event_id="42")
    assert rc.request_headers()["Last-Event-ID"] == b"42"


def test_disconnect_discards_the_partial_event_but_keeps_the_id() -> None:
    rc, _ = reconnector(ReconnectPolicy())
    rc.decoder.feed(b"id: 1\ndata: whole\n\nid: 2\ndata: partial")
    rc.disconnected(None, delivered=True)
    assert rc.decoder.last_event_id == "1"
    assert rc.decoder.feed(b"data: next\n\n")[0].id == "1"


@pytest.mark.parametrize(
    ("status", "content_type", "verdict"),
    [
        (200, "text/event-stream", "read"),
        (200, "text/event-stream; charset=utf-8", "read"),
        (200, "Text/Event-Stream;", "read"),
        (200, " text/event-stream ", "read"),
        (204, "text/event-stream", "stop"),
        (204, None, "stop"),
        (200, "text/plain", "fail"),
        (200, None, "fail"),
        (200, "text/event-streamx", "fail"),
        (201, "text/event-stream", "fail"),
        (301, "text/event-stream", "fail"),
        (500, "text/event-stream", "fail"),
    ],
)
def test_verdict_on_a_response(status: int, content_type: str | None, verdict: str) -> None:
    rc, _ = reconnector(ReconnectPolicy())
    assert rc.verdict(status, content_type) == verdict


def test_policy_validates_itself() -> None:
    with pytest.raises(ValueError):
        ReconnectPolicy(factor=0.5)
    with pytest.raises(ValueError):
        ReconnectPolicy(jitter=2)
    with pytest.raises(ValueError):
        ReconnectPolicy(max_attempts=-1)
