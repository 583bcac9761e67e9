"""The AI SDK's UI message stream at the gateway (``POST /v1/ui/chat``, and
``GET /v1/ui/chat/{chat_id}/stream`` for ``resume: true``), read by the AI SDK's own chat
client in Node (``AbstractChat``, which React's ``useChat`` wraps, with its
``DefaultChatTransport``): answers from every upstream kind, tool parts, a page reload
mid-answer that continues exactly, and who may resume what. The raw HTTP tests below pin
the status codes, headers and error shapes without Node.

Why not ``useChat`` in Chromium: it is a React hook, and the page would need React,
``@ai-sdk/react`` and the SDK's ESM dependency graph, which a browser loads only through a
bundler or an import-map CDN (none reachable here); ``AbstractChat`` is the same client
logic, framework aside.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.asgi_servers import run_server
from tests.required import missing
from tests.test_gateway_sdk import KINDS, MESSAGE, WEATHER_SCHEMA
from tokenrelay.gateway import create_app, parse_config
from tokenrelay.mock import MockServer

KEY, OTHER_KEY = "sk-ui-one", "sk-ui-two"
SCRIPT = Path(__file__).parent / "js" / "ai_sdk_chat.mjs"
TOOLS = [{"name": "get_weather", "description": "Weather in a city", "inputSchema": WEATHER_SCHEMA}]


def config(mock_url: str) -> Any:
    base = {"openai": mock_url + "/v1", "mock": ""}
    providers: list[dict[str, Any]] = [
        {"name": kind, "kind": kind, "base_url": base.get(kind, mock_url)} for kind in KINDS
    ]
    providers.append({"name": "slow", "kind": "mock", "options": {"token_ms": 40}})
    models = [
        {"name": f"{kind}-{m}", "route": [f"{kind}:{m}"]}
        for kind in KINDS
        for m in ("echo", "tool")
    ]
    models.insert(0, {"name": "lorem", "route": ["slow:lorem"]})  # the default model
    return parse_config(
        {
            "gateway": {"ping_seconds": 5, "api_keys_env": "KEYS", "grace_seconds": 10},
            "providers": providers,
            "models": models,
        },
        env={"KEYS": f"{KEY},{OTHER_KEY}"},
    )


@pytest.fixture(scope="module")
def gateway(mock: MockServer) -> Iterator[str]:
    with run_server(create_app(config(mock.url)), lifespan="on") as url:
        yield url


def node(mode: str, **args: Any) -> dict[str, Any]:
    sdk = os.environ.get("TOKENRELAY_AI_SDK_DIR")
    if not sdk or shutil.which("node") is None:
        reason = "set TOKENRELAY_AI_SDK_DIR to a directory where `npm install ai` ran"
        missing(reason)
    run = subprocess.run(
        ["node", str(SCRIPT), mode, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def parts(view: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for m in view["messages"] if m["role"] == "assistant" for p in m["parts"]]


def text(view: dict[str, Any]) -> str:
    return "".join(p["text"] for p in parts(view) if p["type"] == "text")


def lorem(words: int = 16) -> str:
    from tests.test_gateway_shared import lorem_text

    return lorem_text(words)


# --- the AI SDK's chat client -------------------------------------------------------------


def test_the_ai_sdks_chat_reads_answers_from_every_upstream_kind(gateway: str) -> None:
    models = [f"{kind}-echo" for kind in KINDS]
    out = node("send", api=gateway + "/v1/ui/chat", key=KEY, models=models, text=MESSAGE)
    assert out["errors"] == []
    for model in models:
        view = out["chats"][model]
        assert view["status"] == "ready", (model, view)
        assert text(view) == MESSAGE, (model, view)
        assert [m["role"] for m in view["messages"]] == ["user", "assistant"]


def test_tool_calls_reach_the_chat_as_the_sdks_tool_parts(gateway: str) -> None:
    models = [f"{kind}-tool" for kind in KINDS]
    out = node(
        "send", api=gateway + "/v1/ui/chat", key=KEY, models=models, text="Paris", tools=TOOLS
    )
    assert out["errors"] == []
    for model in models:
        tool_parts = [p for p in parts(out["chats"][model]) if p["type"].startswith("tool-")]
        assert [p["type"] for p in tool_parts] == ["tool-get_weather"], model
        assert tool_parts[0]["state"] == "input-available"
        assert tool_parts[0]["input"]["city"] == "Paris"


def test_a_reload_mid_answer_resumes_the_chat_exactly_and_only_for_its_key(gateway: str) -> None:
    out = node(
        "cut",
        api=gateway + "/v1/ui/chat",
        key=KEY,
        otherKey=OTHER_KEY,
        model="lorem",
        id="chat-reload",
        text="go",
        words=3,
    )
    assert out["errors"] == [], out
    whole = lorem()
    assert out["before"] and whole.startswith(out["before"]) and out["before"] != whole
    # The reload rebuilt the whole answer from the replay, then followed it to its end.
    assert out["after"] == whole
    assert out["reloaded"]["status"] == "ready"
    assert [m["role"] for m in out["reloaded"]["messages"]] == ["user", "assistant"]
    # Another key's resume of the same chat id found nothing (204): no message, no error.
    assert [m["role"] for m in out["stranger"]["messages"]] == ["user"]
    assert out["stranger"]["status"] == "ready"
    # After the end, nothing is active: a later reload leaves the chat as it was.
    assert out["later"]["messages"] == out["reloaded"]["messages"]
    assert out["later"]["status"] == "ready"


# --- the endpoints over raw HTTP ------------------------------------------------------------

UI_BODY = {
    "id": "raw-1",
    "trigger": "submit-message",
    "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
}


def auth(key: str = KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_the_stream_carries_the_ui_message_stream_header_and_ends_with_done(gateway: str) -> None:
    body = {**UI_BODY, "model": "mock-echo"}
    response = httpx.post(gateway + "/v1/ui/chat", json=body, headers=auth(), timeout=30)
    assert response.status_code == 200
    assert response.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert response.headers["content-type"].startswith("text/event-stream")
    datas = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert datas[-1] == "[DONE]"
    assert json.loads(datas[0])["type"] == "start"
    assert json.loads(datas[-2]) == {"type": "finish", "finishReason": "stop"}


def test_resume_answers_204_for_a_finished_unknown_or_foreign_chat(gateway: str) -> None:
    body = {**UI_BODY, "id": "raw-done", "model": "mock-echo"}
    assert httpx.post(gateway + "/v1/ui/chat", json=body, headers=auth(), timeout=30).is_success
    for chat_id, key in (("raw-done", KEY), ("raw-never", KEY), ("raw-done", OTHER_KEY)):
        response = httpx.get(f"{gateway}/v1/ui/chat/{chat_id}/stream", headers=auth(key))
        assert response.status_code == 204, (chat_id, key)
        assert response.content == b""


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("POST", "/v1/ui/chat", UI_BODY), ("GET", "/v1/ui/chat/raw-1/stream", None)],
)
def test_without_a_valid_key_both_endpoints_answer_401_in_the_ui_error_shape(
    gateway: str, method: str, path: str, body: Any
) -> None:
    for headers in ({}, auth("sk-wrong")):
        response = httpx.request(method, gateway + path, json=body, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"type": "error", "errorText": "missing or invalid API key"}


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"id": "x"}, 400, "messages"),
        ({**UI_BODY, "id": 7}, 400, "id"),
        ({**UI_BODY, "id": "x" * 300}, 400, "id"),
        ({**UI_BODY, "model": "nope"}, 404, "nope"),
        ({**UI_BODY, "tools": [{"description": "no name"}]}, 400, "name"),
        ({**UI_BODY, "messages": [{"id": "u", "role": "user", "parts": "hi"}]}, 400, "parts"),
    ],
)
def test_bad_bodies_get_a_clear_error_in_the_ui_shape(
    gateway: str, body: dict[str, Any], status: int, says: str
) -> None:
    response = httpx.post(gateway + "/v1/ui/chat", json=body, headers=auth())
    assert response.status_code == status, response.text
    error = response.json()
    assert error["type"] == "error" and says in error["errorText"], error


def test_a_body_that_is_not_json_is_refused_in_the_ui_shape(gateway: str) -> None:
    response = httpx.post(
        gateway + "/v1/ui/chat",
        content=b"{",
        headers={**auth(), "content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    other = httpx.post(
        gateway + "/v1/ui/chat", content=b"hi", headers={**auth(), "content-type": "text/plain"}
    )
    assert other.status_code == 415 and other.json()["type"] == "error"
