"""The C decoder against the Python one: same events, same errors, same state, any input.

Every other decoder test runs over both implementations (see DECODERS in conftest); this
module feeds both the same random streams in the same random chunks, with random limits,
and compares everything observable after every call. It also checks what only the C
code can get wrong: memory held after errors and large events, reference cycles, and
objects it did not expect.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc
import weakref
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.required import missing
from tokenrelay.errors import EventTooLargeError
from tokenrelay.sse import Event
from tokenrelay.sse.decoder import IMPLEMENTATION, CDecoder, PyDecoder

from .conftest import C_DECODER_MISSING, split_at
from .test_sse_differential import PIECES as SPEC_PIECES

needs_c = pytest.mark.skipif(CDecoder is None, reason=C_DECODER_MISSING)

# The differential test's pieces, plus what reaches the rest of both decoders: split and
# invalid UTF-8 in fields, long digit runs, whole fast-path events, long lines.
PIECES = SPEC_PIECES | st.sampled_from(
    [
        b"data: \xc3\xa9t\xc3\xa9",
        b"event: \xff",
        b"retry: 0012",
        b"retry: 1" + b"0" * 30,
        b"retry: 5 ",
        b"data: x\n\n",
        b"data: y\n\ndata: z\n\n",
        b"\xef\xbb",
        b"\xef",
        b"x" * 50,
    ]
)
# And byte soup from the characters that matter, for what the pieces never line up.
SOUP = st.lists(st.sampled_from(list(b"data:id\r\n \xef\xbb\xbf\x00\x80e")), max_size=200)
STREAMS = st.lists(PIECES, max_size=60).map(b"".join) | SOUP.map(bytes)
CUTS = st.lists(st.integers(min_value=0, max_value=3000), max_size=16)
LIMITS = st.one_of(st.just(16 * 1024 * 1024), st.integers(min_value=1, max_value=120))


def chunks_of(stream: bytes, cuts: list[int]) -> list[bytes]:
    return split_at(stream, [c % (len(stream) + 1) for c in cuts])  # empty chunks too


def observe(decoder: Any, step: Any) -> tuple[Any, ...]:
    """Everything a caller can see of one call: its result or error, and the state after."""
    try:
        result: Any = [(e.data, e.event, e.id, e.retry) for e in step()]
    except EventTooLargeError as error:
        result = ("error", error.what, error.limit, error.size, str(error))
    return (result, decoder.last_event_id, decoder.retry)


@needs_c
@settings(max_examples=1500, deadline=None)
@given(
    st.lists(st.tuples(STREAMS, CUTS), min_size=1, max_size=3),
    LIMITS,
    LIMITS,
    st.text(max_size=3).map(lambda s: s.replace("\0", "").replace("\r", "").replace("\n", "")),
)
def test_c_and_python_decoders_agree_on_everything(
    connections: list[tuple[bytes, list[int]]], max_line: int, max_event: int, initial_id: str
) -> None:
    assert CDecoder is not None
    c = CDecoder(initial_id, max_line_bytes=max_line, max_event_bytes=max_event)
    py = PyDecoder(initial_id, max_line_bytes=max_line, max_event_bytes=max_event)
    # Several connections through one decoder: close() must reset both the same way.
    for stream, cuts in connections:
        for chunk in [*chunks_of(stream, cuts), b""]:
            seen_c = observe(c, lambda chunk=chunk: c.feed(chunk))
            seen_py = observe(py, lambda chunk=chunk: py.feed(chunk))
            assert seen_c == seen_py, chunk
        assert observe(c, c.close) == observe(py, py.close)


@needs_c
def test_c_events_are_ordinary_events() -> None:
    assert CDecoder is not None
    [event] = CDecoder("7").feed(b"event: e\nretry: 5\ndata: a\ndata: b\n\n")
    assert type(event) is Event
    assert event == Event("a\nb", "e", "7", 5)
    assert hash(event) == hash(Event("a\nb", "e", "7", 5))
    assert repr(event) == "Event(data='a\\nb', event='e', id='7', retry=5)"
    with pytest.raises(AttributeError):
        event.data = "changed"  # type: ignore[misc]
    # Only str, int and None inside: no cycle possible, so the cyclic GC need not track it.
    assert not gc.is_tracked(event)


BOTH = [pytest.param(PyDecoder, id="py"), pytest.param(CDecoder, id="c", marks=needs_c)]


@pytest.mark.parametrize("Decoder", BOTH)
def test_any_bytes_like_object_is_read(Decoder: type[PyDecoder]) -> None:
    decoder = Decoder()
    assert decoder.feed(bytearray(b"data: a\n\n")) == [Event("a")]
    assert decoder.feed(memoryview(b"xxdata: b\n\n")[2:]) == [Event("b")]
    assert decoder.feed(memoryview(b"data: c\n")) == []  # not between events any more
    assert decoder.feed(memoryview(b"\n")) == [Event("c")]
    with pytest.raises(TypeError):
        decoder.feed("data: text\n\n")  # type: ignore[arg-type]


@pytest.mark.parametrize("Decoder", BOTH)
def test_arguments_are_checked_alike(Decoder: type[PyDecoder]) -> None:
    with pytest.raises(TypeError):
        Decoder(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Decoder(max_line_bytes=0)
    with pytest.raises(TypeError):
        Decoder("", 100)  # type: ignore[misc]  # the limits are keyword-only
    with pytest.raises(TypeError):
        Decoder(max_event_bytes=10.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("Decoder", BOTH)
def test_a_str_subclass_id_comes_back_as_a_plain_str(Decoder: type[PyDecoder]) -> None:
    class Id(str):
        pass

    decoder = Decoder(Id("7"))
    [event] = decoder.feed(b"data: x\n\n")
    assert type(event.id) is str and event.id == "7"
    assert type(decoder.last_event_id) is str


@pytest.mark.parametrize("Decoder", BOTH)
def test_a_finalizer_that_resets_the_decoder_mid_feed_is_harmless(
    Decoder: type[PyDecoder],
) -> None:
    # Making events allocates, allocating may collect garbage, and collecting runs
    # finalizers: one that closes this same decoder must not leave an event holding
    # freed objects (the C decoder once crashed here).
    decoder = Decoder()

    class Resetter:
        def __del__(self) -> None:
            decoder.close()
            garbage()

    def garbage() -> None:
        resetter = Resetter()
        resetter.cycle = resetter  # type: ignore[attr-defined]

    garbage()
    threshold = gc.get_threshold()
    gc.set_threshold(1)
    try:
        events = decoder.feed(b"".join(b"event: t%d\ndata: x\n\n" % i for i in range(200)))
    finally:
        gc.set_threshold(*threshold)
        gc.collect()
    assert [(e.event, e.data) for e in events] == [(f"t{i}", "x") for i in range(200)]


@needs_c
def test_c_decoder_not_initialised_refuses_to_work() -> None:
    assert CDecoder is not None
    decoder = CDecoder.__new__(CDecoder)
    with pytest.raises(RuntimeError):
        decoder.feed(b"data: x\n\n")
    with pytest.raises(RuntimeError):
        decoder.close()


@needs_c
def test_an_idle_c_decoder_holds_no_buffer_between_calls() -> None:
    # A decoder lives as long as its stream: between chunks it keeps only an unended
    # line, not the buffers its last event used (a gateway holds one per open stream).
    assert CDecoder is not None
    decoders = [CDecoder() for _ in range(500)]
    event = b"data: " + b"x" * 300 + b"\n\n"
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for d in decoders:
            assert len(d.feed(event)) == 1
        after_events = tracemalloc.get_traced_memory()[0]
        for d in decoders:
            assert d.feed(b"data: open") == []
        after_partial = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert (after_events - before) / len(decoders) < 16
    assert (after_partial - after_events) / len(decoders) >= len(b"data: open")  # kept


@needs_c
def test_c_decoder_returns_memory_after_large_events_and_errors() -> None:
    assert CDecoder is not None
    big = b"data: " + b"x" * (1 << 20) + b"\n\n"
    decoder = CDecoder(max_line_bytes=1 << 21, max_event_bytes=1 << 21)
    decoder.feed(big[:1000])
    decoder.feed(big[1000:])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            assert len(decoder.feed(big[: 1 << 19])) == 0
            assert len(decoder.feed(big[1 << 19 :])) == 1
            with pytest.raises(EventTooLargeError):
                decoder.feed(b"data: " + b"y" * (1 << 21 + 1))
            decoder.close()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Buffers over 64 KiB are released when their event completes or fails.
    assert grown < 256 * 1024


@needs_c
def test_c_decoder_holding_an_error_is_collected() -> None:
    assert CDecoder is not None
    decoder = CDecoder(max_line_bytes=4)
    try:
        decoder.feed(b"data: too long\n")
    except EventTooLargeError as error:
        caught = error
    # The error's traceback holds this frame, which holds the decoder: a cycle.
    assert caught.__traceback__ is not None
    ref = weakref.ref(caught)
    del decoder, caught
    gc.collect()
    assert ref() is None


@needs_c
def test_the_c_decoder_is_set_up_once_for_its_classes() -> None:
    from tokenrelay.errors import ResponseError
    from tokenrelay.sse import _cdecoder

    _cdecoder._setup(Event, EventTooLargeError)  # again, the same classes: fine

    class Other:
        __slots__ = ("data", "event", "id", "retry")

    with pytest.raises(RuntimeError):
        _cdecoder._setup(Other, ResponseError)  # type: ignore[arg-type]
    assert CDecoder is not None
    assert CDecoder().feed(b"data: x\n\n") == [Event("x")]


@needs_c
def test_the_extension_alone_refuses_to_decode() -> None:
    # Imported directly, not through tokenrelay.sse.decoder (which sets it up).
    code = (
        "from tokenrelay.sse._cdecoder import Decoder\n"
        "try:\n    Decoder()\nexcept RuntimeError as e:\n    print('refused', e)\n"
    )
    env = {**os.environ, "TOKENRELAY_NO_EXTENSIONS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("refused")


def test_c_decoder_is_built() -> None:
    # CI builds the extension (setup.py; a compiler is there): a missing one is a failure.
    if CDecoder is None:
        missing(C_DECODER_MISSING)
    assert IMPLEMENTATION == "c"


def test_no_extensions_variable_selects_the_python_decoder() -> None:
    code = (
        "from tokenrelay.sse import Decoder; from tokenrelay.sse import decoder as d; "
        "print(d.IMPLEMENTATION, Decoder is d.PyDecoder, d.CDecoder)"
    )
    env = {**os.environ, "TOKENRELAY_NO_EXTENSIONS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["python", "True", "None"]
