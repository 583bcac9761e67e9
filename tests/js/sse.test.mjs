// The JS parser against every "parse" vector of the shared conformance suite: whole, split
// at every byte (two chunks), one byte at a time, the vector's own chunks, and at seeded
// random points. Run: node --test tests/js/
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { EventTooLargeError, SSEParser } from "../../src/tokenrelay/web/tokenrelay.js";

const VECTORS = JSON.parse(
  readFileSync(new URL("../data/conformance/sse_vectors.json", import.meta.url), "utf8"),
).filter((c) => c.kind === "parse");

function hex(text) {
  return Uint8Array.from(text.match(/../g) || [], (h) => Number.parseInt(h, 16));
}

function run(vector, chunks) {
  const parser = new SSEParser({ lastEventId: vector.initial_last_event_id || "" });
  const events = [];
  for (const chunk of chunks) {
    for (const e of parser.feed(chunk)) events.push({ type: e.type, data: e.data, id: e.id });
  }
  parser.close();
  return { events, lastEventId: parser.lastEventId, retry: parser.retry };
}

function check(vector, chunks, how) {
  const got = run(vector, chunks);
  assert.deepEqual(got.events, vector.expected, how);
  assert.equal(got.lastEventId, vector.final_last_event_id ?? got.lastEventId, `${how}: last event id`);
  if ("final_retry" in vector) assert.equal(got.retry, vector.final_retry, `${how}: retry`);
}

// A small seeded generator (mulberry32), so a failure names a reproducible split.
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("the suite holds parse vectors", () => {
  assert.ok(VECTORS.length >= 30, `only ${VECTORS.length} parse vectors`);
});

for (const [n, vector] of VECTORS.entries()) {
  test(`parse vector: ${vector.name}`, () => {
    const bytes = hex(vector.input_hex);
    check(vector, [bytes], "whole");
    if (vector.chunks_hex) check(vector, vector.chunks_hex.map(hex), "the vector's chunks");
    for (let i = 0; i <= bytes.length; i++) {
      check(vector, [bytes.subarray(0, i), bytes.subarray(i)], `split at byte ${i}`);
    }
    check(vector, Array.from(bytes, (b) => Uint8Array.of(b)), "one byte at a time");
    const random = rng(n + 1);
    for (let round = 0; round < 20; round++) {
      const cuts = [...new Set(Array.from({ length: 1 + Math.floor(random() * 8) }, () => Math.floor(random() * bytes.length)))].sort((a, b) => a - b);
      const bounds = [0, ...cuts, bytes.length];
      const chunks = bounds.slice(1).map((end, i) => bytes.subarray(bounds[i], end));
      check(vector, chunks, `random cuts ${cuts.join(",")}`);
    }
  });
}

test("a BOM after the first is an ordinary character; the next connection may start with one", () => {
  const parser = new SSEParser();
  const bom = [0xef, 0xbb, 0xbf];
  const first = parser.feed(Uint8Array.of(...bom, ...new TextEncoder().encode("data: a\n\n")));
  assert.deepEqual(first.map((e) => e.data), ["a"]);
  parser.close();
  const again = parser.feed(Uint8Array.of(...bom, ...bom, ...new TextEncoder().encode("data: b\n\n")));
  assert.deepEqual(again, []); // "\uFEFFdata" is not the data field
});

test("the last event id and retry survive close(); an unterminated event is dropped", () => {
  const parser = new SSEParser();
  const enc = new TextEncoder();
  parser.feed(enc.encode("retry: 250\nid: 1.0\ndata: x\n\nid: 2.0\ndata: half"));
  parser.close();
  assert.equal(parser.lastEventId, "1.0");
  assert.equal(parser.retry, 250);
  const [event] = parser.feed(enc.encode("data: y\n\n"));
  assert.deepEqual(event, { type: "message", data: "y", id: "1.0", retry: null });
});

test("a line over the limit throws, after the events before it", () => {
  const parser = new SSEParser({ maxLineLength: 10 });
  const enc = new TextEncoder();
  const events = parser.feed(enc.encode("data: ok\n\ndata: far too long a line\n"));
  assert.deepEqual(events.map((e) => e.data), ["ok"]);
  assert.throws(() => parser.feed(enc.encode("\n")), EventTooLargeError);
  assert.throws(() => parser.close(), EventTooLargeError);
  assert.deepEqual(parser.close(), []);
});

test("a long line in small chunks is linear, not quadratic", () => {
  const parser = new SSEParser();
  const piece = new TextEncoder().encode("x".repeat(16));
  parser.feed(new TextEncoder().encode("data: "));
  const started = performance.now();
  for (let i = 0; i < 65536; i++) parser.feed(piece);
  const [event] = parser.feed(new TextEncoder().encode("\n\n"));
  assert.equal(event.data.length, 16 * 65536);
  assert.ok(performance.now() - started < 5000);
});
