"""Reading a JSON request body and its fields, with errors that name the field.

``load_body`` turns the bytes into a JSON object (no deeper than ``MAX_DEPTH``).

Each reader takes the body (a JSON object), the key and the path of that object in the
request (for the error message), and raises ``RequestError`` with ``param`` set when the
value is missing or of the wrong type. JSON ``null`` counts as missing, as every provider
treats it.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..errors import RequestError

__all__ = [
    "MAX_DEPTH",
    "base64_data",
    "image_url",
    "load_body",
    "opt_bool",
    "opt_float",
    "opt_int",
    "opt_list",
    "opt_obj",
    "opt_str",
    "req_list",
    "req_obj",
    "req_str",
]

_MISSING = object()
_INT_LIMIT = 2**63


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _wrong(where: str, key: str, want: str, value: Any) -> RequestError:
    got = "null" if value is None else type(value).__name__
    if isinstance(value, bool):
        got = "boolean"
    return RequestError(f"{_path(where, key)!s} must be {want}, not {got}", param=_path(where, key))


def _missing(where: str, key: str) -> RequestError:
    return RequestError(f"missing required field {_path(where, key)}", param=_path(where, key))


def opt_str(body: Mapping[str, Any], key: str, where: str = "", default: str = "") -> str:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _wrong(where, key, "a string", value)
    return value


def req_str(body: Mapping[str, Any], key: str, where: str = "") -> str:
    if body.get(key) is None:
        raise _missing(where, key)
    return opt_str(body, key, where)


def opt_int(
    body: Mapping[str, Any], key: str, where: str = "", *, minimum: int | None = None
) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        # 1.0 is an integer in JSON's eyes; accept it, as the providers do.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _wrong(where, key, "an integer", value)
    if minimum is not None and value < minimum:
        raise RequestError(
            f"{_path(where, key)} must be at least {minimum}, not {value}",
            param=_path(where, key),
        )
    if not -_INT_LIMIT <= value < _INT_LIMIT:  # no upstream (nor JSON encoder) takes more
        raise RequestError(
            f"{_path(where, key)} is out of range (at most 2^63 - 1)", param=_path(where, key)
        )
    return value


def opt_float(body: Mapping[str, Any], key: str, where: str = "") -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong(where, key, "a number", value)
    return float(value)


def opt_bool(body: Mapping[str, Any], key: str, where: str = "") -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _wrong(where, key, "a boolean", value)
    return value


def opt_list(body: Mapping[str, Any], key: str, where: str = "") -> Sequence[Any]:
    value = body.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _wrong(where, key, "an array", value)
    return value


def req_list(body: Mapping[str, Any], key: str, where: str = "") -> Sequence[Any]:
    if body.get(key) is None:
        raise _missing(where, key)
    return opt_list(body, key, where)


def opt_obj(body: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _wrong(where, key, "an object", value)
    return value


def req_obj(body: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
    value = opt_obj(body, key, where)
    if value is None:
        raise _missing(where, key)
    return value


def obj_item(value: Any, where: str) -> Mapping[str, Any]:
    """An array item that must be an object."""
    if not isinstance(value, dict):
        got = "null" if value is None else type(value).__name__
        raise RequestError(f"{where} must be an object, not {got}", param=where)
    return value


_WHITESPACE = {ord(c): None for c in " \t\r\n"}


def base64_data(value: str, where: str) -> str:
    """``value`` if it is base64 (the standard alphabet, padded; line breaks allowed, as
    MIME writes them), else ``RequestError`` naming ``where``. Every provider decodes an
    image's or file's data so; anything else would go upstream to be refused there, in
    that provider's words, or be a 5xx."""
    compact = value.translate(_WHITESPACE) if not value.isalnum() else value
    try:
        if not compact:
            raise ValueError("empty")
        binascii.a2b_base64(compact, strict_mode=True)
    except (binascii.Error, ValueError):
        raise RequestError(
            f"{where} must be base64 data (standard alphabet, padded)", param=where
        ) from None
    return value


def image_url(value: str, where: str) -> str:
    """An image's URL as given; a ``data:`` URL's base64 payload must be base64
    (``base64_data``), as it is sent upstream as data."""
    if value[:5].lower() == "data:":
        head, sep, payload = value.partition(",")
        if sep and head.lower().endswith(";base64"):
            base64_data(payload, where)
    return value


def load_body(body: bytes | str | Mapping[str, Any]) -> Mapping[str, Any]:
    """A request body as a JSON object, or ``RequestError`` saying why it is not one."""
    if isinstance(body, Mapping):
        return body
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RequestError(f"request body must be a JSON object, not {type(value).__name__}")
    # A value nested N deep has N brackets open: a body with no more than MAX_DEPTH of
    # them in all cannot nest too deep (most bodies: counted in C, not walked).
    if isinstance(body, str):
        opened = body.count("{") + body.count("[")
    else:
        opened = body.count(b"{") + body.count(b"[")
    if opened > MAX_DEPTH:
        _check_depth(value)
    return value


MAX_DEPTH = 64
"""How deeply a request body may nest (tool schemas rarely pass 10; orjson writes 254)."""


def _check_depth(body: dict[str, Any]) -> None:
    """``RequestError`` naming the top-level field that nests deeper than ``MAX_DEPTH``."""
    for key, top in body.items():
        stack: list[tuple[Any, int]] = [(top, 2)]
        while stack:
            value, depth = stack.pop()
            children = value.values() if isinstance(value, dict) else value
            if not isinstance(value, dict | list) or not children:
                continue
            if depth > MAX_DEPTH:
                raise RequestError(f"{key} nests deeper than {MAX_DEPTH} levels", param=str(key))
            stack.extend((child, depth + 1) for child in children)
