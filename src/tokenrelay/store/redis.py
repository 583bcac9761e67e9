"""``RedisStore``: stream logs in Redis (or Valkey), shared by a fleet of gateways.

Needs redis-py (extra ``redis``) and Redis >= 6.2. For a stream ``S`` under the prefix
``P`` (default ``tokenrelay:``):

- ``P{S}:e`` — a Redis Stream of the entries; entry ``k`` has the id ``0-(k+1)``, so a
  read from any position is one ``XRANGE``;
- ``P{S}:m`` — a hash: metadata, owner, length, finished, whether it has a lease;
- ``P{S}:l`` — the owner's lease: a key that expires (``PX``) unless renewed;
- ``P{S}:r`` — readers by instance (count and until when);
- ``Prunning`` — a sorted set of running streams by lease expiry (the global limit and
  the abandoned-stream sweep read it); ``Pcancel:{owner}`` — cancellation requests;
- channels ``P{S}:n`` (the stream grew or finished) and ``Pc:{owner}`` (cancel);
- ``Pa:{name}`` — an alias: the stream id it points at, expiring (``PX``);
- ``Pc:{name}:{k}`` — a counter's total in the ``k``-th window since the epoch (windows
  of whole milliseconds), expiring at the end of the next window.

Every change is one Lua script, so it is atomic and one round trip; times are Redis's
own (``TIME``), so the gateways' clocks need not agree. Keys expire: a finished stream's
after the retention time, a running one's after its lease plus the retention time unless
renewed. Readers of streams produced elsewhere subscribe to their channel (one pub/sub
connection per store) and read on each notification. The scripts touch several keys, so
Redis Cluster is not supported; Sentinel or a single primary is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

import orjson

from .base import (
    StoreLimitError,
    StreamExistsError,
    StreamFinishedError,
    StreamInfo,
    StreamNotFoundError,
    check_count,
)
from .behind import BackedStore, Batch, WriteResult, unavailable

__all__ = ["RedisStore"]

log = logging.getLogger("tokenrelay.store")
T = TypeVar("T")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Append ARGV[first..] to the stream at position `start`, skipping what is there; finish
# it when `finish` is '1'. Keys: m, e, running, lease, readers. Returns the new length.
_APPEND = """
local function append(id, start, finish, retention, channel, first)
  local length = tonumber(redis.call('HGET', KEYS[1], 'length'))
  if start > length then return -3 end
  for i = first, #ARGV do
    local pos = start + i - first
    if pos >= length then
      redis.call('XADD', KEYS[2], '0-' .. (pos + 1), 'd', ARGV[i])
      length = pos + 1
    end
  end
  redis.call('HSET', KEYS[1], 'length', length)
  if finish then
    redis.call('HSET', KEYS[1], 'finished', '1', 'cancel', '0')
    redis.call('ZREM', KEYS[3], id)
    redis.call('DEL', KEYS[4], KEYS[5])
    if retention > 0 then
      redis.call('PEXPIRE', KEYS[1], retention)
      redis.call('PEXPIRE', KEYS[2], retention)
    else
      redis.call('DEL', KEYS[1], KEYS[2])
    end
  elseif length > 0 then
    local ttl = redis.call('PTTL', KEYS[1])
    if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
  end
  redis.call('PUBLISH', channel, length .. (finish and ' 1' or ' 0'))
  return length
end
"""

# KEYS: m, running, lease, e. ARGV: id, meta, owner, lease_ms or '', limit or '',
# replace ('1'), ttl_ms.
_CREATE = (
    _NOW
    + """
if ARGV[5] ~= '' then
  if redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf') >= tonumber(ARGV[5]) then return -2 end
end
if ARGV[6] ~= '1' and redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
redis.call('DEL', KEYS[1], KEYS[4])
local leased = '0'
local score = '+inf'
if ARGV[4] ~= '' then
  leased = '1'
  score = now + tonumber(ARGV[4])
  redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'owner', ARGV[3], 'length', 0,
           'finished', '0', 'leased', leased, 'cancel', '0')
redis.call('PEXPIRE', KEYS[1], ARGV[7])
redis.call('ZADD', KEYS[2], score, ARGV[1])
return 1
"""
)

# KEYS: m, e, running, lease, readers. ARGV: id, start, finish, retention_ms, channel,
# entries...
_WRITE = (
    _APPEND
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'finished') == '1' then return -2 end
return append(ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', tonumber(ARGV[4]), ARGV[5], 6)
"""
)

# KEYS: m, e, running, lease, readers. ARGV: id, owner or '', retention_ms, channel,
# entries...
_INTERRUPT = (
    _APPEND
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[1], 'finished') == '1' then return 0 end
if ARGV[2] == '' then
  if redis.call('HGET', KEYS[1], 'leased') ~= '1' then return 0 end
  if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
elseif redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then
  return 0
end
local length = tonumber(redis.call('HGET', KEYS[1], 'length'))
append(ARGV[1], length, true, tonumber(ARGV[3]), ARGV[4], 5)
return 1
"""
)

# KEYS: m, e. ARGV: start, limit (-1: all), retention_ms. Returns {length, finished,
# entries...} or -1.
_READ = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local state = redis.call('HMGET', KEYS[1], 'length', 'finished')
local length = tonumber(state[1])
local start = tonumber(ARGV[1])
local stop = length
if tonumber(ARGV[2]) >= 0 then stop = math.min(length, start + tonumber(ARGV[2])) end
local out = {length, tonumber(state[2])}
if state[2] == '1' and tonumber(ARGV[3]) > 0 then
  -- a reader still reading keeps it: retention counts from here
  if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
  end
end
if stop > start then
  local rows = redis.call('XRANGE', KEYS[2], '0-' .. (start + 1), '0-' .. stop)
  for _, row in ipairs(rows) do out[#out + 1] = row[2][2] end
end
return out
"""

# KEYS: m, lease. Returns {meta, length, finished, owner, abandoned} or -1.
_INFO = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local s = redis.call('HMGET', KEYS[1], 'meta', 'length', 'finished', 'owner', 'leased')
local abandoned = 0
if s[3] ~= '1' and s[5] == '1' and redis.call('EXISTS', KEYS[2]) == 0 then abandoned = 1 end
return {s[1], tonumber(s[2]), tonumber(s[3]), s[4], abandoned}
"""

# KEYS: running, then (m, lease, e) per stream. ARGV: owner, lease_ms, ttl_ms.
_RENEW = (
    _NOW
    + """
for i = 2, #KEYS, 3 do
  local s = redis.call('HMGET', KEYS[i], 'owner', 'finished', 'leased')
  if s[1] == ARGV[1] and s[2] == '0' and s[3] == '1' then
    redis.call('SET', KEYS[i + 1], ARGV[1], 'PX', ARGV[2])
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
    redis.call('PEXPIRE', KEYS[i + 2], ARGV[3])
    local id = string.sub(KEYS[i], string.len(ARGV[4]) + 1, -3)
    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), id)
  end
end
return 1
"""
)

# KEYS: running. ARGV: prefix, owner or ''. Running streams whose lease ran out (or all of
# the owner's), forgetting members whose stream expired.
_ABANDONED = (
    _NOW
    + """
local out = {}
if ARGV[2] == '' then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)) do
    if redis.call('EXISTS', ARGV[1] .. id .. ':m') == 1 then out[#out + 1] = id
    else redis.call('ZREM', KEYS[1], id) end
  end
else
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if redis.call('HGET', ARGV[1] .. id .. ':m', 'owner') == ARGV[2] then out[#out + 1] = id end
  end
end
return out
"""
)

# KEYS: m. ARGV: id, prefix. 1 asked, 0 finished, -1 unknown.
_REQUEST_CANCEL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local s = redis.call('HMGET', KEYS[1], 'finished', 'owner')
if s[1] == '1' then return 0 end
redis.call('HSET', KEYS[1], 'cancel', '1')
redis.call('SADD', ARGV[2] .. 'cancel:' .. s[2], ARGV[1])
redis.call('PUBLISH', ARGV[2] .. 'c:' .. s[2], ARGV[1])
return 1
"""

# KEYS: the owner's cancel set. ARGV: prefix.
_TAKE_CANCELS = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HGET', ARGV[1] .. id .. ':m', 'finished') == '0' then out[#out + 1] = id end
end
redis.call('DEL', KEYS[1])
return out
"""

# KEYS: readers hash. ARGV: instance, count, ttl_ms.
_SET_READERS = (
    _NOW
    + """
if tonumber(ARGV[2]) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. (now + tonumber(ARGV[3])))
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then  -- never shorten others' records
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
"""
)

# KEYS: readers hash. ARGV: instance to exclude.
_READERS = (
    _NOW
    + """
local n = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= ARGV[1] then
    local count, untl = string.match(all[i + 1], '(%d+) (%d+)')
    if tonumber(untl) > now then n = n + tonumber(count) end
  end
end
return n
"""
)

_RUNNING = _NOW + "return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')"

# KEYS: the alias. ARGV: stream id. Deletes it only while it points there.
_DROP_ALIAS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: the counter's key without its window. ARGV: amount, window_ms. Returns {the
# window's total, ms left in it}; an amount of 0 only reads.
_ADD_COUNT = (
    _NOW
    + """
local window = tonumber(ARGV[2])
local index = math.floor(now / window)
local key = KEYS[1] .. string.format('%d', index)
local left = (index + 1) * window - now
if ARGV[1] == '0' then return {tonumber(redis.call('GET', key) or '0'), left} end
local total = redis.call('INCRBY', key, ARGV[1])
redis.call('PEXPIRE', key, left + window)
return {total, left}
"""
)

_DAY_MS = 86_400_000


class RedisStore(BackedStore):
    """Stream logs in the Redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        retention: float = 600.0,
        prefix: str = "tokenrelay:",
        timeout: float = 5.0,
        max_connections: int = 200,
    ) -> None:
        super().__init__(retention=retention)
        try:
            import redis.asyncio as aioredis
            from redis import exceptions as redis_errors
        except ImportError:  # pragma: no cover - the extra's own message
            raise ImportError(
                "RedisStore needs redis-py: pip install 'tokenrelay[redis]'"
            ) from None
        self.prefix = prefix
        self._errors: tuple[type[BaseException], ...] = (
            redis_errors.ConnectionError,
            redis_errors.TimeoutError,
            redis_errors.BusyLoadingError,
            redis_errors.ReadOnlyError,
            OSError,
        )
        # A pool that waits for a free connection (up to ``timeout``) rather than failing
        # past its size: a burst of new streams must queue, not get 503s.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=min(timeout, 2.0),
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._no_script = redis_errors.NoScriptError
        self._pubsub_client = aioredis.Redis.from_url(
            url, socket_timeout=None, socket_connect_timeout=min(timeout, 2.0)
        )
        self._pubsub: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed: dict[bytes, asyncio.Future[None]] = {}  # channel -> acknowledged
        # One (un)subscription at a time: redis-py's PubSub opens its connection on its
        # first command, and two first commands at once each opened one (the second
        # replaced the first, whose subscription nobody then read); and an unsubscription
        # must not overtake a subscription of the same channel made after it was decided.
        self._subscribing = asyncio.Lock()
        scripts = {
            "create": _CREATE,
            "write": _WRITE,
            "interrupt": _INTERRUPT,
            "read": _READ,
            "info": _INFO,
            "renew": _RENEW,
            "abandoned": _ABANDONED,
            "cancel": _REQUEST_CANCEL,
            "take": _TAKE_CANCELS,
            "set_readers": _SET_READERS,
            "readers": _READERS,
            "running": _RUNNING,
            "drop_alias": _DROP_ALIAS,
            "add_count": _ADD_COUNT,
        }
        self._scripts = {name: self._redis.register_script(src) for name, src in scripts.items()}

    def _keys(self, stream_id: str) -> list[str]:
        p = f"{self.prefix}{stream_id}"
        return [f"{p}:m", f"{p}:e", f"{self.prefix}running", f"{p}:l", f"{p}:r"]

    def _channel(self, stream_id: str) -> str:
        return f"{self.prefix}{stream_id}:n"

    def _alias_key(self, name: str) -> str:
        return f"{self.prefix}a:{name}"

    def _counter_key(self, name: str) -> str:
        return f"{self.prefix}c:{name}:"  # the window's index follows

    async def _call(self, what: str, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except self._errors as exc:
            raise unavailable(f"redis {what}", exc) from None

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._call(name, self._scripts[name](keys=keys, args=args))

    # -- BackedStore's database ------------------------------------------------------------

    async def _create(
        self,
        stream_id: str,
        meta: Mapping[str, Any],
        owner: str,
        lease: float | None,
        limit: int | None,
        replace: bool,
    ) -> None:
        m, e, running, lease_key, _ = self._keys(stream_id)
        lease_ms = "" if lease is None else str(max(1, int(lease * 1000)))
        ttl = (_DAY_MS if lease is None else int(lease * 1000)) + int(self.retention * 1000)
        result = await self._script(
            "create",
            [m, running, lease_key, e],
            [
                stream_id,
                orjson.dumps(dict(meta)),
                owner,
                lease_ms,
                "" if limit is None else str(limit),
                "1" if replace else "0",
                str(max(ttl, 1)),
            ],
        )
        if result == -1:
            raise StreamExistsError(f"stream {stream_id!r} exists")
        if result == -2:
            raise StoreLimitError(f"{limit} streams are running")

    def _write_args(self, batch: Batch) -> tuple[list[str], list[Any]]:
        args: list[Any] = [
            batch.stream_id,
            batch.start,
            "1" if batch.finish else "0",
            int(self.retention * 1000),
            self._channel(batch.stream_id),
            *batch.entries,
        ]
        return self._keys(batch.stream_id), args

    async def _write(self, batches: Sequence[Batch]) -> list[WriteResult]:
        # EVALSHA straight into the pipeline: redis-py's Script in a pipeline asks
        # SCRIPT EXISTS first, a round trip per write. Loaded once (again after a
        # restart of Redis, which forgets scripts).
        sha = self._scripts["write"].sha
        for attempt in (1, 2):
            async with self._redis.pipeline(transaction=False) as pipe:
                for batch in batches:
                    keys, args = self._write_args(batch)
                    pipe.evalsha(sha, len(keys), *keys, *args)
                try:
                    results = await self._call("write", pipe.execute())
                    break
                except self._no_script:
                    if attempt == 2:
                        raise
                    await self._call("load", self._redis.script_load(_WRITE))
        out: list[WriteResult] = []
        for batch, result in zip(batches, results, strict=True):
            if result in (-1, -3):
                out.append(StreamNotFoundError(batch.stream_id))
            elif result == -2:
                out.append(StreamFinishedError(f"stream {batch.stream_id!r} is finished"))
            else:
                out.append(None)
        return out

    async def _read(
        self, stream_id: str, start: int, limit: int | None
    ) -> tuple[list[bytes], bool]:
        m, e, *_ = self._keys(stream_id)
        result = await self._script(
            "read", [m, e], [start, -1 if limit is None else limit, int(self.retention * 1000)]
        )
        if result == -1:
            raise StreamNotFoundError(stream_id)
        length, finished, *entries = result
        end = start + len(entries)
        return list(entries), bool(finished) and end >= length

    async def _info(self, stream_id: str) -> StreamInfo:
        m, _, _, lease_key, _ = self._keys(stream_id)
        result = await self._script("info", [m, lease_key], [])
        if result == -1:
            raise StreamNotFoundError(stream_id)
        meta, length, finished, owner, abandoned = result
        return StreamInfo(
            stream_id,
            orjson.loads(meta),
            int(length),
            bool(finished),
            owner.decode() if owner else "",
            bool(abandoned),
        )

    async def _delete(self, stream_id: str) -> None:
        m, e, running, lease_key, readers = self._keys(stream_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(m, e, lease_key, readers)
            pipe.zrem(running, stream_id)
            pipe.publish(self._channel(stream_id), b"gone")
            await self._call("delete", pipe.execute())

    async def _take_cancels(self, owner: str) -> list[str]:
        ids = await self._script("take", [f"{self.prefix}cancel:{owner}"], [self.prefix])
        return [i.decode() for i in ids]

    # -- notifications -----------------------------------------------------------------------

    async def _watch(self, stream_id: str | None, owner: str | None) -> None:
        channel = (
            self._channel(stream_id) if stream_id is not None else f"{self.prefix}c:{owner}"
        ).encode()
        acked = self._subscribed.get(channel)
        if acked is not None:
            if not acked.done():
                await asyncio.shield(acked)
            return
        loop = asyncio.get_running_loop()
        acked = self._subscribed[channel] = loop.create_future()
        if self._pubsub is None:
            self._pubsub = self._pubsub_client.pubsub()
        try:
            async with self._subscribing:
                await self._call("subscribe", self._pubsub.subscribe(channel))
        except BaseException:
            self._subscribed.pop(channel, None)
            acked.cancel()
            raise
        if self._listener is None:
            self._listener = loop.create_task(self._listen())
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(2.0):
                await asyncio.shield(acked)

    async def _listen(self) -> None:
        pause = 0.05
        try:
            while not self._closed:
                try:
                    message = await self._pubsub.get_message(timeout=1.0)
                except self._errors:
                    # Missed messages while away: every waiter reads again.
                    self._remote.wake_all()
                    self._remote_pos.clear()
                    self._cancels.wake_all()
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 2.0)
                    continue
                except RuntimeError:  # pubsub closed
                    return
                pause = 0.05
                if message is None:
                    self._unsubscribe_idle()
                    continue
                self._message(message)
        finally:
            self._listener = None

    def _message(self, message: Mapping[str, Any]) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == b"subscribe" or kind == "subscribe":
            acked = self._subscribed.get(channel)
            if acked is not None and not acked.done():
                acked.set_result(None)
            return
        if kind not in (b"message", "message"):
            return
        name = channel.decode()
        prefix = self.prefix
        if name.endswith(":n"):
            stream_id = name[len(prefix) : -2]
            data = message["data"]
            if data == b"gone":
                self._changed(stream_id)
                return
            length, _, finished = data.partition(b" ")
            self._changed(stream_id, int(length), finished == b"1")
        elif name.startswith(f"{prefix}c:"):
            self._cancel_requested(name[len(prefix) + 2 :])

    def _unsubscribe_idle(self) -> None:
        """Leave the channels nobody waits on now (checked when the connection is quiet)."""
        watched = {self._channel(s).encode() for s in self._watched()}
        watched |= {f"{self.prefix}c:{o}".encode() for o in self._cancel_watchers()}
        idle = [c for c in self._subscribed if c not in watched]
        if idle and self._pubsub is not None:
            for channel in idle:
                del self._subscribed[channel]
            asyncio.get_running_loop().create_task(self._unsubscribe(idle))

    async def _unsubscribe(self, channels: list[bytes]) -> None:
        async with self._subscribing:
            # (A channel subscribed again since it was found idle stays.)
            channels = [c for c in channels if c not in self._subscribed]
            if channels:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(*channels)

    async def _close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            await self._pubsub_client.aclose()
        with contextlib.suppress(Exception):
            await self._redis.aclose(close_connection_pool=True)  # the pool is ours

    # -- ownership ---------------------------------------------------------------------------

    async def renew(self, owner: str, stream_ids: Sequence[str], lease: float) -> None:
        if not stream_ids:
            return
        keys = [f"{self.prefix}running"]
        for stream_id in stream_ids:
            m, e, _, lease_key, _ = self._keys(stream_id)
            keys += [m, lease_key, e]
        lease_ms = max(1, int(lease * 1000))
        ttl = lease_ms + int(self.retention * 1000)
        await self._script("renew", keys, [owner, lease_ms, ttl, self.prefix])

    async def _abandoned(self, owner: str | None) -> list[str]:
        ids = await self._script("abandoned", [f"{self.prefix}running"], [self.prefix, owner or ""])
        return [i.decode() for i in ids]

    async def interrupt(
        self, stream_id: str, entries: Sequence[bytes], *, owner: str | None = None
    ) -> bool:
        args = [
            stream_id,
            owner or "",
            int(self.retention * 1000),
            self._channel(stream_id),
            *entries,
        ]
        done = await self._script("interrupt", self._keys(stream_id), args)
        return bool(done)

    async def _request_cancel(self, stream_id: str) -> bool:
        m = self._keys(stream_id)[0]
        result = await self._script("cancel", [m], [stream_id, self.prefix])
        if result == -1:
            raise StreamNotFoundError(stream_id)
        return bool(result)

    async def set_readers(self, stream_id: str, instance: str, count: int, ttl: float) -> None:
        key = self._keys(stream_id)[4]
        await self._script("set_readers", [key], [instance, count, max(1, int(ttl * 1000))])

    async def readers(self, stream_id: str, exclude: str = "") -> int:
        return int(await self._script("readers", [self._keys(stream_id)[4]], [exclude]))

    async def _running(self) -> int:
        return int(await self._script("running", [f"{self.prefix}running"], []))

    # -- aliases (written at once, not behind: they are rare) --------------------------------

    async def put_alias(self, name: str, stream_id: str, ttl: float) -> None:
        ttl_ms = max(1, int(ttl * 1000))
        await self._call("put alias", self._redis.set(self._alias_key(name), stream_id, px=ttl_ms))

    async def alias(self, name: str) -> str | None:
        found = await self._call("alias", self._redis.get(self._alias_key(name)))
        return found.decode() if isinstance(found, bytes) else found

    async def drop_alias(self, name: str, stream_id: str) -> None:
        await self._script("drop_alias", [self._alias_key(name)], [stream_id])

    # -- counters (written at once, not behind: a limit must hold across processes) -------

    async def add_count(self, name: str, amount: int, window: float) -> tuple[int, float]:
        check_count(amount, window)
        window_ms = max(1, round(window * 1000))
        total, left_ms = await self._script(
            "add_count", [self._counter_key(name)], [amount, window_ms]
        )
        return int(total), left_ms / 1000
