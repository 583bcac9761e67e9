"""Prometheus metrics of one gateway app (a registry per app: no global state).

Under ``serve --workers`` (``PROMETHEUS_MULTIPROC_DIR`` set), every worker writes its
samples to that directory and ``render`` adds up all workers' (prometheus-client's
multiprocess mode): any worker's ``/metrics`` shows the whole gateway."""

from __future__ import annotations

import os
from typing import Any, Self

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..llm.model import Usage

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class _Memo:
    """``labels(*values)`` remembered: prometheus-client validates the values and takes a
    lock on every call (0.7 µs; a request makes about ten). The children are the ones
    prometheus-client keeps anyway (as many as the label combinations seen)."""

    _memo: dict[tuple[Any, ...], Any]

    def labels(self, *labelvalues: Any, **labelkwargs: Any) -> Self:
        if labelkwargs:
            return super().labels(*labelvalues, **labelkwargs)  # type: ignore[misc,no-any-return]
        try:
            return self._memo[labelvalues]  # type: ignore[no-any-return]
        except AttributeError:
            self._memo = {}
        except KeyError:
            pass
        child = self._memo[labelvalues] = super().labels(*labelvalues)  # type: ignore[misc]
        return child  # type: ignore[no-any-return]


class _Counter(_Memo, Counter):
    pass


class _Histogram(_Memo, Histogram):
    pass


class Metrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        r = self.registry
        self.ttft = _Histogram(
            "tokenrelay_ttft_seconds",
            "Time from request to first token",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.gap = _Histogram(
            "tokenrelay_inter_token_seconds",
            "Gap between tokens",
            ["model"],
            buckets=_GAP_BUCKETS,
            registry=r,
        )
        self.tokens = _Counter(
            "tokenrelay_tokens",
            "Tokens by direction (estimated or not)",
            ["model", "direction", "estimated"],
            registry=r,
        )
        self.active = Gauge(
            "tokenrelay_active_streams",
            "Generations running",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.saturated = Gauge(
            "tokenrelay_saturated",
            "1 while the loop's core is saturated and upstream reads paced (workers: how many)",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.requests = _Counter(
            "tokenrelay_requests",
            "Requests by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.upstream_errors = _Counter(
            "tokenrelay_upstream_errors",
            "Failed upstream attempts by provider and kind",
            ["provider", "kind"],
            registry=r,
        )
        self.streams_ended = _Counter(
            "tokenrelay_streams_ended", "Streams by how they ended", ["why"], registry=r
        )
        # Per client key (its configured name; "" without keys) and configured model.
        self.key_requests = _Counter(
            "tokenrelay_key_requests",
            "Generation requests by key, model and status",
            ["key", "model", "status"],
            registry=r,
        )
        self.key_tokens = _Counter(
            "tokenrelay_key_tokens",
            "Tokens by key, model and direction (estimated or not)",
            ["key", "model", "direction", "estimated"],
            registry=r,
        )
        self.key_errors = _Counter(
            "tokenrelay_key_errors",
            "Generations that did not complete, by key, model and how they ended",
            ["key", "model", "end"],
            registry=r,
        )
        self.limited = _Counter(
            "tokenrelay_limited",
            "Requests refused by a key's limit, by key and limit",
            ["key", "limit"],
            registry=r,
        )

    def usage(self, model: str, usage: Usage) -> None:
        estimated = "true" if usage.estimated else "false"
        self.tokens.labels(model, "input", estimated).inc(usage.input_tokens)
        self.tokens.labels(model, "output", estimated).inc(usage.output_tokens)

    def key_usage(self, key: str, model: str, usage: Usage) -> None:
        estimated = "true" if usage.estimated else "false"
        self.key_tokens.labels(key, model, "input", estimated).inc(usage.input_tokens)
        self.key_tokens.labels(key, model, "output", estimated).inc(usage.output_tokens)

    def render(self) -> bytes:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
