/** Base of the errors the package throws. */
export class TokenRelayError extends Error {
  constructor(message?: string, options?: { cause?: unknown });
}

/** A line or an event longer than the parser's limit (in UTF-16 code units). */
export class EventTooLargeError extends TokenRelayError {
  constructor(what: "line" | "event", limit: number, size: number);
  readonly what: "line" | "event";
  readonly limit: number;
  readonly size: number;
}

/** The server answered, but not with an event stream: never retried (as EventSource). */
export class ResponseError extends TokenRelayError {
  constructor(status: number, contentType: string | null, body: unknown);
  readonly status: number;
  readonly contentType: string | null;
  /** Parsed JSON when the body was JSON, else its text. */
  readonly body: unknown;
  /** The error for a fetch Response, its body read and parsed. */
  static from(response: Response): Promise<ResponseError>;
}

/** Reconnecting gave up; `cause` is the last failure. */
export class ReconnectError extends TokenRelayError {
  constructor(message: string, attempts: number, cause?: unknown);
  readonly attempts: number;
}

/** No byte (not even a comment) arrived for `idleTimeout` ms. */
export class IdleTimeoutError extends TokenRelayError {}

/** A response's body: parsed JSON when it is JSON, else its text ("" if unreadable). */
export function readBody(response: Response): Promise<unknown>;
