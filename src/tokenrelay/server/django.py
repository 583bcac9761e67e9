"""SSE responses for Django views, under ASGI or WSGI (Django >= 4.2).

    def tokens(request):
        return sse_response(request, generate_tokens())

Under ASGI the body is an async iterator (a sync source runs in a thread): Django would
otherwise read a sync iterator to its end before sending anything. Under WSGI it is a
sync iterator whose source runs in a thread, so pings flow while the source blocks.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

from .body import event_body
from .frames import HEADERS, Item
from .wsgi import SSEStream

__all__ = ["sse_response"]


def sse_response(
    request: HttpRequest,
    source: AsyncIterable[Item] | Iterable[Item],
    *,
    ping: float | None = 15.0,
    retry: int | None = None,
    buffer: int = 32,
    status: int = 200,
) -> StreamingHttpResponse:
    """A ``StreamingHttpResponse`` of ``source`` as SSE, right for how Django is served."""
    if isinstance(request, ASGIRequest):
        body: object = event_body(source, ping=ping, retry=retry, buffer=buffer)
    elif isinstance(source, AsyncIterable):
        raise TypeError("under WSGI the source must be a sync iterable")
    else:
        body = SSEStream(source, ping=ping, retry=retry, buffer=buffer)
    response = StreamingHttpResponse(
        body, status=status, content_type="text/event-stream; charset=utf-8"
    )
    for name, value in HEADERS.items():
        response[name] = value
    return response
