import type { SSEEvent } from "./sse.js";

/** What the module needs of a response: node:http's ServerResponse (and Express's) fits. */
export interface ResponseLike {
  writeHead(status: number, headers: Record<string, string>): unknown;
  write(chunk: string | Uint8Array): boolean;
  end(): unknown;
  destroy(error?: Error): unknown;
  flushHeaders?(): void;
  on(event: "close" | "drain" | "error", listener: (...args: any[]) => void): unknown;
  off(event: "drain", listener: (...args: any[]) => void): unknown;
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  readonly destroyed: boolean;
  readonly socket?: { setNoDelay?(noDelay?: boolean): unknown } | null;
}

/** What lastEventId() reads of a request: node:http's IncomingMessage fits. */
export interface RequestLike {
  url?: string;
  headers?: Record<string, string | string[] | undefined>;
}

export interface ItemFields {
  data?: unknown;
  event?: string | null;
  /** As SSEParser's events have it; "message" is left out. */
  type?: string | null;
  id?: string | null;
  retry?: number | null;
  comment?: string | null;
}

/** A string (the data), pre-encoded SSE bytes, or fields (`data` may be any JSON value). */
export type Item = string | Uint8Array | ItemFields | SSEEvent;

export type EndedBy = "end" | "disconnect" | "stalled" | "aborted" | "error";

export interface EventWriterOptions {
  status?: number;
  headers?: Record<string, string>;
  /** ms of silence before a `: ping` comment (default 15000; 0 or null: none). */
  ping?: number | null;
  /** Reconnection time (ms) for clients, sent with the first event. */
  retry?: number | null;
  /** ms a write may wait for a client that stopped reading (default 30000; 0 or null: for ever). */
  sendTimeout?: number | null;
  /** Ends the stream when aborted (e.g. server shutdown). */
  signal?: AbortSignal;
}

export const SSE_HEADERS: Readonly<Record<string, string>>;

export function frame(item: Item): string | Uint8Array;
export function lastEventId(req: RequestLike): string;

export class EventWriter {
  constructor(res: ResponseLike, options?: EventWriterOptions);
  readonly res: ResponseLike;
  /** Aborted when the stream ends for any reason but close(). */
  readonly signal: AbortSignal;
  readonly ended: Promise<EndedBy>;
  readonly endedBy: EndedBy | null;
  readonly closed: boolean;
  send(item: Item): Promise<boolean>;
  close(item?: Item): void;
}

export type Source = AsyncIterable<Item> | Iterable<Item>;

export function sendEvents(res: ResponseLike, source: Source | ((signal: AbortSignal) => Source), options?: EventWriterOptions): Promise<EndedBy>;
