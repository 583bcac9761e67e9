"""The Responses API's server-side state at the gateway, read by the official ``openai``
SDK: stored responses retrieved, continued by ``previous_response_id`` (exactly what goes
upstream, tool calls included), listed, deleted; background responses polled, cancelled,
and streamed then resumed by ``starting_after``; who may touch which response; and what
the operator's ``store_responses = false`` turns off."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.asgi_servers import run_server
from tests.dialect_helpers import openai_client
from tests.replay_server import ReplayServer, replay_server
from tests.test_gateway_shared import lorem_text
from tokenrelay.gateway import create_app, parse_config
from tokenrelay.llm import OPENAI_CHAT
from tokenrelay.llm.model import (
    Finish,
    FinishReason,
    Start,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)
from tokenrelay.mock import MockServer

pytestmark = pytest.mark.sdk

KEY, OTHER_KEY = "sk-state-one", "sk-state-two"
KINDS = ["openai", "anthropic", "gemini", "ollama", "mock"]


def config(mock_url: str, replay_url: str, **gateway: Any) -> Any:
    base = {"openai": mock_url + "/v1", "mock": ""}
    providers: list[dict[str, Any]] = [
        {"name": kind, "kind": kind, "base_url": base.get(kind, mock_url)} for kind in KINDS
    ]
    providers += [
        {"name": "slow", "kind": "mock", "options": {"token_ms": 20}},
        {"name": "replay", "kind": "openai", "base_url": replay_url},
    ]
    models = [{"name": f"{kind}-echo", "route": [f"{kind}:echo"]} for kind in KINDS]
    models += [
        {"name": "lorem", "route": ["slow:lorem"]},
        {"name": "replayed", "route": ["replay:gpt-x"]},
    ]
    return parse_config(
        {
            "gateway": {"api_keys_env": "KEYS", "grace_seconds": 0.2, **gateway},
            "providers": providers,
            "models": models,
        },
        env={"KEYS": f"{KEY},{OTHER_KEY}"},
    )


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with replay_server() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(mock: MockServer, replay: ReplayServer) -> Iterator[str]:
    with run_server(create_app(config(mock.url, replay.url)), lifespan="on") as url:
        yield url


@pytest.fixture(scope="module")
def oai(gateway: str) -> Iterator[openai.OpenAI]:
    with openai_client(gateway + "/v1", KEY) as client:
        yield client


@pytest.fixture(scope="module")
def stranger(gateway: str) -> Iterator[openai.OpenAI]:
    with openai_client(gateway + "/v1", OTHER_KEY) as client:
        yield client


def upstream_answer(*deltas: Any) -> bytes:
    """An OpenAI Chat upstream's stream of ``deltas``."""
    return OPENAI_CHAT.encoder().encode_all([Start("chatcmpl-up", "gpt-x"), *deltas])


def last_upstream_body(replay: ReplayServer) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(replay.requests[-1][3])
    return body


# --- stored responses ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_stored_response_is_retrieved_continued_listed_and_deleted(
    oai: openai.OpenAI, kind: str, stream: bool
) -> None:
    model = f"{kind}-echo"

    def create(**fields: Any) -> Any:
        if not stream:
            return oai.responses.create(model=model, **fields)
        with oai.responses.stream(model=model, **fields) as events:
            return events.get_final_response()

    first = create(input="My name is Ada", instructions="Be brief")
    assert first.id.startswith("resp_") and first.store is True
    assert first.output_text == "My name is Ada" and first.status == "completed"
    got = oai.responses.retrieve(first.id)
    assert (got.id, got.status, got.output_text) == (first.id, "completed", "My name is Ada")
    assert got.instructions is None or got.instructions == "Be brief"
    alone = create(input="What is my name?")
    second = create(input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert second.output_text == "What is my name?"  # echo answers the last user message
    # The earlier turns went upstream too: the upstream counted more prompt tokens.
    assert second.usage is not None and alone.usage is not None
    assert second.usage.input_tokens > alone.usage.input_tokens
    items = oai.responses.input_items.list(second.id, order="asc")
    texts = [c.text for item in items.data for c in getattr(item, "content", None) or []]
    assert texts == ["What is my name?"]  # its own input: the earlier turns are first's
    assert oai.responses.delete(first.id) is None
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as refused:
        create(input="And now?", previous_response_id=first.id)
    assert refused.value.body is not None
    assert refused.value.body["param"] == "previous_response_id"


def test_the_whole_conversation_goes_upstream_tool_calls_and_results_included(
    oai: openai.OpenAI, replay: ReplayServer
) -> None:
    call = [
        ToolCallStart(0, "call_w1", "get_weather"),
        ToolCallDelta(0, '{"city":"Paris"}'),
        ToolCallEnd(0),
        Usage(10, 5),
        Finish(FinishReason.TOOL_CALLS),
    ]
    replay.respond(upstream_answer(TextDelta("Let me check."), *call))
    replay.respond(upstream_answer(TextDelta("Sunny."), Usage(30, 2), Finish(FinishReason.STOP)))
    tools: list[Any] = [
        {
            "type": "function",
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    first = oai.responses.create(
        model="replayed", input="Weather in Paris?", instructions="Old rules", tools=tools
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_w1", "get_weather", '{"city":"Paris"}')
    ]
    second = oai.responses.create(
        model="replayed",
        previous_response_id=first.id,
        instructions="New rules",
        tools=tools,
        input=[{"type": "function_call_output", "call_id": "call_w1", "output": "sunny"}],
    )
    assert second.output_text == "Sunny."
    body = last_upstream_body(replay)
    assert "previous_response_id" not in body and "store" not in body  # Chat has no such
    assert body["messages"] == [
        {"role": "system", "content": "New rules"},  # instructions are not carried over
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_w1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_w1", "content": "sunny"},
    ]


def test_store_false_keeps_nothing_to_retrieve_or_continue(oai: openai.OpenAI) -> None:
    answer = oai.responses.create(model="mock-echo", input="hi", store=False)
    assert answer.store is False
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(answer.id)
    with pytest.raises(openai.BadRequestError):
        oai.responses.create(model="mock-echo", input="again", previous_response_id=answer.id)
    with pytest.raises(openai.BadRequestError) as refused:
        oai.responses.create(model="mock-echo", input="hi", store=False, background=True)
    assert refused.value.body is not None and refused.value.body["param"] == "background"


def test_another_key_finds_no_response_of_ours_anywhere(
    oai: openai.OpenAI, stranger: openai.OpenAI, gateway: str
) -> None:
    ours = oai.responses.create(model="mock-echo", input="secret plans")
    with pytest.raises(openai.NotFoundError):
        stranger.responses.retrieve(ours.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.input_items.list(ours.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.delete(ours.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.cancel(ours.id)
    with pytest.raises(openai.BadRequestError):
        stranger.responses.create(model="mock-echo", input="x", previous_response_id=ours.id)
    for method, path in (
        ("GET", ours.id),
        ("DELETE", ours.id),
        ("POST", f"{ours.id}/cancel"),
        ("GET", f"{ours.id}/input_items"),
    ):
        response = httpx.request(method, f"{gateway}/v1/responses/{path}")
        assert response.status_code == 401, (method, path)
        assert "secret" not in response.text
    assert oai.responses.retrieve(ours.id).output_text == "secret plans"  # still there


# --- background responses --------------------------------------------------------------------


def wait_for(oai: openai.OpenAI, id: str, seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while (got := oai.responses.retrieve(id)).status in ("queued", "in_progress"):
        assert time.monotonic() < deadline, got
        time.sleep(0.05)
    return got


def test_a_background_response_answers_at_once_and_runs_to_its_end(oai: openai.OpenAI) -> None:
    started = time.monotonic()
    queued = oai.responses.create(model="lorem", input="go", background=True, max_output_tokens=40)
    assert time.monotonic() - started < 0.5  # 40 tokens take 0.8 s: it did not wait
    assert queued.status in ("queued", "in_progress") and queued.background is True
    done = wait_for(oai, queued.id)
    assert done.status == "incomplete"  # lorem stops at max_output_tokens
    assert done.output_text == lorem_text(40)


def test_a_background_response_is_cancelled_a_synchronous_one_is_not(oai: openai.OpenAI) -> None:
    running = oai.responses.create(
        model="lorem", input="go", background=True, max_output_tokens=2000
    )
    time.sleep(0.3)
    cancelled = oai.responses.cancel(running.id)
    assert cancelled.status == "cancelled"
    assert lorem_text(2000).startswith(cancelled.output_text)
    assert oai.responses.retrieve(running.id).status == "cancelled"
    whole = oai.responses.create(model="mock-echo", input="hi")
    with pytest.raises(openai.BadRequestError):
        oai.responses.cancel(whole.id)


def test_a_dropped_background_stream_resumes_by_starting_after_with_no_gap(
    oai: openai.OpenAI,
) -> None:
    tokens = 120
    seen: list[Any] = []
    with oai.responses.create(
        model="lorem", input="go", stream=True, background=True, max_output_tokens=tokens
    ) as events:
        for event in events:
            seen.append(event)
            if event.type == "response.output_text.delta" and len(seen) > 12:
                break  # the connection drops mid-answer
    response_id = seen[0].response.id
    last = seen[-1].sequence_number
    time.sleep(0.5)  # the generation runs on without a reader (no grace period)
    with oai.responses.retrieve(response_id, stream=True, starting_after=last) as resumed:
        rest = list(resumed)
    events = seen + rest
    numbers = [e.sequence_number for e in events]
    # Increasing; gaps only where a reader behind merged a backlog of deltas into one
    # event, which keeps the number of the last of them.
    assert numbers[: len(seen)] == list(range(len(seen)))
    assert all(a < b for a, b in itertools.pairwise(numbers))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == lorem_text(tokens)  # no gap, no duplicate
    assert rest[-1].type == "response.incomplete"
    assert oai.responses.retrieve(response_id).output_text == text
    # Every number names the same place in the answer for every reader: resuming after
    # any event seen (merged or not) continues exactly after it.
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    for cut in (deltas[3], deltas[len(deltas) // 2], deltas[-2]):
        upto = "".join(e.delta for e in deltas if e.sequence_number <= cut.sequence_number)
        with oai.responses.retrieve(
            response_id, stream=True, starting_after=cut.sequence_number
        ) as again:
            after = "".join(e.delta for e in again if e.type == "response.output_text.delta")
        assert upto + after == text, cut.sequence_number


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("stream=true&starting_after=x", 400),
        ("stream=true&starting_after=999999", 400),
        ("stream=true&starting_after=%C2%B2", 400),  # "²": a digit to str.isdigit
        ("stream=true&starting_after=-1", 400),
        ("stream=true&starting_after=123456789012", 400),
    ],
)
def test_bad_starting_after_is_a_400(
    oai: openai.OpenAI, gateway: str, query: str, status: int
) -> None:
    answer = oai.responses.create(model="mock-echo", input="hi")
    response = httpx.get(
        f"{gateway}/v1/responses/{answer.id}?{query}",
        headers={"authorization": f"Bearer {KEY}"},
    )
    assert response.status_code == status
    assert response.json()["error"]["param"] == "starting_after"


# --- the operator's switch ---------------------------------------------------------------------


def test_store_responses_false_keeps_nothing_and_says_so(
    mock: MockServer, replay: ReplayServer
) -> None:
    app = create_app(config(mock.url, replay.url, store_responses=False))
    with run_server(app, lifespan="on") as url, openai_client(url + "/v1", KEY) as client:
        answer = client.responses.create(model="mock-echo", input="hi")
        assert answer.store is False
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(answer.id)
        for field, value in (("previous_response_id", answer.id), ("background", True)):
            with pytest.raises(openai.BadRequestError) as refused:
                client.responses.create(model="mock-echo", input="x", extra_body={field: value})
            assert refused.value.body is not None and refused.value.body["param"] == field


def test_a_conversation_over_its_limit_is_a_400_naming_it(
    mock: MockServer, replay: ReplayServer
) -> None:
    """``max_conversation_bytes`` bounds what a chain of ``previous_response_id`` keeps."""
    app = create_app(config(mock.url, replay.url, max_conversation_bytes=2000))
    with run_server(app, lifespan="on") as url, openai_client(url + "/v1", KEY) as client:
        answer = client.responses.create(model="mock-echo", input="x" * 700)
        second = client.responses.create(
            model="mock-echo", input="y" * 300, previous_response_id=answer.id
        )
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(
                model="mock-echo", input="z" * 300, previous_response_id=second.id
            )
        assert refused.value.body is not None
        assert refused.value.body["param"] == "previous_response_id"
        assert "max_conversation_bytes" in refused.value.message
        with pytest.raises(openai.BadRequestError):
            client.responses.create(model="mock-echo", input="w" * 2100)
        assert client.responses.create(model="mock-echo", input="w" * 2100, store=False)


def test_a_chain_keeps_each_turn_once_and_sends_all_of_them_upstream(
    oai: openai.OpenAI, replay: ReplayServer
) -> None:
    """Each stored turn keeps its own input and the id it continues: three turns are read
    back link by link into one conversation upstream; a link gone breaks the chain with a
    400 that says which."""
    for answer in ("A1", "A2", "A3"):
        replay.respond(upstream_answer(TextDelta(answer), Usage(5, 1), Finish(FinishReason.STOP)))
    first = oai.responses.create(model="replayed", input="Q1")
    second = oai.responses.create(model="replayed", input="Q2", previous_response_id=first.id)
    third = oai.responses.create(model="replayed", input="Q3", previous_response_id=second.id)
    assert third.output_text == "A3"
    assert [(m["role"], m["content"]) for m in last_upstream_body(replay)["messages"]] == [
        ("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("assistant", "A2"), ("user", "Q3"),
    ]  # fmt: skip
    oai.responses.delete(second.id)
    with pytest.raises(openai.BadRequestError) as broken:
        oai.responses.create(model="replayed", input="Q4", previous_response_id=third.id)
    assert second.id in broken.value.message and "no longer kept" in broken.value.message
