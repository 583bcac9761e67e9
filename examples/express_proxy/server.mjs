// An Express app between a browser and an OpenAI-compatible upstream (the tokenrelay
// gateway, or any base URL): the page posts a prompt, the server streams the answer from
// the upstream with the key it keeps, and relays it to the page's EventSource. A dropped
// connection loses nothing: EventSource reconnects with Last-Event-ID and the server
// replays what followed it. If the upstream is the gateway, a drop between here and there
// is resumed too (from /v1/streams/{x-stream-id}).
//
//   cd examples/express_proxy && npm install
//   UPSTREAM_BASE_URL=http://127.0.0.1:8080/v1 OPENAI_API_KEY=... MODEL=... node server.mjs
//   open http://127.0.0.1:3000/
//
// Generation is decoupled from delivery: each answer is produced once into an in-memory
// log; every GET of its events reads the log after its Last-Event-ID. A log with no reader
// for GRACE_MS stops its upstream; a finished log is forgotten after KEEP_MS.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import express from "express";
import { isFinal, parseOpenAIChat, stream } from "tokenrelay";
import { lastEventId, sendEvents } from "tokenrelay/server";

const PAGE = readFileSync(new URL("./index.html", import.meta.url), "utf8");

/** One answer: its events (id = index), whether it ended, and who waits for more. */
class Answer {
  constructor() {
    this.events = [];
    this.done = false;
    this.readers = 0;
    this.controller = new AbortController(); // stops the upstream
    this._waiters = new Set();
  }

  push(event) {
    this.events.push({ ...event, id: String(this.events.length) });
    this._wake();
  }

  end(event) {
    if (this.done) return;
    this.push(event);
    this.done = true;
  }

  _wake() {
    for (const wake of this._waiters) wake();
    this._waiters.clear();
  }

  /** Until the log holds more than `length` events or ends, or `signal` aborts. */
  wait(length, signal) {
    if (this.events.length > length || this.done || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        signal.removeEventListener("abort", wake);
        this._waiters.delete(wake);
        resolve();
      };
      this._waiters.add(wake);
      signal.addEventListener("abort", wake, { once: true });
    });
  }

  /** The events after the one with id `after` ("" for all), as they come. */
  async *after(after, signal) {
    let next = after === "" ? 0 : Number.parseInt(after, 10) + 1;
    while (!signal.aborted) {
      while (next < this.events.length) yield this.events[next++];
      if (this.done) return;
      await this.wait(next, signal);
    }
  }
}

/**
 * The app. `baseURL` is the upstream's OpenAI base URL (ending in /v1), `apiKey` its key
 * (never sent to the browser), `model` the model to ask for.
 */
export function createApp({ baseURL, apiKey = "", model, graceMs = 30_000, keepMs = 300_000 }) {
  const base = baseURL.replace(/\/+$/, "");
  const answers = new Map();
  const auth = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};

  async function generate(answer, prompt) {
    const events = stream(`${base}/chat/completions`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({
        model,
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: "user", content: prompt }],
      }),
      signal: answer.controller.signal,
      until: (event) => isFinal("openai-chat", event),
      retry: { delay: 200, maxDelay: 2000, maxAttempts: 5 },
      // The gateway names its stream: a drop is resumed there, after the last event id.
      // Any other upstream cannot resume a generation: the answer fails instead.
      reconnect: (response, es) => {
        const id = es.firstResponse?.headers.get("x-stream-id");
        return id ? { url: `${base}/streams/${encodeURIComponent(id)}`, method: "GET", headers: auth } : null;
      },
    });
    let finish = null;
    let usage = null;
    try {
      for await (const event of events) {
        for (const part of parseOpenAIChat(event)) {
          if (part.type === "text" && part.choice === 0) answer.push({ event: "token", data: { text: part.text } });
          else if (part.type === "finish") finish = part.reason;
          else if (part.type === "usage") usage = part;
          else if (part.type === "error") return answer.end({ event: "failed", data: { message: part.message } });
        }
      }
      if (answer.controller.signal.aborted) return answer.end({ event: "failed", data: { message: "abandoned" } });
      answer.end({ event: "done", data: { finish, usage: usage && { input: usage.input, output: usage.output } } });
    } catch (error) {
      answer.end({ event: "failed", data: { message: error.message } });
    } finally {
      setTimeout(() => answers.delete(answer.id), keepMs).unref();
    }
  }

  const app = express();
  app.use(express.json({ limit: "64kb" }));

  app.get("/", (req, res) => {
    res.type("html").send(PAGE);
  });

  // Start an answer; the page then opens its events with EventSource (GET only).
  app.post("/api/chat", (req, res) => {
    const prompt = req.body?.prompt;
    if (typeof prompt !== "string" || !prompt.trim()) {
      res.status(400).json({ error: { message: "prompt must be a non-empty string" } });
      return;
    }
    const answer = new Answer();
    answer.id = randomUUID();
    answers.set(answer.id, answer);
    generate(answer, prompt);
    res.status(201).json({ id: answer.id, events: `api/chat/${answer.id}/events` });
  });

  app.get("/api/chat/:id/events", async (req, res) => {
    const answer = answers.get(req.params.id);
    if (!answer) {
      res.status(404).json({ error: { message: "no such answer (or it was forgotten)" } });
      return;
    }
    const after = lastEventId(req);
    if (!/^\d*$/.test(after)) {
      res.status(400).json({ error: { message: "Last-Event-ID is not one of ours" } });
      return;
    }
    if (answer.done && after !== "" && Number(after) >= answer.events.length - 1) {
      res.status(204).end(); // complete: tells EventSource not to come back
      return;
    }
    answer.readers += 1;
    clearTimeout(answer.grace);
    try {
      await sendEvents(res, (signal) => answer.after(after, signal), { retry: 1000 });
    } finally {
      answer.readers -= 1;
      if (answer.readers === 0 && !answer.done) {
        answer.grace = setTimeout(() => answer.controller.abort(), graceMs);
        answer.grace.unref();
      }
    }
  });

  return app;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const app = createApp({
    baseURL: process.env.UPSTREAM_BASE_URL || "http://127.0.0.1:8080/v1",
    apiKey: process.env.OPENAI_API_KEY || "",
    model: process.env.MODEL || "smollm2",
  });
  const port = Number(process.env.PORT || 3000);
  const host = process.env.HOST || "127.0.0.1";
  app.listen(port, host, () => console.log(`listening on http://${host}:${port}/`));
}
