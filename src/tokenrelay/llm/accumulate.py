"""Folding a delta stream into a whole ``Completion`` (for non-streamed responses)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .model import (
    Choice,
    Completion,
    Delta,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    Start,
    StreamError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    Usage,
)

__all__ = ["Accumulator", "accumulate"]


@dataclass(slots=True)
class _Call:
    id: str
    name: str
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Choice:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    signature: str = ""
    refusal: list[str] = field(default_factory=list)
    calls: dict[int, _Call] = field(default_factory=dict)
    finish: Finish | None = None
    logprobs: list[Any] = field(default_factory=list)


class Accumulator:
    """Add deltas with ``add``; ``completion()`` gives the answer so far.

    Text is joined once, at the end (no quadratic string growth). A tool call with no
    argument fragments gets ``"{}"``, the empty object every dialect means by it.
    """

    def __init__(self) -> None:
        self.start: Start | None = None
        self.usage: Usage | None = None
        self.error: StreamError | None = None
        self._choices: dict[int, _Choice] = {}

    def _choice(self, index: int) -> _Choice:
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = _Choice()
        return choice

    def add(self, delta: Delta) -> None:
        match delta:
            case TextDelta(text=text, choice=c, logprobs=logprobs):
                choice = self._choice(c)
                choice.text.append(text)
                if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
                    choice.logprobs += logprobs["content"]
            case ReasoningDelta(text=text, signature=signature, choice=c):
                choice = self._choice(c)
                choice.reasoning.append(text)
                if signature:
                    choice.signature += signature
            case RefusalDelta(text=text, choice=c):
                self._choice(c).refusal.append(text)
            case ToolCallStart(index=i, id=id, name=name, choice=c):
                self._choice(c).calls[i] = _Call(id, name)
            case ToolCallDelta(index=i, arguments=arguments, choice=c):
                call = self._choice(c).calls.get(i)
                if call is not None:
                    call.arguments.append(arguments)
            case ToolCallEnd():
                pass
            case Finish(choice=c):
                self._choice(c).finish = delta
            case Usage():
                self.usage = delta
            case Start():
                self.start = delta
            case StreamError():
                self.error = delta

    def add_all(self, deltas: Iterable[Delta]) -> Accumulator:
        for delta in deltas:
            self.add(delta)
        return self

    def text(self, choice: int = 0) -> str:
        c = self._choices.get(choice)
        return "".join(c.text) if c else ""

    def completion(self) -> Completion:
        start = self.start or Start("", "")
        choices = []
        for index in sorted(self._choices) or [0]:
            c = self._choices.get(index) or _Choice()
            calls = tuple(
                ToolCall(call.id, call.name, "".join(call.arguments) or "{}")
                for _, call in sorted(c.calls.items())
            )
            choices.append(
                Choice(
                    index=index,
                    text="".join(c.text),
                    reasoning="".join(c.reasoning),
                    reasoning_signature=c.signature,
                    refusal="".join(c.refusal),
                    tool_calls=calls,
                    finish=c.finish,
                    logprobs=tuple(c.logprobs),
                )
            )
        return Completion(
            id=start.id,
            model=start.model,
            created=start.created,
            choices=tuple(choices),
            usage=self.usage,
            error=self.error,
        )


def accumulate(deltas: Iterable[Delta]) -> Completion:
    """The ``Completion`` that ``deltas`` add up to."""
    return Accumulator().add_all(deltas).completion()


def replay(completion: Completion) -> list[Delta]:
    """The deltas of a whole ``Completion``, in stream order: how a non-streamed upstream
    answer is served to a streaming client (and the inverse of ``accumulate``)."""
    out: list[Delta] = [Start(completion.id, completion.model, completion.created)]
    for choice in completion.choices:
        c = choice.index
        if choice.reasoning:
            out.append(ReasoningDelta(choice.reasoning, choice=c))
        if choice.reasoning_signature:
            out.append(ReasoningDelta("", choice.reasoning_signature, choice=c))
        if choice.text:
            logprobs = {"content": list(choice.logprobs)} if choice.logprobs else None
            out.append(TextDelta(choice.text, c, logprobs))
        if choice.refusal:
            out.append(RefusalDelta(choice.refusal, c))
        for i, call in enumerate(choice.tool_calls):
            out.append(ToolCallStart(i, call.id, call.name, c))
            out.append(ToolCallDelta(i, call.arguments, c))
            out.append(ToolCallEnd(i, c))
    if completion.usage is not None:
        out.append(completion.usage)
    for choice in completion.choices:
        if choice.finish is not None:
            out.append(choice.finish)
    if completion.error is not None:
        out.append(completion.error)
    return out
