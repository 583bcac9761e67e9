"""The Gemini dialect's stream codec, `tokenrelay.llm.gemini.stream`: the decoder and the encoder
over fixtures, hand-built events and random streams.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import byte_by_byte, halves, random_splits
from tests.dialect_helpers import data_lines
from tests.llm.gemini.helpers import EXPECTED, FIXTURE, decode
from tests.neutral_streams import CARRIES, essence, streams
from tokenrelay.llm import (
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
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    accumulate,
)
from tokenrelay.llm.gemini import GEMINI


def sse(*chunks: object) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)


def test_fixture_decodes_whole_to_the_expected_deltas() -> None:
    deltas, decoder = decode([FIXTURE])
    assert deltas == EXPECTED
    assert decoder.complete


def test_fixture_accumulates_to_text_call_usage_and_tool_calls_finish() -> None:
    completion = accumulate(decode([FIXTURE])[0])
    (choice,) = completion.choices
    assert (completion.id, completion.model) == ("fxResp1", "gemini-2.5-flash")
    assert choice.text == "Hello"
    assert [(c.id, c.name, c.arguments) for c in choice.tool_calls] == [
        ("call_fxResp1_0", "get_weather", '{"city":"Paris"}')
    ]
    assert choice.finish == Finish(FinishReason.TOOL_CALLS, "STOP")
    assert completion.usage == Usage(9, 12)


def test_fixture_decodes_one_byte_at_a_time() -> None:
    assert decode(byte_by_byte(FIXTURE))[0] == EXPECTED


def test_fixture_decodes_split_in_two_at_every_position() -> None:
    for cut, chunks in halves(FIXTURE):
        assert decode(chunks)[0] == EXPECTED, cut


@pytest.mark.parametrize("seed", range(5))
def test_fixture_decodes_at_random_splits(seed: int) -> None:
    for chunks in random_splits(FIXTURE, seed):
        assert decode(chunks)[0] == EXPECTED


def test_fixture_cut_before_the_finish_is_not_complete() -> None:
    first = FIXTURE[: FIXTURE.index(b"\r\n\r\n") + 4]
    deltas, decoder = decode([first])
    assert deltas == EXPECTED[:3]
    assert not decoder.complete


def test_thought_parts_are_reasoning_and_signatures_precede_the_content_they_ride_on() -> None:
    wire = sse(
        {"candidates": [{"content": {"parts": [{"text": "hmm", "thought": True}]}}]},
        {
            "candidates": [
                {
                    "content": {
                        "parts": [
                            {"text": "Hi", "thoughtSignature": "sigA"},
                            {"functionCall": {"name": "f", "id": "fc_1"}},
                        ]
                    },
                    "finishReason": "STOP",
                }
            ]
        },
    )
    deltas, _ = decode([wire])
    assert deltas == [
        Start("", "", 0),
        ReasoningDelta("hmm"),
        ReasoningDelta("", "sigA"),
        TextDelta("Hi"),
        ToolCallStart(0, "fc_1", "f"),
        ToolCallDelta(0, "{}"),
        ToolCallEnd(0),
        Finish(FinishReason.TOOL_CALLS, "STOP"),
    ]


@pytest.mark.parametrize(
    ("word", "reason"),
    [
        ("STOP", FinishReason.STOP),
        ("MAX_TOKENS", FinishReason.LENGTH),
        ("SAFETY", FinishReason.CONTENT_FILTER),
        ("RECITATION", FinishReason.CONTENT_FILTER),
        ("BLOCKLIST", FinishReason.CONTENT_FILTER),
        ("PROHIBITED_CONTENT", FinishReason.CONTENT_FILTER),
        ("SPII", FinishReason.CONTENT_FILTER),
        ("LANGUAGE", FinishReason.OTHER),
        ("MALFORMED_FUNCTION_CALL", FinishReason.OTHER),
    ],
)
def test_finish_reason_words_normalise(word: str, reason: FinishReason) -> None:
    wire = sse({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": word}]})
    assert decode([wire])[0][-1] == Finish(reason, word)


def test_usage_counts_cached_and_thought_tokens_and_is_sent_only_when_it_changes() -> None:
    meta = {
        "promptTokenCount": 100,
        "candidatesTokenCount": 5,
        "cachedContentTokenCount": 60,
        "thoughtsTokenCount": 20,
        "totalTokenCount": 125,
    }
    wire = sse(
        {"candidates": [{"content": {"parts": [{"text": "a"}]}}], "usageMetadata": meta},
        {"candidates": [{"content": {"parts": [{"text": "b"}]}}], "usageMetadata": meta},
    )
    usages = [d for d in decode([wire])[0] if isinstance(d, Usage)]
    assert usages == [Usage(100, 25, 60, 20)]


def test_blocked_prompt_finishes_with_content_filter() -> None:
    wire = sse(
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 7}}
    )
    deltas, decoder = decode([wire])
    assert deltas[-1] == Finish(FinishReason.CONTENT_FILTER, "SAFETY")
    assert decoder.complete


def test_error_event_becomes_a_stream_error_and_ends_decoding() -> None:
    error = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}
    wire = sse({"candidates": [{"content": {"parts": [{"text": "a"}]}}]}, error)
    wire += sse({"candidates": [{"content": {"parts": [{"text": "late"}]}}]})
    deltas, decoder = decode([wire])
    assert deltas[-1] == StreamError(
        ErrorKind.RATE_LIMIT, "Quota exceeded", 429, "RESOURCE_EXHAUSTED"
    )
    assert decoder.complete


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b'"text"'])
def test_malformed_data_becomes_a_server_stream_error(data: bytes) -> None:
    deltas, decoder = decode([b"data: " + data + b"\r\n\r\n"])
    (error,) = deltas
    assert isinstance(error, StreamError)
    assert error.kind is ErrorKind.SERVER
    assert "malformed" in error.message
    assert decoder.complete


def test_unknown_parts_fields_and_done_markers_are_ignored() -> None:
    wire = sse(
        {
            "candidates": [
                {
                    "content": {"parts": [{"executableCode": {"code": "1"}}, {"text": "ok"}]},
                    "citationMetadata": {},
                    "index": 0,
                }
            ],
            "futureField": 1,
        }
    )
    deltas, _ = decode([wire + b"data: [DONE]\n\n"])
    assert deltas == [Start("", "", 0), TextDelta("ok")]


def test_several_candidates_get_their_own_choices_and_call_ids() -> None:
    call = {"functionCall": {"name": "f", "args": {"a": 1}}}
    wire = sse(
        {
            "responseId": "r",
            "candidates": [
                {"content": {"parts": [call]}, "index": 0, "finishReason": "STOP"},
                {"content": {"parts": [{"text": "no"}]}, "index": 1, "finishReason": "MAX_TOKENS"},
            ],
        },
        # A repeated final candidate adds nothing.
        {"candidates": [{"content": {"parts": [{"text": "again"}]}, "index": 1}]},
    )
    completion = accumulate(decode([wire])[0])
    assert completion.choices[0].tool_calls[0].id == "call_r_0"
    assert completion.choices[0].finish == Finish(FinishReason.TOOL_CALLS, "STOP")
    assert completion.choices[1].text == "no"
    assert completion.choices[1].finish == Finish(FinishReason.LENGTH, "MAX_TOKENS", choice=1)


def test_create_time_sets_created() -> None:
    deltas, _ = decode([sse({"createTime": "2025-01-02T03:04:05.123456Z", "candidates": []})])
    assert deltas[0] == Start("", "", 1735787045)


def test_encoding_the_decoded_fixture_gives_the_fixture_back() -> None:
    # Equal byte for byte but for the line ends: Gemini writes CRLF, the encoder LF.
    wire = GEMINI.encoder().encode_all(decode([FIXTURE])[0])
    assert wire == FIXTURE.replace(b"\r\n", b"\n")


def test_finish_and_late_usage_ride_on_the_last_chunk() -> None:
    stream: list[Delta] = [
        Start("r1", "m"),
        TextDelta("Hi"),
        Finish(FinishReason.STOP),
        Usage(3, 1),
    ]
    chunks = data_lines(GEMINI.encoder().encode_all(stream))
    assert chunks == [
        {
            "candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}, "index": 0}],
            "modelVersion": "m",
            "responseId": "r1",
        },
        {
            "candidates": [
                {
                    "content": {"parts": [{"text": ""}], "role": "model"},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 3,
                "candidatesTokenCount": 1,
                "totalTokenCount": 4,
            },
            "modelVersion": "m",
            "responseId": "r1",
        },
    ]


def test_usage_after_everything_was_sent_gets_a_chunk_of_its_own() -> None:
    encoder = GEMINI.encoder()
    encoder.encode(Start("r", "m"))
    encoder.encode(TextDelta("a"))
    encoder.encode(Usage(10, 5, cached_tokens=4, reasoning_tokens=2))
    (frame,) = encoder.close()
    assert orjson.loads(frame.data) == {
        "usageMetadata": {
            "promptTokenCount": 10,
            "candidatesTokenCount": 3,
            "totalTokenCount": 15,
            "cachedContentTokenCount": 4,
            "thoughtsTokenCount": 2,
        },
        "modelVersion": "m",
        "responseId": "r",
    }
    assert encoder.close() == []


def test_reasoning_signatures_refusals_and_odd_arguments_encode() -> None:
    stream: list[Delta] = [
        Start("r", "m"),
        ReasoningDelta("think"),
        ReasoningDelta("", "sig"),
        RefusalDelta("no"),
        ToolCallStart(0, "call_r_0", "f"),
        ToolCallDelta(0, "[1,"),
        ToolCallDelta(0, " 2]"),
        ToolCallEnd(0),
        ToolCallStart(1, "toolu_1", "g"),
        ToolCallEnd(1),
        Finish(FinishReason.TOOL_CALLS),
    ]
    parts = [
        p
        for chunk in data_lines(GEMINI.encoder().encode_all(stream))
        for c in chunk["candidates"]  # type: ignore[index]
        for p in c["content"]["parts"]
    ]
    assert parts == [
        {"text": "think", "thought": True},
        {"text": "", "thoughtSignature": "sig"},
        {"text": "no"},
        {"functionCall": {"name": "f", "args": {"arguments": "[1, 2]"}}},
        {"functionCall": {"name": "g", "args": {}, "id": "toolu_1"}},
    ]


def test_calls_ending_out_of_order_are_sent_in_ordinal_order() -> None:
    stream: list[Delta] = [
        Start("r", "m"),
        ToolCallStart(0, "a", "f"),
        ToolCallStart(1, "b", "g"),
        ToolCallEnd(1),
        TextDelta("x"),
        ToolCallEnd(0),
        Finish(FinishReason.TOOL_CALLS),
    ]
    completion = accumulate(decode([GEMINI.encoder().encode_all(stream)])[0])
    assert [c.id for c in completion.choices[0].tool_calls] == ["a", "b"]


@pytest.mark.parametrize(
    ("finish", "word"),
    [
        (Finish(FinishReason.STOP), "STOP"),
        (Finish(FinishReason.TOOL_CALLS), "STOP"),
        (Finish(FinishReason.LENGTH), "MAX_TOKENS"),
        (Finish(FinishReason.CONTENT_FILTER), "SAFETY"),
        (Finish(FinishReason.CONTENT_FILTER, "refusal"), "SAFETY"),
        (Finish(FinishReason.CONTENT_FILTER, "RECITATION"), "RECITATION"),
        (Finish(FinishReason.OTHER, "LANGUAGE"), "LANGUAGE"),
        (Finish(FinishReason.STOP, "MAX_TOKENS"), "STOP"),
        (Finish(FinishReason.PAUSE, "pause_turn"), "OTHER"),
        (Finish(FinishReason.ERROR), "OTHER"),
    ],
)
def test_finish_reasons_encode_to_gemini_words(finish: Finish, word: str) -> None:
    chunks = data_lines(GEMINI.encoder().encode_all([Start("r", "m"), finish]))
    assert chunks[-1]["candidates"][0]["finishReason"] == word  # type: ignore[index]


def test_error_mid_stream_flushes_held_content_then_ends_the_stream() -> None:
    encoder = GEMINI.encoder()
    frames = []
    for delta in [
        Start("r", "m"),
        ToolCallStart(0, "call_r_0", "f"),
        ToolCallEnd(0),
        StreamError(ErrorKind.OVERLOADED, "busy"),
        TextDelta("after"),
    ]:
        frames += encoder.encode(delta)
    frames += encoder.close()
    chunks = [orjson.loads(f.data) for f in frames]
    assert chunks[0]["candidates"][0]["content"]["parts"] == [
        {"functionCall": {"name": "f", "args": {}}}
    ]
    assert chunks[1:] == [{"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}]


def test_encoder_reports_the_model_the_client_asked_for() -> None:
    request = Request("gemini-alias", (Message("user", (TextPart("hi"),)),))
    chunks = data_lines(GEMINI.encoder(request).encode_all([Start("r", "real"), TextDelta("a")]))
    assert chunks[0]["modelVersion"] == "gemini-alias"  # type: ignore[index]


@given(
    streams(CARRIES["gemini"]),
    st.sampled_from(sorted(set(ErrorKind) - {ErrorKind.REQUEST_TOO_LARGE})),
)
def test_random_streams_cut_by_an_error_survive_encode_then_decode(
    stream: list[Delta], kind: ErrorKind
) -> None:
    body = [d for d in stream if not isinstance(d, Finish | Usage)]
    cut = [*body, StreamError(kind, "boom")]
    after = accumulate(decode([GEMINI.encoder().encode_all(cut)])[0])
    assert essence(after)["choices"][0]["text"] == accumulate(body).choices[0].text
    assert after.error is not None
    assert (after.error.kind, after.error.message) == (kind, "boom")


def test_any_bytes_split_anywhere_never_crash_the_decoder() -> None:
    noise = FIXTURE + b'data: {"candidates": [{"content": {"parts": [7, {"text": 5}]}}]}\r\n\r\n'
    for size in (1, 7, 64):
        chunks = [noise[i : i + size] for i in range(0, len(noise), size)]
        decode(chunks)


def test_dialect_attributes() -> None:
    assert (GEMINI.name, GEMINI.framing, GEMINI.media_type) == (
        "gemini",
        "sse",
        "text/event-stream",
    )
