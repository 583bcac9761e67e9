"""Who may call the gateway from where: the checks every HTTP request passes before any
endpoint sees it, and real CORS for the origins an operator allows.

- **Without client keys** (the default: a gateway on a developer's machine), any web page
  the developer visits could otherwise spend the operator's upstream keys: a ``text/plain``
  POST needs no CORS preflight, and DNS rebinding makes a foreign name resolve to
  127.0.0.1. So, as local model servers do, only loopback ``Host``\\ s are served
  (``localhost``, ``127.0.0.1``, ``[::1]``, or the names in ``allowed_hosts``; ``"*"``
  for any), and a request with an ``Origin`` must come from the gateway's own origin or
  one in ``cors_origins``. With keys, a request must carry one anyway, so neither check
  applies.
- **The generation endpoints take ``application/json`` only** (415 otherwise): what a
  form or a ``text/plain`` fetch can send without a preflight is refused.
- **CORS**: a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from an
  origin in ``cors_origins`` is answered 204 with what it may send; responses to such
  origins carry ``Access-Control-Allow-Origin`` and expose ``x-stream-id``. Other origins
  get no CORS headers (the browser then keeps the answer from the page).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from starlette.types import Message, Scope, Send

__all__ = [
    "HEADERS", "LOOPBACK_HOSTS", "cors_send", "header", "host_allowed", "origin_allowed",
    "preflight",
]  # fmt: skip

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_ALLOW_HEADERS = (
    b"authorization, content-type, x-api-key, anthropic-version, anthropic-beta, "
    b"last-event-id, x-stainless-arch, x-stainless-lang, x-stainless-os, "
    b"x-stainless-package-version, x-stainless-retry-count, x-stainless-runtime, "
    b"x-stainless-runtime-version, x-stainless-timeout, openai-organization, openai-project"
)


HEADERS = "tokenrelay.headers"
"""Scope key of the request's headers as a dict (``header``); the app drops it once a
generation's handler has answered, so an open stream does not keep it."""


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of header ``name`` (lowercase), from a dict made once per request
    and kept in the scope: a request is asked for several headers, and SDKs send twenty."""
    headers: dict[bytes, bytes] | None = scope.get(HEADERS)
    if headers is None:
        headers = scope[HEADERS] = dict(reversed(scope["headers"]))  # the first one wins
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


def _hostname(host: str) -> str:
    """``host`` of a ``Host`` header (``h``, ``h:port``, ``[v6]``, ``[v6]:port``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_allowed(scope: Scope, allowed: Collection[str]) -> bool:
    """Whether the request's ``Host`` is loopback, or one of ``allowed`` (``"*"``: any)."""
    if "*" in allowed:
        return True
    host = header(scope, b"host")
    if host is None:
        return False
    name = _hostname(host)
    return name in LOOPBACK_HOSTS or name in allowed


def origin_allowed(origin: str, scope: Scope, allowed: Iterable[str]) -> bool:
    """Whether a request with this ``Origin`` may be served: the gateway's own origin (the
    chat page), or one the operator allows (``"*"``: any)."""
    allowed = set(allowed)
    if "*" in allowed or origin in allowed:
        return True
    host = header(scope, b"host")
    scheme = scope.get("scheme", "http")
    return host is not None and origin.lower() == f"{scheme}://{host}".lower()


def preflight(origin: str) -> list[tuple[bytes, bytes]]:
    """The headers of a 204 answer to an allowed origin's preflight."""
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
        (b"access-control-allow-headers", _ALLOW_HEADERS),
        (b"access-control-max-age", b"600"),
        (b"vary", b"origin"),
    ]


def cors_send(send: Send, origin: str) -> Send:
    """``send``, adding the CORS headers for an allowed ``origin`` to the response start."""
    extra = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-expose-headers", b"x-stream-id, retry-after"),
        (b"vary", b"origin"),
    ]

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped
