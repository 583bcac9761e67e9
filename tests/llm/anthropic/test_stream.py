"""The Anthropic Messages dialect's stream codec, `tokenrelay.llm.anthropic.stream`: the decoder
and the encoder over fixtures, hand-built events and random streams, and what the official
`anthropic` SDK reads.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import every_chunking
from tests.dialect_helpers import feed_all, named_events
from tests.llm.anthropic.helpers import HELLO, WRITTEN, S, check_sdk_shape
from tests.replay_server import ReplayServer
from tokenrelay.llm import (
    Choice,
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
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    accumulate,
    to_wire,
)
from tokenrelay.llm.anthropic import ANTHROPIC, PING_FRAME

pytestmark = pytest.mark.sdk

MODEL = "claude-sonnet-4-5-20250929"


SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"


EXPECTED: dict[str, list[Delta]] = {
    "anthropic_text.sse": [
        Start("msg_fx1", MODEL),
        Usage(25, 1),
        TextDelta("Hello"),
        TextDelta(" wörld 👋"),
        Usage(25, 6),
        Finish(S.STOP, "end_turn"),
    ],
    "anthropic_thinking_tool_use.sse": [
        Start("msg_fx1", MODEL),
        Usage(25, 1),
        ReasoningDelta("User wants weather; call tool."),
        ReasoningDelta("", SIGNATURE),
        TextDelta("Checking Paris."),
        ToolCallStart(0, "toolu_fx1", "get_weather"),
        ToolCallDelta(0, '{"city": "Pa'),
        ToolCallDelta(0, 'ris"}'),
        ToolCallEnd(0),
        Usage(25, 61),
        Finish(S.TOOL_CALLS, "tool_use"),
    ],
    "anthropic_error_midstream.sse": [
        Start("msg_fx1", MODEL),
        Usage(25, 1),
        TextDelta("Par"),
        StreamError(ErrorKind.OVERLOADED, "Overloaded", None, "overloaded_error"),
    ],
}


def decode(chunks: list[bytes]) -> tuple[list[Delta], bool]:
    decoder = ANTHROPIC.decoder()
    return feed_all(decoder, chunks), decoder.complete


def decode_wire(wire: bytes) -> list[Delta]:
    return decode([wire])[0]


def encode(deltas: list[Delta], request: Request | None = None) -> bytes:
    return ANTHROPIC.encoder(request).encode_all(deltas)


def sse(*objects: dict[str, Any]) -> bytes:
    """A wire stream of ``objects``, each with its type as the event name."""
    return b"".join(
        b"event: " + o["type"].encode() + b"\ndata: " + orjson.dumps(o) + b"\n\n" for o in objects
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_decodes_to_expected_deltas_at_every_chunking(name: str) -> None:
    data = (WRITTEN / name).read_bytes()
    for chunks in every_chunking(data):
        assert decode(chunks) == (EXPECTED[name], True)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_with_crlf_line_ends_decodes_the_same(name: str) -> None:
    data = (WRITTEN / name).read_bytes().replace(b"\n", b"\r\n")
    assert decode([data]) == (EXPECTED[name], True)


def test_thinking_tool_use_fixture_accumulates_to_the_whole_answer() -> None:
    deltas = EXPECTED["anthropic_thinking_tool_use.sse"]
    assert accumulate(deltas) == Completion(
        "msg_fx1",
        MODEL,
        choices=(
            Choice(
                0,
                text="Checking Paris.",
                reasoning="User wants weather; call tool.",
                reasoning_signature=SIGNATURE,
                tool_calls=(ToolCall("toolu_fx1", "get_weather", '{"city": "Paris"}'),),
                finish=Finish(S.TOOL_CALLS, "tool_use"),
            ),
        ),
        usage=Usage(25, 61),
    )


def test_stream_cut_short_is_not_complete() -> None:
    data = (WRITTEN / "anthropic_text.sse").read_bytes()
    deltas, complete = decode([data[: data.index(b"event: message_delta")]])
    assert not complete
    assert deltas == EXPECTED["anthropic_text.sse"][:4]


START = {
    "type": "message_start",
    "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": []},
}


def _block(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def _message_delta(stop_reason: str | None, **usage: Any) -> dict[str, Any]:
    delta = {"stop_reason": stop_reason, "stop_sequence": usage.pop("stop_sequence", None)}
    return {"type": "message_delta", "delta": delta, "usage": usage}


END = {"type": "message_stop"}


def test_cache_tokens_count_in_input_tokens_and_cache_reads_are_cached_tokens() -> None:
    start = {
        **START,
        "message": {
            **START["message"],
            "usage": {
                "input_tokens": 25,
                "cache_creation_input_tokens": 50,
                "cache_read_input_tokens": 100,
                "output_tokens": 1,
            },
        },
    }
    deltas = decode_wire(sse(start, _message_delta("end_turn", output_tokens=9), END))
    assert deltas[1] == Usage(175, 1, 100)
    assert deltas[2] == Usage(175, 9, 100)


def test_message_delta_usage_replaces_the_fields_it_carries() -> None:
    usage = {"input_tokens": 30, "cache_read_input_tokens": 5, "output_tokens": 40}
    details = {"output_tokens_details": {"thinking_tokens": 12}}
    deltas = decode_wire(sse(START, _message_delta("end_turn", **usage, **details), END))
    assert deltas[-2:] == [Usage(35, 40, 5, 12), Finish(S.STOP, "end_turn")]


@pytest.mark.parametrize(
    ("word", "reason"),
    [
        ("end_turn", S.STOP),
        ("max_tokens", S.LENGTH),
        ("model_context_window_exceeded", S.LENGTH),
        ("tool_use", S.TOOL_CALLS),
        ("refusal", S.CONTENT_FILTER),
        ("pause_turn", S.PAUSE),
        ("something_new", S.OTHER),
    ],
)
def test_stop_reasons_normalise_and_keep_the_raw_word(word: str, reason: FinishReason) -> None:
    deltas = decode_wire(sse(START, _message_delta(word, output_tokens=1), END))
    assert deltas[-1] == Finish(reason, word)


def test_stop_sequence_is_kept() -> None:
    wire = sse(START, _message_delta("stop_sequence", output_tokens=1, stop_sequence="###"), END)
    assert decode_wire(wire)[-1] == Finish(S.STOP, "stop_sequence", "###")


def test_message_stop_without_stop_reason_finishes_with_stop() -> None:
    deltas, complete = decode([sse(START, _message_delta(None, output_tokens=1), END)])
    assert complete and deltas[-1] == Finish(S.STOP)


def test_ping_citations_redacted_thinking_and_server_tools_are_skipped() -> None:
    wire = sse(
        START,
        {"type": "ping"},
        _block(0, {"type": "redacted_thinking", "data": "EmwKAhgB"}),
        _stop(0),
        _block(1, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search"}),
        _delta(1, {"type": "input_json_delta", "partial_json": '{"query": "x"}'}),
        _stop(1),
        _block(2, {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}),
        _stop(2),
        _block(3, {"type": "text", "text": ""}),
        _delta(3, {"type": "citations_delta", "citation": {"type": "web_search_result_location"}}),
        _delta(3, {"type": "text_delta", "text": "Found it."}),
        _stop(3),
        {"type": "some_future_event", "x": 1},
        _message_delta("end_turn", output_tokens=3),
        END,
    )
    assert decode_wire(wire) == [
        Start("msg_1", "m"),
        TextDelta("Found it."),
        Usage(0, 3),
        Finish(S.STOP, "end_turn"),
    ]


def test_tool_with_only_an_empty_fragment_has_arguments_of_an_empty_object() -> None:
    wire = sse(
        START,
        _block(0, {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}}),
        _delta(0, {"type": "input_json_delta", "partial_json": ""}),
        _stop(0),
        _message_delta("tool_use", output_tokens=3),
        END,
    )
    deltas = decode_wire(wire)
    assert deltas[1:3] == [ToolCallStart(0, "toolu_1", "now"), ToolCallEnd(0)]
    assert accumulate(deltas).choices[0].tool_calls == (ToolCall("toolu_1", "now", "{}"),)


def test_tool_calls_are_numbered_by_their_own_counter_not_the_block_index() -> None:
    wire = sse(
        START,
        _block(0, {"type": "text", "text": ""}),
        _delta(0, {"type": "text_delta", "text": "Two calls."}),
        _stop(0),
        _block(1, {"type": "tool_use", "id": "toolu_a", "name": "a", "input": {}}),
        _delta(1, {"type": "input_json_delta", "partial_json": '{"x":1}'}),
        _stop(1),
        _block(2, {"type": "tool_use", "id": "toolu_b", "name": "b", "input": {}}),
        _stop(2),
        _message_delta("tool_use", output_tokens=3),
        END,
    )
    calls = accumulate(decode_wire(wire)).choices[0].tool_calls
    assert calls == (ToolCall("toolu_a", "a", '{"x":1}'), ToolCall("toolu_b", "b", "{}"))
    starts = [d for d in decode_wire(wire) if isinstance(d, ToolCallStart)]
    assert [s.index for s in starts] == [0, 1]


def test_tool_input_given_whole_in_the_block_start_becomes_its_arguments() -> None:
    wire = sse(
        START,
        _block(0, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}),
        _stop(0),
        _message_delta("tool_use", output_tokens=3),
        END,
    )
    assert decode_wire(wire)[1:4] == [
        ToolCallStart(0, "toolu_1", "f"),
        ToolCallDelta(0, '{"a":1}'),
        ToolCallEnd(0),
    ]


def test_events_are_recognised_by_the_json_type_without_an_event_line() -> None:
    data = (WRITTEN / "anthropic_text.sse").read_bytes()
    plain = b"\n".join(line for line in data.split(b"\n") if not line.startswith(b"event:"))
    assert decode([plain]) == (EXPECTED["anthropic_text.sse"], True)


def test_content_before_message_start_gets_a_start_first() -> None:
    wire = sse(
        _block(0, {"type": "text", "text": ""}), _delta(0, {"type": "text_delta", "text": "x"})
    )
    assert decode_wire(wire) == [Start("", ""), TextDelta("x")]


def test_a_repeated_message_start_is_ignored() -> None:
    deltas = decode_wire(sse(START, START, _message_delta("end_turn", output_tokens=1), END))
    assert [type(d) for d in deltas] == [Start, Usage, Finish]


@pytest.mark.parametrize(
    ("type_", "kind"),
    [
        ("overloaded_error", ErrorKind.OVERLOADED),
        ("api_error", ErrorKind.SERVER),
        ("rate_limit_error", ErrorKind.RATE_LIMIT),
        ("invalid_request_error", ErrorKind.INVALID_REQUEST),
        ("timeout_error", ErrorKind.TIMEOUT),
        ("brand_new_error", ErrorKind.SERVER),
    ],
)
def test_error_event_ends_the_stream_with_its_kind(type_: str, kind: ErrorKind) -> None:
    error = {"type": "error", "error": {"type": type_, "message": "boom"}}
    deltas, complete = decode([sse(START, error, _message_delta("end_turn"), END)])
    assert complete
    assert deltas[1:] == [StreamError(kind, "boom", None, type_)]


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b'"a string"',
        b'{"type": "content_block_delta", "index": 0}',
        b'{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}}',
        b'{"type": "content_block_start", "index": [], "content_block": {"type": "tool_use"}}',
        b'{"type": ["list"]}',
    ],
)
def test_malformed_event_is_a_server_error_that_ends_the_stream(data: bytes) -> None:
    text = (WRITTEN / "anthropic_text.sse").read_bytes()
    head, _, tail = text.partition(b'event: ping\ndata: {"type":"ping"}\n\n')
    deltas, complete = decode(
        [head + b"event: content_block_delta\ndata: " + data + b"\n\n" + tail]
    )
    assert complete
    assert isinstance(deltas[-1], StreamError) and deltas[-1].kind == ErrorKind.SERVER
    assert "malformed" in deltas[-1].message
    assert deltas[:-1] == EXPECTED["anthropic_text.sse"][:2]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


_event_types = st.sampled_from(
    [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "error",
        "ping",
    ]
)


@given(
    st.lists(
        st.tuples(
            _event_types,
            _json,
            st.dictionaries(
                st.sampled_from(
                    ["index", "delta", "content_block", "message", "usage", "error", "type"]
                ),
                _json,
            ),
        ),
        max_size=8,
    )
)
def test_no_json_events_crash_the_decoder(items: list[tuple[str, Any, dict[str, Any]]]) -> None:
    wire = b"".join(
        b"event: "
        + t.encode()
        + b"\ndata: "
        + json.dumps({"type": t, **fields, "x": extra}).encode()
        + b"\n\n"
        for t, extra, fields in items
    )
    deltas, _ = decode([wire])
    errors = [d for d in deltas if isinstance(d, StreamError)]
    assert len(errors) <= 1 and (not errors or deltas[-1] is errors[0])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_encoding_a_decoded_fixture_gives_back_its_events(name: str) -> None:
    """Equivalent modulo what the neutral model does not carry: pings (the gateway sends
    its own) and the error's request_id."""
    data = (WRITTEN / name).read_bytes()
    original = [(n, o) for n, o in named_events(data) if n != "ping"]
    for _, obj in original:
        obj.pop("request_id", None)
    wire = encode(decode_wire(data))
    assert named_events(wire) == original
    check_sdk_shape(wire)


def test_a_block_opens_whenever_the_kind_of_content_changes() -> None:
    deltas: list[Delta] = [
        Start("msg_1", "m"),
        TextDelta("a"),
        ReasoningDelta("think"),
        ReasoningDelta("more"),
        TextDelta("b"),
        RefusalDelta("no"),
        ToolCallStart(0, "toolu_1", "f"),
        ToolCallDelta(0, '{"x":'),
        ToolCallDelta(0, "1}"),
        ToolCallEnd(0),
        ToolCallStart(1, "toolu_2", "g"),
        ToolCallEnd(1),
        TextDelta("c"),
        Finish(S.TOOL_CALLS),
    ]
    evs = check_sdk_shape(encode(deltas))
    starts = [o["content_block"] for n, o in evs if n == "content_block_start"]
    assert [b["type"] for b in starts] == [
        "text",
        "thinking",
        "text",
        "tool_use",
        "tool_use",
        "text",
    ]
    assert starts[3] == {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    fragments = [
        o["delta"]["partial_json"]
        for n, o in evs
        if o.get("delta", {}).get("type") == "input_json_delta"
    ]
    assert fragments == ["", '{"x":', "1}", ""]  # a tool without arguments sends one ""


def test_reasoning_without_signature_is_a_thinking_block_without_signature_delta() -> None:
    evs = check_sdk_shape(encode([Start("m1", "m"), ReasoningDelta("hmm"), TextDelta("hi")]))
    assert evs[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert [o["delta"]["type"] for n, o in evs if n == "content_block_delta"] == [
        "thinking_delta",
        "text_delta",
    ]


def test_thinking_after_a_signature_opens_a_new_thinking_block() -> None:
    deltas: list[Delta] = [
        Start("m1", "m"),
        ReasoningDelta("one"),
        ReasoningDelta("", "sig1"),
        ReasoningDelta("", "sig2"),  # an omitted-thinking block: signature only
        ReasoningDelta("two"),
    ]
    evs = check_sdk_shape(encode(deltas))
    blocks = [(o["index"], o["delta"]["type"]) for n, o in evs if n == "content_block_delta"]
    assert blocks == [
        (0, "thinking_delta"),
        (0, "signature_delta"),
        (1, "signature_delta"),
        (2, "thinking_delta"),
    ]


def test_content_arriving_while_a_tool_block_is_open_waits_for_its_end() -> None:
    deltas: list[Delta] = [
        Start("m1", "m"),
        ToolCallStart(0, "t0", "f"),
        ToolCallStart(1, "t1", "g"),  # an OpenAI upstream interleaves parallel calls
        ToolCallDelta(1, '{"b":2}'),
        TextDelta("between"),
        ToolCallDelta(0, '{"a":1}'),
        ToolCallEnd(0),
        ToolCallEnd(1),
        Finish(S.TOOL_CALLS),
    ]
    wire = encode(deltas)
    evs = check_sdk_shape(wire)
    assert [o["content_block"]["type"] for n, o in evs if n == "content_block_start"] == [
        "tool_use",
        "tool_use",
        "text",
    ]
    completion = accumulate(decode_wire(wire)).choices[0]
    assert completion.tool_calls == (ToolCall("t0", "f", '{"a":1}'), ToolCall("t1", "g", '{"b":2}'))
    assert completion.text == "between"


def test_usage_after_finish_goes_into_message_delta_with_the_input_tokens() -> None:
    deltas: list[Delta] = [Start("m1", "m"), TextDelta("hi"), Finish(S.STOP), Usage(120, 7, 100, 3)]
    evs = check_sdk_shape(encode(deltas))
    assert evs[0][1]["message"]["usage"] == {
        "input_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 0,
    }
    assert evs[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {
            "output_tokens": 7,
            "input_tokens": 20,
            "cache_read_input_tokens": 100,
            "output_tokens_details": {"thinking_tokens": 3},
        },
    }


def test_message_start_carries_the_usage_that_follows_start() -> None:
    evs = encode([Start("m1", "m"), Usage(130, 1, 30), TextDelta("x"), Usage(130, 5, 30)])
    first, last = named_events(evs)[0][1], named_events(evs)[-2][1]
    assert first["message"]["usage"]["input_tokens"] == 100
    assert first["message"]["usage"]["cache_read_input_tokens"] == 30
    assert last["usage"] == {"output_tokens": 5}


def test_message_start_names_the_requested_model_and_the_upstream_id() -> None:
    request = Request("claude-alias", (Message("user", (TextPart("hi"),)),))
    evs = named_events(encode([Start("chatcmpl-9", "gpt-x"), TextDelta("hi")], request))
    assert evs[0][1]["message"]["id"] == "chatcmpl-9"
    assert evs[0][1]["message"]["model"] == "claude-alias"
    assert named_events(encode([Start("a", "gpt-x")]))[0][1]["message"]["model"] == "gpt-x"


def test_only_choice_zero_is_encoded() -> None:
    deltas: list[Delta] = [
        Start("m1", "m"),
        TextDelta("zero"),
        TextDelta("one", choice=1),
        ToolCallStart(0, "t", "f", choice=1),
        Finish(S.LENGTH, choice=1),
        Finish(S.STOP),
    ]
    completion = accumulate(decode_wire(encode(deltas)))
    assert completion.choices == (Choice(0, text="zero", finish=Finish(S.STOP, "end_turn")),)


def test_refusal_is_streamed_as_text() -> None:
    deltas: list[Delta] = [Start("m1", "m"), RefusalDelta("I can't."), Finish(S.CONTENT_FILTER)]
    choice = accumulate(decode_wire(encode(deltas))).choices[0]
    assert (choice.text, choice.finish) == ("I can't.", Finish(S.CONTENT_FILTER, "refusal"))


@pytest.mark.parametrize(
    ("finish", "word", "sequence"),
    [
        (Finish(S.STOP), "end_turn", None),
        (Finish(S.STOP, "stop", "###"), "stop_sequence", "###"),
        (Finish(S.STOP, "stop_sequence", "END"), "stop_sequence", "END"),
        (Finish(S.LENGTH), "max_tokens", None),
        (Finish(S.LENGTH, "model_context_window_exceeded"), "model_context_window_exceeded", None),
        (Finish(S.LENGTH, "end_turn"), "max_tokens", None),  # raw only when it means the same
        (Finish(S.TOOL_CALLS), "tool_use", None),
        (Finish(S.CONTENT_FILTER), "refusal", None),
        (Finish(S.PAUSE), "pause_turn", None),
        (Finish(S.ERROR), "end_turn", None),
        (Finish(S.OTHER, "weird"), "end_turn", None),
        (None, "end_turn", None),
    ],
)
def test_finish_reasons_map_to_stop_reasons(
    finish: Finish | None, word: str, sequence: str | None
) -> None:
    deltas: list[Delta] = [Start("m1", "m"), TextDelta("x")] + ([finish] if finish else [])
    delta = named_events(encode(deltas))[-2][1]["delta"]
    assert delta == {"stop_reason": word, "stop_sequence": sequence}


def test_error_ends_the_stream_and_nothing_follows() -> None:
    encoder = ANTHROPIC.encoder()
    frames = encoder.encode(Start("m1", "m")) + encoder.encode(TextDelta("Par"))
    frames += encoder.encode(StreamError(ErrorKind.RATE_LIMIT, "slow down", 429))
    assert encoder.encode(TextDelta("more")) == [] and encoder.close() == []
    evs = check_sdk_shape(to_wire(frames))
    assert evs[-1] == (
        "error",
        {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}},
    )


def test_error_before_start_is_the_only_event() -> None:
    wire = encode([StreamError(ErrorKind.OVERLOADED, "busy")])
    assert named_events(wire) == [
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    ]


def test_close_is_idempotent_and_ends_an_empty_stream_validly() -> None:
    encoder = ANTHROPIC.encoder()
    frames = encoder.encode(Start("m1", "m")) + encoder.close()
    assert encoder.close() == []
    assert [n for n, _ in check_sdk_shape(to_wire(frames))] == [
        "message_start",
        "message_delta",
        "message_stop",
    ]


def test_ping_frame_is_anthropics_keep_alive() -> None:
    assert to_wire([PING_FRAME]) == b'event: ping\ndata: {"type":"ping"}\n\n'


_texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6)


@st.composite
def messy_streams(draw: Any) -> list[Delta]:
    """Streams in any order the neutral model allows: tool calls interleaved with each
    other and with text, empty deltas, usage anywhere, an error instead of a finish."""
    out: list[Delta] = [Start(draw(_texts), draw(_texts))]
    open_calls: list[int] = []
    calls = 0
    for _ in range(draw(st.integers(0, 14))):
        op = draw(
            st.sampled_from(
                ["text", "reasoning", "signature", "refusal", "call", "args", "end", "usage"]
            )
        )
        if op == "text":
            out.append(TextDelta(draw(_texts)))
        elif op == "reasoning":
            out.append(ReasoningDelta(draw(_texts)))
        elif op == "signature":
            out.append(ReasoningDelta("", draw(_texts.filter(bool))))
        elif op == "refusal":
            out.append(RefusalDelta(draw(_texts)))
        elif op == "call":
            out.append(ToolCallStart(calls, f"toolu_{calls}", draw(_texts)))
            open_calls.append(calls)
            calls += 1
        elif op == "args" and open_calls:
            out.append(
                ToolCallDelta(
                    draw(st.sampled_from(open_calls)), '"' + draw(_texts).replace('"', "") + '"'
                )
            )
        elif op == "end" and open_calls:
            index = draw(st.sampled_from(open_calls))
            open_calls.remove(index)
            out.append(ToolCallEnd(index))
        elif op == "usage":
            inputs = draw(st.integers(0, 1000))
            out.append(Usage(inputs, draw(st.integers(0, 1000)), draw(st.integers(0, inputs))))
    out += [ToolCallEnd(i) for i in open_calls]
    if draw(st.booleans()):
        out.append(StreamError(draw(st.sampled_from(list(ErrorKind))), draw(_texts)))
    else:
        sequence = draw(st.none() | _texts.filter(bool))
        out.append(Finish(draw(st.sampled_from(list(FinishReason))), stop_sequence=sequence))
        if draw(st.booleans()):
            out.append(Usage(draw(st.integers(0, 9)), draw(st.integers(0, 9))))
    return out


@given(messy_streams())
def test_any_valid_stream_survives_encode_then_decode(deltas: list[Delta]) -> None:
    # Arguments here are JSON strings split anywhere: they are compared as text.
    wire = encode(deltas)
    check_sdk_shape(wire)
    got = accumulate(decode_wire(wire))
    want = accumulate([TextDelta(d.text) if isinstance(d, RefusalDelta) else d for d in deltas])
    g, w = got.choices[0], want.choices[0]
    assert (g.text, g.reasoning, g.reasoning_signature) == (
        w.text,
        w.reasoning,
        w.reasoning_signature,
    )
    assert g.tool_calls == w.tool_calls
    if want.error is not None:
        assert got.error is not None and got.error.kind == want.error.kind
        assert got.error.message == (want.error.message or got.error.raw_type)
        return
    assert w.finish is not None and g.finish is not None
    assert g.finish.reason == (S.STOP if w.finish.reason in (S.ERROR, S.OTHER) else w.finish.reason)
    if w.finish.reason == S.STOP and w.finish.stop_sequence is not None:
        assert g.finish.stop_sequence == w.finish.stop_sequence
    assert got.usage is not None
    usage = want.usage or Usage()
    assert got.usage == Usage(usage.input_tokens, usage.output_tokens, usage.cached_tokens)


def sdk_stream(server: ReplayServer, client: anthropic.Anthropic, deltas: list[Delta]) -> Any:
    wire = encode(deltas)
    check_sdk_shape(wire)
    server.respond(wire)
    with client.messages.stream(model="claude-test", max_tokens=256, messages=HELLO) as stream:
        return stream.get_final_message()


def test_sdk_stream_reads_reasoning_text_tool_calls_and_late_usage(
    server: ReplayServer, client: anthropic.Anthropic
) -> None:
    deltas: list[Delta] = [
        Start("msg_1", "upstream-model"),
        ReasoningDelta("Let me"),
        ReasoningDelta(" think."),
        ReasoningDelta("", "c2lnbmF0dXJl"),
        TextDelta("Calling "),
        TextDelta("tools."),
        ToolCallStart(0, "toolu_a", "get_weather"),
        ToolCallDelta(0, '{"city":'),
        ToolCallDelta(0, ' "Paris"}'),
        ToolCallEnd(0),
        ToolCallStart(1, "toolu_b", "now"),
        ToolCallEnd(1),
        ToolCallStart(2, "toolu_c", "add"),
        ToolCallDelta(2, '{"a": 1, "b": 2}'),
        ToolCallEnd(2),
        Finish(S.TOOL_CALLS),
        Usage(1200, 77, 1000, 20),  # OpenAI-style: usage after the finish
    ]
    message = sdk_stream(server, client, deltas)
    assert (message.id, message.model, message.role) == ("msg_1", "upstream-model", "assistant")
    assert [b.type for b in message.content] == [
        "thinking",
        "text",
        "tool_use",
        "tool_use",
        "tool_use",
    ]
    assert (message.content[0].thinking, message.content[0].signature) == (
        "Let me think.",
        "c2lnbmF0dXJl",
    )
    assert message.content[1].text == "Calling tools."
    calls = [(b.id, b.name, b.input) for b in message.content[2:]]
    assert calls == [
        ("toolu_a", "get_weather", {"city": "Paris"}),
        ("toolu_b", "now", {}),
        ("toolu_c", "add", {"a": 1, "b": 2}),
    ]
    assert (message.stop_reason, message.stop_sequence) == ("tool_use", None)
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (
        200,
        1000,
        77,
    )
    assert usage.output_tokens_details.thinking_tokens == 20
    method, path, _, body = server.requests[-1]
    assert (method, path) == ("POST", "/v1/messages")
    assert ANTHROPIC.parse_request(body) == Request(
        "claude-test",
        (Message("user", (TextPart("hi"),)),),
        stream=True,
        max_tokens=256,
        include_usage=True,
        dialect="anthropic",
    )


@pytest.mark.parametrize(
    ("finish", "stop_reason", "stop_sequence"),
    [
        (Finish(S.STOP), "end_turn", None),
        (Finish(S.STOP, stop_sequence="###"), "stop_sequence", "###"),
        (Finish(S.LENGTH), "max_tokens", None),
        (Finish(S.TOOL_CALLS), "tool_use", None),
        (Finish(S.CONTENT_FILTER), "refusal", None),
        (Finish(S.PAUSE), "pause_turn", None),
        (Finish(S.ERROR), "end_turn", None),
    ],
)
def test_sdk_stream_reads_each_stop_reason(
    server: ReplayServer,
    client: anthropic.Anthropic,
    finish: Finish,
    stop_reason: str,
    stop_sequence: str | None,
) -> None:
    deltas: list[Delta] = [Start("msg_1", "m"), Usage(10, 1), TextDelta("ok"), finish, Usage(10, 2)]
    message = sdk_stream(server, client, deltas)
    assert (message.stop_reason, message.stop_sequence) == (stop_reason, stop_sequence)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 2)
    assert message.content[0].text == "ok"


def test_sdk_stream_shows_unsigned_reasoning_and_refusal_text(
    server: ReplayServer, client: anthropic.Anthropic
) -> None:
    deltas: list[Delta] = [
        Start("msg_1", "m"),
        ReasoningDelta("hmm"),
        RefusalDelta("No."),
        Finish(S.CONTENT_FILTER),
    ]
    message = sdk_stream(server, client, deltas)
    assert (message.content[0].thinking, message.content[0].signature) == ("hmm", "")
    assert message.content[1].text == "No."
    assert message.stop_reason == "refusal"


def test_sdk_stream_raises_on_a_mid_stream_error(
    server: ReplayServer, client: anthropic.Anthropic
) -> None:
    deltas: list[Delta] = [
        Start("msg_1", "m"),
        TextDelta("Par"),
        StreamError(ErrorKind.OVERLOADED, "Overloaded"),
    ]
    server.respond(encode(deltas))
    with pytest.raises(anthropic.APIStatusError) as info:
        with client.messages.stream(model="m", max_tokens=9, messages=HELLO) as stream:
            stream.get_final_message()
    # The stream's status was 200, so the SDK raises the base class, with our body.
    assert type(info.value) is anthropic.APIStatusError
    assert info.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
