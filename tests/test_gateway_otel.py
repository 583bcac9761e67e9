"""OpenTelemetry traces of ``tokenrelay serve``: the real SDK and its OTLP/HTTP exporter,
turned on by ``OTEL_EXPORTER_OTLP_ENDPOINT``, send to an OTLP receiver in this test; the
spans carry the GenAI conventions' attributes, continue the client's ``traceparent``, and
the upstream is called in the attempt span's context."""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway_procs import Procs, gateway_toml, mock_records, procs_running
from tests.required import missing

try:
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as trace_service
except ImportError:  # pragma: no cover - the test extra installs it
    missing("the otel extra (pip install 'tokenrelay[otel]')", module=True)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
SECRET = "sk-otel-team-1"


class Receiver(http.server.ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: every exported span, decoded."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[Any] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        request = trace_service.ExportTraceServiceRequest.FromString(body)
        with self.server.lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    self.server.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()
        self.wfile.write(trace_service.ExportTraceServiceResponse().SerializeToString())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    with procs_running(tmp_path) as started:
        yield started


def attributes(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def wait_spans(receiver: Receiver, n: int) -> list[Any]:
    deadline = time.monotonic() + 15
    while True:
        with receiver.lock:
            if len(receiver.spans) >= n:
                return list(receiver.spans)
        assert time.monotonic() < deadline, f"{len(receiver.spans)} spans of {n}"
        time.sleep(0.05)


def test_spans_follow_the_client_s_trace_and_carry_the_genai_attributes(
    procs: Procs, receiver: Receiver
) -> None:
    mock = procs.mock(token_ms=1)
    config = gateway_toml(
        gateway={"api_keys_env": "KEYS"},
        provider={"name": "up", "kind": "openai", "base_url": mock.url + "/v1"},
        models={"echo": "up:echo", "flaky": "up:echo@503;times=1"},
    )
    env = {
        "KEYS": SECRET,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "gateway-under-test",
    }
    gateway = procs.gateway("gw", config, env=env)
    headers = {
        "authorization": f"Bearer {SECRET}",
        "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01",
    }
    before = len(mock_records(mock))
    body = {
        "model": "echo",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 50,
        "temperature": 0.5,
        "messages": [{"role": "user", "content": "a private prompt"}],
    }
    streamed = httpx.post(gateway.url + "/v1/chat/completions", json=body, headers=headers)
    assert streamed.status_code == 200
    usage = [line for line in streamed.text.splitlines() if '"usage":{' in line][-1]
    retried = httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "flaky", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {SECRET}"},
    )
    assert retried.status_code == 200
    spans = wait_spans(receiver, 5)  # two requests: 1 + 1 attempt, 1 + 2 attempts

    requests = [s for s in spans if s.kind == s.SPAN_KIND_SERVER]
    attempts = [s for s in spans if s.kind == s.SPAN_KIND_CLIENT]
    assert len(requests) == 2 and len(attempts) == 3
    first = next(s for s in requests if s.trace_id.hex() == TRACE_ID)
    assert first.parent_span_id.hex() == CLIENT_SPAN  # the client's trace goes on
    assert first.name == "chat echo"
    a = attributes(first)
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.request.model"] == "echo"
    assert a["gen_ai.request.max_tokens"] == 50 and a["gen_ai.request.temperature"] == 0.5
    assert a["http.response.status_code"] == 200 and a["tokenrelay.end"] == "completed"
    assert a["tokenrelay.stream.id"] == streamed.headers["x-stream-id"]
    assert a["tokenrelay.key"] == "KEYS"  # the keys of api_keys_env are named after it
    assert f'"prompt_tokens":{a["gen_ai.usage.input_tokens"]}' in usage
    assert f'"completion_tokens":{a["gen_ai.usage.output_tokens"]}' in usage

    (call,) = [s for s in attempts if s.trace_id == first.trace_id]
    assert call.parent_span_id == first.span_id and call.name == "chat echo"
    c = attributes(call)
    assert c["gen_ai.provider.name"] == "openai" and c["server.address"] == "127.0.0.1"
    assert c["gen_ai.usage.output_tokens"] == a["gen_ai.usage.output_tokens"]
    # The upstream was called in the attempt's context: its traceparent names the span.
    record = mock_records(mock)[before]
    assert record["traceparent"] == f"00-{TRACE_ID}-{call.span_id.hex()}-01"

    second = next(s for s in requests if s.trace_id.hex() != TRACE_ID)
    assert len(second.parent_span_id) == 0  # no traceparent: a trace of its own
    failed, answered = sorted(
        (s for s in attempts if s.trace_id == second.trace_id), key=lambda s: s.start_time_unix_nano
    )
    assert attributes(failed)["error.type"] == "overloaded"  # the mock's 503
    assert failed.status.code == failed.status.STATUS_CODE_ERROR
    assert "error.type" not in attributes(answered)
    assert attributes(answered)["gen_ai.request.model"] == "echo@503;times=1"

    everything = " ".join(str(attributes(s)) for s in spans)
    assert SECRET not in everything and "private prompt" not in everything
