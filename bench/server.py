"""Server benchmark: ``tokenrelay.server.EventSourceResponse`` against sse-starlette and
FastAPI's built-in SSE (``fastapi.sse``), with a bare Starlette ``StreamingResponse`` as the
floor, all under the same uvicorn settings, side by side in one run.

What it measures
----------------
Every contestant serves the same logical stream: N small LLM-like events, each exactly
``data: {"choices":[{"delta":{"content":" word"}}]}`` + blank line (51 bytes; the bytes are
checked on the wire for every contestant before it is measured), made by an async generator
that yields a prebuilt item as fast as it can (so the cost of building per-event objects,
which a real app pays, is left out for everybody). Each framework is used as its docs show:

* ``floor``            -- ``starlette.responses.StreamingResponse`` of the pre-encoded event
  bytes: the least any SSE response can cost under this server.
* ``sse-starlette``    -- ``EventSourceResponse(gen, ping=PING_S, sep="\\n")`` yielding
  ``{"data": json_text}`` dicts, as its README does (``sep="\\n"``: its default is CRLF,
  which would make each event 2 bytes longer).
* ``fastapi.sse``      -- the tutorial's way: a path operation with
  ``response_class=fastapi.sse.EventSourceResponse`` and a return annotation
  ``AsyncIterable[Chunk]`` (a pydantic model) that yields ``Chunk`` objects; FastAPI
  validates and serializes each one.
* ``fastapi.sse raw``  -- the same, yielding ``ServerSentEvent(raw_data=json_text)``: the
  cheapest FastAPI path for an already serialized payload (throughput only).
* ``tokenrelay``       -- ``EventSourceResponse(gen, ping=PING_S)`` yielding the JSON text
  as ``str`` data (the primary row, measured everywhere);
* ``tokenrelay dict``  -- yielding ``{"data": payload_dict}`` (our own JSON encoding);
* ``tokenrelay bytes`` -- yielding the pre-encoded event bytes (the pass-through fast path).
  The last two are measured for throughput only.

Keep-alive pings stay switched on with their machinery (a task or a timer per stream) but at
a ``PING_S`` (1 h) interval, so none is sent during a run (``fastapi.sse`` has no parameter:
``fastapi.routing._PING_INTERVAL`` is set, the knob its own tests use). Everything else is
each library's default (e.g. our ``send_timeout=30`` and ``buffer=32``).

Measures:

1. **one fast reader**: events/s of one connection reading ``--events`` events (200,000;
   ``--quick`` 50,000), best of N runs (3), from the request to the last event. The request
   says ``Connection: close`` and the client's socket has ``SO_RCVLOWAT`` 64 KiB, so the
   client is woken per 64 KiB (or at the end), not once per 51-byte write: it then reads
   even the floor with a few % of its core. (Reading every write instead costs the client
   ~30-95% of a core on the floor, and the server too: on loopback each send also wakes
   the reader; that made the one-send-per-event rows, floor and sse-starlette, ~15% slower
   in an A/B run, and ours (up to 32 events per write, its default buffer) unchanged.)
2. **1,000 readers**: 1,000 connections opened at once, each reading 100 events; aggregate
   events/s and the time until the last reader has its last event (best of 2).
3. **1,000 paced readers** (primary rows): a stream that yields one event, then sleeps
   50 ms, 100 times, read by 1,000 connections at once; the gaps between consecutive events
   seen by each reader (p50, p99, max) in the steady state (the gaps that begin once every
   reader has its first event: before that, the server is also busy accepting 1,000
   connections, which makes even the floor skip a few beats; that longest gap is reported
   on its own), how many exceed ``STALL_S`` (250 ms: a stall), and whether every reader got
   every event.
4. **memory per idle open stream** (primary rows): in a fresh server process per
   contestant, warmed (one checked request, 20 idle streams opened and closed), the RSS is
   the baseline; then 1,000 and 5,000 streams are opened whose producers yield one event
   and wait for ever (``await asyncio.Event().wait()``), and (RSS - baseline) / N is
   reported once every stream has its first event and the RSS has settled.

Method: the server is this file started again with ``--serve``: one FastAPI app exposing
every contestant at its own path (so routing and request handling cost the same for all),
run by ``uvicorn.Server`` with ``loop="uvloop"``, ``http="httptools"``, log level warning,
no access log, backlog 4096, in its own process pinned to CPU 1. Measures 1-3 run in one
server process for all contestants, in rounds (each round runs every contestant once, in an
order rotated from round to round); measure 4 uses a fresh process per contestant. The load
client is this process, pinned to CPU 0: raw ``asyncio.Protocol`` connections on uvloop that
count ``data: `` markers in the raw bytes (exact across reads) and time each read, so the
client is never the bottleneck: the report's client check shows, for every throughput run,
the server near 100% of its core and the client below it ("CPU": a process's CPU time over
the wall time of the run). Client sockets close with RST (``SO_LINGER`` 0), so no
TIME_WAIT piles up; ``RLIMIT_NOFILE`` is raised to its hard limit on both sides.

Absolute rates depend on the machine and, on a shared VM, on the moment (the floor's
one-reader rate was seen to differ by up to 2x between runs an hour apart on the 2-core
development VM, the libraries' rates less so): compare rows of one run, not runs.

Targets (from the issue), for the ``tokenrelay`` row: throughput >= 2x sse-starlette and
within 1.5x of the floor (one reader and 1,000 readers); memory per idle stream within 5 KB
of the floor (1k and 5k streams); no stall (no gap > ``STALL_S``, every event delivered) at
1,000 paced readers (steady state).

How to run
----------
From the repository root, after ``pip install -e '.[bench]'`` plus ``uvicorn uvloop httptools
fastapi sse-starlette psutil``::

    python bench/server.py                  # full run (~4 min), markdown on stdout
    python bench/server.py --quick          # smaller sizes, ~1.2 min
    python bench/server.py --json out.json  # also write machine-readable results
    python bench/server.py --only tokenrelay --only floor   # these rows only
    python bench/server.py --serve          # only the server: prints its port, serves until
                                            # killed, e.g. to profile it with py-spy

Progress goes to stderr, so ``python bench/server.py > report.md`` keeps only the report.
See ``--help`` for the other options.
"""

import argparse
import asyncio
import contextlib
import ctypes
import datetime as dt
import gc
import hashlib
import itertools
import json
import os
import platform
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self, cast

from _harness import REPO_ROOT, dist_version, git

INSTALL_HINT = (
    "Install the benchmark dependencies with:  pip install -e '.[bench]' "
    "uvicorn uvloop httptools fastapi sse-starlette psutil"
)

HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1  # linux/prctl.h
BACKLOG = 4096
PING_S = 3600.0  # keep-alive machinery on, but no ping is ever sent during a run
STALL_S = 0.25  # a gap longer than this between two paced events (every 50 ms) is a stall
PACE_SLACK = 1.1  # a paced stream keeps pace if its median gap is within 10% of the interval
LOWAT = 64 * 1024  # SO_RCVLOWAT of the one-reader client
ROUGH_CPU_S = 0.5  # CPU shares of shorter runs are marked rough (10 ms clock ticks)
CLIENT_BUSY = 0.95  # client check: the client's CPU share in every throughput run below this
PAYLOAD: dict[str, Any] = {"choices": [{"delta": {"content": " word"}}]}
TEXT = json.dumps(PAYLOAD, separators=(",", ":"))
FRAME = f"data: {TEXT}\n\n".encode()
MARK = b"data: "  # one per event: counted in the raw bytes by the load client
KB = 1024

SERVER_CPU = 1
CLIENT_CPU = 0

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    single_events: int = 200_000
    single_runs: int = 3
    fan_readers: int = 1_000
    fan_events: int = 100
    fan_runs: int = 2
    paced_readers: int = 1_000
    paced_events: int = 100
    paced_interval_s: float = 0.05
    idle_counts: tuple[int, ...] = (1_000, 5_000)
    open_batch: int = 250  # connections opened at once while building up idle streams
    timeout_s: float = 120.0
    quick: bool = False


QUICK = Config(
    single_events=50_000,
    single_runs=2,
    fan_readers=1_000,
    fan_events=50,
    fan_runs=1,
    paced_readers=1_000,
    paced_events=40,
    idle_counts=(1_000, 2_000),
    quick=True,
)


@dataclass(frozen=True)
class Contestant:
    key: str  # path on the server, and the id in --only and the JSON
    label: str  # row name in the report
    how: str  # what its endpoint does
    primary: bool  # measured everywhere; the others only for throughput


CONTESTANTS: tuple[Contestant, ...] = (
    Contestant(
        "floor",
        "floor",
        "`StreamingResponse(gen, media_type='text/event-stream')` of pre-encoded bytes",
        True,
    ),
    Contestant(
        "sse-starlette",
        "sse-starlette",
        f"`EventSourceResponse(gen, ping={PING_S:g}, sep='\\n')` yielding `{{'data': json_text}}`",
        True,
    ),
    Contestant(
        "fastapi",
        "fastapi.sse",
        "`response_class=EventSourceResponse`, `-> AsyncIterable[Chunk]` yielding a pydantic "
        "`Chunk`",
        True,
    ),
    Contestant(
        "fastapi-raw",
        "fastapi.sse raw",
        "`response_class=EventSourceResponse` yielding `ServerSentEvent(raw_data=json_text)`",
        False,
    ),
    Contestant(
        "tokenrelay",
        "tokenrelay",
        f"`EventSourceResponse(gen, ping={PING_S:g})` yielding `json_text` (str data)",
        True,
    ),
    Contestant(
        "tokenrelay-dict",
        "tokenrelay dict",
        f"`EventSourceResponse(gen, ping={PING_S:g})` yielding `{{'data': payload_dict}}`",
        False,
    ),
    Contestant(
        "tokenrelay-bytes",
        "tokenrelay bytes",
        f"`EventSourceResponse(gen, ping={PING_S:g})` yielding the pre-encoded event bytes",
        False,
    ),
)
BY_KEY = {c.key: c for c in CONTESTANTS}
OURS = "tokenrelay"
PEER = "sse-starlette"
FLOOR = "floor"


# --------------------------------------------------------------------------- the server


def _raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def produce(item: Any, n: int, mode: str, interval: float) -> AsyncIterator[Any]:
    """The stream every contestant serves: ``fast`` (n items, no await), ``paced`` (an item
    then a sleep, n times) or ``idle`` (one item, then wait for ever)."""
    if mode == "idle":
        yield item
        await asyncio.Event().wait()
    elif mode == "paced":
        for _ in range(n):
            yield item
            await asyncio.sleep(interval)
    else:
        for _ in range(n):
            yield item


def build_app() -> Any:
    """One FastAPI app with every contestant at ``/<key>?n=&mode=&interval=``."""
    import fastapi.routing
    from fastapi import FastAPI
    from fastapi.sse import EventSourceResponse as FastAPISSE
    from fastapi.sse import ServerSentEvent
    from pydantic import BaseModel
    from sse_starlette import EventSourceResponse as StarletteSSE
    from starlette.responses import StreamingResponse

    from tokenrelay.server import EventSourceResponse

    fastapi.routing._PING_INTERVAL = PING_S  # type: ignore[attr-defined]

    class Delta(BaseModel):
        content: str

    class Choice(BaseModel):
        delta: Delta

    class Chunk(BaseModel):
        choices: list[Choice]

    chunk = Chunk.model_validate(PAYLOAD)
    raw_event = ServerSentEvent(raw_data=TEXT)
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/floor", response_model=None)
    async def floor(n: int = 1, mode: str = "fast", interval: float = 0.05) -> StreamingResponse:
        return StreamingResponse(produce(FRAME, n, mode, interval), media_type="text/event-stream")

    @app.get("/sse-starlette", response_model=None)
    async def sse_starlette(n: int = 1, mode: str = "fast", interval: float = 0.05) -> StarletteSSE:
        return StarletteSSE(produce({"data": TEXT}, n, mode, interval), ping=PING_S, sep="\n")

    # FastAPI's SSE needs the path operation itself to be the generator: the loop of
    # produce() is written out so that no extra generator layer is added.
    async def fastapi_typed(
        n: int = 1, mode: str = "fast", interval: float = 0.05
    ) -> AsyncIterable[Chunk]:
        if mode == "idle":
            yield chunk
            await asyncio.Event().wait()
        elif mode == "paced":
            for _ in range(n):
                yield chunk
                await asyncio.sleep(interval)
        else:
            for _ in range(n):
                yield chunk

    app.get("/fastapi", response_class=FastAPISSE)(fastapi_typed)

    @app.get("/fastapi-raw", response_class=FastAPISSE)
    async def fastapi_raw(
        n: int = 1, mode: str = "fast", interval: float = 0.05
    ) -> AsyncIterable[ServerSentEvent]:
        if mode == "idle":
            yield raw_event
            await asyncio.Event().wait()
        elif mode == "paced":
            for _ in range(n):
                yield raw_event
                await asyncio.sleep(interval)
        else:
            for _ in range(n):
                yield raw_event

    @app.get("/tokenrelay", response_model=None)
    async def ours(n: int = 1, mode: str = "fast", interval: float = 0.05) -> EventSourceResponse:
        return EventSourceResponse(produce(TEXT, n, mode, interval), ping=PING_S)

    @app.get("/tokenrelay-dict", response_model=None)
    async def ours_dict(
        n: int = 1, mode: str = "fast", interval: float = 0.05
    ) -> EventSourceResponse:
        return EventSourceResponse(produce({"data": PAYLOAD}, n, mode, interval), ping=PING_S)

    @app.get("/tokenrelay-bytes", response_model=None)
    async def ours_bytes(
        n: int = 1, mode: str = "fast", interval: float = 0.05
    ) -> EventSourceResponse:
        return EventSourceResponse(produce(FRAME, n, mode, interval), ping=PING_S)

    return app


def _die_with_parent() -> None:
    """On Linux, get SIGTERM when the benchmark that started us dies (e.g. killed, or its
    output pipe closed), instead of serving on as an orphan."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def uvicorn_config(app: Any) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=BACKLOG,
        timeout_graceful_shutdown=1,
    )


def serve(cpu: int | None) -> None:
    """Run the app under uvicorn on 127.0.0.1, an ephemeral port printed on stdout."""
    import uvicorn

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    _die_with_parent()
    _raise_nofile()
    server = uvicorn.Server(uvicorn_config(build_app()))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(BACKLOG)  # connections queue here until uvicorn accepts them
    print(sock.getsockname()[1], flush=True)
    server.run(sockets=[sock])


class ServerProcess:
    """``python bench/server.py --serve`` in a child process, stderr kept in a file."""

    def __init__(self, cpu: int | None) -> None:
        import psutil

        self.log = tempfile.TemporaryFile(mode="w+")  # closed in stop()
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve"]
        if cpu is not None:
            cmd += ["--cpu", str(cpu)]
        self.popen = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=REPO_ROOT
        )
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the server did not start: {self.errors() or line!r}")
        self.port = int(line)
        self.ps = psutil.Process(self.popen.pid)
        self._errors = ""

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def cpu_s(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def errors(self) -> str:
        """What the server wrote on stderr (warnings and errors only, at log level warning)."""
        if self.log.closed:
            return self._errors
        self.log.flush()
        self.log.seek(0)
        return self.log.read().strip()

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        if not self.log.closed:
            self._errors = self.errors()
            self.log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- the load client


class Reader(asyncio.Protocol):
    """One SSE response read from a raw socket: counts events, timestamps them."""

    def __init__(self, request: bytes, target: int, record: bool = False, lowat: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.target = target
        self.lowat = lowat
        self.count = 0
        self.tail = b""
        self.started = 0.0
        self.times: list[float] | None = [] if record else None  # each event's arrival
        self.first: asyncio.Future[float] = loop.create_future()
        self.done: asyncio.Future[float] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.error = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:  # close with RST: no TIME_WAIT left behind
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if self.lowat:  # wake up for this much data (or the end), not every small write
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, self.lowat)
        self.started = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.tail and self.count == 0 and not data.startswith(b"HTTP/1.1 200"):
            self._fail(f"not a 200 response: {data[:80]!r}")
            return
        n = data.count(MARK) + (self.tail + data[: len(MARK) - 1]).count(MARK)
        self.tail = data[1 - len(MARK) :]
        if not n:
            return
        now = time.perf_counter()
        if self.count == 0:
            self.first.set_result(now)
        if self.times is not None:
            self.times.extend([now] * n)
        self.count += n
        if self.count >= self.target and not self.done.done():
            if self.count > self.target:
                self._fail(f"{self.count} events, expected {self.target}")
            else:
                self.done.set_result(now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self._fail(f"connection closed after {self.count} of {self.target} events ({exc})")

    def _fail(self, why: str) -> None:
        self.error = self.error or why
        for fut in (self.first, self.done):
            if not fut.done():
                fut.set_exception(ConnectionError(why))
                fut.exception()  # retrieved: no "never retrieved" warning if nobody waits
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def request_for(key: str, n: int, mode: str, interval: float = 0.05, close: bool = False) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return (
        f"GET /{key}?n={n}&mode={mode}&interval={interval} HTTP/1.1\r\n"
        f"Host: {HOST}\r\nAccept: text/event-stream\r\n{connection}\r\n"
    ).encode()


async def open_reader(
    port: int, request: bytes, target: int, record: bool = False, lowat: int = 0
) -> Reader:
    loop = asyncio.get_running_loop()
    _, reader = await loop.create_connection(
        lambda: Reader(request, target, record, lowat), HOST, port
    )
    return reader


async def fetch_whole(port: int, key: str, n: int) -> tuple[dict[str, str], bytes]:
    """One complete response (``Connection: close``): its headers and de-chunked body."""
    r, w = await asyncio.open_connection(HOST, port)
    w.write(
        f"GET /{key}?n={n}&mode=fast HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    )
    raw = await asyncio.wait_for(r.read(), 30)
    w.close()
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    headers[":status"] = lines[0]
    if headers.get("transfer-encoding") != "chunked":
        return headers, rest
    body = bytearray()
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return headers, bytes(body)
        body += rest[:size]
        rest = rest[size + 2 :]


async def check_wire(port: int, key: str) -> str:
    """Problems with the bytes a contestant sends for 3 events ('' when it is exact)."""
    headers, body = await fetch_whole(port, key, 3)
    problems = []
    if " 200 " not in headers[":status"] + " ":
        problems.append(headers[":status"])
    if not headers.get("content-type", "").startswith("text/event-stream"):
        problems.append(f"content-type {headers.get('content-type')!r}")
    if body != FRAME * 3:
        problems.append(f"body {body[:120]!r} != {FRAME * 3!r}")
    return "; ".join(problems)


class CpuMeter:
    """Wall time, and the CPU share of the server and of this client over it."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.wall = time.perf_counter()
        self.server_cpu = server.cpu_s()
        self.client_cpu = time.process_time()

    def stop(self) -> tuple[float, float]:
        wall = time.perf_counter() - self.wall
        return (
            (self.server.cpu_s() - self.server_cpu) / wall,
            (time.process_time() - self.client_cpu) / wall,
        )


# --------------------------------------------------------------------------- the measures


@dataclass
class Single:
    events: int = 0
    times_s: list[float] = field(default_factory=list)
    server_cpu: float = 0.0  # of the best run
    client_cpu: float = 0.0
    error: str = ""

    @property
    def rate(self) -> float | None:
        return None if not self.times_s else self.events / min(self.times_s)


async def single_run(server: ServerProcess, key: str, n: int, timeout: float, res: Single) -> None:
    res.events = n
    meter = CpuMeter(server)
    t0 = time.perf_counter()
    # The server closes after the response (Connection: close), so the client can ask to be
    # woken only per LOWAT bytes: it then reads a one-send-per-event stream (the floor) with
    # a fraction of a core, instead of one read per 51-byte write.
    request = request_for(key, n, "fast", close=True)
    reader = await open_reader(server.port, request, n, lowat=LOWAT)
    try:
        t_end = await asyncio.wait_for(reader.done, timeout)
    finally:
        reader.close()
    server_cpu, client_cpu = meter.stop()
    elapsed = t_end - t0
    if not res.times_s or elapsed < min(res.times_s):
        res.server_cpu, res.client_cpu = server_cpu, client_cpu
    res.times_s.append(elapsed)


@dataclass
class Fan:
    times_s: list[float] = field(default_factory=list)  # until the last reader's last event
    first_max_s: float = 0.0  # of the best run: the slowest reader's first event
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    events: int = 0
    error: str = ""

    @property
    def rate(self) -> float | None:
        return None if not self.times_s else self.events / min(self.times_s)


async def _gather_readers(coros: Sequence[Awaitable[Reader]]) -> list[Reader]:
    results = await asyncio.gather(*coros, return_exceptions=True)
    readers = [r for r in results if isinstance(r, Reader)]
    failed = [r for r in results if not isinstance(r, Reader)]
    if failed:
        for reader in readers:
            reader.close()
        raise ConnectionError(f"{len(failed)} connections failed, e.g. {failed[0]!r}")
    return readers


async def fan_run(
    server: ServerProcess, key: str, readers: int, n: int, timeout: float, res: Fan
) -> None:
    res.events = readers * n
    request = request_for(key, n, "fast")
    meter = CpuMeter(server)
    t0 = time.perf_counter()
    opened = await _gather_readers([open_reader(server.port, request, n) for _ in range(readers)])
    try:
        ends = await asyncio.wait_for(asyncio.gather(*(r.done for r in opened)), timeout)
        firsts = [r.first.result() for r in opened]
    finally:
        for r in opened:
            r.close()
    server_cpu, client_cpu = meter.stop()
    elapsed = max(ends) - t0
    if not res.times_s or elapsed < min(res.times_s):
        res.first_max_s = max(firsts) - t0
        res.server_cpu, res.client_cpu = server_cpu, client_cpu
    res.times_s.append(elapsed)


@dataclass
class Paced:
    readers: int = 0
    events: int = 0
    interval_s: float = 0.0
    complete: int = 0  # readers that got every event
    gap_p50_s: float = 0.0
    gap_p99_s: float = 0.0
    gap_max_s: float = 0.0
    stalls: int = 0  # steady-state gaps > STALL_S
    opening_gap_max_s: float = 0.0  # the longest gap that began before every reader was served
    first_max_s: float = 0.0
    duration_s: float = 0.0  # until the last reader's last event
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    error: str = ""


async def paced_run(
    server: ServerProcess, key: str, readers: int, n: int, interval: float, timeout: float
) -> Paced:
    res = Paced(readers=readers, events=n, interval_s=interval)
    request = request_for(key, n, "paced", interval)
    meter = CpuMeter(server)
    t0 = time.perf_counter()
    opened = await _gather_readers(
        [open_reader(server.port, request, n, record=True) for _ in range(readers)]
    )
    try:
        await asyncio.wait([r.done for r in opened], timeout=timeout)
    finally:
        for r in opened:
            r.close()
    res.server_cpu, res.client_cpu = meter.stop()
    ok = [r for r in opened if r.done.done() and not r.done.exception()]
    res.complete = len(ok)
    if len(ok) < readers:
        errors = [r.error for r in opened if r.error] or ["timed out"]
        res.error = f"{readers - len(ok)} readers incomplete, e.g. {errors[0]}"
    if ok:
        res.duration_s = max(r.done.result() for r in ok) - t0
    firsts = [r.first.result() for r in opened if r.first.done() and not r.first.exception()]
    if firsts:
        res.first_max_s = max(firsts) - t0
    # Steady state: the gaps that began once every reader had its first event. Before
    # that, the server is also accepting the 1,000 connections (reported on its own).
    all_served = max((r.times[0] for r in opened if r.times), default=0.0)
    gaps: list[float] = []
    for r in opened:
        times = r.times or []
        for a, b in itertools.pairwise(times):
            if a >= all_served:
                gaps.append(b - a)
            else:
                res.opening_gap_max_s = max(res.opening_gap_max_s, b - a)
    if gaps:
        gaps.sort()
        res.gap_p50_s = gaps[len(gaps) // 2]
        res.gap_p99_s = gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))]
        res.gap_max_s = gaps[-1]
        res.stalls = sum(1 for g in gaps if g > STALL_S)
    return res


@dataclass
class Idle:
    baseline_mb: float = 0.0
    rss_mb: dict[int, float] = field(default_factory=dict)  # streams -> server RSS
    kb_per_stream: dict[int, float] = field(default_factory=dict)
    open_s: dict[int, float] = field(default_factory=dict)  # time to open up to that count
    error: str = ""


async def settled_rss(server: ServerProcess) -> int:
    """The server's RSS once it has stopped moving (median of a few samples)."""
    await asyncio.sleep(0.5)
    samples = []
    for _ in range(5):
        samples.append(server.rss())
        await asyncio.sleep(0.1)
    return int(statistics.median(samples))


async def open_idle(server: ServerProcess, key: str, count: int, batch: int) -> list[Reader]:
    request = request_for(key, 1, "idle")
    opened: list[Reader] = []
    try:
        while len(opened) < count:
            k = min(batch, count - len(opened))
            new = await _gather_readers([open_reader(server.port, request, 1) for _ in range(k)])
            opened += new
            await asyncio.wait_for(asyncio.gather(*(r.first for r in new)), 60)
    except BaseException:
        for r in opened:
            r.close()
        raise
    return opened


async def idle_memory(key: str, cfg: Config, cpu: int | None, progress: Progress) -> Idle:
    res = Idle()
    with ServerProcess(cpu) as server:
        problem = await check_wire(server.port, key)
        if problem:
            res.error = f"wrong bytes: {problem}"
            return res
        warm = await open_idle(server, key, 20, 20)
        for r in warm:
            r.close()
        base = await settled_rss(server)
        res.baseline_mb = base / 1e6
        opened: list[Reader] = []
        t0 = time.perf_counter()
        try:
            for count in cfg.idle_counts:
                opened += await open_idle(server, key, count - len(opened), cfg.open_batch)
                res.open_s[count] = time.perf_counter() - t0
                rss = await settled_rss(server)
                res.rss_mb[count] = rss / 1e6
                res.kb_per_stream[count] = (rss - base) / count / KB
                progress(
                    f"    {count:>5} idle streams: RSS {rss / 1e6:7.1f} MB "
                    f"(+{(rss - base) / 1e6:.1f} MB), {res.kb_per_stream[count]:5.1f} KB/stream"
                )
        finally:
            for r in opened:
                r.close()
        errors = server.errors()
    if errors:
        res.error = f"server stderr: {errors[-300:]}"
    return res


# --------------------------------------------------------------------------- running it all


@dataclass
class Row:
    contestant: Contestant
    wire: str = ""  # '' when the bytes on the wire are exactly FRAME per event
    single: Single = field(default_factory=Single)
    fan: Fan = field(default_factory=Fan)
    paced: Paced | None = None
    idle: Idle | None = None


async def run_all(
    cfg: Config, selected: Sequence[Contestant], cpu: int | None, progress: Progress
) -> tuple[dict[str, Row], str]:
    rows = {c.key: Row(c) for c in selected}
    gc.disable()  # the client's own pauses must not look like server stalls
    with ServerProcess(cpu) as server:
        progress(f"server pid {server.popen.pid} on port {server.port}: checking the wire ...")
        for row in rows.values():
            row.wire = await check_wire(server.port, row.contestant.key)
            if row.wire:
                progress(f"  {row.contestant.label}: WRONG BYTES: {row.wire}")
            await single_run(server, row.contestant.key, 2_000, cfg.timeout_s, Single())  # warm
        live = [row for row in rows.values() if not row.wire]

        progress(f"one fast reader, {cfg.single_events:,} events, {cfg.single_runs} rounds ...")
        for rnd in range(cfg.single_runs):
            for row in _rotated(live, rnd):
                res = row.single
                try:
                    await single_run(
                        server, row.contestant.key, cfg.single_events, cfg.timeout_s, res
                    )
                    t = res.times_s[-1]
                    progress(
                        f"  [{rnd + 1}] {row.contestant.label:<17} {cfg.single_events / t:>9,.0f}"
                        f" ev/s  ({t:.2f} s)"
                    )
                except (TimeoutError, ConnectionError, OSError) as exc:
                    res.error = repr(exc)
                    progress(f"  [{rnd + 1}] {row.contestant.label:<17} FAILED: {exc!r}")
                gc.collect()

        progress(
            f"{cfg.fan_readers:,} readers x {cfg.fan_events} events, {cfg.fan_runs} rounds ..."
        )
        for rnd in range(cfg.fan_runs):
            for row in _rotated(live, rnd):
                fan = row.fan
                try:
                    await fan_run(
                        server,
                        row.contestant.key,
                        cfg.fan_readers,
                        cfg.fan_events,
                        cfg.timeout_s,
                        fan,
                    )
                    t = fan.times_s[-1]
                    progress(
                        f"  [{rnd + 1}] {row.contestant.label:<17} {fan.events / t:>9,.0f} ev/s"
                        f"  (all done in {t:.2f} s)"
                    )
                except (TimeoutError, ConnectionError, OSError) as exc:
                    fan.error = repr(exc)
                    progress(f"  [{rnd + 1}] {row.contestant.label:<17} FAILED: {exc!r}")
                gc.collect()
                await asyncio.sleep(0.3)  # let the server finish closing 1,000 sockets

        progress(
            f"{cfg.paced_readers:,} paced readers x {cfg.paced_events} events every "
            f"{cfg.paced_interval_s * 1000:g} ms ..."
        )
        for row in live:
            if not row.contestant.primary:
                continue
            timeout = cfg.paced_events * cfg.paced_interval_s * 3 + 30
            try:
                row.paced = await paced_run(
                    server,
                    row.contestant.key,
                    cfg.paced_readers,
                    cfg.paced_events,
                    cfg.paced_interval_s,
                    timeout,
                )
            except (ConnectionError, OSError) as exc:
                row.paced = Paced(error=repr(exc))
            p = row.paced
            progress(
                f"  {row.contestant.label:<17} complete {p.complete}/{p.readers}, gap p50 "
                f"{p.gap_p50_s * 1e3:.1f} ms, p99 {p.gap_p99_s * 1e3:.1f} ms, max "
                f"{p.gap_max_s * 1e3:.1f} ms, stalls {p.stalls} (while opening: max "
                f"{p.opening_gap_max_s * 1e3:.1f} ms) {p.error}"
            )
            gc.collect()
            await asyncio.sleep(0.3)
        errors = server.errors()
    gc.enable()

    if cfg.idle_counts:
        progress(f"memory per idle stream, {' and '.join(map(str, cfg.idle_counts))} streams ...")
    for row in live:
        if not row.contestant.primary or not cfg.idle_counts:
            continue
        progress(f"  {row.contestant.label} (fresh server)")
        try:
            row.idle = await idle_memory(row.contestant.key, cfg, cpu, progress)
        except (TimeoutError, ConnectionError, OSError, RuntimeError) as exc:
            row.idle = Idle(error=repr(exc))
            progress(f"    FAILED: {exc!r}")
        gc.collect()
    return rows, errors


def _rotated(items: Sequence[Row], shift: int) -> list[Row]:
    k = shift % len(items) if items else 0
    return [*items[k:], *items[:k]]


# --------------------------------------------------------------------------- the report


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt_rate(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def fmt_x(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}x"


def fmt_pct(v: float) -> str:
    return f"{v * 100:.0f}%"


def fmt_cpu(server: float, client: float, wall_s: float) -> str:
    if not wall_s:
        return "—"
    rough = "~" if wall_s < ROUGH_CPU_S else ""
    return f"{rough}{fmt_pct(server)} / {rough}{fmt_pct(client)}"


def fmt_ms(v: float) -> str:
    return f"{v * 1e3:,.1f}"


def render(header: list[str], rows: dict[str, Row], cfg: Config, server_errors: str) -> str:
    out = [*header, ""]
    peer = rows.get(PEER)
    floor = rows.get(FLOOR)

    out += ["## Contestants", "", "| row | endpoint | bytes on the wire |", "|---|---|---|"]
    for row in rows.values():
        wire = f"exact ({len(FRAME)} B/event)" if not row.wire else f"WRONG: {row.wire[:100]}"
        out.append(f"| {row.contestant.label} | {row.contestant.how} | {wire} |")

    out += [
        "",
        "## Throughput",
        "",
        f"One fast reader: events/s on one connection reading {cfg.single_events:,} events, "
        f"best of {cfg.single_runs}. {cfg.fan_readers:,} readers: {cfg.fan_readers:,} "
        f"connections opened at once, each reading {cfg.fan_events} events; aggregate events/s "
        f'up to the last reader\'s last event ("done in"), best of {cfg.fan_runs}. Ratios: '
        "events/s over sse-starlette's and over the floor's (higher is better). CPU: share of "
        "one core used by the server / the client over the best run (~: a run shorter than "
        f"{ROUGH_CPU_S:g} s, where the 10 ms CPU clock ticks make the share rough).",
        "",
        "| contestant | 1 reader ev/s | x sse-starlette | x floor | CPU srv/cli "
        f"| {cfg.fan_readers:,} readers ev/s | done in | x sse-starlette | x floor "
        "| CPU srv/cli |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows.values():
        s, f = row.single, row.fan
        s_cpu = fmt_cpu(s.server_cpu, s.client_cpu, min(s.times_s, default=0.0))
        f_cpu = fmt_cpu(f.server_cpu, f.client_cpu, min(f.times_s, default=0.0))
        out.append(
            f"| {row.contestant.label} | {fmt_rate(s.rate)}"
            f"{' (' + s.error[:40] + ')' if s.error else ''} "
            f"| {fmt_x(_ratio(s.rate, peer.single.rate if peer else None))} "
            f"| {fmt_x(_ratio(s.rate, floor.single.rate if floor else None))} | {s_cpu} "
            f"| {fmt_rate(f.rate)}{' (' + f.error[:40] + ')' if f.error else ''} "
            f"| {f'{min(f.times_s):.2f} s' if f.times_s else '—'} "
            f"| {fmt_x(_ratio(f.rate, peer.fan.rate if peer else None))} "
            f"| {fmt_x(_ratio(f.rate, floor.fan.rate if floor else None))} | {f_cpu} |"
        )

    paced = [row for row in rows.values() if row.paced is not None]
    if paced:
        p0 = paced[0].paced
        assert p0 is not None
        out += [
            "",
            "## Paced readers",
            "",
            f"{p0.readers:,} connections opened at once to a stream that yields one event, then "
            f"sleeps {p0.interval_s * 1e3:g} ms, {p0.events} times. Gaps: time between "
            "consecutive events as each reader saw them, in ms (ideal "
            f"{p0.interval_s * 1e3:g}), in the steady state: those that began once every reader "
            f'had its first event ("all served", s after the start); stalls: such gaps > '
            f'{STALL_S * 1e3:g} ms. "While opening": the longest gap that began earlier, while '
            "the server was still accepting connections. Duration: until the last reader's last "
            f"event (ideal ~{p0.interval_s * (p0.events - 1):.2f} s after its first).",
            "",
            "| contestant | complete | gap p50 | gap p99 | gap max | stalls | all served "
            "| gap max while opening | duration | CPU srv/cli |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for row in paced:
            p = row.paced
            assert p is not None
            out.append(
                f"| {row.contestant.label} | {p.complete:,}/{p.readers:,}"
                f"{' (' + p.error[:60] + ')' if p.error else ''} | {fmt_ms(p.gap_p50_s)} "
                f"| {fmt_ms(p.gap_p99_s)} | {fmt_ms(p.gap_max_s)} | {p.stalls:,} "
                f"| {p.first_max_s:.2f} s | {fmt_ms(p.opening_gap_max_s)} | {p.duration_s:.2f} s "
                f"| {fmt_pct(p.server_cpu)} / {fmt_pct(p.client_cpu)} |"
            )

    idle_rows = [row for row in rows.values() if row.idle is not None]
    if idle_rows:
        counts = cfg.idle_counts
        out += [
            "",
            "## Memory per idle open stream",
            "",
            "Server RSS growth over the warmed baseline, divided by the number of open streams "
            "(each has had its first event; its producer then waits for ever). A fresh server "
            'process per contestant. KB = 1024 bytes; "- floor": KB per stream above the '
            "floor's.",
            "",
            "| contestant | baseline RSS | "
            + " | ".join(f"KB/stream at {n:,} | - floor | x sse-starlette" for n in counts)
            + " |",
            "|---|--:|" + "--:|--:|--:|" * len(counts),
        ]
        for row in idle_rows:
            idle = row.idle
            assert idle is not None
            cells = [f"{idle.baseline_mb:.1f} MB" if idle.baseline_mb else "—"]
            for n in counts:
                kb = idle.kb_per_stream.get(n)
                f_kb = floor.idle.kb_per_stream.get(n) if floor and floor.idle else None
                p_kb = peer.idle.kb_per_stream.get(n) if peer and peer.idle else None
                cells += [
                    "—" if kb is None else f"{kb:.1f}",
                    "—" if kb is None or f_kb is None else f"{kb - f_kb:+.1f}",
                    fmt_x(_ratio(kb, p_kb)),
                ]
            label = row.contestant.label + (f" ({idle.error[:60]})" if idle.error else "")
            out.append(f"| {label} | " + " | ".join(cells) + " |")

    out += ["", "## Targets", "", "| target | measured | result |", "|---|---|---|"]
    for name, measured, ok in targets(rows, cfg):
        out.append(f"| {name} | {measured} | {'—' if ok is None else 'PASS' if ok else 'FAIL'} |")

    out += ["", "## Checks", ""]
    out += client_check(rows)
    if server_errors:
        out.append(f"- server stderr (throughput server): `{server_errors[-400:]!r}`")
    else:
        out.append("- server stderr: empty (no warning or error logged) in the throughput run")
    return "\n".join(out)


def targets(rows: dict[str, Row], cfg: Config) -> list[tuple[str, str, bool | None]]:
    ours, peer, floor = rows.get(OURS), rows.get(PEER), rows.get(FLOOR)
    result: list[tuple[str, str, bool | None]] = []
    if ours is None:
        return result
    measures: list[tuple[str, Callable[[Row], float | None]]] = [
        ("one fast reader", lambda r: r.single.rate),
        (f"{cfg.fan_readers:,} readers", lambda r: r.fan.rate),
    ]
    for what, get in measures:
        x_peer = _ratio(get(ours), get(peer)) if peer else None
        result.append(
            (f"{what}: >= 2x sse-starlette", fmt_x(x_peer), None if x_peer is None else x_peer >= 2)
        )
        x_floor = _ratio(get(floor), get(ours)) if floor else None
        result.append(
            (
                f"{what}: within 1.5x of the floor (floor/ours <= 1.5)",
                fmt_x(x_floor),
                None if x_floor is None else x_floor <= 1.5,
            )
        )
    for n in cfg.idle_counts:
        kb = ours.idle.kb_per_stream.get(n) if ours.idle else None
        f_kb = floor.idle.kb_per_stream.get(n) if floor and floor.idle else None
        diff = None if kb is None or f_kb is None else kb - f_kb
        result.append(
            (
                f"memory per idle stream at {n:,}: within 5 KB of the floor",
                "—" if diff is None else f"{kb:.1f} KB vs {f_kb:.1f} KB ({diff:+.1f} KB)",
                None if diff is None else diff <= 5,
            )
        )
    p = ours.paced
    if p is not None:
        ok = p.complete == p.readers and p.stalls == 0 and not p.error
        result.append(
            (
                f"no stall at {p.readers:,} paced readers (no steady-state gap > "
                f"{STALL_S * 1e3:g} ms, every event delivered)",
                f"{p.complete:,}/{p.readers:,} complete, gap p50 {fmt_ms(p.gap_p50_s)} ms, max "
                f"{fmt_ms(p.gap_max_s)} ms, {p.stalls:,} stalls",
                ok,
            )
        )
        pace = p.gap_p50_s <= p.interval_s * PACE_SLACK
        result.append(
            (
                f"(extra, not in the issue) keeps pace at {p.readers:,} paced readers (steady-"
                f"state p50 gap <= {p.interval_s * PACE_SLACK * 1e3:g} ms)",
                f"p50 gap {fmt_ms(p.gap_p50_s)} ms, duration {p.duration_s:.2f} s",
                pace and p.complete == p.readers,
            )
        )
    return result


def client_check(rows: dict[str, Row]) -> list[str]:
    """Is the load client fast enough? It must read the floor, and every contestant, faster
    than the server can send: the client below 100% of its core in every run."""
    measured = [
        (r.contestant.label, what, res.rate, res.server_cpu, res.client_cpu)
        for r in rows.values()
        for what, res in (("1 reader", r.single), ("1,000 readers", r.fan))
        if res.rate
    ]
    if not measured:
        return ["- client check: nothing was measured"]
    busiest = max(measured, key=lambda m: m[4])
    fastest = max((m for m in measured if m[1] == "1 reader"), key=lambda m: m[2] or 0.0)
    ok = all(cli < CLIENT_BUSY for *_, cli in measured)
    idlest = min(measured, key=lambda m: m[3])
    floor = rows.get(FLOOR)
    floor_note = ""
    if floor is not None and floor.single.rate:
        floor_note = (
            f" The floor was read at {floor.single.rate:,.0f} events/s with the server at "
            f"{fmt_pct(floor.single.server_cpu)} and the client at "
            f"{fmt_pct(floor.single.client_cpu)}."
        )
    return [
        f"- client check ({'ok' if ok else 'FAILED'}): in every best throughput run the "
        f"client used < {fmt_pct(CLIENT_BUSY)} of its core (busiest: "
        f"{fmt_pct(busiest[4])}, {busiest[0]}, {busiest[1]}) while the server used "
        f"{fmt_pct(idlest[3])} ({idlest[0]}, {idlest[1]}) to {fmt_pct(max(m[3] for m in measured))}"
        f" of its own: the client had headroom. Fastest read: {fastest[2] or 0:,.0f} "
        f"events/s ({fastest[0]}).{floor_note} A client that keeps up reads each small write "
        "on its own, so its CPU share grows with the number of writes, not of events."
    ]


# --------------------------------------------------------------------------- main


def _ours_package() -> Path:
    import tokenrelay

    return Path(tokenrelay.__file__).resolve().parent


def _ours_version() -> str:
    """Which tokenrelay was measured: version, commit, local edits, and a digest of the
    package's sources (other people may be editing them while this runs)."""
    version = dist_version("tokenrelay")
    package = _ours_package()
    digest = f"sources {_digest(_source_hashes(package))}"
    commit = git("rev-parse", "--short", "HEAD")
    try:
        package.relative_to(REPO_ROOT)
    except ValueError:
        return f"{version} (installed copy, not this checkout; {digest})"
    if not commit:
        return f"{version} ({digest})"
    dirty = git("status", "--porcelain", "--", str(package))
    return f"{version} (commit {commit}{' + uncommitted changes' if dirty else ''}; {digest})"


def _source_hashes(package: Path) -> dict[str, str]:
    return {
        str(path.relative_to(package)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(package.rglob("*.py"))
    }


def _digest(hashes: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:12]


def _check_imports() -> None:
    for module in ("uvicorn", "uvloop", "httptools", "fastapi.sse", "sse_starlette", "psutil"):
        try:
            __import__(module)
        except ImportError as exc:
            raise SystemExit(
                f"bench/server.py: cannot import {module}: {exc}\n{INSTALL_HINT}"
            ) from exc
    try:
        import tokenrelay.server  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"bench/server.py: cannot import tokenrelay.server: {exc}") from exc


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark tokenrelay's EventSourceResponse against sse-starlette and "
        "fastapi.sse under uvicorn (markdown report on stdout).",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer runs")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write results as JSON")
    parser.add_argument(
        "--only",
        action="append",
        choices=[c.key for c in CONTESTANTS],
        help="measure only this contestant (repeatable; ratios need floor and sse-starlette)",
    )
    parser.add_argument("--events", type=int, help="events for the one-reader runs")
    parser.add_argument("--runs", type=int, help="rounds of the one-reader runs")
    parser.add_argument("--no-memory", action="store_true", help="skip the idle-memory measure")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and client")
    parser.add_argument("--timeout", type=float, help="abandon a run after this many seconds")
    parser.add_argument("--serve", action="store_true", help="only run the server (see above)")
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)  # the server's CPU
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.cpu)
        return 0
    _check_imports()
    cfg = QUICK if args.quick else Config()
    overrides: dict[str, Any] = {}
    if args.events is not None:
        overrides["single_events"] = args.events
    if args.runs is not None:
        overrides["single_runs"] = max(1, args.runs)
    if args.timeout is not None:
        overrides["timeout_s"] = args.timeout
    if args.no_memory:
        overrides["idle_counts"] = ()
    if overrides:
        cfg = Config(**{**asdict(cfg), **overrides})
    selected = [c for c in CONTESTANTS if not args.only or c.key in args.only]

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and len(cpus) >= 2
    server_cpu = cpus[SERVER_CPU] if pin else None
    if pin:
        os.sched_setaffinity(0, {cpus[CLIENT_CPU]})
    nofile = _raise_nofile()
    need = max([cfg.fan_readers, cfg.paced_readers, *cfg.idle_counts]) + 100
    if nofile < need:
        raise SystemExit(f"bench/server.py: RLIMIT_NOFILE is {nofile}, {need} needed")

    import uvloop

    ours_before = _ours_version()
    hashes_before = _source_hashes(_ours_package())
    started = time.perf_counter()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        rows, server_errors = runner.run(run_all(cfg, selected, server_cpu, progress))
    elapsed = time.perf_counter() - started
    ours_version = _ours_version()
    hashes_after = _source_hashes(_ours_package())
    if hashes_after != hashes_before:
        changed = sorted(
            name
            for name in hashes_before.keys() | hashes_after.keys()
            if hashes_before.get(name) != hashes_after.get(name)
        )
        ours_version = (
            f"**SOURCES CHANGED DURING THE RUN** ({', '.join(changed)}; server processes "
            f"started after the change ran the new code: rerun if that matters): "
            f"{ours_before} -> {ours_version}"
        )
        progress(f"warning: tokenrelay {ours_version}")

    layout = (
        f"server pinned to CPU {server_cpu}, client to CPU {cpus[CLIENT_CPU]}"
        if pin
        else "not pinned"
    )
    header = [
        "# SSE server benchmark (bench/server.py)",
        "",
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; "
        f"mode: {'quick' if cfg.quick else 'full'}; benchmark time {elapsed:,.0f} s",
        f"- python: {platform.python_implementation()} {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({layout})",
        f"- server: uvicorn {dist_version('uvicorn')} (loop uvloop {dist_version('uvloop')}, "
        f"http httptools {dist_version('httptools')}, log level warning, no access log, "
        f"backlog {BACKLOG}); one FastAPI {dist_version('fastapi')} app (starlette "
        f"{dist_version('starlette')}) with every contestant at its own path; one server "
        "process for all throughput and paced runs (contestants interleaved in rotated "
        "rounds), a fresh one per contestant for memory",
        f"- tokenrelay: {ours_version}; sse-starlette: {dist_version('sse-starlette')}",
        "- client: this process, raw asyncio protocols on uvloop, counting `data: ` markers; "
        "sockets closed with RST",
        f"- event: `{FRAME.decode().strip()}` + blank line ({len(FRAME)} bytes), the same "
        f"bytes for every contestant (checked); keep-alive pings every {PING_S:g} s (never "
        "during a run)",
    ]
    print(render(header, rows, cfg, server_errors))

    if args.json:
        payload = {
            "meta": {
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "mode": "quick" if cfg.quick else "full",
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "pinned": pin,
                "versions": {
                    d: dist_version(d)
                    for d in (
                        "uvicorn",
                        "uvloop",
                        "httptools",
                        "starlette",
                        "fastapi",
                        "sse-starlette",
                    )
                }
                | {"tokenrelay": ours_version},
                "config": asdict(cfg),
                "event_bytes": len(FRAME),
                "elapsed_s": elapsed,
            },
            "results": {
                key: {
                    "label": row.contestant.label,
                    "how": row.contestant.how,
                    "wire_problem": row.wire,
                    "single": asdict(row.single) | {"events_per_s": row.single.rate},
                    "fan": asdict(row.fan) | {"events_per_s": row.fan.rate},
                    "paced": asdict(row.paced) if row.paced else None,
                    "idle": asdict(row.idle) if row.idle else None,
                }
                for key, row in rows.items()
            },
            "targets": [
                {"target": name, "measured": measured, "pass": ok}
                for name, measured, ok in targets(rows, cfg)
            ],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        progress(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
