"""The gateway as an attacker or a careless client finds it: streams owned by their key,
resume ids checked, limits that hold, bodies that never end, hostile numbers and nesting,
nothing of Python's internals in an answer (issue: trust)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.asgi_servers import run_server
from tests.dialect_helpers import anthropic_client, openai_client
from tests.gateway_procs import gateway_toml, procs_running
from tokenrelay.gateway import create_app, parse_config
from tokenrelay.sse import Decoder

pytestmark = pytest.mark.sdk

CHAT = "/v1/chat/completions"
KEYS = {"KEYS": "key-a-0123456789,key-b-0123456789"}
A = {"authorization": "Bearer key-a-0123456789"}
B = {"authorization": "Bearer key-b-0123456789"}


@contextlib.contextmanager
def gateway(env: dict[str, str] | None = None, **settings: Any) -> Iterator[str]:
    token_ms = settings.pop("token_ms", 5)
    config = parse_config(
        {
            "gateway": {"grace_seconds": 30, **settings},
            "providers": [{"name": "m", "kind": "mock", "options": {"token_ms": token_ms}}],
            "models": [{"name": n, "route": [f"m:{n}"]} for n in ("lorem", "echo")],
        },
        env=env or {},
    )
    with run_server(create_app(config), lifespan="on") as url:
        yield url


def chat(max_tokens: int = 5, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "model": "lorem",
        "max_tokens": max_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": "x"}],
        **extra,
    }


def last_id(wire: bytes) -> str:
    return Decoder().feed(wire)[-1].id


# -- 1. streams belong to the key that started them -------------------------------------------


def test_another_key_cannot_read_or_cancel_a_stream_and_learns_nothing() -> None:
    with gateway(env=KEYS, api_keys_env="KEYS") as url:
        own = httpx.post(url + "/v1/messages", json={**chat(), "max_tokens": 5}, headers=A)
        assert own.status_code == 200
        stream_id = own.headers["x-stream-id"]
        mine = httpx.get(f"{url}/v1/streams/{stream_id}", headers=A)
        assert mine.status_code == 200 and b"message_stop" in mine.content
        theirs = httpx.get(f"{url}/v1/streams/{stream_id}", headers=B)
        unknown = httpx.get(f"{url}/v1/streams/str_{'0' * 32}", headers=B)
        assert theirs.status_code == unknown.status_code == 404
        # The same body shape (OpenAI's) whatever the stream's dialect: nothing revealed.
        assert theirs.json()["error"]["type"] == unknown.json()["error"]["type"]
        assert httpx.delete(f"{url}/v1/streams/{stream_id}", headers=B).status_code == 404
        # Without a key: 401 before any lookup, in the same shape for every stream.
        anonymous = httpx.get(f"{url}/v1/streams/{stream_id}")
        nobody = httpx.get(f"{url}/v1/streams/str_{'0' * 32}")
        assert anonymous.status_code == nobody.status_code == 401
        assert anonymous.content == nobody.content


def test_without_auth_stream_ids_are_unguessable_capabilities() -> None:
    with gateway() as url:
        ids = {httpx.post(url + CHAT, json=chat(1)).headers["x-stream-id"] for _ in range(20)}
    assert len(ids) == 20
    assert all(i.startswith("str_") and len(i) == 36 for i in ids)  # 128 random bits


# -- 10. resume ids ------------------------------------------------------------------------------


def test_resume_ids_past_the_end_or_of_another_stream_are_a_400() -> None:
    with gateway() as url:
        first = httpx.post(url + CHAT, json=chat(3))
        stream_id = first.headers["x-stream-id"]
        for bad in ("40.0", "1.7", "99999999999.0"):
            answer = httpx.get(f"{url}/v1/streams/{stream_id}", headers={"last-event-id": bad})
            assert answer.status_code == 400, (bad, answer.text)
            assert answer.json()["error"]["param"] == "Last-Event-ID"


def test_a_finished_stream_read_to_its_end_answers_204_so_eventsource_stops() -> None:
    with gateway() as url:
        first = httpx.post(url + CHAT, json=chat(3))
        stream_id = first.headers["x-stream-id"]
        done = httpx.get(
            f"{url}/v1/streams/{stream_id}", headers={"last-event-id": last_id(first.content)}
        )
        assert done.status_code == 204 and done.content == b""
        # One event before the end still gets that last event.
        events = Decoder().feed(first.content)
        rest = httpx.get(f"{url}/v1/streams/{stream_id}", headers={"last-event-id": events[-2].id})
        assert rest.status_code == 200 and rest.content.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize("bad", ["9" * 5000, "٣.٣", "1.2.3", "-1.0"])
def test_malformed_resume_ids_are_a_400_without_pythons_words(bad: str) -> None:
    with gateway() as url:
        stream_id = httpx.post(url + CHAT, json=chat(1)).headers["x-stream-id"]
        answer = httpx.get(f"{url}/v1/streams/{stream_id}", params={"last_event_id": bad})
    assert answer.status_code == 400
    assert "digits" not in answer.text and "int" not in answer.text
    assert len(answer.content) < 1000


# -- 6. max_streams counts every generation -----------------------------------------------------


def test_max_streams_counts_non_streamed_generations_too() -> None:
    with gateway(max_streams=2, token_ms=40) as url:

        async def main() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as client:
                answers = await asyncio.gather(
                    *(client.post(url + CHAT, json=chat(5, stream=False)) for _ in range(30))
                )
            return [a.status_code for a in answers]

        statuses = asyncio.run(main())
    assert statuses.count(200) <= 4 and statuses.count(200) >= 2, statuses
    assert statuses.count(429) == 30 - statuses.count(200)


# -- 7. hostile numbers and nesting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        (CHAT, "max_tokens", 1e20),
        (CHAT, "n", 18446744073709551616.0),
        ("/v1/messages", "max_tokens", 1e30),
        ("/v1/responses", "max_output_tokens", 1e20),
    ],
)
def test_integers_beyond_64_bits_are_a_400_naming_the_field(
    path: str, field: str, value: float
) -> None:
    body = {"model": "lorem", "messages": [{"role": "user", "content": "x"}], field: value}
    if path == "/v1/responses":
        body = {"model": "lorem", "input": "x", field: value}
    with gateway() as url:
        answer = httpx.post(url + path, json=body)
    assert answer.status_code == 400, answer.text
    assert field in answer.text


def nested(depth: int) -> Any:
    value: Any = {"type": "string"}
    for _ in range(depth):
        value = {"type": "object", "properties": {"a": value}}
    return value


def test_json_nested_too_deep_is_a_400_naming_the_field() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": nested(150)}}
    with gateway() as url:
        deep_tool = httpx.post(url + CHAT, json={**chat(), "tools": [tool]})
        deep_extra = httpx.post(url + CHAT, content=json.dumps(
            {**chat(), "metadata": json.loads("[" * 200 + "]" * 200)}
        ), headers={"content-type": "application/json"})  # fmt: skip
    assert deep_tool.status_code == 400 and "tools" in deep_tool.json()["error"]["message"]
    assert deep_extra.status_code == 400 and deep_extra.json()["error"]["param"] == "metadata"


# -- 8. the in-process model never freezes the gateway -------------------------------------------


def test_a_huge_request_to_the_in_process_mock_leaves_the_gateway_responsive() -> None:
    with gateway(token_ms=0) as url:

        async def main() -> tuple[float, int]:
            async with httpx.AsyncClient(timeout=60) as client:
                big = asyncio.ensure_future(
                    client.post(url + CHAT, json=chat(3_000_000, stream=False))
                )
                await asyncio.sleep(0.05)
                slowest = 0.0
                while not big.done():
                    began = time.perf_counter()
                    assert (await client.get(url + "/healthz")).status_code == 200
                    slowest = max(slowest, time.perf_counter() - began)
                    await asyncio.sleep(0.01)
                answer = (await big).json()
            return slowest, answer["usage"]["completion_tokens"]

        slowest, tokens = asyncio.run(main())
    assert slowest < 0.5
    assert tokens == 32_768  # bounded: cut with finish "length"


# -- 13. a body that never ends --------------------------------------------------------------------


def test_a_request_body_that_never_ends_is_a_408_within_the_deadline() -> None:
    with gateway(body_timeout_seconds=0.5) as url:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                b"content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
            )
            began = time.monotonic()
            answer = sock.recv(4096)
            took = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert 0.4 < took < 3


# -- 11. what is exposed ----------------------------------------------------------------


def test_metrics_and_readiness_can_require_a_key() -> None:
    with gateway(env=KEYS, api_keys_env="KEYS", metrics_need_key=True) as url:
        assert httpx.get(url + "/metrics").status_code == 401
        assert httpx.get(url + "/readyz").status_code == 401
        assert httpx.get(url + "/metrics", headers=A).status_code == 200
        assert httpx.get(url + "/healthz").status_code == 200  # liveness stays open


def test_an_unreachable_upstream_is_reported_without_its_address() -> None:
    config = parse_config(
        {
            "gateway": {"retry": {"attempts": 1}},
            "providers": [{"name": "up", "kind": "openai", "base_url": "http://127.0.0.1:9/v1"}],
            "models": [{"name": "m", "route": ["up:echo"]}],
        },
        env={},
    )
    with run_server(create_app(config), lifespan="on") as url:
        answer = httpx.post(url + CHAT, json={**chat(), "model": "m"})
    assert answer.status_code >= 500
    assert "127.0.0.1" not in answer.text and ":9" not in answer.text
    assert "Connect" in answer.text or "connect" in answer.text


# -- 12. cross-site requests on the no-auth default -------------------------------------------


def test_a_text_plain_post_is_refused_before_it_generates() -> None:
    with gateway() as url:
        answer = httpx.post(
            url + CHAT, content=json.dumps(chat()), headers={"content-type": "text/plain"}
        )
    assert answer.status_code == 415 and "application/json" in answer.json()["error"]["message"]


def test_without_keys_a_foreign_host_or_origin_is_refused() -> None:
    with gateway() as url:
        rebound = httpx.post(url + CHAT, json=chat(), headers={"host": "evil.example:8080"})
        assert rebound.status_code == 403  # DNS rebinding: a foreign name for 127.0.0.1
        foreign = httpx.post(url + CHAT, json=chat(), headers={"origin": "https://evil.example"})
        assert foreign.status_code == 403
        own = httpx.post(url + CHAT, json=chat(), headers={"origin": url})  # the chat page
        assert own.status_code == 200
        assert (
            "access-control-allow-origin"
            not in httpx.get(url + "/v1/models", headers={"origin": "https://evil.example"}).headers
        )


def test_allowed_hosts_and_origins_are_served_with_real_cors() -> None:
    app_origin = "https://app.example"
    with gateway(allowed_hosts=["gw.internal"], cors_origins=[app_origin]) as url:
        named = httpx.get(url + "/v1/models", headers={"host": "gw.internal"})
        assert named.status_code == 200
        preflight = httpx.options(
            url + CHAT,
            headers={
                "origin": app_origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == app_origin
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"]
        answer = httpx.post(url + CHAT, json=chat(), headers={"origin": app_origin})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == app_origin
        assert "x-stream-id" in answer.headers["access-control-expose-headers"]


def test_with_keys_the_host_and_origin_checks_give_way_to_the_key() -> None:
    with gateway(env=KEYS, api_keys_env="KEYS") as url:
        elsewhere = {"host": "gw.example.com", "origin": "https://other.example", **A}
        assert httpx.post(url + CHAT, json=chat(), headers=elsewhere).status_code == 200
        assert (
            httpx.post(url + CHAT, json=chat(), headers={"host": "gw.example.com"}).status_code
            == 401
        )


# -- 4. a cut answer can be told from a complete one, with the official SDKs --------------------


def sdk_read(dialect: str, url: str, on_first: Any) -> tuple[str, BaseException | None, Any]:
    """Read a long lorem stream with ``dialect``'s SDK, calling ``on_first(stream_id)``
    after the first text; returns the text, what the SDK raised, and the final state the
    SDK reports (the Responses stream's last event)."""
    text: list[str] = []
    last: Any = None
    try:
        if dialect == "anthropic":
            with (
                anthropic_client(url) as client,
                client.messages.stream(
                    model="lorem", max_tokens=3000, messages=[{"role": "user", "content": "x"}]
                ) as stream,
            ):
                on_first(stream.response.headers["x-stream-id"])
                for piece in stream.text_stream:
                    text.append(piece)
                last = stream.get_final_message()
        elif dialect == "openai_chat":
            with openai_client(url + "/v1") as oai:
                raw = oai.chat.completions.with_raw_response.create(
                    model="lorem", max_tokens=3000, stream=True,
                    messages=[{"role": "user", "content": "x"}],
                )  # fmt: skip
                on_first(raw.headers["x-stream-id"])
                with raw.parse() as chunks:
                    for chunk in chunks:
                        if chunk.choices:
                            text.append(chunk.choices[0].delta.content or "")
                            last = chunk.choices[0].finish_reason or last
        else:
            with openai_client(url + "/v1") as oai:
                raw = oai.responses.with_raw_response.create(
                    model="lorem", max_output_tokens=3000, stream=True, input="x"
                )
                on_first(raw.headers["x-stream-id"])
                with raw.parse() as events:
                    for event in events:
                        if event.type == "response.output_text.delta":
                            text.append(event.delta)
                        last = event.type
    except Exception as exc:  # what the SDK raised: that is the point
        return "".join(text), exc, last
    return "".join(text), None, last


@pytest.mark.parametrize("dialect", ["openai_chat", "anthropic", "openai_responses"])
def test_the_sdks_tell_a_deleted_stream_from_a_complete_one(dialect: str) -> None:
    with gateway(token_ms=10) as url:

        def delete(stream_id: str) -> None:
            time.sleep(0.1)
            assert httpx.delete(f"{url}/v1/streams/{stream_id}").json()["cancelled"]

        text, raised, last = sdk_read(dialect, url, delete)
    assert text.startswith("lorem")
    if dialect == "openai_responses":
        assert raised is None and last == "response.failed"  # the SDK yields, not raises
    else:
        assert raised is not None and "cancelled" in str(raised), (raised, last)


@pytest.mark.parametrize("dialect", ["openai_chat", "anthropic", "openai_responses"])
def test_the_sdks_tell_a_stream_cut_by_a_shutdown_from_a_complete_one(
    dialect: str, tmp_path: Path
) -> None:
    """``tokenrelay serve`` itself, stopped by SIGTERM while an SDK reads a stream."""
    config = gateway_toml(
        gateway={"drain_seconds": 0},
        provider={"name": "m", "kind": "mock", "options": {"token_ms": 10}},
        models={"lorem": "m:lorem"},
    )
    with procs_running(tmp_path) as procs:
        served = procs.gateway("gw", config)

        def stop(_: str) -> None:
            time.sleep(0.1)
            served.terminate()

        text, raised, last = sdk_read(dialect, served.url, stop)
        assert served.wait(15) in (0, -signal.SIGTERM)
    assert text.startswith("lorem")
    if dialect == "openai_responses":
        assert raised is None and last == "response.failed"
    else:
        assert raised is not None and "shutting down" in str(raised), (raised, last)
