"""The Vercel AI SDK UI message stream dialect's stream codec, `tokenrelay.llm.vercel.stream`: the
decoder and the encoder over fixtures, hand-built events and random streams, and what the AI SDK
reads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.conftest import FIXTURES, every_chunking
from tests.dialect_helpers import data_lines, feed_all
from tests.replay_server import replay_server
from tests.required import missing
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
from tokenrelay.llm.vercel import HEADERS, VERCEL_UI, VercelUIDecoder

FIXTURE = (FIXTURES / "written" / "vercel_ui_message_stream.sse").read_bytes()


# The neutral stream the fixture stands for (as an upstream would send it).
NEUTRAL: list[Delta] = [
    Start("msg_fx1", "gpt-4o", 1700000000),
    ReasoningDelta("User wants weather."),
    TextDelta("Checking "),
    TextDelta("Paris."),
    ToolCallStart(0, "call_fxA", "get_weather"),
    ToolCallDelta(0, '{"city":"Paris"}'),
    ToolCallEnd(0),
    Finish(FinishReason.TOOL_CALLS, "tool_calls"),
    Usage(20, 10),
]


def decode(chunks: list[bytes]) -> tuple[list[Delta], VercelUIDecoder]:
    decoder = VERCEL_UI.decoder()
    return feed_all(decoder, chunks), decoder


def encode(stream: list[Delta], **options: bool) -> bytes:
    return VERCEL_UI.encoder(None, **options).encode_all(stream)


def test_the_equivalent_neutral_stream_encodes_to_the_fixture_exactly() -> None:
    assert encode(NEUTRAL) == FIXTURE


def test_response_headers_and_dialect_attributes() -> None:
    assert HEADERS == {"x-vercel-ai-ui-message-stream": "v1"}
    assert (VERCEL_UI.name, VERCEL_UI.framing, VERCEL_UI.media_type) == (
        "vercel_ui",
        "sse",
        "text/event-stream",
    )


def test_blocks_alternate_with_fresh_ids_and_close_before_tool_calls() -> None:
    stream: list[Delta] = [
        Start("m1", "x"),
        TextDelta("a"),
        ReasoningDelta("r"),
        ReasoningDelta("", "signature is not carried"),
        TextDelta("b"),
        RefusalDelta("c"),
        ToolCallStart(0, "c0", "f"),
        ToolCallStart(1, "c1", "g"),
        ToolCallDelta(1, '{"x":'),
        ToolCallDelta(0, "not json"),
        ToolCallDelta(1, "1}"),
        ToolCallEnd(1),
        ToolCallEnd(0),
        TextDelta("other choice", choice=1),
        Finish(FinishReason.TOOL_CALLS),
    ]
    assert data_lines(encode(stream)) == [
        {"type": "start", "messageId": "m1"},
        {"type": "start-step"},
        {"type": "text-start", "id": "t0"},
        {"type": "text-delta", "id": "t0", "delta": "a"},
        {"type": "text-end", "id": "t0"},
        {"type": "reasoning-start", "id": "r0"},
        {"type": "reasoning-delta", "id": "r0", "delta": "r"},
        {"type": "reasoning-end", "id": "r0"},
        {"type": "text-start", "id": "t1"},
        {"type": "text-delta", "id": "t1", "delta": "b"},
        {"type": "text-delta", "id": "t1", "delta": "c"},
        {"type": "text-end", "id": "t1"},
        {"type": "tool-input-start", "toolCallId": "c0", "toolName": "f"},
        {"type": "tool-input-start", "toolCallId": "c1", "toolName": "g"},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": '{"x":'},
        {"type": "tool-input-delta", "toolCallId": "c0", "inputTextDelta": "not json"},
        {"type": "tool-input-delta", "toolCallId": "c1", "inputTextDelta": "1}"},
        {"type": "tool-input-available", "toolCallId": "c1", "toolName": "g", "input": {"x": 1}},
        {
            "type": "tool-input-error",
            "toolCallId": "c0",
            "toolName": "f",
            "input": "not json",
            "errorText": "the tool arguments are not valid JSON",
        },
        {"type": "finish-step"},
        {"type": "finish", "finishReason": "tool-calls"},
        "[DONE]",
    ]


def test_a_call_without_arguments_gets_an_empty_input_object() -> None:
    stream: list[Delta] = [Start("m", "x"), ToolCallStart(0, "c", "f"), ToolCallEnd(0)]
    assert {
        "type": "tool-input-available",
        "toolCallId": "c",
        "toolName": "f",
        "input": {},
    } in data_lines(encode(stream))


@pytest.mark.parametrize(
    ("reason", "word"),
    [
        (FinishReason.STOP, "stop"),
        (FinishReason.LENGTH, "length"),
        (FinishReason.TOOL_CALLS, "tool-calls"),
        (FinishReason.CONTENT_FILTER, "content-filter"),
        (FinishReason.ERROR, "error"),
        (FinishReason.OTHER, "other"),
        (FinishReason.PAUSE, "other"),
    ],
)
def test_finish_reasons_use_the_ai_sdk_words(reason: FinishReason, word: str) -> None:
    got = data_lines(encode([Start("m", "x"), TextDelta("a"), Finish(reason, "raw")]))
    assert got[-2] == {"type": "finish", "finishReason": word}


def test_usage_goes_into_message_metadata_only_when_asked() -> None:
    assert data_lines(encode(NEUTRAL, message_metadata=True))[-2] == {
        "type": "finish",
        "finishReason": "tool-calls",
        "messageMetadata": {
            "usage": {
                "inputTokens": 20,
                "outputTokens": 10,
                "totalTokens": 30,
                "reasoningTokens": 0,
                "cachedInputTokens": 0,
            }
        },
    }
    completion = accumulate(decode([encode(NEUTRAL, message_metadata=True)])[0])
    assert completion.usage == Usage(20, 10)


def test_error_mid_stream_is_followed_only_by_done() -> None:
    encoder = VERCEL_UI.encoder()
    frames = []
    for delta in [
        Start("m", "x"),
        TextDelta("a"),
        StreamError(ErrorKind.OVERLOADED, "Upstream overloaded"),
        TextDelta("b"),
        Finish(FinishReason.STOP),
    ]:
        frames += encoder.encode(delta)
    frames += encoder.close()
    assert encoder.close() == []
    assert [f.data for f in frames][-2:] == [
        b'{"type":"error","errorText":"Upstream overloaded"}',
        b"[DONE]",
    ]


def test_a_stream_without_start_or_finish_still_opens_and_closes_the_message() -> None:
    assert data_lines(encode([TextDelta("hi")])) == [
        {"type": "start"},
        {"type": "start-step"},
        {"type": "text-start", "id": "t0"},
        {"type": "text-delta", "id": "t0", "delta": "hi"},
        {"type": "text-end", "id": "t0"},
        {"type": "finish-step"},
        {"type": "finish"},
        "[DONE]",
    ]
    assert data_lines(encode([])) == [
        {"type": "start"},
        {"type": "start-step"},
        {"type": "finish-step"},
        {"type": "finish"},
        "[DONE]",
    ]


EXPECTED: list[Delta] = [
    Start("msg_fx1", ""),
    ReasoningDelta("User wants weather."),
    TextDelta("Checking "),
    TextDelta("Paris."),
    ToolCallStart(0, "call_fxA", "get_weather"),
    ToolCallDelta(0, '{"city":"Paris"}'),
    ToolCallEnd(0),
    Finish(FinishReason.TOOL_CALLS, "tool-calls"),
]


def test_fixture_decodes_at_every_chunking() -> None:
    assert decode([FIXTURE])[1].complete
    for pieces in every_chunking(FIXTURE):
        assert decode(pieces)[0] == EXPECTED


def test_decoder_reads_errors_malformed_data_and_inputs_without_deltas() -> None:
    wire = (
        b'data: {"type":"start"}\n\n'
        b'data: {"type":"tool-input-available","toolCallId":"c","toolName":"f","input":{"a":1}}\n\n'
        b'data: {"type":"data-weather","data":{}}\n\n'
        b'data: {"type":"error","errorText":"boom"}\n\n'
    )
    deltas, decoder = decode([wire])
    assert deltas == [
        Start("", ""),
        ToolCallStart(0, "c", "f"),
        ToolCallDelta(0, '{"a":1}'),
        ToolCallEnd(0),
        StreamError(ErrorKind.SERVER, "boom"),
    ]
    assert decoder.complete
    (error,) = decode([b"data: {oops\n\n"])[0]
    assert isinstance(error, StreamError) and "malformed" in error.message


def test_directions_without_meaning_here_raise_not_implemented() -> None:
    request = Request("m", (Message("user", (TextPart("hi"),)),))
    with pytest.raises(NotImplementedError, match="browser-facing"):
        VERCEL_UI.build_request(request)
    with pytest.raises(NotImplementedError, match="non-streamed"):
        VERCEL_UI.render_response(accumulate(NEUTRAL))
    with pytest.raises(NotImplementedError, match="non-streamed"):
        VERCEL_UI.parse_response(b"{}")


_NODE_CHECK = """
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
const require = createRequire(process.env.TOKENRELAY_AI_SDK_DIR + '/package.json');
const { DefaultChatTransport, readUIMessageStream } = await import(
  pathToFileURL(require.resolve('ai')).href
);
const errors = [];
const stream = await new DefaultChatTransport({ api: process.argv[2] }).sendMessages({
  chatId: 'c1', trigger: 'submit-message', messageId: undefined, abortSignal: undefined,
  messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text: 'hi' }] }],
});
let last;
for await (const message of readUIMessageStream({
  stream, terminateOnError: false, onError: (e) => errors.push(String(e.message ?? e)),
})) last = message;
console.log(JSON.stringify({ message: last, errors }));
"""


def test_the_ai_sdk_reads_the_stream_and_sends_a_body_we_parse(tmp_path: Path) -> None:
    sdk = os.environ.get("TOKENRELAY_AI_SDK_DIR")
    if not sdk or shutil.which("node") is None:
        reason = "set TOKENRELAY_AI_SDK_DIR to a directory where `npm install ai` ran"
        missing(reason)
    script = tmp_path / "check.mjs"
    script.write_text(_NODE_CHECK)
    stream: list[Delta] = [*NEUTRAL[:-2], StreamError(ErrorKind.OVERLOADED, "busy")]
    with replay_server() as server:
        server.respond(encode(NEUTRAL), headers=HEADERS)
        server.respond(encode(stream), headers=HEADERS)
        runs = [
            subprocess.run(
                ["node", str(script), server.url + "/api/chat"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            for _ in range(2)
        ]
        body = server.requests[0][3]
    whole, errored = (orjson.loads(run.stdout) for run in runs)
    assert whole["errors"] == []
    assert whole["message"]["id"] == "msg_fx1"
    assert [p["type"] for p in whole["message"]["parts"]] == [
        "step-start",
        "reasoning",
        "text",
        "tool-get_weather",
    ]
    assert whole["message"]["parts"][2]["text"] == "Checking Paris."
    assert whole["message"]["parts"][3]["input"] == {"city": "Paris"}
    assert errored["errors"] == ["busy"]
    request = VERCEL_UI.parse_request(body)
    assert request.messages == (Message("user", (TextPart("hi"),)),)
    assert request.extra["trigger"] == "submit-message"
