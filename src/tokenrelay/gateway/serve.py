"""``serve(config, ...)``: run the gateway on uvicorn, in one process or in ``workers``
processes sharing one listening socket and one stream store.

With workers, this process binds the socket, starts the workers (``spawn``: each one a
fresh interpreter that builds its own app) and watches them: a worker that dies is
started again under the same instance name, so it ends at once what its predecessor left
running. SIGTERM or SIGINT is passed on to every worker, which stops taking new streams,
lets running generations finish for the drain time, ends the rest as interrupted, and
exits. ``/metrics`` on any worker shows every worker (prometheus-client's multiprocess
mode, in a directory of this process's making).
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

from .config import GatewayConfig

__all__ = ["default_instance_name", "default_state_dir", "serve"]


def default_state_dir() -> Path:
    """Where ``serve --workers`` keeps its SQLite store when none is configured:
    ``$TOKENRELAY_STATE_DIR``, else ``$XDG_STATE_HOME/tokenrelay``, else
    ``~/.local/state/tokenrelay``."""
    explicit = os.environ.get("TOKENRELAY_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tokenrelay"


def default_instance_name(port: int) -> str:
    """A stable name for this host and port: a restart under it ends what the previous
    run left running at once, instead of after the lease."""
    return f"{socket.gethostname()}:{port}"


def _uvicorn_config(app: Any, log_level: str, config: GatewayConfig, **kw: Any) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        # Open streams end at once on shutdown (server.shutdown); the drain happens in
        # the app's lifespan, after the connections are closed.
        timeout_graceful_shutdown=5,
        **kw,
    )


def serve(
    config: GatewayConfig, *, host: str, port: int, workers: int = 1, log_level: str = "info"
) -> None:
    """Serve until SIGTERM or SIGINT (see the module docstring)."""
    from .app import create_app

    if not config.instance:
        config = dataclasses.replace(config, instance=default_instance_name(port))
    _log_requests(config)
    if workers <= 1:
        import uvicorn

        server = uvicorn.Server(
            _uvicorn_config(
                create_app(config, freeze_gc=True), log_level, config, host=host, port=port
            )
        )
        server.run()
        return
    _supervise(config, host=host, port=port, workers=workers, log_level=log_level)


def _log_requests(config: GatewayConfig) -> None:
    """Request lines to stderr, in the configured format (``requestlog``)."""
    if config.log_requests:
        from .requestlog import configure

        configure("json" if config.log_format == "json" else "text")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker(
    config: GatewayConfig, sock: socket.socket, index: int, log_level: str
) -> None:  # pragma: no cover - runs in a worker process (tested through it)
    import uvicorn

    from .app import create_app

    config = dataclasses.replace(config, instance=f"{config.instance}/w{index}")
    _log_requests(config)
    app = create_app(config, freeze_gc=True)
    uvicorn.Server(_uvicorn_config(app, log_level, config)).run(sockets=[sock])


def _supervise(
    config: GatewayConfig, *, host: str, port: int, workers: int, log_level: str
) -> None:
    metrics_dir = tempfile.mkdtemp(prefix="tokenrelay-metrics-")
    # Read by prometheus-client when a worker imports it: every worker writes its
    # samples to files there, and any worker's /metrics adds them all up.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    sock = _bind(host, port)
    ctx = multiprocessing.get_context("spawn")
    procs: dict[int, Any] = {}
    stopping = False

    def start(index: int) -> None:
        proc = ctx.Process(
            target=_worker, args=(config, sock, index, log_level), name=f"tokenrelay-w{index}"
        )
        proc.start()
        procs[index] = proc

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(workers):
            start(index)
        while not stopping:
            time.sleep(0.2)
            for index, proc in list(procs.items()):
                if not proc.is_alive() and not stopping:
                    _mark_dead(proc.pid)
                    start(index)  # the same name: it ends what the dead one left running
        deadline = time.monotonic() + config.drain_seconds + 15
        for proc in procs.values():
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc in procs.values():
            if proc.is_alive():
                proc.kill()
                proc.join(5)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _mark_dead(pid: int | None) -> None:
    if pid is None:
        return
    with contextlib.suppress(Exception):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
