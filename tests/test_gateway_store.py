"""The gateway over a shared store, in one process: two apps on one SQLite file behave as
two instances (the cross-process cases, with real processes and Redis, are in
test_gateway_shared.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.asgi_servers import run_server
from tokenrelay.gateway import create_app, parse_config
from tokenrelay.sse import Decoder
from tokenrelay.store import MemoryStore, SQLiteStore

CHAT = "/v1/chat/completions"


@contextlib.contextmanager
def gateway(store_path: Path, **store: Any) -> Iterator[str]:
    config = parse_config(
        {
            "gateway": {
                "grace_seconds": 30,
                "store": {"kind": "sqlite", "path": str(store_path), **store},
            },
            "providers": [{"name": "m", "kind": "mock", "options": {"token_ms": 20}}],
            "models": [{"name": "lorem", "route": ["m:lorem"]}],
        },
        env={},
    )
    with run_server(create_app(config), lifespan="on") as url:
        yield url


def long_request() -> dict[str, Any]:
    return {
        "model": "lorem",
        "max_tokens": 2000,
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }


def text_of(wire: bytes) -> str:
    chunks = [json.loads(e.data) for e in Decoder().feed(wire) if e.data != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


def test_the_global_limit_counts_streams_running_on_every_instance(tmp_path: Path) -> None:
    db = tmp_path / "streams.db"
    with gateway(db, max_streams=1) as a, gateway(db, max_streams=1) as b:
        with httpx.stream("POST", a + CHAT, json=long_request(), timeout=10) as first:
            assert first.status_code == 200
            stream_id = first.headers["x-stream-id"]
            refused = httpx.post(b + CHAT, json=long_request(), timeout=10)
            assert refused.status_code == 429, refused.text
            assert refused.headers["retry-after"] == "1"
            assert "global limit" in refused.json()["error"]["message"]
            # Cancelled on the other instance: the slot is free again.
            deleted = httpx.delete(f"{b}/v1/streams/{stream_id}", timeout=10)
            assert deleted.json()["cancelled"] is True
        with httpx.stream("POST", b + CHAT, json=long_request(), timeout=10) as again:
            assert again.status_code == 200


def test_a_store_passed_in_is_the_callers_to_close() -> None:
    store = MemoryStore()
    config = parse_config(
        {
            "providers": [{"name": "m", "kind": "mock"}],
            "models": [{"name": "echo", "route": ["m:echo"]}],
        },
        env={},
    )
    with run_server(create_app(config, store=store), lifespan="on") as url:
        answer = httpx.post(
            url + CHAT,
            json={"model": "echo", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        )
        stream_id = answer.headers["x-stream-id"]

    async def still_open() -> bool:
        info = await store.info(stream_id)
        return info.finished

    assert asyncio.run(still_open())  # the app stopped; the store (and the stream) did not


def test_a_finished_stream_outlives_the_gateway_that_made_it(tmp_path: Path) -> None:
    db = tmp_path / "streams.db"
    body = {"model": "lorem", "max_tokens": 5, "stream": True,
            "messages": [{"role": "user", "content": "x"}]}  # fmt: skip
    with gateway(db) as a:
        first = httpx.post(a + CHAT, json=body, timeout=10)
        stream_id = first.headers["x-stream-id"]
    with gateway(db) as b:
        again = httpx.get(f"{b}/v1/streams/{stream_id}", timeout=10)
    assert again.status_code == 200
    # The same answer (read at once, its text comes merged into fewer events).
    assert text_of(again.content) == text_of(first.content) and again.content.endswith(
        b"data: [DONE]\n\n"
    )

    async def closed_cleanly() -> bool:
        store = SQLiteStore(db)
        try:
            return (await store.info(stream_id)).finished
        finally:
            await store.aclose()

    assert asyncio.run(closed_cleanly())
