// server.js: Server-Sent Events from Node's `http.ServerResponse` (node:http, Express,
// anything built on them), with what the Python server side promises:
//
//   - the headers: `Content-Type: text/event-stream; charset=utf-8`, `Cache-Control:
//     no-cache`, `X-Accel-Buffering: no` (no Connection header: HTTP/2 forbids it), sent at
//     once so the client's EventSource opens before the first event;
//   - a `: ping` comment after `ping` ms of silence, so proxies keep the connection;
//   - a client that disconnects aborts `writer.signal` at once, which a producer passes to
//     its own awaits (fetch, timers), and `sendEvents()` stops pulling from it;
//   - backpressure: when `res.write()` returns false, nothing more is taken from the
//     producer until 'drain'; a client that reads nothing for `sendTimeout` ms is dropped;
//   - `retry:` sent with the first event, and ids as the items give them.
//
// No import of node:*: the module only calls the response's own methods.

import { comment, encodeEvent } from "./sse.js";

/** The headers of every event stream (the caller's headers are merged over them). */
export const SSE_HEADERS = Object.freeze({
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache",
  "X-Accel-Buffering": "no",
});

const PING = comment("ping");
const FIELDS = new Set(["data", "event", "type", "id", "retry", "comment"]);

/**
 * The SSE text of one item: a string (the data); a Uint8Array, written as it is (whole SSE
 * blocks, e.g. passed through from an upstream); or an object with `data` (a string, or
 * anything JSON.stringify takes) and optionally `event` (or `type`, as SSEParser's events
 * have it; "message" is left out), `id`, `retry`, `comment`. An object with only `comment`
 * is a comment. Fields that are null or undefined are left out.
 */
export function frame(item) {
  if (typeof item === "string") return encodeEvent({ data: item });
  if (item instanceof Uint8Array) return item;
  if (item === null || typeof item !== "object") throw new TypeError(`cannot send ${typeof item} as an event`);
  for (const key of Object.keys(item)) {
    if (!FIELDS.has(key)) throw new TypeError(`unknown event field ${JSON.stringify(key)}`);
  }
  const head = item.comment != null ? comment(item.comment) : "";
  if (item.data == null) {
    if (head && item.event == null && item.type == null && item.id == null && item.retry == null) return head;
    // A block without data dispatches nothing, and some clients (the OpenAI SDK) fail on
    // it: refuse rather than send it.
    throw new TypeError("an event needs data");
  }
  const data = typeof item.data === "string" ? item.data : JSON.stringify(item.data);
  const type = item.event ?? (item.type === "message" ? null : item.type);
  return head + encodeEvent({ data, event: type, id: item.id, retry: item.retry });
}

function concat(text, bytes) {
  const head = new TextEncoder().encode(text);
  const out = new Uint8Array(head.length + bytes.length);
  out.set(head);
  out.set(bytes, head.length);
  return out;
}

/**
 * The client's last event ID: the `Last-Event-ID` header (sent by EventSource when it
 * reconnects), else the `last_event_id` query parameter (how a page resumes a fresh
 * EventSource, which cannot send headers), else "".
 */
export function lastEventId(req) {
  const header = req.headers?.["last-event-id"];
  if (typeof header === "string" && header) return header;
  const query = new URL(req.url || "/", "http://localhost").searchParams.get("last_event_id");
  return query || "";
}

/**
 * An open event stream on `res`. The headers go out when it is built; `send(item)` writes
 * one item and resolves once the client can take more (true) or has gone (false);
 * `signal` aborts when the stream ends for any reason but `close()`; `ended` resolves to
 * why it ended: "end" (closed here), "disconnect" (the client left), "stalled" (nothing
 * read for `sendTimeout` ms: the connection is cut), "aborted" (the `signal` option) or
 * "error" (sendEvents' producer threw: the connection is cut).
 *
 * Options: `status` (200), `headers`, `ping` (ms of silence before a `: ping` comment,
 * default 15000; 0 or null: none), `retry` (ms, sent with the first event), `sendTimeout`
 * (ms a write may wait for a client that stopped reading, default 30000; 0 or null: for
 * ever), `signal` (an AbortSignal that ends the stream, e.g. at server shutdown).
 */
export class EventWriter {
  constructor(res, { status = 200, headers = {}, ping = 15000, retry = null, sendTimeout = 30000, signal } = {}) {
    if (ping != null && ping < 0) throw new RangeError("ping must be positive, or 0 or null for none");
    if (sendTimeout != null && sendTimeout < 0) throw new RangeError("sendTimeout must be positive, or 0 or null");
    this.res = res;
    this.endedBy = null;
    this._controller = new AbortController();
    this.signal = this._controller.signal;
    if (retry != null && (!Number.isSafeInteger(retry) || retry < 0)) throw new RangeError("retry must be a non-negative integer (ms)");
    this._prefix = retry == null ? "" : `retry: ${retry}\n`; // with the first event, as one block
    this._ping = ping || 0;
    this._sendTimeout = sendTimeout || 0;
    this._lastWrite = Date.now();
    this._pingTimer = null;
    this._waiting = null; // resolves the pending send() when 'drain' or the end comes
    this._external = signal;
    this.ended = new Promise((resolve) => {
      this._resolveEnded = resolve;
    });
    this._onClose = () => this._end(res.writableFinished ? "end" : "disconnect");
    this._onDrain = () => this._wake();
    this._onAbort = () => this._end("aborted");
    res.on("close", this._onClose);
    res.on("drain", this._onDrain);
    res.on("error", () => {}); // a write to a reset socket: 'close' follows and ends us
    signal?.addEventListener("abort", this._onAbort, { once: true });
    res.socket?.setNoDelay?.(true);
    res.writeHead(status, { ...SSE_HEADERS, ...headers });
    res.flushHeaders?.();
    if (signal?.aborted) this._end("aborted");
    else if (res.destroyed) this._end("disconnect");
    else this._schedulePing(this._ping);
  }

  /** True once the stream has ended (nothing more is written). */
  get closed() {
    return this.endedBy !== null;
  }

  /** Write one item (see frame()); resolves true when the client can take more, false if
   * the stream has ended. Awaiting it is what makes a fast producer wait for a slow client. */
  async send(item) {
    if (this.closed) return false;
    let chunk = frame(item);
    if (this._prefix) {
      chunk = typeof chunk === "string" ? this._prefix + chunk : concat(this._prefix, chunk);
      this._prefix = "";
    }
    this._lastWrite = Date.now();
    if (this.res.write(chunk)) return true;
    return this._drained();
  }

  /** End the stream here (after `item`, if given); the response ends normally. */
  close(item) {
    if (this.closed) return;
    if (item !== undefined) this.res.write(frame(item));
    this._end("end");
  }

  _drained() {
    return new Promise((resolve) => {
      let timer = null;
      if (this._sendTimeout) timer = setTimeout(() => this._end("stalled"), this._sendTimeout);
      this._waiting = () => {
        clearTimeout(timer);
        this._waiting = null;
        resolve(!this.closed);
      };
    });
  }

  _wake() {
    this._waiting?.();
  }

  _schedulePing(delay) {
    if (!this._ping) return;
    this._pingTimer = setTimeout(() => {
      if (this.closed) return;
      const silent = Date.now() - this._lastWrite;
      if (silent >= this._ping) {
        // A ping is a keep-alive, not data: it is not held back for a full buffer.
        this.res.write(PING);
        this._lastWrite = Date.now();
        this._schedulePing(this._ping);
      } else {
        this._schedulePing(this._ping - silent);
      }
    }, delay);
    this._pingTimer.unref?.();
  }

  _end(why, reason) {
    if (this.endedBy !== null) return;
    this.endedBy = why;
    clearTimeout(this._pingTimer);
    this._external?.removeEventListener("abort", this._onAbort);
    this.res.off("drain", this._onDrain);
    if (why === "end" || why === "aborted") {
      if (!this.res.writableEnded) this.res.end();
    } else if (why !== "disconnect") {
      this.res.destroy(); // stalled, or the producer failed: cut, so the client reconnects
    }
    if (why !== "end") this._controller.abort(reason ?? new Error(`the event stream ended: ${why}`));
    this._wake();
    this._resolveEnded(why);
  }
}

/**
 * Stream `source` to `res` as Server-Sent Events and resolve to why the stream ended (see
 * EventWriter, whose options it takes). `source` is an async or sync iterable of items, or
 * a function `(signal) => iterable` whose producer should pass `signal` to what it
 * awaits: it aborts the moment the client disconnects. The next item is taken only once
 * the client can take it. If the producer throws, the response is cut (the client sees a
 * broken stream, and EventSource reconnects) and the promise rejects with the error.
 */
export async function sendEvents(res, source, options = {}) {
  const writer = new EventWriter(res, options);
  let iterator;
  try {
    const iterable = typeof source === "function" ? source(writer.signal) : source;
    iterator = iterable[Symbol.asyncIterator] ? iterable[Symbol.asyncIterator]() : iterable[Symbol.iterator]();
    const ended = writer.ended.then(() => null);
    while (!writer.closed) {
      // A producer that ignores the signal is not waited for once the client has gone.
      const step = await Promise.race([iterator.next(), ended]);
      if (step === null) break;
      if (step.done) {
        writer.close();
        break;
      }
      await writer.send(step.value);
    }
  } catch (error) {
    writer._end("error", error);
    iterator?.return?.()?.catch?.(() => {});
    throw error;
  }
  if (writer.endedBy !== "end") iterator?.return?.()?.catch?.(() => {});
  return writer.ended;
}
