"""``open_store(url)``: a store from the URL an operator writes (flag, environment,
configuration file)."""

from __future__ import annotations

from .base import StreamStore

__all__ = ["open_store", "parse_store_url"]

_SCHEMES = ("memory", "sqlite", "redis", "rediss", "unix", "valkey", "valkeys")


def parse_store_url(url: str) -> tuple[str, str]:
    """``(kind, where)``: ``("memory", "")``, ``("sqlite", path)`` or ``("redis", url)``;
    ``ValueError`` naming what is wrong. ``sqlite:///abs/path.db`` is an absolute path,
    ``sqlite://rel.db`` one relative to the working directory."""
    scheme, sep, rest = url.partition(":")
    scheme = scheme.lower()
    if url == "memory" or (scheme == "memory" and rest in ("", "//")):
        return "memory", ""
    if not sep or scheme not in _SCHEMES:
        raise ValueError(
            f"not a store URL: {url!r} (memory, sqlite:///path/to/streams.db, redis://host:6379/0)"
        )
    if scheme == "sqlite":
        path = rest[2:] if rest.startswith("//") else rest
        if not path:
            raise ValueError(f"{url!r} names no file (sqlite:///path/to/streams.db)")
        return "sqlite", path
    if scheme in ("valkey", "valkeys"):  # Valkey speaks the Redis protocol
        url = "redis" + url[len("valkey") :]
    return "redis", url


def open_store(url: str, *, retention: float = 600.0) -> StreamStore:
    """The store a URL names, keeping finished streams ``retention`` seconds."""
    kind, where = parse_store_url(url)
    if kind == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(where, retention=retention)
    if kind == "redis":
        from .redis import RedisStore

        return RedisStore(where, retention=retention)
    from .memory import MemoryStore

    return MemoryStore(retention=retention)
