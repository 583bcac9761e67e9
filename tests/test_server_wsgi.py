"""sse_stream under a real WSGI server (werkzeug's, threaded), and the frame encoding."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tokenrelay.server import frame, sse_stream
from tokenrelay.sse import Decoder, Event

from .test_examples import run_wsgi
from .test_server_asgi import read_until


def wsgi_app(make_source: Any, **options: Any) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return sse_stream(make_source(), **options)(environ, start_response)

    return app


def test_wsgi_stream_headers_and_events() -> None:
    def source() -> Iterator[Any]:
        yield "one"
        yield Event("two", event="delta", id="2")

    with run_wsgi(wsgi_app(source, retry=700)) as url:
        response = httpx.get(url, timeout=10)
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    events = Decoder().feed(response.content)
    assert events == [Event("one", retry=700), Event("two", event="delta", id="2")]


def test_wsgi_pings_flow_while_the_producer_blocks() -> None:
    def source() -> Iterator[str]:
        yield "a"
        time.sleep(0.8)
        yield "b"

    with run_wsgi(wsgi_app(source, ping=0.2)) as url:
        body = httpx.get(url, timeout=10).content
    assert body.index(b"data: a") < body.index(b": ping") < body.index(b"data: b")
    assert body.count(b": ping") >= 2


def test_wsgi_producer_stops_after_the_client_leaves() -> None:
    stopped: list[float] = []

    def source() -> Iterator[str]:
        try:
            while True:
                yield "tick"
                time.sleep(0.05)
        finally:
            stopped.append(time.monotonic())

    with run_wsgi(wsgi_app(source, ping=0.2)) as url:
        host, port = url.removeprefix("http://").split(":")
        sock = socket.create_connection((host, int(port)))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_until(sock, b"data: tick")
        closed = time.monotonic()
        sock.close()
        while not stopped and time.monotonic() - closed < 5:
            time.sleep(0.01)
    assert stopped, "the producer ran on after the client left"
    # WSGI learns of the disconnect when a write fails: within a few events here.
    assert stopped[0] - closed < 2


def test_wsgi_producer_error_reaches_the_server() -> None:
    def source() -> Iterator[str]:
        yield "ok"
        raise RuntimeError("producer failed")

    stream = sse_stream(source(), ping=None)
    chunks = iter(stream)
    assert next(chunks) == b"data: ok\n\n"
    with pytest.raises(RuntimeError, match="producer failed"):
        next(chunks)


def test_stream_is_iterable_once_and_not_an_iterator() -> None:
    stream = sse_stream(iter(["x"]))
    assert not hasattr(stream, "__next__")  # Flask would take it for a plain body
    assert list(stream) == [b"data: x\n\n"]
    with pytest.raises(RuntimeError):
        list(stream)


@pytest.mark.parametrize(
    ("item", "wire"),
    [
        ("text", b"data: text\n\n"),
        (b"data: raw\n\n", b"data: raw\n\n"),
        (Event("d"), b"data: d\n\n"),
        (Event("d", event="e", id="1", retry=5), b"event: e\nid: 1\nretry: 5\ndata: d\n\n"),
        ({"data": {"a": [1, "\u00e9"]}}, 'data: {"a":[1,"\u00e9"]}\n\n'.encode()),
        ({"data": "x", "event": "e", "id": "2"}, b"event: e\nid: 2\ndata: x\n\n"),
        ({"comment": "hi"}, b": hi\n\n"),
        ({"comment": "c", "data": "x"}, b": c\n\ndata: x\n\n"),
    ],
)
def test_frame_encodes_each_kind_of_item(item: Any, wire: bytes) -> None:
    assert frame(item) == wire


@pytest.mark.parametrize("item", [{"event": "only"}, {"id": "1"}, {"data": "x", "bogus": 1}])
def test_frame_refuses_data_less_or_unknown_mappings(item: Any) -> None:
    with pytest.raises(ValueError):
        frame(item)


def test_frame_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        frame(42)  # type: ignore[arg-type]


def test_server_and_client_agree_under_threads() -> None:
    # A smoke test of many concurrent WSGI streams on the threaded server.
    def source() -> Iterator[str]:
        for i in range(50):
            yield str(i)

    with run_wsgi(wsgi_app(source, ping=None)) as url:
        results: list[list[str]] = []

        def read() -> None:
            body = httpx.get(url, timeout=10).content
            results.append([e.data for e in Decoder().feed(body)])

        threads = [threading.Thread(target=read) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    assert results == [[str(i) for i in range(50)]] * 20
