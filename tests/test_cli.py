"""The `tokenrelay` command, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tokenrelay.sse import encode

from .sse_server import Conn, serve


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


def test_decode_refuses_an_oversized_line_with_exit_status_4() -> None:
    result = tokenrelay("decode", "--max-line-bytes", "10", stdin=b"data: " + b"x" * 50 + b"\n\n")
    assert result.returncode == 4
    assert b"limit of 10 bytes" in result.stderr


def test_usage_error_exits_2() -> None:
    assert tokenrelay("no-such-command").returncode == 2


def tail_server(total: int = 3) -> Any:
    """Events with ids, two per connection then a drop; 204 once all were sent."""

    async def handler(conn: Conn) -> None:
        last = int(conn.request.header("last-event-id") or 0)
        if last >= total:
            await conn.respond(204, chunked=False)
            return await conn.end()
        await conn.respond()
        for n in range(last + 1, min(last + 2, total) + 1):
            data = json.dumps({"n": n}) if n % 2 else f"plain {n}"
            await conn.send(encode(data, id=str(n), event="tick"))
        conn.drop()

    return handler


def test_tail_prints_events_pretty_and_reconnects_with_notices() -> None:
    with serve(tail_server(3)) as server:
        result = tokenrelay("tail", server.url, "--reconnect-delay", "0.01")
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 0, err
    assert (
        out == 'tick  id 1\n{\n  "n": 1\n}\n\ntick  id 2\nplain 2\n\ntick  id 3\n{\n  "n": 3\n}\n\n'
    )
    assert "reconnecting in 0.01 s (attempt 1, resuming after id '2')" in err
    assert [r.header("last-event-id") for r in server.requests] == [None, "2", "3"]


def test_tail_raw_prints_the_bytes_as_received() -> None:
    with serve(tail_server(1)) as server:
        result = tokenrelay("tail", server.url, "--raw", "--reconnect-delay", "0.01")
    assert result.returncode == 0
    assert result.stdout == encode('{"n": 1}', id="1", event="tick")


def test_tail_posts_json_with_headers_and_stops_on_done() -> None:
    async def handler(conn: Conn) -> None:
        await conn.respond()
        await conn.send(encode("answer") + encode("[DONE]"))
        await conn.stall()

    with serve(handler) as server:
        result = tokenrelay(
            "tail", server.url, "--json", '{"q": 1}', "-H", "Authorization: Bearer k",
            "--stop-on", "[DONE]",
        )  # fmt: skip
    assert result.returncode == 0
    assert result.stdout.decode() == "message\nanswer\n\n"
    request = server.requests[0]
    assert (request.method, request.body) == ("POST", b'{"q": 1}')
    assert request.header("authorization") == "Bearer k"
    assert request.header("content-type") == "application/json"


def test_tail_exits_1_when_the_server_refuses() -> None:
    async def handler(conn: Conn) -> None:
        await conn.respond(500, {"Content-Type": "application/json"})
        await conn.send(b'{"error": "boom"}')
        await conn.end()

    with serve(handler) as server:
        result = tokenrelay("tail", server.url)
    assert result.returncode == 1
    assert b"HTTP status 500" in result.stderr and b"boom" in result.stderr


def test_tail_exits_3_when_the_connection_fails_for_good() -> None:
    with serve(tail_server(1)) as server:
        url = server.url
    result = tokenrelay("tail", url, "--max-attempts", "2", "--reconnect-delay", "0.01")
    assert result.returncode == 3
    assert b"gave up after 2" in result.stderr


def test_tail_exits_3_on_a_drop_without_reconnect() -> None:
    with serve(tail_server(3)) as server:
        result = tokenrelay("tail", server.url, "--no-reconnect")
    assert result.returncode == 3
    assert result.stdout.decode().startswith("tick  id 1")


def test_tail_rejects_a_malformed_header_as_usage_error() -> None:
    assert tokenrelay("tail", "http://127.0.0.1:9", "-H", "no-colon").returncode == 2
