// The JS dialect readers against the Python encoders: every stream fixture, encoded by the
// Python side in each dialect the JS reads (dialect_vectors.json, written by
// make_dialect_vectors.py, kept fresh by tests/test_js_dialects.py), read here through
// SSEParser and partsOf, whole and at every split of the bytes, must come out as what the
// Python side reads back from the same bytes.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Reply, SSEParser, isFinal, partsOf } from "../../src/tokenrelay/web/tokenrelay.js";

const VECTORS = JSON.parse(readFileSync(new URL("./dialect_vectors.json", import.meta.url), "utf8"));

/** What the parts of `events` say, per choice, in the shape of the vectors' `expected`. */
function read(dialect, events) {
  const replies = new Map();
  const reply = (c) => {
    if (!replies.has(c)) replies.set(c, new Reply());
    return replies.get(c);
  };
  reply(0); // a stream has choice 0 even when it said nothing (as the Python side's)
  const whole = new Reply(); // usage and error belong to the stream, not to a choice
  let final = -1; // the first event after which isFinal() says the stream is complete
  for (const [n, event] of events.entries()) {
    const parts = partsOf(dialect, event);
    for (const part of parts) {
      if (part.type === "usage" || part.type === "error") whole.add([part]);
      else if (part.type !== "done") reply(part.choice ?? 0).add([{ ...part, choice: 0 }]);
    }
    if (final < 0 && isFinal(dialect, event)) final = n;
  }
  const choices = [...replies.entries()]
    .sort(([a], [b]) => a - b)
    .map(([index, r]) => ({
      index,
      text: r.text,
      reasoning: r.reasoning,
      refusal: r.refusal,
      tool_calls: r.toolCalls.filter(Boolean).map(({ id, name, arguments: args }) => ({ id, name, arguments: args })),
      finish: r.finish,
    }));
  const error = whole.error && { message: whole.error.message, kind: whole.error.kind };
  return { summary: { choices, usage: whole.usage, error }, final };
}

function events(bytes, cuts) {
  const parser = new SSEParser();
  const out = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    out.push(...parser.feed(bytes.subarray(start, cut)));
    start = cut;
  }
  parser.close();
  return out;
}

test("there is a vector for every fixture in every dialect the JS reads", () => {
  const fixtures = new Set(VECTORS.map((v) => v.fixture));
  assert.ok(fixtures.size >= 25, `${fixtures.size} fixtures`);
  for (const fixture of fixtures) {
    const dialects = VECTORS.filter((v) => v.fixture === fixture).map((v) => v.dialect).sort();
    assert.deepEqual(dialects, ["anthropic", "openai-chat", "openai-responses"], fixture);
  }
});

for (const vector of VECTORS) {
  test(`${vector.dialect} from ${vector.fixture}`, () => {
    const bytes = new TextEncoder().encode(vector.wire);
    const all = events(bytes, []);
    const whole = read(vector.dialect, all);
    const expected = vector.expected;
    assert.deepEqual(whole.summary, expected);
    // isFinal() (what `until` asks) says the stream is complete by its last event, and
    // stopping at the first event it says so of loses nothing.
    assert.ok(whole.final >= 0, "isFinal() never said the stream was complete");
    // (Except a Responses stream's usage after its error: it comes in the response.failed
    // that follows the error event, and only a reader that reads on past the error gets it.)
    const stopped = read(vector.dialect, all.slice(0, whole.final + 1)).summary;
    const afterError = vector.dialect === "openai-responses" && expected.error && !stopped.usage;
    assert.deepEqual(stopped, afterError ? { ...expected, usage: null } : expected, "stopped at isFinal()");
    // Split at every byte: the same events, so the same reading.
    const step = Math.max(1, Math.floor(bytes.length / 400)); // ~400 splits per vector
    for (let i = 1; i < bytes.length; i += step) {
      assert.deepEqual(read(vector.dialect, events(bytes, [i])).summary, expected, `split at byte ${i}`);
    }
  });
}
