"""Hypothesis strategies for neutral delta streams, limited to what a set of dialects carries.

``streams(features)`` draws a valid stream (the shape model.py promises) using only the
features named; ``CARRIES`` says which features each dialect carries end to end.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hypothesis import strategies as st

from tokenrelay.llm import (
    Completion,
    Delta,
    Finish,
    FinishReason,
    ReasoningDelta,
    RefusalDelta,
    Start,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)

ALL = frozenset(
    {
        "reasoning",
        "signature",
        "refusal",
        "tools",
        "choices",
        "cached",
        "reasoning_tokens",
        "length",
        "content_filter",
    }
)
CARRIES: dict[str, frozenset[str]] = {
    "openai_chat": ALL - {"signature"},
    "anthropic": frozenset(
        {"reasoning", "signature", "tools", "cached", "length", "content_filter"}
    ),
    "openai_responses": frozenset(
        {"reasoning", "refusal", "tools", "cached", "reasoning_tokens", "length", "content_filter"}
    ),
    "gemini": frozenset(
        {
            "reasoning",
            "signature",
            "tools",
            "choices",
            "cached",
            "reasoning_tokens",
            "length",
            "content_filter",
        }
    ),
    "ollama": frozenset({"reasoning", "tools", "length"}),
}

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
_ident = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,10}", fullmatch=True)
_json_scalar = st.one_of(st.integers(-1000, 1000), st.booleans(), _text, st.none())
_args = st.dictionaries(_ident, _json_scalar, max_size=3)


def _fragments(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def _choice(draw: Any, features: frozenset[str], c: int) -> tuple[list[Delta], Finish]:
    out: list[Delta] = []
    if "reasoning" in features and draw(st.booleans()):
        for piece in draw(st.lists(_text, min_size=1, max_size=3)):
            out.append(ReasoningDelta(piece, choice=c))
        if "signature" in features and draw(st.booleans()):
            out.append(ReasoningDelta("", draw(_ident), choice=c))
    refused = "refusal" in features and draw(st.booleans())
    if refused:
        out += [RefusalDelta(p, c) for p in draw(st.lists(_text, min_size=1, max_size=3))]
    else:
        out += [TextDelta(p, c) for p in draw(st.lists(_text, max_size=4))]
    calls = (
        draw(
            st.lists(st.tuples(_ident, _args, st.lists(st.integers(0, 50), max_size=3)), max_size=3)
        )
        if "tools" in features and not refused
        else []
    )
    for i, (name, args, cuts) in enumerate(calls):
        out.append(ToolCallStart(i, f"call_{c}_{i}", name, c))
        text = json.dumps(args) if args else ""
        out += [ToolCallDelta(i, f, c) for f in _fragments(text, cuts)]
        out.append(ToolCallEnd(i, c))
    if calls:
        reason = FinishReason.TOOL_CALLS
    elif refused and "content_filter" in features:
        reason = FinishReason.CONTENT_FILTER
    elif "length" in features and draw(st.booleans()):
        reason = FinishReason.LENGTH
    else:
        reason = FinishReason.STOP
    return out, Finish(reason, choice=c)


@st.composite
def streams(draw: Any, features: frozenset[str] = ALL) -> list[Delta]:
    """A valid neutral stream using only ``features``."""
    n = draw(st.integers(1, 3)) if "choices" in features else 1
    out: list[Delta] = [Start(draw(_ident), draw(_ident), draw(st.integers(0, 2**31)))]
    finishes = []
    for c in range(n):
        body, finish = draw(_choice(features, c))
        out += body
        finishes.append(finish)
    inputs = draw(st.integers(0, 10_000))
    outputs = draw(st.integers(0, 10_000))
    usage = Usage(
        inputs,
        outputs,
        cached_tokens=draw(st.integers(0, inputs)) if "cached" in features else 0,
        reasoning_tokens=draw(st.integers(0, outputs)) if "reasoning_tokens" in features else 0,
    )
    usage_first = draw(st.booleans())
    return out + ([usage, *finishes] if usage_first else [*finishes, usage])


def essence(completion: Completion) -> dict[str, Any]:
    """What must survive a round trip: text, reasoning, refusal, calls (arguments as
    parsed JSON), finish reasons and token counts. Ids, timestamps and raw words aside."""
    usage = completion.usage
    return {
        "choices": [
            {
                "text": c.text,
                "reasoning": c.reasoning,
                "signature": c.reasoning_signature,
                "refusal": c.refusal,
                "calls": [(t.name, json.loads(t.arguments)) for t in c.tool_calls],
                "finish": c.finish.reason if c.finish else None,
            }
            for c in completion.choices
        ],
        "usage": None
        if usage is None
        else (
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_tokens,
            usage.reasoning_tokens,
        ),
    }
