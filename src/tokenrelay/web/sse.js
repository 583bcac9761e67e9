// sse.js: the Server-Sent Events protocol without I/O: `SSEParser` (bytes in, events out),
// `encodeEvent()` and `comment()` (events out as text). No timers, no fetch, no DOM: the
// same in browsers and in Node.

import { EventTooLargeError } from "./errors.js";

const LF = 10;
const CR = 13;

export const DEFAULT_MAX_LINE_LENGTH = 16 * 1024 * 1024;
export const DEFAULT_MAX_EVENT_LENGTH = 16 * 1024 * 1024;

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
    this._data = null; // the data of the event being built, lines joined by LF (null: none)
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
    // The next LF and the next CR, each found again only once passed: indexOf beats a
    // char loop on long lines, and remembering the other one keeps CR-only (or LF-only)
    // text linear instead of rescanning to the end for every line.
    let lf = text.indexOf("\n", start);
    let cr = text.indexOf("\r", start);
    while (start < end) {
      if (lf >= 0 && lf < start) lf = text.indexOf("\n", start);
      if (cr >= 0 && cr < start) cr = text.indexOf("\r", start);
      if (lf < 0 && cr < 0) break;
      const i = lf < 0 ? cr : cr < 0 ? lf : lf < cr ? lf : cr;
      const c = text.charCodeAt(i);
      // The line is read in place in `text` (no copy of it) unless it began in an
      // earlier chunk.
      let line = text;
      let from = start;
      let to = i;
      if (this._pending) {
        line = this._pending + text.slice(start, i);
        from = 0;
        to = line.length;
        this._pending = "";
      }
      if (to - from > this._maxLine) return this._fail(new EventTooLargeError("line", this._maxLine, to - from), events);
      start = i + 1;
      if (c === CR) {
        if (start < end) {
          if (text.charCodeAt(start) === LF) start += 1;
        } else {
          this._skipLF = true;
        }
      }
      this._line(line, from, to, events);
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

  /** The line `text[from:to]`. */
  _line(text, from, to, events) {
    if (from === to) {
      this._dispatch(events);
      return;
    }
    this._size += to - from + 1;
    const first = text.charCodeAt(from);
    if (first === 58 /* : */) return; // comment
    // "data:" is most lines of an LLM stream: no field name sliced out for it.
    if (first === 100 /* d */ && to - from > 4 && text.charCodeAt(from + 4) === 58 && text.startsWith("data", from)) {
      const value = text.slice(to - from > 5 && text.charCodeAt(from + 5) === 32 ? from + 6 : from + 5, to);
      // Concatenation, not an array and join: V8 builds a rope, flattened once when read.
      this._data = this._data === null ? value : `${this._data}\n${value}`;
      return;
    }
    let colon = text.indexOf(":", from);
    if (colon >= to) colon = -1;
    let name;
    let value = "";
    if (colon >= 0) {
      name = text.slice(from, colon);
      value = text.slice(colon + 1 < to && text.charCodeAt(colon + 1) === 32 ? colon + 2 : colon + 1, to);
    } else {
      name = text.slice(from, to);
    }
    switch (name) {
      case "data":
        this._data = this._data === null ? value : `${this._data}\n${value}`;
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
        data: this._data,
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


// ---------------------------------------------------------------------------------------
// Writing: the same promises as the Python encoder (tokenrelay.sse.encode)

const LINE_BREAK = /\r\n|\r|\n/;

/**
 * One event as SSE text, ending with the blank line that dispatches it. Line breaks in
 * `data` (CR, LF or CRLF) become separate `data:` lines, which a reader joins with LF;
 * `event`/`id` with a line break, an `id` with NUL, or a `retry` that is not a
 * non-negative integer throw TypeError instead of being changed. `event` undefined or
 * null leaves the type out (readers use "message"); `id` undefined or null leaves the last
 * event ID unchanged, `""` resets it.
 */
export function encodeEvent({ data, event, id, retry }) {
  let head = "";
  if (event != null) {
    if (/[\r\n]/.test(event)) throw new TypeError(`event type must not contain CR or LF: ${JSON.stringify(event)}`);
    head += `event: ${event}\n`;
  }
  if (id != null) {
    if (/[\r\n\0]/.test(id)) throw new TypeError(`event id must not contain CR, LF or NUL: ${JSON.stringify(id)}`);
    head += `id: ${id}\n`;
  }
  if (retry != null) {
    if (!Number.isSafeInteger(retry) || retry < 0) throw new TypeError(`retry must be a non-negative integer (ms): ${retry}`);
    head += `retry: ${retry}\n`;
  }
  const text = String(data);
  if (!text.includes("\n") && !text.includes("\r")) return `${head}data: ${text}\n\n`;
  return `${head}data: ${text.split(LINE_BREAK).join("\ndata: ")}\n\n`;
}

/** A comment block (`: text`), e.g. the keep-alive `comment("ping")`: readers dispatch
 * nothing for it. It ends with a blank line, so clients that wait for whole blocks see it
 * at once. */
export function comment(text = "") {
  return `${String(text).split(LINE_BREAK).map((line) => (line ? `: ${line}` : ":")).join("\n")}\n\n`;
}
