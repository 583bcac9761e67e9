// tokenrelay.js: Server-Sent Events for LLM token streams in the browser (and Node >= 18).
// An ES module with no dependencies and no build step.
//
//   SSEParser        bytes in, events out: the exact rules of the Python core
//                    (tokenrelay.sse.Decoder, WHATWG HTML §9.2.5-9.2.6)
//   stream()         fetch + reader loop (any method, body, headers) as an async iterator of
//                    events; reconnects with Last-Event-ID, capped exponential backoff with
//                    jitter; stops on 204, non-200, a wrong content type, an AbortSignal
//   gatewayStream()  a POST to the gateway whose reconnects resume from /v1/streams/{id}
//   resumeStream(), resumeURL(), resumeEventSource(), cancelStream()
//                    the gateway's /v1/streams/{id}, over fetch or plain EventSource
//   parseOpenAIChat(), parseAnthropic(), parseOpenAIResponses(), partsOf(), Reply
//                    the dialects' events as small neutral parts: text, reasoning,
//                    tool calls, usage, finish, error, done

const LF = 10;
const CR = 13;

export const DEFAULT_MAX_LINE_LENGTH = 16 * 1024 * 1024;
export const DEFAULT_MAX_EVENT_LENGTH = 16 * 1024 * 1024;

/** Base of the errors this module throws. */
export class TokenRelayError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = this.constructor.name;
  }
}

/** A line or an event longer than the parser's limit (in UTF-16 code units). */
export class EventTooLargeError extends TokenRelayError {
  constructor(what, limit, size) {
    super(`${what} of ${size} characters exceeds the limit of ${limit}`);
    this.what = what;
    this.limit = limit;
    this.size = size;
  }
}

/** The server answered, but not with an event stream: never retried (as EventSource). */
export class ResponseError extends TokenRelayError {
  constructor(status, contentType, body) {
    const message = errorMessageOf(body) || `HTTP ${status}${contentType ? ` (${contentType})` : ""}`;
    super(message);
    this.status = status;
    this.contentType = contentType;
    this.body = body; // parsed JSON when the body was JSON, else text
  }
}

/** Reconnecting gave up; `cause` is the last failure. */
export class ReconnectError extends TokenRelayError {
  constructor(message, attempts, cause) {
    super(message, { cause });
    this.attempts = attempts;
  }
}

/** No byte (not even a comment) arrived for `idleTimeout` ms. */
export class IdleTimeoutError extends TokenRelayError {}

function errorMessageOf(body) {
  if (body && typeof body === "object") {
    const error = body.error;
    if (error && typeof error === "object" && typeof error.message === "string") return error.message;
    if (typeof error === "string") return error;
    if (typeof body.message === "string") return body.message;
  }
  return typeof body === "string" ? body.slice(0, 500) : "";
}

/**
 * Turns the bytes of one event stream into events `{type, data, id, retry}`, chunk by chunk.
 *
 * Same rules as the Python core: UTF-8 whatever the charset (invalid bytes become U+FFFD),
 * one leading BOM dropped, lines end at CRLF, LF or CR (a CR at a chunk's end is held until
 * the next byte shows whether an LF follows), one leading space of a value removed, `id`
 * with U+0000 ignored, `retry` only of ASCII digits, no event for an empty data buffer, and
 * `id` is the last event ID at dispatch. `close()` ends the stream: an unterminated event
 * is discarded (its id does not count); the parser then takes the next connection's bytes
 * and keeps `lastEventId` and `retry`.
 */
export class SSEParser {
  constructor({
    lastEventId = "",
    maxLineLength = DEFAULT_MAX_LINE_LENGTH,
    maxEventLength = DEFAULT_MAX_EVENT_LENGTH,
  } = {}) {
    this._lastEventId = lastEventId;
    this._retry = null;
    this._maxLine = maxLineLength;
    this._maxEvent = maxEventLength;
    this._failed = null;
    this._reset();
  }

  /** The last event ID: what a reconnecting client sends as `Last-Event-ID`. */
  get lastEventId() {
    return this._lastEventId;
  }

  /** The reconnection time in ms from the last valid `retry:` field, or null. */
  get retry() {
    return this._retry;
  }

  _reset() {
    // The WHATWG decoder drops exactly one BOM at the start of its stream (even split
    // across chunks) and replaces invalid bytes with U+FFFD: what the spec asks.
    this._text = new TextDecoder("utf-8");
    this._pending = ""; // the unterminated last line
    this._skipLF = false; // a CR ended the last chunk: an LF right after belongs to it
    this._data = null; // data lines of the event being built (null: none)
    this._type = "";
    this._eventRetry = null;
    this._size = 0; // characters of the open event, to bound memory
    this._idBuffer = this._lastEventId;
  }

  /** Parse the next chunk of bytes (a Uint8Array); return the events it completed. */
  feed(chunk) {
    if (this._failed) throw this._failed;
    const text = this._text.decode(chunk, { stream: true });
    const events = [];
    let start = 0;
    const end = text.length;
    if (this._skipLF && end) {
      this._skipLF = false;
      if (text.charCodeAt(0) === LF) start = 1;
    }
    while (start < end) {
      let i = start;
      let c = 0;
      // Find the next CR or LF; indexOf twice beats a char loop on long lines.
      const lf = text.indexOf("\n", start);
      const cr = text.indexOf("\r", start);
      if (lf < 0 && cr < 0) break;
      i = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
      c = text.charCodeAt(i);
      let line = text.slice(start, i);
      if (this._pending) {
        line = this._pending + line;
        this._pending = "";
      }
      if (line.length > this._maxLine) return this._fail(new EventTooLargeError("line", this._maxLine, line.length), events);
      start = i + 1;
      if (c === CR) {
        if (start < end) {
          if (text.charCodeAt(start) === LF) start += 1;
        } else {
          this._skipLF = true;
        }
      }
      this._line(line, events);
      if (this._size > this._maxEvent) return this._fail(new EventTooLargeError("event", this._maxEvent, this._size), events);
    }
    if (start < end) {
      this._pending += start ? text.slice(start) : text;
      if (this._pending.length > this._maxLine) {
        return this._fail(new EventTooLargeError("line", this._maxLine, this._pending.length), events);
      }
      if (this._size + this._pending.length > this._maxEvent) {
        return this._fail(new EventTooLargeError("event", this._maxEvent, this._size + this._pending.length), events);
      }
    }
    return events;
  }

  /** End of the stream: discard an unterminated event; ready for the next connection. */
  close() {
    const failed = this._failed;
    this._failed = null;
    this._reset();
    if (failed && failed._owed) {
      failed._owed = false;
      throw failed;
    }
    return [];
  }

  _fail(error, events) {
    this._pending = "";
    this._data = null;
    this._failed = error;
    if (events.length) {
      error._owed = true; // deliver the complete events first; throw on the next call
      return events;
    }
    throw error;
  }

  _line(line, events) {
    if (line === "") {
      this._dispatch(events);
      return;
    }
    this._size += line.length + 1;
    if (line.charCodeAt(0) === 58 /* : */) return; // comment
    const colon = line.indexOf(":");
    let name = line;
    let value = "";
    if (colon >= 0) {
      name = line.slice(0, colon);
      value = line.charCodeAt(colon + 1) === 32 ? line.slice(colon + 2) : line.slice(colon + 1);
    }
    switch (name) {
      case "data":
        if (this._data === null) this._data = [value];
        else this._data.push(value);
        break;
      case "event":
        this._type = value;
        break;
      case "id":
        if (!value.includes("\0")) this._idBuffer = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this._eventRetry = this._retry = Number.parseInt(value, 10);
        break;
      default: // any other field is ignored
    }
  }

  _dispatch(events) {
    // The id moves on at every blank line, even when no event is sent.
    this._lastEventId = this._idBuffer;
    this._size = 0;
    if (this._data !== null) {
      events.push({
        type: this._type || "message",
        data: this._data.join("\n"),
        id: this._idBuffer,
        retry: this._eventRetry,
      });
      this._data = null;
    }
    this._type = "";
    this._eventRetry = null;
  }
}

/** The content type's essence is `text/event-stream` (parameters ignored). */
export function isEventStream(contentType) {
  return (contentType || "").split(";")[0].trim().toLowerCase() === "text/event-stream";
}

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

async function readBody(response) {
  const text = await response.text().catch(() => "");
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
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
            throw new ResponseError(response.status, contentType, await readBody(response));
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

// ---------------------------------------------------------------------------------------
// The gateway: streams resumable by id

function joinURL(base, path) {
  return String(base).replace(/\/+$/, "") + path;
}

/** The URL of `/v1/streams/{id}`; with `lastEventId`, as the query parameter that plain
 * `EventSource` (which cannot send headers) uses to resume. */
export function resumeURL(base, streamId, lastEventId = "") {
  const url = joinURL(base, `/v1/streams/${encodeURIComponent(streamId)}`);
  return lastEventId ? `${url}?last_event_id=${encodeURIComponent(lastEventId)}` : url;
}

/** Resume a gateway stream over fetch, after `lastEventId` ("" or none: from the start). */
export function resumeStream(base, streamId, options = {}) {
  return stream(resumeURL(base, streamId), { ...options, method: "GET", body: undefined });
}

/** Resume with plain EventSource: the id goes in the query for the first connection; the
 * browser's own reconnects send `Last-Event-ID`, which the gateway prefers. */
export function resumeEventSource(base, streamId, lastEventId = "", init = undefined) {
  return new EventSource(resumeURL(base, streamId, lastEventId), init);
}

/** Cancel the generation behind a stream (`DELETE /v1/streams/{id}`). */
export async function cancelStream(base, streamId, { headers, fetch: doFetch } = {}) {
  const response = await (doFetch || globalThis.fetch)(resumeURL(base, streamId), { method: "DELETE", headers });
  const body = await readBody(response);
  if (!response.ok) throw new ResponseError(response.status, response.headers.get("content-type"), body);
  return body;
}

/**
 * A generation on the gateway: POST `body` (JSON) to `base + path`; if the connection
 * drops, resume from `/v1/streams/{x-stream-id}` with the last event id, so no event is
 * lost or doubled. The stream is complete after the dialect's last event.
 */
export function gatewayStream(base, path, body, options = {}) {
  const dialect = DIALECT_OF_PATH[path] || "openai-chat";
  const headers = new Headers(options.headers || {});
  headers.set("Content-Type", "application/json");
  const es = stream(joinURL(base, path), {
    retry: { delay: 500, maxDelay: 8000, maxAttempts: 12 },
    until: (event) => isFinal(dialect, event),
    ...options,
    method: "POST",
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
    reconnect: (previous, es) => {
      const id = es.firstResponse?.headers.get("x-stream-id");
      if (!id) return null;
      const h = new Headers(options.headers || {});
      return { url: resumeURL(base, id), method: "GET", headers: h };
    },
  });
  es.dialect = dialect;
  return es;
}

// ---------------------------------------------------------------------------------------
// Dialects: events as neutral parts
//
//   {type: "text", text, choice}            {type: "reasoning", text, choice}
//   {type: "tool_call", index, id, name, arguments, choice}   (arguments: a fragment)
//   {type: "usage", input, output}          {type: "finish", reason, choice}
//   {type: "error", message, kind, status}  {type: "done"}

const DIALECT_OF_PATH = {
  "/v1/chat/completions": "openai-chat",
  "/v1/messages": "anthropic",
  "/v1/responses": "openai-responses",
};

function parseJSON(data) {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}

function errorPart(error, fallback = "error") {
  if (error && typeof error === "object") {
    return {
      type: "error",
      message: String(error.message || fallback),
      kind: String(error.type || error.code || "error"),
      status: typeof error.status === "number" ? error.status : null,
    };
  }
  return { type: "error", message: String(error || fallback), kind: "error", status: null };
}

/** Parts of one event of an OpenAI chat completions stream. */
export function parseOpenAIChat(event) {
  if (event.data === "[DONE]") return [{ type: "done" }];
  const chunk = parseJSON(event.data);
  if (event.type === "error") return [errorPart(chunk?.error ?? chunk ?? event.data)];
  if (!chunk || typeof chunk !== "object") return [];
  if (chunk.error) return [errorPart(chunk.error)];
  const parts = [];
  for (const choice of chunk.choices || []) {
    const c = choice.index || 0;
    const delta = choice.delta || {};
    const reasoning = delta.reasoning_content || delta.reasoning;
    if (typeof reasoning === "string" && reasoning) parts.push({ type: "reasoning", text: reasoning, choice: c });
    if (typeof delta.content === "string" && delta.content) parts.push({ type: "text", text: delta.content, choice: c });
    for (const call of delta.tool_calls || []) {
      parts.push({
        type: "tool_call",
        index: call.index || 0,
        id: call.id || "",
        name: call.function?.name || "",
        arguments: call.function?.arguments || "",
        choice: c,
      });
    }
    if (choice.finish_reason) parts.push({ type: "finish", reason: choice.finish_reason, choice: c });
  }
  if (chunk.usage) {
    parts.push({ type: "usage", input: chunk.usage.prompt_tokens ?? 0, output: chunk.usage.completion_tokens ?? 0 });
  }
  return parts;
}

/** Parts of one event of an Anthropic messages stream. */
export function parseAnthropic(event) {
  const body = parseJSON(event.data);
  if (!body || typeof body !== "object") return [];
  switch (body.type || event.type) {
    case "message_start": {
      const usage = body.message?.usage;
      return usage && (usage.input_tokens || usage.output_tokens)
        ? [{ type: "usage", input: usage.input_tokens ?? 0, output: usage.output_tokens ?? 0 }]
        : [];
    }
    case "content_block_start": {
      const block = body.content_block || {};
      if (block.type === "tool_use") {
        return [{ type: "tool_call", index: body.index ?? 0, id: block.id || "", name: block.name || "", arguments: "", choice: 0 }];
      }
      if (block.type === "text" && block.text) return [{ type: "text", text: block.text, choice: 0 }];
      return [];
    }
    case "content_block_delta": {
      const d = body.delta || {};
      if (d.type === "text_delta") return d.text ? [{ type: "text", text: d.text, choice: 0 }] : [];
      if (d.type === "thinking_delta") return d.thinking ? [{ type: "reasoning", text: d.thinking, choice: 0 }] : [];
      if (d.type === "input_json_delta") {
        return d.partial_json ? [{ type: "tool_call", index: body.index ?? 0, id: "", name: "", arguments: d.partial_json, choice: 0 }] : [];
      }
      return [];
    }
    case "message_delta": {
      const parts = [];
      if (body.delta?.stop_reason) parts.push({ type: "finish", reason: body.delta.stop_reason, choice: 0 });
      if (body.usage) parts.push({ type: "usage", input: body.usage.input_tokens ?? null, output: body.usage.output_tokens ?? 0 });
      return parts;
    }
    case "message_stop":
      return [{ type: "done" }];
    case "error":
      return [errorPart(body.error)];
    default:
      return [];
  }
}

/** Parts of one event of an OpenAI Responses stream. */
export function parseOpenAIResponses(event) {
  const body = parseJSON(event.data);
  if (!body || typeof body !== "object") return [];
  switch (body.type || event.type) {
    case "response.output_text.delta":
      return body.delta ? [{ type: "text", text: body.delta, choice: 0 }] : [];
    case "response.reasoning_summary_text.delta":
    case "response.reasoning_text.delta":
      return body.delta ? [{ type: "reasoning", text: body.delta, choice: 0 }] : [];
    case "response.output_item.added": {
      const item = body.item || {};
      if (item.type !== "function_call") return [];
      return [{ type: "tool_call", index: body.output_index ?? 0, id: item.call_id || "", name: item.name || "", arguments: item.arguments || "", choice: 0 }];
    }
    case "response.function_call_arguments.delta":
      return body.delta ? [{ type: "tool_call", index: body.output_index ?? 0, id: "", name: "", arguments: body.delta, choice: 0 }] : [];
    case "response.completed":
    case "response.incomplete": {
      const r = body.response || {};
      const parts = [];
      if (r.usage) parts.push({ type: "usage", input: r.usage.input_tokens ?? 0, output: r.usage.output_tokens ?? 0 });
      parts.push({ type: "finish", reason: r.incomplete_details?.reason || r.status || "completed", choice: 0 });
      parts.push({ type: "done" });
      return parts;
    }
    case "response.failed":
      return [errorPart(body.response?.error, "response failed"), { type: "done" }];
    case "error":
      return [errorPart(body.error || body)];
    default:
      return [];
  }
}

const PARSERS = {
  "openai-chat": parseOpenAIChat,
  anthropic: parseAnthropic,
  "openai-responses": parseOpenAIResponses,
};

/** The parts of `event` in `dialect` ("openai-chat", "anthropic", "openai-responses"). */
export function partsOf(dialect, event) {
  const parse = PARSERS[dialect];
  if (!parse) throw new TokenRelayError(`unknown dialect: ${dialect}`);
  return parse(event);
}

/** The stream is complete after this event: its last event, or an error. */
export function isFinal(dialect, event) {
  return partsOf(dialect, event).some((p) => p.type === "done" || p.type === "error");
}

/** What a stream said so far, assembled from parts (choice 0). */
export class Reply {
  constructor() {
    this.text = "";
    this.reasoning = "";
    this.toolCalls = []; // {id, name, arguments} by index
    this.usage = null; // {input, output}
    this.finish = null;
    this.error = null; // {message, kind, status}
    this.done = false;
  }

  /** Apply parts; returns this. */
  add(parts) {
    for (const p of parts) {
      if (p.choice) continue;
      switch (p.type) {
        case "text":
          this.text += p.text;
          break;
        case "reasoning":
          this.reasoning += p.text;
          break;
        case "tool_call": {
          const call = (this.toolCalls[p.index] ??= { id: "", name: "", arguments: "" });
          call.id ||= p.id;
          call.name ||= p.name;
          call.arguments += p.arguments;
          break;
        }
        case "usage":
          this.usage = { input: p.input ?? this.usage?.input ?? 0, output: p.output ?? 0 };
          break;
        case "finish":
          this.finish = p.reason;
          break;
        case "error":
          this.error = { message: p.message, kind: p.kind, status: p.status };
          this.done = true;
          break;
        case "done":
          this.done = true;
          break;
        default:
      }
    }
    return this;
  }
}
