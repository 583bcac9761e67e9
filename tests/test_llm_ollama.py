"""The Ollama codec: /api/chat NDJSON in and out, request bodies, errors; the official
`ollama` client over loopback when it is installed."""

from __future__ import annotations

import json
from dataclasses import replace

import orjson
import pytest
from hypothesis import given

from tokenrelay.errors import RequestError
from tokenrelay.llm import (
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    ImagePart,
    Message,
    ReasoningDelta,
    ReasoningPart,
    RefusalDelta,
    Request,
    Start,
    StreamError,
    TextDelta,
    TextPart,
    Tool,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
    ToolResultPart,
    Usage,
    accumulate,
)
from tokenrelay.llm.ollama import OLLAMA, OllamaDecoder, format_time, parse_time

from .conftest import FIXTURES, byte_by_byte, halves, random_splits
from .dialect_helpers import ERROR_STATUSES, feed_all
from .neutral_streams import CARRIES, essence, streams
from .replay_server import replay_server

FIXTURE = (FIXTURES / "written" / "ollama_chat.ndjson").read_bytes()
NS = 1751919739184789000  # 2025-07-07T20:22:19.184789Z

EXPECTED: list[Delta] = [
    Start(f"ollama-{NS}", "llama3.2", NS // 10**9),
    TextDelta("Hel"),
    TextDelta("lo"),
    ToolCallStart(0, f"call_{NS}_0", "get_weather"),
    ToolCallDelta(0, '{"city":"Tokyo"}'),
    ToolCallEnd(0),
    Usage(169, 15),
    Finish(FinishReason.TOOL_CALLS, "stop"),
]


def decode(chunks: list[bytes]) -> tuple[list[Delta], OllamaDecoder]:
    decoder = OLLAMA.decoder()
    return feed_all(decoder, chunks), decoder


def lines(wire: bytes) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in wire.splitlines()]


def ndjson(*objects: object) -> bytes:
    return b"".join(orjson.dumps(o) + b"\n" for o in objects)


# --- decoding the fixture -----------------------------------------------------------


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


# --- decoding quirks ----------------------------------------------------------------


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


# --- encoding -----------------------------------------------------------------------


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
def test_random_streams_survive_encode_then_decode(stream: list[Delta]) -> None:
    decoded = decode([OLLAMA.encoder().encode_all(stream)])[0]
    before, after = accumulate(stream), accumulate(decoded)
    assert essence(after) == essence(before)
    assert (after.model, after.created) == (before.model, before.created)
    assert [c.id for c in after.choices[0].tool_calls] == [
        c.id for c in before.choices[0].tool_calls
    ]


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


# --- requests -----------------------------------------------------------------------

PNG = "iVBORw0KGgoAAAANSUhEUg=="


def full_request(**changes: object) -> Request:
    base = Request(
        model="llama3.2",
        messages=(
            Message("system", (TextPart("Be brief."),)),
            Message("user", (TextPart("Weather?"), ImagePart(data=PNG, media_type="image/png"))),
            Message(
                "assistant",
                (
                    ReasoningPart("thinking"),
                    ToolCallPart("call_0", "get_weather", '{"city":"Paris"}'),
                    ToolCallPart("call_1", "get_time", "{}"),
                ),
            ),
            Message("tool", (ToolResultPart("call_1", "noon"),)),
            Message("tool", (ToolResultPart("call_0", "sunny"),)),
            Message("assistant", (TextPart("Sunny."),)),
        ),
        stream=True,
        max_tokens=100,
        temperature=0.5,
        top_p=0.9,
        stop=("END",),
        tools=(
            Tool(
                "get_weather",
                "Weather",
                {"type": "object", "properties": {"city": {"type": "string"}}},
            ),
        ),
        include_usage=True,
        extra={
            "options": {"seed": 7, "num_ctx": 4096},
            "think": True,
            "keep_alive": "5m",
            "format": "json",
        },
        dialect="ollama",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_build_request_writes_an_api_chat_body() -> None:
    body = OLLAMA.build_request(full_request())
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?", "images": [PNG]},
        {
            "role": "assistant",
            "content": "",
            "thinking": "thinking",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_time", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "noon", "tool_name": "get_time"},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "assistant", "content": "Sunny."},
    ]
    assert body["options"] == {
        "num_predict": 100,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "num_ctx": 4096,
    }
    assert body["tools"][0]["function"]["name"] == "get_weather"
    assert (body["stream"], body["think"], body["keep_alive"], body["format"]) == (
        True,
        True,
        "5m",
        "json",
    )


def test_parse_request_inverts_build_request() -> None:
    request = full_request()
    assert OLLAMA.parse_request(orjson.dumps(OLLAMA.build_request(request))) == request
    quiet = full_request(stream=False, extra={})
    assert OLLAMA.parse_request(OLLAMA.build_request(quiet)) == quiet


def test_stream_defaults_to_true() -> None:
    request = OLLAMA.parse_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert request.stream is True
    assert request.messages == (Message("user", (TextPart("hi"),)),)


def test_negative_num_predict_means_no_limit_and_stays_in_extra() -> None:
    request = OLLAMA.parse_request({"model": "m", "messages": [], "options": {"num_predict": -1}})
    assert request.max_tokens is None
    assert request.extra == {"options": {"num_predict": -1}}


def test_tool_results_without_names_answer_the_oldest_open_call() -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "a", "arguments": {}}},
                    {"function": {"name": "b", "arguments": {}}},
                ],
            },
            {"role": "tool", "content": "1"},
            {"role": "tool", "content": "2"},
        ],
    }
    messages = OLLAMA.parse_request(body).messages
    assert [m.parts[0] for m in messages[1:]] == [
        ToolResultPart("call_0", "1"),
        ToolResultPart("call_1", "2"),
    ]


def test_a_request_from_another_dialect_sends_no_extra_and_think_from_the_budget() -> None:
    body = OLLAMA.build_request(full_request(dialect="anthropic", reasoning_budget=2048))
    assert body["think"] is True
    assert "keep_alive" not in body and "seed" not in body["options"]


def test_images_by_data_url_are_unpacked_and_by_http_url_refused() -> None:
    request = Request("m", (Message("user", (ImagePart(url=f"data:image/png;base64,{PNG}"),)),))
    assert OLLAMA.build_request(request)["messages"][0]["images"] == [PNG]
    with pytest.raises(RequestError) as info:
        OLLAMA.build_request(
            Request("m", (Message("user", (ImagePart(url="https://x.test/a.png"),)),))
        )
    assert info.value.param == "messages[0]"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": {}}, "messages"),
        ({"model": "m", "messages": [1]}, "messages[0]"),
        ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "bot"}]}, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": "m", "messages": [{"role": "user", "images": [5]}]}, "messages[0].images[0]"),
        (
            {"model": "m", "messages": [{"role": "assistant", "tool_calls": [{}]}]},
            "messages[0].tool_calls[0].function",
        ),
        (
            {
                "model": "m",
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": 3}}],
                    }
                ],
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
        ({"model": "m", "messages": [], "stream": "yes"}, "stream"),
        ({"model": "m", "messages": [], "options": {"temperature": "hot"}}, "options.temperature"),
        ({"model": "m", "messages": [], "options": {"stop": [1]}}, "options.stop"),
        ({"model": "m", "messages": [], "tools": [{"type": "web"}]}, "tools[0].type"),
        ({"model": "m", "messages": [], "tools": [{"function": {}}]}, "tools[0].function.name"),
    ],
)
def test_bad_request_bodies_name_the_field(body: dict[str, object], param: str) -> None:
    with pytest.raises(RequestError) as info:
        OLLAMA.parse_request(body)
    assert info.value.param == param


# --- non-streamed answers and errors ------------------------------------------------


def test_render_response_then_parse_response_gives_the_completion_back() -> None:
    completion = accumulate(EXPECTED)
    body = OLLAMA.render_response(completion)
    assert body["done"] is True and body["done_reason"] == "stop"
    assert body["created_at"] == "2025-07-07T20:22:19.184789Z"
    assert accumulate(OLLAMA.parse_response(orjson.dumps(body))) == completion
    assert accumulate(OLLAMA.parse_response(body)) == completion


@pytest.mark.parametrize(("kind", "status"), ERROR_STATUSES)
def test_error_bodies_round_trip(kind: ErrorKind, status: int) -> None:
    code, body = OLLAMA.error_body(StreamError(kind, "msg"))
    assert (code, body) == (status, {"error": "msg"})
    assert OLLAMA.parse_error(code, orjson.dumps(body)) == StreamError(kind, "msg", status)


def test_parse_error_tolerates_non_json() -> None:
    error = OLLAMA.parse_error(502, b"Bad Gateway")
    assert (error.kind, error.status, error.message) == (ErrorKind.SERVER, 502, "Bad Gateway")


def test_dialect_attributes() -> None:
    assert (OLLAMA.name, OLLAMA.framing, OLLAMA.media_type) == (
        "ollama",
        "ndjson",
        "application/x-ndjson",
    )


# --- the official client ------------------------------------------------------------


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


def test_official_client_reads_a_non_streamed_answer() -> None:
    ollama = pytest.importorskip("ollama")
    body = orjson.dumps(OLLAMA.render_response(accumulate(EXPECTED)))
    with replay_server() as server:
        server.respond(body, content_type="application/json")
        with ollama.Client(host=server.url) as client:
            response = client.chat(model="llama3.2", messages=[], stream=False)
    assert response.message.content == "Hello"
    assert response.message.tool_calls[0].function.arguments == {"city": "Tokyo"}
    assert response.eval_count == 15


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


@pytest.mark.parametrize("kind", [ErrorKind.NOT_FOUND, ErrorKind.INVALID_REQUEST, ErrorKind.SERVER])
def test_official_client_raises_error_bodies_with_their_status(kind: ErrorKind) -> None:
    ollama = pytest.importorskip("ollama")
    status, body = OLLAMA.error_body(StreamError(kind, "model 'x' not found"))
    with replay_server() as server:
        server.respond(orjson.dumps(body), status=status)
        with ollama.Client(host=server.url) as client, pytest.raises(ollama.ResponseError) as info:
            client.chat(model="x", messages=[], stream=False)
    assert info.value.status_code == status
    assert info.value.error == "model 'x' not found"


# --- /api/generate ----------------------------------------------------------------------


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


def test_generate_request_is_a_one_turn_chat() -> None:
    from tokenrelay.llm import OLLAMA_GENERATE

    request = OLLAMA_GENERATE.parse_request(
        {
            "model": "m",
            "prompt": "hi",
            "system": "be brief",
            "options": {"num_predict": 5},
            "stream": False,
        }
    )
    assert [(m.role, m.text) for m in request.messages] == [("system", "be brief"), ("user", "hi")]
    assert request.max_tokens == 5 and request.stream is False
    with pytest.raises(RequestError) as info:
        OLLAMA_GENERATE.parse_request({"model": "m", "prompt": "x", "suffix": "y"})
    assert info.value.param == "suffix"
