"""Server-side SSE: ``EventSourceResponse`` for ASGI apps (Starlette, FastAPI, any ASGI
server on asyncio), ``sse_stream`` for WSGI apps (Flask, Django under WSGI) and
``tokenrelay.server.django.sse_response`` for Django (imported from there, as it needs
Django). Needs the ``server`` extra.
"""

from .asgi import EventSourceResponse
from .body import event_body
from .frames import Item, frame
from .shutdown import shutdown_streams
from .wsgi import SSEStream, sse_stream

__all__ = [
    "EventSourceResponse",
    "Item",
    "SSEStream",
    "event_body",
    "frame",
    "shutdown_streams",
    "sse_stream",
]
