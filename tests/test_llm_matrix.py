"""Any upstream to any client: every fixture, decoded from its own dialect, re-encoded in
every dialect, and read back by the official SDK's own streaming helpers (openai, anthropic)
over loopback — or by our decoder, for dialects without an installed SDK.

And a property: random neutral streams survive encode → decode through any chain of two
dialects, for what both carry.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from hypothesis import HealthCheck, given, settings

from tests.conftest import FIXTURES
from tests.dialect_helpers import anthropic_client, feed_all, openai_client
from tests.neutral_streams import CARRIES, essence, streams
from tests.replay_server import ReplayServer
from tokenrelay.llm import (
    Completion,
    Delta,
    Message,
    Request,
    StreamError,
    TextPart,
    Usage,
    accumulate,
)
from tokenrelay.llm.anthropic import ANTHROPIC
from tokenrelay.llm.dialect import Dialect
from tokenrelay.llm.gemini import GEMINI
from tokenrelay.llm.ollama import OLLAMA
from tokenrelay.llm.openai_chat import OPENAI_CHAT
from tokenrelay.llm.openai_responses import OPENAI_RESPONSES

pytestmark = pytest.mark.sdk

DIALECTS: dict[str, Dialect] = {
    d.name: d for d in (OPENAI_CHAT, OPENAI_RESPONSES, ANTHROPIC, GEMINI, OLLAMA)
}
SOURCES = {
    **{f"openai-captures/{p.name}": "openai_chat"
       for p in sorted((FIXTURES / "openai-captures").glob("*.sse"))},
    "written/openai_chat_text.sse": "openai_chat",
    "written/openai_chat_tool_calls.sse": "openai_chat",
    "written/openai_chat_n2_interleaved.sse": "openai_chat",
    "written/anthropic_text.sse": "anthropic",
    "written/anthropic_thinking_tool_use.sse": "anthropic",
    "written/openai_responses_text.sse": "openai_responses",
    "written/openai_responses_function_call.sse": "openai_responses",
    "written/gemini_stream.sse": "gemini",
    "written/ollama_chat.ndjson": "ollama",
}  # fmt: skip
ERROR_SOURCES = {
    "written/anthropic_error_midstream.sse": "anthropic",
    "written/openai_chat_error_midstream.sse": "openai_chat",
    "written/openai_responses_error.sse": "openai_responses",
}
REQUEST = Request(
    model="client-model", messages=(Message("user", (TextPart("hi"),)),), include_usage=True
)


def decode(path: str, dialect: str) -> list[Delta]:
    return feed_all(DIALECTS[dialect].decoder(), [(FIXTURES / Path(path)).read_bytes()])


def expected(completion: Completion, target: str) -> dict[str, Any]:
    """What the target dialect can carry of ``completion``, in ``essence`` form."""
    carries = CARRIES[target]
    want = essence(completion)
    if "choices" not in carries:
        want["choices"] = want["choices"][:1]
    for choice in want["choices"]:
        if "refusal" not in carries:  # refusals travel as text there
            choice["text"] += choice["refusal"]
            choice["refusal"] = ""
        if "signature" not in carries:
            choice["signature"] = ""
        if "content_filter" not in carries and choice["finish"] == "content_filter":
            choice["finish"] = "stop"
    if want["usage"] is not None:
        i, o, cached, reasoning = want["usage"]
        want["usage"] = (
            i,
            o,
            cached if "cached" in carries else 0,
            reasoning if "reasoning_tokens" in carries else 0,
        )
    return want


# --- reading back with the official SDKs ----------------------------------------------


def _usage(i: int, o: int, cached: int, reasoning: int) -> tuple[int, int, int, int]:
    return (i, o, cached, reasoning)


def read_openai_chat(server: ReplayServer, stream: bool) -> dict[str, Any]:
    with openai_client(server.url + "/v1", api_key="x") as client:
        if stream:
            with client.chat.completions.stream(
                model="client-model",
                messages=[{"role": "user", "content": "hi"}],
                stream_options={"include_usage": True},
            ) as s:
                for _ in s:
                    pass
                # The helper's own accumulation (get_final_completion() would raise on
                # finish_reason "length", by design, before we could look).
                final = s.current_completion_snapshot
        else:
            final = client.chat.completions.create(
                model="client-model", messages=[{"role": "user", "content": "hi"}]
            )
    u = final.usage
    return {
        "choices": [
            {
                "text": c.message.content or "",
                "reasoning": (c.message.model_extra or {}).get("reasoning_content") or "",
                "signature": "",
                "refusal": c.message.refusal or "",
                "calls": [(t.function.name, json.loads(t.function.arguments))  # type: ignore[union-attr]
                          for t in c.message.tool_calls or []],
                "finish": c.finish_reason,
            }
            for c in sorted(final.choices, key=lambda c: c.index)
        ],
        "usage": None if u is None else _usage(
            u.prompt_tokens, u.completion_tokens,
            (u.prompt_tokens_details.cached_tokens or 0) if u.prompt_tokens_details else 0,
            (u.completion_tokens_details.reasoning_tokens or 0)
            if u.completion_tokens_details else 0,
        ),
    }  # fmt: skip


_RESPONSES_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def read_openai_responses(server: ReplayServer, stream: bool) -> dict[str, Any]:
    with openai_client(server.url + "/v1", api_key="x") as client:
        if stream:
            with client.responses.stream(model="client-model", input="hi") as s:
                # The stream's last event holds the final response: response.completed, or
                # response.incomplete (get_final_response() accepts only the former).
                ends = [e for e in s if e.type in ("response.completed", "response.incomplete")]
                final = ends[-1].response  # type: ignore[union-attr]
        else:
            final = client.responses.create(model="client-model", input="hi")
    text, refusal, reasoning, calls = [], [], [], []
    for item in final.output:
        if item.type == "message":
            for part in item.content:
                (text if part.type == "output_text" else refusal).append(
                    part.text if part.type == "output_text" else part.refusal  # type: ignore[union-attr]
                )
        elif item.type == "reasoning":
            reasoning += [c.text for c in item.content or []]
        elif item.type == "function_call":
            calls.append((item.name, json.loads(item.arguments)))
    if final.status == "incomplete" and final.incomplete_details:
        finish = _RESPONSES_FINISH[final.incomplete_details.reason or ""]
    else:
        finish = "tool_calls" if calls else "stop"
    u = final.usage
    return {
        "choices": [{"text": "".join(text), "reasoning": "".join(reasoning), "signature": "",
                     "refusal": "".join(refusal), "calls": calls, "finish": finish}],
        "usage": None if u is None else _usage(
            u.input_tokens, u.output_tokens, u.input_tokens_details.cached_tokens,
            u.output_tokens_details.reasoning_tokens,
        ),
    }  # fmt: skip


_ANTHROPIC_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                     "tool_use": "tool_calls", "refusal": "content_filter"}  # fmt: skip


def read_anthropic(server: ReplayServer, stream: bool) -> dict[str, Any]:
    with anthropic_client(server.url, api_key="x") as client:
        args: dict[str, Any] = {
            "model": "client-model", "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}],
        }  # fmt: skip
        if stream:
            with client.messages.stream(**args) as s:
                final = s.get_final_message()
        else:
            final = client.messages.create(**args)
    text, reasoning, signature, calls = [], [], [], []
    for block in final.content:
        if block.type == "text":
            text.append(block.text)
        elif block.type == "thinking":
            reasoning.append(block.thinking)
            signature.append(block.signature)
        elif block.type == "tool_use":
            calls.append((block.name, block.input))
    u = final.usage
    cached = u.cache_read_input_tokens or 0
    return {
        "choices": [{"text": "".join(text), "reasoning": "".join(reasoning),
                     "signature": "".join(signature), "refusal": "", "calls": calls,
                     "finish": _ANTHROPIC_FINISH[final.stop_reason or "end_turn"]}],
        "usage": _usage(u.input_tokens + cached + (u.cache_creation_input_tokens or 0),
                        u.output_tokens, cached, 0),
    }  # fmt: skip


SDK_READERS: dict[str, Callable[[ReplayServer, bool], dict[str, Any]]] = {
    "openai_chat": read_openai_chat,
    "openai_responses": read_openai_responses,
    "anthropic": read_anthropic,
}


def _normalise(result: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    if want["usage"] is None:  # the source reported none; the target may say zeros
        result["usage"] = None
    for choice in result["choices"]:
        choice["finish"] = str(choice["finish"]) if choice["finish"] else None
    for choice in want["choices"]:
        choice["finish"] = str(choice["finish"]) if choice["finish"] else None
    return result


@pytest.mark.parametrize("target", sorted(SDK_READERS))
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_sdk_streaming_helpers_rebuild_every_fixture_from_our_encoding(
    server: ReplayServer, source: str, target: str
) -> None:
    deltas = decode(source, SOURCES[source])
    want = expected(accumulate(deltas), target)
    encoder = DIALECTS[target].encoder(REQUEST)
    server.respond(encoder.encode_all(deltas))
    assert _normalise(SDK_READERS[target](server, True), want) == want


@pytest.mark.parametrize("target", sorted(SDK_READERS))
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_sdk_non_streamed_create_reads_every_fixture_rendered(
    server: ReplayServer, source: str, target: str
) -> None:
    completion = accumulate(decode(source, SOURCES[source]))
    want = expected(completion, target)
    server.respond(json.dumps(DIALECTS[target].render_response(completion)).encode(),
                   content_type="application/json")  # fmt: skip
    assert _normalise(SDK_READERS[target](server, False), want) == want


@pytest.mark.parametrize("target", ["gemini", "ollama"])
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_dialects_without_an_sdk_round_trip_every_fixture(source: str, target: str) -> None:
    deltas = decode(source, SOURCES[source])
    want = expected(accumulate(deltas), target)
    decoder = DIALECTS[target].decoder()
    wire = DIALECTS[target].encoder(REQUEST).encode_all(deltas)
    got = essence(accumulate(decoder.feed(wire) + decoder.close()))
    assert _normalise(got, want) == want
    rendered = DIALECTS[target].render_response(accumulate(deltas))
    got = essence(accumulate(DIALECTS[target].parse_response(rendered)))
    assert _normalise(got, want) == want


def responses_error(server: ReplayServer) -> str:
    """The Responses SDK does not raise on a failed stream: it yields an ``error`` event and
    then ``response.failed``, whose response carries the error."""
    with (
        openai_client(server.url + "/v1", api_key="x") as client,
        client.responses.stream(model="client-model", input="hi") as s,
    ):
        events = list(s)
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None
    return str(failed.error.message)


@pytest.mark.parametrize("target", sorted(SDK_READERS))
@pytest.mark.parametrize("source", sorted(ERROR_SOURCES))
def test_a_midstream_error_from_any_upstream_reaches_every_sdk(
    server: ReplayServer, source: str, target: str
) -> None:
    deltas = decode(source, ERROR_SOURCES[source])
    error = deltas[-1]
    assert isinstance(error, StreamError)
    server.respond(DIALECTS[target].encoder(REQUEST).encode_all(deltas))
    if target == "openai_responses":
        assert responses_error(server) == error.message
        return
    raises = openai.APIError if target == "openai_chat" else anthropic.APIStatusError
    with pytest.raises(raises, match=re.escape(error.message)):
        SDK_READERS[target](server, True)


# --- the property ---------------------------------------------------------------------

PAIRS = list(itertools.product(sorted(CARRIES), repeat=2))


def _through(dialect: str, deltas: list[Delta]) -> list[Delta]:
    d = DIALECTS[dialect]
    wire = d.encoder(REQUEST).encode_all(deltas)
    decoder = d.decoder()
    return decoder.feed(wire) + decoder.close()


def _make_pair_test(first: str, second: str) -> Any:
    features = CARRIES[first] & CARRIES[second]

    @settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
    @given(deltas=streams(features))
    def check(deltas: list[Delta]) -> None:
        want = essence(accumulate(deltas))
        got = essence(accumulate(_through(second, _through(first, deltas))))
        assert got == want

    return check


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}>{b}" for a, b in PAIRS])
def test_random_streams_survive_any_chain_of_two_dialects(first: str, second: str) -> None:
    _make_pair_test(first, second)()


def test_usage_round_trip_keeps_counts_not_the_estimated_flag() -> None:
    # Estimated usage is a tokenrelay notion; no wire dialect has a field for it.
    for name in CARRIES:
        out = _through(name, [*decode("written/openai_chat_text.sse", "openai_chat")[:1],
                              Usage(5, 7, estimated=True)])  # fmt: skip
        usage = [d for d in out if isinstance(d, Usage)]
        assert usage and usage[-1].output_tokens == 7, name


def test_a_huge_text_is_estimated_from_a_sample_in_milliseconds() -> None:
    """A 16 MB prompt is estimated from its first 64 Ki characters, scaled: the same
    figure as counting it whole for a repetitive text, in a bounded time (counting it
    whole took two seconds of the event loop)."""
    import time

    from tokenrelay.llm.estimate import estimate_tokens

    piece = "hello world, this is text. "  # 27 characters, a whole number of them below
    whole = piece * 600_000
    started = time.perf_counter()
    estimate = estimate_tokens(whole)
    assert time.perf_counter() - started < 0.5
    per_piece = estimate_tokens(piece)
    assert abs(estimate - per_piece * 600_000) <= per_piece * 600_000 // 100
