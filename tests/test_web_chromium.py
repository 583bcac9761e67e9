"""The chat page in real headless Chromium (Debian's ``chromium``, driven by Playwright)
against a real gateway in uvicorn with the paced in-process mock.

Screenshots go to ``test-artifacts/`` (CI keeps them). ``docs/chat.png``, the README's
screenshot, is written when missing or when ``TOKENRELAY_UPDATE_SCREENSHOT=1``.
Under CI a missing Chromium or playwright fails; elsewhere these tests skip.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from tests.asgi_servers import run_server
from tests.cutting_proxy import CuttingProxy
from tests.required import missing
from tokenrelay.gateway import create_app, default_config
from tokenrelay.providers.base import ProviderConfig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
ARTIFACTS = ROOT / "test-artifacts"
README_SHOT = ROOT / "docs" / "chat.png"
TOKEN_MS = 20
CHAT_REQUEST = b"POST /v1/chat/completions "
LONG_TEXT = " ".join(f"token{i}" for i in range(120))  # ~2.4 s at TOKEN_MS


def _chromium_path() -> str | None:
    for candidate in (os.environ.get("TOKENRELAY_CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def _unavailable(reason: str) -> Any:
    missing(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright)")
    executable = _chromium_path()
    if executable is None:
        _unavailable("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    config = default_config(local=False)
    mock = ProviderConfig("mock", "mock", options={"token_ms": TOKEN_MS})
    app = create_app(dataclasses.replace(config, providers=(mock,)))
    with run_server(app, lifespan="on") as url:
        yield url


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    # bypass_csp only where a test asks for it: the page must work under its own policy.
    bypass = request.node.get_closest_marker("bypass_csp") is not None
    context = browser.new_context(viewport={"width": 1000, "height": 680}, bypass_csp=bypass)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        context.close()


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    # Polled from Python: the page's CSP forbids the eval that wait_for_function needs.
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.02)


def open_chat(page: Any, url: str, model: str = "echo") -> None:
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready]")
    page.select_option("#model", model)


def send(page: Any, text: str) -> None:
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")


def finished(page: Any, count: int) -> Any:
    """The `count`-th assistant message once it has ended (done, stopped or error)."""
    selector = f".msg.assistant >> nth={count - 1}"
    wait_until(
        lambda: (
            page.locator(".msg.assistant[data-state]:not([data-state=streaming])").count() >= count
        ),
        what=f"reply {count} to end",
    )
    return page.locator(selector)


def conversation(page: Any) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = page.evaluate("window.tokenrelayChat.messages")
    return messages


def ended_by(url: str, why: str) -> float:
    metrics = httpx.get(url + "/metrics").text
    match = re.search(rf'^tokenrelay_streams_ended_total\{{why="{why}"\}} (\S+)$', metrics, re.M)
    return float(match[1]) if match else 0.0


def test_a_chat_round_trip_streams_the_echo_answer(page: Any, gateway: str) -> None:
    open_chat(page, gateway)
    assert page.eval_on_selector("#model", "s => [...s.options].map(o => o.value)") == [
        "echo",
        "lorem",
        "think",
        "tool",
        "tools",
    ]
    send(page, "Hello from **Chromium**, with `code`.")
    reply = finished(page, 1)
    assert reply.get_attribute("data-state") == "done"
    assert reply.locator(".body strong").inner_text() == "Chromium"
    assert reply.locator(".body code").inner_text() == "code"
    meta = reply.locator(".meta").inner_text()
    assert re.search(r"first token \d+ ms", meta) and re.search(r"tokens \d+ in · 5 out", meta)
    assert re.fullmatch(r"str_[0-9a-f]{32}", reply.get_attribute("data-stream-id") or "")

    send(page, "And a second turn.")
    finished(page, 2)
    assert conversation(page) == [
        {"role": "user", "content": "Hello from **Chromium**, with `code`."},
        {"role": "assistant", "content": "Hello from **Chromium**, with `code`."},
        {"role": "user", "content": "And a second turn."},
        {"role": "assistant", "content": "And a second turn."},
    ]
    first_stream = page.locator(".msg.assistant >> nth=1").get_attribute("data-stream-id")
    page.click("#regenerate")
    wait_until(
        lambda: (
            page.locator(".msg.assistant >> nth=1").get_attribute("data-stream-id")
            not in (None, first_stream)
            and page.locator(".msg.assistant >> nth=1").get_attribute("data-state") == "done"
        ),
        what="the regenerated reply",
    )
    assert page.locator(".msg.assistant").count() == 2
    assert conversation(page)[-1] == {"role": "assistant", "content": "And a second turn."}
    assert page.errors == []
    if os.environ.get("TOKENRELAY_UPDATE_SCREENSHOT") or not README_SHOT.exists():
        _readme_screenshot(page)


def _readme_screenshot(page: Any) -> None:
    page.click("#new-chat")
    page.select_option("#model", "echo")
    send(
        page,
        "**tokenrelay** streams this reply token by token.\n\n"
        "- resumes after a network drop, nothing lost or doubled\n"
        "- `Stop` cancels the upstream generation\n\n"
        "```python\nprint('markdown is rendered safely')\n```",
    )
    finished(page, 1)
    README_SHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(README_SHOT))


def test_stop_cancels_the_generation_upstream(page: Any, gateway: str) -> None:
    before = ended_by(gateway, "deleted")
    open_chat(page, gateway)
    send(page, LONG_TEXT)
    wait_until(lambda: "token5 " in page.inner_text(".msg.assistant .body"), what="tokens")
    page.click("#stop")
    reply = finished(page, 1)
    assert reply.get_attribute("data-state") == "stopped"
    wait_until(lambda: ended_by(gateway, "deleted") > before, what="the gateway's cancel")
    shown = conversation(page)[-1]["content"]
    assert LONG_TEXT.startswith(shown) and len(shown) < len(LONG_TEXT)
    time.sleep(0.3)  # nothing more arrives after the stop
    assert conversation(page)[-1]["content"] == shown
    assert page.is_visible("#send") and not page.is_visible("#stop")
    assert page.errors == []


@pytest.mark.parametrize("cut", [1500, 6000])
def test_a_network_cut_mid_stream_resumes_with_nothing_lost_or_doubled(
    page: Any, gateway: str, cut: int
) -> None:
    # The page's first request for a reply is cut, a real network failure for the browser
    # (Chromium's offline emulation leaves an open stream alone); the rest pass untouched.
    proxy = CuttingProxy(urlparse(gateway).port or 0, [cut], request=CHAT_REQUEST)
    with proxy.running() as url:
        open_chat(page, url)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(f"{r.method} {urlparse(r.url).path}"))
        send(page, LONG_TEXT)
        reply = finished(page, 1)
        assert proxy.dropped == 1
        assert reply.get_attribute("data-state") == "done", reply.inner_text()
        assert conversation(page)[-1] == {"role": "assistant", "content": LONG_TEXT}
        assert reply.locator(".body").inner_text() == LONG_TEXT
        assert "resumed 1\u00d7" in reply.locator(".meta").inner_text()
        stream_id = reply.get_attribute("data-stream-id")
        assert requests.count("POST /v1/chat/completions") == 1
        assert f"GET /v1/streams/{stream_id}" in requests
        assert page.errors == []


def reload(page: Any) -> None:
    page.reload()
    page.wait_for_selector("body[data-ready]")


def test_a_reload_mid_reply_picks_the_same_generation_up_and_keeps_the_chat(
    page: Any, gateway: str
) -> None:
    open_chat(page, gateway)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {urlparse(r.url).path}"))
    send(page, LONG_TEXT)
    streaming = page.locator(".msg.assistant >> nth=0")
    wait_until(
        lambda: (
            streaming.get_attribute("data-stream-id")
            and len(streaming.locator(".body").inner_text()) > 100
        ),
        what="the reply to be under way",
    )
    stream_id = streaming.get_attribute("data-stream-id")
    reload(page)
    reply = finished(page, 1)
    assert reply.get_attribute("data-state") == "done", reply.inner_text()
    # The same generation, read again from its first event: nothing lost, nothing doubled.
    assert reply.get_attribute("data-stream-id") == stream_id
    assert reply.locator(".body").inner_text() == LONG_TEXT
    assert page.locator(".msg.user .body").inner_text() == LONG_TEXT
    whole = [{"role": "user", "content": LONG_TEXT}, {"role": "assistant", "content": LONG_TEXT}]
    assert conversation(page) == whole
    assert requests.count("POST /v1/chat/completions") == 1
    assert f"GET /v1/streams/{stream_id}" in requests

    reload(page)  # a finished conversation comes back as it was
    assert conversation(page) == whole
    assert page.locator(".msg").count() == 2
    assert page.locator(".msg.assistant .body").inner_text() == LONG_TEXT
    page.click("#new-chat")  # and New chat forgets it
    reload(page)
    assert conversation(page) == []
    assert page.locator(".msg").count() == 0
    assert page.errors == []


def test_a_reply_the_gateway_no_longer_has_is_reported_after_a_reload(
    page: Any, gateway: str
) -> None:
    open_chat(page, gateway)
    saved = '{"messages": [{"role": "user", "content": "hello"}], "pending": "gone"}'
    page.evaluate(f"sessionStorage.setItem('tokenrelay.chat', {saved!r})")
    reload(page)
    reply = finished(page, 1)
    assert reply.get_attribute("data-state") == "error"
    assert "no longer on the gateway" in page.locator("#banner").inner_text()
    assert conversation(page) == [{"role": "user", "content": "hello"}]
    send(page, "again")  # and the chat goes on
    assert finished(page, 2).get_attribute("data-state") == "done"
    assert page.errors == []


@pytest.mark.bypass_csp  # the renderer alone must stop it, not only the page's CSP
def test_script_in_model_output_does_not_run_and_is_shown_as_text(page: Any, gateway: str) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_chat(page, gateway)
    attack = (
        "<script>window.pwned=1</script> <img src=x onerror=\"window.pwned2=1;alert('x')\"> "
        "[link](javascript:window.pwned3=1) **<b onmouseover=window.pwned4=1>bold</b>**"
    )
    send(page, attack)
    reply = finished(page, 1)
    body = reply.locator(".body")
    body.hover()
    page.wait_for_timeout(200)  # give an injected handler the chance to run
    assert page.evaluate("[window.pwned, window.pwned2, window.pwned3, window.pwned4]") == [
        None,
        None,
        None,
        None,
    ]
    assert dialogs == []
    assert body.locator("script, img, b, a").count() == 0
    text = body.inner_text()
    assert "<script>window.pwned=1</script>" in text
    assert "<img src=x onerror=\"window.pwned2=1;alert('x')\">" in text
    assert page.errors == []


def test_an_error_is_shown_clearly(page: Any, gateway: str) -> None:
    open_chat(page, gateway)
    # A model the gateway does not know: its 404 and message reach the page.
    page.eval_on_selector("#model", "s => { s.add(new Option('nope', 'nope')); s.value = 'nope' }")
    send(page, "hello")
    reply = finished(page, 1)
    assert reply.get_attribute("data-state") == "error"
    banner = page.inner_text("#banner")
    assert "404" in banner and "model 'nope' does not exist" in banner
    assert conversation(page) == [{"role": "user", "content": "hello"}]
    page.select_option("#model", "echo")
    page.click("#regenerate")  # the failed attempt goes; the question is asked again
    wait_until(lambda: len(conversation(page)) == 2, what="the regenerated answer")
    assert conversation(page)[-1] == {"role": "assistant", "content": "hello"}
    assert page.locator(".msg.assistant").count() == 1
    assert not page.is_visible("#banner")
