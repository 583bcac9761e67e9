// The Node server side (src/tokenrelay/web/server.js) over real sockets on loopback, one
// suite run over each way of serving it: plain node:http (server.test.mjs) and Express
// (npm/express_server.test.mjs). `serve(handler)` starts a server whose every request is
// answered by `handler(req, res)` and resolves to {url, close}.
import assert from "node:assert/strict";
import { request } from "node:http";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { SSEParser, stream } from "../../src/tokenrelay/web/tokenrelay.js";
import { EventWriter, lastEventId, sendEvents } from "../../src/tokenrelay/web/server.js";

const decoder = new TextDecoder();

/** GET url with node:http; resolves to the response, its body not read yet. */
function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, resolve);
    req.on("error", reject);
    req.end();
  });
}

async function readAll(res) {
  let text = "";
  for await (const chunk of res) text += decoder.decode(chunk, { stream: true });
  return text;
}

function parse(text) {
  const parser = new SSEParser();
  const events = parser.feed(new TextEncoder().encode(text));
  return { events: events.map((e) => ({ type: e.type, data: e.data, id: e.id })), retry: parser.retry };
}

/** A handler that records how sendEvents ended (or failed) for the test to await. */
function recorder() {
  let settle;
  const outcome = new Promise((resolve) => {
    settle = resolve;
  });
  return {
    outcome,
    run(res, source, options) {
      sendEvents(res, source, options).then(
        (why) => settle({ why }),
        (error) => settle({ error }),
      );
    },
  };
}

export function serverSuite(kind, serve) {
  // A broken server side hangs rather than fails: each test gets 10 s.
  const it = (name, fn) => test(name, { timeout: 10_000 }, fn);

  async function withServer(handler, body) {
    const server = await serve(handler);
    try {
      return await body(server.url);
    } finally {
      await server.close();
    }
  }

  it(`${kind}: the headers, retry with the first event, ids, JSON data, then the end`, async () => {
    const done = recorder();
    await withServer(
      (req, res) => {
        done.run(res, [{ data: { n: 1 }, id: "1" }, { event: "token", data: "two\nlines", id: "2" }, "plain"], {
          retry: 1500,
          headers: { "X-Extra": "yes" },
        });
      },
      async (url) => {
        const res = await get(url);
        assert.equal(res.statusCode, 200);
        assert.equal(res.headers["content-type"], "text/event-stream; charset=utf-8");
        assert.equal(res.headers["cache-control"], "no-cache");
        assert.equal(res.headers["x-accel-buffering"], "no");
        assert.equal(res.headers["x-extra"], "yes");
        assert.equal(res.headers["content-encoding"], undefined);
        const text = await readAll(res);
        assert.ok(text.startsWith("retry: 1500\nid: 1\ndata: "), text);
        assert.deepEqual(parse(text), {
          events: [
            { type: "message", data: '{"n":1}', id: "1" },
            { type: "token", data: "two\nlines", id: "2" },
            { type: "message", data: "plain", id: "2" },
          ],
          retry: 1500,
        });
      },
    );
    assert.deepEqual(await done.outcome, { why: "end" });
  });

  it(`${kind}: the headers go out before the first event (EventSource opens at once)`, async () => {
    let release;
    const gate = new Promise((resolve) => {
      release = resolve;
    });
    await withServer(
      (req, res) => {
        sendEvents(res, (async function* () {
          await gate;
          yield "late";
        })());
      },
      async (url) => {
        const res = await get(url);
        assert.equal(res.statusCode, 200);
        release();
        assert.deepEqual(parse(await readAll(res)).events.map((e) => e.data), ["late"]);
      },
    );
  });

  it(`${kind}: silence is filled with ping comments, which dispatch nothing`, async () => {
    await withServer(
      (req, res) => {
        sendEvents(res, (async function* () {
          await sleep(260);
          yield "after the pings";
        })(), { ping: 50 });
      },
      async (url) => {
        const text = await readAll(await get(url));
        const pings = text.split(": ping\n\n").length - 1;
        assert.ok(pings >= 3 && pings <= 6, `${pings} pings in ${JSON.stringify(text)}`);
        assert.deepEqual(parse(text).events.map((e) => e.data), ["after the pings"]);
      },
    );
  });

  it(`${kind}: a client that disconnects aborts the producer within 100 ms`, async () => {
    const done = recorder();
    let aborted = null;
    let finallyRan = false;
    await withServer(
      (req, res) => {
        done.run(res, (signal) => {
          signal.addEventListener("abort", () => {
            aborted = performance.now();
          });
          return (async function* () {
            try {
              yield { data: "first", id: "1" };
              await sleep(10_000, null, { signal }); // an upstream that is slow to answer
              yield "never";
            } finally {
              finallyRan = true;
            }
          })();
        });
      },
      async (url) => {
        const controller = new AbortController();
        const events = stream(url, { signal: controller.signal, retry: false });
        for await (const event of events) {
          assert.equal(event.data, "first");
          break; // leaving the loop aborts the fetch: the connection closes
        }
        const left = performance.now();
        const outcome = await Promise.race([done.outcome, sleep(2000, "timeout")]);
        assert.deepEqual(outcome, { why: "disconnect" });
        assert.ok(aborted !== null, "the producer's signal was not aborted");
        assert.ok(aborted - left < 100, `aborted ${(aborted - left).toFixed(1)} ms after the client left`);
        await sleep(20);
        assert.ok(finallyRan, "the producer's finally did not run");
      },
    );
  });

  it(`${kind}: a slow reader pauses the producer (write() false, then 'drain'), and loses nothing`, async () => {
    const size = 64 * 1024;
    const total = 400; // 25 MiB: far more than the socket buffers hold
    let produced = 0;
    const piece = "x".repeat(size - 20);
    await withServer(
      (req, res) => {
        sendEvents(res, (async function* () {
          for (let i = 0; i < total; i++) {
            produced += 1;
            yield { data: piece, id: String(i) };
          }
        })());
      },
      async (url) => {
        const res = await get(url);
        res.pause(); // read nothing for now
        await sleep(300);
        const early = produced;
        await sleep(300);
        assert.equal(produced, early, "the producer ran on while nobody read");
        assert.ok(early < total / 2, `${early} of ${total} items produced with nobody reading`);
        const { events } = parse(await readAll(res));
        assert.equal(events.length, total);
        assert.deepEqual(events.map((e) => e.id), Array.from({ length: total }, (_, i) => String(i)));
        assert.ok(events.every((e) => e.data === piece));
      },
    );
  });

  it(`${kind}: a client that reads nothing for sendTimeout is dropped, and its producer aborted`, async () => {
    const done = recorder();
    const piece = "y".repeat(64 * 1024);
    let aborted = false;
    await withServer(
      (req, res) => {
        done.run(
          res,
          (signal) => {
            signal.addEventListener("abort", () => {
              aborted = true;
            });
            return (function* () {
              for (;;) yield piece;
            })();
          },
          { sendTimeout: 200 },
        );
      },
      async (url) => {
        const res = await get(url);
        res.pause();
        const outcome = await Promise.race([done.outcome, sleep(3000, "timeout")]);
        assert.deepEqual(outcome, { why: "stalled" });
        assert.ok(aborted);
        res.destroy();
      },
    );
  });

  it(`${kind}: a producer that throws cuts the stream (the client sees a drop), and sendEvents rejects`, async () => {
    const done = recorder();
    await withServer(
      (req, res) => {
        done.run(res, (async function* () {
          yield { data: "ok", id: "1" };
          throw new Error("upstream broke");
        })());
      },
      async (url) => {
        const res = await get(url);
        await assert.rejects(readAll(res), /aborted|ECONNRESET|socket hang up/);
      },
    );
    const outcome = await done.outcome;
    assert.equal(outcome.error?.message, "upstream broke");
  });

  it(`${kind}: an AbortSignal (e.g. shutdown) ends the stream normally, after what was sent`, async () => {
    const done = recorder();
    const shutdown = new AbortController();
    await withServer(
      (req, res) => {
        done.run(res, (signal) => (async function* () {
          yield "before";
          await sleep(10_000, null, { signal }).catch(() => {});
        })(), { signal: shutdown.signal });
      },
      async (url) => {
        const res = await get(url);
        setTimeout(() => shutdown.abort(), 50);
        assert.deepEqual(parse(await readAll(res)).events.map((e) => e.data), ["before"]);
      },
    );
    assert.deepEqual(await done.outcome, { why: "aborted" });
  });

  it(`${kind}: lastEventId() reads the Last-Event-ID header, else ?last_event_id=`, async () => {
    const seen = [];
    await withServer(
      (req, res) => {
        seen.push(lastEventId(req));
        const writer = new EventWriter(res);
        writer.close({ data: "bye" });
      },
      async (url) => {
        await readAll(await get(url, { "Last-Event-ID": "7.2" }));
        await readAll(await get(`${url}?last_event_id=3.1`));
        await readAll(await get(url));
      },
    );
    assert.deepEqual(seen, ["7.2", "3.1", ""]);
  });

  it(`${kind}: EventWriter for push-style producers: send() resolves false once the client has gone`, async () => {
    let writer;
    let resolveOpen;
    const opened = new Promise((resolve) => {
      resolveOpen = resolve;
    });
    await withServer(
      (req, res) => {
        writer = new EventWriter(res, { ping: null });
        resolveOpen();
      },
      async (url) => {
        const res = await get(url);
        await opened;
        assert.equal(await writer.send({ data: "one", id: "1" }), true);
        res.destroy();
        assert.equal(await writer.ended, "disconnect");
        assert.equal(writer.signal.aborted, true);
        assert.equal(await writer.send("two"), false);
      },
    );
  });
}
