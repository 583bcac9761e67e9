"""A token stream with Flask on any WSGI server: ``flask --app examples.flask_app run``
(from the repository root, with ``pip install -e '.[server]' flask``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from flask import Flask, Response, request

from tokenrelay.server import sse_stream
from tokenrelay.sse import Event

from .tokens import resume_after, tokens

app = Flask(__name__)
PAGE = (Path(__file__).parent / "index.html").read_text()
TOKEN_SECONDS = 0.05


@app.get("/")
def index() -> str:
    return PAGE


@app.get("/stream")
def stream() -> object:
    parts = tokens(request.args.get("prompt", ""))
    start = resume_after(request.headers.get("Last-Event-ID"))
    if start > len(parts):
        return Response(status=204)

    def events() -> Iterator[Event | dict[str, object]]:
        for i in range(start, len(parts)):
            time.sleep(TOKEN_SECONDS)  # blocking is fine: pings still flow meanwhile
            yield {"event": "token", "id": str(i), "data": {"text": parts[i]}}
        yield Event("[DONE]", event="done", id=str(len(parts)))

    return sse_stream(events(), retry=1000)  # a WSGI app, which Flask serves as is
