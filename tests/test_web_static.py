"""web_routes(): the chat page and the browser client's files, from the package."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette

from tests.asgi_servers import run_server
from tokenrelay.gateway.web import web_routes


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with run_server(Starlette(routes=web_routes())) as base:
        yield base


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/static/index.html", "text/html; charset=utf-8"),
        ("/static/tokenrelay.js", "text/javascript; charset=utf-8"),
        ("/static/markdown.js", "text/javascript; charset=utf-8"),
        ("/static/chat.js", "text/javascript; charset=utf-8"),
        ("/static/chat.css", "text/css; charset=utf-8"),
    ],
)
def test_page_and_files_are_served_with_their_content_types(
    url: str, path: str, content_type: str
) -> None:
    response = httpx.get(url + path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content


def test_the_page_loads_only_its_own_files_under_a_strict_policy(url: str) -> None:
    response = httpx.get(url + "/")
    assert 'src="static/chat.js"' in response.text and "http" not in response.text.lower()
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp


def test_an_unchanged_file_is_not_sent_again(url: str) -> None:
    first = httpx.get(url + "/static/tokenrelay.js")
    again = httpx.get(
        url + "/static/tokenrelay.js", headers={"if-none-match": first.headers["etag"]}
    )
    assert again.status_code == 304 and not again.content


@pytest.mark.parametrize(
    "path",
    [
        "/static/../gateway/web.py",
        "/static/%2e%2e/gateway/web.py",
        "/static/..%2fgateway%2fweb.py",
        "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/static/.hidden.js",
        "/static/web.py",
        "/static/../__init__.py",
        "/static/nope.js",
        "/static/",
        "/static/a//b.js",
        "/static/%00.js",
    ],
)
def test_nothing_outside_the_web_files_is_served(url: str, path: str) -> None:
    with httpx.Client() as client:
        request = client.build_request("GET", url)
        request.url = httpx.URL(url + path)  # as typed: httpx would normalise ".."
        response = client.send(request)
    assert response.status_code == 404
