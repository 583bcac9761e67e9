"""Image data in a request is base64 in every dialect that carries it as data (a
``data:`` URL's payload too): anything else is a ``RequestError`` naming the field,
which the gateway answers as a 400 in the caller's dialect, instead of passing it
upstream to be refused there in another provider's words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tokenrelay.errors import RequestError
from tokenrelay.llm import DIALECTS
from tokenrelay.llm.model import ImagePart, Request

PNG = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
    "RU5ErkJggg=="
)
BAD = ["not base64!", "iVBORw0KGgo", "", "data with spaces and ünïcode"]


def openai_chat(data: str) -> dict[str, Any]:
    url = f"data:image/png;base64,{data}"
    content = [{"type": "image_url", "image_url": {"url": url}}]
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


def anthropic(data: str) -> dict[str, Any]:
    source = {"type": "base64", "media_type": "image/png", "data": data}
    content = [{"type": "image", "source": source}]
    return {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": content}]}


def gemini(data: str) -> dict[str, Any]:
    parts = [{"inlineData": {"mimeType": "image/png", "data": data}}]
    return {"contents": [{"role": "user", "parts": parts}]}


def ollama(data: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi", "images": [data]}]}


def openai_responses(data: str) -> dict[str, Any]:
    content = [{"type": "input_image", "image_url": f"data:image/png;base64,{data}"}]
    return {"model": "m", "input": [{"role": "user", "content": content}]}


def vercel_ui(data: str) -> dict[str, Any]:
    part = {"type": "file", "mediaType": "image/png", "url": f"data:image/png;base64,{data}"}
    return {"model": "m", "messages": [{"id": "1", "role": "user", "parts": [part]}]}


BODIES: dict[str, tuple[Callable[[str], dict[str, Any]], str]] = {
    "openai_chat": (openai_chat, "messages[0].content[0].image_url"),
    "anthropic": (anthropic, "messages[0].content[0].source.data"),
    "gemini": (gemini, "contents[0].parts[0].inlineData.data"),
    "ollama": (ollama, "messages[0].images[0]"),
    "openai_responses": (openai_responses, "input[0].content[0].image_url"),
    "vercel_ui": (vercel_ui, "messages[0].parts[0].url"),
}


def parse(name: str, body: dict[str, Any]) -> Request:
    return DIALECTS[name].parse_request(body)


@pytest.mark.parametrize("name", BODIES)
def test_base64_image_data_is_taken(name: str) -> None:
    build, _ = BODIES[name]
    for data in (PNG, PNG[:40] + "\n" + PNG[40:]):  # MIME's line breaks are fine
        request = parse(name, build(data))
        (part,) = [p for m in request.messages for p in m.parts if isinstance(p, ImagePart)]
        assert data in (part.data or part.url)


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("name", BODIES)
def test_image_data_that_is_not_base64_is_refused_naming_the_field(name: str, bad: str) -> None:
    build, field = BODIES[name]
    with pytest.raises(RequestError) as caught:
        parse(name, build(bad))
    assert caught.value.param == field
    assert "base64" in str(caught.value)
