"""The Ollama dialect's stream codec, `tokenrelay.llm.ollama.stream`: the decoder and the encoder
over fixtures, hand-built events and random streams.
"""

from __future__ import annotations

import json
from dataclasses import replace

import orjson
import pytest
from hypothesis import given

from tests.conftest import FIXTURES, byte_by_byte, halves, random_splits
from tests.dialect_helpers import feed_all
from tests.llm.ollama.helpers import EXPECTED, NS
from tests.neutral_streams import CARRIES, streams
from tests.replay_server import replay_server
from tokenrelay.llm import (
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    Start,
    StreamError,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    accumulate,
)
from tokenrelay.llm.ollama import OLLAMA, OllamaDecoder, format_time, parse_time

FIXTURE = (FIXTURES / "written" / "ollama_chat.ndjson").read_bytes()


def decode(chunks: list[bytes]) -> tuple[list[Delta], OllamaDecoder]:
    decoder = OLLAMA.decoder()
    return feed_all(decoder, chunks), decoder


def lines(wire: bytes) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in wire.splitlines()]


def ndjson(*objects: object) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objects)


def test_fixture_decodes_whole_to_the_expected_deltas() -> None:
    deltas, decoder = decode([FIXTURE])
    assert deltas == EXPECTED
    assert decoder.complete


def test_fixture_accumulates_to_text_call_usage_and_tool_calls_finish() -> None:
    completion = accumulate(decode([FIXTURE])[0])
    (choice,) = completion.choices
    assert choice.text == "Hello"
    assert [(c.name, c.arguments) for c in choice.tool_calls] == [
        ("get_weather", '{"city":"Tokyo"}')
    ]
    assert choice.finish == Finish(FinishReason.TOOL_CALLS, "stop")
    assert completion.usage == Usage(169, 15)
    assert (completion.model, completion.created) == ("llama3.2", 1751919739)


def test_fixture_decodes_one_byte_at_a_time() -> None:
    assert decode(byte_by_byte(FIXTURE))[0] == EXPECTED


def test_fixture_decodes_split_in_two_at_every_position() -> None:
    for cut, chunks in halves(FIXTURE):
        assert decode(chunks)[0] == EXPECTED, cut


@pytest.mark.parametrize("seed", range(5))
def test_fixture_decodes_at_random_splits(seed: int) -> None:
    for chunks in random_splits(FIXTURE, seed):
        assert decode(chunks)[0] == EXPECTED


def test_fixture_without_its_last_newline_still_decodes() -> None:
    assert decode([FIXTURE.rstrip(b"\n")])[0] == EXPECTED


def test_stream_cut_before_done_is_not_complete() -> None:
    deltas, decoder = decode([FIXTURE[: FIXTURE.rindex(b"{")]])
    assert deltas == EXPECTED[:6]
    assert not decoder.complete


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        ("2025-07-07T20:22:19.184789Z", NS),
        ("2023-08-04T19:22:45.499127583Z", 1691176965499127583),
        ("2023-08-04T12:22:45.5-07:00", 1691176965500000000),
        ("2023-08-04T19:22:45Z", 1691176965000000000),
        ("yesterday", 0),
        ("2023-13-45T99:00:00Z", 0),
        (None, 0),
    ],
)
def test_created_at_parses_with_nanoseconds_and_offsets(value: object, ns: int) -> None:
    assert parse_time(value) == ns


def test_format_time_writes_go_rfc3339_nano() -> None:
    assert format_time(NS) == "2025-07-07T20:22:19.184789Z"
    assert format_time(1691176965000000000) == "2023-08-04T19:22:45Z"
    assert parse_time(format_time(1691176965499127583)) == 1691176965499127583


def test_thinking_stop_without_calls_length_and_absent_reason() -> None:
    head = {"model": "m", "created_at": "2025-01-01T00:00:00Z"}
    wire = ndjson(
        {**head, "message": {"role": "assistant", "content": "", "thinking": "hmm"}, "done": False},
        {**head, "message": {"role": "assistant", "content": "ok"}, "done": True},
    )
    deltas, _ = decode([wire])
    assert deltas[1:] == [ReasoningDelta("hmm"), TextDelta("ok"), Finish(FinishReason.STOP)]
    length = ndjson({**head, "done": True, "done_reason": "length", "eval_count": 3})
    assert decode([length])[0][1:] == [Usage(0, 3), Finish(FinishReason.LENGTH, "length")]
    load = ndjson({**head, "done": True, "done_reason": "load"})
    assert decode([load])[0][-1] == Finish(FinishReason.OTHER, "load")


def test_tool_calls_with_ids_or_string_arguments_are_read() -> None:
    head = {"model": "m", "created_at": "2025-01-01T00:00:00Z"}
    calls = [
        {"id": "call_x", "function": {"index": 0, "name": "a", "arguments": {"k": [1, 2]}}},
        {"function": {"name": "b", "arguments": '{"s":"t"}'}},
        {"function": {"name": "c"}},
    ]
    wire = ndjson(
        {
            **head,
            "message": {"role": "assistant", "content": "", "tool_calls": calls},
            "done": False,
        }
    )
    calls_out = accumulate(decode([wire])[0]).choices[0].tool_calls
    ns = parse_time(head["created_at"])
    assert [(c.id, c.name, c.arguments) for c in calls_out] == [
        ("call_x", "a", '{"k":[1,2]}'),
        (f"call_{ns}_1", "b", '{"s":"t"}'),
        (f"call_{ns}_2", "c", "{}"),
    ]


def test_error_line_with_status_200_becomes_a_stream_error() -> None:
    wire = FIXTURE.splitlines(keepends=True)[0] + ndjson({"error": "model runner crashed"})
    deltas, decoder = decode([wire + FIXTURE])
    assert deltas[-1] == StreamError(ErrorKind.SERVER, "model runner crashed")
    assert decoder.complete
    assert len(deltas) == 3


@pytest.mark.parametrize("line", [b"{not json\n", b"[1]\n", b"42\n"])
def test_malformed_lines_become_a_server_stream_error(line: bytes) -> None:
    (error,), decoder = decode([line])
    assert isinstance(error, StreamError)
    assert error.kind is ErrorKind.SERVER and "malformed" in error.message
    assert decoder.complete


def test_unknown_fields_and_blank_lines_are_ignored() -> None:
    wire = b"\n" + ndjson(
        {
            "model": "m",
            "created_at": "x",
            "message": {"role": "assistant", "content": "a", "images": None},
            "new": 1,
        }
    )
    assert decode([wire])[0] == [Start("", "m", 0), TextDelta("a")]


def test_encoding_the_decoded_fixture_gives_an_equivalent_stream() -> None:
    # Not carried: the per-line created_at and the durations; content and tool calls of
    # one line come out as two lines. Everything else is the fixture's.
    wire = OLLAMA.encoder().encode_all(EXPECTED)
    assert decode([wire])[0] == EXPECTED
    got, want = lines(wire), lines(FIXTURE)
    assert got[0] == want[0]
    assert [g["message"] for g in got[1:3]] == [
        {"role": "assistant", "content": "lo"},
        {"role": "assistant", "content": "", "tool_calls": want[1]["message"]["tool_calls"]},  # type: ignore[index]
    ]
    durations = {"total_duration", "load_duration", "prompt_eval_duration", "eval_duration"}
    final = {k: v for k, v in want[-1].items() if k not in durations | {"created_at"}}
    assert {k: v for k, v in got[-1].items() if k != "created_at"} == final
    assert list(got[-1]) == [k for k in want[-1] if k not in durations]


def test_finish_is_held_until_close_so_late_usage_lands_on_the_final_line() -> None:
    encoder = OLLAMA.encoder()
    frames = encoder.encode(Start("chat-1", "m", 1700000000)) + encoder.encode(TextDelta("a"))
    assert encoder.encode(Finish(FinishReason.LENGTH)) == []
    assert encoder.encode(Usage(4, 2)) == []
    frames += encoder.close()
    assert encoder.close() == []
    assert [orjson.loads(f.data) for f in frames] == [
        {
            "model": "m",
            "created_at": "2023-11-14T22:13:20Z",
            "message": {"role": "assistant", "content": "a"},
            "done": False,
        },
        {
            "model": "m",
            "created_at": "2023-11-14T22:13:20Z",
            "message": {"role": "assistant", "content": ""},
            "done_reason": "length",
            "done": True,
            "prompt_eval_count": 4,
            "eval_count": 2,
        },
    ]


def test_reasoning_refusals_other_choices_and_odd_arguments_encode() -> None:
    stream: list[Delta] = [
        Start("x", "m"),
        ReasoningDelta("think"),
        ReasoningDelta("", "sig"),
        RefusalDelta("no"),
        TextDelta("other choice", choice=1),
        ToolCallStart(0, "toolu_1", "f"),
        ToolCallDelta(0, "[1]"),
        ToolCallEnd(0),
        Finish(FinishReason.TOOL_CALLS),
    ]
    messages = [line["message"] for line in lines(OLLAMA.encoder().encode_all(stream))]
    assert messages == [
        {"role": "assistant", "content": "", "thinking": "think"},
        {"role": "assistant", "content": "no"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "f", "arguments": {"arguments": "[1]"}}, "id": "toolu_1"}
            ],
        },
        {"role": "assistant", "content": ""},
    ]


@pytest.mark.parametrize(
    ("finish", "word"),
    [
        (Finish(FinishReason.STOP), "stop"),
        (Finish(FinishReason.TOOL_CALLS), "stop"),
        (Finish(FinishReason.LENGTH), "length"),
        (Finish(FinishReason.LENGTH, "max_tokens"), "length"),
        (Finish(FinishReason.CONTENT_FILTER, "refusal"), "content_filter"),
        (Finish(FinishReason.OTHER, "load"), "load"),
        (Finish(FinishReason.PAUSE), "pause"),
        (Finish(FinishReason.ERROR), "error"),
    ],
)
def test_finish_reasons_encode_to_done_reasons(finish: Finish, word: str) -> None:
    final = lines(OLLAMA.encoder().encode_all([Start("x", "m"), finish]))[-1]
    assert final["done_reason"] == word
    assert decode([ndjson(final)])[0][-1].reason is (  # type: ignore[union-attr]
        FinishReason.STOP if finish.reason is FinishReason.TOOL_CALLS else finish.reason
    )


def test_error_mid_stream_is_the_last_line() -> None:
    stream: list[Delta] = [
        Start("x", "m"),
        TextDelta("a"),
        StreamError(ErrorKind.RATE_LIMIT, "slow down"),
        TextDelta("b"),
    ]
    got = lines(OLLAMA.encoder().encode_all(stream))
    assert got[-1] == {"error": "slow down"}
    assert len(got) == 2


@given(streams(CARRIES["ollama"]))
def test_random_streams_survive_encode_then_decode_with_derived_ids(stream: list[Delta]) -> None:
    start = stream[0]
    assert isinstance(start, Start)
    ns = start.created * 10**9 + 123
    renamed: list[Delta] = [Start(f"ollama-{ns}", start.model, start.created)]
    for delta in stream[1:]:
        if isinstance(delta, ToolCallStart):
            delta = replace(delta, id=f"call_{ns}_{delta.index}")
        renamed.append(delta)
    wire = OLLAMA.encoder().encode_all(renamed)
    # Derived ids are not written: Ollama's wire has no id fields (text may say "id").
    for line in wire.splitlines():
        chunk = json.loads(line)
        assert "id" not in chunk
        assert all("id" not in call for call in chunk["message"].get("tool_calls", []))
    before, after = accumulate(renamed), accumulate(decode([wire])[0])
    assert (after.id, after.created) == (before.id, before.created)
    assert [c.id for c in after.choices[0].tool_calls] == [
        c.id for c in before.choices[0].tool_calls
    ]


def test_noise_split_anywhere_never_crashes_the_decoder() -> None:
    noise = FIXTURE + b'{"message": 5}\n{"message": {"tool_calls": [1, {"function": 2}]}}\n\xff\n'
    for size in (1, 5, 50):
        decode([noise[i : i + size] for i in range(0, len(noise), size)])


def test_dialect_attributes() -> None:
    assert (OLLAMA.name, OLLAMA.framing, OLLAMA.media_type) == (
        "ollama",
        "ndjson",
        "application/x-ndjson",
    )


def test_official_client_reads_a_streamed_answer_with_thinking_and_tool_calls() -> None:
    ollama = pytest.importorskip("ollama")
    stream: list[Delta] = [
        Start("x", "llama3.2", 1700000000),
        ReasoningDelta("let me see"),
        TextDelta("Checking "),
        TextDelta("both."),
        ToolCallStart(0, "call_a", "get_weather"),
        ToolCallDelta(0, '{"city":'),
        ToolCallDelta(0, '"Paris"}'),
        ToolCallEnd(0),
        ToolCallStart(1, "call_b", "get_time"),
        ToolCallEnd(1),
        Finish(FinishReason.TOOL_CALLS),
        Usage(20, 9),
    ]
    with replay_server() as server:
        server.respond(OLLAMA.encoder().encode_all(stream), content_type="application/x-ndjson")
        with ollama.Client(host=server.url) as client:
            parts = list(
                client.chat(
                    model="llama3.2", messages=[{"role": "user", "content": "hi"}], stream=True
                )
            )
        assert server.requests[-1][1] == "/api/chat"
        assert orjson.loads(server.requests[-1][3])["stream"] is True
    assert "".join(p.message.content or "" for p in parts) == "Checking both."
    assert "".join(p.message.thinking or "" for p in parts) == "let me see"
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_time", {}),
    ]
    last = parts[-1]
    assert (last.done, last.done_reason, last.prompt_eval_count, last.eval_count) == (
        True,
        "stop",
        20,
        9,
    )


def test_official_client_raises_on_a_mid_stream_error_line() -> None:
    ollama = pytest.importorskip("ollama")
    stream: list[Delta] = [
        Start("x", "m"),
        TextDelta("a"),
        StreamError(ErrorKind.SERVER, "runner died"),
    ]
    with replay_server() as server:
        server.respond(OLLAMA.encoder().encode_all(stream), content_type="application/x-ndjson")
        with (
            ollama.Client(host=server.url) as client,
            pytest.raises(ollama.ResponseError, match="runner died"),
        ):
            list(client.chat(model="m", messages=[], stream=True))


def test_generate_lines_carry_response_and_thinking_and_decode_back() -> None:
    from tokenrelay.llm import OLLAMA_GENERATE
    from tokenrelay.llm.model import (
        Finish,
        FinishReason,
        ReasoningDelta,
        Start,
        TextDelta,
        ToolCallEnd,
        ToolCallStart,
        Usage,
    )

    stream = [
        Start("ollama-1700000000000000000", "m", 1700000000),
        ReasoningDelta("hmm"),
        TextDelta("Hel"),
        TextDelta("lo"),
        ToolCallStart(0, "call_x", "f"),  # no tools in /api/generate: not sent
        ToolCallEnd(0),
        Usage(3, 2),
        Finish(FinishReason.STOP),
    ]
    wire = OLLAMA_GENERATE.encoder().encode_all(stream)
    lines = [json.loads(line) for line in wire.splitlines()]
    assert [(x.get("response"), x.get("thinking"), x["done"]) for x in lines] == [
        ("", "hmm", False),
        ("Hel", None, False),
        ("lo", None, False),
        ("", None, True),
    ]
    assert all("message" not in x and "tool_calls" not in x for x in lines)
    assert lines[-1]["done_reason"] == "stop" and lines[-1]["eval_count"] == 2
    decoded = OllamaDecoder().feed(wire)
    assert [d for d in decoded if isinstance(d, TextDelta)] == [TextDelta("Hel"), TextDelta("lo")]
    whole = OLLAMA_GENERATE.render_response(accumulate(stream))
    assert (whole["response"], whole["thinking"], whole["done"]) == ("Hello", "hmm", True)
    assert "message" not in whole
