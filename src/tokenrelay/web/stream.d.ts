import type { SSEEvent } from "./sse.js";

export interface RetryPolicy {
  delay: number;
  maxDelay: number;
  factor: number;
  jitter: number;
  maxAttempts: number;
}

export const DEFAULT_RETRY: Readonly<RetryPolicy>;
export const NO_RETRY: Readonly<RetryPolicy>;

/** How long to wait before reconnection attempt `attempts` (0-based), in ms. */
export function backoffDelay(policy: RetryPolicy, attempts: number, serverRetry?: number | null, random?: () => number): number;

export interface StreamRequest {
  url: string;
  method?: string;
  headers?: HeadersInit;
  body?: BodyInit | null;
}

export interface RetryInfo {
  attempt: number;
  delay: number;
  error: unknown;
  delivered: boolean;
}

export interface StreamOptions {
  method?: string;
  headers?: HeadersInit;
  body?: BodyInit | null;
  lastEventId?: string;
  signal?: AbortSignal;
  retry?: Partial<RetryPolicy> | false;
  idleTimeout?: number;
  reconnect?: (response: Response | null, stream: EventStream) => StreamRequest | null;
  until?: (event: SSEEvent) => boolean;
  onOpen?: (response: Response) => void;
  onRetry?: (info: RetryInfo) => void;
  fetch?: typeof fetch;
}

/** One logical event stream over fetch, across reconnections. */
export class EventStream implements AsyncIterable<SSEEvent> {
  constructor(url: string | URL, options?: StreamOptions);
  readonly url: string;
  readonly options: StreamOptions;
  readonly lastEventId: string;
  response: Response | null;
  firstResponse: Response | null;
  attempts: number;
  reconnects: number;
  closed: boolean;
  /** Stop: abort the current request; the iteration ends quietly. */
  close(): void;
  [Symbol.asyncIterator](): AsyncIterator<SSEEvent>;
}

export function stream(url: string | URL, options?: StreamOptions): EventStream;
