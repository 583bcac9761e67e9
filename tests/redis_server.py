"""A real ``redis-server`` on a free loopback port, for the tests that need Redis.

No persistence (``--save '' --appendonly no``), its files in a temporary directory. It can
be stopped and started again on the same port, empty: a Redis restart as a gateway sees
it. Where ``redis-server`` is not installed the tests that need it skip, except in CI
(``CI`` set), where they fail: CI installs it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.required import missing

__all__ = ["RedisServer", "redis_server", "redis_server_path"]


def redis_server_path() -> str | None:
    """The ``redis-server`` to run: ``TOKENRELAY_REDIS_SERVER``, else the one on PATH."""
    for candidate in (os.environ.get("TOKENRELAY_REDIS_SERVER"), "redis-server"):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command(port: int, command: bytes) -> bytes:
    """One inline command over a fresh connection, and the first line of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
        s.sendall(command + b"\r\n")
        answer = b""
        while not answer.endswith(b"\r\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        return answer.strip()


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:port``; ``url(db)`` names a database."""

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start it (empty) on its port, and return once it answers PING."""
        if self.running:
            return
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "no",
            "dir": str(self.directory),
            "logfile": str(self.directory / "redis.log"),
        }
        self._process = subprocess.Popen(
            [self.executable, *(x for k, v in options.items() for x in (f"--{k}", v))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                if _command(self.port, b"PING") == b"+PONG":
                    return
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.directory / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{tail}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop it (SIGTERM, then wait); what it held is lost."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def flush(self) -> None:
        """Empty every database."""
        answer = _command(self.port, b"FLUSHALL")
        if answer != b"+OK":
            raise RuntimeError(f"FLUSHALL answered {answer!r}")


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A running ``RedisServer``, stopped at the end (skips, or fails in CI, without one)."""
    executable = redis_server_path()
    if executable is None:
        missing("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="tokenrelay-redis-") as directory:
        server = RedisServer(executable, Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.stop()
