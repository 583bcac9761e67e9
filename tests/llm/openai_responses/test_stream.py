"""The OpenAI Responses dialect's stream codec, `tokenrelay.llm.openai_responses.stream`: the
decoder and the encoder over fixtures, hand-built events and random streams, and what the
official `openai` SDK reads.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES, byte_by_byte, halves, random_splits
from tests.dialect_helpers import feed_all, named_events
from tests.llm.openai_responses.helpers import encode, rich_stream
from tests.replay_server import ReplayServer
from tokenrelay.llm import (
    Completion,
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    Message,
    ReasoningDelta,
    RefusalDelta,
    Request,
    Start,
    StreamError,
    TextDelta,
    TextPart,
    Tool,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolChoice,
    Usage,
    accumulate,
)
from tokenrelay.llm.jsonio import dumps
from tokenrelay.llm.openai_responses import OPENAI_RESPONSES

pytestmark = pytest.mark.sdk

WRITTEN = FIXTURES / "written"


MODEL = "gpt-4.1-2025-04-14"


START = Start("resp_fx1", MODEL, 1741290958)


def decode(chunks: list[bytes]) -> tuple[list[Delta], bool]:
    decoder = OPENAI_RESPONSES.decoder()
    return feed_all(decoder, chunks), decoder.complete


def sse(*events: dict[str, Any]) -> bytes:
    """A Responses stream of ``events`` (sequence numbers added)."""
    out = b""
    for seq, event in enumerate(events):
        out += b"event: %s\ndata: %s\n\n" % (
            event["type"].encode(),
            dumps({**event, "sequence_number": seq}),
        )
    return out


def response(status: str = "in_progress", **fields: Any) -> dict[str, Any]:
    return {
        "id": "resp_x",
        "object": "response",
        "created_at": 1700000000,
        "model": "m",
        "status": status,
        "output": [],
        "usage": None,
        **fields,
    }


CREATED = {"type": "response.created", "response": response()}


EXPECTED: dict[str, list[Delta]] = {
    "openai_responses_text.sse": [
        START,
        TextDelta("Hi"),
        TextDelta(" there!"),
        Usage(input_tokens=12, output_tokens=3),
        Finish(FinishReason.STOP),
    ],
    "openai_responses_function_call.sse": [
        START,
        ToolCallStart(0, "call_fx1", "get_weather"),
        ToolCallDelta(0, '{"city":'),
        ToolCallDelta(0, '"Paris"}'),
        ToolCallEnd(0),
        Usage(input_tokens=12, output_tokens=3),
        Finish(FinishReason.TOOL_CALLS),
    ],
    "openai_responses_error.sse": [
        START,
        StreamError(
            ErrorKind.SERVER, "The model failed to generate a response.", None, "server_error"
        ),
    ],
}


FIXTURE_NAMES = sorted(EXPECTED)


def fixture_bytes(name: str) -> bytes:
    return (WRITTEN / name).read_bytes()


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_decodes_whole_and_byte_by_byte(name: str) -> None:
    data = fixture_bytes(name)
    assert decode([data]) == (EXPECTED[name], True)
    assert decode(byte_by_byte(data)) == (EXPECTED[name], True)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_decodes_split_in_two_at_every_byte(name: str) -> None:
    data = fixture_bytes(name)
    for cut, chunks in halves(data):
        assert decode(chunks) == (EXPECTED[name], True), cut


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_decodes_at_random_splits(name: str) -> None:
    data = fixture_bytes(name)
    for seed in range(3):
        for chunks in random_splits(data, seed):
            assert decode(chunks) == (EXPECTED[name], True)


def test_fixture_accumulates_to_the_whole_answer() -> None:
    text = accumulate(EXPECTED["openai_responses_text.sse"])
    assert (text.id, text.model, text.choices[0].text) == ("resp_fx1", MODEL, "Hi there!")
    calls = accumulate(EXPECTED["openai_responses_function_call.sse"]).choices[0].tool_calls
    assert [(c.id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("call_fx1", "get_weather", {"city": "Paris"})
    ]


def test_crlf_line_endings_decode_alike() -> None:
    data = fixture_bytes("openai_responses_text.sse").replace(b"\n", b"\r\n")
    assert decode([data]) == (EXPECTED["openai_responses_text.sse"], True)


def test_done_marker_added_by_a_proxy_is_ignored_even_without_a_blank_line() -> None:
    data = fixture_bytes("openai_responses_text.sse")
    assert decode([data + b"data: [DONE]"]) == (EXPECTED["openai_responses_text.sse"], True)
    body = data[: data.index(b"event: response.completed")] + b"data: [DONE]\n\n"
    assert decode([body])[0] == EXPECTED["openai_responses_text.sse"][:3]


def test_a_bare_error_object_inside_the_stream_is_an_error() -> None:
    wire = sse(CREATED) + b'data: {"error": {"message": "quota", "type": "insufficient_quota"}}\n\n'
    deltas, complete = decode([wire])
    assert complete
    assert deltas[1:] == [StreamError(ErrorKind.RATE_LIMIT, "quota", None, "insufficient_quota")]


def test_stream_cut_short_is_not_complete() -> None:
    data = fixture_bytes("openai_responses_text.sse")
    deltas, complete = decode([data[: data.index(b"event: response.completed")]])
    assert not complete
    assert deltas == EXPECTED["openai_responses_text.sse"][:3]


def test_summary_parts_join_with_a_blank_line_and_encrypted_content_is_the_signature() -> None:
    item = {"id": "rs_1", "type": "reasoning", "summary": []}
    done = {**item, "encrypted_content": "gAAA=="}
    wire = sse(
        CREATED,
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        *(
            {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1",
             "output_index": 0, "summary_index": i, "delta": d}
            for i, d in [(0, "First"), (0, " part."), (1, "Second.")]
        ),
        {"type": "response.output_item.done", "output_index": 0, "item": done},
        {"type": "response.completed", "response": response("completed", output=[done])},
    )  # fmt: skip
    deltas, _ = decode([wire])
    assert deltas[1:4] == [
        ReasoningDelta("First"),
        ReasoningDelta(" part."),
        ReasoningDelta("\n\nSecond."),
    ]
    choice = accumulate(deltas).choices[0]
    assert (choice.reasoning, choice.reasoning_signature) == ("First part.\n\nSecond.", "gAAA==")


def test_raw_reasoning_wins_over_a_summary_of_the_same_item() -> None:
    base = {"item_id": "rs_1", "output_index": 0}
    wire = sse(
        CREATED,
        {"type": "response.reasoning_text.delta", **base, "content_index": 0, "delta": "raw"},
        {"type": "response.reasoning_summary_text.delta", **base, "summary_index": 0,
         "delta": "summary"},
        {"type": "response.reasoning_text.delta", **base, "content_index": 0, "delta": " more"},
    )  # fmt: skip
    deltas, _ = decode([wire])
    assert deltas == [
        Start("resp_x", "m", 1700000000),
        ReasoningDelta("raw"),
        ReasoningDelta(" more"),
    ]


def test_refusal_deltas_become_refusal() -> None:
    wire = sse(
        CREATED,
        {"type": "response.refusal.delta", "item_id": "m", "output_index": 0,
         "content_index": 0, "delta": "I can't"},
    )  # fmt: skip
    assert decode([wire])[0][1:] == [RefusalDelta("I can't")]


@pytest.mark.parametrize("where", ["arguments.done", "output_item.done"])
def test_function_arguments_never_streamed_come_from_the_done_event(where: str) -> None:
    item = {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f",
            "arguments": "", "status": "in_progress"}  # fmt: skip
    done = {**item, "arguments": '{"a":1}', "status": "completed"}
    events: list[dict[str, Any]] = [
        CREATED,
        {"type": "response.output_item.added", "output_index": 0, "item": item},
    ]
    if where == "arguments.done":
        events.append(
            {"type": "response.function_call_arguments.done", "item_id": "fc_1",
             "output_index": 0, "arguments": '{"a":1}'}
        )  # fmt: skip
    events.append({"type": "response.output_item.done", "output_index": 0, "item": done})
    deltas, _ = decode([sse(*events)])
    assert deltas[1:] == [
        ToolCallStart(0, "call_1", "f"),
        ToolCallDelta(0, '{"a":1}'),
        ToolCallEnd(0),
    ]


def test_a_response_sent_only_whole_at_the_end_is_replayed() -> None:
    output = [
        {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "hm"}]},
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Hello"}]},
        {"id": "fc_1", "type": "function_call", "call_id": "call_1", "name": "f",
         "arguments": "{}"},
    ]  # fmt: skip
    usage = {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 4},
             "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 2}}  # fmt: skip
    wire = sse(
        CREATED,
        {
            "type": "response.completed",
            "response": response("completed", output=output, usage=usage),
        },
    )
    deltas, complete = decode([wire])
    assert complete
    assert deltas[1:] == [
        ReasoningDelta("hm"),
        TextDelta("Hello"),
        ToolCallStart(0, "call_1", "f"),
        ToolCallDelta(0, "{}"),
        ToolCallEnd(0),
        Usage(input_tokens=9, output_tokens=7, cached_tokens=4, reasoning_tokens=2),
        Finish(FinishReason.TOOL_CALLS),
    ]


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("max_output_tokens", Finish(FinishReason.LENGTH, "max_output_tokens")),
        ("content_filter", Finish(FinishReason.CONTENT_FILTER, "content_filter")),
        ("max_messages", Finish(FinishReason.OTHER, "max_messages")),
    ],
)
def test_incomplete_response_finishes_with_its_reason(reason: str, finish: Finish) -> None:
    done = response("incomplete", incomplete_details={"reason": reason})
    deltas, complete = decode([sse(CREATED, {"type": "response.incomplete", "response": done})])
    assert complete and deltas[-1] == finish


def test_response_failed_alone_is_one_error() -> None:
    failed = response("failed", error={"code": "rate_limit_exceeded", "message": "slow"})
    wire = sse(CREATED, {"type": "response.failed", "response": failed})
    deltas, complete = decode([wire])
    assert complete
    assert deltas[1:] == [StreamError(ErrorKind.RATE_LIMIT, "slow", None, "rate_limit_exceeded")]


def test_response_failed_alone_tells_its_usage_before_its_error() -> None:
    failed = response(
        "failed",
        error={"code": "server_error", "message": "broke"},
        usage={"input_tokens": 7, "output_tokens": 2, "total_tokens": 9},
    )
    deltas, complete = decode([sse(CREATED, {"type": "response.failed", "response": failed})])
    assert complete
    assert deltas[1:] == [
        Usage(input_tokens=7, output_tokens=2),
        StreamError(ErrorKind.SERVER, "broke", None, "server_error"),
    ]


def test_an_error_event_keeps_the_usage_of_the_response_failed_after_it() -> None:
    error = {"type": "error", "code": "server_error", "message": "broke", "param": None}
    failed = response(
        "failed",
        error={"code": "server_error", "message": "the response failed"},
        usage={"input_tokens": 7, "output_tokens": 2, "total_tokens": 9},
    )
    text = {"type": "response.output_text.delta", "delta": "Hi", "output_index": 0}
    wire = sse(CREATED, text, error, {"type": "response.failed", "response": failed})
    for chunks in ([wire], byte_by_byte(wire)):
        deltas, complete = decode(chunks)
        assert complete
        assert deltas[1:] == [
            TextDelta("Hi"),
            Usage(input_tokens=7, output_tokens=2),
            StreamError(ErrorKind.SERVER, "broke", None, "server_error"),  # the error event's
        ]


def test_an_error_event_that_ends_the_stream_is_told_at_its_end() -> None:
    error = {"type": "error", "code": "rate_limit_exceeded", "message": "slow", "param": None}
    deltas, complete = decode([sse(CREATED, error)])
    assert complete
    assert deltas[1:] == [StreamError(ErrorKind.RATE_LIMIT, "slow", None, "rate_limit_exceeded")]
    # ... and anything but response.failed after it tells it too, and counts for nothing
    late = {"type": "response.output_text.delta", "delta": "late", "output_index": 0}
    deltas, _ = decode([sse(CREATED, error, late)])
    assert deltas[1:] == [StreamError(ErrorKind.RATE_LIMIT, "slow", None, "rate_limit_exceeded")]


def test_usage_before_an_error_survives_encode_then_decode() -> None:
    deltas = [START, TextDelta("Hi"), Usage(input_tokens=5, output_tokens=1),
              StreamError(ErrorKind.SERVER, "broke")]  # fmt: skip
    decoded, complete = decode([encode(deltas)])
    assert complete
    error = StreamError(ErrorKind.SERVER, "broke", None, "server_error")
    assert decoded[-2:] == [Usage(input_tokens=5, output_tokens=1), error]


def test_error_event_with_a_nested_error_object_is_read() -> None:
    error = {"type": "error", "error": {"type": "invalid_request_error", "code": None,
                                        "message": "bad"}}  # fmt: skip
    deltas, complete = decode([sse(CREATED, error)])
    assert complete
    assert deltas[1:] == [
        StreamError(ErrorKind.INVALID_REQUEST, "bad", None, "invalid_request_error")
    ]


def test_malformed_json_gives_a_server_error_and_ends_decoding() -> None:
    wire = sse(CREATED) + b"event: response.output_text.delta\ndata: {not json\n\n"
    wire += sse({"type": "response.output_text.delta", "delta": "late", "output_index": 0})
    deltas, complete = decode([wire])
    assert len(deltas) == 2 and isinstance(deltas[1], StreamError)
    assert deltas[1].kind is ErrorKind.SERVER and "malformed" in deltas[1].message
    assert not complete


def test_unknown_events_and_keep_alives_are_ignored() -> None:
    wire = sse(CREATED, {"type": "response.web_search_call.searching", "output_index": 0})
    wire += b": ping\n\n"
    assert decode([wire])[0] == [Start("resp_x", "m", 1700000000)]


def test_content_before_any_lifecycle_event_still_opens_with_start() -> None:
    wire = sse({"type": "response.output_text.delta", "output_index": 0, "delta": "x"})
    assert decode([wire])[0] == [Start("", ""), TextDelta("x")]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(
            ["type", "id", "call_id", "name", "arguments", "delta", "output_index", "item",
             "item_id", "response", "output", "status", "usage", "error", "content", "text",
             "summary", "summary_index", "encrypted_content", "incomplete_details", "reason",
             "input_tokens", "input_tokens_details", "code", "message", "created_at", "model"]
        ),
        inner,
        max_size=6,
    ),
    max_leaves=20,
)  # fmt: skip


EVENT_TYPES = [
    "response.created", "response.in_progress", "response.output_text.delta",
    "response.refusal.delta", "response.reasoning_text.delta",
    "response.reasoning_summary_text.delta", "response.output_item.added",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.output_item.done", "response.completed", "response.incomplete",
    "response.failed", "error", "message",
]  # fmt: skip


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.sampled_from(EVENT_TYPES), st.dictionaries(st.text(max_size=3), json_values)),
        max_size=8,
    )
)
def test_no_event_content_crashes_the_decoder(events: list[tuple[str, dict[str, Any]]]) -> None:
    decoder = OPENAI_RESPONSES.decoder()
    for type_, body in events:
        data = json.dumps({**body, "type": type_}).encode()
        decoder.feed(b"event: %s\ndata: %s\n\n" % (type_.encode(), data))
    decoder.close()


# The neutral model does not carry the item ids (the encoder derives its own), the request
# settings echoed in the response object (temperature, tools, store...), logprobs,
# annotations or cache writes; and this encoder always sends response.in_progress.
CARRIED = {"id", "object", "created_at", "status", "model", "output", "usage", "error",
           "incomplete_details"}  # fmt: skip


ITEM_TYPES = {"message", "function_call", "reasoning"}


def normalise(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            value = {k: walk(v, k) for k, v in value.items()}
            if value.get("type") in ITEM_TYPES and "id" in value:
                value["id"] = names.setdefault(value["id"], f"item{len(names)}")
            if "item_id" in value:
                value["item_id"] = names.setdefault(value["item_id"], f"item{len(names)}")
            value.get("input_tokens_details", {}).pop("cache_write_tokens", None)
            if key == "response":
                value = {k: v for k, v in value.items() if k in CARRIED}
            return value
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    out = []
    for name, data in events:
        assert name == data["type"]
        if name != "response.in_progress":
            out.append(walk({k: v for k, v in data.items() if k != "sequence_number"}))
    return out


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_encoding_a_decoded_fixture_gives_the_fixture_back(name: str) -> None:
    original = named_events(fixture_bytes(name))
    deltas, _ = decode([fixture_bytes(name)])
    encoded = named_events(encode(deltas))
    assert normalise(encoded) == normalise(original)


RICH_TYPES = [
    "response.created", "response.in_progress",
    "response.output_item.added", "response.content_part.added",
    "response.reasoning_text.delta", "response.reasoning_text.delta",
    "response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
    "response.output_item.added", "response.content_part.added",
    "response.output_text.delta", "response.output_text.delta",
    "response.output_text.done", "response.content_part.done", "response.output_item.done",
    "response.output_item.added", "response.function_call_arguments.delta",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.output_item.done",
    "response.output_item.added", "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]  # fmt: skip


def test_every_event_is_named_numbered_from_zero_and_the_stream_ends_completed() -> None:
    events = named_events(encode(rich_stream()))
    assert [name for name, _ in events] == RICH_TYPES
    assert all(name == data["type"] for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))


def test_completed_response_holds_the_whole_output_and_the_late_usage() -> None:
    final = named_events(encode(rich_stream()))[-1][1]["response"]
    assert final["status"] == "completed"
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 5
    assert [item["type"] for item in final["output"]] == [
        "reasoning", "message", "function_call", "function_call"
    ]  # fmt: skip
    assert [item["id"] for item in final["output"]] == ["rs_t1_0", "msg_t1_1", "fc_t1_2", "fc_t1_3"]
    assert final["output"][3]["arguments"] == "{}"


def test_encoder_reports_the_requested_model_and_settings() -> None:
    request = Request("gpt-5", (Message("user", (TextPart("hi"),)),), temperature=0.2,
                      tools=(Tool("f"),), tool_choice=ToolChoice("required"))  # fmt: skip
    created = named_events(encode(rich_stream(), request))[0][1]["response"]
    assert (created["model"], created["temperature"], created["tool_choice"]) == (
        "gpt-5", 0.2, "required"
    )  # fmt: skip
    assert created["tools"][0]["name"] == "f"


def test_close_is_idempotent_and_nothing_follows_an_error() -> None:
    encoder = OPENAI_RESPONSES.encoder()
    encoder.encode(Start("resp_e", "m"))
    frames = encoder.encode(StreamError(ErrorKind.SERVER, "boom"))
    assert [f.event for f in frames] == ["error", "response.failed"]
    assert encoder.encode(TextDelta("late")) == [] and encoder.close() == []
    encoder = OPENAI_RESPONSES.encoder()
    assert encoder.encode_all([Start("resp_e", "m")])
    assert encoder.close() == []


def test_an_error_before_start_still_opens_the_response() -> None:
    events = named_events(encode([StreamError(ErrorKind.OVERLOADED, "busy")]))
    assert [name for name, _ in events] == [
        "response.created", "response.in_progress", "error", "response.failed"
    ]  # fmt: skip


def test_text_and_refusal_share_one_message_as_two_parts() -> None:
    deltas: list[Delta] = [
        Start("resp_r", "m"),
        TextDelta("Sorry: "),
        RefusalDelta("no."),
        Finish(FinishReason.STOP),
    ]
    final = named_events(encode(deltas))[-1][1]["response"]
    assert final["output"][0]["content"][1] == {"type": "refusal", "refusal": "no."}
    assert len(final["output"]) == 1


def test_other_choices_are_dropped() -> None:
    deltas: list[Delta] = [Start("resp_c", "m"), TextDelta("a"), TextDelta("b", choice=1)]
    assert accumulate(decode([encode(deltas)])[0]).choices[0].text == "a"


def test_sdk_stream_helper_reads_reasoning_text_calls_and_usage(
    server: ReplayServer, sdk: openai.OpenAI
) -> None:
    server.respond(encode(rich_stream()))
    with sdk.responses.stream(model="gpt-test", input="hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert server.requests[-1][1] == "/v1/responses"
    assert [e.type for e in events] == RICH_TYPES
    text_deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert text_deltas[-1].snapshot == "Hello, world"
    assert final.output_text == "Hello, world"
    reasoning, message, call_a, call_b = final.output
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert reasoning.content[0].text == "Let me think."
    assert reasoning.encrypted_content == "enc=="
    assert message.type == "message"
    assert call_a.type == "function_call" and call_b.type == "function_call"
    assert (call_a.call_id, call_a.name, json.loads(call_a.arguments)) == (
        "call_a", "get_weather", {"city": "Paris"}
    )  # fmt: skip
    assert (call_b.call_id, call_b.arguments) == ("call_b", "{}")
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (
        20, 10, 30
    )  # fmt: skip
    assert final.usage.input_tokens_details.cached_tokens == 5
    assert final.usage.output_tokens_details.reasoning_tokens == 3
    assert (final.id, final.status) == ("resp_t1", "completed")


def test_sdk_create_stream_iterates_raw_events(server: ReplayServer, sdk: openai.OpenAI) -> None:
    server.respond(encode(rich_stream()))
    events = list(sdk.responses.create(model="gpt-test", input="hi", stream=True))
    assert [e.type for e in events] == RICH_TYPES
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Hello, world"


def test_sdk_async_stream_helper_reads_the_final_response(server: ReplayServer) -> None:
    server.respond(encode(rich_stream()))

    async def run() -> str:
        async with openai.AsyncOpenAI(
            base_url=server.url + "/v1", api_key="x", max_retries=0
        ) as aclient:
            async with aclient.responses.stream(model="gpt-test", input="hi") as stream:
                return (await stream.get_final_response()).output_text

    assert asyncio.run(run()) == "Hello, world"


@pytest.mark.parametrize("reason", [FinishReason.STOP, FinishReason.TOOL_CALLS, FinishReason.PAUSE])
def test_sdk_sees_a_completed_response(
    server: ReplayServer, sdk: openai.OpenAI, reason: FinishReason
) -> None:
    server.respond(encode(rich_stream(reason)))
    with sdk.responses.stream(model="gpt-test", input="hi") as stream:
        assert stream.get_final_response().status == "completed"


@pytest.mark.parametrize(
    ("reason", "word"),
    [(FinishReason.LENGTH, "max_output_tokens"), (FinishReason.CONTENT_FILTER, "content_filter")],
)
def test_sdk_sees_an_incomplete_response_with_its_reason(
    server: ReplayServer, sdk: openai.OpenAI, reason: FinishReason, word: str
) -> None:
    deltas: list[Delta] = [Start("resp_i", "m"), TextDelta("cut"), Finish(reason), Usage(3, 4)]
    server.respond(encode(deltas))
    with sdk.responses.stream(model="gpt-test", input="hi") as stream:
        events = list(stream)
        # the SDK has a final response only for response.completed, as with OpenAI itself
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == word
    assert last.response.output_text == "cut"
    assert last.response.output[0].status == "incomplete"  # type: ignore[union-attr]
    assert last.response.usage is not None and last.response.usage.output_tokens == 4


def test_sdk_surfaces_a_midstream_error_as_error_and_failed_events(
    server: ReplayServer, sdk: openai.OpenAI
) -> None:
    # The openai SDK does not raise for the Responses error events: it yields them, and
    # get_final_response() raises because no response.completed came.
    deltas: list[Delta] = [
        Start("resp_f", "m"),
        TextDelta("partial"),
        StreamError(ErrorKind.RATE_LIMIT, "slow down"),
    ]
    server.respond(encode(deltas))
    with sdk.responses.stream(model="gpt-test", input="hi") as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()
    error, failed = events[-2:]
    assert error.type == "error" and failed.type == "response.failed"
    assert (error.code, error.message) == ("rate_limit_exceeded", "slow down")
    assert failed.response.error is not None
    assert failed.response.error.code == "rate_limit_exceeded"
    assert failed.response.output_text == "partial"

    server.respond(encode(deltas))
    raw = list(sdk.responses.create(model="gpt-test", input="hi", stream=True))
    assert [e.type for e in raw[-2:]] == ["error", "response.failed"]


small_text = st.text(max_size=6)


@st.composite
def neutral_streams(draw: st.DrawFn) -> list[Delta]:
    head: list[Delta] = [Start("resp_h", "model-h", 7)]
    tails: list[Delta] = []  # tool calls left open, finished after everything else
    calls = 0
    for kind in draw(
        st.lists(st.sampled_from(["text", "refusal", "reasoning", "tool"]), max_size=7)
    ):
        if kind == "text":
            head += [TextDelta(t) for t in draw(st.lists(small_text, min_size=1, max_size=3))]
        elif kind == "refusal":
            head += [RefusalDelta(t) for t in draw(st.lists(small_text, min_size=1, max_size=2))]
        elif kind == "reasoning":
            head += [ReasoningDelta(t) for t in draw(st.lists(small_text, max_size=3))]
            if draw(st.booleans()):
                head.append(ReasoningDelta("", draw(st.text(min_size=1, max_size=4))))
        else:
            index, calls = calls, calls + 1
            name = draw(st.text("abcxyz_", min_size=1, max_size=5))
            args = [ToolCallDelta(index, a) for a in draw(st.lists(small_text, max_size=3))]
            cut = draw(st.integers(0, len(args)))
            later = draw(st.booleans())
            head += [ToolCallStart(index, f"call_{index}", name), *args[:cut]]
            (tails if later else head).extend([*args[cut:], ToolCallEnd(index)])
    end: list[Delta] = []
    usage = Usage(*draw(st.tuples(*[st.integers(0, 10**6)] * 4)))
    if draw(st.booleans()):
        end.append(StreamError(draw(st.sampled_from(list(ErrorKind))), draw(small_text)))
        if draw(st.booleans()):
            end.insert(0, usage)  # told before the error, carried by response.failed
    else:
        reasons = [FinishReason.STOP, FinishReason.TOOL_CALLS, FinishReason.LENGTH,
                   FinishReason.CONTENT_FILTER]  # fmt: skip
        end.append(Finish(draw(st.sampled_from(reasons))))
        if draw(st.booleans()):
            end.insert(draw(st.integers(0, 1)), usage)
    return head + tails + end


def expected_after_round_trip(completion: Completion) -> Completion:
    """What the dialect keeps: no Finish.raw, STOP/TOOL_CALLS by whether calls were made,
    and on error the error's message (its kind only as far as the dialect's codes tell).
    A reasoning signature travels in ``output_item.done``: on error it may be lost with
    the item that was still open, so it is not compared then."""
    choice = completion.choices[0]
    if completion.error is not None:
        kinds = {ErrorKind.RATE_LIMIT: ErrorKind.RATE_LIMIT,
                 ErrorKind.INVALID_REQUEST: ErrorKind.INVALID_REQUEST,
                 ErrorKind.REQUEST_TOO_LARGE: ErrorKind.INVALID_REQUEST}  # fmt: skip
        error = StreamError(
            kinds.get(completion.error.kind, ErrorKind.SERVER), completion.error.message
        )
        choice = replace(choice, finish=None, reasoning_signature="")
        return replace(completion, error=error, choices=(choice,))
    assert choice.finish is not None
    reason = choice.finish.reason
    if reason in (FinishReason.STOP, FinishReason.TOOL_CALLS):
        reason = FinishReason.TOOL_CALLS if choice.tool_calls else FinishReason.STOP
    return replace(completion, choices=(replace(choice, finish=Finish(reason)),))


def comparable(completion: Completion) -> Completion:
    error = completion.error
    choice = completion.choices[0]
    finish = choice.finish and Finish(choice.finish.reason)
    signature = "" if error else choice.reasoning_signature
    return replace(
        completion,
        error=error and StreamError(error.kind, error.message),
        choices=(replace(choice, finish=finish, reasoning_signature=signature),),
    )


@settings(max_examples=200)
@given(neutral_streams(), st.integers(1, 64))
def test_random_streams_survive_encode_then_decode(deltas: list[Delta], chunk: int) -> None:
    wire = encode(deltas)
    decoded, complete = decode([wire[i : i + chunk] for i in range(0, len(wire), chunk)])
    assert complete
    assert comparable(accumulate(decoded)) == expected_after_round_trip(accumulate(deltas))
