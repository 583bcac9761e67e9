"""The examples, served by real servers and read by tokenrelay's own client:
FastAPI under uvicorn, Flask on a WSGI server, Django under ASGI (uvicorn) and WSGI."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from examples.tokens import tokens
from werkzeug.serving import make_server

from tokenrelay.client import connect
from tokenrelay.sse import ReconnectPolicy

from .asgi_servers import free_port, run_server


@contextlib.contextmanager
def run_wsgi(app: Any) -> Iterator[str]:
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(10)


@contextlib.contextmanager
def serve_example(name: str) -> Iterator[str]:
    if name == "fastapi":
        from examples.fastapi_app import app

        with run_server(app) as url:
            yield url
    elif name == "flask":
        from examples.flask_app import app as flask_app

        with run_wsgi(flask_app) as url:
            yield url
    elif name == "django-asgi":
        from examples.django_app.app import asgi

        with run_server(asgi) as url:
            yield url
    else:
        from examples.django_app.app import wsgi

        with run_wsgi(wsgi) as url:
            yield url


EXAMPLES = ["fastapi", "flask", "django-asgi", "django-wsgi"]


@pytest.fixture(params=EXAMPLES)
def example(request: pytest.FixtureRequest) -> Iterator[str]:
    with serve_example(request.param) as url:
        yield url


def read_tokens(url: str, **options: Any) -> tuple[str, list[str]]:
    text, ids = "", []
    policy = ReconnectPolicy(delay=0.01)
    with connect(url + "/stream", params={"prompt": "hi"}, reconnect=policy, **options) as events:
        for event in events:
            ids.append(event.id)
            if event.event == "token":
                text += event.json()["text"]
            else:
                assert (event.event, event.data) == ("done", "[DONE]")
    return text, ids


def test_example_streams_the_whole_reply_then_stops_with_204(example: str) -> None:
    text, ids = read_tokens(example)
    expected = tokens("hi")
    assert text == "".join(expected)
    assert ids == [str(i) for i in range(len(expected) + 1)]


def test_example_resumes_after_last_event_id(example: str) -> None:
    text, ids = read_tokens(example, last_event_id="30")
    assert text == "".join(tokens("hi")[31:])
    assert ids[0] == "31"


def test_example_serves_the_eventsource_page(example: str) -> None:
    page = httpx.get(example + "/", timeout=10)
    assert page.status_code == 200
    assert "new EventSource(" in page.text
