r"""Gateway benchmark: ``tokenrelay serve`` against LiteLLM's proxy and Portkey's gateway, all
in front of the same deadline-paced fake LLM (``tokenrelay mock``), with the fake LLM read
directly as the baseline, side by side in one run (``shared/notes/gateway-lessons.md`` is the
method).

Contestants (every one answers ``POST /v1/chat/completions`` with an OpenAI SSE stream):

* ``direct``     -- ``tokenrelay mock --ttft-ms 0 --token-ms 20`` itself (the baseline);
* ``tokenrelay`` -- ``tokenrelay serve --config FILE``: one process, uvicorn with uvloop and
  httptools, one provider of kind ``openai`` pointing at the mock, grace 0;
* ``litellm``    -- LiteLLM's proxy (``litellm --config FILE --num_workers 1``, no database)
  from its own virtual environment (``--litellm-venv``, default /work/bench-venvs/litellm),
  its ``model_list`` pointing at the same mock as an ``openai/`` upstream;
* ``portkey``    -- Portkey's open-source AI gateway (npm ``@portkey-ai/gateway``, a Node app)
  from its own folder (``--portkey-dir``, default /work/bench-venvs/portkey), started as
  ``node build/start-server.js --port=N --headless`` (no UI, no log stream). It has no model
  list: each request names its route in headers, ``x-portkey-provider: openai`` and
  ``x-portkey-custom-host: http://127.0.0.1:MOCK/v1`` (the client's ``Authorization`` goes
  upstream as the API key), and asks for the mock's model names as the direct run does.
  Portkey takes no listen address (it binds every interface), so a preloaded module
  (``node --import``) makes its ``listen`` bind 127.0.0.1; ``TRUSTED_CUSTOM_HOSTS=127.0.0.1``
  is what lets it call a custom host on loopback (127.0.0.1 is also in its default list).
  Two of its ways show in the figures: it waits 25 ms before it forwards a stream's first
  event (``readStream`` in ``src/handlers/streamHandler.ts``), and it never ends its upstream
  request when its client leaves (its upstream ``fetch`` gets no signal from the client's
  request, only a timeout's when one is set), so the mock runs each such stream to its own
  end: "not propagated".

The gateways are pinned to CPU 1 (``taskset -c 1``); the mock and this load client to CPU 0.
Only one contestant is loaded at a time. The load client writes each HTTP request by hand on
a raw asyncio socket (uvloop), de-chunks the body, splits SSE events and timestamps each
content frame when its bytes arrive; ``RLIMIT_NOFILE`` is raised, client sockets close with
RST, connections are spread over 16 source addresses 127.0.0.x, and every run is bounded in
time. Everything stays on loopback.

Measures ("added" = through the gateway minus the mock directly, same client, same run):

1. **added TTFT at one client**: interleaved rounds (each round runs every contestant
   ``per_round`` times, order rotated); TTFT = request written -> first content frame; the
   figure is the median of the round medians, gateway minus direct.
2. **inter-token gaps at 1, 64, 256, 1,024 concurrent streams** (64 tokens at 20 ms,
   ``max_tokens`` 64): streams opened over ``SPREAD_S``; gaps between consecutive content
   frames of each stream, p50/p99 over all streams; "added" = gateway percentile minus
   direct percentile at the same concurrency. Frame fidelity: each stream must carry exactly
   64 content frames whose text equals the direct reference.
3. **most concurrent streams held**: the ramp 64, 128, 256, 512, 1,024, 2,048 (and down to
   48, 32, 24, 16, 8 for a contestant that fails at 64): held = no lost or merged frame,
   no gap over 10x the pace (200 ms), errors (refused, cut, timed out) under 0.1%. A level
   that the direct run fails too is the harness's limit, not the gateway's.
4. **memory per idle stream**: in a fresh gateway process, N streams (model ``lorem-idle``:
   the mock sends one token and then stalls) are opened, client and upstream connections
   together; (RSS with N open - RSS idle) / N, RSS of the gateway process and its children.
5. **disconnect propagation** (grace 0): the client closes (FIN) mid-stream (after 3 tokens)
   or while the upstream has not sent its first token (model ``lorem-wait``: headers, then
   a 5 s stall); the figure is the mock's own "ended" time of that request
   (``GET /mock/requests``) minus the client's close time; "not propagated" when the mock
   finished on its own instead (outcome not ``disconnected``).
6. **upstream transport**: one fast mock stream (``x-mock-token-ms: 0``, ``lorem``,
   ``max_tokens`` 20,000) read in a process pinned to CPU 1 by aiohttp and by httpx, bare
   (bytes), and through a provider path (tokenrelay: ``HTTPProvider.stream``, on its own
   HTTP/1.1 connections since issue 19; httpx: the same loop with the dialect's decoder on
   ``aiter_raw``), best of N, events/s; a plain socket
   read of the same stream shows how fast the mock produces it.

How to run
----------
From the repository root, with the dev environment (``pip install -e '.[bench,gateway]'``),
LiteLLM in its own venv (``python -m venv /work/bench-venvs/litellm &&
/work/bench-venvs/litellm/bin/pip install 'litellm[proxy]' && .../pip install --no-deps
litellm==1.109.1``) and Portkey in its own folder, with the server stack its release was
built with (the versions of its own lock file; with ``@hono/node-server`` 1.19.19, the
newest, it answers every stream with a 500, its log saying "TypeError: immutable")::

    npm install --prefix /work/bench-venvs/portkey --save-exact @portkey-ai/gateway@1.15.2 \
        @hono/node-server@1.13.5 @hono/node-ws@1.2.0 hono@4.9.7

Its ``postinstall`` (``patch-package``) has nothing to apply: the published package ships no
patches. Without Portkey (or Node) the run says so and goes on without it; without LiteLLM
it stops (``--no-litellm`` leaves LiteLLM out).

::

    python bench/gateway.py                  # full run (~10 min), markdown on stdout
    python bench/gateway.py --quick          # small sizes, ~3 min
    python bench/gateway.py --no-litellm --no-portkey  # tokenrelay and direct only
    python bench/gateway.py --json out.json  # default: bench/results/gateway-<date>.json
    python bench/gateway.py --only gaps,idle # before/after of one change: 256-stream gaps
                                             # (--streams, --repeat paired runs), idle KB
                                             # (--idle-streams); JSON on stdout
    python bench/gateway.py --only ttft --floors  # one client: tokenrelay, a bare byte
                                             # relay and a relay doing our codecs
                                             # (relay_floor.py, kept-alive upstream)

Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import re
import resource
import secrets
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from _harness import REPO_ROOT, RunTimeout, deadline, dist_version, git

HOST = "127.0.0.1"
GATEWAY_CPU = 1
HARNESS_CPU = 0
TOKENS = 64
TOKEN_MS = 20.0
STALL_MS = 10 * TOKEN_MS  # a gap over 10x the pace is a stall
SPREAD_S = 0.25  # a level's streams are opened evenly over this time
SOURCES = 16  # client connections spread over 127.0.0.2 .. 127.0.0.17
KB = 1024
API_KEY = "sk-bench-" + secrets.token_hex(24)  # tokenrelay and LiteLLM check it (Bearer)
DEFAULT_LITELLM_VENV = "/work/bench-venvs/litellm"
DEFAULT_PORTKEY_DIR = "/work/bench-venvs/portkey"
PORTKEY_MODULE = "@portkey-ai/gateway"
VENV_BIN = Path(sys.executable).parent

Progress = Callable[[str], None]


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Config:
    ttft_rounds: int = 15
    ttft_per_round: int = 6
    ttft_tokens: int = 2  # max_tokens of the one-client requests (1: the answer in one read)
    gap_levels: tuple[int, ...] = (1, 64, 256, 1024)
    ramp: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    ramp_down: tuple[int, ...] = (48, 32, 24, 16, 8)
    idle_streams: int = 1000
    disconnect_trials: int = 5
    transport_tokens: int = 20_000
    transport_runs: int = 3
    slack_s: float = 12.0  # a paced run may last this much longer than its schedule
    max_s: float = 1500.0
    quick: bool = False


QUICK = Config(
    ttft_rounds=3,
    ttft_per_round=5,
    gap_levels=(1, 64, 256),
    ramp=(64, 256),
    ramp_down=(32, 16),
    idle_streams=200,
    disconnect_trials=2,
    transport_tokens=5_000,
    transport_runs=2,
    slack_s=8.0,
    max_s=600.0,
    quick=True,
)


# --------------------------------------------------------------------------- processes


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Proc:
    """A server in its own process (and session), pinned with taskset, output in a file."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        cpu: int,
        port: int,
        health: str,
        env: dict[str, str] | None = None,
    ) -> None:
        import psutil

        self.name = name
        self.port = port
        self.health = health
        self.log = tempfile.NamedTemporaryFile(
            "w+", prefix=f"bench-gateway-{name}-", suffix=".log", delete=False
        )
        self.popen = subprocess.Popen(
            ["taskset", "-c", str(cpu), *cmd],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.popen.pid)

    def wait_ready(self, timeout: float = 90.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.tail()}")
            with contextlib.suppress(OSError):
                if http_get(self.port, self.health, 2)[0] == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start within {timeout:g} s: {self.tail()}")

    def procs(self) -> list[Any]:
        import psutil

        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.Error:
            return [self.ps]

    def rss(self) -> int:
        import psutil

        total = 0
        for p in self.procs():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def cpu_s(self) -> float:
        import psutil

        total = 0.0
        for p in self.procs():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def tail(self, n: int = 1500) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-n:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self.log.close()


def start_mock() -> Proc:
    port = free_port()
    cmd = [
        str(VENV_BIN / "tokenrelay"),
        "mock",
        "--port",
        str(port),
        "--ttft-ms",
        "0",
        "--token-ms",
        f"{TOKEN_MS:g}",
        "--log-level",
        "warning",
    ]
    proc = Proc("mock", cmd, HARNESS_CPU, port, "/healthz")
    proc.wait_ready()
    return proc


# model name clients ask for -> the mock's model (with a fault suffix)
UPSTREAM_MODELS = {
    "lorem": "lorem",
    "lorem-idle": "lorem@stall:1;for=120",  # one token, then silence (idle memory)
    "lorem-wait": "lorem@stall:0;for=5",  # headers, then 5 s before any token
}


def tokenrelay_config(mock_port: int) -> str:
    models = "".join(
        f'\n[[models]]\nname = "{name}"\nroute = ["mock:{up}"]\n'
        for name, up in UPSTREAM_MODELS.items()
    )
    return f"""[gateway]
api_keys_env = "TOKENRELAY_BENCH_KEYS"
max_streams = 100000
grace_seconds = 0
ping_seconds = 15

[gateway.timeouts]
first_token = 60
idle = 600
total = 600

[gateway.retry]
attempts = 1

[[providers]]
name = "mock"
kind = "openai"
base_url = "http://{HOST}:{mock_port}/v1"
max_connections = 100000
{models}"""


def start_tokenrelay(mock_port: int, workdir: Path, source: str = "") -> Proc:
    """``tokenrelay serve`` from this checkout, or from another source tree's ``src``."""
    port = free_port()
    cfg = workdir / "tokenrelay.toml"
    cfg.write_text(tokenrelay_config(mock_port))
    program = (
        [str(VENV_BIN / "python"), "-m", "tokenrelay"] if source else [str(VENV_BIN / "tokenrelay")]
    )
    cmd = [
        *program,
        "serve",
        "--config",
        str(cfg),
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    env = {"TOKENRELAY_BENCH_KEYS": API_KEY, **({"PYTHONPATH": source} if source else {})}
    proc = Proc("baseline" if source else "tokenrelay", cmd, GATEWAY_CPU, port, "/healthz", env=env)
    proc.wait_ready()
    return proc


def start_floor(mock_port: int, mode: str) -> Proc:
    """``relay_floor.py`` in ``mode`` (bytes or codecs), its upstream connections kept
    alive: what any Python relay adds, and what tokenrelay's codecs add to it."""
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).parent / "relay_floor.py"), str(port),
           str(mock_port), mode, "keep"]  # fmt: skip
    proc = Proc("floor" if mode == "bytes" else "codecs", cmd, GATEWAY_CPU, port, "/healthz")
    proc.wait_ready()
    return proc


def litellm_config(mock_port: int) -> str:
    entries = "".join(
        f"""  - model_name: {name}
    litellm_params:
      model: "openai/{up}"
      api_base: "http://{HOST}:{mock_port}/v1"
      api_key: "sk-unused"
"""
        for name, up in UPSTREAM_MODELS.items()
    )
    return f"model_list:\n{entries}litellm_settings:\n  drop_params: true\n"


LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map at start
    "LITELLM_LOG": "ERROR",
    "LITELLM_TELEMETRY": "False",
    "DISABLE_ADMIN_UI": "True",
}


def start_litellm(venv: Path, mock_port: int, workdir: Path) -> Proc:
    port = free_port()
    cfg = workdir / "litellm.yaml"
    cfg.write_text(litellm_config(mock_port))
    cmd = [
        str(venv / "bin" / "litellm"),
        "--config",
        str(cfg),
        "--host",
        HOST,
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    env = {**LITELLM_ENV, "LITELLM_MASTER_KEY": API_KEY}
    proc = Proc("litellm", cmd, GATEWAY_CPU, port, "/health/liveliness", env=env)
    proc.wait_ready(180)
    return proc


def litellm_versions(venv: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json\n"
        "out = {}\n"
        "for d in ('litellm','fastapi','uvicorn','uvloop','httptools','httpx','aiohttp',"
        "'openai'):\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: out[d] = 'not installed'\n"
        "print(json.dumps(out))\n"
    )
    try:
        out = subprocess.run(
            [str(venv / "bin" / "python"), "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return cast(dict[str, str], json.loads(out.stdout))
    except (OSError, subprocess.SubprocessError, ValueError):
        return {"litellm": "not installed"}


# Portkey's server takes a port but no address (``serve({fetch, port})``: every interface);
# preloaded with ``node --import``, this binds a listen without a host to loopback.
LOOPBACK_LISTEN = f"""import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, host, ...rest) {{
  if (typeof port === "number" && (host === undefined || typeof host === "function")) {{
    return listen.call(this, port, "{HOST}", ...(host === undefined ? rest : [host, ...rest]));
  }}
  return listen.call(this, port, host, ...rest);
}};
"""

PORTKEY_ENV = {
    # the custom hosts Portkey may call (its SSRF check); its default list has 127.0.0.1 too
    "TRUSTED_CUSTOM_HOSTS": HOST,
}


def portkey_entry(portkey_dir: Path) -> Path:
    return portkey_dir / "node_modules" / PORTKEY_MODULE / "build" / "start-server.js"


def start_portkey(portkey_dir: Path, workdir: Path) -> Proc:
    port = free_port()
    shim = workdir / "loopback-listen.mjs"
    shim.write_text(LOOPBACK_LISTEN)
    cmd = [
        "node",
        "--import",
        str(shim),
        str(portkey_entry(portkey_dir)),
        f"--port={port}",  # its only form: "--port N" is ignored (port 8787)
        "--headless",
    ]
    proc = Proc("portkey", cmd, GATEWAY_CPU, port, "/", env=PORTKEY_ENV)
    proc.wait_ready()
    return proc


def portkey_headers(mock_port: int) -> str:
    """Portkey's route for one request: the OpenAI provider, with the mock as its host."""
    host = f"http://{HOST}:{mock_port}/v1"
    return f"x-portkey-provider: openai\r\nx-portkey-custom-host: {host}\r\n"


def portkey_versions(portkey_dir: Path) -> dict[str, str] | None:
    """Portkey's version, its server stack's (as Node resolves them from the gateway) and
    Node's; None if Portkey or Node is not installed."""
    if not portkey_entry(portkey_dir).is_file():
        return None
    try:
        node = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    modules = portkey_dir / "node_modules"
    out = {"node": node.stdout.strip()}
    for name in (PORTKEY_MODULE, "hono", "@hono/node-server"):
        out[name] = "not installed"
        for where in (modules / PORTKEY_MODULE / "node_modules", modules):
            with contextlib.suppress(OSError, ValueError, KeyError):
                out[name] = json.loads((where / name / "package.json").read_text())["version"]
                break
    return out


# --------------------------------------------------------------------------- the client

CONTENT = re.compile(rb'"content":\s*"((?:[^"\\]|\\.)*)"')
EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_src = 0


def next_source() -> tuple[str, int]:
    global _src
    _src = (_src + 1) % SOURCES
    return (f"127.0.0.{2 + _src}", 0)


class Stream(asyncio.Protocol):
    """One chat-completions stream on a raw socket: the status, the content frames with
    their arrival times and texts, the end (``data: [DONE]``)."""

    def __init__(self, request: bytes, rst: bool = True) -> None:
        loop = asyncio.get_running_loop()
        self.request = request
        self.rst = rst
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.status = 0
        self.chunked = False
        self.raw = bytearray()
        self.chunk_left = 0
        self.need_crlf = False
        self.buf = b""
        self.sent = 0.0
        self.times: list[float] = []
        self.texts: list[bytes] = []
        self.events = 0
        self.error = ""
        self.finished = False
        self.first: asyncio.Future[float] = loop.create_future()
        self.done: asyncio.Future[float] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and self.rst:  # close with RST: no TIME_WAIT left behind
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.status:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.head[:end], self.head[end + 4 :]
            self.head = b""
            lines = head.split(b"\r\n")
            self.status = int(lines[0].split()[1])
            self.chunked = any(
                line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower()
                for line in lines[1:]
            )
            if self.status != 200:
                self._fail(f"HTTP {self.status}: {data[:200]!r}")
                return
        payload = self._dechunk(data) if self.chunked else data
        if not payload:
            return
        parts = EVENT_END.split(self.buf + payload)
        self.buf = parts.pop()
        for event in parts:
            self._event(event, now)

    def _dechunk(self, data: bytes) -> bytes:
        raw = self.raw
        raw += data
        out: list[bytes] = []
        pos = 0
        while True:
            if self.chunk_left:
                take = min(self.chunk_left, len(raw) - pos)
                if not take:
                    break
                out.append(bytes(raw[pos : pos + take]))
                pos += take
                self.chunk_left -= take
                if self.chunk_left:
                    break
                self.need_crlf = True
            if self.need_crlf:
                if len(raw) - pos < 2:
                    break
                pos += 2
                self.need_crlf = False
            nl = raw.find(b"\r\n", pos)
            if nl < 0:
                break
            size = int(bytes(raw[pos:nl]).split(b";")[0], 16)
            pos = nl + 2
            if size == 0:
                break
            self.chunk_left = size
        del raw[:pos]
        return b"".join(out)

    def _event(self, event: bytes, now: float) -> None:
        if not event.strip() or event.startswith(b":"):
            return
        self.events += 1
        if b"[DONE]" in event:
            self.finished = True
            if not self.done.done():
                self.done.set_result(now)
            return
        m = CONTENT.search(event)
        if m is not None and m.group(1):
            self.times.append(now)
            self.texts.append(m.group(1))
            if not self.first.done():
                self.first.set_result(now)
        elif b'"error"' in event:
            self.error = self.error or f"error event: {event[:200]!r}"

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished:
            self._fail(f"closed after {len(self.times)} tokens ({exc or 'EOF'})")

    def _fail(self, why: str) -> None:
        self.error = self.error or why
        for fut in (self.first, self.done):
            if not fut.done():
                fut.set_exception(ConnectionError(why))
                fut.exception()
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @property
    def text(self) -> bytes:
        return b"".join(self.texts)


def chat_request(model: str, max_tokens: int, extra: str = "") -> bytes:
    body = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "max_tokens": max_tokens,
        }
    ).encode()
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {HOST}\r\n"
        "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {API_KEY}\r\nConnection: close\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def open_stream(port: int, request: bytes, rst: bool = True) -> Stream:
    loop = asyncio.get_running_loop()
    _, stream = await loop.create_connection(
        lambda: Stream(request, rst), HOST, port, local_addr=next_source()
    )
    return stream


# contestants without a model list of their own: they are asked for the mock's model names
MOCK_NAMED = frozenset({"direct", "portkey", "floor", "codecs"})


@dataclass
class Target:
    key: str  # direct | tokenrelay | litellm | portkey
    port: int
    proc: Proc | None  # the gateway process (None for direct)
    headers: str = ""  # request headers this contestant needs besides the others' (CRLF each)

    def model(self, name: str) -> str:
        return UPSTREAM_MODELS[name] if self.key in MOCK_NAMED else name

    def request(self, name: str, max_tokens: int) -> bytes:
        """A streamed chat request for the model the benchmark calls ``name``."""
        return chat_request(self.model(name), max_tokens, self.headers)


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


class CpuMeter:
    def __init__(self, procs: dict[str, Proc | None]) -> None:
        self.procs = {k: p for k, p in procs.items() if p is not None}
        self.wall = time.perf_counter()
        self.start = {k: p.cpu_s() for k, p in self.procs.items()}
        self.client = time.process_time()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        out = {k: (p.cpu_s() - self.start[k]) / wall for k, p in self.procs.items()}
        out["client"] = (time.process_time() - self.client) / wall
        return {k: round(v, 3) for k, v in out.items()}


# --------------------------------------------------------------------------- measures


async def reference_text(direct: Target) -> bytes:
    s = await open_stream(direct.port, direct.request("lorem", TOKENS))
    await asyncio.wait_for(s.done, 30)
    s.close()
    if len(s.times) != TOKENS:
        raise RuntimeError(f"the mock sent {len(s.times)} content frames, not {TOKENS}")
    return s.text


async def ttft_once(t: Target, tokens: int = 2) -> float:
    s = await open_stream(t.port, t.request("lorem", tokens))
    try:
        first = await asyncio.wait_for(s.first, 20)
        await asyncio.wait_for(s.done, 20)
    finally:
        s.close()
    return (first - s.sent) * 1000


async def measure_ttft(targets: list[Target], cfg: Config) -> dict[str, Any]:
    for t in targets:  # warm: connections to the upstream, code paths
        for _ in range(5):
            await ttft_once(t, cfg.ttft_tokens)
    rounds: dict[str, list[float]] = {t.key: [] for t in targets}
    samples: dict[str, list[float]] = {t.key: [] for t in targets}
    for r in range(cfg.ttft_rounds):
        order = targets[r % len(targets) :] + targets[: r % len(targets)]
        for t in order:
            got = []
            for _ in range(cfg.ttft_per_round):
                got.append(await ttft_once(t, cfg.ttft_tokens))
            rounds[t.key].append(statistics.median(got))
            samples[t.key] += got
        progress(
            f"  ttft round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} ms" for k, v in rounds.items())
        )
    out: dict[str, Any] = {}
    direct = statistics.median(rounds["direct"])
    for key in rounds:
        med = statistics.median(rounds[key])
        out[key] = {
            "median_of_round_medians_ms": round(med, 3),
            "added_ms": round(med - direct, 3),
            "p99_ms": round(pct(samples[key], 0.99), 3),
            "round_medians_ms": [round(x, 3) for x in rounds[key]],
        }
    return out


async def paced_run(
    t: Target, n: int, ref: bytes, cfg: Config, procs: dict[str, Proc | None]
) -> dict[str, Any]:
    request = t.request("lorem", TOKENS)
    spread = SPREAD_S if n > 1 else 0.0
    streams: list[Stream] = []
    connect_errors: list[str] = []
    t0 = time.perf_counter()
    meter = CpuMeter(procs)

    async def one(i: int) -> None:
        delay = t0 + spread * i / n - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            streams.append(await open_stream(t.port, request))
        except OSError as exc:
            connect_errors.append(repr(exc))

    await asyncio.gather(*(one(i) for i in range(n)))
    budget = spread + TOKENS * TOKEN_MS / 1000 + cfg.slack_s
    remaining = t0 + budget - time.perf_counter()
    if streams:
        await asyncio.wait([s.done for s in streams], timeout=max(0.1, remaining))
    cpu = meter.stop()
    for s in streams:
        s.close()
    return summarize_run(n, streams, ref, connect_errors, cpu, time.perf_counter() - t0)


class RunStream(Protocol):
    """What ``summarize_run`` reads of a stream (``Stream`` here; ``bench/stores.py``'s C
    load client's records too): times in seconds on one clock."""

    @property
    def times(self) -> list[float]: ...
    @property
    def sent(self) -> float: ...
    @property
    def finished(self) -> bool: ...
    @property
    def error(self) -> str: ...
    @property
    def text(self) -> bytes: ...


def summarize_run(
    n: int,
    streams: Sequence[RunStream],
    ref: bytes,
    connect_errors: Sequence[str],
    cpu: dict[str, float],
    duration_s: float,
) -> dict[str, Any]:
    """One paced run's verdict: held, exact, gaps, stalls, TTFT."""
    ok = merged = lost = failed = 0
    errors: list[str] = list(connect_errors)
    gaps: list[float] = []
    ttfts: list[float] = []
    firsts = [s.times[0] for s in streams if s.times]
    all_served = max(firsts) if len(firsts) == n else float("inf")
    steady: list[float] = []
    for s in streams:
        if s.times:
            ttfts.append((s.times[0] - s.sent) * 1000)
        for a, b in zip(s.times, s.times[1:], strict=False):
            g = (b - a) * 1000
            gaps.append(g)
            if a >= all_served:
                steady.append(g)
        if not s.finished:
            failed += 1
            errors.append(s.error or "timed out")
        elif s.error:
            failed += 1
            errors.append(s.error)
        elif len(s.times) == TOKENS and s.text == ref:
            ok += 1
        elif s.text == ref:
            merged += 1
        else:
            lost += 1
    failed += len(connect_errors)
    stalls = sum(1 for g in gaps if g > STALL_MS)
    # held: no token lost (merged frames carry every token), no stall, errors < 0.1%;
    # exact: held with every frame as the upstream sent it (same count, same text).
    held = failed <= n * 0.001 and lost == 0 and stalls == 0
    exact = held and merged == 0
    return {
        "streams": n,
        "ok": ok,
        "merged": merged,
        "lost": lost,
        "failed": failed,
        "error_example": errors[0][:200] if errors else "",
        "gap_p50_ms": round(pct(gaps, 0.5), 3),
        "gap_p99_ms": round(pct(gaps, 0.99), 3),
        "gap_max_ms": round(max(gaps), 3) if gaps else None,
        "steady_gap_p50_ms": round(pct(steady, 0.5), 3) if steady else None,
        "steady_gap_p99_ms": round(pct(steady, 0.99), 3) if steady else None,
        "stalls": stalls,
        "ttft_p50_ms": round(pct(ttfts, 0.5), 3),
        "ttft_p99_ms": round(pct(ttfts, 0.99), 3),
        "duration_s": round(duration_s, 3),
        "cpu": cpu,
        "held": held,
        "exact": exact,
    }


async def in_flight(mock: Proc) -> int:
    status, body = await asyncio.to_thread(http_get, mock.port, "/mock/requests")
    records = json.loads(body) if status == 200 else []
    return sum(1 for r in records if r.get("status") == 200 and "ended" not in r)


async def drain(mock: Proc, max_s: float = 30.0) -> None:
    """Wait until the mock has no stream in flight (a gateway that does not close its
    upstream when the client leaves keeps them running)."""
    end = time.monotonic() + max_s
    while time.monotonic() < end and await in_flight(mock):
        await asyncio.sleep(0.5)


def fmt_run(r: dict[str, Any]) -> str:
    return (
        f"ok {r['ok']}/{r['streams']} merged {r['merged']} lost {r['lost']} failed {r['failed']}"
        f" gap p50 {r['gap_p50_ms']:.1f} p99 {r['gap_p99_ms']:.1f} max {r['gap_max_ms'] or 0:.0f}"
        f" ms, stalls {r['stalls']}, ttft p99 {r['ttft_p99_ms']:.1f} ms, cpu {r['cpu']}"
        + ("" if r["exact"] else "  NOT EXACT" if r["held"] else "  NOT HELD")
        + (f" {r['error_example'][:100]}" if r["error_example"] else "")
    )


async def measure_levels(
    targets: list[Target],
    ref: bytes,
    cfg: Config,
    procs: dict[str, Proc | None],
    mock: Proc,
) -> dict[str, dict[int, dict[str, Any]]]:
    levels = sorted(set(cfg.gap_levels) | set(cfg.ramp))
    runs: dict[str, dict[int, dict[str, Any]]] = {t.key: {} for t in targets}
    failed_at: dict[str, int] = {}
    for li, n in enumerate(levels):
        order = targets[li % len(targets) :] + targets[: li % len(targets)]
        for t in order:
            if t.key in failed_at and n not in cfg.gap_levels:
                continue
            gc.collect()
            r = await paced_run(t, n, ref, cfg, procs)
            runs[t.key][n] = r
            progress(f"  {n:>5} streams {t.key:<10} {fmt_run(r)}")
            if not r["held"] and t.key not in failed_at and n in cfg.ramp:
                failed_at[t.key] = n
            await drain(mock)
            await asyncio.sleep(0.5)
    lowest = min(cfg.ramp)
    for t in targets:  # down from the lowest level, until one is held frame-exact
        low = runs[t.key].get(lowest)
        if low is None or low["exact"]:
            continue
        for n in cfg.ramp_down:
            r = await paced_run(t, n, ref, cfg, procs)
            runs[t.key][n] = r
            progress(f"  {n:>5} streams {t.key:<10} {fmt_run(r)}")
            await drain(mock)
            await asyncio.sleep(0.5)
            if r["exact"]:
                break
    return runs


def most_held(
    runs: dict[int, dict[str, Any]], ramp: Sequence[int], key: str = "held"
) -> tuple[int, int | None]:
    """The most streams held (``key``: "held" or "exact") before the first failure of the
    ramp (ramp-down levels included), and the level that failed first (None: none)."""
    failed = next((n for n in sorted(ramp) if n in runs and not runs[n][key]), None)
    held = [n for n, r in runs.items() if r[key] and (failed is None or n < failed)]
    return (max(held) if held else 0), failed


async def mock_records(mock: Proc) -> list[dict[str, Any]]:
    status, body = await asyncio.to_thread(http_get, mock.port, "/mock/requests")
    return cast(list[dict[str, Any]], json.loads(body)) if status == 200 else []


async def disconnect_trial(t: Target, mock: Proc, mid: bool, wait_s: float) -> dict[str, Any]:
    model = "lorem" if mid else "lorem-wait"
    s = await open_stream(t.port, t.request(model, TOKENS), rst=False)
    try:
        if mid:
            while len(s.times) < 3:
                if s.done.done():
                    return {"error": s.error or "ended early"}
                await asyncio.sleep(0.005)
        else:
            await asyncio.sleep(0.5)
        records = await mock_records(mock)
        if not records or "ended" in records[-1] or records[-1].get("status") != 200:
            return {"error": f"no upstream request in flight: {records[-1:]}"}
        t_close = time.time()
        s.close()
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            await asyncio.sleep(0.01)
            last = (await mock_records(mock))[-1]
            if "ended" in last:
                ms = (float(last["ended"]) - t_close) * 1000
                return {"ms": round(ms, 2), "outcome": last.get("outcome", "")}
        return {"ms": None, "outcome": f"still running after {wait_s:g} s"}
    finally:
        s.close()


async def measure_disconnect(targets: list[Target], mock: Proc, cfg: Config) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t in targets:
        out[t.key] = {}
        for mid in (True, False):
            trials = []
            for _ in range(cfg.disconnect_trials):
                trials.append(await disconnect_trial(t, mock, mid, 6.0 if mid else 7.0))
                await drain(mock, 10)
            propagated = [
                x["ms"]
                for x in trials
                if x.get("ms") is not None and x["outcome"] == "disconnected"
            ]
            where = "mid_stream" if mid else "before_first_token"
            out[t.key][where] = {
                "trials": trials,
                "propagated": len(propagated),
                "median_ms": round(statistics.median(propagated), 2) if propagated else None,
                "max_ms": round(max(propagated), 2) if propagated else None,
            }
            progress(f"  disconnect {where:<18} {t.key:<10} {trials}")
    return out


async def settled_rss(proc: Proc) -> int:
    await asyncio.sleep(1.0)
    samples = []
    for _ in range(5):
        samples.append(proc.rss())
        await asyncio.sleep(0.2)
    return int(statistics.median(samples))


async def open_idle(t: Target, count: int, batch: int = 100) -> tuple[list[Stream], int]:
    request = t.request("lorem-idle", TOKENS)
    opened: list[Stream] = []
    first = 0
    while len(opened) < count:
        k = min(batch, count - len(opened))
        new = await asyncio.gather(
            *(open_stream(t.port, request) for _ in range(k)), return_exceptions=True
        )
        got = [s for s in new if isinstance(s, Stream)]
        opened += got
        if len(got) < k:
            break
        done, _ = await asyncio.wait([s.first for s in got], timeout=10)
        first += sum(1 for f in done if not f.exception())
    return opened, first


async def measure_idle(t: Target, n: int) -> dict[str, Any]:
    assert t.proc is not None
    warm, _ = await open_idle(t, 20)
    for s in warm:
        s.close()
    base = await settled_rss(t.proc)
    t0 = time.perf_counter()
    opened, first = await open_idle(t, n)
    open_s = time.perf_counter() - t0
    rss = await settled_rss(t.proc)
    alive = sum(1 for s in opened if not s.done.done())
    for s in opened:
        s.close()
    res = {
        "streams": n,
        "opened": len(opened),
        "with_first_token": first,
        "open_after_settle": alive,
        "baseline_mb": round(base / 1e6, 1),
        "rss_mb": round(rss / 1e6, 1),
        "kb_per_stream": round((rss - base) / n / KB, 1),
        "open_s": round(open_s, 2),
    }
    progress(f"  idle {t.key:<10} {res}")
    return res


# --------------------------------------------------------------------------- transport


TRANSPORT_WORKER = r"""
import asyncio, json, socket, sys, time
import uvloop
sources, tokens, runs = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = json.dumps({"model": "lorem", "messages": [{"role": "user", "content": "hi"}],
                   "stream": True, "max_tokens": tokens}).encode()
headers = {"content-type": "application/json", "x-mock-token-ms": "0"}

def raw_socket(port, url):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
              b"content-type: application/json\r\nx-mock-token-ms: 0\r\n"
              + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    n = 0; tail = b""
    while True:
        b = s.recv(1 << 20)
        if not b: break
        n += (tail + b).count(b"data: ") - tail.count(b"data: ")
        tail = b[-5:]
    s.close()
    return n

async def aiohttp_bare(port, url):
    import aiohttp
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as r:
            n = 0
            async for chunk in r.content.iter_any():
                n += len(chunk)
    return n

async def httpx_bare(port, url):
    import httpx
    async with httpx.AsyncClient(timeout=None) as client:
        async with client.stream("POST", url, content=body, headers=headers) as r:
            n = 0
            async for chunk in r.aiter_raw():
                n += len(chunk)
    return n

async def tokenrelay_provider(port, url):
    from tokenrelay.providers.base import ProviderConfig
    from tokenrelay.providers.http import HTTPProvider
    from tokenrelay.llm.model import Request, Message, TextPart
    p = HTTPProvider(ProviderConfig(name="m", kind="openai", base_url=url.rsplit("/chat", 1)[0],
                                    headers={"x-mock-token-ms": "0"}))
    req = Request(model="lorem", messages=(Message("user", (TextPart("hi"),)),), stream=True,
                  max_tokens=tokens)
    n = 0
    async for _ in p.stream(req, "lorem"):
        n += 1
    await p.aclose()
    return n

async def httpx_provider(port, url):
    import httpx
    from tokenrelay.llm.openai_chat import OPENAI_CHAT
    decoder = OPENAI_CHAT.decoder()
    n = 0
    async with httpx.AsyncClient(timeout=None) as client:
        async with client.stream("POST", url, content=body, headers=headers) as r:
            async for chunk in r.aiter_raw():
                n += len(decoder.feed(chunk))
            n += len(decoder.close())
    return n

async def main():
    cases = {"plain socket": None, "aiohttp bare": aiohttp_bare, "httpx bare": httpx_bare,
             "tokenrelay provider": tokenrelay_provider, "httpx provider": httpx_provider}
    out = {}
    for source, (port, url) in sources.items():
        events = raw_socket(port, url)
        best = {k: float("inf") for k in cases}
        counts = {}
        for name, fn in cases.items():  # warm-up
            counts[name] = raw_socket(port, url) if fn is None else await fn(port, url)
        for r in range(runs):
            for name, fn in cases.items():
                t0 = time.perf_counter()
                counts[name] = raw_socket(port, url) if fn is None else await fn(port, url)
                best[name] = min(best[name], time.perf_counter() - t0)
        out[source] = {"events": events, "best_s": best, "counts": counts}
    print(json.dumps(out))

uvloop.run(main())
"""


class Replay(asyncio.Protocol):
    """Answers every request with the same captured response, in one write, then closes."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.transport is None:
            return
        m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", self.buf[:end])
        if len(self.buf) - end - 4 < (int(m.group(1)) if m else 0):
            return  # the whole body first: closing with unread data would send RST
        self.transport.write(self.response)
        self.transport.close()
        self.transport = None


def capture(port: int, tokens: int) -> bytes:
    body = json.dumps(
        {
            "model": "lorem",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "max_tokens": tokens,
        }
    ).encode()
    with socket.create_connection((HOST, port)) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"content-type: application/json\r\nx-mock-token-ms: 0\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        parts = []
        while chunk := s.recv(1 << 20):
            parts.append(chunk)
    return b"".join(parts)


async def measure_transport(mock: Proc, cfg: Config) -> dict[str, Any]:
    """The worker reads from the mock itself and from a replay of its captured response
    served by this process (a source far faster than any reader)."""
    loop = asyncio.get_running_loop()
    response = await asyncio.to_thread(capture, mock.port, cfg.transport_tokens)
    server = await loop.create_server(lambda: Replay(response), HOST, 0)
    replay_port = server.sockets[0].getsockname()[1]
    path = "/v1/chat/completions"
    sources = {
        "mock": [mock.port, f"http://{HOST}:{mock.port}{path}"],
        "replay": [replay_port, f"http://{HOST}:{replay_port}{path}"],
    }
    cmd = [
        "taskset",
        "-c",
        str(GATEWAY_CPU),
        sys.executable,
        "-c",
        TRANSPORT_WORKER,
        json.dumps(sources),
        str(cfg.transport_tokens),
        str(cfg.transport_runs),
    ]
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 600)
    finally:
        server.close()
    if proc.returncode != 0:
        return {"error": stderr.decode(errors="replace")[-1000:]}
    res = cast(dict[str, Any], json.loads(stdout))
    for source, r in res.items():
        r["events_per_s"] = {k: round(r["events"] / v) for k, v in r["best_s"].items()}
        progress(f"  transport from {source}: {r['events_per_s']} ({r['events']} events)")
    return res


# --------------------------------------------------------------------------- report


def cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def versions(
    litellm: dict[str, str] | None, portkey: dict[str, str] | None = None
) -> dict[str, Any]:
    ours = {
        d: dist_version(d)
        for d in ("tokenrelay", "uvicorn", "uvloop", "httptools", "starlette", "aiohttp", "httpx")
    }
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--", "src")),
        "tokenrelay_env": ours,
        "litellm_env": litellm,
        "portkey_env": portkey,
    }


def ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.1f}x"


RIVALS = {  # the other gateways, by key
    "litellm": "LiteLLM",
    "portkey": "Portkey",
}


def beside(figures: dict[str, str]) -> str:
    """The rivals' figures after ours: " (LiteLLM x, Portkey y)", "" without any."""
    got = [f"{RIVALS[k]} {x}" for k, x in figures.items()]
    return f" ({', '.join(got)})" if got else ""


def report(res: dict[str, Any], cfg: Config) -> str:
    keys = [k for k in ("direct", "tokenrelay", *RIVALS) if k in res["levels"]]
    gws = [k for k in keys if k != "direct"]
    v = res["versions"]
    lines = [
        f"- date: {res['date']}; mode: {'quick' if cfg.quick else 'full'}; "
        f"benchmark time {res['elapsed_s']:.0f} s; load average at start "
        f"{v['load_avg_at_start'][0]:.2f}, at the end {res['load_avg_at_end'][0]:.2f}",
        f"- python: {v['python']} on {v['platform']}, {v['cpus']} CPUs ({v['cpu']}); "
        f"gateways pinned to CPU {GATEWAY_CPU}, mock and load client to CPU {HARNESS_CPU}",
        f"- tokenrelay {v['tokenrelay_env']['tokenrelay']} (commit {v['commit']}"
        f"{', src modified' if v['dirty'] else ''}): uvicorn {v['tokenrelay_env']['uvicorn']}, "
        f"uvloop {v['tokenrelay_env']['uvloop']}, httptools {v['tokenrelay_env']['httptools']}, "
        f"aiohttp {v['tokenrelay_env']['aiohttp']}",
    ]
    if v["litellm_env"]:
        le = v["litellm_env"]
        lines.append(
            "- LiteLLM proxy "
            + le.get("litellm", "?")
            + " (one worker, no database; "
            + ", ".join(f"{k} {x}" for k, x in le.items() if k != "litellm")
            + ")"
        )
    if v.get("portkey_env"):
        pk = v["portkey_env"]
        lines.append(
            f"- Portkey gateway {pk.get(PORTKEY_MODULE, '?')} (Node {pk.get('node', '?')}, "
            + ", ".join(f"{k} {x}" for k, x in pk.items() if k not in (PORTKEY_MODULE, "node"))
            + "; routed by request headers, `--headless`)"
        )
    lines += [
        f"- upstream: `tokenrelay mock --ttft-ms 0 --token-ms {TOKEN_MS:g}`, model `lorem`, "
        f"max_tokens {TOKENS}; streams opened over {SPREAD_S * 1000:g} ms; stall = gap > "
        f"{STALL_MS:g} ms",
        "",
        "### Added TTFT at one client",
        "",
        f"{cfg.ttft_rounds} interleaved rounds x {cfg.ttft_per_round} requests; "
        "median of round medians (ms).",
        "",
        "| contestant | TTFT | added | p99 (all requests) |",
        "|---|--:|--:|--:|",
    ]
    for k in keys:
        x = res["ttft"][k]
        added = "-" if k == "direct" else f"{x['added_ms']:+.2f}"
        lines.append(
            f"| {k} | {x['median_of_round_medians_ms']:.2f} | {added} | {x['p99_ms']:.2f} |"
        )
    lines += [
        "",
        "### Paced streams (64 tokens at 20 ms)",
        "",
        "Gaps between consecutive content frames, all streams (ms); added = gateway minus "
        "direct at the same concurrency. ok = every frame, same text; merged = same text in "
        "fewer frames; failed = refused, cut or timed out. CPU: share of a core used by the "
        "gateway / the mock / the load client.",
        "",
        "| streams | contestant | ok | merged/lost/failed | gap p50 | gap p99 | added p50 | "
        "added p99 | gap max | stalls | TTFT p99 | CPU gw/mock/client | held |",
        "|--:|---|--:|---|--:|--:|--:|--:|--:|--:|--:|---|---|",
    ]
    levels = sorted({n for k in keys for n in res["levels"][k]})
    for n in levels:
        d = res["levels"]["direct"].get(n)
        for k in keys:
            r = res["levels"][k].get(n)
            if r is None:
                continue
            cpu = r["cpu"]
            gw = cpu.get(k, 0.0) if k != "direct" else 0.0
            add50 = add99 = "-"
            if k != "direct" and d is not None:
                add50 = f"{r['gap_p50_ms'] - d['gap_p50_ms']:+.2f}"
                add99 = f"{r['gap_p99_ms'] - d['gap_p99_ms']:+.2f}"
            lines.append(
                f"| {n:,} | {k} | {r['ok']:,} | {r['merged']}/{r['lost']}/{r['failed']} | "
                f"{r['gap_p50_ms']:.2f} | {r['gap_p99_ms']:.2f} | {add50} | {add99} | "
                f"{r['gap_max_ms'] or 0:.0f} | {r['stalls']} | {r['ttft_p99_ms']:.1f} | "
                f"{gw:.0%}/{cpu.get('mock', 0):.0%}/{cpu.get('client', 0):.0%} | "
                f"{('yes' if r['exact'] else 'merged') if r['held'] else 'NO'} |"
            )
    lines += ["", "### Most concurrent streams held", ""]
    lines += [
        "held: no token lost, no gap over 10x the pace, errors under 0.1%; frame-exact: "
        "held, and every stream with the upstream's 64 frames (no merged deltas).",
        "",
        "| contestant | most held | first level not held | most held frame-exact | "
        "first level not exact | note |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for k in keys:
        m = res["most_held"][k]
        lines.append(
            f"| {k} | {m['held']:,} | {m['failed'] or '-'} | {m['exact']:,} | "
            f"{m['exact_failed'] or '-'} | {m['note']} |"
        )
    lines += [
        "",
        "### Memory per idle stream",
        "",
        "Fresh gateway process; N streams whose upstream sent one token and stalls; "
        "(RSS with N open - RSS idle) / N, KB = 1024 bytes.",
        "",
        "| contestant | N | with first token | baseline RSS | RSS | KB/stream |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for k in gws:
        m = res["idle"].get(k)
        if not m or "kb_per_stream" not in m:
            lines.append(f"| {k} | - | - | - | - | {m.get('error', '-') if m else '-'} |")
            continue
        lines.append(
            f"| {k} | {m['streams']:,} | {m['with_first_token']:,} | {m['baseline_mb']} MB | "
            f"{m['rss_mb']} MB | {m['kb_per_stream']} |"
        )
    lines += [
        "",
        "### Disconnect propagation (grace 0)",
        "",
        "ms from the client's close to the mock's end of that upstream request; "
        "propagated = the mock saw a disconnect (not its own end of the stream).",
        "",
        "| contestant | mid-stream: propagated | median | max | before the first token: "
        "propagated | median | max |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for k in keys:
        x = res["disconnect"][k]
        a, b = x["mid_stream"], x["before_first_token"]
        cells = []
        for w in (a, b):
            cells += [
                f"{w['propagated']}/{len(w['trials'])}",
                "-" if w["median_ms"] is None else f"{w['median_ms']:.1f}",
                "-" if w["max_ms"] is None else f"{w['max_ms']:.1f}",
            ]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    tr = res["transport"]
    if "replay" in tr:
        lines += [
            "",
            "### Upstream transport",
            "",
            f"One stream of {tr['replay']['events']:,} SSE events (`lorem`, "
            f"`x-mock-token-ms: 0`), read in a process on CPU {GATEWAY_CPU}, best of "
            f"{cfg.transport_runs}; events/s. From the mock as it writes, and from a replay "
            f"of its captured response in one write (from this process, CPU {HARNESS_CPU}). "
            "Provider path: tokenrelay = `HTTPProvider.stream` (deltas; over its own "
            "HTTP/1.1 pool since issue 19, aiohttp before); httpx = the same "
            "decoder fed from `aiter_raw()`.",
            "",
            "| reader | from the mock | x httpx | from the replay | x httpx |",
            "|---|--:|--:|--:|--:|",
        ]
        em, er = tr["mock"]["events_per_s"], tr["replay"]["events_per_s"]
        for name in em:
            cells = []
            for eps in (em, er):
                base = eps["httpx provider"] if "provider" in name else eps["httpx bare"]
                cells += [
                    f"{eps[name]:,}",
                    "-" if name == "plain socket" else ratio(eps[name], base),
                ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "### Targets", "", "| target | measured | result |", "|---|---|---|"]
    for t in res["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {t['result']} |")
    return "\n".join(lines) + "\n"


def targets_table(res: dict[str, Any], cfg: Config) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []

    def add(target: str, measured: str, ok: bool | None) -> None:
        result = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        out.append({"target": target, "measured": measured, "result": result})

    tt = res["ttft"]
    added = tt["tokenrelay"]["added_ms"]
    rivals = {k: f"{tt[k]['added_ms']:+.2f} ms" for k in RIVALS if k in tt}
    add("added TTFT p50 <= 1 ms at one client", f"{added:+.2f} ms{beside(rivals)}", added <= 1.0)
    lv = res["levels"]
    n256 = lv["tokenrelay"].get(256)
    d256 = lv["direct"].get(256)
    if n256 and d256:
        a99 = n256["gap_p99_ms"] - d256["gap_p99_ms"]
        rivals = {
            k: f"{lv[k][256]['gap_p99_ms'] - d256['gap_p99_ms']:+.1f} ms"
            for k in RIVALS
            if 256 in lv.get(k, {})
        }
        add(
            "added inter-token p99 <= 10 ms at 256 streams",
            f"{a99:+.2f} ms{beside(rivals)}",
            a99 <= 10,
        )
    mh = res["most_held"]
    ours = mh["tokenrelay"]["held"]
    if "litellm" in mh:
        theirs = mh["litellm"]["held"]
        add(
            ">= 10x LiteLLM's most concurrent streams",
            f"{ours:,} vs {theirs:,} ({ratio(ours, theirs)})",
            theirs > 0 and ours >= 10 * theirs,
        )
    add(
        "aim: 1,000 concurrent streams held",
        f"{ours:,}" + (f" ({mh['tokenrelay']['note']})" if mh["tokenrelay"]["note"] else ""),
        ours >= 1000,
    )
    idle = res["idle"].get("tokenrelay", {})
    if "kb_per_stream" in idle:
        rivals = {
            k: f"{res['idle'][k]['kb_per_stream']} KB"
            for k in RIVALS
            if "kb_per_stream" in res["idle"].get(k, {})
        }
        add(
            "idle memory per stream <= 40 KB (client + upstream connections)",
            f"{idle['kb_per_stream']} KB{beside(rivals)}",
            idle["kb_per_stream"] <= 40,
        )
    dc = res["disconnect"]["tokenrelay"]
    for where, label in (("mid_stream", "mid-stream"), ("before_first_token", "before 1st token")):
        w = dc[where]
        n = len(w["trials"])
        ok = w["propagated"] == n and w["max_ms"] is not None and w["max_ms"] <= 100
        add(
            f"disconnect {label}: upstream closed within 100 ms (grace 0)",
            f"{w['propagated']}/{n} propagated, max {w['max_ms']} ms",
            ok,
        )
    eps = res["transport"].get("replay", {}).get("events_per_s")
    if eps:
        add(
            "upstream transport: the faster reader (provider path)",
            f"tokenrelay {eps['tokenrelay provider']:,} vs httpx {eps['httpx provider']:,} "
            f"events/s ({ratio(eps['tokenrelay provider'], eps['httpx provider'])})",
            eps["tokenrelay provider"] >= eps["httpx provider"],
        )
    return out


# --------------------------------------------------------------------------- main


async def run(cfg: Config, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    os.sched_setaffinity(0, {HARNESS_CPU})
    nofile = raise_nofile()
    progress(f"RLIMIT_NOFILE {nofile}")
    venv = Path(args.litellm_venv)
    use_litellm = not args.no_litellm
    le_versions = litellm_versions(venv) if use_litellm else None
    if use_litellm and le_versions and le_versions.get("litellm") == "not installed":
        raise SystemExit(f"LiteLLM is not installed in {venv} (or pass --no-litellm)")
    portkey_dir = Path(args.portkey_dir)
    pk_versions = None if args.no_portkey else portkey_versions(portkey_dir)
    use_portkey = pk_versions is not None
    if not args.no_portkey and not use_portkey:
        progress(
            f"Portkey (or Node) is not installed in {portkey_dir}: going on without it "
            "(see How to run in this script's docstring, or pass --no-portkey)"
        )
    res: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "config": asdict(cfg),
        "versions": versions(le_versions, pk_versions),
        "method": {
            "tokens": TOKENS,
            "token_ms": TOKEN_MS,
            "stall_ms": STALL_MS,
            "spread_s": SPREAD_S,
            "sources": SOURCES,
        },
    }
    gc.disable()
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    procs: list[Proc] = []
    try:
        mock = start_mock()
        procs.append(mock)
        tr = start_tokenrelay(mock.port, workdir)
        procs.append(tr)
        targets = [Target("direct", mock.port, None), Target("tokenrelay", tr.port, tr)]
        le: Proc | None = None
        if use_litellm:
            progress("starting LiteLLM ...")
            le = start_litellm(venv, mock.port, workdir)
            procs.append(le)
            targets.append(Target("litellm", le.port, le))
        pk: Proc | None = None
        if use_portkey:
            progress("starting Portkey ...")
            pk = start_portkey(portkey_dir, workdir)
            procs.append(pk)
            targets.append(Target("portkey", pk.port, pk, portkey_headers(mock.port)))
        meters = {"mock": mock, "tokenrelay": tr, "litellm": le, "portkey": pk}
        progress(
            f"mock :{mock.port}, tokenrelay :{tr.port}"
            + (f", litellm :{le.port}" if le else "")
            + (f", portkey :{pk.port}" if pk else "")
        )
        ref = await reference_text(targets[0])
        for t in targets[1:]:
            s = await open_stream(t.port, t.request("lorem", TOKENS))
            await asyncio.wait_for(s.done, 30)
            s.close()
            progress(f"  fidelity {t.key}: {len(s.times)} frames, same text: {s.text == ref}")
        progress("added TTFT ...")
        res["ttft"] = await measure_ttft(targets, cfg)
        progress("paced streams ...")
        levels = await measure_levels(targets, ref, cfg, meters, mock)
        res["levels"] = levels
        most: dict[str, Any] = {}
        for t in targets:
            held, failed = most_held(levels[t.key], cfg.ramp)
            note = ""
            direct_failed = most_held(levels["direct"], cfg.ramp)[1]
            if failed is None:
                note = f"held every level run (up to {max(levels[t.key]):,}): harness-bound"
            elif direct_failed is not None and failed >= direct_failed:
                note = f"the direct run failed at {direct_failed:,} too: harness-bound"
            exact, exact_failed = most_held(levels[t.key], [*cfg.ramp, *cfg.ramp_down], "exact")
            most[t.key] = {
                "held": held,
                "failed": failed,
                "note": note,
                "exact": exact,
                "exact_failed": exact_failed,
            }
        res["most_held"] = most
        progress("disconnect propagation ...")
        res["disconnect"] = await measure_disconnect(targets, mock, cfg)
        for p in (tr, le, pk):
            if p is not None:
                p.stop()
                procs.remove(p)
        await drain(mock, 15)
        progress("idle memory (fresh gateway processes) ...")
        res["idle"] = {}
        fresh = [("tokenrelay", lambda: start_tokenrelay(mock.port, workdir))]
        if use_litellm:
            fresh.append(("litellm", lambda: start_litellm(venv, mock.port, workdir)))
        if use_portkey:
            fresh.append(("portkey", lambda: start_portkey(portkey_dir, workdir)))
        headers = {"portkey": portkey_headers(mock.port)}
        for key, start in fresh:
            p = start()
            procs.append(p)
            t = Target(key, p.port, p, headers.get(key, ""))
            try:
                res["idle"][key] = await measure_idle(t, cfg.idle_streams)
            except (OSError, ConnectionError, TimeoutError) as exc:
                res["idle"][key] = {"error": repr(exc)}
            p.stop()
            procs.remove(p)
            await drain(mock, 10)
        progress("upstream transport ...")
        res["transport"] = await measure_transport(mock, cfg)
    finally:
        for p in procs:
            p.stop()
    res["elapsed_s"] = time.perf_counter() - started
    res["load_avg_at_end"] = os.getloadavg()
    res["targets"] = targets_table(res, cfg)
    return res


async def run_only(args: argparse.Namespace) -> dict[str, Any]:
    """``--only``: just the paced runs at ``--streams`` (direct and tokenrelay alternated,
    ``--repeat`` times) and/or idle memory at ``--idle-streams``: for before/after
    measurements of one change. No LiteLLM, no Portkey, no report tables."""
    os.sched_setaffinity(0, {HARNESS_CPU})
    raise_nofile()
    parts = set(args.only.split(","))
    unknown = parts - {"gaps", "idle", "ttft"}
    if unknown:
        raise SystemExit(f"--only takes gaps, idle and/or ttft, not {sorted(unknown)}")
    cfg = Config(ttft_rounds=args.ttft_rounds, ttft_tokens=args.ttft_tokens)
    res: dict[str, Any] = {"load_avg_at_start": os.getloadavg(), "git": git("rev-parse", "HEAD")}
    gc.disable()
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    procs: list[Proc] = []
    try:
        mock = start_mock()
        procs.append(mock)
        if "ttft" in parts:  # the gateways side by side: both run all along, one core
            tr = start_tokenrelay(mock.port, workdir)
            procs.append(tr)
            targets = [Target("direct", mock.port, None), Target("tokenrelay", tr.port, tr)]
            if args.baseline:
                old = start_tokenrelay(mock.port, workdir, args.baseline)
                procs.append(old)
                targets.append(Target("baseline", old.port, old))
            if args.floors:
                for mode in ("bytes", "codecs"):
                    floor = start_floor(mock.port, mode)
                    procs.append(floor)
                    targets.append(Target(floor.name, floor.port, floor))
            res["ttft"] = await measure_ttft(targets, cfg)
            for t in targets[1:]:
                assert t.proc is not None
                t.proc.stop()
                procs.remove(t.proc)
        if "gaps" in parts:
            tr = start_tokenrelay(mock.port, workdir)
            procs.append(tr)
            direct, relay = Target("direct", mock.port, None), Target("tokenrelay", tr.port, tr)
            meters = {"mock": mock, "tokenrelay": tr, "litellm": None}
            ref = await reference_text(direct)
            s = await open_stream(tr.port, relay.request("lorem", TOKENS))
            await asyncio.wait_for(s.done, 30)
            s.close()
            runs: list[dict[str, Any]] = []
            for i in range(args.repeat):
                pair = {}
                for t in (direct, relay):
                    gc.collect()
                    pair[t.key] = r = await paced_run(t, args.streams, ref, cfg, meters)
                    progress(f"  {args.streams:>5} streams {t.key:<10} {fmt_run(r)}")
                    await drain(mock)
                    await asyncio.sleep(0.5)
                added = pair["tokenrelay"]["gap_p99_ms"] - pair["direct"]["gap_p99_ms"]
                progress(f"  run {i + 1}: added gap p99 {added:+.2f} ms")
                runs.append({**pair, "added_p99_ms": round(added, 3)})
            res["gaps"] = runs
            tr.stop()
            procs.remove(tr)
            await drain(mock, 15)
        if "idle" in parts:
            p = start_tokenrelay(mock.port, workdir)
            procs.append(p)
            res["idle"] = await measure_idle(Target("tokenrelay", p.port, p), args.idle_streams)
            p.stop()
            procs.remove(p)
    finally:
        for p in procs:
            p.stop()
    res["load_avg_at_end"] = os.getloadavg()
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~2 min)")
    parser.add_argument(
        "--only",
        default="",
        help="gaps, idle and/or ttft (comma-separated): just those measures, tokenrelay and "
        "direct, a JSON summary on stdout (for before/after comparisons)",
    )
    parser.add_argument("--streams", type=int, default=256, help="--only gaps: concurrency")
    parser.add_argument("--repeat", type=int, default=3, help="--only gaps: paired runs")
    parser.add_argument("--idle-streams", type=int, default=1000, help="--only idle: N")
    parser.add_argument(
        "--baseline", default="", help="--only ttft: also another tokenrelay tree's src folder"
    )
    parser.add_argument("--ttft-rounds", type=int, default=15, help="--only ttft: rounds")
    parser.add_argument(
        "--ttft-tokens",
        type=int,
        default=2,
        help="--only ttft: max_tokens per request (1: the whole answer comes in one read)",
    )
    parser.add_argument(
        "--floors",
        action="store_true",
        help="--only ttft: also relay_floor.py's byte relay and codecs relay (kept-alive upstream)",
    )
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--litellm-venv", default=DEFAULT_LITELLM_VENV)
    parser.add_argument("--no-portkey", action="store_true", help="leave Portkey out")
    parser.add_argument(
        "--portkey-dir", default=DEFAULT_PORTKEY_DIR, help="the npm install --prefix folder"
    )
    parser.add_argument("--json", default="", help="where to write the results (JSON)")
    args = parser.parse_args()
    cfg = QUICK if args.quick else Config()
    try:
        import uvloop
    except ImportError:
        raise SystemExit("needs uvloop: pip install -e '.[bench,gateway]'") from None
    if args.only:
        with deadline(1200):
            only = uvloop.run(run_only(args))
        sys.stdout.write(json.dumps(only, default=str) + "\n")
        return
    try:
        with deadline(cfg.max_s):
            res = uvloop.run(run(cfg, args))
    except RunTimeout:
        raise SystemExit(f"the benchmark ran over {cfg.max_s:g} s") from None
    out = Path(args.json) if args.json else None
    if out is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H%M")
        out = (
            REPO_ROOT / "bench" / "results" / f"gateway-{stamp}{'-quick' if cfg.quick else ''}.json"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str) + "\n")
    progress(f"results: {out}")
    sys.stdout.write(report(res, cfg))


if __name__ == "__main__":
    main()
