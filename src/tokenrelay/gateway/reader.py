"""``Reader``: one reader's position in a stream log and its encoder (sans-IO).

Event ids. Delta ``k`` of the log encodes to frames ``0..m``; frame ``j`` goes out with
the id ``"k.j"`` (the dialect's closing frames count as delta ``N``, one past the last).
Encoders are deterministic, so a reader resuming after ``"k.j"`` re-encodes deltas
``0..k`` silently, drops frames ``0..j`` of delta ``k`` and sends the rest: exactly the
frames after that id, none twice. Without an id a reader starts from the beginning.

Falling behind. A reader that finds ``merge_backlog`` (8) or more entries waiting merges
runs of adjacent ``TextDelta``s (same choice, no logprobs) into one, so it catches up
with fewer, larger events and nothing is lost; a smaller backlog goes out event for
event. It merges only after a ``TextDelta`` of the same choice that encoded to exactly
one frame: then every dialect encodes the merged delta, and the last
delta of the run alone, to exactly one frame, and the run's frame takes the id of its
last delta. A resume replays the log unmerged and lands on the same frame boundaries.
In a *numbered* dialect (``numbered = True``: OpenAI Responses, whose clients resume by
``sequence_number``) the merged frame takes the number its last delta's frame has
unmerged (the encoder skips the others), so every reader numbers a log alike and a
number always names the same place in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from ..llm.dialect import Dialect
from ..llm.frame import Frame, Framing, to_wire
from ..llm.model import Delta, Request, StreamError, TextDelta
from ..llm.pack import unpack

__all__ = ["Reader", "parse_event_id"]


class _Attachment(Protocol):
    merge_backlog: int

    def detach(self, stream_id: str) -> None: ...

    def ping_frame(self, dialect: Dialect) -> Frame | bytes | None: ...


def parse_event_id(text: str | None) -> tuple[int, int] | None:
    """``(k, j)`` from an event id ``"k.j"``; None for no id; ``ValueError`` if malformed."""
    if text is None or text == "":
        return None
    k, sep, j = text.partition(".")
    # ASCII digits only, and few of them (int() would take any Unicode digit, and refuses
    # thousands of them with a message about Python's limits).
    if not sep or not _DIGITS.fullmatch(k) or not _DIGITS.fullmatch(j):
        raise ValueError(f"not an event id of this gateway: {text[:40]!r}")
    return int(k), int(j)


_DIGITS = re.compile(r"[0-9]{1,12}")


def _wire(frame: Frame, framing: Framing, id: str) -> bytes:
    """``to_wire([frame], framing, id=id)``, without its list, generator and checks for the
    common case (the ids here are always ``"k.j"``; JSON data has no line break)."""
    data = frame.data
    if framing != "sse" or b"\n" in data or b"\r" in data or not id:
        return to_wire([frame], framing, id=id or None)
    if frame.event is None:
        return b"id: %b\ndata: %b\n\n" % (id.encode(), data)
    return b"event: %b\nid: %b\ndata: %b\n\n" % (frame.event.encode(), id.encode(), data)


class Reader:
    """One reader's position in a stream log and its encoder: turns batches of log entries
    into wire bytes in the reader's dialect (ids ``"k.j"``, resume skipping, merging of a
    backlog). No I/O: the caller reads the store and sends."""

    __slots__ = (
        "_hub",
        "_single_text_choice",
        "dialect",
        "encoder",
        "framing",
        "ids",
        "last_id",
        "numbered",
        "pos",
        "skip_frames",
        "skip_j",
        "skip_k",
        "stream_id",
    )

    def __init__(
        self,
        hub: _Attachment,
        stream_id: str,
        dialect: Dialect,
        request: Request | None,
        after: tuple[int, int] | None,
    ) -> None:
        self._hub: _Attachment | None = hub
        self.stream_id = stream_id
        self.dialect = dialect
        self.encoder = dialect.encoder(request)
        self.framing = dialect.framing
        self.ids = dialect.event_ids  # False: events go out without ids (Gemini's clients)
        # Events numbered by the encoder, which clients resume by (OpenAI Responses'
        # starting_after): a merged run skips the numbers of the frames it stands for.
        self.numbered: Callable[[int], None] | None = (
            getattr(self.encoder, "skip", None) if getattr(dialect, "numbered", False) else None
        )
        self.skip_k, self.skip_j = after if after is not None else (-1, -1)
        self.skip_frames = -1  # how many frames the delta of the resume id encoded to
        self.last_id = ""
        self._single_text_choice: int | None = None  # choice of the last one-frame TextDelta
        self.pos = 0  # the next entry to read

    def detach(self) -> None:
        """This reader is gone (idempotent): the hub may start the grace period."""
        hub, self._hub = self._hub, None
        if hub is not None:
            hub.detach(self.stream_id)

    def ping(self) -> bytes | None:
        """The dialect's keep-alive: an event (Anthropic's, with the last id) or a comment."""
        assert self._hub is not None
        ping = self._hub.ping_frame(self.dialect)
        if isinstance(ping, Frame):
            return to_wire([ping], self.framing, id=self.last_id if self.ids else None)
        return ping

    def close(self) -> bytes:
        """The dialect's closing frames (the stream has ended and all entries are read)."""
        pos, skip_k, skip_j, framing = self.pos, self.skip_k, self.skip_j, self.framing
        out = []
        frames = self.encoder.close()
        if pos == skip_k:
            self.skip_frames = len(frames)
        for j, frame in enumerate(frames):
            if pos > skip_k or j > skip_j:
                out.append(_wire(frame, framing, f"{pos}.{j}" if self.ids else ""))
        return b"".join(out)

    def encode(self, entries: list[bytes]) -> bytes:
        """The wire bytes of the next ``entries`` of the log (b"" while a resume skips)."""
        return self.encode_deltas([unpack(e) for e in entries])

    def encode_deltas(self, deltas: list[Delta]) -> bytes:
        """``encode`` of the entries these deltas were packed into."""
        assert self._hub is not None
        pos = self.pos
        skip_k, skip_j = self.skip_k, self.skip_j
        encoder, framing, ids = self.encoder, self.framing, self.ids
        if len(deltas) == 1 and pos > skip_k:
            # One entry past any resume point (a live stream's every token): what the
            # loop below does with it, without the loop.
            delta = deltas[0]
            frames = encoder.encode(delta)
            self.pos = pos + 1
            if len(frames) == 1:
                self._single_text_choice = delta.choice if type(delta) is TextDelta else None
                if not ids:
                    return _wire(frames[0], framing, "")
                self.last_id = last_id = f"{pos}.0"
                return _wire(frames[0], framing, last_id)
            self._single_text_choice = None
            parts = []
            for j, frame in enumerate(frames):
                frame_id = f"{pos}.{j}" if ids else ""
                if ids:
                    self.last_id = frame_id
                parts.append(_wire(frame, framing, frame_id))
            return b"".join(parts)
        single_text_choice = self._single_text_choice
        # Merge only a real backlog: entries that merely arrived back to back (a busy
        # loop, a bursty upstream) go out one event each, as the upstream sent them.
        merging = len(deltas) >= self._hub.merge_backlog
        out = []
        i = 0
        n = len(deltas)
        while i < n:
            k = pos + i
            delta = deltas[i]
            if (
                merging
                and k > skip_k
                and isinstance(delta, TextDelta)
                and delta.logprobs is None
                and delta.choice == single_text_choice
            ):
                run = [delta.text]
                while i + 1 < n:
                    nxt = deltas[i + 1]
                    if not (
                        isinstance(nxt, TextDelta)
                        and nxt.logprobs is None
                        and nxt.choice == delta.choice
                    ):
                        break
                    run.append(nxt.text)
                    i += 1
                if len(run) > 1:
                    delta = TextDelta("".join(run), delta.choice)
                    k = pos + i
                    if self.numbered is not None:
                        self.numbered(len(run) - 1)
            frames = encoder.encode(delta)
            single_text_choice = (
                delta.choice if isinstance(delta, TextDelta) and len(frames) == 1 else None
            )
            if k >= skip_k:
                if k == skip_k:
                    self.skip_frames = len(frames)
                for j, frame in enumerate(frames):
                    if k > skip_k or j > skip_j:
                        self.last_id = last_id = f"{k}.{j}"
                        out.append(_wire(frame, framing, last_id if ids else ""))
            i += 1
        self.pos = pos + n
        self._single_text_choice = single_text_choice
        return out[0] if len(out) == 1 else b"".join(out)

    def fail(self, error: StreamError) -> bytes:
        """The dialect's error event for a failure of the gateway itself while reading
        (the store unreachable), without ids: a resume continues after the last real one."""
        frames = [*self.encoder.encode(error), *self.encoder.close()]
        return b"".join(to_wire([frame], self.framing) for frame in frames)
