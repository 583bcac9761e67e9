// stream() over real sockets (a Node http server on loopback): every "client" vector of the
// shared conformance suite, then what the vectors do not cover (abort, idle watchdog,
// backoff, `until`, resuming a POST elsewhere). Run: node --test tests/js/
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { test } from "node:test";

import {
  DEFAULT_RETRY,
  IdleTimeoutError,
  ReconnectError,
  Reply,
  ResponseError,
  backoffDelay,
  gatewayStream,
  parseAnthropic,
  parseOpenAIChat,
  resumeURL,
  stream,
} from "../../src/tokenrelay/web/tokenrelay.js";

const VECTORS = JSON.parse(
  readFileSync(new URL("../data/conformance/sse_vectors.json", import.meta.url), "utf8"),
).filter((c) => c.kind === "client");
const REDIRECT_TARGET = "/eventsource/resources/message.py";
const QUICK = { delay: 10, maxAttempts: 5 };

/** A server answering request i with `handlers[i]` (then 204); yields its URL. */
async function withServer(handlers, body) {
  const requests = [];
  const server = createServer((req, res) => {
    const index = requests.length;
    requests.push(req);
    const handler = handlers[index];
    if (!handler) {
      res.writeHead(204);
      res.end();
      return;
    }
    handler(req, res, index);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    return await body(`http://127.0.0.1:${server.address().port}`, requests);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

async function collect(es, limit = 100) {
  const events = [];
  for await (const e of es) {
    events.push({ type: e.type, data: e.data, id: e.id });
    if (events.length >= limit) break;
  }
  return events;
}

function vectorHandlers(c) {
  return c.connections.map((conn) => (req, res) => {
    if (req.url === REDIRECT_TARGET) {
      res.writeHead(200, { "Content-Type": "text/event-stream" });
      res.end("data: data\n\n");
      return;
    }
    if (!conn.response) {
      res.writeHead(204);
      res.end();
      return;
    }
    const { status, headers = {}, body = "" } = conn.response;
    res.writeHead(status, headers);
    res.end(body.replace(/\{\{headers\[([^\]]+)\]\}\}/g, (_, name) => req.headers[name.toLowerCase()] || ""));
  });
}

for (const c of VECTORS) {
  const cases =
    c.name === "request-redirect"
      ? c.connections.map((conn) => ({ ...c, name: `redirect ${conn.response.status}`, connections: [conn, { response: { status: 200, headers: { "Content-Type": "text/event-stream" }, body: "data: data\n\n" } }] }))
      : [c];
  for (const vector of cases) {
    test(`client vector: ${vector.name}`, async () => {
      const expected = vector.expected;
      await withServer(vectorHandlers(vector), async (url, requests) => {
        const delays = [];
        const es = stream(vector.name.startsWith("redirect") ? `${url}/start` : url, {
          retry: QUICK,
          onRetry: ({ delay }) => {
            delays.push(delay);
            if ("reconnect_delay_ms" in expected) es.close();
          },
        });
        let error = null;
        let events = [];
        try {
          events = await collect(es);
        } catch (exc) {
          error = exc;
        }
        const status = vector.connections[0].response?.status;
        if (status === 204) {
          // 204 is the server's "do not come back": the stream ends quietly.
          assert.equal(error, null);
          assert.deepEqual(events, []);
          assert.equal(requests.length, 1);
          return;
        }
        if (expected.error === true && expected.reconnect === false) {
          assert.ok(error instanceof ResponseError, `expected a ResponseError, got ${error}`);
          assert.equal(requests.length, 1, "no reconnection after a failed connection");
          return;
        }
        assert.equal(error, null, String(error?.stack));
        if (expected.events) assert.deepEqual(events, expected.events);
        if ("reconnect_delay_ms" in expected) assert.deepEqual(delays, [expected.reconnect_delay_ms]);
        if (expected.open) assert.equal(es.firstResponse.status, 200);
        vector.connections.forEach((conn, i) => {
          const req = requests[i];
          if (!req) return;
          for (const name of conn.request_headers_expected_absent || []) {
            assert.equal(req.headers[name.toLowerCase()], undefined, name);
          }
          for (const [name, value] of Object.entries(conn.request_headers_expected || {})) {
            const got = Buffer.from(req.headers[name.toLowerCase()] || "", "latin1").toString("utf8");
            assert.equal(got, value.split(" (sent as")[0], name);
          }
        });
      });
    });
  }
}

function sse(res, status = 200) {
  res.writeHead(status, { "Content-Type": "text/event-stream" });
}

test("an AbortSignal ends the iteration quietly, mid-stream", async () => {
  await withServer(
    [
      (req, res) => {
        sse(res);
        res.write("data: one\n\n");
      },
    ],
    async (url) => {
      const controller = new AbortController();
      const got = [];
      for await (const e of stream(url, { signal: controller.signal })) {
        got.push(e.data);
        controller.abort();
      }
      assert.deepEqual(got, ["one"]);
    },
  );
});

test("the idle watchdog reconnects a silent stream; comments feed it", async () => {
  await withServer(
    [
      (req, res) => {
        sse(res);
        res.write("id: 1\ndata: a\n\n");
        let n = 0;
        const timer = setInterval(() => {
          res.write(": ping\n\n"); // keeps the stream alive past the idle timeout
          if (++n === 4) {
            clearInterval(timer);
            res.write("data: b\n\n"); // then silence
          }
        }, 60);
        req.on("close", () => clearInterval(timer));
      },
      (req, res) => {
        sse(res);
        res.end(`data: last-id ${req.headers["last-event-id"]}\n\n`);
      },
    ],
    async (url) => {
      const retries = [];
      const es = stream(url, { idleTimeout: 150, retry: QUICK, onRetry: (r) => retries.push(r.error) });
      const got = (await collect(es, 3)).map((e) => e.data);
      assert.deepEqual(got, ["a", "b", "last-id 1"]);
      assert.ok(retries[0] instanceof IdleTimeoutError);
    },
  );
});

test("attempts without an event back off, then give up", async () => {
  const fail = (req, res) => req.socket.destroy();
  await withServer([fail, fail, fail, fail], async (url) => {
    const delays = [];
    const es = stream(url, { retry: { delay: 5, factor: 2, jitter: 0, maxAttempts: 3 }, onRetry: (r) => delays.push(r.delay) });
    await assert.rejects(collect(es), ReconnectError);
    assert.deepEqual(delays, [5, 10, 20]);
  });
});

test("backoff is capped and jittered", () => {
  const policy = { ...DEFAULT_RETRY, delay: 1000, maxDelay: 5000, jitter: 0.5 };
  assert.equal(backoffDelay(policy, 0, null, () => 0.99), 1000);
  assert.equal(backoffDelay(policy, 10, null, () => 0), 5000);
  assert.equal(backoffDelay(policy, 10, null, () => 0.5), 3750);
  assert.equal(backoffDelay(policy, 1, 200, () => 0), 400); // retry: from the server
});

test("a gateway POST resumes from /v1/streams/{id} with the last event id, nothing doubled", async () => {
  const chunk = (text) => `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: text } }] })}\n\n`;
  await withServer(
    [
      (req, res) => {
        res.writeHead(200, { "Content-Type": "text/event-stream", "x-stream-id": "str_1" });
        res.write(`id: 0.0\n${chunk("Hello")}id: 1.0\n${chunk(",")}`);
        setTimeout(() => res.socket.destroy(), 20); // the network drops
      },
      (req, res) => {
        assert.equal(req.method, "GET");
        assert.equal(req.url, "/v1/streams/str_1");
        assert.equal(req.headers["last-event-id"], "1.0");
        sse(res);
        const usage = { choices: [], usage: { prompt_tokens: 3, completion_tokens: 3 } };
        res.write(`id: 2.0\n${chunk(" world")}id: 3.0\ndata: ${JSON.stringify(usage)}\n\nid: 3.1\ndata: [DONE]\n\n`);
        // the body stays open: `until` ends the stream at [DONE]
      },
    ],
    async (url, requests) => {
      const es = gatewayStream(url, "/v1/chat/completions", { model: "echo", stream: true }, { retry: { delay: 5 } });
      const reply = new Reply();
      for await (const e of es) reply.add(parseOpenAIChat(e));
      assert.equal(reply.text, "Hello, world");
      assert.deepEqual(reply.usage, { input: 3, output: 3 });
      assert.ok(reply.done);
      assert.equal(requests.length, 2);
      assert.equal(es.reconnects, 1);
    },
  );
});

test("a gateway POST that fails before any response is not sent again", async () => {
  await withServer([(req, res) => req.socket.destroy()], async (url, requests) => {
    const es = gatewayStream(url, "/v1/chat/completions", { model: "echo" }, { retry: { delay: 5 } });
    await assert.rejects(collect(es), TypeError);
    assert.equal(requests.length, 1);
  });
});

test("an error status carries the gateway's message", async () => {
  await withServer(
    [
      (req, res) => {
        res.writeHead(404, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: { message: "model 'x' does not exist", type: "not_found_error" } }));
      },
    ],
    async (url) => {
      const error = await collect(gatewayStream(url, "/v1/chat/completions", { model: "x" })).catch((e) => e);
      assert.ok(error instanceof ResponseError);
      assert.equal(error.status, 404);
      assert.equal(error.message, "model 'x' does not exist");
    },
  );
});

test("dialect helpers: Anthropic text, tool calls, usage and errors", () => {
  const ev = (type, body) => ({ type, data: JSON.stringify({ type, ...body }), id: "" });
  const reply = new Reply();
  for (const e of [
    ev("message_start", { message: { usage: { input_tokens: 7, output_tokens: 0 } } }),
    ev("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
    ev("content_block_delta", { index: 0, delta: { type: "text_delta", text: "hi" } }),
    ev("content_block_start", { index: 1, content_block: { type: "tool_use", id: "t1", name: "f", input: {} } }),
    ev("content_block_delta", { index: 1, delta: { type: "input_json_delta", partial_json: '{"q":' } }),
    ev("content_block_delta", { index: 1, delta: { type: "input_json_delta", partial_json: '"x"}' } }),
    ev("message_delta", { delta: { stop_reason: "tool_use" }, usage: { output_tokens: 3 } }),
    ev("message_stop", {}),
  ]) reply.add(parseAnthropic(e));
  assert.equal(reply.text, "hi");
  assert.deepEqual(reply.toolCalls[1], { id: "t1", name: "f", arguments: '{"q":"x"}' });
  assert.deepEqual(reply.usage, { input: 7, output: 3 });
  assert.equal(reply.finish, "tool_calls"); // one vocabulary for every dialect
  assert.equal(reply.finishRaw, "tool_use");
  assert.ok(reply.done);
  const failed = new Reply().add(parseAnthropic(ev("error", { error: { type: "overloaded_error", message: "busy" } })));
  assert.deepEqual(failed.error, { message: "busy", kind: "overloaded_error", status: null });
  const openai = new Reply().add(parseOpenAIChat({ type: "message", data: '{"error":{"message":"boom","type":"server_error"}}', id: "" }));
  assert.equal(openai.error.message, "boom");
});

test("resumeURL: the query parameter is for EventSource", () => {
  assert.equal(resumeURL("http://h/", "str_1"), "http://h/v1/streams/str_1");
  assert.equal(resumeURL("http://h", "str_1", "4.2"), "http://h/v1/streams/str_1?last_event_id=4.2");
});
