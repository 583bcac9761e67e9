"""Throughput benchmark: ``tokenrelay.sse.Decoder`` against the SSE decoders of peer libraries.

What it measures
----------------
Each implementation is driven through its own complete *bytes -> events* path, exactly the
way its users consume a stream, including the library's own line splitting and text
decoding of raw byte chunks.  Only the transport (sockets, HTTP framing, content-encoding)
is left out, identically for everybody: the input is a pre-built ``list[bytes]``.

* ``tokenrelay``   -- ``Decoder().feed(chunk)`` for every chunk, then ``close()``.
* ``httpx-sse``    -- ``EventSource(response).iter_sse()``; the response is a stand-in whose
  ``iter_text()`` does what ``httpx.Response.iter_text()`` does (httpx's incremental
  ``TextDecoder`` over the byte chunks), so httpx-sse's own ``SSELineDecoder`` and
  ``SSEDecoder`` run unchanged (httpx's own byte plumbing, which real users also pay, is
  left out, which if anything flatters httpx-sse).
* ``sseclient-py`` -- ``SSEClient(generator_of_chunks).events()``.
* ``openai``       -- ``openai._streaming.SSEDecoder().iter_bytes(iterator_of_chunks)``, the
  call ``openai.Stream`` makes on ``response.iter_bytes()``.

Workloads (the *2x* variants only exist to check that time grows linearly with size):

* (a) 20,000 OpenAI ``chat.completion.chunk`` events (built from the captured stream in
  ``shared/fixtures/openai-captures/text.sse``, varied, with some non-ASCII text),
  delivered one event per chunk;
* (b) the same bytes in 4 KiB chunks;  (c) the same bytes in 16-byte chunks;
* (d) one 1 MiB ``data:`` line and a blank line, in 1 KiB chunks (and 2 MiB);
* (e) one event made of 10,000 short ``data:`` lines, in 4 KiB chunks (and 20,000);
* (f) 32,768 one-line events ended by CR alone, in one chunk (and 65,536).

The warm-up run's output is checked (event count and every event's ``data``); a wrong peer
is marked in the tables, a wrong ``tokenrelay`` aborts the benchmark.  The timed runs then
consume the events the way a streaming reader does, handling each and keeping none (peers'
iterators drained by ``collections.deque(maxlen=0)``, ours by dropping what ``feed()``
returns), so that allocating memory for 20,000 retained events does not blur the parsers'
own cost.  Timing is ``time.perf_counter`` around the whole path, best of N runs (N is
adaptive: more runs for fast cases, fewer for slow ones), with the garbage collector
disabled while timing, like ``timeit``.  A run that takes longer than ``--timeout`` is
abandoned, and the 2x size is skipped for an implementation whose 1x run was already
slower than ``--skip-2x-after`` seconds.  MB/s uses MB = 10**6 bytes of input.  On glibc
the malloc mmap threshold is pinned for the whole run (see ``pin_malloc``; opt out with
``--default-malloc``), otherwise multi-MiB buffers flip between fresh mmap'd pages and
reused heap from run to run and the 2x/1x ratios of (d) read ~4-5 even for linear code.

How to run
----------
From the repository root, after ``pip install -e '.[bench]'``::

    python bench/parser.py                  # full run, markdown tables on stdout
    python bench/parser.py --quick          # smaller sizes and fewer runs
    python bench/parser.py --json out.json  # also write machine-readable results
    python bench/parser.py --peers-only     # the harness without tokenrelay

Progress goes to stderr, so ``python bench/parser.py > bench/RESULTS.md`` keeps only the
report.  See ``--help`` for the other options.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import gc
import importlib
import importlib.metadata
import inspect
import json
import os
import platform
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from _harness import REPO_ROOT, RunTimeout, deadline, dist_version, git

DEFAULT_FIXTURE = REPO_ROOT.parent / "shared" / "fixtures" / "openai-captures" / "text.sse"
INSTALL_HINT = "Install the benchmark dependencies with:  pip install -e '.[bench]'"
KIB = 1024
MIB = 1024 * KIB

OURS = "tokenrelay"

# Targets for tokenrelay, as "ours/fastest correct peer" speed ratios, and the linearity bound.
SPEED_TARGETS = {"a": 1.5, "b": 2.0, "c": 1.0}
LINEAR_MAX = 2.2

RunFn = Callable[[Sequence[bytes]], list[Any]]
DrainFn = Callable[[Sequence[bytes]], None]
T = TypeVar("T")


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    llm_events: int = 20_000
    chunk_b: int = 4 * KIB
    chunk_c: int = 16
    big_line: int = 1 * MIB
    big_line_chunk: int = 1 * KIB
    many_lines: int = 10_000
    many_lines_chunk: int = 4 * KIB
    cr_events: int = 32_768  # (f): CR-ended events, all in one chunk
    repeats: int = 5  # nominal best-of-N
    max_repeats: int = 50  # upper bound for very fast cases
    min_sample_s: float = 0.5  # fast cases repeat until about this much time was measured
    budget_s: float = 15.0  # slow cases: fewer repeats so one case stays near this budget
    skip_2x_after_s: float = 20.0
    timeout_s: float = 120.0
    quick: bool = False


QUICK = Config(
    llm_events=2_000,
    cr_events=8_192,
    big_line=256 * KIB,
    many_lines=2_500,
    repeats=3,
    max_repeats=20,
    min_sample_s=0.2,
    budget_s=3.0,
    skip_2x_after_s=5.0,
    timeout_s=30.0,
    quick=True,
)


# --------------------------------------------------------------------------- implementations


@dataclass(frozen=True)
class Impl:
    name: str
    version: str
    run: RunFn  # returns every event, for the correctness check
    drain: DrainFn  # consumes every event and keeps none: what is timed
    ours: bool = False


def _require(module: str, dist: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SystemExit(
            f"bench/parser.py: cannot import {module!r} (package {dist!r}): {exc}\n{INSTALL_HINT}"
        ) from exc


def _require_attr(mod: ModuleType, name: str, dist: str) -> Any:
    try:
        return getattr(mod, name)
    except AttributeError as exc:
        raise SystemExit(
            f"bench/parser.py: {mod.__name__}.{name} not found in {dist} "
            f"{dist_version(dist)}; this benchmark was written against the versions pinned "
            f"by the 'bench' extra.\n{INSTALL_HINT}"
        ) from exc


class _ResponseStandIn:
    """What httpx-sse's ``EventSource`` needs from an ``httpx.Response``, without a network.

    ``iter_text()`` does what ``httpx.Response.iter_text()`` does when no ``chunk_size`` is
    given: httpx's incremental ``TextDecoder`` over the raw byte chunks, empty strings dropped.
    """

    headers = {"content-type": "text/event-stream"}  # noqa: RUF012 - read-only class constant

    def __init__(self, chunks: Sequence[bytes], text_decoder_cls: Any) -> None:
        self._chunks = chunks
        self._text_decoder_cls = text_decoder_cls

    def iter_text(self) -> Iterator[str]:
        decoder = self._text_decoder_cls("utf-8")
        for chunk in self._chunks:
            text = decoder.decode(chunk)
            if text:
                yield text
        text = decoder.flush()
        if text:
            yield text


def load_httpx_sse() -> Impl:
    api = _require("httpx_sse", "httpx-sse")
    event_source_cls = _require_attr(api, "EventSource", "httpx-sse")
    # Make sure the decoder module the EventSource uses is where we expect it.
    _require_attr(_require("httpx_sse._decoders", "httpx-sse"), "SSELineDecoder", "httpx-sse")
    httpx_decoders = _require("httpx._decoders", "httpx")
    text_decoder_cls = _require_attr(httpx_decoders, "TextDecoder", "httpx")

    def run(chunks: Sequence[bytes]) -> list[Any]:
        source = event_source_cls(_ResponseStandIn(chunks, text_decoder_cls))
        return list(source.iter_sse())

    def drain(chunks: Sequence[bytes]) -> None:
        source = event_source_cls(_ResponseStandIn(chunks, text_decoder_cls))
        deque(source.iter_sse(), maxlen=0)

    version = f"{dist_version('httpx-sse')} (httpx {dist_version('httpx')})"
    return Impl("httpx-sse", version, run, drain)


def load_sseclient() -> Impl:
    mod = _require("sseclient", "sseclient-py")
    client_cls = _require_attr(mod, "SSEClient", "sseclient-py")

    def run(chunks: Sequence[bytes]) -> list[Any]:
        return list(client_cls(chunk for chunk in chunks).events())

    def drain(chunks: Sequence[bytes]) -> None:
        deque(client_cls(chunk for chunk in chunks).events(), maxlen=0)

    return Impl("sseclient-py", dist_version("sseclient-py"), run, drain)


def load_openai() -> Impl:
    mod = _require("openai._streaming", "openai")
    decoder_cls = _require_attr(mod, "SSEDecoder", "openai")

    def run(chunks: Sequence[bytes]) -> list[Any]:
        return list(decoder_cls().iter_bytes(iter(chunks)))

    def drain(chunks: Sequence[bytes]) -> None:
        deque(decoder_cls().iter_bytes(iter(chunks)), maxlen=0)

    return Impl("openai", dist_version("openai"), run, drain)


def _source_state(module_file: str | None) -> str:
    """Which code was measured: the commit, and whether the package has local edits."""
    commit = git("rev-parse", "--short", "HEAD")
    if not commit or module_file is None:
        return ""
    package_dir = Path(module_file).resolve().parent.parent  # .../tokenrelay
    try:
        package_dir.relative_to(REPO_ROOT)
    except ValueError:
        return ""  # measured an installed copy, not this checkout
    dirty = git("status", "--porcelain", "--", str(package_dir))
    return f"commit {commit}" + (" + uncommitted changes" if dirty else "")


def _import_ours() -> type:
    try:
        from tokenrelay.sse import Decoder
    except ImportError:
        src = REPO_ROOT / "src"
        if not (src / "tokenrelay").is_dir() or str(src) in sys.path:
            raise
        sys.path.insert(0, str(src))  # running from a checkout that is not installed
        sys.modules.pop("tokenrelay", None)
        from tokenrelay.sse import Decoder
    return Decoder


def load_ours(need_line: int, need_event: int) -> tuple[Impl, str]:
    """Load our decoder; raise the size limits only if their defaults are too small."""
    try:
        decoder_cls = _import_ours()
    except ImportError as exc:
        raise SystemExit(
            f"bench/parser.py: cannot import tokenrelay.sse.Decoder: {exc}\n{INSTALL_HINT}\n"
            "(or run with --peers-only to benchmark the peers alone)"
        ) from exc

    kwargs: dict[str, int] = {}
    params = inspect.signature(decoder_cls).parameters
    for name, need in (("max_line_bytes", need_line), ("max_event_bytes", need_event)):
        param = params.get(name)
        if param is None:
            continue
        default = param.default
        if isinstance(default, int) and not isinstance(default, bool) and default < need:
            kwargs[name] = 1 << (need - 1).bit_length()  # next power of two
    config = "Decoder(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")"
    implementation = getattr(sys.modules.get("tokenrelay.sse.decoder"), "IMPLEMENTATION", None)
    if implementation:  # the C extension, or the pure-Python one (TOKENRELAY_NO_EXTENSIONS)
        config += f", the {implementation} implementation"

    def run(chunks: Sequence[bytes]) -> list[Any]:
        decoder = decoder_cls(**kwargs)
        events: list[Any] = []
        for chunk in chunks:
            events.extend(decoder.feed(chunk))
        events.extend(decoder.close())
        return events

    def drain(chunks: Sequence[bytes]) -> None:
        decoder = decoder_cls(**kwargs)
        feed = decoder.feed
        for chunk in chunks:
            feed(chunk)  # the list of events it returns is dropped, as a consumer would
        decoder.close()

    version = dist_version("tokenrelay")
    state = _source_state(sys.modules[decoder_cls.__module__].__file__)
    if state:
        version = f"{version} ({state})"
    return Impl(OURS, version, run, drain, ours=True), config


# --------------------------------------------------------------------------- workloads


@dataclass
class Workload:
    key: str  # "a".."f", or "d2x" / "e2x" / "f2x"
    title: str
    chunks: list[bytes]
    expected: list[str]  # the data of every event, in order
    base: str | None = None  # for a 2x workload: the key of its 1x workload

    @property
    def nbytes(self) -> int:
        return sum(len(c) for c in self.chunks)


def rechunk(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


_FALLBACK_WORDS = ["I'm", " unable", " to", " provide", " real", "-time", " weather", " updates"]
_UNICODE_WORDS = [" café", " naïve", " Zürich", " 東京", " —", " 🙂", " résumé", " Ωmega"]
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_MODELS = ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14"]


def _fixture_words(fixture: Path | None) -> tuple[list[str], str]:
    """Content deltas of the captured stream, and a note saying where they came from."""
    if fixture is None or not fixture.is_file():
        return _FALLBACK_WORDS, "built-in word list (fixture not found)"
    words: list[str] = []
    for line in fixture.read_text(encoding="utf-8").splitlines():
        if not line.startswith("data: {"):
            continue
        for choice in json.loads(line[6:]).get("choices", []):
            content = choice.get("delta", {}).get("content")
            if content:
                words.append(content)
    if not words:
        return _FALLBACK_WORDS, f"built-in word list ({fixture.name} has no content deltas)"
    return words, f"content deltas of {fixture.name}"


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def llm_event_payloads(n: int, words: list[str]) -> list[str]:
    """``n`` data payloads shaped like concatenated Chat Completions streams."""
    rng = random.Random(20240926)
    payloads: list[str] = []
    stream = 0
    while len(payloads) < n:
        head = {
            "id": "chatcmpl-" + "".join(rng.choices(_ALNUM, k=29)),
            "object": "chat.completion.chunk",
            "created": 1727346168 + 11 * stream,
            "model": _MODELS[stream % len(_MODELS)],
            "system_fingerprint": "fp_" + "".join(rng.choices(_ALNUM[:36], k=10)),
        }

        def chunk(delta: dict[str, Any], finish: str | None, h: dict[str, Any] = head) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _dumps({**h, "choices": [choice]})

        payloads.append(chunk({"role": "assistant", "content": "", "refusal": None}, None))
        for _ in range(rng.randint(40, 400)):
            word = rng.choice(_UNICODE_WORDS) if rng.random() < 0.05 else rng.choice(words)
            payloads.append(chunk({"content": word}, None))
        payloads.append(chunk({}, "stop"))
        usage = {"prompt_tokens": 14, "completion_tokens": 30, "total_tokens": 44}
        payloads.append(_dumps({**head, "choices": [], "usage": usage}))
        payloads.append("[DONE]")
        stream += 1
    return payloads[:n]


def build_workloads(
    cfg: Config, selected: set[str], fixture: Path | None
) -> tuple[list[Workload], str]:
    workloads: list[Workload] = []
    note = ""
    if selected & {"a", "b", "c"}:
        words, note = _fixture_words(fixture)
        payloads = llm_event_payloads(cfg.llm_events, words)
        per_event = [f"data: {p}\n\n".encode() for p in payloads]
        stream = b"".join(per_event)
        n = f"{cfg.llm_events:,}"
        if "a" in selected:
            workloads.append(
                Workload("a", f"{n} LLM chunk events, 1 event/chunk", per_event, payloads)
            )
        if "b" in selected:
            workloads.append(
                Workload(
                    "b",
                    f"{n} LLM chunk events, 4 KiB chunks",
                    rechunk(stream, cfg.chunk_b),
                    payloads,
                )
            )
        if "c" in selected:
            workloads.append(
                Workload(
                    "c",
                    f"{n} LLM chunk events, {cfg.chunk_c}-byte chunks",
                    rechunk(stream, cfg.chunk_c),
                    payloads,
                )
            )
    if "d" in selected:
        for mult, key in ((1, "d"), (2, "d2x")):
            size = cfg.big_line * mult
            pattern = (_ALNUM + "{}[],:\"'-_ ") * (size // len(_ALNUM) + 1)
            payload = pattern[:size]
            data = f"data: {payload}\n\n".encode()
            workloads.append(
                Workload(
                    key,
                    f"one {size // KIB:,} KiB data line, {cfg.big_line_chunk // KIB} KiB chunks",
                    rechunk(data, cfg.big_line_chunk),
                    [payload],
                    base="d" if mult == 2 else None,
                )
            )
    if "e" in selected:
        for mult, key in ((1, "e"), (2, "e2x")):
            count = cfg.many_lines * mult
            lines = [f"line {i}" for i in range(count)]
            data = "".join(f"data: {line}\n" for line in lines).encode() + b"\n"
            workloads.append(
                Workload(
                    key,
                    f"one event of {count:,} data lines, {cfg.many_lines_chunk // KIB} KiB chunks",
                    rechunk(data, cfg.many_lines_chunk),
                    ["\n".join(lines)],
                    base="e" if mult == 2 else None,
                )
            )
    if "f" in selected:
        # Valid SSE with CR line ends only, in one large chunk: a decoder that looks for
        # the next LF from every line goes quadratic (ours did, in C, until a review).
        for mult, key in ((1, "f"), (2, "f2x")):
            count = cfg.cr_events * mult
            data = b"data: x\r\r" * count
            workloads.append(
                Workload(
                    key,
                    f"{count:,} events with CR line ends, one {len(data) // KIB:,} KiB chunk",
                    [data],
                    ["x"] * count,
                    base="f" if mult == 2 else None,
                )
            )
    return workloads, note


def size_needs(workloads: Sequence[Workload]) -> tuple[int, int]:
    """Longest line and largest event (in bytes) over the workloads."""
    line = max((len(d.encode()) + len("data: ") for w in workloads for d in w.expected), default=0)
    event = max(
        (
            len(d.encode()) + (d.count("\n") + 1) * len("data: \n")
            for w in workloads
            for d in w.expected
        ),
        default=0,
    )
    return line, event


# --------------------------------------------------------------------------- checking


def check_events(events: Sequence[Any], expected: Sequence[str]) -> str | None:
    """None if ``events`` carries exactly the ``expected`` data, else what is wrong."""
    if len(events) != len(expected):
        return f"{len(events):,} events, expected {len(expected):,}"
    for i, (event, want) in enumerate(zip(events, expected, strict=True)):
        kind = getattr(event, "event", None)
        if kind not in (None, "", "message"):
            return f"event #{i}: type {kind!r}, expected the default ('message')"
        got = getattr(event, "data", None)
        if got != want:
            if not isinstance(got, str):
                return f"event #{i}: data is {type(got).__name__}, expected str"
            pos = next(
                (k for k, (x, y) in enumerate(zip(got, want, strict=False)) if x != y),
                min(len(got), len(want)),
            )
            return (
                f"event #{i}: data differs at char {pos:,} "
                f"(got {len(got):,} chars {got[pos : pos + 20]!r}, "
                f"expected {len(want):,} chars {want[pos : pos + 20]!r})"
            )
    return None


# --------------------------------------------------------------------------- timing


def time_once(
    run: Callable[[Sequence[bytes]], T], chunks: Sequence[bytes], timeout: float
) -> tuple[float, T]:
    gc.collect()
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        with deadline(timeout):
            start = time.perf_counter()
            result = run(chunks)
            elapsed = time.perf_counter() - start
    finally:
        if gc_enabled:
            gc.enable()
    return elapsed, result


@dataclass
class Result:
    workload: str
    impl: str
    nbytes: int
    nchunks: int
    status: str = "ok"  # ok | wrong | error | timeout | skipped
    problem: str = ""
    times: list[float] = field(default_factory=list)

    @property
    def best(self) -> float | None:
        return min(self.times) if self.times else None

    @property
    def mb_per_s(self) -> float | None:
        best = self.best
        return self.nbytes / best / 1e6 if best else None

    @property
    def timed(self) -> bool:
        """Has a time (a wrong result is still timed, and reported with a mark)."""
        return bool(self.times) and self.status in ("ok", "wrong")


def measure(impl: Impl, wl: Workload, cfg: Config) -> Result:
    res = Result(wl.key, impl.name, wl.nbytes, len(wl.chunks))
    try:
        warm, events = time_once(impl.run, wl.chunks, cfg.timeout_s)
    except RunTimeout:
        res.status, res.problem = "timeout", f"a run took over {cfg.timeout_s:g} s"
        return res
    except Exception as exc:
        res.status, res.problem = "error", f"{type(exc).__name__}: {exc}"[:300]
        return res
    problem = check_events(events, wl.expected)
    del events
    if problem:
        res.status, res.problem = "wrong", problem

    if warm >= cfg.skip_2x_after_s:
        res.times = [warm]  # too slow to repeat: the warm-up is the only sample
        return res
    repeats = cfg.repeats
    if warm * repeats > cfg.budget_s:
        repeats = max(1, int(cfg.budget_s / warm))
    elif warm * repeats < cfg.min_sample_s:
        repeats = min(cfg.max_repeats, max(repeats, int(cfg.min_sample_s / max(warm, 1e-9))))
    for _ in range(repeats):
        try:
            elapsed, _ = time_once(impl.drain, wl.chunks, cfg.timeout_s)
        except Exception:  # RunTimeout, or a flaky failure the warm-up did not show
            break
        res.times.append(elapsed)
    if not res.times:
        res.times = [warm]
    return res


# --------------------------------------------------------------------------- reporting


def fmt_mbps(res: Result | None) -> str:
    if res is None:
        return "-"
    if not res.timed:
        return res.status
    text = f"{res.mb_per_s:,.1f}"
    return f"{text} **WRONG**" if res.status == "wrong" else text


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def speed_ratio(ours: Result | None, peer: Result | None) -> float | None:
    """ours/peer speed (peer time / our time): > 1 means tokenrelay is faster."""
    if ours is None or peer is None or not ours.timed or not peer.timed:
        return None
    assert ours.best is not None and peer.best is not None
    return peer.best / ours.best


def linear_ratio(base: Result | None, double: Result | None) -> float | None:
    if base is None or double is None or not base.timed or not double.timed:
        return None
    assert base.best is not None and double.best is not None
    return double.best / base.best


def fastest_correct_peer(results: dict[str, Result], peers: Sequence[str]) -> Result | None:
    ok = [results[p] for p in peers if p in results and results[p].status == "ok"]
    return min(ok, key=lambda r: r.best or float("inf")) if ok else None


def render(
    header: list[str],
    workloads: Sequence[Workload],
    table: dict[str, dict[str, Result]],
    impls: Sequence[Impl],
) -> tuple[str, list[dict[str, Any]]]:
    names = [i.name for i in impls]
    peers = [n for n in names if n != OURS]
    have_ours = OURS in names
    out = list(header)

    out += [
        "",
        "## Throughput",
        "",
        "MB/s of input (higher is better)."
        + (
            " In parentheses: tokenrelay/peer speed ratio (> 1 means tokenrelay is faster)."
            if have_ours
            else ""
        ),
        "",
    ]
    out.append("| workload | input | chunks | " + " | ".join(names) + " |")
    out.append("|---|---:|---:|" + "---:|" * len(names))
    for wl in workloads:
        row = table[wl.key]
        cells = []
        for name in names:
            cell = fmt_mbps(row.get(name))
            ratio = speed_ratio(row.get(OURS), row.get(name)) if name != OURS else None
            if ratio is not None:
                cell += f" ({ratio:.2f}x)"
            cells.append(cell)
        label = f"({wl.key[0]}{' 2x' if wl.base else ''}) {wl.title}"
        out.append(
            f"| {label} | {wl.nbytes / 1e6:,.2f} MB | {len(wl.chunks):,} | "
            + " | ".join(cells)
            + " |"
        )

    doubles = [wl for wl in workloads if wl.base]
    if doubles:
        out += [
            "",
            "## Linearity",
            "",
            "Best time at 1x size -> at 2x size (ratio 2x/1x: linear ~ 2.0, quadratic ~ 4.0).",
            "",
        ]
        out.append("| workload | " + " | ".join(names) + " |")
        out.append("|---|" + "---|" * len(names))
        for wl in doubles:
            assert wl.base is not None
            cells = []
            for name in names:
                base, double = table[wl.base].get(name), table[wl.key].get(name)
                ratio = linear_ratio(base, double)
                if ratio is not None and base is not None and double is not None:
                    assert base.best is not None and double.best is not None
                    cell = f"{fmt_ms(base.best)} -> {fmt_ms(double.best)} (**{ratio:.2f}**)"
                    if "wrong" in (base.status, double.status):
                        cell += " **WRONG**"
                elif double is not None and double.status == "skipped":
                    cell = f"2x skipped ({double.problem})"
                elif base is not None and not base.timed:
                    cell = f"1x {base.status}"
                else:
                    cell = f"2x {double.status}" if double is not None else "-"
                cells.append(cell)
            out.append(
                f"| ({wl.base}) {workloads_title(workloads, wl.base)} | " + " | ".join(cells) + " |"
            )

    targets: list[dict[str, Any]] = []
    if have_ours:
        out += [
            "",
            "## Targets",
            "",
            f"Target: tokenrelay >= {SPEED_TARGETS['a']}x the fastest correct peer on (a), "
            f">= {SPEED_TARGETS['b']}x on (b), not slower (>= {SPEED_TARGETS['c']}x) on (c); "
            f"(d), (e) and (f) linear (2x-size time ratio <= {LINEAR_MAX}).",
            "",
            "| target | measured | status |",
            "|---|---|---|",
        ]
        for key, want in SPEED_TARGETS.items():
            if key not in table:
                continue
            fastest = fastest_correct_peer(table[key], peers)
            ratio = speed_ratio(table[key].get(OURS), fastest)
            ok = ratio is not None and ratio >= want
            what = f"{ratio:.3f}x vs {fastest.impl}" if ratio is not None and fastest else "n/a"
            out.append(
                f"| ({key}) >= {want}x fastest peer | {what} | "
                f"{'PASS' if ok else 'FAIL' if ratio is not None else 'n/a'} |"
            )
            targets.append(
                {
                    "target": f"{key}: ours/fastest peer >= {want}",
                    "measured": ratio,
                    "against": fastest.impl if fastest else None,
                    "pass": ok if ratio is not None else None,
                }
            )
        for wl in doubles:
            assert wl.base is not None
            ratio = linear_ratio(table[wl.base].get(OURS), table[wl.key].get(OURS))
            ok = ratio is not None and ratio <= LINEAR_MAX
            what = f"2x/1x = {ratio:.3f}" if ratio is not None else "n/a"
            out.append(
                f"| ({wl.base}) linear, 2x/1x <= {LINEAR_MAX} | {what} | "
                f"{'PASS' if ok else 'FAIL' if ratio is not None else 'n/a'} |"
            )
            targets.append(
                {
                    "target": f"{wl.base}: ours 2x/1x time <= {LINEAR_MAX}",
                    "measured": ratio,
                    "against": None,
                    "pass": ok if ratio is not None else None,
                }
            )

    problems = [
        r for wl in workloads for r in table[wl.key].values() if r.status not in ("ok", "skipped")
    ]
    out += ["", "## Correctness", ""]
    if problems:
        for r in problems:
            out.append(f"- **{r.impl}** on ({r.workload}): {r.status}: {r.problem}")
    else:
        out.append("Every implementation produced the expected events on every workload.")
    return "\n".join(out), targets


def workloads_title(workloads: Sequence[Workload], key: str) -> str:
    return next((wl.title for wl in workloads if wl.key == key), key)


# --------------------------------------------------------------------------- allocator

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * MIB  # glibc's maximum on 64-bit
TRIM_THRESHOLD = 256 * MIB


def pin_malloc() -> str:
    """Stop glibc from moving multi-MiB buffers between mmap and the heap from run to run.

    By default glibc serves allocations above a *dynamic* threshold with fresh mmap'd pages
    (page faults on every run) and raises the threshold when such a block is freed, so
    whether a 1 or 2 MiB buffer is cheap depends on the allocation history.  That swamps the
    2x/1x time ratios of (d) with noise unrelated to the decoders (even obviously linear ones
    read as ~4-5), so the threshold is pinned for the whole run, for every implementation.
    """
    if not sys.platform.startswith("linux"):
        return "platform default"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "platform default (no mallopt)"
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        return "platform default (mallopt refused)"
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return (
        f"glibc mmap threshold pinned to {MMAP_THRESHOLD // MIB} MiB, trim threshold "
        f"{TRIM_THRESHOLD // MIB} MiB (--default-malloc to keep glibc's dynamic defaults)"
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark tokenrelay.sse.Decoder against httpx-sse, sseclient-py and "
        "openai's SSE decoders (markdown report on stdout).",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    parser.add_argument(
        "--peers-only",
        action="store_true",
        help="do not import tokenrelay (check the harness with the peers alone)",
    )
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="do not pin glibc's mmap threshold (see pin_malloc)",
    )
    parser.add_argument(
        "--workload",
        action="append",
        choices=list("abcdef"),
        help="run only this workload (repeatable; default: all)",
    )
    parser.add_argument("--repeats", type=int, help="nominal best-of-N (default 5, quick 3)")
    parser.add_argument("--timeout", type=float, help="abandon a single run after this many s")
    parser.add_argument(
        "--skip-2x-after",
        type=float,
        metavar="SECONDS",
        help="skip the 2x size when the 1x run took longer (default 20, quick 5)",
    )
    parser.add_argument(
        "--fixture",
        type=Path,
        default=DEFAULT_FIXTURE,
        help="captured OpenAI stream the LLM events are built from (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = QUICK if args.quick else Config()
    overrides: dict[str, Any] = {}
    if args.repeats is not None:
        overrides["repeats"] = max(1, args.repeats)
    if args.timeout is not None:
        overrides["timeout_s"] = args.timeout
    if args.skip_2x_after is not None:
        overrides["skip_2x_after_s"] = args.skip_2x_after
    if overrides:
        cfg = Config(**{**cfg.__dict__, **overrides})

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    malloc_note = "platform default (--default-malloc)" if args.default_malloc else pin_malloc()
    selected = set(args.workload or "abcdef")
    impls: list[Impl] = [load_httpx_sse(), load_sseclient(), load_openai()]
    progress("building workloads ...")
    workloads, fixture_note = build_workloads(cfg, selected, args.fixture)
    ours_config = ""
    if not args.peers_only:
        ours, ours_config = load_ours(*size_needs(workloads))
        impls.insert(0, ours)

    started = time.perf_counter()
    table: dict[str, dict[str, Result]] = {}
    for wl in workloads:
        table[wl.key] = {}
        for impl in impls:
            base = table[wl.base].get(impl.name) if wl.base else None
            if base is not None and (not base.timed or (base.best or 0) > cfg.skip_2x_after_s):
                why = (
                    f"1x took {fmt_ms(base.best)}"
                    if base.timed and base.best
                    else f"1x {base.status}"
                )
                table[wl.key][impl.name] = Result(
                    wl.key, impl.name, wl.nbytes, len(wl.chunks), status="skipped", problem=why
                )
                progress(f"  ({wl.key}) {impl.name:<13} skipped: {why}")
                continue
            res = measure(impl, wl, cfg)
            table[wl.key][impl.name] = res
            speed = f"{res.mb_per_s:8.1f} MB/s" if res.timed and res.mb_per_s else ""
            progress(
                f"  ({wl.key}) {impl.name:<13} {res.status:<7} {speed} "
                f"[{len(res.times)} runs] {res.problem}"
            )
            if impl.ours and res.status != "ok":
                raise AssertionError(
                    f"tokenrelay.sse.Decoder failed workload ({wl.key}) "
                    f"{wl.title}: {res.status}: {res.problem}"
                )
    elapsed = time.perf_counter() - started

    header = [
        "# SSE decoder benchmark (bench/parser.py)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; "
        f"mode: {'quick' if cfg.quick else 'full'}; benchmark time {elapsed:,.0f} s",
        f"- python: {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}, {_cpu_count()} CPUs",
    ]
    header += [
        f"- {impl.name}: {impl.version}" + (f", `{ours_config}`" if impl.ours else "")
        for impl in impls
    ]
    header += [
        f"- LLM events (a-c): {fixture_note}, varied (ids, models, ~5% non-ASCII words)",
        f"- method: time.perf_counter, best of ~{cfg.repeats} runs after a warm-up (adaptive: "
        f"up to {cfg.max_repeats} for fast cases, fewer past ~{cfg.budget_s:g} s), gc off while "
        "timing; events consumed and dropped as a streaming reader does (the warm-up run's "
        "events are kept and checked); MB = 10^6 bytes of input",
        f"- malloc: {malloc_note}",
    ]
    report, targets = render(header, workloads, table, impls)
    print(report)

    if args.json:
        payload = {
            "meta": {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "mode": "quick" if cfg.quick else "full",
                "python": platform.python_version(),
                "implementation": platform.python_implementation(),
                "platform": platform.platform(),
                "cpus": _cpu_count(),
                "versions": {impl.name: impl.version for impl in impls},
                "ours_config": ours_config,
                "malloc": malloc_note,
                "config": cfg.__dict__,
                "elapsed_s": elapsed,
            },
            "workloads": [
                {
                    "key": wl.key,
                    "title": wl.title,
                    "bytes": wl.nbytes,
                    "chunks": len(wl.chunks),
                    "events": len(wl.expected),
                    "base": wl.base,
                }
                for wl in workloads
            ],
            "results": [
                {
                    "workload": r.workload,
                    "impl": r.impl,
                    "status": r.status,
                    "problem": r.problem,
                    "best_s": r.best,
                    "times_s": r.times,
                    "mb_per_s": r.mb_per_s if r.timed else None,
                    "ours_over_peer": (
                        speed_ratio(table[wl.key].get(OURS), r) if r.impl != OURS else None
                    ),
                }
                for wl in workloads
                for r in table[wl.key].values()
            ],
            "linearity": {
                wl.base: {
                    name: linear_ratio(table[wl.base].get(name), table[wl.key].get(name))
                    for name in table[wl.key]
                }
                for wl in workloads
                if wl.base
            },
            "targets": targets,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        progress(f"wrote {args.json}")
    return 0


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
