// The Node server side over plain node:http: the shared suite (server_suite.mjs), plus
// frame(), which needs no server.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";

import { frame } from "../../src/tokenrelay/web/server.js";
import { serverSuite } from "./server_suite.mjs";

serverSuite("node:http", async (handler) => {
  const server = createServer(handler);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/events`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
});

test("frame(): strings, JSON data, parsed events, comments and pre-encoded bytes", () => {
  assert.equal(frame("hi"), "data: hi\n\n");
  assert.equal(frame({ data: { a: [1, "é"] }, id: "4" }), 'id: 4\ndata: {"a":[1,"é"]}\n\n');
  assert.equal(frame({ data: "a\r\nb\rc", event: "token" }), "event: token\ndata: a\ndata: b\ndata: c\n\n");
  assert.equal(frame({ type: "message", data: "x", id: "1", retry: null }), "id: 1\ndata: x\n\n");
  assert.equal(frame({ type: "delta", data: "x" }), "event: delta\ndata: x\n\n");
  assert.equal(frame({ comment: "hello\nthere" }), ": hello\n: there\n\n");
  assert.equal(frame({ comment: "c", data: "d", retry: 10 }), ": c\n\nretry: 10\ndata: d\n\n");
  const bytes = new TextEncoder().encode("data: raw\n\n");
  assert.equal(frame(bytes), bytes);
});

test("frame() refuses what a reader could not get back", () => {
  assert.throws(() => frame({ event: "x" }), /needs data/);
  assert.throws(() => frame({ data: "x", id: "a\nb" }), TypeError);
  assert.throws(() => frame({ data: "x", id: "a\0b" }), TypeError);
  assert.throws(() => frame({ data: "x", event: "a\rb" }), TypeError);
  assert.throws(() => frame({ data: "x", retry: -1 }), TypeError);
  assert.throws(() => frame({ data: "x", retry: 1.5 }), TypeError);
  assert.throws(() => frame({ data: "x", colour: "red" }), /unknown event field/);
  assert.throws(() => frame(42), TypeError);
});
