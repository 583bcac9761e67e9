"""The Gemini codec: streamGenerateContent?alt=sse in and out, generateContent bodies,
Google's error shape. No official Google SDK is installed: the fixture and round trips
are the reference."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    ToolChoice,
    ToolResultPart,
    Usage,
    accumulate,
    replay,
)
from tokenrelay.llm.gemini import GEMINI, GeminiDecoder, parse_path, request_path

from .conftest import FIXTURES, byte_by_byte, halves, random_splits
from .dialect_helpers import data_lines, feed_all
from .neutral_streams import CARRIES, essence, streams

FIXTURE = (FIXTURES / "written" / "gemini_stream.sse").read_bytes()

EXPECTED: list[Delta] = [
    Start("fxResp1", "gemini-2.5-flash", 0),
    Usage(9, 1),
    TextDelta("Hello"),
    Usage(9, 12),
    ToolCallStart(0, "call_fxResp1_0", "get_weather"),
    ToolCallDelta(0, '{"city":"Paris"}'),
    ToolCallEnd(0),
    Finish(FinishReason.TOOL_CALLS, "STOP"),
]


def decode(chunks: list[bytes]) -> tuple[list[Delta], GeminiDecoder]:
    decoder = GEMINI.decoder()
    return feed_all(decoder, chunks), decoder


def sse(*chunks: object) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)


# --- decoding the fixture -----------------------------------------------------------


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


# --- decoding quirks ----------------------------------------------------------------


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


# --- encoding -----------------------------------------------------------------------


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


@given(streams(CARRIES["gemini"] | {"choices", "signature"}))
def test_random_streams_survive_encode_then_decode(stream: list[Delta]) -> None:
    decoded = decode([GEMINI.encoder().encode_all(stream)])[0]
    before, after = accumulate(stream), accumulate(decoded)
    assert essence(after) == essence(before)
    assert (after.id, after.model, after.created) == (before.id, before.model, before.created)
    ids = [[c.id for c in choice.tool_calls] for choice in after.choices]
    assert ids == [[c.id for c in choice.tool_calls] for choice in before.choices]


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


# --- requests -----------------------------------------------------------------------

PNG = "iVBORw0KGgo="


def full_request(**changes: object) -> Request:
    base = Request(
        model="",
        messages=(
            Message("system", (TextPart("Be brief."),)),
            Message("user", (TextPart("Weather?"), ImagePart(data=PNG, media_type="image/png"))),
            Message("user", (ImagePart(url="gs://b/cat.jpg", media_type="image/jpeg"),)),
            Message(
                "assistant",
                (
                    ReasoningPart("thinking", "sig1"),
                    ReasoningPart("", "sig2"),
                    ToolCallPart("call_0", "get_weather", '{"city":"Paris"}'),
                    ToolCallPart("call_1", "get_weather", '{"city":"Rome"}'),
                ),
            ),
            Message(
                "tool",
                (ToolResultPart("call_0", "sunny"), ToolResultPart("call_1", "oops", True)),
            ),
            Message("assistant", (TextPart("Sunny in Paris."),)),
        ),
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
            Tool("noop"),
        ),
        tool_choice=ToolChoice("tool", "get_weather"),
        include_usage=True,
        n=2,
        reasoning_budget=1024,
        extra={"safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}]},
        dialect="gemini",
    )
    from dataclasses import replace

    return replace(base, **changes)  # type: ignore[arg-type]


def test_build_request_writes_a_generate_content_body() -> None:
    body = GEMINI.build_request(full_request())
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"][0] == {
        "role": "user",
        "parts": [{"text": "Weather?"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}],
    }
    assert body["contents"][2] == {
        "role": "model",
        "parts": [
            {"text": "thinking", "thought": True, "thoughtSignature": "sig1"},
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                "thoughtSignature": "sig2",
            },
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
        ],
    }
    assert body["contents"][3] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
            {"functionResponse": {"name": "get_weather", "response": {"error": "oops"}}},
        ],
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
                {"name": "noop"},
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert body["generationConfig"] == {
        "maxOutputTokens": 100,
        "temperature": 0.5,
        "topP": 0.9,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "thinkingConfig": {"thinkingBudget": 1024},
    }
    assert body["safetySettings"][0]["threshold"] == "OFF"
    assert "model" not in body


def test_build_request_never_sends_call_ids() -> None:
    wire = orjson.dumps(GEMINI.build_request(full_request()))
    assert b'"id"' not in wire


def test_parse_request_inverts_build_request() -> None:
    request = full_request()
    assert GEMINI.parse_request(GEMINI.build_request(request)) == request


@pytest.mark.parametrize(
    "choice", [None, ToolChoice("auto"), ToolChoice("none"), ToolChoice("required")]
)
def test_tool_choices_round_trip(choice: ToolChoice | None) -> None:
    request = full_request(tool_choice=choice)
    assert GEMINI.parse_request(GEMINI.build_request(request)) == request


def test_parse_request_takes_the_model_and_stream_from_the_caller() -> None:
    body = orjson.dumps({"contents": [{"parts": [{"text": "hi"}]}]})
    model, stream = parse_path("/v1beta/models/gemini-2.5-flash:streamGenerateContent")
    request = GEMINI.parse_request(body, model=model, stream=stream)
    assert (request.model, request.stream) == ("gemini-2.5-flash", True)
    assert request.messages == (Message("user", (TextPart("hi"),)),)
    assert GEMINI.parse_request(body).model == ""
    assert request_path(request) == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert parse_path("/v1/models") == ("", False)


def test_parse_request_matches_function_responses_to_calls_by_name() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "go"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "a", "args": {}}},
                    {"functionCall": {"name": "b", "args": {"x": 1}}},
                    {"functionCall": {"name": "a", "args": {"y": 2}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "b", "response": {"n": 1}}},
                    {"functionResponse": {"name": "a", "response": {"output": {"k": "v"}}}},
                    {"functionResponse": {"name": "a", "response": {"output": "2"}}},
                    {"text": "and now?"},
                ],
            },
        ]
    }
    messages = GEMINI.parse_request(body).messages
    assert [p.id for p in messages[1].parts] == ["call_0", "call_1", "call_2"]  # type: ignore[union-attr]
    assert messages[2] == Message(
        "tool",
        (
            ToolResultPart("call_1", '{"n":1}'),
            ToolResultPart("call_0", '{"k":"v"}'),
            ToolResultPart("call_2", "2"),
        ),
    )
    assert messages[3] == Message("user", (TextPart("and now?"),))


def test_parse_request_reads_snake_case_fields_and_keeps_unknown_ones_in_extra() -> None:
    body = {
        "system_instruction": {"parts": [{"text": "sys"}]},
        "contents": [
            {"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": PNG}}]}
        ],
        "generation_config": {
            "max_output_tokens": 5,
            "topK": 3,
            "thinking_config": {"includeThoughts": True},
        },
        "tools": [{"googleSearch": {}}],
        "cachedContent": "cachedContents/1",
    }
    request = GEMINI.parse_request(body)
    assert request.messages[0] == Message("system", (TextPart("sys"),))
    assert request.messages[1].parts == (ImagePart(data=PNG, media_type="image/png"),)
    assert request.max_tokens == 5
    assert request.extra == {
        "cachedContent": "cachedContents/1",
        "tools": [{"googleSearch": {}}],
        "generationConfig": {"topK": 3, "thinkingConfig": {"includeThoughts": True}},
    }
    rebuilt = GEMINI.build_request(request)
    assert rebuilt["tools"] == [{"googleSearch": {}}]
    assert rebuilt["generationConfig"] == {
        "maxOutputTokens": 5,
        "topK": 3,
        "thinkingConfig": {"includeThoughts": True},
    }


def test_a_request_from_another_dialect_loses_its_extra_and_asks_for_thoughts() -> None:
    request = full_request(dialect="openai_chat", extra={"seed": 1})
    body = GEMINI.build_request(request)
    assert "seed" not in body and "safetySettings" not in body
    assert body["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024,
        "includeThoughts": True,
    }


def test_image_urls_become_file_data_and_data_urls_inline_data() -> None:
    request = Request(
        "m",
        (
            Message(
                "user",
                (
                    ImagePart(url="https://x.test/a.webp"),
                    ImagePart(url=f"data:image/png;base64,{PNG}"),
                ),
            ),
        ),
    )
    parts = GEMINI.build_request(request)["contents"][0]["parts"]
    assert parts == [
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://x.test/a.webp"}},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "contents"),
        ({"contents": "hi"}, "contents"),
        ({"contents": ["hi"]}, "contents[0]"),
        ({"contents": [{"role": "bot", "parts": []}]}, "contents[0].role"),
        ({"contents": [{"parts": "x"}]}, "contents[0].parts"),
        ({"contents": [{"parts": [{"video": 1}]}]}, "contents[0].parts[0]"),
        ({"contents": [{"parts": [{"text": 1}]}]}, "contents[0].parts[0].text"),
        (
            {"contents": [{"parts": [{"inlineData": {"data": PNG}}]}]},
            "contents[0].parts[0].inlineData.mimeType",
        ),
        (
            {"contents": [{"role": "user", "parts": [{"functionCall": {"name": "f"}}]}]},
            "contents[0].parts[0]",
        ),
        (
            {"contents": [{"role": "model", "parts": [{"functionCall": {"args": {}}}]}]},
            "contents[0].parts[0].functionCall.name",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"maxOutputTokens": "5"},
            },
            "generationConfig.maxOutputTokens",
        ),
        (
            {
                "contents": [{"parts": [{"text": "x"}]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ALWAYS"}},
            },
            "toolConfig.functionCallingConfig.mode",
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"functionDeclarations": [{}]}]},
            "tools[0].functionDeclarations[0].name",
        ),
        (
            {"contents": [{"parts": [{"text": "x"}]}], "systemInstruction": "sys"},
            "systemInstruction",
        ),
    ],
)
def test_bad_request_bodies_name_the_field(body: dict[str, object], param: str) -> None:
    with pytest.raises(RequestError) as info:
        GEMINI.parse_request(body)
    assert info.value.param == param


def test_non_json_bodies_are_request_errors() -> None:
    with pytest.raises(RequestError):
        GEMINI.parse_request(b"{")


# --- non-streamed answers -----------------------------------------------------------


def test_render_response_then_parse_response_gives_the_completion_back() -> None:
    completion = accumulate(
        [
            Start("resp", "gemini-2.5-pro", 1700000000),
            ReasoningDelta("plan"),
            ReasoningDelta("", "sig"),
            TextDelta("Answer"),
            ToolCallStart(0, "call_resp_0", "f"),
            ToolCallDelta(0, '{"a":1}'),
            ToolCallEnd(0),
            Usage(10, 20, 2, 5),
            Finish(FinishReason.TOOL_CALLS, "STOP"),
        ]
    )
    body = GEMINI.render_response(completion)
    assert body["candidates"][0]["finishReason"] == "STOP"
    assert body["createTime"] == "2023-11-14T22:13:20Z"
    assert accumulate(GEMINI.parse_response(orjson.dumps(body))) == completion
    assert accumulate(GEMINI.parse_response(body)) == completion


def test_parse_response_reads_the_array_of_a_stream_without_alt_sse() -> None:
    chunks = data_lines(FIXTURE.replace(b"\r\n", b"\n"))
    assert GEMINI.parse_response(orjson.dumps(chunks)) == EXPECTED


def test_replayed_completion_encodes_like_a_stream() -> None:
    completion = accumulate(EXPECTED)
    assert accumulate(decode([GEMINI.encoder().encode_all(replay(completion))])[0]) == completion


# --- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "word"),
    [
        (ErrorKind.INVALID_REQUEST, 400, "INVALID_ARGUMENT"),
        (ErrorKind.AUTHENTICATION, 401, "UNAUTHENTICATED"),
        (ErrorKind.PERMISSION, 403, "PERMISSION_DENIED"),
        (ErrorKind.NOT_FOUND, 404, "NOT_FOUND"),
        (ErrorKind.REQUEST_TOO_LARGE, 400, "INVALID_ARGUMENT"),
        (ErrorKind.RATE_LIMIT, 429, "RESOURCE_EXHAUSTED"),
        (ErrorKind.SERVER, 500, "INTERNAL"),
        (ErrorKind.OVERLOADED, 503, "UNAVAILABLE"),
        (ErrorKind.TIMEOUT, 504, "DEADLINE_EXCEEDED"),
    ],
)
def test_error_bodies_use_google_status_words(kind: ErrorKind, status: int, word: str) -> None:
    code, body = GEMINI.error_body(StreamError(kind, "msg"))
    assert code == status
    assert body == {"error": {"code": status, "message": "msg", "status": word}}
    parsed = GEMINI.parse_error(code, orjson.dumps(body))
    expected = ErrorKind.INVALID_REQUEST if kind is ErrorKind.REQUEST_TOO_LARGE else kind
    assert parsed == StreamError(expected, "msg", status, word)


def test_error_body_keeps_a_google_word_of_the_same_kind() -> None:
    error = StreamError(ErrorKind.INVALID_REQUEST, "m", 400, "FAILED_PRECONDITION")
    assert GEMINI.error_body(error)[1]["error"]["status"] == "FAILED_PRECONDITION"


def test_parse_error_tolerates_arrays_and_non_json() -> None:
    wrapped = b'[{"error": {"code": 404, "message": "no model", "status": "NOT_FOUND"}}]'
    assert GEMINI.parse_error(404, wrapped).kind is ErrorKind.NOT_FOUND
    html = GEMINI.parse_error(502, b"<html>Bad Gateway</html>")
    assert (html.kind, html.status, html.message) == (
        ErrorKind.SERVER,
        502,
        "<html>Bad Gateway</html>",
    )


def test_dialect_attributes() -> None:
    assert (GEMINI.name, GEMINI.framing, GEMINI.media_type) == (
        "gemini",
        "sse",
        "text/event-stream",
    )
