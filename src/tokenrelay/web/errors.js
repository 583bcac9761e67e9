// errors.js: the errors of the tokenrelay package, one base class.
//
//   TokenRelayError
//   ├── EventTooLargeError   a line or an event over the parser's limit
//   ├── ResponseError        an answer that is not an event stream (never retried)
//   ├── ReconnectError       reconnecting gave up (`cause`: the last failure)
//   └── IdleTimeoutError     no byte for `idleTimeout` ms

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

  /** The error for `response` (a fetch Response), its body read and parsed. */
  static async from(response) {
    return new ResponseError(response.status, response.headers.get("content-type"), await readBody(response));
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

/** A response's body: parsed JSON when it is JSON, else its text ("" if unreadable). */
export async function readBody(response) {
  const text = await response.text().catch(() => "");
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
