"""HTTP/1.1 connections to one upstream origin, kept alive in a pool: what ``HTTPProvider``
sends its requests over.

Why not aiohttp (which this replaced): reading a paced token stream, aiohttp's per-chunk
work (its ``StreamReader``, flow control, timers, chunk bookkeeping) cost about as much
CPU as everything else the gateway does to a token on its way in. The same reads through
the protocol below — httptools (the C parser uvicorn uses) feeding a buffer that wakes one
waiter — cost about half (``bench/upstream_read.py``; figures in ``bench/RESULTS.md``).
What the gateway needs of a client is small and fixed: one request at a time per
connection, a streamed body read as it comes, keep-alive, a connection limit, a connect
timeout, TLS with the system's trust store, no redirects, no cookies, no proxies (as
aiohttp did with its defaults).

Decisions:

- A connection taken from the pool that turns out to have been closed by the server
  while idle (no byte of a response on it) is replaced by a new one and the request
  sent again, once: the server cannot have acted on it.
- ``accept-encoding: gzip, deflate`` (what aiohttp sent); a gzip or deflate body is
  decompressed as it comes (one read inflating beyond ``MAX_EXPANSION`` is refused: a
  compression bomb is an error, not memory), any other content coding is an error.
- A response whose body was not read to its end is closed (its connection with it), so
  the upstream sees the disconnect and stops generating; only a body read to its end
  returns the connection to the pool.
- At most ``limit`` connections per pool, busy or idle; a request beyond it waits for
  one. Idle connections older than ``keepalive`` seconds are closed, not reused.
- Header names and values carrying CR, LF or NUL are refused (``ValueError``): nothing
  configured can split a request.
- More than ``max_head`` bytes of status line and headers, or a body buffered beyond
  ``high_water`` unread, stop reading (the first fails the response; the second pauses
  the socket until the reader catches up).

Errors are the standard library's: ``ConnectionError`` (refused, reset, closed early,
a malformed response), ``TimeoutError`` (connect), ``ssl.SSLError``; all are ``OSError``.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import zlib
from collections import deque
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

__all__ = ["ConnectionPool", "UpstreamResponse"]

_NO_BODY = (204, 304)
MAX_EXPANSION = 16 * 1024 * 1024  # what one read of a compressed body may inflate to


def _check(text: str, what: str) -> str:
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError(f"{what} must not contain CR, LF or NUL")
    return text


class UpstreamResponse:
    """One response: its status and headers (names in lower case, repeated ones joined
    with ", "), then its body as it arrives (``read_chunk``)."""

    __slots__ = (
        "_chunks", "_conn", "_decompress", "_done", "_error", "_size", "_waiter",
        "complete", "headers", "status",
    )  # fmt: skip

    def __init__(self, conn: _Connection, status: int, headers: dict[str, str]) -> None:
        self._conn: _Connection | None = conn
        self.status = status
        self.headers = headers
        self.complete = False  # the body was read to its end
        self._chunks: list[bytes] = []
        self._size = 0
        self._done = False  # the body has arrived whole
        self._error: OSError | None = None
        self._waiter: asyncio.Future[None] | None = None
        coding = headers.get("content-encoding", "identity").strip().lower()
        if coding in ("gzip", "x-gzip", "deflate"):
            self._decompress: zlib._Decompress | None = zlib.decompressobj(32 + zlib.MAX_WBITS)
        elif coding in ("identity", ""):
            self._decompress = None
        else:
            raise ConnectionError(f"unsupported content-encoding {coding!r}")

    # -- fed by the connection -------------------------------------------------------------

    def _feed(self, body: bytes) -> None:
        if self._error is not None:
            return
        decompress = self._decompress
        if decompress is not None:
            try:
                body = decompress.decompress(body, MAX_EXPANSION)
            except zlib.error:
                self._broken(ConnectionError("malformed compressed body"))
                return
            if decompress.unconsumed_tail:  # a bomb: refused, not inflated
                self._broken(ConnectionError("compressed body expands too far"))
                return
            if not body:
                return
        self._chunks.append(body)
        self._size += len(body)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        conn = self._conn
        if conn is not None and self._size > conn.pool.high_water:
            conn.pause()  # until the reader catches up

    def _broken(self, error: OSError) -> None:
        conn = self._conn
        if conn is not None:
            conn._lost(error)  # fails us, and stops reading what follows
        else:
            self._fail(error)

    def _end(self) -> None:
        if self._error is not None:
            return
        if self._decompress is not None:
            tail = self._decompress.flush(MAX_EXPANSION)
            if tail:
                self._chunks.append(tail)
                self._size += len(tail)
        self._done = True
        self._wake()

    def _fail(self, error: OSError) -> None:
        if not self._done and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- read by the caller ----------------------------------------------------------------

    async def read_chunk(self) -> bytes:
        """What has arrived since the last call (waiting for something); b"" once the
        body has ended. Raises ``ConnectionError`` if the connection broke first."""
        while not self._chunks:
            if self._done:
                self._finish()
                return b""
            if self._error is not None:
                raise self._error
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        conn = self._conn
        if conn is not None and conn.paused:
            conn.resume()
        return data

    async def read(self, limit: int) -> bytes:
        """The body, or its first ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        while size < limit:
            chunk = await self.read_chunk()
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        data = b"".join(parts)
        if len(data) > limit:
            self._chunks.insert(0, data[limit:])
            self._size += len(data) - limit
            data = data[:limit]
        return data

    def _finish(self) -> None:
        if not self.complete:
            self.complete = True
            self.release()

    def release(self) -> None:
        """Done with the response: its connection goes back to the pool if the body was
        read to its end, and is closed otherwise. Safe to call more than once."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finished(reusable=self.complete)

    close = release


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time."""

    __slots__ = (
        "_head", "_head_size", "_header_names", "_header_values", "_keep_alive", "_response",
        "_until_close", "closed", "idle_since", "method", "parser", "paused", "pool",
        "received", "transport",
    )  # fmt: skip

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.paused = False
        self.idle_since = 0.0
        self.received = False  # a byte of the current response arrived
        self.method = ""  # the current request's
        self._head: asyncio.Future[UpstreamResponse] | None = None
        self._response: UpstreamResponse | None = None
        self._header_names: list[bytes] = []
        self._header_values: list[bytes] = []
        self._head_size = 0
        self._keep_alive = True
        self._until_close = False  # a body that ends when the connection does

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self._head is None and self._response is None:
            self._lost(ConnectionError("the upstream sent bytes nobody asked for"))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # A callback's own error (headers too large...) comes wrapped: unwrap it.
            cause = exc.__context__
            if isinstance(cause, OSError):
                self._lost(cause)
            else:
                self._lost(ConnectionError(f"malformed HTTP response ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        if response is not None and self._until_close and exc is None:
            response._end()
        else:
            self._lost(ConnectionError("the upstream closed the connection"))

    def pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.pool.max_head:
            raise ConnectionError("the upstream's headers are too large")
        self._header_names.append(name)
        self._header_values.append(value)

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        names, values = self._header_names, self._header_values
        self._header_names, self._header_values = [], []
        if status < 200:  # an interim response (103 Early Hints...): the real one follows
            return
        headers: dict[str, str] = {}
        for raw, value in zip(names, values, strict=True):
            name = raw.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[name] = f"{headers[name]}, {text}" if name in headers else text
        self._keep_alive = self.parser.should_keep_alive()
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._until_close = (
            not chunked
            and "content-length" not in headers
            and status not in _NO_BODY
            and self.method != "HEAD"
        )
        head = self._head
        if head is None or head.done():
            return
        response = UpstreamResponse(self, status, headers)  # may refuse its coding
        self._head = None
        self._response = response
        head.set_result(response)

    def on_body(self, body: bytes) -> None:
        response = self._response
        if response is not None:
            response._feed(body)

    def on_message_complete(self) -> None:
        response = self._response
        if response is None:  # an interim response ended
            self._head_size = 0
            return
        self._until_close = False
        response._end()

    # -- used by the pool and the response -------------------------------------------------

    def send(self, method: str, data: bytes) -> asyncio.Future[UpstreamResponse]:
        assert self.transport is not None
        self.method = method
        self.received = False
        self._head_size = 0
        self._head = head = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return head

    def _lost(self, error: OSError) -> None:
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_exception(error)
        response = self._response
        if response is not None:
            response._fail(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def finished(self, reusable: bool) -> None:
        """The response was released: read whole (``reusable``) or abandoned."""
        self._response = None
        if not (reusable and self._keep_alive) or self.closed:
            self.close()
        else:
            self.resume()
        self.pool._returned(self)


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to the origin of ``base_url`` (see the module
    docstring). ``request`` sends a request and returns the response once its head has
    arrived; the caller reads the body and releases it."""

    max_head = 64 * 1024
    high_water = 1024 * 1024
    dns_ttl = 10.0

    def __init__(
        self, base_url: str, *, limit: int = 100, connect_timeout: float = 10.0,
        keepalive: float = 15.0,
    ) -> None:  # fmt: skip
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url must be an http:// or https:// URL, not {base_url!r}")
        if url.username or url.password:
            raise ValueError("base_url must not carry credentials (send them in headers)")
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.tls = url.scheme == "https"
        self.path = url.path.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = self.port == (443 if self.tls else 80)
        self._authority = host if default else f"{host}:{self.port}"
        self.limit = max(1, limit)
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self._idle: deque[_Connection] = deque()
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._busy: set[_Connection] = set()
        self._ssl: ssl.SSLContext | None = None
        self._closed = False
        # The host's addresses, looked up once per ``dns_ttl`` (a burst of new streams
        # must not queue a thousand lookups in the executor's few threads), and the
        # lookup in flight that concurrent connects share.
        self._addresses: list[tuple[int, str]] = []
        self._resolved_at = -1e9
        self._resolving: asyncio.Future[list[tuple[int, str]]] | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> UpstreamResponse:
        """Send ``method`` to ``path`` (under ``base_url``'s path) and wait for the head
        of the response."""
        target = quote(self.path + path, safe="/:@!$&'()*+,;=?%~")
        lines = [f"{_check(method, 'method')} {target} HTTP/1.1", f"host: {self._authority}"]
        given = {name.lower() for name in headers}
        if "user-agent" not in given:
            lines.append("user-agent: tokenrelay")
        if "accept-encoding" not in given:
            lines.append("accept-encoding: gzip, deflate")
        for name, value in headers.items():
            lines.append(f"{_check(name, 'a header name')}: {_check(value, 'a header value')}")
        if body is not None or method == "POST":
            lines.append(f"content-length: {len(body or b'')}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
        for _ in range(2):
            conn, reused = await self._acquire()
            try:
                return await conn.send(method, data)
            except ConnectionError:
                stale = reused and not conn.received
                conn.finished(reusable=False)
                if not stale:
                    raise
            except BaseException:
                conn.finished(reusable=False)
                raise
        raise ConnectionError("the upstream closed the connection")  # pragma: no cover

    async def _acquire(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise ConnectionError("the connection pool is closed")
            while self._idle:
                conn = self._idle.pop()
                if conn.closed or loop.time() - conn.idle_since > self.keepalive:
                    conn.close()
                    self._open -= 1
                    continue
                self._busy.add(conn)
                return conn, True
            if self._open < self.limit:
                break
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._open += 1
        try:
            conn = await self._connect(loop)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        self._busy.add(conn)
        return conn, False

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        ssl_context: ssl.SSLContext | None = None
        if self.tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
                self._ssl.set_alpn_protocols(["http/1.1"])
            ssl_context = self._ssl
        async with asyncio.timeout(self.connect_timeout):
            error: OSError | None = None
            for family, address in await self._resolve(loop):
                try:
                    _, conn = await loop.create_connection(
                        lambda: _Connection(self), address, self.port, family=family,
                        ssl=ssl_context,
                        server_hostname=self.host if ssl_context is not None else None,
                        ssl_handshake_timeout=(
                            self.connect_timeout if ssl_context is not None else None
                        ),
                    )  # fmt: skip
                    return conn
                except ssl.SSLError:
                    raise  # the server was reached: another address will not fix it
                except OSError as exc:
                    error = exc
            assert error is not None, "a lookup returns at least one address"
            raise error

    async def _resolve(self, loop: asyncio.AbstractEventLoop) -> list[tuple[int, str]]:
        if loop.time() - self._resolved_at < self.dns_ttl and self._addresses:
            return self._addresses
        if self._resolving is None:
            self._resolving = loop.create_future()
            lookup = self._resolving
            try:
                infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
                addresses: list[tuple[int, str]] = list(
                    dict.fromkeys((int(info[0]), str(info[4][0])) for info in infos)
                )
                if not addresses:
                    raise OSError(f"no address for {self.host}")
            except BaseException as exc:
                failed = (
                    exc if isinstance(exc, OSError) else OSError(f"looking up {self.host} failed")
                )
                lookup.set_exception(failed)
                lookup.exception()  # retrieved: the waiters, if any, raise it
                raise
            finally:
                self._resolving = None
            self._addresses, self._resolved_at = addresses, loop.time()
            lookup.set_result(addresses)
            return addresses
        return await asyncio.shield(self._resolving)

    def _returned(self, conn: _Connection) -> None:
        self._busy.discard(conn)
        if conn.closed or self._closed:
            conn.close()
            self._open -= 1
        else:
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.append(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        """Close every connection, idle or busy."""
        self._closed = True
        for conn in [*self._idle, *self._busy]:
            conn.close()
        self._idle.clear()
        self._busy.clear()
        self._open = 0
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        await asyncio.sleep(0)  # let the transports close
