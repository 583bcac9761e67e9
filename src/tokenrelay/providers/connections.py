"""HTTP/1.1 connections to one upstream origin, kept alive in a pool: what ``HTTPProvider``
sends its requests over.

Why not aiohttp (which this replaced): reading a paced token stream, aiohttp's per-chunk
work (its ``StreamReader``, flow control, timers, chunk bookkeeping) cost about as much
CPU as everything else the gateway does to a token on its way in. The same reads through
the protocol below — httptools (the C parser uvicorn uses) feeding a buffer that wakes one
waiter — cost about two thirds (``bench/upstream_read.py``; figures in
``bench/RESULTS.md``). What the gateway needs of a client is small and fixed: one request
at a time per connection, a streamed body read as it comes, keep-alive, a connection
limit, a connect timeout, TLS with the system's trust store, no redirects, no cookies, no
proxies (as aiohttp did with its defaults).

Decisions:

- A request is never sent twice by the pool, with one exception: a GET on a connection
  taken from the pool that the server turns out to have closed while it was idle (no byte
  of an answer) goes again on a new connection. A POST is not: a server that read it and
  then died looks the same, and a prompt must not be generated and billed twice behind
  the caller's back; the gateway's retry policy decides, and counts the attempt.
- ``accept-encoding: gzip, deflate`` (what aiohttp sent); a gzip or deflate body is
  inflated as it is read, never more than ``high_water`` ahead of the reader (a
  compression bomb costs reading time, not memory); any other content coding is an
  error.
- A response whose body was not read to its end is closed (its connection with it), so
  the upstream sees the disconnect and stops generating; only a body read to its end
  returns the connection to the pool. A connection that says anything it was not asked
  (a second response, bytes after the end) is closed.
- At most ``limit`` connections per pool, busy or idle; a request beyond it waits for
  one. Idle connections older than ``keepalive`` seconds are closed, not reused, and so
  is one the kernel holds anything for when it is taken (``readable``: the server
  closed it while our loop was busy, before its callbacks ran).
- Header names and values carrying CR, LF or NUL are refused (``ValueError``): nothing
  configured can split a request. HEAD is not supported (nothing here needs it).
- Bounds: more than ``max_head`` bytes of status line, headers or trailers fail the
  response (counted as they arrive, before the parser holds them); a body buffered more
  than ``high_water`` bytes ahead of its reader pauses the socket until it catches up.
- Reads may be paced (``pace_reads(window)``, per event loop; what the gateway asks for
  while its core is saturated): a connection just read from while reading a body stops
  reading for the rest of the window, then reads everything that came meanwhile in one
  go. Reading, decoding and relaying tokens costs per read far more than per byte, so a
  saturated gateway relays several tokens for little more than the price of one. A
  connection is held only after a read, so a token after a silence (the first one, after
  the prompt) never waits, and a response's first two pieces of body are never held
  back (a role chunk, then the first token); a request sent on a held connection
  releases it.
- The host name is looked up once per ``dns_ttl`` seconds, by one lookup that a burst
  of new connections shares (cancelling a caller does not cancel it). Its addresses are
  tried as Happy Eyeballs does (RFC 8305; uvloop's ``create_connection`` does not): the
  families alternate, the next attempt starts when the one before fails or has not
  connected within ``CONNECT_STAGGER``, the first to connect wins and the others are
  closed, all within one ``connect_timeout``. So an address that never answers (an IPv6
  route that drops packets) costs a quarter of a second, not the timeout.

Errors are the standard library's: ``ConnectionError`` (refused, reset, closed early,
a malformed response), ``TimeoutError`` (connect), ``ssl.SSLError``; all are ``OSError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import select
import socket
import ssl
import weakref
import zlib
from collections import deque
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

__all__ = ["ConnectionPool", "UpstreamResponse", "check_header", "pace_reads"]

_NO_BODY = (204, 304)


def _check(text: str, what: str) -> str:
    if "\r" in text or "\n" in text or "\0" in text:
        raise ValueError(f"{what} must not contain CR, LF or NUL")
    return text


def check_header(name: str, value: str) -> None:
    """``ValueError`` (naming the header, never quoting its value) if it could split a
    request: what configuration checks before any request is made."""
    _check(name, "a header name")
    _check(value, f"header {name!r}")


CONNECT_STAGGER = 0.25
"""Seconds an address has to connect before the next one is tried too (RFC 8305's
"Connection Attempt Delay", its recommended value)."""


def _close_loser(attempt: asyncio.Task[_Connection], *, won: _Connection | None) -> None:
    """An attempt of ``_race`` ended: its connection closed unless it is the one used (its
    error retrieved, so that none is logged as never retrieved)."""
    if not attempt.cancelled() and attempt.exception() is None and attempt.result() is not won:
        attempt.result().close()


def _interleaved(addresses: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """``addresses`` with their families alternating, the first address's family first
    (RFC 8305, section 4), each family's in the resolver's order."""
    families: dict[int, list[tuple[int, str]]] = {}
    for address in addresses:
        families.setdefault(address[0], []).append(address)
    out: list[tuple[int, str]] = []
    queues = list(families.values())
    while queues:
        out += [queue.pop(0) for queue in queues]
        queues = [queue for queue in queues if queue]
    return out


# ``readable``'s check (``select.poll``: not on Windows; ``POLLRDHUP``: Linux only).
_POLL = getattr(select, "poll", None)
_READABLE = select.POLLIN | getattr(select, "POLLRDHUP", 0) if _POLL is not None else 0


class _ReadPacer:
    """The upstream reads of one loop, paced while its owner says so (``pace_reads``):
    a connection that has just been read from while reading a body stops reading for
    ``window`` seconds (rounded up to a quarter of it: the connections due together share
    one timer), then reads whatever came meanwhile at once. Off (``window`` 0), a
    connection reads as data comes."""

    __slots__ = ("_due", "_loop", "window")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weakly: this is the value of a weak mapping keyed by the loop (a timer handle
        # holds the loop while connections are held).
        self._loop = weakref.ref(loop)
        self._due: dict[float, tuple[asyncio.TimerHandle, list[_Connection]]] = {}
        self.window = 0.0

    def hold(self, conn: _Connection) -> None:
        loop = self._loop()
        if loop is None:
            return
        conn.hold()
        step = self.window / 4
        when = (loop.time() // step + 5) * step  # in window to window + step
        due = self._due.get(when)
        if due is None:
            handle = loop.call_at(when, self._release, when)
            due = self._due[when] = (handle, [])
        due[1].append(conn)

    def _release(self, when: float) -> None:
        _, held = self._due.pop(when, (None, []))
        for conn in held:
            conn.unhold()

    def release(self) -> None:
        """Every held connection reads again, now."""
        due, self._due = self._due, {}
        for handle, held in due.values():
            handle.cancel()
            for conn in held:
                conn.unhold()


_UNPACED = 2
"""A response's first pieces of body are never held back (a role chunk, then the first
token: a connection is held after a read, so a token after a silence never waits)."""

_PACERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ReadPacer] = (
    weakref.WeakKeyDictionary()
)


def _pacer(loop: asyncio.AbstractEventLoop) -> _ReadPacer:
    pacer = _PACERS.get(loop)
    if pacer is None:
        pacer = _PACERS[loop] = _ReadPacer(loop)
    return pacer


def pace_reads(window: float) -> None:
    """From now on, each upstream connection of the running loop that is reading a body
    reads at most once per ``window`` seconds (0: as data comes, releasing every connection
    held now). What a caller whose core is saturated asks for: one read of several
    tokens costs little more than one of one."""
    pacer = _pacer(asyncio.get_running_loop())
    pacer.window = window
    if not window:
        pacer.release()


class UpstreamResponse:
    """One response: its status and headers (names in lower case, repeated ones joined
    with ", "), then its body as it arrives (``read_chunk``)."""

    __slots__ = (
        "_arrived", "_capped", "_chunks", "_conn", "_done", "_error", "_high_water",
        "_inflater", "_loop", "_pending", "_size", "_waiter", "complete", "headers", "pieces",
        "status",
    )  # fmt: skip

    def __init__(
        self, conn: _Connection, status: int, headers: dict[str, str], high_water: int
    ) -> None:
        self._conn: _Connection | None = conn
        self._loop = asyncio.get_running_loop()  # (made in the connection's callback)
        self.pieces = 0  # pieces of the body that arrived (``_feed``)
        self.status = status
        self.headers = headers
        self.complete = False  # the body was read to its end
        self._chunks: list[bytes] = []
        self._size = 0  # bytes in _chunks
        self._high_water = high_water
        self._arrived = False  # the body's last byte came off the wire
        self._done = False  # ... and all of it is in _chunks
        self._error: OSError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._pending = b""  # compressed bytes not inflated yet (the buffer was full)
        self._capped = False  # the last inflate stopped at its limit: more may come
        coding = headers.get("content-encoding", "identity").strip().lower()
        if coding in ("gzip", "x-gzip", "deflate"):
            self._inflater: zlib._Decompress | None = zlib.decompressobj(32 + zlib.MAX_WBITS)
        elif coding in ("identity", ""):
            self._inflater = None
        else:
            raise ConnectionError(f"unsupported content-encoding {coding!r}")

    # -- fed by the connection -------------------------------------------------------------

    def _feed(self, body: bytes) -> None:
        self.pieces += 1
        if self._error is not None or self._arrived:
            return
        if self._inflater is None:
            self._push(body)
        else:
            self._pending = self._pending + body if self._pending else body
            self._inflate()

    def _push(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        self._wake()
        conn = self._conn
        if conn is not None and self._size > self._high_water:
            conn.pause()  # until the reader catches up

    def _inflate(self) -> None:
        """Inflate what is pending, as far as the buffer has room."""
        inflater = self._inflater
        assert inflater is not None
        while (self._pending or self._capped) and self._size < self._high_water:
            room = self._high_water - self._size
            try:
                out = inflater.decompress(self._pending, room)
            except zlib.error:
                self._broken(ConnectionError("malformed compressed body"))
                return
            self._pending = inflater.unconsumed_tail
            self._capped = len(out) == room
            if out:
                self._push(out)
            elif not self._pending:
                break
        conn = self._conn
        if self._pending or self._capped:
            if conn is not None:
                conn.pause()  # more to inflate once the reader has taken some
        elif self._arrived:
            self._finish_body()

    def _finish_body(self) -> None:
        if self._inflater is not None:
            try:
                tail = self._inflater.flush()
            except zlib.error:
                self._broken(ConnectionError("malformed compressed body"))
                return
            if tail:
                self._chunks.append(tail)
                self._size += len(tail)
        self._done = True
        self._wake()

    def _end(self) -> None:
        if self._error is not None or self._arrived:
            return
        self._arrived = True
        if not (self._pending or self._capped):
            self._finish_body()

    def _broken(self, error: OSError) -> None:
        conn = self._conn
        if conn is not None:
            conn._lost(error)  # fails us, and stops reading what follows
        else:
            self._fail(error)

    def _fail(self, error: OSError) -> None:
        if not self._done and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # (cancelled: the reader was)
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
            if self._pending or self._capped:
                self._inflate()
                continue
            waiter = self._waiter = self._loop.create_future()
            await waiter  # (``_wake`` takes it back)
        chunks = self._chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._size = 0
        if self._pending or self._capped:
            self._inflate()  # the next read's, now that there is room
        conn = self._conn
        if conn is not None and conn.paused and not (self._pending or self._capped):
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
        "_expecting", "_head", "_head_size", "_header_names", "_header_values", "_keep_alive",
        "_pacer", "_response", "_unparsed", "_until_close", "closed", "fd", "gone", "held",
        "idle_since", "parser", "paused", "pool", "received", "transport",
    )  # fmt: skip

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.fd = -1  # the socket's, for ``readable``
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.paused = False  # reading paused: the reader is behind (``pause``)
        self.held = False  # reading paused: reads are paced (``_ReadPacer``)
        self._pacer: _ReadPacer | None = None
        self.idle_since = 0.0
        self.received = False  # a byte of the current response arrived
        self.gone: asyncio.Future[None] | None = None  # done once the transport is gone
        self._expecting = False  # a request was sent whose response has not ended
        self._head: asyncio.Future[UpstreamResponse] | None = None
        self._response: UpstreamResponse | None = None
        self._header_names: list[bytes] = []
        self._header_values: list[bytes] = []
        self._head_size = 0  # bytes of this response's headers and trailers
        self._unparsed = 0  # head or trailer bytes fed since the last body or head
        self._keep_alive = True
        self._until_close = False  # a body that ends when the connection does

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else -1
        loop = asyncio.get_running_loop()
        self.gone = loop.create_future()
        self._pacer = _pacer(loop)
        self.pool._live.add(self)

    def data_received(self, data: bytes) -> None:
        self.received = True
        if not self._expecting:
            self._lost(ConnectionError("the upstream sent bytes nobody asked for"))
            return
        self._unparsed += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # A callback's own error (a response nobody asked for...) comes wrapped.
            cause = exc.__context__
            if isinstance(cause, OSError):
                self._lost(cause)
            else:
                self._lost(ConnectionError(f"malformed HTTP response ({exc})"))
            return
        if self._unparsed > self.pool.max_head:
            # httptools holds an unfinished header line whole: refused before it grows.
            self._lost(ConnectionError("the upstream's headers are too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._live.discard(self)
        if self.gone is not None and not self.gone.done():
            self.gone.set_result(None)
        response = self._response
        if response is not None and self._until_close and exc is None:
            response._end()
        else:
            self._lost(ConnectionError("the upstream closed the connection"))

    def pause(self) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.paused = True
            if not self.held:
                self.transport.pause_reading()

    def resume(self) -> None:
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            if not self.held:
                self.transport.resume_reading()

    def hold(self) -> None:
        """Stop reading until ``unhold`` (the pacer's window)."""
        if not self.held and self.transport is not None and not self.closed:
            self.held = True
            if not self.paused:
                self.transport.pause_reading()

    def unhold(self) -> None:
        if self.held:
            self.held = False
            if not self.paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if not self._expecting:
            raise ConnectionError("the upstream sent a response nobody asked for")
        self._header_names, self._header_values = [], []
        self._head_size = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.pool.max_head:
            raise ConnectionError("the upstream's headers are too large")
        if self._response is None:  # trailers are read past, not kept
            self._header_names.append(name)
            self._header_values.append(value)

    def on_headers_complete(self) -> None:
        self._unparsed = 0
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
            not chunked and "content-length" not in headers and (status not in _NO_BODY)
        )
        head = self._head
        if head is None or head.done():
            raise ConnectionError("the upstream sent a response nobody waits for")
        response = UpstreamResponse(self, status, headers, self.pool.high_water)  # may refuse
        self._head = None
        self._response = response
        head.set_result(response)

    def on_body(self, body: bytes) -> None:
        self._unparsed = 0
        response = self._response
        if response is not None:
            response._feed(body)
            pacer = self._pacer
            if pacer is not None and pacer.window and not self.held and response.pieces > _UNPACED:
                pacer.hold(self)

    def on_message_complete(self) -> None:
        response = self._response
        if response is None:  # an interim response ended
            return
        self._expecting = False
        self._until_close = False
        response._end()

    # -- used by the pool and the response -------------------------------------------------

    def readable(self) -> bool:
        """Whether the kernel holds something for this idle connection that its callbacks
        have not seen yet: the server's close (its keep-alive timeout, while our loop was
        busy) or bytes nobody asked for. Either way it must not carry a request: a POST
        sent on it would fail and is never sent again. One ``poll`` system call."""
        if self.fd < 0 or _POLL is None:
            return False
        poll = _POLL()
        poll.register(self.fd, _READABLE)
        try:
            return bool(poll.poll(0))
        except OSError:
            return True

    def send(self, data: bytes) -> asyncio.Future[UpstreamResponse]:
        assert self.transport is not None
        self.unhold()  # (a request's answer is not paced before its first byte)
        self.received = False
        self._expecting = True
        self._unparsed = 0
        self._header_names, self._header_values = [], []
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
        self._expecting = False
        if self.transport is not None:
            self.transport.close()

    def finished(self, reusable: bool) -> None:
        """The response was released: read whole (``reusable``) or abandoned."""
        self._response = None
        if not (reusable and self._keep_alive) or self.closed or self._expecting:
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
        self._open = 0  # connections counted against the limit (connecting, busy, idle)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._live: set[_Connection] = set()  # transports not yet gone
        self._ssl: ssl.SSLContext | None = None
        self._closed = False
        self._addresses: list[tuple[int, str]] = []
        self._resolved_at = -1e9
        self._lookup: asyncio.Task[list[tuple[int, str]]] | None = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> UpstreamResponse:
        """Send ``method`` to ``path`` (under ``base_url``'s path) and wait for the head
        of the response."""
        if method == "HEAD":
            raise ValueError("HEAD is not supported")
        target = quote(self.path + path, safe="/:@!$&'()*+,;=?%~")
        lines = [f"{_check(method, 'method')} {target} HTTP/1.1", f"host: {self._authority}"]
        given = {name.lower() for name in headers}
        if "user-agent" not in given:
            lines.append("user-agent: tokenrelay")
        if "accept-encoding" not in given:
            lines.append("accept-encoding: gzip, deflate")
        for name, value in headers.items():
            check_header(name, value)
            lines.append(f"{name}: {value}")
        if body is not None or method == "POST":
            lines.append(f"content-length: {len(body or b'')}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
        again = method == "GET"  # the one request the pool may send twice
        while True:
            conn, reused = await self._acquire()
            try:
                return await conn.send(data)
            except ConnectionError:
                stale = again and reused and not conn.received
                conn.finished(reusable=False)
                if not stale:
                    raise
                again = False
            except BaseException:
                conn.finished(reusable=False)
                raise

    async def _acquire(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise ConnectionError("the connection pool is closed")
            while self._idle:
                conn = self._idle.pop()
                if conn.closed or loop.time() - conn.idle_since > self.keepalive or conn.readable():
                    conn.close()
                    self._open -= 1
                    continue
                return conn, True
            if self._open < self.limit:
                break
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were woken for a connection: pass it on
                raise
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
        if self._closed:  # closed while we connected
            conn.close()
            self._open -= 1
            raise ConnectionError("the connection pool is closed")
        return conn, False

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        ssl_context: ssl.SSLContext | None = None
        if self.tls:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
                self._ssl.set_alpn_protocols(["http/1.1"])
            ssl_context = self._ssl
        async with asyncio.timeout(self.connect_timeout):
            addresses = _interleaved(await self._resolve(loop))
            if len(addresses) == 1:  # (the common case: no race to run)
                return await self._attempt(loop, *addresses[0], ssl_context)
            return await self._race(loop, addresses, ssl_context)

    async def _attempt(
        self,
        loop: asyncio.AbstractEventLoop,
        family: int,
        address: str,
        ssl_context: ssl.SSLContext | None,
    ) -> _Connection:
        _, conn = await loop.create_connection(
            lambda: _Connection(self), address, self.port, family=family, ssl=ssl_context,
            server_hostname=self.host if ssl_context is not None else None,
            ssl_handshake_timeout=self.connect_timeout if ssl_context is not None else None,
        )  # fmt: skip
        return conn

    async def _race(
        self,
        loop: asyncio.AbstractEventLoop,
        addresses: list[tuple[int, str]],
        ssl_context: ssl.SSLContext | None,
    ) -> _Connection:
        """The first of ``addresses`` to connect, each started ``CONNECT_STAGGER`` after
        the one before or as soon as it failed (see the module docstring)."""
        waiting = list(addresses)
        attempts: list[asyncio.Task[_Connection]] = []
        error: BaseException | None = None
        won: _Connection | None = None
        try:
            while won is None:
                if waiting:
                    family, address = waiting.pop(0)
                    connecting = self._attempt(loop, family, address, ssl_context)
                    attempts.append(loop.create_task(connecting))
                running = [attempt for attempt in attempts if not attempt.done()]
                if not running:
                    assert error is not None
                    raise error
                done, _ = await asyncio.wait(
                    running,
                    timeout=CONNECT_STAGGER if waiting else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for attempt in done:
                    exc = attempt.exception()
                    if exc is None:
                        won = won or attempt.result()
                    elif isinstance(exc, ssl.SSLError):
                        raise exc  # the server was reached: another address will not fix it
                    else:
                        error = exc
            return won
        finally:
            for attempt in attempts:
                if not attempt.done():
                    attempt.cancel()
            for attempt in attempts:  # the others that connected (or still might)
                attempt.add_done_callback(functools.partial(_close_loser, won=won))

    async def _resolve(self, loop: asyncio.AbstractEventLoop) -> list[tuple[int, str]]:
        if self._addresses and loop.time() - self._resolved_at < self.dns_ttl:
            return self._addresses
        lookup = self._lookup
        if lookup is None:
            lookup = self._lookup = loop.create_task(self._look_up(loop))
            # Its failure is every caller's, and retrieved even if all of them are gone.
            lookup.add_done_callback(lambda task: task.cancelled() or task.exception())
        # Shielded: a caller cancelled (its deadline passed) leaves the lookup running
        # for the others, and for the cache.
        try:
            return await asyncio.shield(lookup)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if lookup.cancelled() and self._closed and task is not None and not task.cancelling():
                raise ConnectionError("the connection pool is closed") from None
            raise

    async def _look_up(self, loop: asyncio.AbstractEventLoop) -> list[tuple[int, str]]:
        try:
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            addresses: list[tuple[int, str]] = list(
                dict.fromkeys((int(info[0]), str(info[4][0])) for info in infos)
            )
            if not addresses:
                raise OSError(f"no address for {self.host}")
            self._addresses, self._resolved_at = addresses, loop.time()
            return addresses
        finally:
            self._lookup = None

    def _returned(self, conn: _Connection) -> None:
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
        """Close every connection, idle or busy, and wait (a little) until they are gone."""
        self._closed = True
        if self._lookup is not None:
            self._lookup.cancel()
        live = list(self._live)
        for conn in live:
            conn.close()
        self._idle.clear()
        self._open = 0
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        gone = [conn.gone for conn in live if conn.gone is not None and not conn.gone.done()]
        if gone:
            await asyncio.wait(gone, timeout=2.0)
        for conn in live:  # a peer that never answered TLS's close: cut
            if conn.transport is not None and not (conn.gone is None or conn.gone.done()):
                with contextlib.suppress(Exception):
                    conn.transport.abort()
