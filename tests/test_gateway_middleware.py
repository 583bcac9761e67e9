"""Middleware added to the gateway app sees every request and every byte (CORS, gzip)."""

from __future__ import annotations

import gzip

import httpx
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware

from tests.asgi_servers import run_server
from tokenrelay.gateway import create_app, parse_config
from tokenrelay.llm import OPENAI_CHAT, accumulate

CONFIG = {
    "providers": [{"name": "m", "kind": "mock"}],
    "models": [{"name": "echo", "route": ["m:echo"]}],
}
BODY = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "a b c"}]}


def text_of(wire: bytes) -> str:
    decoder = OPENAI_CHAT.decoder()
    return accumulate(decoder.feed(wire) + decoder.close()).choices[0].text


def test_cors_middleware_answers_a_browser_origin_on_the_streaming_endpoint() -> None:
    # The gateway's own guard lets the origin in; the app's CORSMiddleware answers CORS.
    config = {**CONFIG, "gateway": {"cors_origins": ["https://app.example"]}}
    app = create_app(parse_config(config, env={}))
    app.add_middleware(CORSMiddleware, allow_origins=["https://app.example"])
    with run_server(app, lifespan="on") as url:
        headers = {"origin": "https://app.example"}
        response = httpx.post(f"{url}/v1/chat/completions", json=BODY, headers=headers)
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert text_of(response.content) == "a b c"


def test_gzip_middleware_compresses_the_whole_stream() -> None:
    app = create_app(parse_config(CONFIG, env={}))
    app.add_middleware(GZipMiddleware, minimum_size=1)
    with run_server(app, lifespan="on") as url:
        with httpx.stream(
            "POST", f"{url}/v1/chat/completions", json=BODY, headers={"accept-encoding": "gzip"}
        ) as response:
            raw = b"".join(response.iter_raw())
        # Starlette's GZipMiddleware leaves text/event-stream alone or compresses all of
        # it: either way the client must get one coherent stream.
        wire = gzip.decompress(raw) if response.headers.get("content-encoding") == "gzip" else raw
        assert text_of(wire) == "a b c"
