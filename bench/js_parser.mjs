// The timing half of bench/js_parser.py (which writes the workloads and prints the table):
//   node bench/js_parser.mjs <workload dir> [--quick|--full]
// Prints JSON: per workload, MB/s of tokenrelay's SSEParser and of eventsource-parser.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

import { SSEParser } from "../src/tokenrelay/web/sse.js";

const [dir, mode = "--full"] = process.argv.slice(2);
const quick = mode === "--quick";
const require = createRequire(join(process.env.TOKENRELAY_NODE_DEPS, "package.json"));
const peerPath = require.resolve("eventsource-parser");
const { createParser } = await import(pathToFileURL(peerPath).href);
const peerVersion = JSON.parse(readFileSync(require.resolve("eventsource-parser/package.json"), "utf8")).version;

// Each returns the number of events; `keep` collects their data for the warm-up check.
function ours(chunks, keep) {
  const parser = new SSEParser();
  let n = 0;
  for (const chunk of chunks) {
    const events = parser.feed(chunk);
    n += events.length;
    if (keep) for (const e of events) keep.push(e.data);
  }
  parser.close();
  return n;
}

function peer(chunks, keep) {
  let n = 0;
  const parser = createParser({
    onEvent: keep
      ? (e) => {
          n += 1;
          keep.push(e.data);
        }
      : () => {
          n += 1;
        },
  });
  const decoder = new TextDecoder();
  for (const chunk of chunks) parser.feed(decoder.decode(chunk, { stream: true }));
  const rest = decoder.decode();
  if (rest) parser.feed(rest);
  parser.reset({ consume: true });
  return n;
}

function sameData(got, expected) {
  return got.length === expected.length && got.every((d, i) => d === expected[i]);
}

function time(fn, chunks) {
  const start = process.hrtime.bigint();
  fn(chunks, null);
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
const rows = [];
for (const w of manifest.workloads) {
  const blob = new Uint8Array(readFileSync(join(dir, w.blob)));
  const chunks = [];
  let at = 0;
  for (const size of w.sizes) {
    chunks.push(blob.subarray(at, at + size));
    at += size;
  }
  const expected = JSON.parse(readFileSync(join(dir, w.expected), "utf8"));
  const gotOurs = [];
  ours(chunks, gotOurs);
  if (!sameData(gotOurs, expected)) throw new Error(`tokenrelay's output is wrong on (${w.key})`);
  const gotPeer = [];
  peer(chunks, gotPeer);
  const peerOk = sameData(gotPeer, expected);
  // Warm both up, then alternate runs until each has ~minSample seconds or maxRuns runs.
  const minSample = quick ? 0.2 : 0.5;
  const maxRuns = quick ? 20 : 50;
  for (let i = 0; i < 3; i++) {
    ours(chunks, null);
    peer(chunks, null);
  }
  const best = { ours: Infinity, peer: Infinity };
  const spent = { ours: 0, peer: 0 };
  for (let run = 0; run < maxRuns && (run < 5 || Math.min(spent.ours, spent.peer) < minSample); run++) {
    for (const [name, fn] of [["ours", ours], ["peer", peer]]) {
      const t = time(fn, chunks);
      spent[name] += t;
      best[name] = Math.min(best[name], t);
    }
  }
  rows.push({
    key: w.key,
    title: w.title,
    nbytes: w.nbytes,
    ours_mbs: w.nbytes / best.ours / 1e6,
    peer_mbs: w.nbytes / best.peer / 1e6,
    peer_ok: peerOk,
  });
}
console.log(JSON.stringify({ node: process.version, peer_version: peerVersion, rows }));
