"""The upstream HTTP/1.1 client (providers/connections.py) against real servers on
loopback: keep-alive, a stale idle connection, the connection limit, bodies of every
framing, content codings, flow control, malformed answers, TLS."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import socket
import ssl
import threading
import time
import tracemalloc
import weakref
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.test_nginx import self_signed
from tokenrelay.providers.connections import (
    CONNECT_STAGGER,
    ConnectionPool,
    _interleaved,
    pace_reads,
)

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Server:
    """A loopback server whose connections run ``handler``; counts connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.ended = 0  # connections whose handler has returned
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went, or the test ended
        finally:
            self.ended += 1
            writer.transport.abort()


@asynccontextmanager
async def serving(handler: Handler, tls: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    server = Server(handler)
    listener = await asyncio.start_server(server._accept, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        for writer in server.writers:
            writer.transport.abort()


@contextmanager
def watched_lookups(delay: float = 0.0) -> Iterator[list[int]]:
    """The running loop's host lookups counted (``[n]``) and each held ``delay`` seconds."""
    loop = asyncio.get_running_loop()
    lookup = loop.getaddrinfo
    count = [0]

    async def watched(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        await asyncio.sleep(delay)
        return await lookup(*args, **kwargs)

    loop.getaddrinfo = watched  # type: ignore[method-assign]
    try:
        yield count
    finally:
        del loop.getaddrinfo


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The request's head and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length) if length else b""


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers every request on the connection with two chunks."""
    while True:
        await read_request(reader)
        writer.write(HEAD + chunked(b"data: 1\n\n", b"data: 2\n\n"))
        await writer.drain()


async def body_of(pool: ConnectionPool, path: str = "/x") -> bytes:
    response = await pool.request("POST", path, {}, b"{}")
    try:
        return await response.read(1 << 20)
    finally:
        response.release()


async def test_a_connection_read_to_its_end_is_reused() -> None:
    async with serving(keep_alive) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}/v1")
        for _ in range(3):
            assert await body_of(pool) == b"data: 1\n\ndata: 2\n\n"
        assert server.connections == 1
        await pool.aclose()


async def test_a_body_left_unread_closes_its_connection() -> None:
    async with serving(keep_alive) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        response = await pool.request("POST", "/x", {}, b"{}")
        response.release()  # abandoned: the upstream must see it go
        assert await body_of(pool) == b"data: 1\n\ndata: 2\n\n"
        assert server.connections == 2
        await pool.aclose()


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(HEAD + chunked(b"data: 1\n\n"))
        await writer.drain()
        # Then closes without saying so (keep-alive timeout on the server's side); the
        # next read on the client's side finds EOF only once it sends.
        await asyncio.sleep(0.05)

    async with serving(once) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        assert await body_of(pool) == b"data: 1\n\n"
        await asyncio.sleep(0.2)
        assert await body_of(pool) == b"data: 1\n\n"
        assert server.connections == 2
        await pool.aclose()


async def test_a_connection_closed_while_the_loop_was_busy_is_not_reused_for_a_post() -> None:
    # The server closes an idle connection (its keep-alive timeout: uvicorn's, Node's and
    # llama.cpp's is 5 s) while our loop is busy: the close is in the kernel, not yet
    # seen by the connection's callbacks. A POST on it would fail (a POST is never sent
    # twice), so a connection with anything to read is not taken from the pool.
    connections = []

    def serve(listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(conn)
            data = b""
            while not data.endswith(b"{}"):
                data += conn.recv(65536)
            conn.sendall(HEAD + chunked(b"data: 1\n\n"))
            time.sleep(0.05)
            conn.close()  # idle: the server's keep-alive timeout

    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=serve, args=(listener,), daemon=True)
    thread.start()
    pool = ConnectionPool(f"http://127.0.0.1:{listener.getsockname()[1]}")
    try:
        assert await body_of(pool) == b"data: 1\n\n"
        time.sleep(0.3)  # the loop is busy while the server closes (not asyncio.sleep)
        assert await body_of(pool) == b"data: 1\n\n"
        assert len(connections) == 2
    finally:
        await pool.aclose()
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        listener.close()
        thread.join(5)


async def test_a_connection_that_breaks_after_a_byte_is_an_error_not_a_retry() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-")
        await writer.drain()

    async with serving(half) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        with pytest.raises(ConnectionError):
            await pool.request("POST", "/x", {}, b"{}")
        assert server.connections == 1
        await pool.aclose()


async def test_requests_beyond_the_limit_wait_for_a_connection() -> None:
    gate = asyncio.Event()

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(HEAD)
            await gate.wait()
            writer.write(chunked(b"data: x\n\n"))
            await writer.drain()

    async with serving(held) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}", limit=2)
        first = [await pool.request("POST", "/x", {}, b"{}") for _ in range(2)]
        third = asyncio.create_task(pool.request("POST", "/x", {}, b"{}"))
        await asyncio.sleep(0.2)
        assert not third.done() and server.connections == 2
        gate.set()
        assert await first[0].read(100) == b"data: x\n\n"
        first[0].release()
        response = await asyncio.wait_for(third, 2)
        assert await response.read(100) == b"data: x\n\n"
        assert server.connections == 2  # the released connection served the third
        response.release()
        first[1].release()
        await pool.aclose()


@pytest.mark.parametrize(
    "framing",
    ["chunked", "content-length", "until-close"],
)
async def test_a_body_arrives_as_it_is_sent_in_every_framing(framing: str) -> None:
    parts = [b"data: %d\n\n" % i for i in range(5)]
    step = asyncio.Event()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        if framing == "chunked":
            head += b"transfer-encoding: chunked\r\n"
        elif framing == "content-length":
            head += b"content-length: %d\r\n" % sum(map(len, parts))
        else:
            head += b"connection: close\r\n"
        writer.write(head + b"\r\n")
        for part in parts:
            writer.write(b"%x\r\n%s\r\n" % (len(part), part) if framing == "chunked" else part)
            await writer.drain()
            await step.wait()
            step.clear()
        if framing == "chunked":
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with serving(answer) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        response = await pool.request("POST", "/x", {}, b"{}")
        got = []
        for _ in parts:
            got.append(await asyncio.wait_for(response.read_chunk(), 2))  # before the next
            step.set()
        assert got == parts
        assert await response.read_chunk() == b"" and response.complete
        response.release()
        await pool.aclose()


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_compressed_body_is_decompressed_as_it_comes(coding: str) -> None:
    events = [b"data: %d\n\n" % i for i in range(3)]
    compressor = zlib.compressobj(wbits=31) if coding == "gzip" else zlib.compressobj(wbits=15)
    pieces = [compressor.compress(e) + compressor.flush(zlib.Z_SYNC_FLUSH) for e in events]
    pieces.append(compressor.flush())

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        assert b"accept-encoding: gzip, deflate" in head
        writer.write(HEAD.replace(b"\r\n\r\n", f"\r\ncontent-encoding: {coding}\r\n\r\n".encode()))
        writer.write(chunked(*pieces))
        await writer.drain()

    async with serving(answer) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        assert await body_of(pool) == b"".join(events)
        await pool.aclose()


async def test_an_unknown_content_coding_and_a_malformed_answer_are_connection_errors() -> None:
    answers = [
        HEAD.replace(b"\r\n\r\n", b"\r\ncontent-encoding: br\r\n\r\n") + chunked(b"x"),
        b"HTTP/1.1 2OO OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * (70 * 1024) + b"\r\n\r\n",
        HEAD + b"zz\r\nnot hex\r\n",
    ]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answers.pop(0))
        await writer.drain()
        await asyncio.sleep(1)

    async with serving(answer) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        for expected in ["content-encoding", "malformed", "too large", "malformed"]:
            with pytest.raises(ConnectionError, match=expected):
                await body_of(pool)
        await pool.aclose()


async def test_a_slow_reader_pauses_the_socket_instead_of_buffering_the_body() -> None:
    written = 0
    total = 256 * 1024 * 1024

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total)
        block = b"x" * (1024 * 1024)
        while written < total:
            writer.write(block)
            await writer.drain()
            written += len(block)

    async with serving(flood) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        response = await pool.request("GET", "/x", {})
        await response.read_chunk()
        await asyncio.sleep(0.5)  # not reading
        # What the server could write: the buffer's high-water mark and the sockets'
        # buffers, not the body.
        assert written < 64 * 1024 * 1024, written
        response.release()
        await pool.aclose()


async def test_nothing_configured_can_split_a_request_or_carry_credentials() -> None:
    pool = ConnectionPool("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="CR, LF"):
        await pool.request("POST", "/x", {"x-a": "b\r\nx-injected: 1"}, b"")
    with pytest.raises(ValueError, match="credentials"):
        ConnectionPool("http://user:pw@127.0.0.1:9")
    with pytest.raises(ValueError, match="http"):
        ConnectionPool("ftp://127.0.0.1")


async def test_tls_verifies_the_upstream_against_the_system_trust_store(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    async with serving(keep_alive, tls) as server:
        pool = ConnectionPool(f"https://127.0.0.1:{server.port}")
        with pytest.raises(ssl.SSLCertVerificationError):
            await body_of(pool)
        await pool.aclose()
        # Trusted the system's way (OpenSSL's SSL_CERT_FILE): it answers.
        before = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = str(cert)
        try:
            pool = ConnectionPool(f"https://127.0.0.1:{server.port}")
            assert await body_of(pool) == b"data: 1\n\ndata: 2\n\n"
            await pool.aclose()
        finally:
            if before is None:
                del os.environ["SSL_CERT_FILE"]
            else:
                os.environ["SSL_CERT_FILE"] = before


async def test_a_host_name_is_looked_up_once_for_a_burst_and_its_addresses_tried_in_turn() -> None:
    async with serving(keep_alive) as server:
        # localhost may come first as ::1, where nothing listens: the next address serves.
        with watched_lookups() as lookups:
            pool = ConnectionPool(f"http://localhost:{server.port}", limit=20)
            bodies = await asyncio.gather(*(body_of(pool) for _ in range(20)))
        assert bodies == [b"data: 1\n\ndata: 2\n\n"] * 20
        assert server.connections == 20 and lookups == [1]
        await pool.aclose()
    with pytest.raises(OSError):
        await body_of(ConnectionPool("http://no-such-host.invalid"))


@contextmanager
def answered(name: str, addresses: list[str]) -> Iterator[None]:
    """The running loop's resolver answers ``addresses`` (IPv4) for ``name``: a name with
    several addresses, as DNS gives (outside this machine, so the one thing faked)."""
    loop = asyncio.get_running_loop()
    lookup = loop.getaddrinfo

    async def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return await lookup(host, port, *args, **kwargs)
        tcp = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "")
        return [(*tcp, (address, port)) for address in addresses]

    loop.getaddrinfo = resolve  # type: ignore[method-assign]
    try:
        yield
    finally:
        del loop.getaddrinfo


@contextmanager
def black_hole(address: str, port: int) -> Iterator[None]:
    """``address:port`` takes no connection and refuses none: a listener whose accept
    queue is full, so the kernel drops every SYN (what a broken route does)."""
    listener = socket.create_server((address, port), backlog=0)
    filling = []
    for _ in range(3):
        sock = socket.socket()
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.connect((address, port))
        filling.append(sock)
    try:
        yield
    finally:
        for sock in [*filling, listener]:
            sock.close()


async def test_an_address_that_never_answers_hands_over_to_the_next_within_the_stagger() -> None:
    # Happy Eyeballs (RFC 8305): the first address drops the SYNs (a broken IPv6 route
    # does); the next is tried after CONNECT_STAGGER, not after the connect timeout.
    loop = asyncio.get_running_loop()
    async with serving(keep_alive) as server:
        silent = black_hole("127.0.0.2", server.port)
        with silent, answered("dual.test", ["127.0.0.2", "127.0.0.1"]):
            pool = ConnectionPool(f"http://dual.test:{server.port}", connect_timeout=5)
            started = loop.time()
            assert await body_of(pool) == b"data: 1\n\ndata: 2\n\n"
            assert CONNECT_STAGGER <= loop.time() - started < CONNECT_STAGGER + 0.5
            assert await body_of(pool) == b"data: 1\n\ndata: 2\n\n"  # the winner, kept
            assert server.connections == 1
            await pool.aclose()
        # Every address silent: the connect timeout, as before.
        with black_hole("127.0.0.2", server.port), black_hole("127.0.0.3", server.port):
            with answered("dual.test", ["127.0.0.2", "127.0.0.3"]):
                pool = ConnectionPool(f"http://dual.test:{server.port}", connect_timeout=0.6)
                started = loop.time()
                with pytest.raises(TimeoutError):
                    await body_of(pool)
                assert 0.6 <= loop.time() - started < 1.1
                await pool.aclose()


async def test_addresses_that_all_connect_leave_one_connection_and_close_the_others() -> None:
    # Both addresses answer within the stagger's window of each other: the first to
    # connect is used, the other closed (no connection leaks to a server per request).
    async with serving(keep_alive) as server:
        with answered("dual.test", ["127.0.0.1", "127.0.0.1"]):
            pool = ConnectionPool(f"http://dual.test:{server.port}")
            for _ in range(3):
                assert await body_of(pool) == b"data: 1\n\ndata: 2\n\n"
            await asyncio.sleep(0.1)
            assert server.connections - server.ended <= 1  # one open: the pool's
            await pool.aclose()


def test_families_alternate_starting_with_the_first_address_s() -> None:
    v6, v4 = socket.AF_INET6, socket.AF_INET
    got = _interleaved([(v6, "a"), (v6, "b"), (v6, "c"), (v4, "x"), (v4, "y")])
    assert got == [(v6, "a"), (v4, "x"), (v6, "b"), (v4, "y"), (v6, "c")]
    assert _interleaved([(v4, "x"), (v6, "a")]) == [(v4, "x"), (v6, "a")]


async def test_a_compression_bomb_is_inflated_no_further_than_its_reader() -> None:
    bomb = zlib.compressobj(wbits=31)
    payload = bomb.compress(b"\0" * (256 * 1024 * 1024)) + bomb.flush()
    pieces = [payload[i : i + 8192] for i in range(0, len(payload), 8192)]

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        head = b"HTTP/1.1 500 Oops\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
        writer.write(head + chunked(*pieces))  # one write: many chunks per socket read
        await writer.drain()
        await asyncio.sleep(1)

    async with serving(answer) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        response = await pool.request("POST", "/x", {}, b"{}")
        await asyncio.sleep(0.3)  # everything sent, nothing read yet
        tracemalloc.start()
        try:
            body = await response.read(64 * 1024)  # as an error body is read
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        response.release()
        assert body == b"\0" * (64 * 1024)
        assert peak < 8 * 1024 * 1024, peak
        await pool.aclose()


async def ok_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()


async def test_a_waiter_woken_then_cancelled_passes_the_connection_on() -> None:
    async with serving(ok_forever) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}", limit=1)
        first = await pool.request("POST", "/x", {}, b"{}")  # holds the only connection
        woken = asyncio.create_task(pool.request("POST", "/x", {}, b"{}"))
        other = asyncio.create_task(pool.request("POST", "/x", {}, b"{}"))
        await asyncio.sleep(0.1)
        assert await first.read(10) == b"ok"  # read whole: released, wakes `woken`
        woken.cancel()  # whose client leaves in the same pass of the loop
        response = await asyncio.wait_for(other, 3)
        assert await response.read(10) == b"ok"
        response.release()
        await pool.aclose()


async def test_a_post_is_never_sent_twice_and_a_get_is_on_a_connection_found_dead() -> None:
    seen: list[bytes] = []

    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Each connection answers its first request, then reads a second and dies.
        head, body = await read_request(reader)
        seen.append(head.split(b" ")[0] + b" " + body)
        writer.write(HEAD + chunked(b"data: 1\n\n"))
        await writer.drain()
        head, body = await read_request(reader)
        seen.append(head.split(b" ")[0] + b" " + body)

    async with serving(serve_one) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        assert await body_of(pool) == b"data: 1\n\n"
        with pytest.raises(ConnectionError):
            await pool.request("POST", "/x", {}, b'{"n":2}')
        assert seen == [b"POST {}", b'POST {"n":2}']  # once, whatever became of it
        for _ in range(2):
            response = await pool.request("GET", "/x", {})
            assert await response.read(100) == b"data: 1\n\n"
            response.release()
        # The second GET went out twice: on the kept-alive connection, which died without
        # a byte, then on a new one.
        assert seen[2:] == [b"GET ", b"GET ", b"GET "] and server.connections == 3
        await pool.aclose()


async def test_a_head_that_never_ends_is_refused_at_the_bound_not_held() -> None:
    sent = 0

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nx-a: ")
        block = b"a" * 65536
        while sent < 64 * 1024 * 1024:
            writer.write(block)
            await writer.drain()
            sent += len(block)

    async with serving(endless) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        with pytest.raises(ConnectionError, match="too large"):
            await asyncio.wait_for(pool.request("POST", "/x", {}, b"{}"), 5)
        assert sent < 8 * 1024 * 1024
        await pool.aclose()


async def test_what_a_connection_was_not_asked_closes_it_and_trailers_stay_behind() -> None:
    answers = [
        # A complete answer, a trailer naming a coding, and a second answer nobody asked.
        HEAD[:-2] + b"trailer: content-encoding\r\n\r\n"
        + b"2\r\nok\r\n0\r\ncontent-encoding: br\r\n\r\n",
        HEAD + chunked(b"fine") + b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nEXTRA",
        HEAD + chunked(b"last"),
    ]  # fmt: skip

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while answers:
            await read_request(reader)
            writer.write(answers.pop(0))
            await writer.drain()

    async with serving(answer) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        assert await body_of(pool) == b"ok"
        assert await body_of(pool) == b"fine"  # the trailer's coding is not the next one's
        assert await body_of(pool) == b"last"  # on a new connection: the extra closed it
        assert server.connections == 2
        await pool.aclose()


async def test_a_lookup_is_not_cancelled_with_the_caller_that_began_it() -> None:
    async with serving(ok_forever) as server:
        with watched_lookups(0.3):
            pool = ConnectionPool(f"http://localhost:{server.port}")
            first = asyncio.create_task(pool.request("POST", "/x", {}, b"{}"))
            second = asyncio.create_task(pool.request("POST", "/x", {}, b"{}"))
            await asyncio.sleep(0.1)
            first.cancel()
            response = await asyncio.wait_for(second, 3)
        assert await response.read(10) == b"ok"
        response.release()
        await pool.aclose()


async def test_aclose_closes_a_connection_still_being_made_and_waits_for_all() -> None:
    async with serving(ok_forever) as server:
        with watched_lookups(0.2):
            pool = ConnectionPool(f"http://localhost:{server.port}")
            idle = ConnectionPool(f"http://127.0.0.1:{server.port}")
            assert await body_of(idle) == b"ok"
            late = asyncio.create_task(pool.request("POST", "/x", {}, b"{}"))
            await asyncio.sleep(0.05)
            await pool.aclose()
            with pytest.raises(ConnectionError):
                await late
        await idle.aclose()
        for _ in range(100):  # every connection the server saw has been closed by us
            if server.ended == server.connections:
                break
            await asyncio.sleep(0.01)
        assert server.ended == server.connections == 1


async def test_head_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="HEAD"):
        await ConnectionPool("http://127.0.0.1:9").request("HEAD", "/", {})


def paced_answer(parts: list[bytes], every: float) -> Handler:
    """Answers one request with ``parts``, one chunk every ``every`` seconds."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(HEAD)
        for part in parts:
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(every)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()  # until the client closes

    return answer


async def reads_of(pool: ConnectionPool) -> list[tuple[float, bytes]]:
    """Each ``read_chunk`` of one response, with when it returned (from the head)."""
    response = await pool.request("POST", "/x", {}, b"{}")
    began, reads = time.monotonic(), []
    while chunk := await asyncio.wait_for(response.read_chunk(), 5):
        reads.append((time.monotonic() - began, chunk))
    response.release()
    return reads


@pytest.mark.parametrize("window", [0.0, 0.08])
async def test_paced_reads_take_a_window_of_chunks_at_once_after_the_first_two(
    window: float,
) -> None:
    parts = [b"data: %d\n\n" % i for i in range(24)]
    async with serving(paced_answer(parts, 0.01)) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        pace_reads(window)
        try:
            reads = await reads_of(pool)
        finally:
            pace_reads(0.0)
        await pool.aclose()
    assert b"".join(chunk for _, chunk in reads) == b"".join(parts)  # all, in order
    if not window:
        assert len(reads) >= len(parts) - 2  # read as they come
        return
    assert [len(chunk) for _, chunk in reads[:2]] == [len(parts[0])] * 2  # the first two
    assert len(reads) <= 2 + 6, [len(c) for _, c in reads]  # then ~22 chunks in 3-4 windows
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(reads)]
    assert max(gaps) < window + 0.05  # a chunk waits a window at most


async def test_pacing_turned_off_reads_what_was_held_at_once() -> None:
    parts = [b"data: %d\n\n" % i for i in range(3)]
    async with serving(paced_answer(parts, 0.05)) as server:
        pool = ConnectionPool(f"http://127.0.0.1:{server.port}")
        pace_reads(10.0)  # a window longer than the test
        try:
            response = await pool.request("POST", "/x", {}, b"{}")
            response.pieces = 10  # past its first pieces: held after its next read
            first = await asyncio.wait_for(response.read(2 * len(parts[0])), 1)
            waiting = asyncio.ensure_future(response.read_chunk())
            await asyncio.sleep(0.2)
            assert not waiting.done()  # held: the last part waits in the socket
            pace_reads(0.0)
            assert await asyncio.wait_for(waiting, 1)  # released at once
            assert first + waiting.result() + await response.read(1000) == b"".join(parts)
            response.release()
        finally:
            pace_reads(0.0)
        await pool.aclose()


def test_a_loop_that_paced_reads_is_not_kept_alive_by_its_pacer() -> None:
    async def main() -> weakref.ref[asyncio.AbstractEventLoop]:
        pace_reads(0.05)
        pace_reads(0.0)
        return weakref.ref(asyncio.get_running_loop())

    loop = asyncio.run(main())
    gc.collect()
    assert loop() is None
