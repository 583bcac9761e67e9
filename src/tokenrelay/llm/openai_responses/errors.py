"""OpenAI Responses error words and error bodies, read and written.

Bodies are ``{"error": {message, type, param, code}}`` like Chat Completions, with 529
sent as 503 (OpenAI's "overloaded"; the SDK knows no 529). A failed response carries an
error ``code`` from a closed list (``FAILED_CODE``); error words of this dialect that an
upstream sent are passed on when they mean the same kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..jsonio import loads
from ..model import ErrorKind, StreamError, error_from_status, kind_of_status

__all__ = ["error_body", "parse_error"]

# Error words (types and codes) of this dialect, read both ways.
_KIND_OF_WORD = {
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "invalid_prompt": ErrorKind.INVALID_REQUEST,
    "context_length_exceeded": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION,
    "invalid_api_key": ErrorKind.AUTHENTICATION,
    "permission_error": ErrorKind.PERMISSION,
    "not_found_error": ErrorKind.NOT_FOUND,
    "model_not_found": ErrorKind.NOT_FOUND,
    "request_too_large": ErrorKind.REQUEST_TOO_LARGE,
    "rate_limit_error": ErrorKind.RATE_LIMIT,
    "rate_limit_exceeded": ErrorKind.RATE_LIMIT,
    "insufficient_quota": ErrorKind.RATE_LIMIT,
    "server_error": ErrorKind.SERVER,
    "timeout": ErrorKind.TIMEOUT,
    "overloaded": ErrorKind.OVERLOADED,
}
# kind -> (error type, error code) of an HTTP error body.
_ERROR_WORDS: dict[ErrorKind, tuple[str, str | None]] = {
    ErrorKind.INVALID_REQUEST: ("invalid_request_error", None),
    ErrorKind.AUTHENTICATION: ("authentication_error", "invalid_api_key"),
    ErrorKind.PERMISSION: ("permission_error", None),
    ErrorKind.NOT_FOUND: ("not_found_error", None),
    ErrorKind.REQUEST_TOO_LARGE: ("invalid_request_error", "request_too_large"),
    ErrorKind.RATE_LIMIT: ("rate_limit_error", "rate_limit_exceeded"),
    ErrorKind.SERVER: ("server_error", "server_error"),
    ErrorKind.TIMEOUT: ("server_error", "timeout"),
    ErrorKind.OVERLOADED: ("server_error", "overloaded"),
}
# kind -> the code of a failed response (``ResponseError.code`` is a closed list).
FAILED_CODE = {
    ErrorKind.RATE_LIMIT: "rate_limit_exceeded",
    ErrorKind.INVALID_REQUEST: "invalid_prompt",
    ErrorKind.REQUEST_TOO_LARGE: "invalid_prompt",
}


def _kind_of_words(*words: Any) -> ErrorKind:
    for word in words:
        kind = _KIND_OF_WORD.get(word) if isinstance(word, str) else None
        if kind is not None:
            return kind
    return ErrorKind.SERVER


def own_word(raw: str, kind: ErrorKind, default: str) -> str:
    """``raw`` if it is a word of this dialect meaning ``kind``, else ``default``."""
    return raw if _KIND_OF_WORD.get(raw) is kind else default


def error_from_object(error: Mapping[str, Any], status: int | None = None) -> StreamError:
    """A ``StreamError`` from an error object (``{code, message, type?}``)."""
    code, type_ = error.get("code"), error.get("type")
    kind = kind_of_status(status) if status and status >= 400 else _kind_of_words(code, type_)
    message = error.get("message")
    raw = code if isinstance(code, str) else type_ if isinstance(type_, str) else ""
    return StreamError(kind, message if isinstance(message, str) else "upstream error", status, raw)


def malformed(what: str) -> StreamError:
    return StreamError(ErrorKind.SERVER, f"the upstream sent malformed data: {what}")


def error_body(error: StreamError) -> tuple[int, dict[str, Any]]:
    status = error.http_status
    status = 503 if status == 529 else status  # OpenAI's "overloaded"
    type_, code = _ERROR_WORDS[error.kind]
    type_ = own_word(error.raw_type, error.kind, type_)
    # StreamError.param is newer than this codec: send it where the model has it
    param = getattr(error, "param", None)
    return status, {
        "error": {"message": error.message, "type": type_, "param": param, "code": code}
    }


def parse_error(status: int, body: bytes) -> StreamError:
    try:
        value = loads(body)
    except ValueError:
        value = None
    error = value.get("error") if isinstance(value, dict) else None
    if isinstance(error, dict):
        return error_from_object(error, status)
    if isinstance(error, str):  # some compatible servers send the message alone
        return error_from_status(status, error)
    text = body.decode("utf-8", "replace").strip()[:500]
    return error_from_status(status, text)
