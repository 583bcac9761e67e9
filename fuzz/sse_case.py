"""The fuzz input format, and the differential check both the fuzzer and replays use.

No atheris here: ``python fuzz/sse_case.py FILE...`` replays saved inputs against whatever
``tokenrelay`` the interpreter imports (the project's .venv has the ordinary -O2 build),
prints each case as Python and says whether the two decoders agree.

An input is a 4-byte header, chunk sizes, then the stream:

    h0     max_line_bytes selector   (see ``limit``)
    h1     max_event_bytes selector
    h2     bits 0-2  initial last_event_id (``IDS``)
           bit 3     expand runs: ``F5 F5 c x`` in the stream becomes x * (c+1)*64 bytes
           bits 4-5  chunk-size scale: 1, 8, 64 or 1024
           bit 6     feed array.array('B') (an exact-size allocation, so ASan sees a
                     read one past the end) instead of bytes
           bit 7     no feed(b"") before each close(), so close() raises an error
                     still owed from the last feed()
    h3     bits 0-4  k, the number of chunk-size bytes that follow
           bits 5-7  111: hostile mode (see ``run_hostile``), no differential check
    k bytes          chunk sizes, used in turn (times the scale; 0 feeds an empty chunk);
                     after MAX_CHUNKS chunks, the rest of each connection goes whole
    rest             the stream; ``FE FE`` ends a connection (close(), then the next one
                     goes through the same decoder), up to MAX_CONNECTIONS

Short inputs are padded with zeros. Each connection ends with feed(b"") and close(); after
the last, one more small stream checks the decoder is usable after close().
"""

from __future__ import annotations

import array
import gc
import sys
from dataclasses import dataclass, field
from typing import Any

CLOSE = b"\xfe\xfe"
RUN = b"\xf5\xf5"
MAX_STREAM = 1 << 20  # bytes, after expanding runs
MAX_CHUNKS = 2048  # then the rest of each connection goes in one piece (keeps runs fast)
MAX_CONNECTIONS = 64  # the last one keeps any further FE FE as bytes
HEADER = 4

SPECIAL_LIMITS = [
    4095,
    4096,
    4097,
    65535,
    65536,  # KEEP_BYTES in _cdecoder.c: buffers above it are freed after use
    65537,
    131072,
    1 << 20,
    16 * 1024 * 1024,  # the default
    2**31 - 1,
    sys.maxsize,
]
IDS = ["", "7", "\u00e9", "\u2603", "x" * 300, "a\x00b", "\ud800", "id-1"]
SCALES = [1, 8, 64, 1024]
AFTER_CLOSE = b"id: after\ndata: probe\r\n\r\n"


def limit(selector: int) -> int:
    """A limit from one byte: 1..96, 96..2352 in steps of 24, or a special value."""
    if selector < 0x60:
        return 1 + selector
    if selector < 0xC0:
        return 96 + (selector - 0x60) * 24
    return SPECIAL_LIMITS[(selector - 0xC0) % len(SPECIAL_LIMITS)]


def expand(stream: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(stream) and len(out) < MAX_STREAM:
        at = stream.find(RUN, i)
        if at < 0 or at + 4 > len(stream):
            out += stream[i:]
            break
        out += stream[i:at]
        count, byte = stream[at + 2], stream[at + 3]
        out += bytes([byte]) * ((count + 1) * 64)
        i = at + 4
    return bytes(out[:MAX_STREAM])


@dataclass
class Case:
    max_line: int
    max_event: int
    initial_id: str
    as_array: bool
    hostile: bool
    feed_empty: bool = True
    connections: list[list[bytes]] = field(default_factory=list)


def parse(data: bytes) -> Case:
    if len(data) < HEADER:
        data = data + bytes(HEADER - len(data))
    h0, h1, h2, h3 = data[:HEADER]
    k = h3 & 0x1F
    scale = SCALES[(h2 >> 4) & 3]
    sizes = [b * scale for b in data[HEADER : HEADER + k]]
    stream = data[HEADER + k :]
    if h2 & 0x08:
        stream = expand(stream)
    case = Case(
        max_line=limit(h0),
        max_event=limit(h1),
        initial_id=IDS[h2 & 7],
        as_array=bool(h2 & 0x40),
        hostile=(h3 >> 5) == 7,
        feed_empty=not h2 & 0x80,
    )
    turn = 0
    for body in stream.split(CLOSE, MAX_CONNECTIONS - 1):
        chunks: list[bytes] = []
        if not any(sizes):
            chunks.append(body)
        else:
            at = 0
            while at < len(body):
                size = sizes[turn % len(sizes)] if turn < MAX_CHUNKS else len(body)
                turn += 1
                chunks.append(body[at : at + size])
                at += size
        case.connections.append(chunks)
    return case


def as_input(chunk: bytes, as_array: bool) -> Any:
    # bytes objects carry a trailing NUL inside their allocation, so reading one byte
    # past the end goes unnoticed. An array made from a list allocates exactly its
    # length (made from bytes it would keep spare room).
    return array.array("B", list(chunk)) if as_array else chunk


def observe(decoder: Any, step: Any, too_large: type[Exception]) -> tuple[Any, ...]:
    """Everything a caller can see of one call: its result or error, and the state after."""
    try:
        result: Any = step()
        if type(result) is not list:
            raise AssertionError(f"{type(decoder).__name__} returned {type(result)!r}")
        result = [
            (type(e).__name__, *fields, *map(type, fields))  # the values and their types
            for e in result
            for fields in [(e.data, e.event, e.id, e.retry)]
        ]
    except too_large as error:  # tokenrelay's own error only; anything else propagates
        what, lim, size = error.what, error.limit, error.size  # type: ignore[attr-defined]
        result = ("error", type(error).__name__, what, lim, size, str(error))
    last_id, retry = decoder.last_event_id, decoder.retry
    return (result, last_id, type(last_id), retry, type(retry))


class Mismatch(AssertionError):
    pass


def run_differential(case: Case, c_class: Any, py_class: Any, too_large: type[Exception]) -> int:
    """Feed both decoders the same calls; raise Mismatch at the first difference.
    Returns the number of calls made."""
    c = c_class(case.initial_id, max_line_bytes=case.max_line, max_event_bytes=case.max_event)
    py = py_class(case.initial_id, max_line_bytes=case.max_line, max_event_bytes=case.max_event)
    calls = 0

    def both(what: str, call_c: Any, call_py: Any) -> None:
        nonlocal calls
        calls += 1
        seen_c = observe(c, call_c, too_large)
        seen_py = observe(py, call_py, too_large)
        if seen_c != seen_py:
            raise Mismatch(
                f"call {calls} ({what}) differs:\n  C:  {seen_c!r}\n  Py: {seen_py!r}\n"
                f"case: {describe(case)}"
            )

    connections = [*case.connections, [AFTER_CLOSE]]
    last = [b""] if case.feed_empty else []
    for number, chunks in enumerate(connections):
        for index, chunk in enumerate([*chunks, *last]):
            feed_c = as_input(chunk, case.as_array)
            feed_py = as_input(chunk, case.as_array)
            both(
                f"connection {number} feed {index} {chunk[:40]!r}",
                lambda x=feed_c: c.feed(x),  # type: ignore[misc]
                lambda x=feed_py: py.feed(x),  # type: ignore[misc]
            )
        both(f"connection {number} close", c.close, py.close)
    return calls


def run_hostile(case: Case, c_class: Any, too_large: type[Exception], budget: int = 64) -> None:
    """The C decoder alone, with the cyclic GC collecting at nearly every allocation and
    finalizers that close or feed this same decoder while it is inside feed() (making an
    event or an error allocates, and may collect). Only memory safety is checked: ASan
    reports, crashes, and events that hold anything but exact str/int/None."""
    c = c_class(case.initial_id, max_line_bytes=case.max_line, max_event_bytes=case.max_event)
    actions = [
        lambda: c.close(),
        lambda: c.feed(b"data: r\n\n"),
        lambda: c.feed(b"data: partial line "),
        lambda: c.feed(b"event: e\nid: 9\r"),
        lambda: c.feed(b"\n"),
        lambda: c.feed(b"x" * 70000),  # past KEEP_BYTES: a buffer freed and regrown
        lambda: c.feed(b"data: " + b"y" * 70000 + b"\n"),
    ]
    # Armed only inside the outer feed(), where the decoder is mid-work; collections
    # elsewhere (the harness allocates too) only make new garbage for the next one.
    state: dict[str, Any] = {"left": budget, "turn": 0, "failure": None, "armed": False}

    class Hostile:
        def __del__(self) -> None:
            if state["left"] <= 0:
                return
            if not state["armed"]:
                garbage()
                return
            state["armed"] = False  # not again from inside the action's own feed()
            state["left"] -= 1
            action = actions[state["turn"] % len(actions)]
            state["turn"] += 1
            try:
                for event in action() or []:
                    check_event(event)
            except too_large:
                pass
            except BaseException as error:  # a finalizer's errors are only printed
                state["failure"] = state["failure"] or error
            garbage()
            state["armed"] = True

    def garbage() -> None:
        cycle = Hostile()
        cycle.self = cycle  # type: ignore[attr-defined]

    threshold = gc.get_threshold()
    garbage()
    # Kept, the events count as net allocations, so the collector runs every other one.
    kept: list[Any] = []
    # Young collections at nearly every allocation; the older generations never (they
    # would only make the run slow: the hostile garbage dies young).
    gc.set_threshold(1, 1 << 30, 1 << 30)
    try:
        last = [b""] if case.feed_empty else []
        for chunks in [*case.connections, [AFTER_CLOSE]]:
            for chunk in [*chunks, *last]:
                data = as_input(chunk, case.as_array)
                state["armed"] = True
                try:
                    events = c.feed(data)
                except too_large:
                    continue
                finally:
                    state["armed"] = False
                kept.append(events)
                for event in events:
                    check_event(event)
            try:
                c.close()
            except too_large:
                pass
            state["left"] = budget
    finally:
        state["left"] = 0
        gc.set_threshold(*threshold)
    if state["failure"] is not None:
        raise state["failure"]
    for events in kept:  # again: a field freed under an event shows up now, if not before
        for event in events:
            check_event(event)
    str(c.last_event_id), c.retry


def check_event(event: Any) -> None:
    for value in (event.data, event.event, event.id):
        if type(value) is not str:
            raise AssertionError(f"event field {value!r} is a {type(value)!r}")
        hash(value)
    if event.retry is not None and type(event.retry) is not int:
        raise AssertionError(f"retry {event.retry!r}")
    repr(event)


def describe(case: Case) -> str:
    """The case as Python, to paste into a minimal repro."""
    lines = [
        f"d = Decoder({case.initial_id!r}, max_line_bytes={case.max_line}, "
        f"max_event_bytes={case.max_event})  # feeds {'array' if case.as_array else 'bytes'}"
        + ("  [hostile mode]" if case.hostile else "")
    ]
    last = " + [b'']" if case.feed_empty else ""
    for chunks in case.connections:
        shown: list[Any] = [
            c if len(c) <= 100 else f"<{len(c)} bytes: {c[:40]!r}...>" for c in chunks[:24]
        ]
        if len(chunks) > 24:
            shown.append(f"<{len(chunks) - 24} more chunks>")
        lines.append(f"for chunk in {shown!r}{last}: d.feed(chunk)")
        lines.append("d.close()")
    return "\n".join(lines)


def main(paths: list[str]) -> int:
    from tokenrelay.errors import EventTooLargeError
    from tokenrelay.sse.decoder import CDecoder, PyDecoder

    if CDecoder is None:
        print("the C decoder is not built in this environment", file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        with open(path, "rb") as f:
            case = parse(f.read())
        print(f"== {path}\n{describe(case)}")
        if case.hostile:
            run_hostile(case, CDecoder, EventTooLargeError)
            print("hostile mode: ran without a Python-level error")
            continue
        try:
            calls = run_differential(case, CDecoder, PyDecoder, EventTooLargeError)
        except Mismatch as mismatch:
            print(mismatch.args[0].split("\ncase:")[0])
            status = 1
        else:
            print(f"agree ({calls} calls)")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
