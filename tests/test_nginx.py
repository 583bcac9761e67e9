"""The gateway behind a real nginx, as docs/nginx.md promises: Debian's nginx started by
the test (as the current user, everything it writes in ``tmp_path``) on a free loopback
port, in front of a real ``tokenrelay serve`` process whose upstream is a ``tokenrelay
mock`` process where a test needs to see what happened upstream.

Every test runs behind two fronts: ``plain`` (a bare ``proxy_pass``, so nginx's defaults:
``proxy_buffering on``, HTTP/1.0 upstream, HTTP/1.1 to the client) and ``documented``
(the configuration in docs/nginx.md, read out of the page, over TLS, the client speaking
HTTP/2 to it).

What they show: tokens come through as they are generated (arrival gaps through nginx
within a few ms of direct); a resume by ``Last-Event-ID`` through nginx has no gap and no
duplicate; a client disconnect through nginx cancels the upstream about as fast as one
made directly; the chat page and plain requests work; many streams share one HTTP/2
connection.

nginx missing: the tests fail under ``CI=true`` and are skipped otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.asgi_servers import free_port
from tests.gateway_procs import Proc, Procs, mock_records, procs_running
from tests.required import missing
from tokenrelay.llm import Request, TextDelta
from tokenrelay.mock.script import script
from tokenrelay.sse import Decoder, Event

DOC = Path(__file__).resolve().parent.parent / "docs" / "nginx.md"
CHAT = "/v1/chat/completions"
TOKEN_MS = 20  # the gateway's own fake model: a token every 20 ms, deadline-paced
UPSTREAM_TOKEN_MS = 10  # the tokenrelay mock process behind the gateway
GRACE = 1.0  # the gateway's grace_seconds
FRONTS = ["plain", "documented"]  # every test; "gzip" too where tokens are timed


# --- nginx -------------------------------------------------------------------------------------


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        missing("nginx is not installed (CI installs Debian's nginx)")
    return found


def nginx_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10).stderr
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    assert match, out
    return tuple(int(part) for part in match.groups())


def documented_conf() -> str:
    """The ```nginx block after ``<!-- nginx-conf -->`` in docs/nginx.md."""
    text = DOC.read_text()
    marker = text.index("<!-- nginx-conf -->")
    start = text.index("```nginx\n", marker) + len("```nginx\n")
    return text[start : text.index("```", start)]


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"docs/nginx.md's configuration no longer has {old!r}"
    return text.replace(old, new)


class Nginx:
    """nginx as the current user, ``server`` (http-level configuration) its whole site:
    pid, logs and temporary files in ``directory``; ``close()`` kills its process group."""

    def __init__(self, binary: str, directory: Path, site: str, port: int, scheme: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.url = f"{scheme}://127.0.0.1:{port}"
        user = ""
        if os.geteuid() == 0:  # else nginx's workers would become "nobody"
            import grp
            import pwd

            user = (
                f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
            )
        temp = "\n".join(
            f"    {kind}_temp_path {directory / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        self.conf = directory / "nginx.conf"
        self.conf.write_text(
            f"{user}\n"
            f"pid {directory / 'nginx.pid'};\n"
            f"error_log {directory / 'error.log'} info;\n"
            "worker_processes 1;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"    access_log {directory / 'access.log'};\n"
            f"{temp}\n"
            f"{site}\n"
            "}\n"
        )
        self._log = (directory / "stderr.log").open("ab")
        self.process = subprocess.Popen(
            [binary, "-p", f"{directory}/", "-c", str(self.conf), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,  # master and workers: one process group, killed together
        )

    def log(self) -> str:
        self._log.flush()
        parts = [self.directory / "stderr.log", self.directory / "error.log"]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def wait_ready(self, client: httpx.Client, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                if client.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nginx did not become ready:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)  # nginx's fast shutdown
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left of the group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        self._log.close()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and its key), by Debian's openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        missing("openssl is not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def plain_site(port: int, gateway_port: int, extra: str = "") -> str:
    """What the issue tried by hand: a bare proxy_pass, every other setting nginx's own
    (and ``extra``)."""
    return (
        "server {\n"
        f"    listen 127.0.0.1:{port};\n"
        f"    {extra}\n"
        f"    location / {{ proxy_pass http://127.0.0.1:{gateway_port}; }}\n"
        "}\n"
    )


# Streams compressed: nginx holds a gzipped response until its end unless the response
# turns buffering off (X-Accel-Buffering: no), and then flushes the compressor per event.
GZIP = "gzip on; gzip_types text/event-stream application/x-ndjson;"


def documented_site(
    port: int, gateway_port: int, cert: Path, key: Path, version: tuple[int, ...]
) -> str:
    """docs/nginx.md's configuration, changed only where a test must: the upstream's port,
    the listen address, the certificates (and ``http2 on`` before nginx 1.25.1)."""
    conf = documented_conf()
    conf = replace_once(conf, "server 127.0.0.1:8080;", f"server 127.0.0.1:{gateway_port};")
    listen = f"listen 127.0.0.1:{port} ssl"
    if version < (1, 25, 1):
        conf = replace_once(conf, "    http2 on;\n", "")
        listen += " http2"
    conf = replace_once(conf, "listen 443 ssl;", listen + ";")
    conf = replace_once(conf, "/etc/ssl/certs/chat.example.com.pem", str(cert))
    return replace_once(conf, "/etc/ssl/private/chat.example.com.key", str(key))


# --- the processes (one set per module) --------------------------------------------------------


@dataclass
class Front:
    """One way to reach the gateway: directly or through an nginx."""

    name: str
    url: str
    verify: ssl.SSLContext | bool = True
    http2: bool = False
    cafile: Path | None = None

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(verify=self.verify, http2=self.http2, timeout=30, **kw)

    def async_client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=self.verify, http2=self.http2, timeout=30, **kw)


@dataclass
class Setup:
    mock: Proc
    gateway: Proc
    direct: Front
    fronts: dict[str, Front]
    nginx: dict[str, Nginx]


def gateway_config(mock: Proc) -> str:
    return f"""\
[gateway]
grace_seconds = {GRACE}

[[providers]]
name = "fake"
kind = "mock"
options = {{ token_ms = {TOKEN_MS} }}

[[providers]]
name = "up"
kind = "openai"
base_url = "{mock.url}/v1"

[[models]]
name = "lorem"
route = ["fake:lorem"]

[[models]]
name = "upstream-lorem"
route = ["up:lorem"]
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    binary = nginx_binary()
    directory = tmp_path_factory.mktemp("nginx")
    with procs_running(directory) as procs, contextlib.ExitStack() as stack:
        yield start(binary, directory, procs, stack)


def start(binary: str, directory: Path, procs: Procs, stack: contextlib.ExitStack) -> Setup:
    mock = procs.mock(token_ms=UPSTREAM_TOKEN_MS)
    gateway = procs.gateway("gateway", gateway_config(mock))
    cert, key = self_signed(directory)
    verify = ssl.create_default_context(cafile=str(cert))
    fronts = {
        "plain": Front("plain", ""),
        "gzip": Front("gzip", ""),
        "documented": Front("documented", "", verify, http2=True, cafile=cert),
    }
    sites = {
        "plain": lambda port: plain_site(port, gateway.port),
        "gzip": lambda port: plain_site(port, gateway.port, GZIP),
        "documented": lambda port: documented_site(
            port, gateway.port, cert, key, nginx_version(binary)
        ),
    }
    started: dict[str, Nginx] = {}
    for name, front in fronts.items():
        port = free_port()
        scheme = "https" if name == "documented" else "http"
        nginx = Nginx(binary, directory / name, sites[name](port), port, scheme)
        stack.callback(nginx.close)
        with front.client() as client:
            front.url = nginx.url
            nginx.wait_ready(client)
        started[name] = nginx
    return Setup(mock, gateway, Front("direct", gateway.url), fronts, started)


@pytest.fixture(params=FRONTS)
def front(request: pytest.FixtureRequest, setup: Setup) -> Iterator[Front]:
    yield setup.fronts[request.param]
    nginx = setup.nginx[request.param]
    assert nginx.process.poll() is None, nginx.log()[-3000:]
    assert "[alert]" not in nginx.log() and "[emerg]" not in nginx.log(), nginx.log()[-3000:]
    assert "Traceback" not in setup.gateway.log(), setup.gateway.log()[-3000:]


# --- helpers -----------------------------------------------------------------------------------


def chat(tokens: int, model: str = "lorem") -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "go"}],
        "stream": True,
        "max_tokens": tokens,
    }


def lorem_text(tokens: int) -> str:
    answer = script(Request("lorem", (), max_tokens=tokens, stream=True), id="x")
    return "".join(d.text for d in answer.deltas if isinstance(d, TextDelta))


def content(event: Event) -> str:
    if event.data == "[DONE]":
        return ""
    choices = json.loads(event.data).get("choices") or [{}]
    return str(choices[0].get("delta", {}).get("content") or "")


@dataclass
class Arrivals:
    """The text pieces of one stream and the (monotonic) time each arrived."""

    pieces: list[str]
    times: list[float]

    @property
    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]


def read_sse(client: httpx.Client, url: str, tokens: int, compressed: list[str]) -> Arrivals:
    pieces, times = [], []
    with client.stream("POST", url + CHAT, json=chat(tokens)) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        compressed.append(response.headers.get("content-encoding", ""))
        decoder = Decoder()
        for chunk in response.iter_bytes():
            now = time.monotonic()
            for event in decoder.feed(chunk):
                if text := content(event):
                    pieces.append(text)
                    times.append(now)
    return Arrivals(pieces, times)


def read_ndjson(client: httpx.Client, url: str, tokens: int, compressed: list[str]) -> Arrivals:
    body = {
        "model": "lorem",
        "messages": [{"role": "user", "content": "go"}],
        "options": {"num_predict": tokens},
    }
    pieces, times = [], []
    with client.stream("POST", url + "/api/chat", json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("application/x-ndjson")
        compressed.append(response.headers.get("content-encoding", ""))
        buffer = b""
        for chunk in response.iter_bytes():
            now = time.monotonic()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if text := json.loads(line).get("message", {}).get("content"):
                    pieces.append(text)
                    times.append(now)
    return Arrivals(pieces, times)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- (a) tokens arrive as they are generated ---------------------------------------------------

TOKENS = 60  # 1.2 s a stream
ROUNDS = 2  # direct and through nginx, alternately
READERS = {"openai-sse": read_sse, "ollama-ndjson": read_ndjson}


@pytest.mark.parametrize("front", ["plain", "gzip", "documented"], indirect=True)
@pytest.mark.parametrize("dialect", list(READERS))
def test_tokens_arrive_through_nginx_as_they_are_generated(
    setup: Setup, front: Front, dialect: str
) -> None:
    read = READERS[dialect]
    gaps: dict[str, list[float]] = {"direct": [], front.name: []}
    encodings: dict[str, list[str]] = {"direct": [], front.name: []}
    with setup.direct.client() as direct, front.client() as proxied:
        for _ in range(ROUNDS):
            for name, client, url in (
                ("direct", direct, setup.direct.url),
                (front.name, proxied, front.url),
            ):
                arrivals = read(client, url, TOKENS, encodings[name])
                assert "".join(arrivals.pieces) == lorem_text(TOKENS)
                assert len(arrivals.pieces) == TOKENS  # one piece a token: nothing merged
                gaps[name] += arrivals.gaps
    median = {name: statistics.median(g) * 1000 for name, g in gaps.items()}
    p90 = {name: quantile(g, 0.9) * 1000 for name, g in gaps.items()}
    print(
        f"{dialect} {front.name}: gap median {median[front.name]:.2f} ms "
        f"(direct {median['direct']:.2f}), p90 {p90[front.name]:.2f} ms "
        f"(direct {p90['direct']:.2f}), token every {TOKEN_MS} ms"
    )
    assert set(encodings[front.name]) == {"gzip" if front.name == "gzip" else ""}
    # Buffered, the events would come in bursts: most gaps ~0, a few long ones.
    assert abs(median[front.name] - median["direct"]) < 3, (median, p90)
    assert abs(p90[front.name] - p90["direct"]) < 5, (median, p90)
    bursts = {name: sum(g < TOKEN_MS / 4000 for g in gs) for name, gs in gaps.items()}
    assert bursts[front.name] <= bursts["direct"] + len(gaps["direct"]) // 10, bursts


# --- (b) resume by Last-Event-ID --------------------------------------------------------------


def test_a_resume_by_last_event_id_through_nginx_has_no_gap_and_no_duplicate(
    front: Front,
) -> None:
    tokens = 200  # 4 s: still generating when the resume comes
    with front.client() as client:
        first: list[Event] = []
        with client.stream("POST", front.url + CHAT, json=chat(tokens)) as response:
            assert response.status_code == 200
            stream_id = response.headers["x-stream-id"]
            decoder = Decoder()
            for chunk in response.iter_raw():
                first += decoder.feed(chunk)
                if len([e for e in first if content(e)]) >= 20:
                    break  # the connection is dropped mid-stream
        last_id = next(e.id for e in reversed(first) if e.id)
        rest: list[Event] = []
        with client.stream(
            "GET", f"{front.url}/v1/streams/{stream_id}", headers={"last-event-id": last_id}
        ) as response:
            assert response.status_code == 200
            decoder = Decoder()
            for chunk in response.iter_raw():
                rest += decoder.feed(chunk)
    assert rest and rest[-1].data == "[DONE]"
    ids = [e.id for e in first + rest if e.id]
    assert len(ids) == len(set(ids))  # nothing twice
    numbers = [tuple(int(p) for p in i.split(".")) for i in ids]
    assert numbers == sorted(numbers)
    assert "".join(content(e) for e in first + rest) == lorem_text(tokens)  # nothing lost
    assert "".join(content(e) for e in rest)  # the resume did carry the rest


# --- (c) a client disconnect cancels the upstream ---------------------------------------------


class H2Connection:
    """A client's HTTP/2 connection on h2 (httpx closes an HTTP/2 response without a
    RST_STREAM, encode/httpcore#943; a browser closing a tab sends one)."""

    def __init__(self, front: Front) -> None:
        import h2.config
        import h2.connection

        assert front.cafile is not None
        self.authority = front.url.removeprefix("https://")
        host, _, port = self.authority.rpartition(":")
        context = ssl.create_default_context(cafile=str(front.cafile))
        context.set_alpn_protocols(["h2"])
        self.sock = context.wrap_socket(
            socket.create_connection((host, int(port)), timeout=10), server_hostname=host
        )
        assert self.sock.selected_alpn_protocol() == "h2"
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.h2.data_to_send())

    def request(self, method: str, path: str, body: bytes = b"") -> int:
        stream = self.h2.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "https")]
        headers += [(":authority", self.authority)]
        if body:
            headers += [("content-type", "application/json"), ("content-length", str(len(body)))]
        self.h2.send_headers(stream, headers, end_stream=not body)
        if body:
            self.h2.send_data(stream, body, end_stream=True)
        self.flush()
        return stream

    def events(self) -> list[Any]:
        import h2.events

        data = self.sock.recv(65536)
        assert data, "nginx closed the connection"
        events = self.h2.receive_data(data)
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self.flush()
        return events

    def reset(self, stream: int) -> None:
        from h2.errors import ErrorCodes

        self.h2.reset_stream(stream, ErrorCodes.CANCEL)
        self.flush()

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def a_dropped_stream(front: Front, body: dict[str, Any]) -> Iterator[float]:
    """Starts a stream, reads its first events, drops it: yields the (wall) time of the
    drop while the client's connection to ``front`` is still open if it can be (HTTP/2:
    the stream is reset, the connection stays; HTTP/1.1: the connection is closed)."""
    if not front.http2:
        with front.client() as client:
            with client.stream("POST", front.url + CHAT, json=body) as response:
                assert response.status_code == 200
                decoder, seen = Decoder(), 0
                for chunk in response.iter_raw():
                    seen += len(decoder.feed(chunk))
                    if seen >= 5:
                        break
                dropped = time.time()  # the mock's records use the wall clock
            yield dropped
        return
    import h2.events

    connection = H2Connection(front)
    try:
        stream = connection.request("POST", CHAT, json.dumps(body).encode())
        decoder, seen = Decoder(), 0
        while seen < 5:
            for event in connection.events():
                if isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                    seen += len(decoder.feed(event.data))
        connection.reset(stream)
        dropped = time.time()
        yield dropped
        # The connection outlived the reset: another request on it is answered.
        ready = connection.request("GET", "/readyz")
        status = ""
        while True:
            events = connection.events()
            for event in events:
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == ready:
                    status = dict(event.headers)[b":status"].decode()
            if any(isinstance(e, h2.events.StreamEnded) and e.stream_id == ready for e in events):
                break
        assert status == "200"
    finally:
        connection.close()


def disconnect_then_upstream_closed(setup: Setup, front: Front) -> float:
    """Seconds from dropping a stream after its first events to the upstream's close."""
    before = len(mock_records(setup.mock))
    with a_dropped_stream(front, chat(3000, "upstream-lorem")) as dropped:
        deadline = time.monotonic() + GRACE + 10
        while True:
            (record,) = mock_records(setup.mock)[before:]
            if "ended" in record:
                break
            assert time.monotonic() < deadline, record
            time.sleep(0.01)
    assert record["outcome"] == "disconnected" and record["tokens"] < 3000, record
    return float(record["ended"]) - dropped


def test_a_client_disconnect_through_nginx_cancels_the_upstream(setup: Setup, front: Front) -> None:
    direct = [disconnect_then_upstream_closed(setup, setup.direct) for _ in range(3)]
    proxied = [disconnect_then_upstream_closed(setup, front) for _ in range(3)]
    print(
        f"{front.name}: upstream closed {max(proxied) * 1000:.0f} ms after the disconnect "
        f"at most (direct {max(direct) * 1000:.0f} ms; grace {GRACE:g} s)"
    )
    assert min(proxied) >= GRACE - 0.05  # the grace period still applies
    assert max(proxied) < GRACE + 0.5, proxied
    assert max(proxied) - max(direct) < 0.2, (proxied, direct)


# --- (d) plain requests -----------------------------------------------------------------------


def test_the_chat_page_and_plain_requests_work_through_nginx(setup: Setup, front: Front) -> None:
    with front.client() as client:
        page = client.get(front.url + "/")
        assert page.status_code == 200 and "<html" in page.text
        assert page.headers["content-type"].startswith("text/html")
        for script_path in re.findall(r'src="([^"]+\.js)"', page.text):
            asset = client.get(f"{front.url}/{script_path.lstrip('/')}")
            assert asset.status_code == 200
            assert "javascript" in asset.headers["content-type"]
        models = client.get(front.url + "/v1/models")
        assert models.status_code == 200
        assert {m["id"] for m in models.json()["data"]} >= {"lorem", "upstream-lorem"}
        assert client.get(front.url + "/readyz").status_code == 200
        whole = client.post(front.url + CHAT, json={**chat(5), "stream": False})
        assert whole.status_code == 200
        assert whole.json()["choices"][0]["message"]["content"] == lorem_text(5)
        # The chat page's own POST, with its Origin: the gateway accepts it when it sees
        # the Host and scheme the browser used (docs/nginx.md: Host, X-Forwarded-Proto).
        own = client.post(
            front.url + CHAT, json={**chat(5), "stream": False}, headers={"origin": front.url}
        )
        if front.name == "documented":
            assert own.status_code == 200, own.text
            assert page.http_version == "HTTP/2"
        else:
            assert own.status_code == 403, own.text  # a bare proxy_pass hides the Host


# --- HTTP/2: many streams on one connection ---------------------------------------------------

STREAMS = 8  # more than a browser's 6 HTTP/1.1 connections per host


def test_many_streams_share_one_http2_connection_through_nginx(setup: Setup) -> None:
    front = setup.fronts["documented"]
    tokens = 50  # 1 s each

    async def one(client: httpx.AsyncClient) -> tuple[float, float, str, str]:
        async with client.stream("POST", front.url + CHAT, json=chat(tokens)) as response:
            assert response.status_code == 200
            started = time.monotonic()
            decoder, text = Decoder(), ""
            async for chunk in response.aiter_raw():
                text += "".join(content(e) for e in decoder.feed(chunk))
            return started, time.monotonic(), text, response.http_version

    async def main() -> list[tuple[float, float, str, str]]:
        limits = httpx.Limits(max_connections=1)
        async with front.async_client(limits=limits) as client:
            return await asyncio.gather(*(one(client) for _ in range(STREAMS)))

    runs = asyncio.run(main())
    assert all(version == "HTTP/2" for *_, version in runs)
    assert all(text == lorem_text(tokens) for _, _, text, _ in runs)
    # All at once: every stream had started before the first one ended.
    assert max(start for start, *_ in runs) < min(end for _, end, *_ in runs)
    access = (setup.nginx["documented"].directory / "access.log").read_text()
    assert access.count("HTTP/2.0") >= STREAMS
