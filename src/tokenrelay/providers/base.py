"""What every upstream adapter is: one attempt at one generation, as neutral deltas.

A ``Provider`` turns a neutral ``Request`` into the upstream's request, sends it, and
yields the upstream's answer as deltas (through the dialect codec). It makes exactly one
attempt: retries, fallbacks and the first-token / idle / total timeouts are the gateway's,
written once for every provider.

Failure contract:

- Before the first delta: raise ``UpstreamError`` (an HTTP error status with the body
  parsed by the dialect's ``parse_error``, a connection failure, a malformed response).
  ``retryable`` and ``retry_after`` tell the gateway whether and when to try again.
- After the first delta: yield a ``StreamError`` delta and stop (an in-band error event,
  malformed data, the connection cut before the dialect's end of stream).

Cancellation: closing the async iterator (``aclose()``, or cancelling the task that
iterates it) must release the upstream at once: the HTTP connection is closed, a local
generation stops. The gateway relies on it to stop paying for tokens nobody reads.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from ..errors import TokenRelayError
from ..llm.model import Delta, ErrorKind, Request, StreamError

__all__ = ["RETRYABLE_KINDS", "Provider", "ProviderConfig", "UpstreamError", "trace_headers"]

RETRYABLE_KINDS = frozenset(
    {ErrorKind.SERVER, ErrorKind.OVERLOADED, ErrorKind.RATE_LIMIT, ErrorKind.TIMEOUT}
)
"""The error kinds worth another attempt when an upstream reports them before the first
delta."""

trace_headers: ContextVar[Mapping[str, str]] = ContextVar(
    "trace_headers", default=MappingProxyType({})
)
"""Headers carrying the trace context of the attempt being started (W3C ``traceparent``),
set by the gateway around an attempt's first read; HTTP providers send them with the
request. Empty when nothing is traced."""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """One configured upstream. ``api_key`` is read from the environment variable
    ``api_key_env`` when the configuration is loaded; it is never printed (``repr``
    leaves it out) and never sent anywhere but to this upstream. ``options`` holds what
    only one kind understands (a model path for ``local``, timings for ``mock``)."""

    name: str
    kind: str
    base_url: str = ""
    api_key_env: str = ""
    api_key: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float = 10.0
    max_connections: int = 1000
    options: Mapping[str, Any] = field(default_factory=dict)


class UpstreamError(TokenRelayError):
    """An attempt failed before its first delta.

    ``error`` is the failure in neutral form (kind, message, upstream status), which the
    gateway re-encodes in the client's dialect if no retry or fallback succeeds.
    ``retryable``: worth another attempt (429, 5xx, 529, a connection failure).
    ``retry_after``: seconds the upstream asked to wait, if it said.
    """

    def __init__(
        self, error: StreamError, *, retryable: bool, retry_after: float | None = None
    ) -> None:
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after
        super().__init__(error.message)

    @classmethod
    def reported(cls, error: StreamError) -> UpstreamError:
        """An error the upstream reported (a status, an error event) before the first
        delta: retryable when its kind is one of ``RETRYABLE_KINDS``."""
        return cls(error, retryable=error.kind in RETRYABLE_KINDS)

    @classmethod
    def connection(cls, message: str) -> UpstreamError:
        """A connection that failed or broke before the first delta."""
        return cls(StreamError(ErrorKind.SERVER, message, 502), retryable=True)


class Provider(Protocol):
    """An upstream adapter (see the module docstring for its contract)."""

    config: ProviderConfig

    def stream(self, request: Request, model: str) -> AsyncGenerator[Delta, None]:
        """The deltas of one attempt at ``request``, sent to the upstream as ``model``
        (``request.model`` is the client's name for it)."""
        ...

    async def models(self) -> list[str]:
        """The upstream's model names, where it can list them ([] when it cannot)."""
        ...

    async def aclose(self) -> None:
        """Close the provider's connection pool or model."""
        ...
