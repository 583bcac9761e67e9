"""Faults the fake LLM injects, chosen per request.

A fault is named in the ``x-mock-fault`` request header or after an ``@`` in the model
name (``"echo@drop:3"``), for clients that cannot set headers. Grammar::

    FAULT[;param=value]...

    429 | 500 | 503 | 529 | any 4xx/5xx   answer that status before the stream, with an
                                         error body in the request's dialect
    drop:K      send K tokens, then cut the connection (no end of stream)
    stall:K     send K tokens, then send nothing more (the connection stays open)
    error:K     send K tokens, then the dialect's in-band error event
    malformed:K send K tokens, then an event whose data is not JSON

    retry-after=S   seconds for the Retry-After header (429/503/529; 429 defaults to 1)
    times=N         fault only the first N requests that carry this same fault text;
                    later ones succeed (for retry tests). The count is per server.
    kind=KIND       the error kind for ``error:K`` and status faults (an ErrorKind value:
                    overloaded, rate_limit, server...)
    for=S           how long a stall lasts (default 3600 s)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..llm.model import ErrorKind, kind_of_status

__all__ = ["Fault", "parse_fault"]

FaultKind = Literal["status", "drop", "stall", "error", "malformed"]
_AFTER_KINDS: tuple[FaultKind, ...] = ("drop", "stall", "error", "malformed")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    spec: str
    status: int = 0
    after: int = 0
    retry_after: float | None = None
    times: int | None = None
    error_kind: ErrorKind = ErrorKind.SERVER
    stall_seconds: float = 3600.0


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"fault parameter {name} must be a number, not {text!r}") from None
    if value < 0:
        raise ValueError(f"fault parameter {name} must not be negative")
    return value


def parse_fault(spec: str) -> Fault:
    """The ``Fault`` that ``spec`` names (``ValueError`` saying what is wrong with it)."""
    head, *params = [p.strip() for p in spec.strip().split(";")]
    name, _, arg = head.partition(":")
    options: dict[str, str] = {}
    for param in params:
        key, eq, value = param.partition("=")
        if not eq or key not in {"retry-after", "times", "kind", "for"}:
            raise ValueError(f"unknown fault parameter {param!r} in {spec!r}")
        options[key] = value
    kind_text = options.get("kind")
    try:
        error_kind = ErrorKind(kind_text) if kind_text else None
    except ValueError:
        known = ", ".join(k.value for k in ErrorKind)
        raise ValueError(f"unknown error kind {kind_text!r}; one of: {known}") from None
    times = int(_number("times", options["times"])) if "times" in options else None
    retry_after = (
        _number("retry-after", options["retry-after"]) if "retry-after" in options else None
    )
    if name.isdigit():
        status = int(name)
        if not 400 <= status <= 599 or arg:
            raise ValueError(f"a status fault is a 4xx or 5xx code alone, not {head!r}")
        if retry_after is None and status == 429:
            retry_after = 1.0
        return Fault(
            "status",
            spec,
            status=status,
            retry_after=retry_after,
            times=times,
            error_kind=error_kind or kind_of_status(status),
        )
    if name not in _AFTER_KINDS:
        raise ValueError(
            f"unknown fault {name!r}; one of: a 4xx/5xx status, {', '.join(_AFTER_KINDS)}"
        )
    after = int(_number("K", arg)) if arg else 0
    return Fault(
        name,  # checked against _AFTER_KINDS above
        spec,
        after=after,
        times=times,
        error_kind=error_kind or ErrorKind.SERVER,
        stall_seconds=_number("for", options["for"]) if "for" in options else 3600.0,
    )
