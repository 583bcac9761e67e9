"""The gateway's TOML configuration: the documented shape loads; every mistake is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenrelay.gateway.config import ConfigError, GatewayConfig, load_config, parse_config
from tokenrelay.providers import PROVIDER_KINDS, MockProvider

ISSUE_EXAMPLE = """
[[providers]]
name = "up"
kind = "openai"                        # openai | anthropic | gemini | ollama | local | mock
base_url = "http://127.0.0.1:9000/v1"
api_key_env = "UPSTREAM_KEY"           # the key is read from the environment, never from the file

[[models]]
name = "gpt-test"                      # the name clients ask for
route = ["up:echo"]                    # provider:upstream-model, in fallback order
"""


def test_the_documented_example_loads_with_the_key_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(ISSUE_EXAMPLE)
    config = load_config(path, env={"UPSTREAM_KEY": "sk-secret"})
    (provider,) = config.providers
    assert (provider.name, provider.kind, provider.base_url) == (
        "up",
        "openai",
        "http://127.0.0.1:9000/v1",
    )
    assert provider.api_key == "sk-secret"
    assert "sk-secret" not in repr(config)
    route = config.model("gpt-test")
    assert route is not None and route.route == (("up", "echo"),)
    assert config.timeouts.first_token == 60 and config.grace_seconds == 30


def test_every_gateway_setting_is_read() -> None:
    config = parse_config(
        {
            "gateway": {
                "api_keys_env": "KEYS", "max_body_bytes": 1000, "max_streams": 5,
                "grace_seconds": 0, "retention_seconds": 5, "ping_seconds": 2,
                "pace_ms": 20,
                "timeouts": {"connect": 1, "first_token": 2, "idle": 3, "total": 4},
                "retry": {"attempts": 2, "backoff": 0.1, "max_backoff": 1},
            },
            "providers": [{"name": "m", "kind": "mock", "options": {"token_ms": 5}}],
            "models": [{"name": "a", "route": ["m:echo", "m:lorem"]}],
        },
        env={"KEYS": "k1, k2"},
    )  # fmt: skip
    assert config.api_keys == {"k1", "k2"}
    assert (config.max_body_bytes, config.max_streams, config.grace_seconds) == (1000, 5, 0)
    assert config.pace_ms == 20
    assert (config.timeouts.connect, config.timeouts.total) == (1, 4)
    assert config.providers[0].connect_timeout == 1
    assert config.retry.attempts == 2 and config.providers[0].options == {"token_ms": 5}
    assert config.models[0].route == (("m", "echo"), ("m", "lorem"))


def test_the_config_accepts_exactly_the_registered_provider_kinds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for kind in PROVIDER_KINDS:
        table = {"name": "u", "kind": kind, "base_url": "http://127.0.0.1:1"}
        assert parse_config({"providers": [table]}, env={}).providers[0].kind == kind
    monkeypatch.setitem(PROVIDER_KINDS, "added", MockProvider)
    assert parse_config({"providers": [{"name": "u", "kind": "added"}]}, env={}).providers
    with pytest.raises(ConfigError, match=r"kind must be one of .*added"):
        parse_config({"providers": [{"name": "u", "kind": "gpt"}]}, env={})


def test_no_configuration_is_an_empty_gateway() -> None:
    assert parse_config({}, env={}) == GatewayConfig()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"providers": [{"name": "u", "kind": "openai", "base_url": "x", "api_key": "sk"}]},
         "providers[0].api_key: keys do not belong in the file"),
        ({"providers": [{"name": "u", "kind": "gpt"}]}, "providers[0].kind must be one of"),
        ({"providers": [{"name": "u", "kind": "openai"}]}, "providers[0].base_url is required"),
        ({"providers": [{"name": "u", "kind": "mock", "api_key_env": "NOPE"}]},
         "environment variable NOPE is not set"),
        ({"providers": [{"name": "a:b", "kind": "mock"}]}, "without ':'"),
        ({"providers": [{"name": "u", "kind": "mock"}, {"name": "u", "kind": "mock"}]},
         "two are named 'u'"),
        ({"providers": [{"name": "u", "kind": "mock", "colour": 1}]},
         "unknown key providers[0].colour"),
        ({"models": [{"name": "m", "route": ["ghost:echo"]}]}, "which is not configured"),
        ({"providers": [{"name": "u", "kind": "mock"}], "models": [{"name": "m", "route": ["u"]}]},
         "must be 'provider:model'"),
        ({"models": [{"name": "m", "route": []}]}, "models[0].route must be a list"),
        ({"gateway": {"max_streams": 0}}, "gateway.max_streams must be > 0"),
        ({"gateway": {"grace_seconds": -1}}, "gateway.grace_seconds must be >= 0"),
        ({"gateway": {"retention_seconds": 0}}, "gateway.retention_seconds must be > 0"),
        ({"gateway": {"pace_ms": -1}}, "gateway.pace_ms must be >= 0"),
        ({"gateway": {"pace_ms": 5000}}, "gateway.pace_ms must be <= 1000"),
        ({"gateway": {"max_streams": "many"}}, "gateway.max_streams must be an integer"),
        ({"gateway": {"timeouts": {"idle": 0}}}, "gateway.timeouts.idle must be > 0"),
        ({"gateway": {"timeouts": {"soon": 1}}}, "unknown key gateway.timeouts.soon"),
        ({"gateway": {"api_keys_env": "NOPE"}}, "environment variable NOPE is not set"),
        ({"gateway": {"workers": 2}}, "unknown key gateway.workers"),
        ({"extra": {}}, "unknown key extra"),
        ({"providers": [{"name": "u", "kind": "openai", "base_url": "ftp://h/v1"}]},
         "providers[0].base_url: base_url must be an http:// or https:// URL"),
        ({"providers": [{"name": "u", "kind": "openai", "base_url": "http://a:b@h/v1"}]},
         "providers[0].base_url: base_url must not carry credentials"),
        ({"providers": [{"name": "u", "kind": "openai", "base_url": "http://h/v1",
                         "headers": {"x-team": "a\r\nx-injected: 1"}}]},
         "providers[0].headers: header 'x-team' must not contain CR, LF or NUL"),
    ],
)  # fmt: skip
def test_mistakes_are_named_precisely(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert message in str(info.value)


def test_unreadable_or_invalid_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[[providers]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


@pytest.mark.parametrize(
    ("table", "env", "url"),
    [
        ({}, {}, "memory"),
        ({"kind": "sqlite", "path": "/var/lib/tokenrelay/streams.db"}, {},
         "sqlite:///var/lib/tokenrelay/streams.db"),
        ({"kind": "sqlite", "path": "streams.db"}, {}, "sqlite://streams.db"),
        ({"kind": "redis", "url": "redis://127.0.0.1:6379/0"}, {}, "redis://127.0.0.1:6379/0"),
        ({"kind": "memory"}, {"TOKENRELAY_STORE": "redis://r:6379/1"}, "redis://r:6379/1"),
    ],
)  # fmt: skip
def test_the_store_is_chosen_by_kind_or_by_the_environment(
    table: dict[str, object], env: dict[str, str], url: str
) -> None:
    config = parse_config({"gateway": {"store": table}}, env=env)
    assert config.store.url == url
    assert config.store.lease_seconds == 5 and config.store.max_streams is None


def test_shared_store_settings_are_read() -> None:
    config = parse_config(
        {
            "gateway": {
                "drain_seconds": 3, "instance": "gw-a",
                "store": {"kind": "redis", "url": "redis://h/0", "lease_seconds": 2,
                          "max_streams": 50},
            }
        },
        env={},
    )  # fmt: skip
    assert (config.drain_seconds, config.instance) == (3, "gw-a")
    assert (config.store.lease_seconds, config.store.max_streams) == (2, 50)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kind": "postgres"}, "gateway.store.kind must be memory, sqlite or redis"),
        ({"kind": "sqlite"}, "gateway.store.path (the SQLite file) is required"),
        ({"kind": "redis"}, "gateway.store.url is required"),
        ({"kind": "redis", "url": "http://x"}, "not a store URL"),
        ({"lease_seconds": 0}, "gateway.store.lease_seconds must be > 0"),
        ({"max_streams": 0}, "gateway.store.max_streams must be > 0"),
        ({"colour": 1}, "unknown key gateway.store.colour"),
    ],
)
def test_store_mistakes_are_named_precisely(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"gateway": {"store": table}}, env={})
    assert message in str(info.value)


def test_a_bad_store_url_in_the_environment_is_named() -> None:
    with pytest.raises(ConfigError, match="not a store URL"):
        parse_config({}, env={"TOKENRELAY_STORE": "mongodb://x"})


def test_a_key_that_could_split_a_request_is_refused_without_being_quoted() -> None:
    data = {"providers": [{"name": "u", "kind": "openai", "base_url": "http://h/v1",
                           "api_key_env": "K"}]}  # fmt: skip
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={"K": "sk-secret\r\nx-injected: 1"})
    assert "providers[0].api_key_env: the key in K contains CR, LF or NUL" in str(info.value)
    assert "sk-secret" not in str(info.value)
