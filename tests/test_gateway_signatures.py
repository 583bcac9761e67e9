"""Reasoning signatures at the gateway: a client gets one only from an upstream of its
own dialect, which can check it when the client sends it back (Anthropic's thinking
signature to an Anthropic client from an Anthropic upstream); from any other upstream it
is left out, never passed on as, say, an ``encrypted_content`` OpenAI would reject. The
mock's ``think`` model signs its reasoning in every dialect it speaks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.asgi_servers import run_server
from tests.dialect_helpers import anthropic_client, openai_client
from tokenrelay.gateway import create_app, parse_config
from tokenrelay.mock import MockServer

pytestmark = pytest.mark.sdk

KINDS = ["anthropic", "gemini", "mock"]


@pytest.fixture(scope="module")
def gateway(mock: MockServer) -> Iterator[str]:
    config = parse_config(
        {
            "providers": [
                {"name": kind, "kind": kind, "base_url": "" if kind == "mock" else mock.url}
                for kind in KINDS
            ],
            "models": [{"name": f"{kind}-think", "route": [f"{kind}:think"]} for kind in KINDS],
        },
        env={},
    )
    with run_server(create_app(config), lifespan="on") as url:
        yield url


def thinking_blocks(message: Any) -> list[Any]:
    return [block for block in message.content if block.type == "thinking"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_an_anthropic_client_gets_the_signature_of_an_anthropic_upstream_only(
    gateway: str, stream: bool
) -> None:
    with anthropic_client(gateway) as claude:
        for kind in KINDS:
            fields: dict[str, Any] = {
                "model": f"{kind}-think",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": "hi"}],
            }
            if stream:
                with claude.messages.stream(**fields) as events:
                    message = events.get_final_message()
            else:
                message = claude.messages.create(**fields)
            (block,) = thinking_blocks(message)
            assert block.thinking == "Thinking about: hi"
            if kind == "anthropic":
                assert len(block.signature) == 64  # the upstream's own
            else:
                assert not block.signature, kind


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_responses_client_never_gets_encrypted_content_from_another_dialect(
    gateway: str, stream: bool
) -> None:
    with openai_client(gateway + "/v1") as oai:
        for kind in KINDS:
            if stream:
                with oai.responses.stream(model=f"{kind}-think", input="hi") as events:
                    response = events.get_final_response()
            else:
                response = oai.responses.create(model=f"{kind}-think", input="hi")
            reasoning = [item for item in response.output if item.type == "reasoning"]
            assert reasoning, kind
            assert all(item.encrypted_content is None for item in reasoning), kind
            assert response.output_text == "hi"
