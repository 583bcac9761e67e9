"""The `tokenrelay` command, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

from tokenrelay.sse import encode


def tokenrelay(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tokenrelay", *args], input=stdin, capture_output=True, timeout=60
    )


def test_demo_prints_the_reassembled_text_and_counts() -> None:
    result = tokenrelay("demo", "--delay", "0")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert "Server-Sent Events carry each token" in out
    assert "\U0001f680" in out
    assert "31 events" in out


def test_decode_reads_a_stream_from_stdin_as_json_lines() -> None:
    stream = encode("a\nb", event="delta", id="5") + b": ping\n\n" + encode("[DONE]")
    result = tokenrelay("decode", "--json", stdin=stream)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert records == [
        {"event": "delta", "data": "a\nb", "id": "5", "retry": None},
        {"event": "message", "data": "[DONE]", "id": "5", "retry": None},
    ]


def test_decode_reads_a_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "stream.sse"
    path.write_bytes(b"data: from a file\r\n\r\n")
    result = tokenrelay("decode", str(path))
    assert result.returncode == 0
    assert result.stdout.decode() == "message\n  from a file\n"


def test_decode_refuses_an_oversized_line_with_exit_status_1() -> None:
    result = tokenrelay("decode", "--max-line-bytes", "10", stdin=b"data: " + b"x" * 50 + b"\n\n")
    assert result.returncode == 1
    assert b"limit of 10 bytes" in result.stderr


def test_usage_error_exits_2() -> None:
    assert tokenrelay("no-such-command").returncode == 2
