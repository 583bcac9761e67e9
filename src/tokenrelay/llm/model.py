"""The neutral model every dialect decodes into and encodes from.

A stream is a sequence of *deltas*. It opens with one ``Start``; then content deltas of
each choice (``TextDelta``, ``ReasoningDelta``, ``RefusalDelta``, and a tool call as
``ToolCallStart``, ``ToolCallDelta``\\*, ``ToolCallEnd``); ``Usage`` whenever the upstream
reports it (each one replaces the last: they are running totals); ``Finish`` once per
choice; or a ``StreamError`` that ends the stream. Decoders guarantee this shape whatever
the upstream sent (repeated roles, repeated tool ids, indexes out of order), so encoders
can trust it.

Requests are a ``Request`` of ``Message``\\s made of parts; a non-streamed answer is a
``Completion``, which ``Accumulator`` builds from the same deltas.

Conventions, chosen once for every dialect:

- ``Usage.input_tokens`` counts *all* prompt tokens, cached ones included (OpenAI's
  convention); ``cached_tokens`` is the cached share of it. Anthropic's ``input_tokens``
  excludes cache reads, so its codec adds and subtracts them.
- Tool calls are numbered per choice by their own counter, 0, 1, 2 in order of first
  appearance, whatever the upstream's index or content block number was.
- ``Finish.reason`` is normalised; ``Finish.raw`` keeps the upstream's own word so a
  same-dialect encode can send it back unchanged.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, Literal, TypeAlias

from ..errors import RequestError

__all__ = [
    "Choice",
    "Completion",
    "Delta",
    "ErrorKind",
    "Finish",
    "FinishReason",
    "ImagePart",
    "Message",
    "Part",
    "ReasoningDelta",
    "ReasoningPart",
    "RefusalDelta",
    "Request",
    "Role",
    "Start",
    "StreamError",
    "TextDelta",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallPart",
    "ToolCallStart",
    "ToolChoice",
    "ToolResultPart",
    "Usage",
]


class FinishReason(StrEnum):
    """Why a choice ended, in the neutral vocabulary (OpenAI's words where they exist)."""

    STOP = "stop"  # natural end or a stop sequence
    LENGTH = "length"  # max tokens reached
    TOOL_CALLS = "tool_calls"  # the model called tools and waits for their results
    CONTENT_FILTER = "content_filter"  # refused or filtered
    PAUSE = "pause"  # Anthropic's pause_turn: the turn may be continued
    ERROR = "error"  # the upstream failed the generation
    OTHER = "other"  # anything else; ``Finish.raw`` tells what


class ErrorKind(StrEnum):
    """What went wrong, in a vocabulary each dialect maps to its own type and status."""

    INVALID_REQUEST = "invalid_request"  # 400
    AUTHENTICATION = "authentication"  # 401
    PERMISSION = "permission"  # 403
    NOT_FOUND = "not_found"  # 404
    REQUEST_TOO_LARGE = "request_too_large"  # 413
    RATE_LIMIT = "rate_limit"  # 429
    SERVER = "server"  # 500
    TIMEOUT = "timeout"  # 504
    OVERLOADED = "overloaded"  # 529 (Anthropic), 503 elsewhere


# The status a kind gets when nothing more specific is known.
STATUS_OF_KIND: dict[ErrorKind, int] = {
    ErrorKind.INVALID_REQUEST: 400,
    ErrorKind.AUTHENTICATION: 401,
    ErrorKind.PERMISSION: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.REQUEST_TOO_LARGE: 413,
    ErrorKind.RATE_LIMIT: 429,
    ErrorKind.SERVER: 500,
    ErrorKind.TIMEOUT: 504,
    ErrorKind.OVERLOADED: 529,
}


def kind_of_status(status: int) -> ErrorKind:
    """The error kind an HTTP status means when the body does not say."""
    for kind, code in STATUS_OF_KIND.items():
        if code == status:
            return kind
    if status == 503:
        return ErrorKind.OVERLOADED
    if status == 408:
        return ErrorKind.TIMEOUT
    if status == 422:
        return ErrorKind.INVALID_REQUEST
    return ErrorKind.SERVER if status >= 500 else ErrorKind.INVALID_REQUEST


# --- stream deltas ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """The stream opens. ``created`` is Unix seconds (0 when unknown)."""

    id: str
    model: str
    created: int = 0


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Answer text. ``logprobs`` is OpenAI Chat's per-chunk logprobs object, passed
    through untouched when both sides speak OpenAI Chat, else None."""

    text: str
    choice: int = 0
    logprobs: Any = None


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Reasoning ("thinking") text. ``signature`` is Anthropic's signature over the
    thinking block, sent as its own delta with ``text=""``; other upstreams have none."""

    text: str
    signature: str | None = None
    choice: int = 0


@dataclass(frozen=True, slots=True)
class RefusalDelta:
    """Refusal text (OpenAI's ``refusal`` field): the model declined to answer."""

    text: str
    choice: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallStart:
    """A tool call begins. ``index`` is the neutral per-choice ordinal (0, 1, 2...)."""

    index: int
    id: str
    name: str
    choice: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call's arguments (JSON text; fragments concatenate)."""

    index: int
    arguments: str
    choice: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallEnd:
    """A tool call's arguments are complete."""

    index: int
    choice: int = 0


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts so far; each ``Usage`` replaces the previous one.

    ``input_tokens`` includes ``cached_tokens``; ``output_tokens`` includes
    ``reasoning_tokens``. ``estimated`` is True when tokenrelay counted them itself
    because the upstream reported none.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Finish:
    """A choice ended. ``raw`` is the upstream's own reason word ("" when made here);
    ``stop_sequence`` the stop sequence that matched, when the upstream says."""

    reason: FinishReason
    raw: str = ""
    stop_sequence: str | None = None
    choice: int = 0


@dataclass(frozen=True, slots=True)
class StreamError:
    """The generation failed; nothing follows. ``status`` is the HTTP status the error
    would have had before the stream started (a hint for the client's dialect);
    ``raw_type`` the upstream's own error type word; ``param`` the request field to blame,
    when one is (OpenAI's error bodies carry it)."""

    kind: ErrorKind
    message: str
    status: int | None = None
    raw_type: str = ""
    param: str | None = None

    @property
    def http_status(self) -> int:
        return self.status if self.status is not None else STATUS_OF_KIND[self.kind]


def error_from_status(status: int, message: str, raw_type: str = "") -> StreamError:
    """A ``StreamError`` for an upstream HTTP error whose body said nothing useful."""
    return StreamError(
        kind_of_status(status), message or f"upstream HTTP {status}", status, raw_type
    )


def error_from_request_error(exc: RequestError) -> StreamError:
    kind = ErrorKind.REQUEST_TOO_LARGE if exc.status == 413 else kind_of_status(exc.status)
    return StreamError(kind, str(exc), exc.status, param=exc.param)


Delta: TypeAlias = (
    Start
    | TextDelta
    | ReasoningDelta
    | RefusalDelta
    | ToolCallStart
    | ToolCallDelta
    | ToolCallEnd
    | Usage
    | Finish
    | StreamError
)


# --- requests -----------------------------------------------------------------------

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by ``url`` (http(s) or a ``data:`` URL) or by base64 ``data`` with its
    ``media_type``. Codecs turn one form into the other where a dialect needs it."""

    url: str = ""
    data: str = ""
    media_type: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    """A tool call the assistant made earlier (``arguments`` is JSON text)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolResultPart:
    """The result of a tool call, sent back by the caller."""

    tool_call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ReasoningPart:
    """Earlier reasoning of the assistant (Anthropic needs it back with its signature)."""

    text: str
    signature: str = ""


Part: TypeAlias = TextPart | ImagePart | ToolCallPart | ToolResultPart | ReasoningPart


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. Tool results travel as ``role="tool"`` messages of ``ToolResultPart``s
    (one message may hold several); the system prompt as ``role="system"``."""

    role: Role
    parts: tuple[Part, ...]
    name: str = ""

    @property
    def text(self) -> str:
        """The message's text parts joined."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; ``parameters`` is its JSON Schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``auto``, ``none``, ``required`` (any tool), or ``tool`` (the one named)."""

    mode: Literal["auto", "none", "required", "tool"]
    name: str = ""


@dataclass(frozen=True, slots=True)
class Request:
    """A generation request in neutral form.

    ``extra`` holds the top-level fields of the source dialect's body that the neutral
    model has no place for (``seed``, ``response_format``, ``metadata``...), and
    ``dialect`` names that source: a codec passes ``extra`` on only to its own dialect,
    so an OpenAI-to-OpenAI hop loses nothing and a cross-dialect hop sends nothing the
    upstream would reject.
    """

    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    include_usage: bool = False
    n: int = 1
    logprobs: bool = False
    top_logprobs: int | None = None
    reasoning_budget: int | None = None  # thinking tokens; None = the upstream's default
    user: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    dialect: str = ""

    @property
    def last_user_text(self) -> str:
        """The text of the last user message ("" if there is none)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text
        return ""

    def streamed_as(self, model: str) -> Request:
        """This request as an HTTP provider sends it upstream: as ``model``, streamed,
        with usage. (``dataclasses.replace`` walks every field in Python: twice the cost,
        once per request.)"""
        values = list(_REQUEST_VALUES(self))
        values[_MODEL], values[_STREAM], values[_USAGE] = model, True, True
        return Request(*values)


_REQUEST_FIELDS = tuple(f.name for f in fields(Request))
_REQUEST_VALUES = operator.attrgetter(*_REQUEST_FIELDS)
_MODEL, _STREAM, _USAGE = (_REQUEST_FIELDS.index(n) for n in ("model", "stream", "include_usage"))


# --- non-streamed answers -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, "{}" for a call without arguments


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    text: str = ""
    reasoning: str = ""
    reasoning_signature: str = ""
    refusal: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish: Finish | None = None
    logprobs: tuple[Any, ...] = ()  # OpenAI Chat logprob entries, concatenated


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole answer: what a non-streamed response carries."""

    id: str
    model: str
    created: int = 0
    choices: tuple[Choice, ...] = ()
    usage: Usage | None = None
    error: StreamError | None = None
