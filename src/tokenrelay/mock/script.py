"""What each model of the fake LLM says: deterministic delta scripts, sans-IO.

``script(request, id=..., created=...)`` returns the whole neutral stream a model produces
for a request, and the list of *token* positions (the deltas that take one token-interval
each); the server only adds the timing. The same scripts back the gateway's in-process
``mock`` provider, so both answer alike.

Models (the model name may carry a fault suffix, ``echo@drop:3``; see ``faults``):

- ``echo`` streams the last user message back, a word at a time (each word keeps the
  whitespace before it, so the pieces join to the exact message).
- ``lorem`` streams ``max_tokens`` words of lorem ipsum (16 when the request sets no
  limit) and finishes with ``length`` when the limit cut it, else ``stop``.
- ``think`` streams reasoning ("Thinking about: <message>", signed) and then echoes.
- ``tool`` calls the first tool of the request (or the one ``tool_choice`` names) with
  arguments built from its JSON Schema; ``tools`` calls every tool. String parameters get
  the last user message, numbers 1, booleans true, arrays [] and objects {}.

Usage is counted, not estimated: the mock is the upstream, and its count is the truth
it reports (prompt by ``estimate_prompt_tokens``, output one per streamed piece). The
prompt's count comes right after ``Start`` (as Anthropic's ``message_start`` and Gemini's
chunks say it before the first token), the whole usage again before ``Finish``.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import RequestError
from ..llm.estimate import estimate_prompt_tokens
from ..llm.jsonio import dumps
from ..llm.model import (
    Delta,
    Finish,
    FinishReason,
    ReasoningDelta,
    Request,
    Start,
    TextDelta,
    Tool,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)

__all__ = ["MODELS", "Script", "script", "split_words"]

_WORD = re.compile(r"\s*\S+|\s+")
_LOREM = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud "
    "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat"
).split()
DEFAULT_LOREM_TOKENS = 16
MAX_TOKENS = 32_768
"""The most tokens any answer has (more is cut, with finish ``length``): a fake model in
the gateway's own process must not build a million-token answer at once."""


@dataclass(frozen=True, slots=True)
class Script:
    """A model's whole answer: ``deltas`` in order, and ``tokens[i]`` says whether
    ``deltas[i]`` is a token (paced by the token interval) or rides with its neighbour."""

    deltas: tuple[Delta, ...]
    tokens: tuple[bool, ...]

    @property
    def token_count(self) -> int:
        return sum(self.tokens)


def split_words(text: str) -> list[str]:
    """``text`` in word pieces that join back to exactly ``text``."""
    return _WORD.findall(text)


class _Builder:
    def __init__(self, request: Request, id: str, created: int) -> None:
        self.request = request
        # The prompt's count is known before the first token, and said then, as
        # Anthropic's message_start does (encoders keep the latest usage; the final one
        # comes with the finish).
        prompt = Usage(estimate_prompt_tokens(request), 0)
        self.deltas: list[Delta] = [Start(id, request.model, created), prompt]
        self.tokens: list[bool] = [False, False]
        self.output = 0

    def token(self, *deltas: Delta) -> None:
        """Deltas that together make one streamed token."""
        for i, delta in enumerate(deltas):
            self.deltas.append(delta)
            self.tokens.append(i == 0)
        self.output += 1

    def extra(self, delta: Delta) -> None:
        self.deltas.append(delta)
        self.tokens.append(False)

    def finish(self, reason: FinishReason) -> Script:
        prompt = estimate_prompt_tokens(self.request)
        self.extra(Usage(prompt, self.output))
        self.extra(Finish(reason))
        return Script(tuple(self.deltas), tuple(self.tokens))


def _echo(b: _Builder) -> Script:
    text = b.request.last_user_text
    end = 0
    for match in itertools.islice(_WORD.finditer(text), MAX_TOKENS):  # at most MAX_TOKENS
        b.token(TextDelta(match.group()))
        end = match.end()
    return b.finish(FinishReason.LENGTH if end < len(text) else FinishReason.STOP)


def _lorem(b: _Builder) -> Script:
    limit = b.request.max_tokens
    count = min(MAX_TOKENS, DEFAULT_LOREM_TOKENS if limit is None else limit)
    for i in range(count):
        b.token(TextDelta(_LOREM[i % len(_LOREM)] if i == 0 else " " + _LOREM[i % len(_LOREM)]))
    return b.finish(FinishReason.STOP if limit is None else FinishReason.LENGTH)


def _think(b: _Builder) -> Script:
    text = b.request.last_user_text
    for word in split_words(f"Thinking about: {text}"):
        b.token(ReasoningDelta(word))
    signature = hashlib.sha256(text.encode()).hexdigest()
    b.extra(ReasoningDelta("", signature))
    return _echo(b)


def _value_for(schema: Any, text: str) -> Any:
    kind = schema.get("type") if isinstance(schema, Mapping) else None
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    return {
        "integer": 1,
        "number": 1,
        "boolean": True,
        "array": [],
        "object": {},
        "null": None,
    }.get(str(kind), text)


def _arguments(tool: Tool, text: str) -> str:
    properties = tool.parameters.get("properties") or {}
    if not isinstance(properties, Mapping):
        properties = {}
    return dumps({name: _value_for(schema, text) for name, schema in properties.items()}).decode()


def _call(b: _Builder, tools: list[Tool]) -> Script:
    text = b.request.last_user_text
    for index, tool in enumerate(tools):
        arguments = _arguments(tool, text)
        b.token(ToolCallStart(index, f"call_mock_{index}", tool.name))
        # Two fragments, cut inside the JSON, as providers stream them.
        cut = len(arguments) // 2
        for fragment in (arguments[:cut], arguments[cut:]):
            if fragment:
                b.token(ToolCallDelta(index, fragment))
        b.extra(ToolCallEnd(index))
    return b.finish(FinishReason.TOOL_CALLS)


def _chosen_tools(request: Request, every: bool) -> list[Tool]:
    if not request.tools:
        raise RequestError(
            f"model {request.model!r} calls tools: the request must declare some", param="tools"
        )
    choice = request.tool_choice
    if choice is not None and choice.mode == "tool":
        named = [t for t in request.tools if t.name == choice.name]
        if not named:
            raise RequestError(
                f"tool_choice names {choice.name!r}, which is not declared", param="tool_choice"
            )
        return named
    return list(request.tools) if every else [request.tools[0]]


MODELS: dict[str, Callable[[_Builder], Script]] = {
    "echo": _echo,
    "lorem": _lorem,
    "think": _think,
    "tool": lambda b: _call(b, _chosen_tools(b.request, every=False)),
    "tools": lambda b: _call(b, _chosen_tools(b.request, every=True)),
}


def script(request: Request, *, id: str, created: int = 0) -> Script:
    """The stream the model ``request.model`` produces (``KeyError`` for another model,
    ``RequestError`` when the request does not suit the model)."""
    return MODELS[request.model](_Builder(request, id, created))
