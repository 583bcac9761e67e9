"""Gemini error bodies: ``{"error": {"code", "message", "status"}}`` with a google.rpc
status word, read into ``StreamError`` and written from one."""

from __future__ import annotations

from typing import Any

from ..jsonio import loads
from ..model import ErrorKind, StreamError, error_from_status, kind_of_status

# google.rpc status words: the kind and HTTP code of each, and the word each kind gets.
KIND_OF_STATUS: dict[str, tuple[ErrorKind, int]] = {
    "INVALID_ARGUMENT": (ErrorKind.INVALID_REQUEST, 400),
    "FAILED_PRECONDITION": (ErrorKind.INVALID_REQUEST, 400),
    "OUT_OF_RANGE": (ErrorKind.INVALID_REQUEST, 400),
    "UNAUTHENTICATED": (ErrorKind.AUTHENTICATION, 401),
    "PERMISSION_DENIED": (ErrorKind.PERMISSION, 403),
    "NOT_FOUND": (ErrorKind.NOT_FOUND, 404),
    "RESOURCE_EXHAUSTED": (ErrorKind.RATE_LIMIT, 429),
    "INTERNAL": (ErrorKind.SERVER, 500),
    "UNKNOWN": (ErrorKind.SERVER, 500),
    "DATA_LOSS": (ErrorKind.SERVER, 500),
    "UNAVAILABLE": (ErrorKind.OVERLOADED, 503),
    "DEADLINE_EXCEEDED": (ErrorKind.TIMEOUT, 504),
}
STATUS_OF_KIND: dict[ErrorKind, str] = {
    ErrorKind.INVALID_REQUEST: "INVALID_ARGUMENT",
    ErrorKind.REQUEST_TOO_LARGE: "INVALID_ARGUMENT",  # Google answers 400 too
    ErrorKind.AUTHENTICATION: "UNAUTHENTICATED",
    ErrorKind.PERMISSION: "PERMISSION_DENIED",
    ErrorKind.NOT_FOUND: "NOT_FOUND",
    ErrorKind.RATE_LIMIT: "RESOURCE_EXHAUSTED",
    ErrorKind.SERVER: "INTERNAL",
    ErrorKind.OVERLOADED: "UNAVAILABLE",
    ErrorKind.TIMEOUT: "DEADLINE_EXCEEDED",
}


def error_of(error: Any, status: int | None) -> StreamError:
    message, word, code = "", "", status
    if isinstance(error, dict):
        if isinstance(error.get("message"), str):
            message = error["message"]
        if isinstance(error.get("status"), str):
            word = error["status"]
        if type(error.get("code")) is int and status is None:
            code = error["code"]
    elif isinstance(error, str):
        message = error
    if word in KIND_OF_STATUS:
        kind = KIND_OF_STATUS[word][0]
    else:
        kind = kind_of_status(code) if code else ErrorKind.SERVER
    return StreamError(kind, message or word or f"upstream error {code}", code, word)


def malformed(exc: Exception) -> StreamError:
    # The exception's kind, never its text: that may quote the upstream's bytes.
    return StreamError(ErrorKind.SERVER, f"the upstream sent malformed data ({type(exc).__name__})")


def error_body(error: StreamError) -> tuple[int, dict[str, Any]]:
    word = STATUS_OF_KIND[error.kind]
    if KIND_OF_STATUS.get(error.raw_type, (None,))[0] is error.kind:
        word = error.raw_type  # the upstream's own word, when it means the same
    code = KIND_OF_STATUS[word][1]
    return code, {"error": {"code": code, "message": error.message, "status": word}}


def parse_error(status: int, body: bytes) -> StreamError:
    try:
        value = loads(body)
    except ValueError:
        return error_from_status(status, body.decode("utf-8", "replace").strip()[:1000])
    if isinstance(value, list) and value:
        value = value[0]  # streamGenerateContent without alt=sse wraps it in an array
    if isinstance(value, dict) and "error" in value:
        return error_of(value["error"], status)
    return error_from_status(status, "")
