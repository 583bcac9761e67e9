"""The OpenAI Chat Completions dialect's stream codec, `tokenrelay.llm.openai_chat.stream`: the
decoder and the encoder over fixtures, hand-built events and random streams, and what the
official `openai` SDK reads.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import FIXTURES, every_chunking, split_at
from tests.llm.openai_chat.helpers import (
    CAPTURES,
    FOO_LOGPROBS,
    MESSAGES,
    WRITTEN,
    K,
    R,
    check_shape,
    decode,
    encode,
    finished,
    ids,
    texts,
)
from tests.replay_server import ReplayServer
from tokenrelay.llm import (
    Choice,
    Completion,
    Delta,
    ErrorKind,
    Finish,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    Request,
    Start,
    StreamError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
    accumulate,
)
from tokenrelay.llm.openai_chat import OPENAI_CHAT
from tokenrelay.sse import Decoder

pytestmark = pytest.mark.sdk


def wire_events(wire: bytes) -> list[Any]:
    """The JSON of each event of an encoded stream, read by the SSE core ("[DONE]" as is)."""
    decoder = Decoder()
    events = decoder.feed(wire) + decoder.close()
    assert all(e.event == "message" for e in events)
    return [e.data if e.data == "[DONE]" else json.loads(e.data) for e in events]


def sse(*items: Any) -> bytes:
    """An SSE body of ``data:`` events (dicts as JSON, strings as they are)."""
    return b"".join(
        b"data: " + (i.encode() if isinstance(i, str) else json.dumps(i).encode()) + b"\n\n"
        for i in items
    )


def chunk(*choices: dict[str, Any], usage: Any = None, id: str = "c1") -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": 7,
        "model": "m",
        "choices": list(choices),
    }
    if usage is not None:
        body["usage"] = usage
    return body


def ch(index: int = 0, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


CREATED = 1727346168


GPT4O = "gpt-4o-2024-08-06"


def completion(
    id: str,
    created: int,
    *choices: Choice,
    usage: tuple[int, int] | None = None,
    error: StreamError | None = None,
) -> Completion:
    return Completion(id, GPT4O, created, choices, Usage(*usage) if usage else None, error)


SF = '{"city":"San Francisco","temperature":%d,"units":"f"}'


LONG_JSON = (
    '\n  {\n    "location": "San Francisco, CA",\n    "weather": {\n      "temperature": '
    '"18°C",\n      "condition": "Partly Cloudy",\n      "humidity": "72%",\n      '
    '"windSpeed": "15 km/h",\n      "windDirection": "NW"\n    },\n    "forecast": [\n      '
    '{\n        "day": "Monday",\n        "high": "20°C",\n        "low": "14°C",\n        '
    '"condition": "Sunny"\n      },\n      {\n        "day": "Tuesday",\n        "high": '
    '"19°C",\n        "low": "15°C",\n        "condition": "Mostly Cloudy"\n      },\n      '
    '{\n        "day": "Wednesday",\n        "high": "18°C",\n        "low": "14°C",\n        '
    '"condition": "Cloudy"\n      }\n    ]\n  }\n'
)


EXPECTED: dict[str, Completion] = {
    "openai-captures/text.sse": completion(
        "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL",
        1727346168,
        Choice(
            0,
            "I'm unable to provide real-time weather updates. To get the current weather in "
            "San Francisco, I recommend checking a reliable weather website or a weather app.",
            finish=finished(),
        ),
        usage=(14, 30),
    ),
    "openai-captures/json_content.sse": completion(
        "chatcmpl-ABfw1e5abtU8OwGr15vOreYVb2MiF",
        1727346169,
        Choice(0, SF % 61, finish=finished()),
        usage=(79, 14),
    ),
    "openai-captures/long_json_content.sse": completion(
        "chatcmpl-ABfwCjPMi0ubw56UyMIIeNfJzyogq",
        1727346180,
        Choice(0, LONG_JSON, finish=finished()),
        usage=(19, 177),
    ),
    "openai-captures/length_cutoff.sse": completion(
        "chatcmpl-ABfw3Oqj8RD0z6aJiiX37oTjV2HFh",
        1727346171,
        Choice(0, '{"', finish=finished(raw="length")),
        usage=(79, 1),
    ),
    "openai-captures/logprobs.sse": completion(
        "chatcmpl-ABfw5EzoqmfXjnnsXY7Yd8OC6tb3c",
        1727346173,
        Choice(0, "Foo!", finish=finished(), logprobs=FOO_LOGPROBS),
        usage=(9, 2),
    ),
    "openai-captures/n3_interleaved.sse": completion(
        "chatcmpl-ABfw2KKFuVXmEJgVwYfBvejMAdWtq",
        1727346170,
        Choice(0, SF % 65, finish=finished(0)),
        Choice(1, SF % 61, finish=finished(1)),
        Choice(2, SF % 59, finish=finished(2)),
        usage=(79, 42),
    ),
    "openai-captures/refusal.sse": completion(
        "chatcmpl-ABfw4IfQfCCrcuybFm41wJyxjbkz7",
        1727346172,
        Choice(0, refusal="I'm sorry, I can't assist with that request.", finish=finished()),
        usage=(79, 11),
    ),
    "openai-captures/refusal_logprobs.sse": completion(
        "chatcmpl-ABfw5GEVqPbLY576l46FZDQoNJ2KC",
        1727346173,
        Choice(0, refusal="I'm very sorry, but I can't assist with that.", finish=finished()),
        usage=(79, 12),
    ),
    "openai-captures/tool_calls_a.sse": completion(
        "chatcmpl-ABfwERreu9s99xXsVuOWtIB2UOx62",
        1727346182,
        Choice(
            0,
            tool_calls=(
                ToolCall(
                    "call_4XzlGBLtUe9dy3GVNV4jhq7h", "get_weather", '{"city":"New York City"}'
                ),
            ),
            finish=finished(raw="tool_calls"),
        ),
        usage=(44, 16),
    ),
    "openai-captures/tool_calls_b.sse": completion(
        "chatcmpl-ABfwCgi41eStOcARjZq97ohCEGBPO",
        1727346180,
        Choice(
            0,
            tool_calls=(
                ToolCall(
                    "call_CTf1nWJLqSeRgDqaCG27xZ74",
                    "get_weather",
                    '{"city":"San Francisco","state":"CA"}',
                ),
            ),
            finish=finished(raw="tool_calls"),
        ),
        usage=(48, 19),
    ),
    "openai-captures/tool_calls_c.sse": completion(
        "chatcmpl-ABfw8AOXnoa2kzy11vVTSjuQhHCQr",
        1727346176,
        Choice(
            0,
            tool_calls=(
                ToolCall(
                    "call_c91SqDXlYFuETYv8mUHzz6pp",
                    "GetWeatherArgs",
                    '{"city":"Edinburgh","country":"UK","units":"c"}',
                ),
            ),
            finish=finished(raw="tool_calls"),
        ),
        usage=(76, 24),
    ),
    "openai-captures/parallel_tool_calls.sse": completion(
        "chatcmpl-ABfwAwrNePHUgBBezonVC6MX3zd63",
        1727346178,
        Choice(
            0,
            tool_calls=(
                ToolCall(
                    "call_JMW1whyEaYG438VE1OIflxA2",
                    "GetWeatherArgs",
                    '{"city": "Edinburgh", "country": "GB", "units": "c"}',
                ),
                ToolCall(
                    "call_DNYTawLBoN8fj3KN6qU9N1Ou",
                    "get_stock_price",
                    '{"ticker": "AAPL", "exchange": "NASDAQ"}',
                ),
            ),
            finish=finished(raw="tool_calls"),
        ),
        usage=(149, 60),
    ),
    "written/openai_chat_text.sse": completion(
        "chatcmpl-fx1", CREATED, Choice(0, "Hello wörld 👋", finish=finished()), usage=(9, 4)
    ),
    "written/openai_chat_tool_calls.sse": completion(
        "chatcmpl-fx1",
        CREATED,
        Choice(
            0,
            tool_calls=(
                ToolCall("call_fxA", "get_weather", '{"city": "Paris"}'),
                ToolCall("call_fxB", "get_time", '{"tz": "Europe/Paris"}'),
            ),
            finish=finished(raw="tool_calls"),
        ),
        usage=(80, 41),
    ),
    "written/openai_chat_n2_interleaved.sse": completion(
        "chatcmpl-fx1",
        CREATED,
        Choice(0, "Hi!", finish=finished(0)),
        Choice(1, "Hey!", finish=finished(1)),
        usage=(8, 4),
    ),
    "written/openai_chat_error_midstream.sse": completion(
        "chatcmpl-fx1",
        CREATED,
        Choice(0, "Partial"),
        error=StreamError(
            K.SERVER,
            "The server had an error while processing your request.",
            None,
            "server_error",
        ),
    ),
}


FIXTURE_NAMES = sorted(EXPECTED)


# The long capture is split at every 7th byte only: every byte would be 47,000 decodes.
STRIDE = {"openai-captures/long_json_content.sse": 7}


def test_every_openai_chat_fixture_has_an_expectation() -> None:
    on_disk = {f"openai-captures/{p.name}" for p in CAPTURES.glob("*.sse")}
    on_disk |= {f"written/{p.name}" for p in WRITTEN.glob("openai_chat_*.sse")}
    assert len(on_disk) == 16
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_fixture_decodes_to_its_completion_at_every_chunking(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    whole, complete = decode([raw])
    check_shape(whole)
    assert complete
    assert accumulate(whole) == EXPECTED[name]
    for chunks in every_chunking(raw, stride=STRIDE.get(name, 1), rounds=5):
        assert decode(chunks) == (whole, True)


def test_written_tool_calls_decode_to_the_exact_delta_stream() -> None:
    deltas, _ = decode([(WRITTEN / "openai_chat_tool_calls.sse").read_bytes()])
    assert deltas == [
        Start("chatcmpl-fx1", GPT4O, CREATED),
        ToolCallStart(0, "call_fxA", "get_weather"),
        ToolCallDelta(0, '{"ci'),
        ToolCallDelta(0, 'ty": "Paris"}'),
        ToolCallStart(1, "call_fxB", "get_time"),
        ToolCallDelta(1, '{"tz": "Europe/Paris"}'),
        ToolCallEnd(0),
        ToolCallEnd(1),
        Finish(R.TOOL_CALLS, "tool_calls"),
        Usage(80, 41),
    ]


def test_interleaved_choices_decode_in_wire_order() -> None:
    deltas, _ = decode([(WRITTEN / "openai_chat_n2_interleaved.sse").read_bytes()])
    assert deltas[1:] == [
        TextDelta("Hi", 0),
        TextDelta("Hey", 1),
        TextDelta("!", 0),
        TextDelta("!", 1),
        Finish(R.STOP, "stop", None, 0),
        Finish(R.STOP, "stop", None, 1),
        Usage(8, 4),
    ]


def test_logprobs_ride_on_text_deltas_untouched() -> None:
    deltas, _ = decode([(CAPTURES / "logprobs.sse").read_bytes()])
    texts = [d for d in deltas if isinstance(d, TextDelta)]
    assert [t.logprobs for t in texts] == [
        {"content": [FOO_LOGPROBS[0]], "refusal": None},
        {"content": [FOO_LOGPROBS[1]], "refusal": None},
    ]


def test_midstream_error_ends_the_stream_and_marks_it_complete() -> None:
    raw = (WRITTEN / "openai_chat_error_midstream.sse").read_bytes()
    deltas, complete = decode([raw + sse(chunk(ch(content="after")), "[DONE]")])
    assert complete
    assert deltas[-2:] == [
        TextDelta("Partial"),
        StreamError(
            K.SERVER, "The server had an error while processing your request.", None, "server_error"
        ),
    ]


START = Start("c1", "m", 7)


ERR = {"message": "boom", "type": "server_error", "param": None, "code": None}


QUIRKS: dict[str, tuple[bytes, list[Delta], bool]] = {
    "role repeated on every chunk": (
        sse(
            chunk(ch(role="assistant", content="Hel")),
            chunk(ch(role="assistant", content="lo")),
            chunk(ch(role="assistant", finish="stop")),
            "[DONE]",
        ),
        [START, TextDelta("Hel"), TextDelta("lo"), Finish(R.STOP, "stop")],
        True,
    ),
    "tool call id, type and name repeated": (
        sse(
            *(
                chunk(
                    ch(
                        tool_calls=[
                            {
                                "index": 0,
                                "id": "t1",
                                "type": "function",
                                "function": {"name": "f", "arguments": a},
                            }
                        ]
                    )
                )
                for a in ["", '{"a"', ": 1}"]
            ),
            chunk(ch(finish="tool_calls")),
            "[DONE]",
        ),
        [
            START,
            ToolCallStart(0, "t1", "f"),
            ToolCallDelta(0, '{"a"'),
            ToolCallDelta(0, ": 1}"),
            ToolCallEnd(0),
            Finish(R.TOOL_CALLS, "tool_calls"),
        ],
        True,
    ),
    "tool call index 1 before 0": (
        sse(
            chunk(ch(tool_calls=[{"index": 1, "id": "tb", "function": {"name": "b"}}])),
            chunk(ch(tool_calls=[{"index": 0, "id": "ta", "function": {"name": "a"}}])),
            chunk(ch(tool_calls=[{"index": 1, "function": {"arguments": "{}"}}])),
            chunk(ch(finish="tool_calls")),
            "[DONE]",
        ),
        [
            START,
            ToolCallStart(0, "tb", "b"),
            ToolCallStart(1, "ta", "a"),
            ToolCallDelta(0, "{}"),
            ToolCallEnd(0),
            ToolCallEnd(1),
            Finish(R.TOOL_CALLS, "tool_calls"),
        ],
        True,
    ),
    "choice 1 before choice 0": (
        sse(
            chunk(ch(1, role="assistant", content="one")),
            chunk(ch(0, role="assistant", content="zero")),
            chunk(ch(1, finish="stop"), ch(0, finish="length")),
            "[DONE]",
        ),
        [
            START,
            TextDelta("one", 1),
            TextDelta("zero", 0),
            Finish(R.STOP, "stop", None, 1),
            Finish(R.LENGTH, "length", None, 0),
        ],
        True,
    ),
    "reasoning as reasoning_content or reasoning": (
        sse(
            chunk(ch(reasoning_content="Let me ")),
            chunk(ch(reasoning="think.", content=None)),
            chunk(ch(content="Done.")),
            "[DONE]",
        ),
        [START, ReasoningDelta("Let me "), ReasoningDelta("think."), TextDelta("Done.")],
        True,
    ),
    "error as a data event": (
        sse(chunk(ch(content="a")), {"error": ERR}, chunk(ch(content="b"))),
        [START, TextDelta("a"), StreamError(K.SERVER, "boom", None, "server_error")],
        True,
    ),
    "error as a non-standard error: field (older llama.cpp)": (
        sse(chunk(ch(content="a")))
        + b'error: {"code":500,"message":"llama died","type":"server_error"}\n\n',
        [START, TextDelta("a"), StreamError(K.SERVER, "llama died", 500, "server_error")],
        True,
    ),
    "error as a raw JSON line inside a 200": (
        sse(chunk(ch(content="a")))
        + b'{"error": {"message": "context too long", "type": "invalid_request_error"}}\n',
        [
            START,
            TextDelta("a"),
            StreamError(K.INVALID_REQUEST, "context too long", None, "invalid_request_error"),
        ],
        True,
    ),
    "a raw JSON error as the whole body, without a line end": (
        b'{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}',
        [StreamError(K.RATE_LIMIT, "slow down", None, "requests")],
        True,
    ),
    "error as an event: error": (
        sse(chunk(ch(content="a")))
        + b'event: error\ndata: {"message": "overloaded", "code": 503}\n\n',
        [START, TextDelta("a"), StreamError(K.OVERLOADED, "overloaded", 503, "")],
        True,
    ),
    "[DONE] without a blank line": (
        sse(chunk(ch(content="a", finish="stop"))) + b"data: [DONE]",
        [START, TextDelta("a"), Finish(R.STOP, "stop")],
        True,
    ),
    "finish_reason and usage in the last content chunk": (
        sse(
            chunk(ch(content="a")),
            chunk(
                ch(content="b", finish="stop"), usage={"prompt_tokens": 3, "completion_tokens": 2}
            ),
            "[DONE]",
        ),
        [START, TextDelta("a"), TextDelta("b"), Finish(R.STOP, "stop"), Usage(3, 2)],
        True,
    ),
    "cached and reasoning token details": (
        sse(
            chunk(ch(content="a", finish="stop")),
            chunk(
                usage={
                    "prompt_tokens": 100,
                    "completion_tokens": 50,
                    "total_tokens": 150,
                    "prompt_tokens_details": {"cached_tokens": 80},
                    "completion_tokens_details": {"reasoning_tokens": 30},
                }
            ),
            "[DONE]",
        ),
        [START, TextDelta("a"), Finish(R.STOP, "stop"), Usage(100, 50, 80, 30)],
        True,
    ),
    "DeepSeek's prompt_cache_hit_tokens": (
        sse(
            chunk(
                usage={"prompt_tokens": 10, "completion_tokens": 1, "prompt_cache_hit_tokens": 8}
            ),
            "[DONE]",
        ),
        [START, Usage(10, 1, 8)],
        True,
    ),
    "usage repeated on every chunk (continuous usage stats)": (
        sse(
            chunk(ch(content="a"), usage={"prompt_tokens": 3, "completion_tokens": 1}),
            chunk(ch(finish="stop"), usage={"prompt_tokens": 3, "completion_tokens": 1}),
            chunk(usage={"prompt_tokens": 3, "completion_tokens": 2}),
            "[DONE]",
        ),
        [START, TextDelta("a"), Usage(3, 1), Finish(R.STOP, "stop"), Usage(3, 2)],
        True,
    ),
    "CRLF line ends, comments and unknown events": (
        (
            b": keep-alive\r\n\r\n"
            + sse(chunk(ch(content="a"))).replace(b"\n", b"\r\n")
            + b'event: ping\r\ndata: {"type": "ping"}\r\n\r\n'
            + b"data: [DONE]\r\n\r\n"
        ),
        [START, TextDelta("a")],
        True,
    ),
    "malformed JSON in an event": (
        sse(chunk(ch(content="a"))) + b'data: {"id": "c1", "choices": [\n\n',
        [
            START,
            TextDelta("a"),
            StreamError(K.SERVER, "upstream sent malformed data (not a JSON object)"),
        ],
        True,
    ),
    "a stream cut mid-event": (
        sse(chunk(ch(content="a"))) + b'data: {"id": "c1", "cho',
        [START, TextDelta("a")],
        False,
    ),
    "a whole non-streamed answer instead of a stream": (
        json.dumps(
            {
                "id": "c1",
                "object": "chat.completion",
                "created": 7,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "hi"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
            }
        ).encode(),
        [START, TextDelta("hi"), Usage(1, 1), Finish(R.STOP, "stop")],
        True,
    ),
    "Azure's prompt filter chunk before the answer": (
        sse(
            {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": [{"prompt_index": 0}],
            },
            chunk(ch(content="a")),
            "[DONE]",
        ),
        [START, TextDelta("a")],
        True,
    ),
    "tool calls keyed by id, arguments as an object": (
        sse(
            chunk(
                ch(
                    tool_calls=[
                        {"id": "x", "function": {"name": "f", "arguments": {"q": 1}}},
                        {"id": "y", "function": {"name": "g", "arguments": {}}},
                    ]
                )
            ),
            chunk(ch(finish="tool_calls")),
            "[DONE]",
        ),
        [
            START,
            ToolCallStart(0, "x", "f"),
            ToolCallDelta(0, '{"q":1}'),
            ToolCallStart(1, "y", "g"),
            ToolCallEnd(0),
            ToolCallEnd(1),
            Finish(R.TOOL_CALLS, "tool_calls"),
        ],
        True,
    ),
    "vLLM's stop_reason names the stop sequence": (
        sse(
            chunk(
                ch(content="a"),
                {"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "###"},
            ),
            "[DONE]",
        ),
        [START, TextDelta("a"), Finish(R.STOP, "stop", "###")],
        True,
    ),
    "a float timestamp and no [DONE]": (
        sse({**chunk(ch(content="a")), "created": 7.9}),
        [START, TextDelta("a")],
        False,
    ),
    "unknown finish words": (
        sse(chunk(ch(finish="eos"), ch(1, finish="weird")), "[DONE]"),
        [START, Finish(R.STOP, "eos"), Finish(R.OTHER, "weird", None, 1)],
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(QUIRKS))
def test_upstream_quirk_is_normalised_at_every_chunking(name: str) -> None:
    raw, expected, complete = QUIRKS[name]
    for chunks in every_chunking(raw, rounds=5):
        deltas, done = decode(chunks)
        assert deltas == expected
        assert done is complete
    check_shape(expected)


@given(st.binary(max_size=300), st.lists(st.integers(1, 299), max_size=5))
def test_no_input_crashes_the_decoder(data: bytes, cuts: list[int]) -> None:
    deltas, _ = decode(split_at(data, [c for c in cuts if c < len(data)]))
    check_shape(deltas)


@given(st.lists(st.sampled_from(list(QUIRKS)), min_size=1, max_size=3), st.binary(max_size=40))
def test_quirk_streams_with_noise_never_break_the_stream_shape(
    names: list[str], noise: bytes
) -> None:
    deltas, _ = decode([b"".join(QUIRKS[n][0] for n in names) + noise])
    check_shape(deltas)


def atoms(wire: bytes) -> list[tuple[Any, ...]]:
    """What a stream says, one fact at a time, whatever the chunk boundaries."""
    out: list[tuple[Any, ...]] = []
    for event in wire_events(wire):
        if event == "[DONE]":
            out.append(("done",))
            continue
        if "error" in event:
            out.append(("error", event["error"]))
            continue
        out.append(("head", event["id"], event["object"], event["created"], event["model"]))
        for choice in event["choices"]:
            c, delta = choice["index"], choice["delta"]
            if "role" in delta:
                out.append(("role", c, delta["role"]))
            if delta.get("content"):
                out.append(("content", c, delta["content"], choice.get("logprobs")))
            for key in ("refusal", "reasoning_content"):
                if delta.get(key):
                    out.append((key, c, delta[key]))
            out += [("tool", c, call) for call in delta.get("tool_calls") or []]
            if choice.get("finish_reason"):
                out.append(("finish", c, choice["finish_reason"]))
        if event.get("usage"):
            out.append(("usage", with_usage_details(event["usage"])))
    return [a for i, a in enumerate(out) if a[0] != "head" or a not in out[:i]]


def with_usage_details(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
        **usage,
    }


def normalised(event: Any) -> Any:
    """A fixture event minus what the neutral model does not carry: system_fingerprint,
    `usage: null`, `refusal: null` in a delta, `content: null` (for "") in a role delta,
    and usage details left out (they mean 0)."""
    if event == "[DONE]" or "error" in event:
        return event
    event = {k: v for k, v in event.items() if k != "system_fingerprint"}
    if event.get("usage") is None:
        event.pop("usage", None)
    else:
        event["usage"] = with_usage_details(event["usage"])
    for choice in event["choices"]:
        delta = choice["delta"]
        if delta.get("refusal", "") is None:
            del delta["refusal"]
        if "role" in delta and delta.get("content") is None:
            delta["content"] = ""
    return event


# Fixtures whose chunking the encoder reproduces exactly; the others put the role in the
# same chunk as the first tool call, or logprobs on the role and refusal chunks.
EXACT = [
    "written/openai_chat_text.sse",
    "written/openai_chat_tool_calls.sse",
    "written/openai_chat_n2_interleaved.sse",
    "written/openai_chat_error_midstream.sse",
    "openai-captures/text.sse",
    "openai-captures/json_content.sse",
    "openai-captures/length_cutoff.sse",
    "openai-captures/long_json_content.sse",
    "openai-captures/n3_interleaved.sse",
    "openai-captures/parallel_tool_calls.sse",
]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_decoding_then_encoding_a_fixture_says_the_same(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    deltas, _ = decode([raw])
    assert atoms(encode(deltas)) == atoms(raw)


@pytest.mark.parametrize("name", EXACT)
def test_decoding_then_encoding_a_fixture_gives_its_events(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    deltas, _ = decode([raw])
    assert wire_events(encode(deltas)) == [normalised(e) for e in wire_events(raw)]


def test_choices_and_tool_calls_first_appear_in_ascending_order() -> None:
    wire = encode(
        [
            Start("c", "m", 1),
            TextDelta("late", 2),
            ToolCallStart(5, "t5", "f", 1),  # an out-of-range index is renumbered
            ToolCallStart(3, "t3", "g", 1),
            ToolCallDelta(3, "{}", 1),
            ToolCallEnd(5, 1),
            ToolCallEnd(3, 1),
        ]
    )
    assert atoms(wire)[1:] == [
        ("role", 0, "assistant"),
        ("role", 1, "assistant"),
        ("role", 2, "assistant"),
        ("content", 2, "late", None),
        (
            "tool",
            1,
            {
                "index": 0,
                "id": "t5",
                "type": "function",
                "function": {"name": "f", "arguments": ""},
            },
        ),
        (
            "tool",
            1,
            {
                "index": 1,
                "id": "t3",
                "type": "function",
                "function": {"name": "g", "arguments": ""},
            },
        ),
        ("tool", 1, {"index": 1, "function": {"arguments": "{}"}}),
        ("tool", 1, {"index": 0, "function": {"arguments": "{}"}}),
        ("done",),
    ]


def test_a_tool_call_without_arguments_gets_an_empty_object_even_without_its_end() -> None:
    wire = encode([Start("c", "m"), ToolCallStart(0, "t", "f"), Finish(R.TOOL_CALLS)])
    assert atoms(wire)[-3:] == [
        ("tool", 0, {"index": 0, "function": {"arguments": "{}"}}),
        ("finish", 0, "tool_calls"),
        ("done",),
    ]


def test_every_chunk_carries_id_object_created_and_the_requested_model() -> None:
    request = Request("my-alias", (), include_usage=True)
    wire = encode(
        [Start("chatcmpl-9", "upstream-model", 42), TextDelta("a"), Usage(1, 1), Finish(R.STOP)],
        request,
    )
    events = wire_events(wire)
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        assert {k: event[k] for k in ("id", "object", "created", "model")} == {
            "id": "chatcmpl-9",
            "object": "chat.completion.chunk",
            "created": 42,
            "model": "my-alias",
        }
        assert isinstance(event["choices"], list)


@pytest.mark.parametrize(
    ("request_", "usage_sent"),
    [
        (None, True),
        (Request("m", (), include_usage=True), True),
        (Request("m", (), include_usage=False), False),
    ],
)
def test_usage_chunk_comes_last_after_every_finish_only_when_asked(
    request_: Request | None, usage_sent: bool
) -> None:
    deltas: list[Delta] = [
        Start("c", "m"),
        TextDelta("a"),
        Usage(10, 4, 2, 1),  # before the finishes: held back
        TextDelta("b", 1),
        Finish(R.STOP),
        Finish(R.LENGTH, choice=1),
    ]
    kinds = [a[0] for a in atoms(encode(deltas, request_))]
    tail = ["finish", "finish", *(["usage"] if usage_sent else []), "done"]
    assert kinds[-len(tail) :] == tail
    if usage_sent:
        assert wire_events(encode(deltas, request_))[-2]["usage"] == {
            "prompt_tokens": 10,
            "completion_tokens": 4,
            "total_tokens": 14,
            "prompt_tokens_details": {"cached_tokens": 2},
            "completion_tokens_details": {"reasoning_tokens": 1},
        }
        assert wire_events(encode(deltas, request_))[-2]["choices"] == []


def test_reasoning_goes_out_as_reasoning_content_and_signatures_are_dropped() -> None:
    wire = encode(
        [Start("c", "m"), ReasoningDelta("hmm"), ReasoningDelta("", "sig"), TextDelta("a")]
    )
    assert atoms(wire)[1:] == [
        ("role", 0, "assistant"),
        ("reasoning_content", 0, "hmm"),
        ("content", 0, "a", None),
        ("done",),
    ]


@pytest.mark.parametrize(
    ("finish", "word"),
    [
        (Finish(R.STOP), "stop"),
        (Finish(R.STOP, "end_turn"), "stop"),
        (Finish(R.STOP, "stop_sequence", "###"), "stop"),
        (Finish(R.LENGTH, "max_tokens"), "length"),
        (Finish(R.TOOL_CALLS, "tool_use"), "tool_calls"),
        (Finish(R.CONTENT_FILTER, "refusal"), "content_filter"),
        (Finish(R.CONTENT_FILTER, "content_filter"), "content_filter"),
        (Finish(R.PAUSE, "pause_turn"), "stop"),
        (Finish(R.ERROR), "error"),
        (Finish(R.OTHER, "length"), "stop"),  # raw is ours but means another reason
        (Finish(R.OTHER, "MALFORMED_FUNCTION_CALL"), "stop"),
    ],
)
def test_finish_reason_words(finish: Finish, word: str) -> None:
    event = wire_events(encode([Start("c", "m"), finish]))[-2]
    assert event["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": word}]


def test_nothing_follows_an_error_and_close_is_idempotent() -> None:
    encoder = OPENAI_CHAT.encoder()
    frames = encoder.encode(Start("c", "m")) + encoder.encode(TextDelta("a"))
    frames += encoder.encode(StreamError(K.OVERLOADED, "busy"))
    assert encoder.encode(TextDelta("b")) == []
    assert encoder.close() == []
    assert json.loads(frames[-1].data) == {
        "error": {"message": "busy", "type": "overloaded_error", "param": None, "code": None}
    }
    encoder = OPENAI_CHAT.encoder()
    encoder.encode(Start("c", "m"))
    assert [f.data for f in encoder.close()] == [b"[DONE]"]
    assert encoder.close() == []


ASK_USAGE = Request("gpt-test", (), include_usage=True)


def serve(server: ReplayServer, deltas: Sequence[Delta], request: Request = ASK_USAGE) -> None:
    server.respond(encode(deltas, request))


def test_sdk_stream_helper_reads_text_reasoning_and_usage(
    server: ReplayServer, client: openai.OpenAI
) -> None:
    serve(
        server,
        [
            Start("chatcmpl-1", "upstream", 1700000000),
            ReasoningDelta("Think"),
            ReasoningDelta("ing."),
            ReasoningDelta("", "sig"),
            TextDelta("Hello"),
            TextDelta(" wörld"),
            Usage(10, 5, 3, 2),
            Finish(R.STOP),
        ],
    )
    with client.chat.completions.stream(
        model="gpt-test", messages=MESSAGES, stream_options={"include_usage": True}
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "content.done" in kinds
    assert final.id == "chatcmpl-1" and final.model == "gpt-test"
    message = final.choices[0].message
    assert message.role == "assistant"
    assert message.content == "Hello wörld"
    assert (message.model_extra or {})["reasoning_content"] == "Thinking."
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (10, 5)
    assert final.usage.prompt_tokens_details is not None
    assert final.usage.prompt_tokens_details.cached_tokens == 3
    assert final.usage.completion_tokens_details is not None
    assert final.usage.completion_tokens_details.reasoning_tokens == 2


def test_sdk_stream_helper_reads_several_tool_calls_with_and_without_arguments(
    server: ReplayServer, client: openai.OpenAI
) -> None:
    serve(
        server,
        [
            Start("chatcmpl-2", "m", 1),
            TextDelta("Let me look."),
            ToolCallStart(0, "call_a", "get_weather"),
            ToolCallDelta(0, '{"city": '),
            ToolCallDelta(0, '"Paris"}'),
            ToolCallEnd(0),
            ToolCallStart(1, "call_b", "get_time"),
            ToolCallEnd(1),
            ToolCallStart(2, "call_c", "noop"),
            ToolCallDelta(2, "{}"),
            ToolCallEnd(2),
            Finish(R.TOOL_CALLS, "tool_use"),
        ],
    )
    with client.chat.completions.stream(model="gpt-test", messages=MESSAGES) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.id, c.type, c.function.name, c.function.arguments) for c in calls] == [
        ("call_a", "function", "get_weather", '{"city": "Paris"}'),
        ("call_b", "function", "get_time", "{}"),
        ("call_c", "function", "noop", "{}"),
    ]
    assert [(e.index, e.name) for e in done] == [(0, "get_weather"), (1, "get_time"), (2, "noop")]
    assert final.choices[0].message.content == "Let me look."
    assert final.choices[0].finish_reason == "tool_calls"


def test_sdk_stream_helper_reads_interleaved_choices_that_began_out_of_order(
    server: ReplayServer, client: openai.OpenAI
) -> None:
    serve(
        server,
        [
            Start("chatcmpl-3", "m", 1),
            TextDelta("B1", 1),
            RefusalDelta("No.", 2),
            TextDelta("A1", 0),
            TextDelta("B2", 1),
            Finish(R.STOP, choice=1),
            Finish(R.STOP, choice=2),  # (length or content_filter: the helper raises)
            Finish(R.STOP, "end_turn", choice=0),
        ],
    )
    with client.chat.completions.stream(model="gpt-test", messages=MESSAGES, n=3) as stream:
        final = stream.get_final_completion()
    got = [(c.index, c.message.content, c.message.refusal, c.finish_reason) for c in final.choices]
    assert got == [
        (0, "A1", None, "stop"),
        (1, "B1B2", None, "stop"),
        (2, "", "No.", "stop"),
    ]


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_sdk_reads_every_fixture_as_reencoded(
    server: ReplayServer, client: openai.OpenAI, name: str
) -> None:
    deltas, _ = decode([(FIXTURES / name).read_bytes()])
    serve(server, deltas)
    expected = EXPECTED[name]
    texts: dict[int, str] = {}
    calls: dict[tuple[int, int], list[str]] = {}
    stream = client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError) if expected.error else contextlib.nullcontext():
        for c in stream:
            for choice in c.choices:
                texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
                for call in choice.delta.tool_calls or []:
                    assert call.function is not None
                    got = calls.setdefault((choice.index, call.index), [])
                    got.append(call.function.arguments or "")
    assert texts == {choice.index: choice.text for choice in expected.choices}
    assert {k: "".join(v) for k, v in calls.items()} == {
        (choice.index, i): call.arguments
        for choice in expected.choices
        for i, call in enumerate(choice.tool_calls)
    }


@pytest.mark.parametrize("reason", list(FinishReason))
def test_sdk_raw_stream_reads_each_finish_reason(
    server: ReplayServer, client: openai.OpenAI, reason: FinishReason
) -> None:
    serve(server, [Start("c", "m", 1), TextDelta("x"), Finish(reason), Usage(1, 1)])
    chunks = list(
        client.chat.completions.create(
            model="gpt-test",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == {R.ERROR: "error", R.PAUSE: "stop", R.OTHER: "stop"}.get(
        reason, reason.value
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert [c.choices[0].delta.role for c in chunks if c.choices] == ["assistant", None, None]


@pytest.mark.parametrize("helper", [False, True])
def test_sdk_raises_api_error_on_an_error_mid_stream(
    server: ReplayServer, client: openai.OpenAI, helper: bool
) -> None:
    serve(
        server,
        [Start("c", "m", 1), TextDelta("Partial"), StreamError(K.RATE_LIMIT, "Slow down", 429)],
    )
    with pytest.raises(openai.APIError) as caught:
        if helper:
            with client.chat.completions.stream(model="gpt-test", messages=MESSAGES) as stream:
                list(stream)
        else:
            list(client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True))
    assert caught.value.message == "Slow down"
    assert caught.value.type == "rate_limit_error"
    assert caught.value.code == "rate_limit_exceeded"


logprobs = st.one_of(
    st.none(),
    st.builds(
        lambda t: {
            "content": [
                {"token": t, "logprob": -0.5, "bytes": list(t.encode()), "top_logprobs": []}
            ],
            "refusal": None,
        },
        texts,
    ),
)


@st.composite
def streams(draw: st.DrawFn) -> list[Delta]:
    n = draw(st.integers(1, 3))
    # Per choice, its content in order; choices then interleave at random.
    queues: list[list[Delta]] = []
    for c in range(n):
        items: list[Delta] = []
        calls = 0
        for kind in draw(st.lists(st.sampled_from("trsc"), max_size=6)):
            if kind == "t":
                items.append(TextDelta(draw(texts), c, draw(logprobs)))
            elif kind == "r":
                items.append(ReasoningDelta(draw(texts), draw(st.sampled_from([None, "sig"])), c))
            elif kind == "s":
                items.append(RefusalDelta(draw(texts), c))
            else:
                items.append(ToolCallStart(calls, draw(ids), draw(ids), c))
                items += [ToolCallDelta(calls, a, c) for a in draw(st.lists(texts, max_size=3))]
                items.append(ToolCallEnd(calls, c))
                calls += 1
        queues.append(items)
    out: list[Delta] = [Start(draw(ids), draw(texts), draw(st.integers(0, 2**31)))]
    while any(queues):
        out.append(draw(st.sampled_from([q for q in queues if q])).pop(0))
    usage = st.builds(Usage, *[st.integers(0, 10**6)] * 4, st.booleans())
    if draw(st.booleans()):
        out.append(
            StreamError(draw(st.sampled_from(list(ErrorKind))), draw(texts), draw(st.none()))
        )
        return out
    ends: list[Delta] = [
        Finish(
            draw(st.sampled_from(list(FinishReason))),
            draw(st.sampled_from(["", "stop", "x"])),
            draw(st.one_of(st.none(), texts)),
            c,
        )
        for c in range(n)
    ]
    if draw(st.booleans()):
        ends.insert(draw(st.integers(0, len(ends))), draw(usage))
    return out + ends


WORD = {
    R.STOP: "stop",
    R.LENGTH: "length",
    R.TOOL_CALLS: "tool_calls",
    R.CONTENT_FILTER: "content_filter",
    R.PAUSE: "stop",
    R.ERROR: "error",
    R.OTHER: "stop",
}


REASON = {
    "stop": R.STOP,
    "length": R.LENGTH,
    "tool_calls": R.TOOL_CALLS,
    "content_filter": R.CONTENT_FILTER,
    "error": R.ERROR,
}


def as_decoded(c: Completion) -> Completion:
    """What a neutral stream says that this dialect carries: no signatures, no estimated
    flag, no stop sequence, finish reasons as their wire words, errors as kind, message
    and type word (not the status)."""
    error = None
    if c.error is not None:
        word = OPENAI_CHAT.error_body(c.error)[1]["error"]["type"]
        error = StreamError(c.error.kind, c.error.message, None, word)
    return replace(
        c,
        choices=tuple(
            replace(
                choice,
                reasoning_signature="",
                finish=None
                if choice.finish is None
                else Finish(
                    REASON[WORD[choice.finish.reason]],
                    WORD[choice.finish.reason],
                    None,
                    choice.index,
                ),
            )
            for choice in c.choices
        ),
        usage=None if c.usage is None else replace(c.usage, estimated=False),
        error=error,
    )


@given(streams())
def test_any_valid_stream_survives_encode_then_decode(deltas: list[Delta]) -> None:
    decoded, complete = decode([encode(deltas)])
    check_shape(decoded)
    assert complete
    assert accumulate(decoded) == as_decoded(accumulate(deltas))
