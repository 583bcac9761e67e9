"""Error bodies: short, since ``useChat`` shows a failed response's body text."""

from __future__ import annotations

from typing import Any

from ..jsonio import loads
from ..model import (
    STATUS_OF_KIND,
    ErrorKind,
    StreamError,
    error_from_status,
    kind_of_status,
)

__all__ = ["error_body", "parse_error"]

_STATUS = {**STATUS_OF_KIND, ErrorKind.OVERLOADED: 503}  # 529 is Anthropic's alone


def error_body(error: StreamError) -> tuple[int, dict[str, Any]]:
    # useChat shows the body text of a failed response as the error: keep it short.
    status = error.status if error.status in range(400, 600) and error.status != 529 else None
    return status or _STATUS[error.kind], {"type": "error", "errorText": error.message}


def parse_error(status: int, body: bytes) -> StreamError:
    try:
        value = loads(body)
    except ValueError:
        return error_from_status(status, body.decode("utf-8", "replace").strip()[:1000])
    message = ""
    if isinstance(value, dict):
        error = value.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        for candidate in (value.get("errorText"), error, value.get("message")):
            if isinstance(candidate, str) and candidate:
                message = candidate
                break
    return StreamError(kind_of_status(status), message or f"upstream HTTP {status}", status)
