// stream.js: one logical event stream over fetch, across reconnections: `stream()` /
// `EventStream`, an async iterator of events that reconnects with Last-Event-ID after
// capped exponential backoff with jitter, and stops on 204, a non-200 status, a content
// type that is not text/event-stream, or an AbortSignal. Browsers and Node >= 20 (fetch).

import { IdleTimeoutError, ReconnectError, ResponseError, TokenRelayError } from "./errors.js";
import { SSEParser, isEventStream } from "./sse.js";

/**
 * The default reconnection policy: `delay` ms before the first reconnect (until the server
 * sets one with `retry:`); each further attempt without an event multiplies it by `factor`
 * up to `maxDelay`, less a random share of up to `jitter`; `maxAttempts` consecutive
 * attempts without an event, then ReconnectError (0: never reconnect).
 */
export const DEFAULT_RETRY = Object.freeze({
  delay: 3000,
  maxDelay: 30000,
  factor: 2,
  jitter: 0.5,
  maxAttempts: 10,
});

export const NO_RETRY = Object.freeze({ ...DEFAULT_RETRY, maxAttempts: 0 });

/** How long to wait before reconnection attempt `attempts` (0-based), in ms. */
export function backoffDelay(policy, attempts, serverRetry = null, random = Math.random) {
  const base = serverRetry ?? policy.delay;
  if (!attempts) return base;
  const nominal = Math.min(policy.maxDelay, base * policy.factor ** attempts);
  return nominal * (1 - policy.jitter * random());
}

// Header values are byte strings in fetch: send a non-ASCII id as its UTF-8 bytes, as
// EventSource does.
function byteString(text) {
  return String.fromCharCode(...new TextEncoder().encode(text));
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * One logical event stream over fetch, across reconnections; iterate it with `for await`.
 *
 * Options: `method`, `headers`, `body` (as fetch), `lastEventId` (seed the first request's
 * `Last-Event-ID`), `signal` (abort: the iteration ends quietly), `retry` (a policy like
 * DEFAULT_RETRY, partial is fine; `false` for none), `idleTimeout` (ms without a byte,
 * comments included, before the connection counts as broken; 0: none), `reconnect`
 * (`(response, stream) => request | null`: where to reconnect, default the same request;
 * null ends the stream with the last error), `until` (`event => boolean`: the stream is
 * complete after this event, so the body's end is not a drop), `onOpen(response)`,
 * `onRetry({attempt, delay, error})`, `fetch` (default globalThis.fetch).
 *
 * The body ending or the network failing reconnects (with `Last-Event-ID`); 204 ends the
 * stream quietly; any other status, or a content type that is not text/event-stream,
 * throws ResponseError and never retries.
 */
export class EventStream {
  constructor(url, options = {}) {
    this.url = String(url);
    this.options = options;
    this.retryPolicy = options.retry === false ? NO_RETRY : { ...DEFAULT_RETRY, ...(options.retry || {}) };
    this.parser = new SSEParser({ lastEventId: options.lastEventId || "" });
    this.response = null; // the current (last) response
    this.firstResponse = null;
    this.attempts = 0; // consecutive attempts without an event
    this.reconnects = 0; // all reconnections so far
    this.closed = false;
    this._closing = new AbortController(); // ends a wait between attempts
    this._controller = null;
    this._started = false;
  }

  get lastEventId() {
    return this.parser.lastEventId;
  }

  /** Stop: abort the current request; the iteration ends quietly. */
  close() {
    this.closed = true;
    this._controller?.abort();
    this._closing.abort();
  }

  [Symbol.asyncIterator]() {
    if (this._started) throw new TokenRelayError("an EventStream can be iterated once");
    this._started = true;
    return this._events();
  }

  _request(reconnecting) {
    const o = this.options;
    if (reconnecting && o.reconnect) return o.reconnect(this.response, this);
    return { url: this.url, method: o.method || "GET", headers: o.headers, body: o.body };
  }

  async *_events() {
    const o = this.options;
    const doFetch = o.fetch || globalThis.fetch;
    const signal = o.signal;
    const onAbort = () => this.close();
    signal?.addEventListener("abort", onAbort);
    if (signal?.aborted) this.closed = true;
    let request = this._request(false);
    try {
      while (!this.closed) {
        let error = null;
        let delivered = false;
        let finished = false;
        const controller = new AbortController();
        this._controller = controller;
        let idle = null;
        let idleFired = false;
        const feedWatchdog = () => {
          if (!o.idleTimeout) return;
          clearTimeout(idle);
          idle = setTimeout(() => {
            idleFired = true;
            controller.abort();
          }, o.idleTimeout);
        };
        try {
          const headers = new Headers(request.headers || {});
          headers.set("Accept", "text/event-stream");
          headers.set("Cache-Control", "no-cache");
          if (this.parser.lastEventId) headers.set("Last-Event-ID", byteString(this.parser.lastEventId));
          feedWatchdog();
          const response = await doFetch(request.url, {
            method: request.method || "GET",
            headers,
            body: request.body,
            signal: controller.signal,
            cache: "no-store",
          });
          this.response = response;
          this.firstResponse ??= response;
          if (response.status === 204) return; // the server's "do not come back"
          const contentType = response.headers.get("content-type");
          if (response.status !== 200 || !isEventStream(contentType)) {
            throw await ResponseError.from(response);
          }
          o.onOpen?.(response);
          const reader = response.body.getReader();
          try {
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              feedWatchdog();
              for (const event of this.parser.feed(value)) {
                delivered = true;
                this.attempts = 0;
                yield event;
                if (this.closed) return;
                if (o.until?.(event)) {
                  finished = true;
                  return;
                }
              }
            }
          } finally {
            if (!finished) reader.cancel().catch(() => {});
            else controller.abort();
          }
        } catch (exc) {
          if (exc instanceof ResponseError) throw exc;
          if (this.closed) return;
          error = idleFired ? new IdleTimeoutError(`no data for ${o.idleTimeout} ms`, { cause: exc }) : exc;
        } finally {
          clearTimeout(idle);
        }
        this.parser.close();
        if (this.closed) return;
        // The body ended or the network failed: reconnect, after a while.
        const policy = this.retryPolicy;
        if (policy.maxAttempts === 0) {
          if (error) throw error;
          return;
        }
        if (this.attempts >= policy.maxAttempts) {
          throw new ReconnectError(`gave up after ${this.attempts} reconnection attempts without an event`, this.attempts, error);
        }
        const next = this._request(true);
        if (!next) {
          if (error) throw error;
          return;
        }
        request = next;
        const delay = backoffDelay(policy, this.attempts, this.parser.retry);
        this.attempts += 1;
        this.reconnects += 1;
        o.onRetry?.({ attempt: this.attempts, delay, error, delivered });
        await sleep(delay, this._closing.signal);
      }
    } finally {
      this._controller?.abort();
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

/** `new EventStream(url, options)`: see EventStream for the options. */
export function stream(url, options = {}) {
  return new EventStream(url, options);
}
