"""What the benchmark scripts in bench/ share: versions, git state, a time limit per run.

The scripts run as ``python bench/<name>.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

__all__ = ["REPO_ROOT", "RunTimeout", "deadline", "dist_version", "git"]

REPO_ROOT = Path(__file__).resolve().parents[1]


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
