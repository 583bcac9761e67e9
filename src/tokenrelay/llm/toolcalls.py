"""Tool calls across dialects: numbering them in streams (``ToolCallTracker``), holding
them whole for dialects that send a call in one piece (``WholeCalls``), ids for the calls
of a request (``CallIds``) and arguments as an object (``args_object``)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from .jsonio import loads
from .model import Delta, ToolCallDelta, ToolCallEnd, ToolCallStart

__all__ = ["CallIds", "ToolCallTracker", "WholeCall", "WholeCalls", "args_object"]


class ToolCallTracker:
    """Numbers tool calls per choice and drops what upstreams repeat.

    Upstreams key a call by an index, a content block number or nothing at all; the
    tracker maps each (choice, key) to the neutral ordinal 0, 1, 2 in order of first
    appearance, emits ``ToolCallStart`` once (later ids and names for the same key are
    ignored), and ``ToolCallEnd`` once. A call whose upstream gave no id gets
    ``f"call_{prefix}_{ordinal}"``.
    """

    __slots__ = ("_count", "_index", "_open", "called", "id_prefix")

    def __init__(self, id_prefix: str = "") -> None:
        self.id_prefix = id_prefix
        self._index: dict[tuple[int, object], int] = {}
        self._open: dict[tuple[int, object], int] = {}
        self._count: dict[int, int] = {}
        # Choices that made at least one call (a dict: an empty set costs 216 bytes per
        # open stream, an empty dict 64).
        self.called: dict[int, None] = {}

    def start(self, choice: int, key: object, id: str | None, name: str) -> list[Delta]:
        if (choice, key) in self._index:
            return []
        index = self._count.get(choice, 0)
        self._count[choice] = index + 1
        self._index[choice, key] = index
        self._open[choice, key] = index
        self.called[choice] = None
        prefix = f"call_{self.id_prefix}_" if self.id_prefix else "call_"
        call_id = id or f"{prefix}{index}"
        return [ToolCallStart(index, call_id, name, choice)]

    def known(self, choice: int, key: object) -> bool:
        return (choice, key) in self._index

    def arguments(self, choice: int, key: object, fragment: str) -> list[Delta]:
        index = self._index.get((choice, key))
        if index is None or not fragment or (choice, key) not in self._open:
            return []
        return [ToolCallDelta(index, fragment, choice)]

    def end(self, choice: int, key: object) -> list[Delta]:
        index = self._open.pop((choice, key), None)
        return [] if index is None else [ToolCallEnd(index, choice)]

    def end_all(self, choice: int | None = None) -> list[Delta]:
        """End every open call (of one choice, or of all), in ordinal order."""
        keys = sorted(
            (k for k in self._open if choice is None or k[0] == choice),
            key=lambda k: (k[0], self._open[k]),
        )
        out: list[Delta] = []
        for k in keys:
            out += self.end(*k)
        return out


@dataclass(frozen=True, slots=True)
class WholeCall:
    """A tool call of one choice, its arguments joined: what ``WholeCalls`` releases."""

    index: int
    id: str
    name: str
    arguments: str


class WholeCalls:
    """Holds streamed tool calls until they end, for encoders of dialects that send each
    call in one piece (Gemini, Ollama).

    Their decoders number calls by position, so ended calls are released per choice in
    ordinal order: a call that ends before a lower one waits for it.
    """

    def __init__(self) -> None:
        self._open: dict[tuple[int, int], tuple[str, str, list[str]]] = {}
        self._ended: dict[int, dict[int, WholeCall]] = {}  # per choice, waiting for lower
        self._next: dict[int, int] = {}

    def start(self, delta: ToolCallStart) -> None:
        self._open[delta.choice, delta.index] = (delta.id, delta.name, [])

    def arguments(self, delta: ToolCallDelta) -> None:
        if (call := self._open.get((delta.choice, delta.index))) is not None:
            call[2].append(delta.arguments)

    def end(self, delta: ToolCallEnd) -> list[WholeCall]:
        """The calls of ``delta.choice`` this end releases, in ordinal order."""
        call = self._open.pop((delta.choice, delta.index), None)
        if call is None:
            return []
        waiting = self._ended.setdefault(delta.choice, {})
        waiting[delta.index] = WholeCall(delta.index, call[0], call[1], "".join(call[2]))
        n = self._next.get(delta.choice, 0)
        ready = []
        while n in waiting:
            ready.append(waiting.pop(n))
            n += 1
        self._next[delta.choice] = n
        return ready

    def end_all(self, choice: int | None = None) -> list[tuple[int, list[WholeCall]]]:
        """End every open call (of one choice, or of all) and release every ended one:
        ``(choice, calls)`` batches in the order they became ready (each open call's end,
        by ordinal; then, for every choice that has ended calls, what was still waiting,
        perhaps nothing)."""
        out: list[tuple[int, list[WholeCall]]] = []
        for c, index in sorted(k for k in self._open if choice is None or k[0] == choice):
            if ready := self.end(ToolCallEnd(index, c)):
                out.append((c, ready))
        for c, waiting in self._ended.items():
            if choice is None or c == choice:
                out.append((c, [waiting.pop(i) for i in sorted(waiting)]))
        return out


def args_object(arguments: str) -> Any:
    """A tool call's JSON arguments as the object that dialects sending arguments as an
    object (not as JSON text) need: ``{}`` when empty, ``{"arguments": <the text>}`` when
    not a JSON object."""
    if not arguments:
        return {}
    try:
        value = loads(arguments)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"arguments": arguments}


class CallIds:
    """Ids for the tool calls of a request whose dialect may give none, and the call each
    tool result answers.

    ``call`` numbers the request's calls: one without an id gets ``call_{k}``, ``k`` its
    ordinal among them. ``result`` returns the id of the pending call a result answers,
    and marks that call answered: the call with the result's own id if it gives one, else
    the oldest call of its name. A result that answers no pending call keeps its own id,
    or gets ``call_{name}``. With ``by_name`` (Gemini, whose results always name their
    function) a result answers only calls of its own name; without it (Ollama), an id
    alone picks the call, and a result with neither id nor name answers the oldest call.
    """

    def __init__(self, *, by_name: bool) -> None:
        self._by_name = by_name
        self._count = 0
        self._pending: deque[tuple[str, str]] = deque()  # (name, id) not yet answered

    def call(self, name: str, given: str) -> str:
        call_id = given or f"call_{self._count}"
        self._count += 1
        self._pending.append((name, call_id))
        return call_id

    def result(self, name: str, given: str) -> str:
        for entry in self._pending:
            if given:
                found = entry[1] == given and (not self._by_name or entry[0] == name)
            else:
                found = entry[0] == name or (not self._by_name and not name)
            if found:
                self._pending.remove(entry)
                return entry[1]
        return given or f"call_{name}"
