"""A running stream, the one owner of what the gateway knows about it: its typed metadata,
its generation task, its readers here, its grace timer and how it ended; and the one
``StreamEnded`` record it hands to metrics and logs."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ..llm.model import Delta, ErrorKind, Request, StreamError, Tool, ToolChoice, Usage
from ..providers.base import UpstreamError

__all__ = [
    "EndReason",
    "RunningStream",
    "StreamEnded",
    "StreamMeta",
    "cancelled_error",
    "closing_error",
    "interrupted_error",
]

First = Delta | UpstreamError


class EndReason(StrEnum):
    """How a stream's generation ended (the ``why`` label of
    ``tokenrelay_streams_ended_total``)."""

    COMPLETED = "completed"  # the upstream finished it
    ERROR = "error"  # the upstream, or the gateway, failed
    DELETED = "deleted"  # DELETE /v1/streams/{id}, on any instance
    DISCONNECTED = "disconnected"  # every reader, anywhere, left; the grace period ran out
    SHUTDOWN = "shutdown"  # its instance stopped and the drain time ran out
    INTERRUPTED = "interrupted"  # its instance vanished; another one ended it


# The ends a client must be able to tell from a finished answer: the log ends with the
# dialect's error event, which the official SDKs raise on (a finish reason would not do:
# OpenAI's and Anthropic's words have none for "cut", and their SDKs return normally).
CUT = frozenset({EndReason.DELETED, EndReason.DISCONNECTED})
INTERRUPTING = frozenset({EndReason.SHUTDOWN, EndReason.INTERRUPTED})


def interrupted_error() -> StreamError:
    """The error that ends a stream whose gateway instance stopped before the upstream
    finished: what was sent so far stays, and is resumable."""
    return StreamError(
        ErrorKind.SERVER,
        "stream interrupted: the gateway instance generating it stopped; "
        "the text so far is complete up to here",
        503,
        raw_type="interrupted",
    )


def cancelled_error(reason: EndReason) -> StreamError:
    """The error that ends a stream the gateway cancelled before the upstream finished."""
    why = (
        "it was cancelled (DELETE /v1/streams/{id})"
        if reason is EndReason.DELETED
        else "every reader left and the grace period ran out"
    )
    return StreamError(
        ErrorKind.SERVER,
        f"stream cancelled: {why}; the text before this is all there is",
        None,
        raw_type="cancelled",
    )


def closing_error() -> StreamError:
    """The error that ends a reader's connection when its gateway instance shuts down:
    the stream itself may go on (a shared store), so the reader can resume elsewhere."""
    return StreamError(
        ErrorKind.OVERLOADED,
        "this gateway instance is shutting down: resume after the last event id "
        "(GET /v1/streams/{id} with Last-Event-ID)",
        503,
        raw_type="shutting_down",
    )


@dataclass(frozen=True, slots=True)
class StreamMeta:
    """What a stream's readers need to encode it, kept in the store beside its log."""

    dialect: str
    model: str
    n: int = 1
    include_usage: bool = False
    created: int = 0
    route: str = ""  # the model route it was served by (metrics)
    key: str = ""  # a hash of the client key that started it ("" without auth)
    settings: Mapping[str, Any] = field(default_factory=dict)  # what encoders echo
    # A stored Responses turn's conversation (its input items and instructions, for
    # previous_response_id): None for every other stream, whose prompt is not kept.
    conversation: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, request: Request, **fields: Any) -> StreamMeta:
        """A stream's metadata for ``request``: with the settings its encoders echo (the
        Responses API repeats ``max_output_tokens``, ``tools``, ``metadata``...), so that
        a reader on any instance encodes exactly what the first one did. Never the
        messages: a prompt is not kept in the store (unless the caller asks, a stored
        Responses turn: ``conversation``)."""
        settings = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "tools": [[t.name, t.description, dict(t.parameters)] for t in request.tools],
            "tool_choice": None
            if request.tool_choice is None
            else [request.tool_choice.mode, request.tool_choice.name],
            "parallel_tool_calls": request.parallel_tool_calls,
            "user": request.user,
            "extra": dict(request.extra),
            "dialect": request.dialect,
        }
        return cls(
            model=request.model,
            n=request.n,
            include_usage=request.include_usage,
            settings=settings,
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dialect": self.dialect,
            "model": self.model,
            "n": self.n,
            "include_usage": self.include_usage,
            "created": self.created,
            "route": self.route,
            "key": self.key,
            "settings": self.settings,  # not copied: nothing changes it (one per open stream)
            **({} if self.conversation is None else {"conversation": dict(self.conversation)}),
        }

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> StreamMeta:
        """From the store's copy (written by any gateway version: lenient)."""

        def get(key: str, kind: type, default: Any) -> Any:
            value = raw.get(key, default)
            return value if isinstance(value, kind) and not isinstance(value, bool) else default

        return cls(
            dialect=get("dialect", str, ""),
            model=get("model", str, ""),
            n=max(1, get("n", int, 1)),
            include_usage=raw.get("include_usage") is True,
            created=get("created", int, 0),
            route=get("route", str, ""),
            key=get("key", str, ""),
            settings=get("settings", dict, {}),
            conversation=raw.get("conversation")
            if isinstance(raw.get("conversation"), dict)
            else None,
        )

    def request(self) -> Request:
        """The request a reader's encoder needs (no messages: they are not kept)."""
        s = self.settings

        def number(key: str) -> Any:
            value = s.get(key)
            return value if isinstance(value, int | float) and not isinstance(value, bool) else None

        tools = tuple(
            Tool(t[0], t[1], t[2])
            for t in s.get("tools") or ()
            if isinstance(t, list) and len(t) == 3 and isinstance(t[0], str)
            and isinstance(t[1], str) and isinstance(t[2], dict)
        )  # fmt: skip
        choice = s.get("tool_choice")
        tool_choice = (
            ToolChoice(choice[0], choice[1])
            if isinstance(choice, list) and len(choice) == 2
            and choice[0] in ("auto", "none", "required", "tool") and isinstance(choice[1], str)
            else None
        )  # fmt: skip
        parallel = s.get("parallel_tool_calls")
        extra = s.get("extra")
        user, dialect = s.get("user"), s.get("dialect")
        return Request(
            model=self.model,
            messages=(),
            stream=True,
            max_tokens=number("max_tokens"),
            temperature=number("temperature"),
            top_p=number("top_p"),
            tools=tools,
            tool_choice=tool_choice,
            parallel_tool_calls=parallel if isinstance(parallel, bool) else None,
            include_usage=self.include_usage,
            n=self.n,
            user=user if isinstance(user, str) else "",
            extra=extra if isinstance(extra, dict) else {},
            dialect=dialect if isinstance(dialect, str) else "",
        )


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """One stream's end, for metrics and the log."""

    stream_id: str
    meta: StreamMeta
    usage: Usage
    reason: EndReason


class Sink(Protocol):
    """A reader here that takes the log's new entries as they are appended (``push``:
    the deltas themselves, which ``unpack`` would give back exactly), instead of waiting
    for the store to wake it: see ``StreamHub.follow``."""

    def push(self, start: int, deltas: list[Delta]) -> None: ...

    def ended(self) -> None: ...


class RunningStream:
    """A generation running in this process, and its readers here."""

    __slots__ = (
        "cancel_reason",
        "created",
        "first",
        "grace",
        "had_reader",
        "id",
        "keep",
        "length",
        "meta",
        "readers",
        "sinks",
        "task",
    )

    def __init__(
        self, stream_id: str, meta: StreamMeta, first: asyncio.Future[First], keep: bool = False
    ) -> None:
        self.id = stream_id
        self.meta = meta
        self.keep = keep  # runs to its end whoever reads it (no grace period)
        self.first = first  # the first delta (committed), or the error before any
        self.task: asyncio.Task[None] | None = None
        self.readers = 0
        self.had_reader = False
        self.grace: asyncio.TimerHandle | None = None
        self.cancel_reason: EndReason | None = None  # why we cancelled the task
        self.length = 0  # entries the producer has appended to the log
        self.sinks: list[Sink] = []  # readers here that are pushed every new entry
        # Done once the stream's log exists (cancelled: it never will); None: it existed
        # before the producer started (``StreamHub.start``).
        self.created: asyncio.Future[None] | None = None

    def cancel(self, reason: EndReason) -> bool:
        """Stop the generation; False if it is not running."""
        if self.task is None or self.task.done():
            return False
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.task.cancel()
        return True

    def stop_grace(self) -> None:
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None
