"""The fake LLM in-process: kind ``mock``, no network.

The same model scripts as ``tokenrelay mock`` (``tokenrelay.mock.script``), the same
deadline pacing (token *k* at t0 + ``ttft_ms`` + k x ``token_ms``, from the provider's
``options``, both 0 by default), and the same fault grammar after an ``@`` in the model
name (``echo@429``, ``echo@drop:3``, ``lorem@error:2;kind=overloaded``), so a route to
``mock:echo@drop:3`` behaves as the mock server would over HTTP:

- a status fault raises ``UpstreamError`` with that status (and its ``retry-after``);
- ``drop:K`` yields K tokens, then the ``StreamError`` of a stream closed early;
- ``error:K`` yields K tokens, then the in-band ``StreamError`` (of ``kind=``);
- ``malformed:K`` yields K tokens, then the ``StreamError`` of malformed data;
- ``stall:K`` yields K tokens, then sleeps (``for=S``, an hour by default) and ends as
  a stream closed early.

With K = 0 each of these fails before the first delta, so it raises ``UpstreamError``
(retryable, as the HTTP provider's would be). Non-token deltas ride with the token after
them, as the server sends them in one write. An unknown model raises ``UpstreamError``
``NOT_FOUND`` (404, not retryable).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import AsyncGenerator
from dataclasses import replace

from ..errors import RequestError
from ..llm.model import Delta, ErrorKind, Request, StreamError, error_from_request_error
from ..mock import MODELS, Fault, parse_fault, script
from ._common import EARLY_CLOSE, refused, retryable_status
from .base import ProviderConfig, UpstreamError

__all__ = ["MockProvider"]


class MockProvider:
    """The fake LLM as a provider (see the module docstring)."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.ttft = float(config.options.get("ttft_ms", 0)) / 1000
        self.interval = float(config.options.get("token_ms", 0)) / 1000
        self._fault_counts: dict[str, int] = collections.Counter()
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"MockProvider(name={self.config.name!r})"

    def _fault(self, suffix: str) -> Fault | None:
        if not suffix:
            return None
        try:
            fault = parse_fault(suffix)
        except ValueError as exc:
            error = StreamError(ErrorKind.INVALID_REQUEST, f"mock fault: {exc}", 400)
            raise UpstreamError(error, retryable=False) from None
        if fault.times is not None:
            used = self._fault_counts[fault.spec]
            self._fault_counts[fault.spec] = used + 1
            if used >= fault.times:
                return None
        return fault

    async def stream(self, request: Request, model: str) -> AsyncGenerator[Delta, None]:
        """The deltas of one attempt (the contract is ``Provider``'s, in ``base.py``)."""
        name, _, suffix = model.partition("@")
        fault = self._fault(suffix)
        if name not in MODELS:
            message = f"model {name!r} does not exist; the mock serves {', '.join(MODELS)}"
            raise UpstreamError(StreamError(ErrorKind.NOT_FOUND, message, 404), retryable=False)
        if fault is not None and fault.kind == "status":
            error = refused(self.config.name, fault.status) or StreamError(
                fault.error_kind, f"mock fault {fault.spec!r}", fault.status
            )
            raise UpstreamError(
                error, retryable=retryable_status(fault.status), retry_after=fault.retry_after
            )
        try:
            answer = script(
                replace(request, model=name, stream=True),
                id=f"mock-{next(self._ids)}",
                created=int(time.time()),
            )
        except RequestError as exc:
            raise UpstreamError(error_from_request_error(exc), retryable=False) from None
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        held: list[Delta] = []
        sent = 0
        for delta, is_token in zip(answer.deltas, answer.tokens, strict=True):
            if not is_token:
                held.append(delta)
                continue
            if fault is not None and sent == fault.after:
                error = await _inject(fault)
                if sent == 0:
                    raise UpstreamError.reported(error)
                for held_delta in held:
                    yield held_delta
                yield error
                return
            delay = t0 + self.ttft + sent * self.interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif sent % 64 == 63:
                await asyncio.sleep(0)  # unpaced: let the loop's other work in now and then
            sent += 1
            for held_delta in held:
                yield held_delta
            held = []
            yield delta
        if sent == 0:
            delay = t0 + self.ttft - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        for held_delta in held:
            yield held_delta

    async def models(self) -> list[str]:
        """The fake LLM's models."""
        return list(MODELS)

    async def aclose(self) -> None:
        """Nothing to release: a generation stops when its iterator is closed."""


async def _inject(fault: Fault) -> StreamError:
    """The error a stream faulted by ``fault`` ends with (after the stall, for a stall)."""
    if fault.kind == "stall":
        await asyncio.sleep(fault.stall_seconds)
    if fault.kind == "error":
        return StreamError(fault.error_kind, f"mock fault {fault.spec!r}")
    if fault.kind == "malformed":
        return StreamError(ErrorKind.SERVER, f"mock fault {fault.spec!r}: malformed data", 502)
    return EARLY_CLOSE  # drop, and a stall that ends
