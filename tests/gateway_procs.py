"""``tokenrelay serve`` and ``tokenrelay mock`` as users run them: real processes on
loopback ports, each in a process group of its own so a test can SIGTERM or SIGKILL it
(and everything it spawned, e.g. ``serve --workers``) by its id, and the teardown kills
whatever is left even when the test failed.

``Procs`` (the ``procs`` fixture of the tests that use it) owns every process a test
starts. ``gateway_toml`` writes the small configuration files those tests need.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx

from tests.asgi_servers import free_port

__all__ = ["Proc", "Procs", "gateway_toml", "mock_records", "procs_running"]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def gateway_toml(
    *,
    gateway: Mapping[str, Any],
    store: Mapping[str, Any] | None = None,
    provider: Mapping[str, Any],
    models: Mapping[str, str],
) -> str:
    """A configuration with one provider, ``models`` (name -> "provider:model"), the
    ``[gateway]`` settings and an optional ``[gateway.store]`` table."""
    lines = ["[gateway]", *(f"{k} = {_toml_value(v)}" for k, v in gateway.items())]
    if store:
        lines += ["", "[gateway.store]", *(f"{k} = {_toml_value(v)}" for k, v in store.items())]
    lines += ["", "[[providers]]", *(f"{k} = {_toml_value(v)}" for k, v in provider.items())]
    for name, route in models.items():
        lines += [
            "",
            "[[models]]",
            f"name = {_toml_value(name)}",
            f"route = [{_toml_value(route)}]",
        ]
    return "\n".join(lines) + "\n"


class Proc:
    """One process started by a test, leader of its own process group; its stderr goes
    to a file (``log()``) so a chatty process never blocks on a full pipe."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log: Path,
        port: int,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.args = args
        self.log_path = log
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            start_new_session=True,  # its own process group: pid == pgid
            env={**os.environ, **(env or {})},
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, path: str = "/readyz", timeout: float = 30.0) -> None:
        """Until ``GET path`` answers 200 (the process exiting first fails, with its log)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return
            if not self.alive() or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not become ready:\n{self.log()[-3000:]}")
            time.sleep(0.03)

    def terminate(self) -> None:
        """SIGTERM to the process itself (``serve --workers`` passes it on)."""
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)

    def kill_group(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """``sig`` to the whole process group (the process and what it spawned)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def cleanup(self) -> None:
        """Whatever is left of the group: SIGKILL, and reap the leader."""
        self.kill_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        self._log.close()


class Procs:
    """The processes of one test, every one killed (by process group) at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[Proc] = []

    def _start(
        self, name: str, args: list[str], port: int, env: Mapping[str, str] | None = None
    ) -> Proc:
        proc = Proc(name, args, self.directory / f"{name}.log", port, env)
        self.started.append(proc)
        return proc

    def gateway(
        self,
        name: str,
        config: str,
        *,
        store: str | None = None,
        port: int | None = None,
        workers: int = 1,
        drain_seconds: float | None = None,
        env: Mapping[str, str] | None = None,
        ready: bool = True,
    ) -> Proc:
        """``tokenrelay serve --config FILE`` (``config``: the file's text) on ``port`` (a
        free one unless given), with ``--store``, ``--workers``, ``--drain-seconds``."""
        path = self.directory / f"{name}.toml"
        path.write_text(config)
        port = port or free_port()
        args = [sys.executable, "-m", "tokenrelay", "serve", "--config", str(path)]
        args += ["--port", str(port), "--log-level", "warning"]
        if store is not None:
            args += ["--store", store]
        if workers != 1:
            args += ["--workers", str(workers)]
        if drain_seconds is not None:
            args += ["--drain-seconds", f"{drain_seconds:g}"]
        proc = self._start(name, args, port, env)
        if ready:
            proc.wait_ready()
        return proc

    def mock(self, name: str = "mock", *, token_ms: float = 10) -> Proc:
        """``tokenrelay mock --token-ms``: the fake LLM as a process of its own."""
        port = free_port()
        args = [sys.executable, "-m", "tokenrelay", "mock", "--port", str(port)]
        args += ["--token-ms", f"{token_ms:g}", "--log-level", "warning"]
        proc = self._start(name, args, port)
        proc.wait_ready("/mock/requests")
        return proc

    def cleanup(self) -> None:
        for proc in reversed(self.started):
            proc.cleanup()


@contextlib.contextmanager
def procs_running(directory: Path) -> Iterator[Procs]:
    procs = Procs(directory)
    try:
        yield procs
    finally:
        procs.cleanup()


def mock_records(mock: Proc) -> list[dict[str, Any]]:
    """What happened to each request of a ``tokenrelay mock`` process, oldest first."""
    records: list[dict[str, Any]] = httpx.get(mock.url + "/mock/requests", timeout=5).json()
    return records
