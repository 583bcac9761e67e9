"""Ollama's error bodies: ``{"error": "<message>"}``."""

from __future__ import annotations

from typing import Any

from ..jsonio import loads
from ..model import STATUS_OF_KIND, ErrorKind, StreamError, error_from_status, kind_of_status

__all__ = ["error_body", "parse_error"]

_STATUS = {**STATUS_OF_KIND, ErrorKind.OVERLOADED: 503}  # 529 is Anthropic's alone


def error_body(error: StreamError) -> tuple[int, dict[str, Any]]:
    return _STATUS[error.kind], {"error": error.message}


def parse_error(status: int, body: bytes) -> StreamError:
    try:
        value = loads(body)
    except ValueError:
        return error_from_status(status, body.decode("utf-8", "replace").strip()[:1000])
    error = value.get("error") if isinstance(value, dict) else None
    if isinstance(error, str):
        return StreamError(kind_of_status(status), error or f"upstream HTTP {status}", status)
    return error_from_status(status, "")
