"""`tokenrelay serve` as users run it: a real process, a config file, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.asgi_servers import free_port
from tokenrelay.gateway import default_config

pytestmark = pytest.mark.sdk

CONFIG = """
[gateway]
api_keys_env = "GATEWAY_KEYS"

[[providers]]
name = "fake"
kind = "mock"
options = { token_ms = 2 }

[[models]]
name = "gpt-test"
route = ["fake:echo"]
"""


def wait_ready(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"serve did not become ready: {process.communicate()}")
        time.sleep(0.05)


def test_serve_with_a_config_file_answers_the_sdk_and_stops_on_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG)
    port = free_port()
    env = {**os.environ, "GATEWAY_KEYS": "team-key"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tokenrelay",
            "serve",
            "--config",
            str(path),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        with openai.OpenAI(base_url=f"{url}/v1", api_key="team-key", max_retries=0) as client:
            answer = client.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "served"}]
            )
            assert answer.choices[0].message.content == "served"
        with (
            openai.OpenAI(base_url=f"{url}/v1", api_key="wrong", max_retries=0) as client,
            pytest.raises(openai.AuthenticationError),
        ):
            client.models.list()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
    assert process.returncode in (0, -signal.SIGTERM)
    assert f"base_url={url}/v1" in err and "gpt-test" in err


def test_a_bad_config_is_a_usage_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[providers]]\nname = "x"\nkind = "openai"\napi_key = "sk-leak"\n')
    result = subprocess.run(
        [sys.executable, "-m", "tokenrelay", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "providers[0].api_key" in result.stderr and "sk-leak" not in result.stderr


def test_help_documents_every_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokenrelay", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    for option in (
        "--config",
        "--host",
        "--port",
        "--grace-seconds",
        "--max-streams",
        "--log-level",
        "--store",
        "--workers",
        "--drain-seconds",
        "TOKENRELAY_CONFIG",
        "TOKENRELAY_PORT",
        "TOKENRELAY_STORE",
        "TOKENRELAY_WORKERS",
    ):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--store", "mongodb://db"], "--store: not a store URL"),
        (["--store", "sqlite://"], "names no file"),
        (["--workers", "0"], "--workers > 0"),
        (["--workers", "2", "--store", "memory"], "cannot be shared by --workers"),
        (["--drain-seconds", "-1"], "--drain-seconds must be >= 0"),
    ],
)
def test_bad_store_and_worker_flags_are_usage_errors(flags: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tokenrelay", "serve", "--config", "/dev/null", *flags],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_without_a_file_the_fake_llm_serves_when_the_local_model_is_absent() -> None:
    config = default_config(local=False)
    assert [m.name for m in config.models] == ["echo", "lorem", "think", "tool", "tools"]
    assert config.providers[0].kind == "mock"
    local = default_config(local=True)
    assert local.providers[0].kind == "local"
    assert local.models[0].route == (("local", "smollm2-135m-instruct"),)
