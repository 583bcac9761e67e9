"""A client that leaves before the first token stops the upstream at once."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.test_gateway_faults import PATHS, body, paced, serve, wait_for
from tokenrelay.mock import MockServer


@pytest.mark.parametrize("dialect", sorted(PATHS))
@pytest.mark.parametrize("grace", [0, 30])
def test_leaving_before_the_first_token_closes_the_upstream_within_100ms(
    mock: MockServer, dialect: str, grace: float
) -> None:
    # The upstream thinks for 5 s; the response has not started (pings would come at 5 s).
    slow = paced(mock, 10, "openai", **{"x-mock-ttft-ms": "5000"})
    with serve(mock, {"m": ["openai:echo"]}, providers=[slow], grace_seconds=grace) as gw:
        before = len(mock.app.records)
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                gw.url + PATHS[dialect], json=body(dialect, "m"), timeout=httpx.Timeout(5, read=0.3)
            )
        closed = time.time()
        (record,) = list(mock.app.records)[before:]
        wait_for(lambda: "ended" in record, 2)
        # Even with a grace period: the client never saw the stream id, so no resume can
        # come for this generation.
        assert record["outcome"] == "disconnected"
        assert record["ended"] - closed < 0.1
        assert gw.metric("tokenrelay_streams_ended_total", why="disconnected") == 1
