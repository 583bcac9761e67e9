"""A token stream with Django, in one file, served under ASGI or WSGI alike:

    uvicorn examples.django_app.app:asgi            # ASGI
    python -m examples.django_app.app 8000          # WSGI (wsgiref, for a quick look)

(from the repository root, with ``pip install -e '.[server]' django``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="example-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
    )
    django.setup()

from django.core.handlers.asgi import ASGIRequest
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse
from django.urls import path

from tokenrelay.server.django import sse_response
from tokenrelay.sse import Event

from ..tokens import resume_after, tokens

PAGE = (Path(__file__).parent.parent / "index.html").read_text()
TOKEN_SECONDS = 0.05


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE)


def stream(request: HttpRequest) -> HttpResponse:
    parts = tokens(request.GET.get("prompt", ""))
    start = resume_after(request.headers.get("Last-Event-ID"))
    if start > len(parts):
        return HttpResponse(status=204)

    def token(i: int) -> dict[str, object]:
        return {"event": "token", "id": str(i), "data": {"text": parts[i]}}

    done = Event("[DONE]", event="done", id=str(len(parts)))

    async def async_events() -> AsyncIterator[Event | dict[str, object]]:
        for i in range(start, len(parts)):
            await asyncio.sleep(TOKEN_SECONDS)
            yield token(i)
        yield done

    def sync_events() -> Iterator[Event | dict[str, object]]:
        for i in range(start, len(parts)):
            time.sleep(TOKEN_SECONDS)
            yield token(i)
        yield done

    events = async_events() if isinstance(request, ASGIRequest) else sync_events()
    return sse_response(request, events, retry=1000)


urlpatterns = [path("", index), path("stream", stream)]

from django.core.asgi import get_asgi_application  # noqa: E402

asgi = get_asgi_application()
wsgi = WSGIHandler()

if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    print(f"http://127.0.0.1:{port}/")
    make_server("127.0.0.1", port, wsgi).serve_forever()
