"""What the modules of the Anthropic codec share: the dialect's name, its stop reasons and
error types in both directions, usage as Anthropic writes it, and tool input as an object.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..jsonio import loads
from ..lenient import as_obj, as_str
from ..model import ErrorKind, Finish, FinishReason, StreamError, Usage, kind_of_status

NAME = "anthropic"

_F = FinishReason
_REASON_OF_STOP = {
    "end_turn": _F.STOP,
    "stop_sequence": _F.STOP,
    "max_tokens": _F.LENGTH,
    "model_context_window_exceeded": _F.LENGTH,
    "tool_use": _F.TOOL_CALLS,
    "refusal": _F.CONTENT_FILTER,
    "pause_turn": _F.PAUSE,
}
_STOP_OF_REASON = {
    _F.STOP: "end_turn",
    _F.LENGTH: "max_tokens",
    _F.TOOL_CALLS: "tool_use",
    _F.CONTENT_FILTER: "refusal",
    _F.PAUSE: "pause_turn",
    _F.ERROR: "end_turn",
    _F.OTHER: "end_turn",
}
_K = ErrorKind
_ERRORS = (
    (_K.INVALID_REQUEST, "invalid_request_error", 400),
    (_K.AUTHENTICATION, "authentication_error", 401),
    (_K.PERMISSION, "permission_error", 403),
    (_K.NOT_FOUND, "not_found_error", 404),
    (_K.REQUEST_TOO_LARGE, "request_too_large", 413),
    (_K.RATE_LIMIT, "rate_limit_error", 429),
    (_K.SERVER, "api_error", 500),
    (_K.TIMEOUT, "timeout_error", 504),
    (_K.OVERLOADED, "overloaded_error", 529),
)
TYPE_OF_KIND = {kind: type_ for kind, type_, _ in _ERRORS}
STATUS_OF_KIND = {kind: status for kind, _, status in _ERRORS}
_KIND_OF_TYPE = {type_: kind for kind, type_, _ in _ERRORS}


def stop_of(finish: Finish | None) -> tuple[str, str | None]:
    """The ``stop_reason`` and ``stop_sequence`` for a neutral finish."""
    if finish is None:
        return "end_turn", None
    if _REASON_OF_STOP.get(finish.raw) == finish.reason:
        word = finish.raw  # our own word, sent back unchanged
    elif finish.reason == _F.STOP and finish.stop_sequence is not None:
        word = "stop_sequence"
    else:
        word = _STOP_OF_REASON[finish.reason]
    return word, finish.stop_sequence if word == "stop_sequence" else None


def finish_of(stop_reason: Any, stop_sequence: Any) -> Finish:
    if not isinstance(stop_reason, str):
        return Finish(_F.STOP)
    sequence = stop_sequence if isinstance(stop_sequence, str) else None
    return Finish(_REASON_OF_STOP.get(stop_reason, _F.OTHER), stop_reason, sequence)


def error_of(error: Any, status: int | None = None) -> StreamError:
    """A ``StreamError`` for Anthropic's ``error`` object, in a stream (no status) or in
    an error body. The type decides the kind; the status only when the type is unknown."""
    fields = as_obj(error)
    type_, message = as_str(fields.get("type")), as_str(fields.get("message"))
    kind = _KIND_OF_TYPE.get(type_) or (kind_of_status(status) if status else _K.SERVER)
    fallback = f"upstream HTTP {status}" if status else "upstream sent an error event"
    return StreamError(kind, message or type_ or fallback, status, type_)


def usage_json(usage: Usage) -> dict[str, Any]:
    cached = min(usage.cached_tokens, usage.input_tokens)
    out: dict[str, Any] = {
        "input_tokens": usage.input_tokens - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.output_tokens,
    }
    if usage.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out


def object_of(arguments: str) -> Any:
    """Tool arguments as the JSON object Anthropic's ``input`` must be ({} if they are not
    one: a broken upstream's arguments cannot be sent as an object)."""
    try:
        value = loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
