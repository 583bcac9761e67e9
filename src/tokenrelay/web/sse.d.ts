/** One dispatched event. `id` is the last event ID at dispatch; `retry` the ms of this
 * event's valid `retry:` field, or null. */
export interface SSEEvent {
  type: string;
  data: string;
  id: string;
  retry: number | null;
}

export interface SSEParserOptions {
  /** The last event ID to start with (as after a reconnect). */
  lastEventId?: string;
  maxLineLength?: number;
  maxEventLength?: number;
}

export const DEFAULT_MAX_LINE_LENGTH: number;
export const DEFAULT_MAX_EVENT_LENGTH: number;

/** Bytes of one event stream in, events out, chunk by chunk (WHATWG HTML §9.2.6). */
export class SSEParser {
  constructor(options?: SSEParserOptions);
  readonly lastEventId: string;
  readonly retry: number | null;
  /** Parse the next chunk; return the events it completed. */
  feed(chunk: Uint8Array): SSEEvent[];
  /** End of the stream: an unterminated event is discarded; ready for the next connection. */
  close(): SSEEvent[];
}

/** The content type's essence is `text/event-stream`. */
export function isEventStream(contentType: string | null | undefined): boolean;

export interface EventFields {
  data: string;
  event?: string | null;
  id?: string | null;
  retry?: number | null;
}

/** One event as SSE text, ending with the blank line that dispatches it. */
export function encodeEvent(fields: EventFields): string;

/** A comment block (`: text`), e.g. the keep-alive `comment("ping")`. */
export function comment(text?: string): string;
