"""What the OpenAI Chat Completions test modules share."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from hypothesis import strategies as st

from tests.conftest import FIXTURES
from tests.dialect_helpers import feed_all
from tokenrelay.llm import (
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
    ToolCallDelta,
    ToolCallEnd,
    ToolCallPart,
    ToolCallStart,
)
from tokenrelay.llm.openai_chat import OPENAI_CHAT

CAPTURES = FIXTURES / "openai-captures"


WRITTEN = FIXTURES / "written"


R = FinishReason


K = ErrorKind


def decode(chunks: Iterable[bytes]) -> tuple[list[Delta], bool]:
    decoder = OPENAI_CHAT.decoder()
    return feed_all(decoder, chunks), decoder.complete


def check_shape(deltas: Sequence[Delta]) -> None:
    """The stream shape model.py promises, whatever the upstream sent."""
    starts = [d for d in deltas if isinstance(d, Start)]
    if starts:
        assert len(starts) == 1 and deltas[0] is starts[0]
    errors = [i for i, d in enumerate(deltas) if isinstance(d, StreamError)]
    assert errors in ([], [len(deltas) - 1])
    finished: set[int] = set()
    calls: dict[tuple[int, int], str] = {}  # state per call: open / ended
    for d in deltas:
        if isinstance(d, Finish):
            assert d.choice not in finished
            finished.add(d.choice)
        elif isinstance(d, ToolCallStart):
            assert (d.choice, d.index) not in calls
            assert d.index == sum(1 for c, _ in calls if c == d.choice)  # 0, 1, 2...
            calls[d.choice, d.index] = "open"
        elif isinstance(d, ToolCallDelta | ToolCallEnd):
            assert calls.get((d.choice, d.index)) == "open"
            if isinstance(d, ToolCallEnd):
                calls[d.choice, d.index] = "ended"
        if isinstance(d, TextDelta | ReasoningDelta | RefusalDelta | ToolCallStart):
            assert d.choice not in finished


def finished(choice: int = 0, raw: str = "stop") -> Finish:
    return Finish(
        {"stop": R.STOP, "length": R.LENGTH, "tool_calls": R.TOOL_CALLS}[raw], raw, None, choice
    )


FOO_LOGPROBS = (
    {"token": "Foo", "logprob": -0.0025094282, "bytes": [70, 111, 111], "top_logprobs": []},
    {"token": "!", "logprob": -0.26638845, "bytes": [33], "top_logprobs": []},
)


def encode(deltas: Iterable[Delta], request: Request | None = None) -> bytes:
    return OPENAI_CHAT.encoder(request).encode_all(deltas)


MESSAGES: Any = [{"role": "user", "content": "hi"}]


texts = st.text(min_size=1, max_size=12)


ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=10)


calls = st.builds(ToolCallPart, ids, ids, st.sampled_from(['{"a": 1}', "{}", "[1]"]))


names = st.sampled_from(["", "ann"])
