"""OpenAI Chat error bodies, read (from an upstream, in or out of a stream) and written.

- ``overloaded`` is answered with 503, not Anthropic's 529, which OpenAI clients and HTTP
  tooling do not know; the upstream's own error type word is passed on.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..jsonio import dumps, loads
from ..model import ErrorKind, StreamError, error_from_status, kind_of_status

__all__ = ["error_body", "parse_error"]

K = ErrorKind
# Error type and code per kind (OpenAI's own words where it has them).
_ERROR_TYPE: dict[ErrorKind, tuple[str, str | None]] = {
    K.INVALID_REQUEST: ("invalid_request_error", None),
    K.AUTHENTICATION: ("authentication_error", "invalid_api_key"),
    K.PERMISSION: ("permission_error", None),
    K.NOT_FOUND: ("not_found_error", None),
    K.REQUEST_TOO_LARGE: ("invalid_request_error", "request_too_large"),
    K.RATE_LIMIT: ("rate_limit_error", "rate_limit_exceeded"),
    K.SERVER: ("server_error", None),
    K.TIMEOUT: ("timeout_error", None),
    K.OVERLOADED: ("overloaded_error", None),
}
# The kind an error code or type word means when no HTTP status says it (codes are the
# more specific: OpenAI's bad key is type invalid_request_error, code invalid_api_key).
_KIND_OF_WORD: dict[str, ErrorKind] = {
    **{word: kind for kind, (word, _) in _ERROR_TYPE.items()},
    **{code: kind for kind, (_, code) in _ERROR_TYPE.items() if code},
    "invalid_request_error": K.INVALID_REQUEST,
    "requests": K.RATE_LIMIT,
    "tokens": K.RATE_LIMIT,
    "insufficient_quota": K.RATE_LIMIT,
    "api_error": K.SERVER,
    "internal_server_error": K.SERVER,
    "service_unavailable": K.OVERLOADED,
    "model_not_found": K.NOT_FOUND,
}


def error_of(value: Any, status: int | None = None) -> StreamError:
    """A ``StreamError`` from an error object (``{"error": {...}}``, its inner object, or
    a bare string); ``status`` is the HTTP status when there was one."""
    if isinstance(value, dict) and value.get("error"):
        value = value["error"]
    kind_word: Any = None
    code: Any = None
    param: Any = None
    if isinstance(value, dict):
        message = value.get("message") or value.get("detail") or value.get("msg") or ""
        kind_word, code, param = value.get("type"), value.get("code"), value.get("param")
    else:
        message = value
    message = message if isinstance(message, str) else dumps(message).decode()
    if status is None and isinstance(code, int) and 400 <= code < 600:
        status = code  # llama.cpp and others put the HTTP status in `code`
    if status is not None:
        kind = K.REQUEST_TOO_LARGE if status == 413 else kind_of_status(status)
    else:
        kind = _KIND_OF_WORD.get(str(code)) or _KIND_OF_WORD.get(str(kind_word)) or K.SERVER
    raw = kind_word if isinstance(kind_word, str) else code if isinstance(code, str) else ""
    param = param if isinstance(param, str) else None
    return StreamError(kind, message or "upstream error", status, raw, param)


def malformed(data: str | bytes) -> StreamError:
    # Never the data itself: an upstream's bytes may hold anything (its key, a prompt).
    return StreamError(K.SERVER, "upstream sent malformed data (not a JSON object)")


def error_json(error: StreamError) -> dict[str, Any]:
    word, code = _ERROR_TYPE[error.kind]
    return {
        "error": {
            "message": error.message,
            "type": error.raw_type or word,
            "param": error.param,
            "code": code,
        }
    }


def error_body(error: StreamError) -> tuple[int, dict[str, Any]]:
    """``StreamError`` → the HTTP status and OpenAI error body to answer with."""
    status = error.http_status
    return (503 if status == 529 else status), error_json(error)


def parse_error(status: int, body: bytes) -> StreamError:
    """An upstream's error status and body (OpenAI-shaped or not) → ``StreamError``."""
    try:
        value = loads(body)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict) and any(value.get(k) for k in ("error", "message", "detail")):
        return error_of(value, status)
    return error_from_status(status, body.decode("utf-8", "replace").strip()[:1000])
