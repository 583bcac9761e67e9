"""The chat page and the browser client, served from the package (``tokenrelay/web``).

``web_routes()`` adds ``GET /`` (the chat page) and ``GET /static/{path}`` (the files of
``tokenrelay/web``: ``tokenrelay.js``, ``markdown.js``, ``chat.js``, ``chat.css``, ...) to
a gateway app. Files are read with ``importlib.resources``, so they are served from a
wheel or a zip as well as from a source tree. Only plain names of known types are
served: no directory traversal, no dotfiles, no Python sources.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

__all__ = ["CONTENT_TYPES", "web_routes"]

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

# The page loads only its own files and talks only to its own origin; model output could
# not run a script even if it reached the DOM unescaped (it does not: see markdown.js).
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


@lru_cache(maxsize=64)
def _read(path: str) -> tuple[bytes, str] | None:
    """The bytes and ETag of ``tokenrelay/web/<path>``, or None if it is not served."""
    parts = path.split("/")
    if not all(_NAME.fullmatch(p) for p in parts) or ".." in parts:
        return None
    suffix = "." + parts[-1].rpartition(".")[2] if "." in parts[-1] else ""
    if suffix not in CONTENT_TYPES:
        return None
    resource = resources.files("tokenrelay").joinpath("web", *parts)
    if not resource.is_file():
        return None
    data = resource.read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def _file_response(request: Request, path: str) -> Response:
    found = _read(path)
    if found is None:
        return Response("not found\n", 404, media_type="text/plain")
    data, etag = found
    headers = {
        "etag": etag,
        "cache-control": "no-cache",  # revalidate: an upgrade must not serve stale JS
        "x-content-type-options": "nosniff",
    }
    if path.endswith(".html"):
        headers["content-security-policy"] = _CSP
        headers["referrer-policy"] = "no-referrer"
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    suffix = "." + path.rpartition(".")[2]
    return Response(data, headers=headers, media_type=CONTENT_TYPES[suffix])


async def _index(request: Request) -> Response:
    return _file_response(request, "index.html")


async def _static(request: Request) -> Response:
    return _file_response(request, request.path_params["path"])


def web_routes() -> list[BaseRoute]:
    """Routes for the chat page (``GET /``) and its files (``GET /static/{path}``)."""
    return [
        Route("/", _index, methods=["GET", "HEAD"]),
        Route("/static/{path:path}", _static, methods=["GET", "HEAD"]),
    ]
