"""Shared stores and workers: ``tokenrelay serve --store memory|sqlite:///path|redis://...``
and ``tokenrelay serve --workers N``, side by side in one run, with the method of
``bench/gateway.py`` (its harness is imported: processes, the raw-socket load client, the
paced runs, TTFT rounds, idle streams, CPU meters).

Upstream: ``tokenrelay mock --ttft-ms 0 --token-ms 20`` (model ``lorem``, 64 tokens);
"added" = through the gateway minus the mock directly, same client, same run. The
gateway's configuration is ``gateway.tokenrelay_config`` (grace 0, limits raised out of
the way), with ``--store URL`` (and ``--workers N``) on the command line.

A. **Stores** (memory, SQLite, Redis): one gateway process each, pinned to CPU 1; the mock,
   this load client and redis-server (``--save '' --appendonly no``, a free loopback port)
   to CPU 0. Every store starts empty (a new SQLite file in a temporary directory, a new
   redis-server). Only one gateway is loaded at a time.

   1. *added TTFT at one client*: ``gateway.measure_ttft`` (interleaved rounds, order
      rotated; median of the round medians);
   2. *inter-token gaps at 256 streams* (64 tokens at 20 ms, opened over 250 ms):
      ``gateway.paced_run``, ``repeats`` rounds in rotated order; added gap p99 = store's
      minus direct's in the same round; frame fidelity (every stream carries the 64 frames
      of the direct reference, same text);
   3. *gateway CPU per relayed token* in those runs: the whole run (request set-up
      included) and the steady window 0.45-1.25 s after the first request (every stream
      running, none starting), CPU of the process over the content frames the client
      received in that window; redis-server's CPU per token alongside;
   4. *memory per idle stream*: a fresh gateway and a fresh store, N streams whose
      upstream sent one token and stalls (``gateway.open_idle``); (RSS with N open - RSS
      idle) / N; for Redis also redis-server's RSS and ``used_memory`` growth per stream;
      and the idle cost: the fresh gateway's CPU with no stream at all, then while it
      holds the N streams (lease renewals), from the scheduler's nanosecond counters;
   5. *the SQLite cross-process poll*: a second process (pinned to CPU 1) opens a
      ``SQLiteStore`` on a file where 100 running streams exist, waits with ``read_wait``
      on all of them (nobody writes), then on none: CPU % and polls per second.

B. **Workers**: ``--workers 2`` against one worker on the same store (SQLite, a new file
   each), and one worker on memory as the reference. Nothing pinned: the gateway workers,
   the mock and this client share both cores (each run reports the CPU of each, so the
   harness's ceiling shows). The levels: c streams of 64 tokens at 20 ms, opened evenly
   over 1 s (so all c run at once for the last ~0.28 s); a level is *held* when the run
   is held by ``gateway.paced_run``'s criteria (no token lost, no gap over 200 ms, errors
   under 0.1%) and TTFT p99 <= 1 s; a level not held is run once more (held if the second
   run holds: other work on the machine disturbs single runs). Each contestant climbs
   until its first level not held; the mock directly runs the same levels, so a level the
   direct run fails is the harness's limit, not the gateway's. Each run also reports the
   cores used by the gateway, the mock, this client and every other process, over the
   run and over the opening second (the machine is busiest while streams are opened).

   The harness (``--harness``): by default ``bench/harness``'s C pair, built here with
   ``make`` (``upstream``: the mock's stream, 64 tokens at 20 ms, text " w1" .. " w64";
   ``load``: the raw-socket client's method, one process, epoll), about a quarter of the
   Python pair's CPU per token, so that on two cores the gateway, not the harness, runs
   out first. ``--harness python``: the mock and ``gateway.py``'s client, as before.

How to run (from the repository root, dev environment, Debian's redis-server)::

    python bench/stores.py                 # full run (~4 min), markdown on stdout
    python bench/stores.py --quick         # smaller sizes, ~1.5 min
    python bench/stores.py --only workers  # parts: ttft,gaps,idle,poll (A), workers (B)
    python bench/stores.py --wait-quiet 40 # first wait (up to 40 min) for a quiet machine
    python bench/stores.py --json out.json # default: bench/results/stores-<date>.json

Progress goes to stderr. Every run is bounded in time; every process started here runs in
its own session and is stopped (its process group) on exit, Ctrl-C or SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gateway as g
from _harness import REPO_ROOT, RunTimeout, deadline, dist_version

HOST = g.HOST
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
STORES = ("memory", "sqlite", "redis")
BOTH_CPUS = "0,1"
LEVEL_SPREAD_S = 1.0  # part B: a level's streams are opened evenly over this time
TTFT_LIMIT_MS = 1000.0
WINDOW_S = (0.45, 1.25)  # steady window of a 256-stream run (after the first request)
SATURATED = 1.8  # cores: gateway + mock + client at or above this = the machine is full
US = 1e6


@dataclass(frozen=True)
class Config:
    ttft_rounds: int = 15
    ttft_per_round: int = 6
    gap_streams: int = 256
    gap_repeats: int = 3
    idle_streams: int = 1000
    idle_cpu_s: float = 10.0
    poll_streams: int = 100
    poll_s: float = 10.0
    levels: tuple[int, ...] = (
        128, 192, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536
    )  # fmt: skip
    c_levels: tuple[int, ...] = (
        256, 320, 384, 448, 512, 576, 640, 704, 768, 832, 896, 1024, 1152, 1280, 1536, 1792, 2048
    )  # fmt: skip
    level_retries: int = 1  # a level not held is run again this many times (noise)
    slack_s: float = 12.0
    max_s: float = 1500.0
    quick: bool = False

    def harness(self) -> g.Config:
        """What ``gateway.measure_ttft`` and ``gateway.paced_run`` read."""
        return g.Config(
            ttft_rounds=self.ttft_rounds, ttft_per_round=self.ttft_per_round, slack_s=self.slack_s
        )


QUICK = Config(
    ttft_rounds=3,
    ttft_per_round=5,
    gap_repeats=1,
    idle_streams=200,
    idle_cpu_s=3.0,
    poll_s=3.0,
    levels=(128, 384, 768),
    c_levels=(256, 768, 1280),
    slack_s=8.0,
    max_s=420.0,
    quick=True,
)

PARTS = ("ttft", "gaps", "idle", "poll", "workers")


def progress(msg: str) -> None:
    g.progress(msg)


# --------------------------------------------------------------------------- processes

_procs: list[g.Proc] = []  # every server started here, stopped on the way out
_children: list[subprocess.Popen[str]] = []


def started(proc: g.Proc) -> g.Proc:
    _procs.append(proc)
    return proc


def stop(proc: g.Proc) -> None:
    proc.stop()
    with contextlib.suppress(ValueError):
        _procs.remove(proc)


def stop_everything() -> None:
    for child in list(_children):
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(5)
        _children.remove(child)
    for proc in list(_procs):
        with contextlib.suppress(Exception):
            stop(proc)


def pinned(cpus: int | str) -> Any:
    """``Proc``'s ``cpu`` goes to ``taskset -c`` as text: a list ("0,1") works as well."""
    return cpus


def start_mock(cpus: int | str) -> g.Proc:
    port = g.free_port()
    cmd = [
        str(g.VENV_BIN / "tokenrelay"),
        "mock",
        "--port",
        str(port),
        "--ttft-ms",
        "0",
        "--token-ms",
        f"{g.TOKEN_MS:g}",
        "--log-level",
        "warning",
    ]
    proc = started(g.Proc("mock", cmd, pinned(cpus), port, "/healthz"))
    proc.wait_ready()
    return proc


def start_gateway(
    name: str,
    mock_port: int,
    workdir: Path,
    store: str,
    *,
    workers: int = 1,
    cpus: int | str = g.GATEWAY_CPU,
) -> g.Proc:
    port = g.free_port()
    cfg = workdir / "tokenrelay.toml"
    cfg.write_text(g.tokenrelay_config(mock_port))
    cmd = [
        str(g.VENV_BIN / "tokenrelay"),
        "serve",
        "--config",
        str(cfg),
        "--host",
        HOST,
        "--port",
        str(port),
        "--store",
        store,
        "--log-level",
        "warning",
    ]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    env = {"TOKENRELAY_BENCH_KEYS": g.API_KEY, "TOKENRELAY_STATE_DIR": str(workdir / "state")}
    proc = started(g.Proc(name, cmd, pinned(cpus), port, "/healthz", env=env))
    proc.wait_ready()
    if workers > 1:
        end = time.monotonic() + 60
        while len(proc.procs()) < 1 + workers and time.monotonic() < end:
            time.sleep(0.2)
    settle(proc)
    return proc


HARNESS_DIR = REPO_ROOT / "bench" / "harness"


def build_c_harness() -> None:
    subprocess.run(["make", "-s", "-C", str(HARNESS_DIR)], check=True)


def start_c_upstream(cpus: int | str) -> g.Proc:
    """``bench/harness/upstream``: the same stream as the mock (64 tokens at 20 ms, usage,
    ``[DONE]``), its text " w1" .. " w64"."""
    port = g.free_port()
    cmd = [str(HARNESS_DIR / "upstream"), str(port), str(g.TOKENS), f"{g.TOKEN_MS:g}", HOST]
    proc = started(g.Proc("upstream", cmd, pinned(cpus), port, "/healthz"))
    proc.wait_ready()
    return proc


class Pid:
    """A child process's CPU (``Proc.cpu_s``'s shape), its last reading kept once it exits."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.ps = psutil.Process(pid)
        self.last = 0.0

    def cpu_s(self) -> float:
        import psutil

        with contextlib.suppress(psutil.Error):
            t = self.ps.cpu_times()
            self.last = t.user + t.system
        return self.last


@dataclass
class LoadRecord:
    """One stream as ``bench/harness/load`` reports it, on ``time.perf_counter()``'s clock
    (CLOCK_MONOTONIC on Linux, as ``load`` timestamps)."""

    times: list[float]
    sent: float
    finished: bool
    error: str
    text: bytes


async def c_load(
    port: int, n: int, spread: float, model: str, slack_s: float, on_start: Any = None
) -> dict[str, Any]:
    """Runs ``bench/harness/load`` once; its JSON, with ``records`` (``LoadRecord``s)."""
    child = await asyncio.create_subprocess_exec(
        str(HARNESS_DIR / "load"),
        str(port),
        str(n),
        f"{spread:g}",
        model,
        g.API_KEY,
        str(g.TOKENS),
        f"{g.TOKEN_MS:g}",
        f"{slack_s:g}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    if on_start is not None:
        on_start(Pid(child.pid))
    out, err = await child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"load exited {child.returncode}: {err.decode(errors='replace')}")
    data: dict[str, Any] = json.loads(out)
    t0 = data["t0_s"]
    data["records"] = [
        LoadRecord(
            times=[t0 + x / 1000 for x in r["times_ms"]],
            sent=t0 + r["sent_ms"] / 1000,
            finished=bool(r["done"]) or bool(r["error"]),
            error="" if r["done"] and not r["error"] else r["error"] or f"status {r['status']}",
            text=r["text"].encode(),
        )
        for r in data.pop("runs")
    ]
    return data


async def c_reference_text(port: int) -> bytes:
    data = await c_load(port, 1, 0.0, "lorem", 10.0)
    (rec,) = data["records"]
    if len(rec.times) != g.TOKENS or rec.error:
        raise RuntimeError(f"the C upstream sent {len(rec.times)} content frames: {rec.error}")
    return bytes(rec.text)


async def c_paced_run(
    t: g.Target,
    n: int,
    ref: bytes,
    cfg: Config,
    procs: dict[str, g.Proc | None],
    opening: float,
) -> tuple[dict[str, Any], list[LoadRecord], dict[str, float] | None]:
    """``gateway.paced_run``'s run with the C load client: the same verdict
    (``gateway.summarize_run``); ``cpu["client"]`` is the load process's own CPU."""
    spread = g.SPREAD_S if n > 1 else 0.0
    meter = g.CpuMeter(procs)
    t0 = time.perf_counter()
    burst: list[asyncio.Future[dict[str, float]]] = []
    watched = {k: p for k, p in procs.items() if p is not None}

    def started_load(load: Pid) -> None:
        if opening > 0:
            burst.append(
                asyncio.ensure_future(opening_cores({**watched, "load": load}, t0, opening))
            )

    data = await c_load(t.port, n, spread, t.model("lorem"), cfg.slack_s, started_load)
    cpu = meter.stop()
    cpu["client"] = round(data["cpu_s"] / max(data["wall_s"], 1e-9), 3)
    records: list[LoadRecord] = data["records"]
    r = g.summarize_run(n, records, ref, [], cpu, time.perf_counter() - t0)
    return r, records, (await burst[0]) if burst else None


def settle(proc: g.Proc, max_s: float = 30.0) -> None:
    """Until the process (and its workers) stop starting up: < 5% of a core over 0.5 s."""
    end = time.monotonic() + max_s
    last = proc.cpu_s()
    while time.monotonic() < end:
        time.sleep(0.5)
        now = proc.cpu_s()
        if now - last < 0.025:
            return
        last = now


def redis_client(port: int) -> Any:
    import redis

    return redis.Redis(host=HOST, port=port, socket_timeout=5)


def start_redis(workdir: Path) -> g.Proc:
    port = g.free_port()
    cmd = [
        REDIS_SERVER,
        "--port",
        str(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--loglevel",
        "warning",
    ]
    proc = started(g.Proc("redis", cmd, g.HARNESS_CPU, port, ""))
    client = redis_client(port)
    end = time.monotonic() + 30
    while True:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"redis-server exited: {proc.tail()}")
        try:
            if client.ping():
                break
        except Exception:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)
    client.close()
    return proc


def redis_used_memory(port: int) -> int:
    client = redis_client(port)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def store_url(kind: str, workdir: Path, redis: g.Proc | None) -> str:
    if kind == "sqlite":
        return f"sqlite://{workdir / 'streams.db'}"
    if kind == "redis":
        assert redis is not None
        return f"redis://{HOST}:{redis.port}/0"
    return "memory"


# --------------------------------------------------------------------------- measures


@contextlib.contextmanager
def recording_streams() -> Iterator[list[g.Stream]]:
    """Every stream ``gateway.paced_run`` opens, for counting frames in a time window."""
    streams: list[g.Stream] = []
    original = g.open_stream

    async def recording(port: int, request: bytes, rst: bool = True) -> g.Stream:
        s = await original(port, request, rst)
        streams.append(s)
        return s

    g.open_stream = recording
    try:
        yield streams
    finally:
        g.open_stream = original


async def cpu_window(procs: dict[str, g.Proc], t0: float) -> dict[str, Any]:
    loop_at = time.perf_counter
    out: dict[str, Any] = {}
    for edge, at in zip(("start", "end"), WINDOW_S, strict=True):
        delay = t0 + at - loop_at()
        if delay > 0:
            await asyncio.sleep(delay)
        out[edge] = (loop_at(), {k: p.cpu_s() for k, p in procs.items()})
    return out


async def paced(
    t: g.Target,
    n: int,
    ref: bytes,
    cfg: Config,
    meters: dict[str, g.Proc | None],
    cpu_of: dict[str, g.Proc],
    opening: float = 0.0,
    harness: str = "python",
) -> dict[str, Any]:
    """``gateway.paced_run`` plus CPU per token of ``cpu_of`` (whole run, steady window)
    and, for a process with children (workers), each one's share. ``opening``: also the
    cores each process (and the machine) used over the first ``opening`` seconds, while
    the streams are being opened. ``harness="c"``: the run is ``c_paced_run``'s."""
    before = {k: p.cpu_s() for k, p in cpu_of.items()}
    kids = {k: {c.pid: c for c in p.procs()[1:]} for k, p in cpu_of.items() if len(p.procs()) > 1}
    kid_cpu0 = {k: {pid: cpu_times(c) for pid, c in v.items()} for k, v in kids.items()}
    t0 = time.perf_counter()
    busy0 = machine_busy_s()
    window = asyncio.ensure_future(cpu_window(cpu_of, t0))
    streams: list[Any]
    if harness == "c":
        r, streams, op = await c_paced_run(t, n, ref, cfg, meters, opening)
        if op is not None:
            r["opening_cores"] = op
    else:
        burst = None
        if opening > 0:
            watched = {k: p for k, p in meters.items() if p is not None}
            burst = asyncio.ensure_future(opening_cores(watched, t0, opening))
        with recording_streams() as streams:
            r = await g.paced_run(t, n, ref, cfg.harness(), meters)
        if burst is not None:
            r["opening_cores"] = await burst
    w = await window
    after = {k: p.cpu_s() for k, p in cpu_of.items()}
    wall = time.perf_counter() - t0
    r["machine_cores"] = round((machine_busy_s() - busy0) / wall, 2)
    r["other_cores"] = round(max(0.0, r["machine_cores"] - sum(r["cpu"].values())), 2)
    tokens = sum(len(s.times) for s in streams)
    (ws, c0), (we, c1) = w["start"], w["end"]
    in_window = sum(1 for s in streams for x in s.times if ws <= x < we)
    r["tokens"] = tokens
    r["window_tokens"] = in_window
    r["cpu_us_per_token"] = {
        k: round((after[k] - before[k]) / tokens * US, 2) if tokens else None for k in cpu_of
    }
    r["steady_cpu_us_per_token"] = {
        k: round((c1[k] - c0[k]) / in_window * US, 2) if in_window else None for k in cpu_of
    }
    if kids:
        r["worker_cpu_s"] = {
            k: [round(cpu_times(c) - kid_cpu0[k][pid], 3) for pid, c in v.items()]
            for k, v in kids.items()
        }
    return r


async def opening_cores(procs: dict[str, g.Proc], t0: float, seconds: float) -> dict[str, float]:
    """Cores used by each process, this client and the whole machine from ``t0`` (just
    before the first request) for ``seconds``."""
    c0 = {k: p.cpu_s() for k, p in procs.items()}
    m0, cl0, w0 = machine_busy_s(), time.process_time(), time.perf_counter()
    await asyncio.sleep(max(0.0, t0 + seconds - time.perf_counter()))
    wall = time.perf_counter() - w0
    out = {k: (p.cpu_s() - c0[k]) / wall for k, p in procs.items()}
    out["client"] = (time.process_time() - cl0) / wall
    out["machine"] = (machine_busy_s() - m0) / wall
    out["others"] = max(0.0, out["machine"] - sum(v for k, v in out.items() if k != "machine"))
    return {k: round(v, 2) for k, v in out.items()}


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (all cores, idle excluded)."""
    import psutil

    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def cpu_times(p: Any) -> float:
    import psutil

    try:
        t = p.cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return 0.0


def exact_cpu_s(pids: list[int]) -> float:
    """CPU seconds of these processes' threads, from the scheduler's nanosecond count
    (``/proc/PID/task/TID/schedstat``): psutil's figures move in 10 ms ticks, too coarse
    for an idle process over seconds."""
    total = 0
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(stat.read_text().split()[0])
    return total / 1e9


def proc_pids(proc: g.Proc) -> list[int]:
    return [p.pid for p in proc.procs()]


async def cpu_over(procs: dict[str, g.Proc], seconds: float) -> dict[str, float]:
    """Share of a core (%) each process (with its children) used over ``seconds``."""
    t0 = time.perf_counter()
    c0 = {k: exact_cpu_s(proc_pids(p)) for k, p in procs.items()}
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - t0
    return {k: round((exact_cpu_s(proc_pids(p)) - c0[k]) / wall * 100, 3) for k, p in procs.items()}


async def idle_memory(
    t: g.Target, n: int, redis: g.Proc | None, empty_s: float, hold_s: float
) -> dict[str, Any]:
    """``gateway.measure_idle``'s method, with redis-server's growth sampled at the same
    moments; and the CPU of the fresh gateway (and redis-server) with no stream, then
    while it holds the N streams."""
    assert t.proc is not None
    meters = {"gateway": t.proc, **({"redis": redis} if redis else {})}
    await asyncio.sleep(1.0)
    empty = await cpu_over(meters, empty_s)
    warm, _ = await g.open_idle(t, 20)
    for s in warm:
        s.close()
    base = await g.settled_rss(t.proc)
    r_base = redis.rss() if redis else 0
    r_used0 = await asyncio.to_thread(redis_used_memory, redis.port) if redis else 0
    t0 = time.perf_counter()
    opened, first = await g.open_idle(t, n)
    open_s = time.perf_counter() - t0
    rss = await g.settled_rss(t.proc)
    r_rss = redis.rss() if redis else 0
    r_used1 = await asyncio.to_thread(redis_used_memory, redis.port) if redis else 0
    cpu = await cpu_over(meters, hold_s)
    alive = sum(1 for s in opened if not s.done.done())
    for s in opened:
        s.close()
    res: dict[str, Any] = {
        "streams": n,
        "opened": len(opened),
        "with_first_token": first,
        "open_after_settle": alive,
        "baseline_mb": round(base / 1e6, 1),
        "rss_mb": round(rss / 1e6, 1),
        "kb_per_stream": round((rss - base) / n / g.KB, 1),
        "open_s": round(open_s, 2),
        "cpu_pct_empty": empty,
        "cpu_pct_holding": cpu,
    }
    if redis:
        res["redis_rss_kb_per_stream"] = round((r_rss - r_base) / n / g.KB, 2)
        res["redis_used_kb_per_stream"] = round((r_used1 - r_used0) / n / g.KB, 2)
        res["redis_rss_mb"] = [round(r_base / 1e6, 1), round(r_rss / 1e6, 1)]
    progress(f"  idle {t.key:<8} {res}")
    return res


POLL_CHILD = r"""
import asyncio, sys
import uvloop
from tokenrelay.store.sqlite import SQLiteStore

path, ids = sys.argv[1], sys.argv[2].split(",")

async def main():
    store = SQLiteStore(path)
    polls = 0
    original = store._poll_once

    async def counted():
        nonlocal polls
        polls += 1
        await original()

    store._poll_once = counted
    await store.info(ids[0])  # opens the file
    loop = asyncio.get_running_loop()
    waiters = []
    print("ready 0", flush=True)
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line == "wait":
            waiters = [loop.create_task(store.read_wait(i, 0)) for i in ids]
            await asyncio.sleep(0.1)
        elif line == "stop":
            for w in waiters:
                w.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
            waiters = []
        elif line != "count":
            break
        print(f"ok {polls}", flush=True)
    await store.aclose()

uvloop.run(main())
"""


async def measure_poll(workdir: Path, cfg: Config) -> dict[str, Any]:
    """A second process waiting (``read_wait``) on SQLite streams nobody writes."""
    import psutil

    from tokenrelay.store.sqlite import SQLiteStore

    path = workdir / "poll.db"
    ids = [f"idle-{i}" for i in range(cfg.poll_streams)]
    store = SQLiteStore(path)
    for i in ids:
        await store.create(i, {"bench": True}, owner="bench", lease=None)
    await store.aclose()
    cmd = ["taskset", "-c", str(g.GATEWAY_CPU), sys.executable, "-c", POLL_CHILD]
    child = subprocess.Popen(
        [*cmd, str(path), ",".join(ids)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        start_new_session=True,
    )
    _children.append(child)
    assert child.stdin is not None and child.stdout is not None
    ps = psutil.Process(child.pid)

    async def say(cmd: str | None) -> int:
        if cmd is not None:
            child.stdin.write(cmd + "\n")  # type: ignore[union-attr]
            child.stdin.flush()  # type: ignore[union-attr]
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("the poll process ended")
        return int(line.split()[1])

    async def phase(name: str) -> dict[str, Any]:
        await asyncio.sleep(0.5)
        p0, c0, t0 = await say("count"), exact_cpu_s([ps.pid]), time.perf_counter()
        await asyncio.sleep(cfg.poll_s)
        p1, c1, t1 = await say("count"), exact_cpu_s([ps.pid]), time.perf_counter()
        wall = t1 - t0
        out = {
            "cpu_pct": round((c1 - c0) / wall * 100, 3),
            "polls_per_s": round((p1 - p0) / wall, 1),
            "seconds": round(wall, 1),
        }
        progress(f"  sqlite poll, {name}: {out}")
        return out

    try:
        await say(None)
        res = {"streams": cfg.poll_streams, "before": await phase("0 waiters (before)")}
        await say("wait")
        res["waiting"] = await phase(f"{cfg.poll_streams} waiters")
        await say("stop")
        res["after"] = await phase("0 waiters (after)")
        child.stdin.write("quit\n")
        child.stdin.flush()
        child.wait(10)
    finally:
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(5)
        _children.remove(child)
    return res


def level_ok(r: dict[str, Any]) -> bool:
    return bool(r["held"]) and r["ttft_p99_ms"] <= TTFT_LIMIT_MS


def cores(r: dict[str, Any]) -> float:
    return round(sum(r["cpu"].values()), 2)


# --------------------------------------------------------------------------- part A


async def part_a(cfg: Config, parts: set[str], workdir: Path, res: dict[str, Any]) -> None:
    os.sched_setaffinity(0, {g.HARNESS_CPU})
    mock = start_mock(g.HARNESS_CPU)
    gws: dict[str, g.Proc] = {}
    redis: g.Proc | None = None
    if parts & {"ttft", "gaps"}:
        redis = start_redis(mkdir(workdir / "redis-a"))
        for kind in STORES:
            d = mkdir(workdir / f"a-{kind}")
            gws[kind] = start_gateway(kind, mock.port, d, store_url(kind, d, redis))
        progress(
            f"mock :{mock.port}, redis :{redis.port if redis else '-'}, "
            + ", ".join(f"{k} :{p.port}" for k, p in gws.items())
        )
        direct = g.Target("direct", mock.port, None)
        targets = [direct] + [g.Target(k, p.port, p) for k, p in gws.items()]
        ref = await g.reference_text(direct)
        res["fidelity_one_stream"] = {}
        for t in targets[1:]:
            s = await g.open_stream(t.port, g.chat_request(t.model("lorem"), g.TOKENS))
            await asyncio.wait_for(s.done, 30)
            s.close()
            same = len(s.times) == g.TOKENS and s.text == ref
            res["fidelity_one_stream"][t.key] = same
            progress(f"  fidelity {t.key}: {len(s.times)} frames, same text: {same}")
        if "ttft" in parts:
            progress("added TTFT ...")
            res["ttft"] = await g.measure_ttft(targets, cfg.harness())
        if "gaps" in parts:
            progress(f"{cfg.gap_streams} paced streams ...")
            res["gaps"] = await measure_gaps(targets, ref, cfg, mock, redis)
        for p in gws.values():
            stop(p)
        if redis is not None:
            stop(redis)
        await g.drain(mock, 15)
    if "idle" in parts:
        progress(f"idle memory at {cfg.idle_streams:,} streams (fresh gateways, fresh stores) ...")
        res["idle"] = {}
        for kind in STORES:
            d = mkdir(workdir / f"idle-{kind}")
            rs = start_redis(d) if kind == "redis" else None
            p = start_gateway(kind, mock.port, d, store_url(kind, d, rs))
            try:
                t = g.Target(kind, p.port, p)
                res["idle"][kind] = await idle_memory(
                    t, cfg.idle_streams, rs, cfg.idle_cpu_s, cfg.idle_cpu_s / 2
                )
            except (OSError, ConnectionError, TimeoutError) as exc:
                res["idle"][kind] = {"error": repr(exc)}
            stop(p)
            if rs is not None:
                stop(rs)
            await g.drain(mock, 10)
    stop(mock)
    if "poll" in parts:
        progress("SQLite cross-process poll ...")
        res["poll"] = await measure_poll(mkdir(workdir / "poll"), cfg)


def mkdir(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    return d


async def measure_gaps(
    targets: list[g.Target], ref: bytes, cfg: Config, mock: g.Proc, redis: g.Proc | None
) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {t.key: [] for t in targets}
    n = cfg.gap_streams
    for i in range(cfg.gap_repeats):
        order = targets[i % len(targets) :] + targets[: i % len(targets)]
        for t in order:
            gc.collect()
            meters: dict[str, g.Proc | None] = {"mock": mock, "gateway": t.proc}
            cpu_of: dict[str, g.Proc] = {} if t.proc is None else {"gateway": t.proc}
            if t.key == "redis" and redis is not None:
                meters["redis"] = cpu_of["redis"] = redis
            r = await paced(t, n, ref, cfg, meters, cpu_of)
            runs[t.key].append(r)
            progress(
                f"  {n:>5} streams {t.key:<8} {g.fmt_run(r)}; us/token "
                f"{r['cpu_us_per_token']} steady {r['steady_cpu_us_per_token']}"
            )
            await g.drain(mock)
            await asyncio.sleep(0.5)
    out: dict[str, Any] = {"runs": runs, "summary": {}}
    direct = runs["direct"]
    for key, rs in runs.items():
        added = [r["gap_p99_ms"] - d["gap_p99_ms"] for r, d in zip(rs, direct, strict=True)]
        added50 = [r["gap_p50_ms"] - d["gap_p50_ms"] for r, d in zip(rs, direct, strict=True)]

        def med(xs: list[float | None]) -> float | None:
            ys = [x for x in xs if x is not None]
            return round(statistics.median(ys), 2) if ys else None

        out["summary"][key] = {
            "gap_p50_ms": med([r["gap_p50_ms"] for r in rs]),
            "gap_p99_ms": med([r["gap_p99_ms"] for r in rs]),
            "added_p50_ms": med(added50),
            "added_p99_ms": med(added),
            "added_p99_runs_ms": [round(x, 2) for x in added],
            "ttft_p99_ms": med([r["ttft_p99_ms"] for r in rs]),
            "exact_runs": sum(1 for r in rs if r["exact"]),
            "ok_streams": [r["ok"] for r in rs],
            "merged_lost_failed": [f"{r['merged']}/{r['lost']}/{r['failed']}" for r in rs],
            "cpu_us_per_token": {
                k: med([r["cpu_us_per_token"].get(k) for r in rs])
                for k in rs[0]["cpu_us_per_token"]
            },
            "steady_cpu_us_per_token": {
                k: med([r["steady_cpu_us_per_token"].get(k) for r in rs])
                for k in rs[0]["steady_cpu_us_per_token"]
            },
            "gateway_cpu_share": med([r["cpu"].get("gateway") for r in rs]),
            "other_cores": med([r["other_cores"] for r in rs]),
        }
    return out


# --------------------------------------------------------------------------- part B


async def part_b(cfg: Config, workdir: Path, res: dict[str, Any], harness: str) -> None:
    os.sched_setaffinity(0, {0, 1})
    if harness == "c":
        build_c_harness()
        mock = start_c_upstream(BOTH_CPUS)
    else:
        mock = start_mock(BOTH_CPUS)
    specs = [
        ("1w-memory", "memory", 1),
        ("1w-sqlite", "sqlite", 1),
        ("2w-sqlite", "sqlite", 2),
    ]
    gws: dict[str, g.Proc] = {}
    for key, kind, workers in specs:
        d = mkdir(workdir / f"b-{key}")
        gws[key] = start_gateway(
            key, mock.port, d, store_url(kind, d, None), workers=workers, cpus=BOTH_CPUS
        )
    progress(f"mock :{mock.port}, " + ", ".join(f"{k} :{p.port}" for k, p in gws.items()))
    direct = g.Target("direct", mock.port, None)
    targets = [direct] + [g.Target(k, p.port, p) for k, p in gws.items()]
    ref = await (c_reference_text(mock.port) if harness == "c" else g.reference_text(direct))
    for t in targets[1:]:  # warm each worker's upstream pool and code paths
        for _ in range(8):
            await g.ttft_once(t)
    runs: dict[str, dict[int, dict[str, Any]]] = {t.key: {} for t in targets}
    failed: dict[str, int] = {}
    saved = g.SPREAD_S
    g.SPREAD_S = LEVEL_SPREAD_S
    try:
        for li, n in enumerate(cfg.c_levels if harness == "c" else cfg.levels):
            order = targets[li % len(targets) :] + targets[: li % len(targets)]
            live = [t for t in order if t.key not in failed]
            if all(t.key == "direct" for t in live):
                break
            for t in live:
                tries: list[dict[str, Any]] = []
                for _ in range(1 + cfg.level_retries):
                    gc.collect()
                    meters: dict[str, g.Proc | None] = {"mock": mock, "gateway": t.proc}
                    cpu_of: dict[str, g.Proc] = {} if t.proc is None else {"gateway": t.proc}
                    r = await paced(
                        t, n, ref, cfg, meters, cpu_of, opening=LEVEL_SPREAD_S, harness=harness
                    )
                    r["ok_level"] = level_ok(r)
                    r["cores"] = cores(r)
                    tries.append(r)
                    progress(
                        f"  {n:>5} streams {t.key:<9} {g.fmt_run(r)}; ttft p50 "
                        f"{r['ttft_p50_ms']:.0f} ms; cores {r['cores']} (machine "
                        f"{r['machine_cores']}, others {r['other_cores']}); opening "
                        f"{r['opening_cores']}"
                        + (f"; workers {r['worker_cpu_s']}" if "worker_cpu_s" in r else "")
                        + ("" if r["ok_level"] else "  NOT HELD (level)")
                    )
                    await g.drain(mock)
                    await asyncio.sleep(0.5)
                    if r["ok_level"]:
                        break
                r = tries[-1]
                r["tries"] = [
                    {"ok_level": x["ok_level"], "ttft_p99_ms": x["ttft_p99_ms"], "held": x["held"]}
                    for x in tries
                ]
                runs[t.key][n] = r
                if not r["ok_level"]:
                    failed[t.key] = n
    finally:
        g.SPREAD_S = saved
    summary: dict[str, Any] = {}
    direct_failed = failed.get("direct")
    for t in targets:
        held = [n for n, r in runs[t.key].items() if r["ok_level"]]
        first_fail = failed.get(t.key)
        notes = []
        if first_fail is None:
            top = max(runs[t.key]) if runs[t.key] else 0
            notes.append(f"held every level run (up to {top:,}): a lower bound")
        else:
            r = runs[t.key][first_fail]
            if t.key != "direct" and direct_failed is not None and first_fail >= direct_failed:
                notes.append(f"the direct run failed at {direct_failed:,} too: harness-bound")
            op = r.get("opening_cores", {})
            if op.get("machine", 0) >= SATURATED:
                notes.append(
                    f"machine full while opening {first_fail:,} ({op['machine']:.2f} of 2 cores: "
                    f"gateway {op.get('gateway', 0):.2f}, mock + client "
                    f"{op.get('mock', 0) + op.get('client', 0) + op.get('load', 0):.2f}, others "
                    f"{op.get('others', 0):.2f})"
                )
            if max(op.get("others", 0), r["other_cores"]) >= 0.2:
                notes.append(
                    f"other processes used {op.get('others', 0):.2f} cores while opening, "
                    f"{r['other_cores']:.2f} over the run: disturbed"
                )
            d = runs["direct"].get(first_fail)
            if d is not None and t.key != "direct":
                notes.append(
                    f"harness alone at {first_fail:,}: mock {d['cpu'].get('mock', 0):.0%} + "
                    f"client {d['cpu'].get('client', 0):.0%} of a core"
                )
        summary[t.key] = {
            "most_held": max(held) if held else 0,
            "first_not_held": first_fail,
            "note": "; ".join(notes),
        }
    res["workers"] = {
        "harness": harness,
        "levels": cfg.c_levels if harness == "c" else cfg.levels,
        "spread_s": LEVEL_SPREAD_S,
        "ttft_limit_ms": TTFT_LIMIT_MS,
        "runs": runs,
        "summary": summary,
    }
    for p in gws.values():
        stop(p)
    stop(mock)


# --------------------------------------------------------------------------- report


def fmt(x: float | None, spec: str = ".2f", sign: bool = False) -> str:
    if x is None:
        return "-"
    return format(x, ("+" if sign else "") + spec)


def targets_table(res: dict[str, Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []

    def add(target: str, measured: str, ok: bool | None) -> None:
        result = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        out.append({"target": target, "measured": measured, "result": result})

    tt = res.get("ttft")
    if tt:
        diff = (
            tt["redis"]["median_of_round_medians_ms"] - tt["memory"]["median_of_round_medians_ms"]
        )
        sq = tt["sqlite"]["median_of_round_medians_ms"] - tt["memory"]["median_of_round_medians_ms"]
        add(
            "added TTFT at one client: Redis <= memory + 0.5 ms",
            f"Redis {tt['redis']['added_ms']:+.2f} ms vs memory {tt['memory']['added_ms']:+.2f} "
            f"ms: {diff:+.2f} ms (SQLite {sq:+.2f} ms)",
            diff <= 0.5,
        )
    wk = res.get("workers")
    if wk:
        s = wk["summary"]
        one, two = s["1w-sqlite"]["most_held"], s["2w-sqlite"]["most_held"]
        r = two / one if one else float("inf")
        bound = "" if s["2w-sqlite"]["first_not_held"] else " (2 workers held every level: >=)"
        add(
            "--workers 2 >= 1.7x one worker (SQLite), TTFT p99 <= 1 s, held",
            f"{two:,} vs {one:,} streams ({r:.2f}x){bound}; 1 worker on memory "
            f"{s['1w-memory']['most_held']:,}; direct {s['direct']['most_held']:,}",
            one > 0 and two >= 1.7 * one,
        )
    return out


def report(res: dict[str, Any], cfg: Config) -> str:
    v = res["versions"]
    lines = [
        f"- date: {res['date']}; mode: {'quick' if cfg.quick else 'full'}; parts "
        f"{','.join(res['parts'])}; benchmark time {res['elapsed_s']:.0f} s; load average at "
        f"start {res['load_avg_at_start'][0]:.2f}, at the end {res['load_avg_at_end'][0]:.2f}",
        f"- python: {v['python']} on {v['platform']}, {v['cpus']} CPUs ({v['cpu']}); "
        f"redis-server {res['redis_version']}; SQLite {res['sqlite_version']} on "
        f"{res['tmp_fs']} (the temporary directory)",
        f"- tokenrelay {v['tokenrelay_env']['tokenrelay']} (commit {v['commit']}"
        f"{', src modified' if v['dirty'] else ''}); uvicorn {v['tokenrelay_env']['uvicorn']}, "
        f"uvloop {v['tokenrelay_env']['uvloop']}, redis-py {dist_version('redis')}",
        f"- upstream: `tokenrelay mock --ttft-ms 0 --token-ms {g.TOKEN_MS:g}`, `lorem`, "
        f"max_tokens {g.TOKENS}; stall = gap > {g.STALL_MS:g} ms"
        + (
            "; part B: `bench/harness/upstream` and `bench/harness/load` instead"
            if res.get("workers", {}).get("harness") == "c"
            else ""
        ),
    ]
    if "ttft" in res:
        lines += [
            "",
            "### A. Stores: added TTFT at one client",
            "",
            f"Gateways pinned to CPU {g.GATEWAY_CPU}; mock, client and redis-server to CPU "
            f"{g.HARNESS_CPU}. {cfg.ttft_rounds} interleaved rounds x {cfg.ttft_per_round} "
            "requests; median of round medians (ms).",
            "",
            "| contestant | TTFT | added | vs memory | p99 (all requests) |",
            "|---|--:|--:|--:|--:|",
        ]
        tt = res["ttft"]
        mem = tt["memory"]["median_of_round_medians_ms"]
        for k in ("direct", *STORES):
            x = tt[k]
            added = "-" if k == "direct" else f"{x['added_ms']:+.2f}"
            vs = (
                "-"
                if k in ("direct", "memory")
                else f"{x['median_of_round_medians_ms'] - mem:+.2f}"
            )
            lines.append(
                f"| {k} | {x['median_of_round_medians_ms']:.2f} | {added} | {vs} | "
                f"{x['p99_ms']:.2f} |"
            )
    if "gaps" in res:
        gs = res["gaps"]["summary"]
        lines += [
            "",
            f"### A. Stores: {cfg.gap_streams} paced streams, CPU per token",
            "",
            f"64 tokens at 20 ms, opened over {g.SPREAD_S * 1000:g} ms; {cfg.gap_repeats} "
            "round(s) (order rotated), medians over rounds; added = minus direct in the same "
            "round. exact = runs with every stream carrying the 64 frames of the reference. "
            "CPU per token: gateway process CPU / content frames received, over the whole "
            f"run (request set-up included) and in the steady window {WINDOW_S[0]:g}-"
            f"{WINDOW_S[1]:g} s; µs.",
            "",
            "| contestant | gap p50 | gap p99 | added p99 | added p99 per round | TTFT p99 | "
            "exact | merged/lost/failed | gw CPU | µs/token (run) | µs/token (steady) | "
            "redis-server µs/token | other processes (cores) |",
            "|---|--:|--:|--:|---|--:|--:|---|--:|--:|--:|--:|--:|",
        ]
        for k in ("direct", *STORES):
            x = gs[k]
            cpu, steady = x["cpu_us_per_token"], x["steady_cpu_us_per_token"]
            lines.append(
                f"| {k} | {fmt(x['gap_p50_ms'])} | {fmt(x['gap_p99_ms'])} | "
                + ("-" if k == "direct" else fmt(x["added_p99_ms"], sign=True))
                + " | "
                + ("-" if k == "direct" else ", ".join(f"{a:+.1f}" for a in x["added_p99_runs_ms"]))
                + f" | {fmt(x['ttft_p99_ms'], '.1f')} | {x['exact_runs']}/{cfg.gap_repeats} | "
                f"{', '.join(x['merged_lost_failed'])} | "
                + ("-" if k == "direct" else f"{x['gateway_cpu_share'] or 0:.0%}")
                + f" | {fmt(cpu.get('gateway'), '.1f')} | {fmt(steady.get('gateway'), '.1f')} | "
                f"{fmt(cpu.get('redis'), '.1f')} | {fmt(x['other_cores'])} |"
            )
    if "idle" in res:
        lines += [
            "",
            "### A. Stores: memory per idle stream",
            "",
            "Fresh gateway, fresh store; N streams whose upstream sent one token and stalls; "
            "(RSS with N open - RSS idle) / N, KB = 1024 bytes. Redis: redis-server's RSS and "
            "`used_memory` growth per stream. CPU (share of a core, from the scheduler's "
            f"counters) of the fresh gateway / redis-server with no stream over "
            f"{cfg.idle_cpu_s:g} s, then while holding the N streams over "
            f"{cfg.idle_cpu_s / 2:g} s (the hub renews every lease once a second).",
            "",
            "| store | N | with first token | baseline RSS | RSS | KB/stream | redis RSS "
            "KB/stream | redis used_memory KB/stream | CPU, no stream | CPU holding N |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for k in STORES:
            m = res["idle"].get(k, {})
            if "kb_per_stream" not in m:
                lines.append(f"| {k} | - | - | - | - | {m.get('error', '-')} | - | - | - | - |")
                continue

            def pcts(c: dict[str, float]) -> str:
                return f"{c['gateway']:.2f}%" + (f" / {c['redis']:.2f}%" if "redis" in c else "")

            lines.append(
                f"| {k} | {m['streams']:,} | {m['with_first_token']:,} | {m['baseline_mb']} MB | "
                f"{m['rss_mb']} MB | {m['kb_per_stream']} | "
                f"{fmt(m.get('redis_rss_kb_per_stream'), '.2f')} | "
                f"{fmt(m.get('redis_used_kb_per_stream'), '.2f')} | "
                f"{pcts(m['cpu_pct_empty'])} | {pcts(m['cpu_pct_holding'])} |"
            )
    if "poll" in res:
        p = res["poll"]
        lines += [
            "",
            "### A. Stores: SQLite cross-process poll",
            "",
            f"SQLite cross-process poll: a second process (CPU {g.GATEWAY_CPU}, uvloop) with "
            f"a `SQLiteStore` on a file holding {p['streams']} running streams nobody writes; "
            f"CPU (scheduler's counters) over {cfg.poll_s:g} s.",
            "",
            "| waiters | CPU | polls/s |",
            "|---|--:|--:|",
            f"| 0 (store open, never waited) | {p['before']['cpu_pct']:.2f}% | "
            f"{p['before']['polls_per_s']:g} |",
            f"| {p['streams']} (`read_wait` on every stream) | "
            f"{p['waiting']['cpu_pct']:.2f}% | "
            f"{p['waiting']['polls_per_s']:g} |",
            f"| 0 (after they were cancelled) | {p['after']['cpu_pct']:.2f}% | "
            f"{p['after']['polls_per_s']:g} |",
        ]
    if "workers" in res:
        wk = res["workers"]
        keys = list(wk["runs"])
        lines += [
            "",
            "### B. Workers: most truly concurrent streams",
            "",
            "Harness: "
            + (
                "`bench/harness`'s C upstream (as mock) and C load client (as client). "
                if wk.get("harness") == "c"
                else "the Python mock and raw-socket client. "
            )
            + f"Nothing pinned (gateway workers, mock and client share both cores). c streams of "
            f"64 tokens at 20 ms opened evenly over {wk['spread_s']:g} s; held = no token lost, "
            f"no gap over {g.STALL_MS:g} ms, errors < 0.1%, and TTFT p99 <= "
            f"{wk['ttft_limit_ms']:g} ms; a level not held is run once more (held if that run "
            "holds). µs/token: the gateway's CPU (every process) over the "
            "run / content frames delivered. Cores used (1 = one core, the machine has 2) "
            "by the gateway / the mock / this client, over the whole run and over the opening "
            f"{wk['spread_s']:g} s while the streams are being opened; others = every other "
            "process on the machine; 2 workers: each worker's share of the run.",
            "",
            "| streams | contestant | ok | merged/lost/failed | TTFT p50 | TTFT p99 | gap p99 | "
            "gap max | stalls | µs/token | run: gw/mock/client (others) | opening: "
            "gw/mock/client (others) | held |",
            "|--:|---|--:|---|--:|--:|--:|--:|--:|--:|---|---|---|",
        ]
        for n in wk["levels"]:
            for k in keys:
                r = wk["runs"][k].get(n)
                if r is None:
                    continue
                cpu = r["cpu"]
                split = ""
                if "worker_cpu_s" in r:
                    shares = [x / r["duration_s"] for x in r["worker_cpu_s"]["gateway"] if x > 0]
                    split = " (" + "+".join(f"{x:.2f}" for x in shares) + ")"
                op = r.get("opening_cores", {})
                us = r["cpu_us_per_token"].get("gateway")
                lines.append(
                    f"| {n:,} | {k} | {r['ok']:,} | {r['merged']}/{r['lost']}/{r['failed']} | "
                    f"{r['ttft_p50_ms']:.0f} | {r['ttft_p99_ms']:.0f} | {r['gap_p99_ms']:.1f} | "
                    f"{r['gap_max_ms'] or 0:.0f} | {r['stalls']} | {fmt(us, '.0f')} | "
                    f"{cpu.get('gateway', 0):.2f}{split}/{cpu.get('mock', 0):.2f}/"
                    f"{cpu.get('client', 0):.2f} ({r['other_cores']:.2f}) | "
                    f"{op.get('gateway', 0):.2f}/{op.get('mock', 0):.2f}/"
                    f"{op.get('client', 0) + op.get('load', 0):.2f}"
                    f" ({op.get('others', 0):.2f}) | {'yes' if r['ok_level'] else 'NO'}"
                    + (" (2nd try)" if len(r.get("tries", [])) > 1 and r["ok_level"] else "")
                    + (" (twice)" if len(r.get("tries", [])) > 1 and not r["ok_level"] else "")
                    + " |"
                )
        s = wk["summary"]
        one = s["1w-sqlite"]["most_held"]
        lines += [
            "",
            "| contestant | most held | first level not held | vs 1 worker (SQLite) | note |",
            "|---|--:|--:|--:|---|",
        ]
        for k in keys:
            x = s[k]
            lines.append(
                f"| {k} | {x['most_held']:,} | {x['first_not_held'] or '-'} | "
                f"{g.ratio(x['most_held'], one) if k != 'direct' else '-'} | {x['note']} |"
            )
    if res["targets"]:
        lines += ["", "### Targets", "", "| target | measured | result |", "|---|---|---|"]
        for t in res["targets"]:
            lines.append(f"| {t['target']} | {t['measured']} | {t['result']} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def busy() -> list[str]:
    out = subprocess.run(
        ["pgrep", "-af", "pytest|pip install|cmake"], capture_output=True, text=True, check=False
    ).stdout
    mine = {os.getpid(), os.getppid()}
    return [line for line in out.splitlines() if line and int(line.split()[0]) not in mine]


def wait_quiet(minutes: float) -> dict[str, Any]:
    """Until nothing named pytest, pip install or cmake runs and the 1-minute load average
    is below 0.5, checking every 30 s, for at most ``minutes``."""
    t0 = time.monotonic()
    while True:
        load = os.getloadavg()[0]
        others = busy()
        if not others and load < 0.5:
            break
        waited = time.monotonic() - t0
        if waited > minutes * 60:
            progress(f"still busy after {minutes:g} min (load {load:.2f}): running anyway")
            return {"quiet": False, "waited_s": round(waited), "load": load, "busy": others}
        progress(f"waiting for a quiet machine: load {load:.2f}, {len(others)} busy process(es)")
        time.sleep(30)
    return {"quiet": True, "waited_s": round(time.monotonic() - t0), "load": load}


def sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def redis_version() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            [REDIS_SERVER, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        for word in out.split():
            if word.startswith("v="):
                return word[2:]
    return "?"


def tmp_fs() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["df", "-T", tempfile.gettempdir()], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()
        return out[-1].split()[1]
    return "?"


async def run(
    cfg: Config, parts: set[str], quiet: dict[str, Any] | None, harness: str
) -> dict[str, Any]:
    started_at = time.perf_counter()
    nofile = g.raise_nofile()
    progress(f"RLIMIT_NOFILE {nofile}")
    res: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "parts": [p for p in PARTS if p in parts],
        "config": asdict(cfg),
        "versions": g.versions(None),
        "load_avg_at_start": os.getloadavg(),
        "quiet_wait": quiet,
        "command": " ".join(["python", "bench/stores.py", *sys.argv[1:]]),
        "redis_version": redis_version(),
        "sqlite_version": sqlite_version(),
        "tmp_fs": tmp_fs(),
        "method": {
            "tokens": g.TOKENS,
            "token_ms": g.TOKEN_MS,
            "stall_ms": g.STALL_MS,
            "gap_spread_s": g.SPREAD_S,
            "level_spread_s": LEVEL_SPREAD_S,
            "steady_window_s": WINDOW_S,
        },
    }
    gc.disable()
    workdir = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    try:
        if parts & {"ttft", "gaps", "idle", "poll"}:
            await part_a(cfg, parts, workdir, res)
        if "workers" in parts:
            progress("workers (nothing pinned) ...")
            await part_b(cfg, workdir, res, harness)
    finally:
        stop_everything()
        shutil.rmtree(workdir, ignore_errors=True)
    res["elapsed_s"] = time.perf_counter() - started_at
    res["load_avg_at_end"] = os.getloadavg()
    res["targets"] = targets_table(res)
    return res


def on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~2 min)")
    parser.add_argument(
        "--only", default="", help=f"comma-separated parts of {','.join(PARTS)} (default: all)"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="MIN",
        help="first wait up to MIN minutes for load < 0.5 and no pytest/pip/cmake",
    )
    parser.add_argument(
        "--harness",
        choices=("c", "python"),
        default="c",
        help="part B's upstream and load client: bench/harness's C pair (default; built with "
        "make) or the Python mock and raw-socket client",
    )
    parser.add_argument("--json", default="", help="where to write the results (JSON)")
    args = parser.parse_args()
    cfg = QUICK if args.quick else Config()
    parts = set(args.only.split(",")) if args.only else set(PARTS)
    if parts - set(PARTS):
        raise SystemExit(f"--only takes {','.join(PARTS)}, not {sorted(parts - set(PARTS))}")
    try:
        import uvloop
    except ImportError:
        raise SystemExit("needs uvloop: pip install -e '.[bench,gateway]'") from None
    if not Path(REDIS_SERVER).exists() and parts & {"ttft", "gaps", "idle"}:
        raise SystemExit(f"needs redis-server ({REDIS_SERVER}): apt-get install redis-server")
    signal.signal(signal.SIGTERM, on_sigterm)
    quiet = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
    try:
        with deadline(cfg.max_s):
            res = uvloop.run(run(cfg, parts, quiet, args.harness))
    except RunTimeout:
        raise SystemExit(f"the benchmark ran over {cfg.max_s:g} s") from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    finally:
        stop_everything()
    out = Path(args.json) if args.json else None
    if out is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H%M")
        suffix = ("-quick" if cfg.quick else "") + (
            "-" + "-".join(res["parts"]) if args.only else ""
        )
        out = REPO_ROOT / "bench" / "results" / f"stores-{stamp}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    progress(f"results: {out}")
    sys.stdout.write(report(res, cfg))


if __name__ == "__main__":
    main()
