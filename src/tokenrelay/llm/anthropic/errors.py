"""Anthropic's error bodies: ``{"type": "error", "error": {"type", "message"}}``."""

from __future__ import annotations

from typing import Any

import orjson

from ..jsonio import loads
from ..model import StreamError, error_from_status
from ._common import STATUS_OF_KIND, TYPE_OF_KIND, error_of

__all__ = ["error_body", "parse_error"]


def error_body(error: StreamError) -> tuple[int, dict[str, Any]]:
    """The error as Anthropic sends it. The status is the error's own when it has one (a
    gateway passes the upstream's on), else Anthropic's for the kind."""
    status = error.status
    if status is None or not 400 <= status <= 599:
        status = STATUS_OF_KIND[error.kind]
    error_json = {"type": TYPE_OF_KIND[error.kind], "message": error.message}
    return status, {"type": "error", "error": error_json}


def parse_error(status: int, body: bytes) -> StreamError:
    try:
        obj = loads(body)
    except orjson.JSONDecodeError:
        obj = None
    error = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(error, dict):
        return error_of(error, status)
    text = error if isinstance(error, str) else body.decode("utf-8", "replace").strip()
    return error_from_status(status, text)
