"""Running the fake LLM: in the foreground (``tokenrelay mock``) or in a thread for tests."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any

from .app import MockApp, MockConfig

__all__ = ["MockServer", "run"]


def _server(app: MockApp, host: str, port: int, log_level: str) -> Any:
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - depends on the installation
        raise SystemExit(
            "the fake LLM server needs uvicorn: pip install 'tokenrelay[mock]'"
        ) from None
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="off", access_log=False
    )
    return uvicorn.Server(config)


def run(
    config: MockConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 9000,
    log_level: str = "info",
) -> None:
    """Serve the fake LLM until interrupted."""
    _server(MockApp(config), host, port, log_level).run()


class MockServer:
    """The fake LLM on a free loopback port, in a background thread::

        with MockServer(MockConfig(token_ms=5)) as mock:
            client = openai.OpenAI(base_url=mock.url + "/v1", api_key="unused")

    ``app.records`` tells what happened to each request.
    """

    def __init__(
        self, config: MockConfig | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = MockApp(config)
        self.host = host
        self.port = port
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> MockServer:
        self._server = _server(self.app, self.host, self.port, "warning")
        self._thread = threading.Thread(
            target=self._server.run, name="tokenrelay-mock", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the mock server did not start")
            time.sleep(0.005)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://{self.host}:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(10)
