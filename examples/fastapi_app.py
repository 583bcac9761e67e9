"""A token stream with FastAPI: ``uvicorn examples.fastapi_app:app`` and open
http://127.0.0.1:8000/ (from the repository root, with ``pip install -e '.[server]' fastapi``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Header, Response
from fastapi.responses import HTMLResponse

from tokenrelay.server import EventSourceResponse
from tokenrelay.sse import Event

from .tokens import resume_after, tokens

app = FastAPI()
PAGE = (Path(__file__).parent / "index.html").read_text()
TOKEN_SECONDS = 0.05  # the pace of a small model


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    return PAGE


@app.get("/stream", response_model=None)
def stream(
    prompt: str = "", last_event_id: str | None = Header(default=None)
) -> EventSourceResponse | Response:
    parts = tokens(prompt)
    start = resume_after(last_event_id)
    if start > len(parts):
        return Response(status_code=204)  # complete: tell EventSource to stop

    async def events() -> AsyncIterator[Event | dict[str, object]]:
        for i in range(start, len(parts)):
            await asyncio.sleep(TOKEN_SECONDS)
            yield {"event": "token", "id": str(i), "data": {"text": parts[i]}}
        yield Event("[DONE]", event="done", id=str(len(parts)))

    return EventSourceResponse(events(), retry=1000)


@app.get("/ticks")
def ticks() -> EventSourceResponse:
    """An endless stream (a clock): it ends only when the client leaves or the server
    shuts down, which then sends a last ``retry:`` so clients come back after a restart."""

    async def clock() -> AsyncIterator[str]:
        while True:
            yield f"{time.time():.3f}"
            await asyncio.sleep(1)

    return EventSourceResponse(clock(), shutdown_retry=2000)
