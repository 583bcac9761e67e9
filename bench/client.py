"""End-to-end client benchmark: events/s reading one fast local SSE stream, per transport.

What it measures
----------------
How many events per second a client process gets out of one HTTP response, from the
request to the last event, with tokenrelay's client API and with the usual alternatives
side by side on the same transport, in one run:

* **httpx** (sync, a fresh ``httpx.Client`` per run): the bare read
  (``for b in r.iter_bytes(): n += len(b)``); ours ``iter_events(r)``; ours
  ``connect(url, reconnect=False)`` (the full client); httpx-sse
  (``connect_sse(client, "GET", url)`` then ``iter_sse()``); the ``openai`` SDK's
  ``SSEDecoder().iter_bytes(r.iter_bytes())`` (what ``openai.Stream`` runs).
* **requests** (``requests.get(url, stream=True)``): the bare read
  (``iter_content(chunk_size=None)``); ours ``iter_events(r)``; sseclient-py as its README
  shows (``SSEClient(r).events()``, which iterates the response, i.e.
  ``iter_content(128)``); the tutorials' loop (``for line in r.iter_lines(): if
  line.startswith(b"data: "): ...``, one event per data line).
* **aiohttp** (a fresh ``ClientSession`` per run): the bare read
  (``async for b in resp.content.iter_any()``); ours ``aiter_events(resp)``; the plain line
  loop (``async for line in resp.content: if line.startswith(b"data: "): ...``).
* **httpx async** (a fresh ``httpx.AsyncClient`` per run): the bare read (``aiter_bytes()``);
  ours ``aiter_events(r)`` and ``aconnect(url, reconnect=False)``; httpx-sse
  (``aconnect_sse`` then ``aiter_sse()``); openai's ``SSEDecoder().aiter_bytes(...)``.

Every contestant consumes every event as a streaming reader does (reads its ``data``, counts
it, keeps none); the count and the first and last ``data`` are checked on every run, and a
bare read's byte count against the stream's size.

The stream: 200,000 small events (``--quick``: 20,000), each ``data: <json>\\n\\n`` with an
LLM-like chat-completion delta of ~70-100 bytes (~5% of them with non-ASCII text; ``--ids``
adds an ``id:`` line to each), the last one ``[DONE]``. Each event is its own HTTP/1.1 chunk
(``Transfer-Encoding: chunked``, ``Content-Type: text/event-stream``). The server is this
script started again with ``--serve`` as a separate process (so the client keeps a core to
itself; with two or more CPUs server and client are pinned to different ones, ``--no-pin``
to not), a raw-socket server on 127.0.0.1 that builds the whole response once in memory and
writes it with one ``sendall`` per request, so it is never the bottleneck. The checks: a
plain socket read of the whole response is timed first and reported (tens of times faster
than any bare read), and the bare reads run well above the parsed rates with the client
near 100% CPU.

Method: one checked warm-up run per contestant, then best of N timed runs (5; ``--quick``
3), interleaved: each round runs every transport's contestants once, in an order rotated
from round to round. A contestant whose warm-up is slow gets fewer runs (about
``--budget`` seconds in all), and a run over ``--timeout`` is abandoned. Timing is
``time.perf_counter`` around the whole request (client creation, connect, read, close),
with the garbage collector on (as in a real client) after a ``gc.collect()``. "client CPU" is
the process CPU time over the wall time of the best run: ~100% means the client, not the
server or the network, set the pace.

Targets, per transport, for each of our contestants: faster than every peer on that
transport, and at least 75% of the transport's bare read rate.

``--floor`` adds a reference row per transport (not a contestant, in no target): the least
any client must do to hand out one object per event (split the bytes at blank lines, decode
the data, build a plain four-slot object, iterate), so a report shows how much of the bare
rate is left for a real parser on that transport at all.

How to run
----------
From the repository root, after ``pip install -e '.[bench]'`` (httpx, requests, aiohttp,
httpx-sse, sseclient-py, openai)::

    python bench/client.py                  # full run (~2.5 min), markdown on stdout
    python bench/client.py --quick          # 20,000 events, 3 runs
    python bench/client.py --json out.json  # also write machine-readable results
    python bench/client.py --transport httpx --transport aiohttp   # only these
    python bench/client.py --floor          # plus the per-transport floor reference rows
    python bench/client.py --serve          # only the server (prints its port) until stdin
                                            # closes, to profile a client against it

Progress goes to stderr, so ``python bench/client.py > report.md`` keeps only the report.
See ``--help`` for the other options.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import hashlib
import importlib
import importlib.metadata
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from _harness import REPO_ROOT, RunTimeout, deadline, dist_version, git

INSTALL_HINT = "Install the benchmark dependencies with:  pip install -e '.[bench]'"
HOST = "127.0.0.1"
SEED = 20250611

BARE, OURS, PEER, FLOOR = "bare", "ours", "peer", "floor"
MIN_BARE_SHARE = 0.75  # target: each of ours >= 75% of its transport's bare read rate
NOISY_SPREAD = 0.10  # a median this much above the best run flags a noisy run
TRANSPORTS = ("httpx", "requests", "aiohttp", "httpx async")
VERSIONED = (
    "httpx", "httpcore", "h11", "anyio", "requests", "urllib3", "aiohttp",
    "httpx-sse", "sseclient-py", "openai",
)  # fmt: skip


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    events: int = 200_000
    runs: int = 5  # timed runs per contestant (best of), after one warm-up
    budget_s: float = 12.0  # a slow contestant gets about this many seconds of timed runs
    timeout_s: float = 60.0  # a single run longer than this is abandoned
    ids: bool = False
    pin: bool = True
    quick: bool = False


QUICK = Config(events=20_000, runs=3, budget_s=4.0, timeout_s=20.0, quick=True)


# --------------------------------------------------------------------------- the stream

_WORDS = [
    " the", " weather", " in", " Paris", " is", " mild", " today", ",", " with", " a",
    " high", " of", " 18", "°C", ".", " I", "'m", " unable", " to", " provide", " real",
    "-time", " updates", " but", " you", " can", " check", " local", " forecast", " sites",
    " and", " apps", " for", " current", " conditions", "\n\n", " Sure", "!", " Here", "'s",
]  # fmt: skip
_UNICODE_WORDS = [" café", " naïve", " Zürich", " 東京", " —", " 🙂", " résumé", " Ωmega"]
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def build_payloads(n: int) -> list[str]:
    """``n`` data payloads: chat-completion deltas (~70-100 bytes), the last one ``[DONE]``."""
    rng = random.Random(SEED)
    payloads: list[str] = []
    completion = ""
    for i in range(n - 1):
        if i % 500 == 0:  # a new completion id now and then, as for concatenated streams
            completion = "chatcmpl-" + "".join(rng.choices(_ALNUM, k=12))
        word = rng.choice(_UNICODE_WORDS) if rng.random() < 0.05 else rng.choice(_WORDS)
        delta = {"content": word}
        chunk = {"id": completion, "choices": [{"index": 0, "delta": delta}], "n": i}
        payloads.append(json.dumps(chunk, separators=(",", ":"), ensure_ascii=False))
    payloads.append("[DONE]")
    return payloads[:n]


def build_events(payloads: Sequence[str], ids: bool) -> list[bytes]:
    """The bytes of each event, as its own chunk will carry it."""
    if ids:
        return [f"id: {i}\ndata: {p}\n\n".encode() for i, p in enumerate(payloads)]
    return [f"data: {p}\n\n".encode() for p in payloads]


RESPONSE_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"\r\n"
)


def build_response(events: Sequence[bytes]) -> bytes:
    """The whole HTTP response: the head, then each event framed as one HTTP chunk."""
    parts = [RESPONSE_HEAD]
    for event in events:
        parts.append(b"%x\r\n%b\r\n" % (len(event), event))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


@dataclass(frozen=True)
class Stream:
    payloads: list[str]
    response: bytes  # the full HTTP response on the wire
    sse_bytes: int  # the decoded body: what a bare read must count
    ids: bool

    @property
    def events(self) -> int:
        return len(self.payloads)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.response).hexdigest()[:16]


def build_stream(n: int, ids: bool) -> Stream:
    payloads = build_payloads(n)
    events = build_events(payloads, ids)
    return Stream(payloads, build_response(events), sum(map(len, events)), ids)


# --------------------------------------------------------------------------- the server


def _serve_connection(conn: socket.socket, response: bytes) -> None:
    """Answer every request on the connection with the whole prebuilt response."""
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:
            try:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                _, _, buf = buf.partition(b"\r\n\r\n")  # GET: the request has no body
                conn.sendall(response)
            except OSError:  # the client went away (a run was abandoned mid-stream)
                return


def serve(events: int, ids: bool, cpu: int | None) -> int:
    """``--serve``: print ``port digest`` on stdout, then serve until stdin closes."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    stream = build_stream(events, ids)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(64)

    def watch_parent() -> None:  # our parent closes stdin (or dies): stop
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch_parent, daemon=True).start()
    print(listener.getsockname()[1], stream.digest, flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(
            target=_serve_connection, args=(conn, stream.response), daemon=True
        ).start()


class Server:
    """This script with ``--serve``, in its own process."""

    def __init__(self, stream: Stream, cpu: int | None) -> None:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve"]
        cmd += ["--events", str(stream.events)] + (["--ids"] if stream.ids else [])
        if cpu is not None:
            cmd += ["--server-cpu", str(cpu)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().split()
        if len(line) != 2:
            self.close()
            raise SystemExit("bench/client.py: the server process did not start")
        port, digest = line
        if digest != stream.digest:
            self.close()
            raise SystemExit("bench/client.py: the server built a different stream")
        self.url = f"http://{HOST}:{port}/events"

    def raw_read_s(self, stream: Stream, runs: int = 5) -> float:
        """Best time to read the whole response off a plain socket: the server's ceiling."""
        host, _, port = self.url.split("/")[2].partition(":")
        buf = bytearray(1 << 20)
        best = float("inf")
        for _ in range(runs):
            start = time.perf_counter()
            with socket.create_connection((host, int(port))) as sock:
                sock.sendall(b"GET /events HTTP/1.1\r\nHost: " + host.encode() + b"\r\n\r\n")
                got = 0
                while got < len(stream.response):
                    n = sock.recv_into(buf)
                    if not n:
                        break
                    got += n
            if got != len(stream.response):
                raise SystemExit(
                    f"bench/client.py: the server sent {got:,} bytes, not the response"
                )
            best = min(best, time.perf_counter() - start)
        return best

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------- contestants


@dataclass
class Outcome:
    events: int = 0
    first: str | None = None
    last: str | None = None
    nbytes: int = 0


def drain(events: Iterable[Any]) -> Outcome:
    """Consume events as a streaming reader does: read each one's data, keep none."""
    n = 0
    first = last = None
    for event in events:
        last = event.data
        if first is None:
            first = last
        n += 1
    return Outcome(n, first, last)


async def adrain(events: AsyncIterable[Any]) -> Outcome:
    n = 0
    first = last = None
    async for event in events:
        last = event.data
        if first is None:
            first = last
        n += 1
    return Outcome(n, first, last)


class FloorEvent:
    """The least an SSE client can hand out per event: a plain object with the four fields."""

    __slots__ = ("data", "event", "id", "retry")

    def __init__(self, data: str, event: str, id: str, retry: int | None) -> None:
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry


def floor_events(chunks: Iterable[bytes]) -> Iterator[FloorEvent]:
    """``--floor``: not a parser, right only for this stream (LF, one data line per event)."""
    tail = b""
    for chunk in chunks:
        parts = (tail + chunk).split(b"\n\n")
        tail = parts.pop()
        for part in parts:
            yield FloorEvent(part[6:].decode("utf-8", "replace"), "message", "", None)


async def afloor_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[FloorEvent]:
    tail = b""
    async for chunk in chunks:
        parts = (tail + chunk).split(b"\n\n")
        tail = parts.pop()
        for part in parts:
            yield FloorEvent(part[6:].decode("utf-8", "replace"), "message", "", None)


FLOOR_NAME = "floor (not a parser)"
FLOOR_CODE = "split at blank lines, decode, one plain object per event"
SyncRun = Callable[[str], Outcome]
AsyncRun = Callable[[str], Awaitable[Outcome]]


@dataclass(frozen=True)
class Contestant:
    transport: str
    name: str
    role: str  # bare | ours | peer | floor
    code: str  # what it runs, for the report
    run: SyncRun | None = None
    arun: AsyncRun | None = None

    @property
    def key(self) -> str:
        return f"{self.transport}: {self.name}"


def _require(module: str, dist: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise SystemExit(
            f"bench/client.py: cannot import {module!r} (package {dist!r}): {exc}\n{INSTALL_HINT}"
        ) from exc


def _import_ours() -> ModuleType:
    try:
        return importlib.import_module("tokenrelay.client")
    except ImportError:
        src = REPO_ROOT / "src"
        if not (src / "tokenrelay").is_dir() or str(src) in sys.path:
            raise
        sys.path.insert(0, str(src))  # running from a checkout that is not installed
        sys.modules.pop("tokenrelay", None)
        return importlib.import_module("tokenrelay.client")


def httpx_contestants(floor: bool) -> list[Contestant]:
    httpx = _require("httpx", "httpx")
    httpx_sse = _require("httpx_sse", "httpx-sse")
    sse_decoder = _require("openai._streaming", "openai").SSEDecoder
    ours = _import_ours()
    iter_events, connect = ours.iter_events, ours.connect

    def bare(url: str) -> Outcome:
        n = 0
        with httpx.Client() as client, client.stream("GET", url) as r:
            for b in r.iter_bytes():
                n += len(b)
        return Outcome(nbytes=n)

    def ours_iter(url: str) -> Outcome:
        with httpx.Client() as client, client.stream("GET", url) as r:
            return drain(iter_events(r))

    def ours_connect(url: str) -> Outcome:
        with connect(url, reconnect=False) as events:
            return drain(events)

    def peer_httpx_sse(url: str) -> Outcome:
        with httpx.Client() as client, httpx_sse.connect_sse(client, "GET", url) as source:
            return drain(source.iter_sse())

    def peer_openai(url: str) -> Outcome:
        with httpx.Client() as client, client.stream("GET", url) as r:
            return drain(sse_decoder().iter_bytes(r.iter_bytes()))

    def floor_run(url: str) -> Outcome:
        with httpx.Client() as client, client.stream("GET", url) as r:
            return drain(floor_events(r.iter_bytes()))

    t = "httpx"
    return [
        Contestant(t, "bare read", BARE, "r.iter_bytes(), bytes counted", bare),
        *([Contestant(t, FLOOR_NAME, FLOOR, FLOOR_CODE, floor_run)] if floor else []),
        Contestant(t, "tokenrelay iter_events", OURS, "iter_events(r)", ours_iter),
        Contestant(t, "tokenrelay connect", OURS, "connect(url, reconnect=False)", ours_connect),
        Contestant(t, "httpx-sse", PEER, "connect_sse(client, ...).iter_sse()", peer_httpx_sse),
        Contestant(t, "openai", PEER, "SSEDecoder().iter_bytes(r.iter_bytes())", peer_openai),
    ]


def requests_contestants(floor: bool) -> list[Contestant]:
    requests = _require("requests", "requests")
    sse_client = _require("sseclient", "sseclient-py").SSEClient
    iter_events = _import_ours().iter_events

    def bare(url: str) -> Outcome:
        n = 0
        with requests.get(url, stream=True) as r:
            for b in r.iter_content(chunk_size=None):
                n += len(b)
        return Outcome(nbytes=n)

    def ours_iter(url: str) -> Outcome:
        with requests.get(url, stream=True) as r:
            return drain(iter_events(r))

    def peer_sseclient(url: str) -> Outcome:
        with requests.get(url, stream=True) as r:
            return drain(sse_client(r).events())

    def peer_iter_lines(url: str) -> Outcome:
        n = 0
        first = last = None
        with requests.get(url, stream=True) as r:
            for line in r.iter_lines():
                if line.startswith(b"data: "):
                    last = line[6:].decode()
                    if first is None:
                        first = last
                    n += 1
        return Outcome(n, first, last)

    def floor_run(url: str) -> Outcome:
        with requests.get(url, stream=True) as r:
            return drain(floor_events(r.iter_content(chunk_size=None)))

    t = "requests"
    return [
        Contestant(t, "bare read", BARE, "r.iter_content(chunk_size=None), bytes counted", bare),
        *([Contestant(t, FLOOR_NAME, FLOOR, FLOOR_CODE, floor_run)] if floor else []),
        Contestant(t, "tokenrelay iter_events", OURS, "iter_events(r)", ours_iter),
        Contestant(t, "sseclient-py", PEER, "SSEClient(r).events()", peer_sseclient),
        Contestant(
            t,
            "iter_lines loop",
            PEER,
            'for line in r.iter_lines(): if line.startswith(b"data: ")',
            peer_iter_lines,
        ),
    ]


def aiohttp_contestants(floor: bool) -> list[Contestant]:
    aiohttp = _require("aiohttp", "aiohttp")
    aiter_events = _import_ours().aiter_events

    async def bare(url: str) -> Outcome:
        n = 0
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            async for b in resp.content.iter_any():
                n += len(b)
        return Outcome(nbytes=n)

    async def ours_aiter(url: str) -> Outcome:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            return await adrain(aiter_events(resp))

    async def peer_lines(url: str) -> Outcome:
        n = 0
        first = last = None
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            async for line in resp.content:
                if line.startswith(b"data: "):
                    last = line[6:].decode().rstrip("\r\n")
                    if first is None:
                        first = last
                    n += 1
        return Outcome(n, first, last)

    async def floor_run(url: str) -> Outcome:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            return await adrain(afloor_events(resp.content.iter_any()))

    t = "aiohttp"
    return [
        Contestant(t, "bare read", BARE, "resp.content.iter_any(), bytes counted", arun=bare),
        *([Contestant(t, FLOOR_NAME, FLOOR, FLOOR_CODE, arun=floor_run)] if floor else []),
        Contestant(t, "tokenrelay aiter_events", OURS, "aiter_events(resp)", arun=ours_aiter),
        Contestant(
            t,
            "line loop",
            PEER,
            'async for line in resp.content: if line.startswith(b"data: ")',
            arun=peer_lines,
        ),
    ]


def httpx_async_contestants(floor: bool) -> list[Contestant]:
    httpx = _require("httpx", "httpx")
    httpx_sse = _require("httpx_sse", "httpx-sse")
    sse_decoder = _require("openai._streaming", "openai").SSEDecoder
    ours = _import_ours()
    aiter_events, aconnect = ours.aiter_events, ours.aconnect

    async def bare(url: str) -> Outcome:
        n = 0
        async with httpx.AsyncClient() as client, client.stream("GET", url) as r:
            async for b in r.aiter_bytes():
                n += len(b)
        return Outcome(nbytes=n)

    async def ours_aiter(url: str) -> Outcome:
        async with httpx.AsyncClient() as client, client.stream("GET", url) as r:
            return await adrain(aiter_events(r))

    async def ours_aconnect(url: str) -> Outcome:
        async with aconnect(url, reconnect=False) as events:
            return await adrain(events)

    async def peer_httpx_sse(url: str) -> Outcome:
        async with (
            httpx.AsyncClient() as client,
            httpx_sse.aconnect_sse(client, "GET", url) as source,
        ):
            return await adrain(source.aiter_sse())

    async def peer_openai(url: str) -> Outcome:
        async with httpx.AsyncClient() as client, client.stream("GET", url) as r:
            return await adrain(sse_decoder().aiter_bytes(r.aiter_bytes()))

    async def floor_run(url: str) -> Outcome:
        async with httpx.AsyncClient() as client, client.stream("GET", url) as r:
            return await adrain(afloor_events(r.aiter_bytes()))

    t = "httpx async"
    return [
        Contestant(t, "bare read", BARE, "r.aiter_bytes(), bytes counted", arun=bare),
        *([Contestant(t, FLOOR_NAME, FLOOR, FLOOR_CODE, arun=floor_run)] if floor else []),
        Contestant(t, "tokenrelay aiter_events", OURS, "aiter_events(r)", arun=ours_aiter),
        Contestant(
            t, "tokenrelay aconnect", OURS, "aconnect(url, reconnect=False)", arun=ours_aconnect
        ),
        Contestant(
            t, "httpx-sse", PEER, "aconnect_sse(client, ...).aiter_sse()", arun=peer_httpx_sse
        ),
        Contestant(
            t, "openai", PEER, "SSEDecoder().aiter_bytes(r.aiter_bytes())", arun=peer_openai
        ),
    ]


LOADERS: dict[str, Callable[[bool], list[Contestant]]] = {
    "httpx": httpx_contestants,
    "requests": requests_contestants,
    "aiohttp": aiohttp_contestants,
    "httpx async": httpx_async_contestants,
}


def check(c: Contestant, out: Outcome, stream: Stream) -> str | None:
    """None if the run read the whole stream right, else what is wrong."""
    if c.role == BARE:
        if out.nbytes != stream.sse_bytes:
            return f"read {out.nbytes:,} bytes, expected {stream.sse_bytes:,}"
        return None
    if out.events != stream.events:
        return f"{out.events:,} events, expected {stream.events:,}"
    for which, got, want in (
        ("first", out.first, stream.payloads[0]),
        ("last", out.last, stream.payloads[-1]),
    ):
        if got != want:
            return f"{which} event's data is {got!r:.60}, expected {want!r:.60}"
    return None


# --------------------------------------------------------------------------- timing


@dataclass
class Result:
    contestant: Contestant
    status: str = "ok"  # ok | wrong | error | timeout
    problem: str = ""
    warmup_s: float | None = None
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # process CPU time of each timed run
    runs_wanted: int = 0

    @property
    def best(self) -> float | None:
        return min(self.times) if self.times else None

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def timed(self) -> bool:
        return bool(self.times) and self.status in ("ok", "wrong")

    @property
    def active(self) -> bool:
        """Still to be run in later rounds."""
        return self.status in ("ok", "wrong") and len(self.times) < self.runs_wanted

    def rate(self, events: int) -> float | None:
        best = self.best
        return events / best if best and self.timed else None

    @property
    def cpu_share(self) -> float | None:
        if not self.times:
            return None
        i = self.times.index(min(self.times))
        return self.cpu[i] / self.times[i]


def run_once(
    c: Contestant, url: str, runner: asyncio.Runner, timeout: float
) -> tuple[float, float, Outcome]:
    gc.collect()
    with deadline(timeout):
        cpu0 = time.process_time()
        start = time.perf_counter()
        if c.run is not None:
            out = c.run(url)
        else:
            assert c.arun is not None
            out = runner.run(c.arun(url))  # type: ignore[arg-type]
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu0
    return elapsed, cpu, out


def attempt(
    res: Result, url: str, runner: asyncio.Runner, stream: Stream, cfg: Config
) -> tuple[float, float] | None:
    """One checked run: (wall, CPU) seconds, or None (and the result marked) if it failed."""
    c = res.contestant
    start = time.perf_counter()
    try:
        elapsed, cpu, out = run_once(c, url, runner, cfg.timeout_s)
    except Exception as exc:
        # The alarm can land anywhere; a library may turn it into an error of its own.
        if isinstance(exc, RunTimeout) or time.perf_counter() - start >= cfg.timeout_s:
            res.status, res.problem = "timeout", f"a run took over {cfg.timeout_s:g} s"
        else:
            res.status, res.problem = "error", f"{type(exc).__name__}: {exc}"[:300]
        return None
    problem = check(c, out, stream)
    if problem and res.status == "ok":
        res.status, res.problem = "wrong", problem
    return elapsed, cpu


def benchmark(
    contestants: Sequence[Contestant],
    url: str,
    stream: Stream,
    cfg: Config,
    progress: Callable[[str], None],
) -> dict[str, Result]:
    results = {c.key: Result(c) for c in contestants}
    by_transport: dict[str, list[Result]] = {}
    for c in contestants:
        by_transport.setdefault(c.transport, []).append(results[c.key])

    def show(tag: str, res: Result, timing: tuple[float, float] | None) -> None:
        c = res.contestant
        what = ""
        if timing is not None:
            elapsed, cpu = timing
            rate = stream.events / elapsed
            what = f"{elapsed:7.3f} s {rate:>11,.0f} ev/s  cpu {cpu / elapsed:4.0%}"
        note = f"  {res.status}: {res.problem}" if res.status != "ok" else ""
        progress(f"  [{tag}] {c.transport:<11} {c.name:<24} {what}{note}")

    with asyncio.Runner() as runner:
        progress("warm-up (checked) ...")
        for group in by_transport.values():
            for res in group:
                timing = attempt(res, url, runner, stream, cfg)
                show("warm-up", res, timing)
                if timing is None:
                    continue
                warm = res.warmup_s = timing[0]
                runs = cfg.runs
                if warm * runs > cfg.budget_s:
                    runs = max(1, int(cfg.budget_s / warm))
                res.runs_wanted = runs
        for rnd in range(cfg.runs):
            progress(f"round {rnd + 1}/{cfg.runs} ...")
            for group in by_transport.values():
                k = rnd % len(group)
                for res in group[k:] + group[:k]:  # a different order every round
                    if not res.active:
                        continue
                    timing = attempt(res, url, runner, stream, cfg)
                    show(f"{rnd + 1}/{cfg.runs}", res, timing)
                    if timing is not None:
                        res.times.append(timing[0])
                        res.cpu.append(timing[1])
    return results


# --------------------------------------------------------------------------- reporting


def fmt_rate(res: Result, events: int) -> str:
    rate = res.rate(events)
    if rate is None:
        return res.status
    text = f"{rate:,.0f}"
    return f"{text} **WRONG**" if res.status == "wrong" else text


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0.1:
        return f"{seconds * 1e3:,.1f} ms"
    return f"{seconds * 1e3:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def speed_ratio(ours: Result | None, other: Result | None) -> float | None:
    """ours/other speed (other's best time / ours): > 1 means ours is faster."""
    if ours is None or other is None or not ours.timed or not other.timed:
        return None
    assert ours.best is not None and other.best is not None
    return other.best / ours.best


def fastest_correct_peer(group: Sequence[Result]) -> Result | None:
    ok = [r for r in group if r.contestant.role == PEER and r.status == "ok" and r.timed]
    return min(ok, key=lambda r: r.best or float("inf")) if ok else None


def fastest_bare_note(results: dict[str, Result], ceiling_s: float) -> str:
    bares = [r.best for r in results.values() if r.contestant.role == BARE and r.best]
    return f"{min(bares) / ceiling_s:,.0f}x the fastest bare read" if bares else "no bare read"


def render(
    header: list[str], results: dict[str, Result], stream: Stream
) -> tuple[str, list[dict[str, Any]]]:
    out = list(header)
    groups: dict[str, list[Result]] = {}
    for res in results.values():
        groups.setdefault(res.contestant.transport, []).append(res)
    n = stream.events

    for transport, group in groups.items():
        bare = next((r for r in group if r.contestant.role == BARE), None)
        ours = [r for r in group if r.contestant.role == OURS]
        out += ["", f"## {transport}", ""]
        cols = ["contestant", "code", "events/s", "best", "median", "runs", "client CPU"]
        cols.append("% of bare")
        cols += [f"{r.contestant.name.removeprefix('tokenrelay ')} ÷ this" for r in ours]
        out.append("| " + " | ".join(cols) + " |")
        out.append("|---|---|" + "---:|" * (len(cols) - 2))
        for res in group:
            c = res.contestant
            name = {OURS: f"**{c.name}**", FLOOR: f"_{c.name}_"}.get(c.role, c.name)
            share = speed_ratio(bare, res)  # bare time / this time
            cells = [
                name,
                f"`{c.code}`",
                fmt_rate(res, n),
                fmt_s(res.best),
                fmt_s(res.median),
                str(len(res.times)),
                f"{res.cpu_share:.0%}" if res.cpu_share is not None else "-",
                f"{1 / share:.0%}" if share else "-",
            ]
            for o in ours:
                ratio = speed_ratio(o, res) if o is not res else None
                cells.append(f"{ratio:.2f}x" if ratio is not None else "-")
            out.append("| " + " | ".join(cells) + " |")

    targets: list[dict[str, Any]] = []
    out += [
        "",
        "## Targets",
        "",
        "Per transport, each of ours: faster than the fastest correct peer (ratio > 1), and "
        f"at least {MIN_BARE_SHARE:.0%} of the transport's bare read rate.",
        "",
        "| transport | ours | target | measured | status |",
        "|---|---|---|---|---|",
    ]
    for transport, group in groups.items():
        bare = next((r for r in group if r.contestant.role == BARE), None)
        fastest = fastest_correct_peer(group)
        for o in (r for r in group if r.contestant.role == OURS):
            ok_ours = o.status == "ok"
            ratio = speed_ratio(o, fastest)
            rows = [
                (
                    "ahead of every peer",
                    f"{ratio:.2f}x vs {fastest.contestant.name}"
                    if ratio is not None and fastest
                    else "n/a",
                    ratio,
                    None if ratio is None else ok_ours and ratio > 1.0,
                ),
            ]
            inv = speed_ratio(bare, o)
            share = 1 / inv if inv else None
            rows.append(
                (
                    f">= {MIN_BARE_SHARE:.0%} of bare",
                    f"{share:.1%}" if share is not None else "n/a",
                    share,
                    None if share is None else ok_ours and share >= MIN_BARE_SHARE,
                )
            )
            for target, measured, value, passed in rows:
                status = "n/a" if passed is None else "PASS" if passed else "FAIL"
                out.append(
                    f"| {transport} | {o.contestant.name} | {target} | {measured} | {status} |"
                )
                targets.append(
                    {
                        "transport": transport,
                        "ours": o.contestant.name,
                        "target": target,
                        "measured": value,
                        "pass": passed,
                    }
                )

    noisy = [
        r
        for r in results.values()
        if r.timed and r.best and r.median and r.median > r.best * (1 + NOISY_SPREAD)
    ]
    if noisy:
        worst = max(noisy, key=lambda r: (r.median or 0) / (r.best or 1))
        assert worst.median is not None and worst.best is not None
        out += [
            "",
            f"**Noise:** {len(noisy)} of {len(results)} rows have a median over "
            f"{NOISY_SPREAD:.0%} above their best (worst: {worst.contestant.key}, "
            f"+{worst.median / worst.best - 1:.0%}); something else was probably using the "
            "CPU, so re-run on a quiet machine before trusting close ratios.",
        ]

    problems = [r for r in results.values() if r.status != "ok"]
    out += ["", "## Correctness", ""]
    if problems:
        for r in problems:
            out.append(f"- **{r.contestant.key}**: {r.status}: {r.problem}")
    else:
        out.append(
            "Every contestant read the whole stream right on every run (event count, first "
            "and last data; bare reads: byte count)."
        )
    return "\n".join(out), targets


def ours_version() -> str:
    """The version, and which code was measured: the commit, and any local edits."""
    version = dist_version("tokenrelay")
    module = sys.modules.get("tokenrelay")
    decoder = sys.modules.get("tokenrelay.sse.decoder")
    if decoder is not None:  # which decoder: the C extension or the pure-Python one
        version = f"{version} [{getattr(decoder, 'IMPLEMENTATION', 'python')} decoder]"
    commit = git("rev-parse", "--short", "HEAD")
    if module is None or module.__file__ is None or not commit:
        return version
    package_dir = Path(module.__file__).resolve().parent
    try:
        package_dir.relative_to(REPO_ROOT)
    except ValueError:
        return f"{version} (an installed copy, not this checkout)"
    dirty = git("status", "--porcelain", "--", str(package_dir))
    return f"{version} (commit {commit}{' + uncommitted changes' if dirty else ''})"


def _cpu_set() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Events/s reading one fast local SSE stream end to end, tokenrelay's "
        "client against its peers on httpx, requests, aiohttp and httpx async "
        "(markdown report on stdout, progress on stderr).",
    )
    parser.add_argument("--quick", action="store_true", help="20,000 events, 3 runs")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    parser.add_argument(
        "--transport",
        action="append",
        choices=TRANSPORTS,
        help="run only this transport (repeatable; default: all)",
    )
    parser.add_argument("--events", type=int, help="events in the stream (default 200,000)")
    parser.add_argument("--runs", type=int, help="timed runs per contestant (default 5)")
    parser.add_argument(
        "--budget", type=float, help="seconds of timed runs for a slow contestant (default 12)"
    )
    parser.add_argument("--timeout", type=float, help="abandon a single run after this many s")
    parser.add_argument("--ids", action="store_true", help="give every event an id: line")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="add a reference row per transport: the least any client must do per event "
        "(split, decode, build one object; not a parser; not with --ids)",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin server and client to different CPUs"
    )
    parser.add_argument(
        "--serve", action="store_true", help="only run the server: print 'port digest', serve"
    )
    parser.add_argument("--server-cpu", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = QUICK if args.quick else Config()
    overrides: dict[str, Any] = {"ids": args.ids, "pin": not args.no_pin}
    if args.events is not None:
        overrides["events"] = max(2, args.events)
    if args.runs is not None:
        overrides["runs"] = max(1, args.runs)
    if args.budget is not None:
        overrides["budget_s"] = args.budget
    if args.timeout is not None:
        overrides["timeout_s"] = args.timeout
    cfg = Config(**{**cfg.__dict__, **overrides})
    if args.serve:
        return serve(cfg.events, cfg.ids, args.server_cpu)

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    contestants: list[Contestant] = []
    for transport in TRANSPORTS:
        if args.transport is None or transport in args.transport:
            contestants += LOADERS[transport](args.floor and not cfg.ids)

    cpus = _cpu_set()
    server_cpu = client_cpu = None
    if cfg.pin and len(cpus) >= 2 and hasattr(os, "sched_setaffinity"):
        client_cpu, server_cpu = cpus[0], cpus[1]
    progress(f"building the stream ({cfg.events:,} events) and starting the server ...")
    stream = build_stream(cfg.events, cfg.ids)
    server = Server(stream, server_cpu)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    started = time.perf_counter()
    try:
        ceiling_s = server.raw_read_s(stream)
        progress(f"server check: a raw socket reads the whole response in {fmt_s(ceiling_s)}")
        results = benchmark(contestants, server.url, stream, cfg, progress)
    finally:
        server.close()
        if client_cpu is not None:
            os.sched_setaffinity(0, set(cpus))
    elapsed = time.perf_counter() - started

    pinning = (
        f"server pinned to CPU {server_cpu}, client to CPU {client_cpu}"
        if client_cpu is not None
        else "not pinned"
    )
    versions = {
        "tokenrelay": ours_version(),
        **{dist: dist_version(dist) for dist in VERSIONED},
    }
    header = [
        "# SSE client benchmark (bench/client.py)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; "
        f"mode: {'quick' if cfg.quick else 'full'}; benchmark time {elapsed:,.0f} s",
        f"- python: {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}, {len(cpus)} CPUs; {pinning}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        f"- stream: {stream.events:,} events, one HTTP/1.1 chunk each "
        f"(Transfer-Encoding: chunked), {stream.sse_bytes / 1e6:,.2f} MB of SSE "
        f"({stream.sse_bytes / stream.events:.0f} bytes/event on average"
        f"{', each with an id: line' if stream.ids else ', no ids'}), "
        f"{len(stream.response) / 1e6:,.2f} MB on the wire; payloads: chat-completion deltas "
        "(~5% non-ASCII), the last one `[DONE]`",
        "- server: this script with --serve in its own process, raw sockets on 127.0.0.1, "
        "the whole response built once and written with one sendall() per request; "
        f"a plain socket reads it all in {fmt_s(ceiling_s)} ({stream.events / ceiling_s:,.0f} "
        f"events/s, {fastest_bare_note(results, ceiling_s)}), so the server is not the limit",
        f"- method: one checked warm-up run per contestant, then best of {cfg.runs} runs "
        f"(fewer for a contestant slower than ~{cfg.budget_s:g} s in all), interleaved by "
        "rounds in a rotating order, every run checked; time.perf_counter around the whole "
        "request (client creation, connect, read, close); gc on; each event's data read and "
        "dropped; client CPU = process CPU time / wall time of the best run",
        "- ratios: ours ÷ this = this contestant's best time / ours (> 1: ours is faster); "
        "% of bare = bare read's best time / this one's",
    ]
    report, targets = render(header, results, stream)
    print(report)

    if args.json:
        payload = {
            "meta": {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "mode": "quick" if cfg.quick else "full",
                "python": platform.python_version(),
                "implementation": platform.python_implementation(),
                "platform": platform.platform(),
                "cpus": len(cpus),
                "pinning": pinning,
                "versions": versions,
                "config": cfg.__dict__,
                "elapsed_s": elapsed,
                "server_raw_read_s": ceiling_s,
            },
            "stream": {
                "events": stream.events,
                "sse_bytes": stream.sse_bytes,
                "wire_bytes": len(stream.response),
                "ids": stream.ids,
            },
            "results": [
                {
                    "transport": r.contestant.transport,
                    "contestant": r.contestant.name,
                    "role": r.contestant.role,
                    "code": r.contestant.code,
                    "status": r.status,
                    "problem": r.problem,
                    "warmup_s": r.warmup_s,
                    "best_s": r.best,
                    "median_s": r.median,
                    "times_s": r.times,
                    "cpu_s": r.cpu,
                    "events_per_s": r.rate(stream.events),
                    "mb_per_s": stream.sse_bytes / r.best / 1e6 if r.best and r.timed else None,
                }
                for r in results.values()
            ],
            "targets": targets,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        progress(f"wrote {args.json}")
    bad_ours = [r for r in results.values() if r.contestant.role == OURS and r.status != "ok"]
    return 1 if bad_ours else 0


if __name__ == "__main__":
    sys.exit(main())
