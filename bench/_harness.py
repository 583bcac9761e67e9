"""What the benchmark scripts in bench/ share: versions, git state, a time limit per run.

The scripts run as ``python bench/<name>.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

__all__ = [
    "HARNESS",
    "REPO_ROOT",
    "RunTimeout",
    "cpu_ticks",
    "deadline",
    "dist_version",
    "git",
    "harness_gateway_config",
    "start_harness_upstream",
    "syscalls",
    "wait_port",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).parent / "harness"  # the C upstream and load client (make)


def harness_gateway_config(work: Path, upstream_port: int, pace_ms: float | None = None) -> Path:
    """A gateway configuration in ``work``: model ``m`` on the C upstream, no request log
    (``pace_ms``: that, not the default)."""
    config = work / "gateway.toml"
    pace = "" if pace_ms is None else f"pace_ms = {pace_ms:g}\n"
    config.write_text(
        f"[gateway]\nlog_requests = false\n{pace}\n[[providers]]\n"
        f'name = "up"\nkind = "openai"\nbase_url = "http://127.0.0.1:{upstream_port}/v1"\n\n'
        '[[models]]\nname = "m"\nroute = ["up:m"]\n'
    )
    return config


def start_harness_upstream(port: int, tokens: int, token_ms: int) -> subprocess.Popen[bytes]:
    """The C upstream on CPU 0: ``tokens`` tokens at ``token_ms`` per stream."""
    return subprocess.Popen(
        ["taskset", "-c", "0", str(HARNESS / "upstream"), str(port), str(tokens),
         str(token_ms), "127.0.0.1"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


class RunTimeout(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise RunTimeout in the main thread after ``seconds`` (POSIX only; else no limit)."""
    if seconds <= 0 or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise RunTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def cpu_ticks(pid: int) -> tuple[int, int]:
    """A process's user and system CPU time so far, in clock ticks (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def syscalls(pid: int) -> tuple[int, int]:
    """A process's read and write system calls so far, sockets included (Linux)."""
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(io["syscr"]), int(io["syscw"])


def wait_port(port: int, what: str, seconds: float = 60.0) -> None:
    """Until something accepts connections on loopback ``port`` (exits after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"{what} did not start")
            time.sleep(0.1)


def print_medians(times: dict[str, list[float]], reference: str, heading: str, digits: int) -> None:
    """A markdown table: each contestant's median and p90 of ``times``, and its median
    over ``reference``'s."""
    base = statistics.median(times[reference])
    print(f"| {heading} | median | p90 | over {reference} |\n|---|--:|--:|--:|")
    for name, ts in times.items():
        p90 = sorted(ts)[int(0.9 * (len(ts) - 1))]
        median = statistics.median(ts)
        over = "-" if name == reference else f"{median - base:+.{digits}f}"
        print(f"| {name} | {median:.{digits}f} | {p90:.{digits}f} | {over} |")
