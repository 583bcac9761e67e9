// gateway.js: the tokenrelay gateway's streams, resumable by id: `gatewayStream()` (a POST
// whose reconnects resume from /v1/streams/{x-stream-id}), `resumeStream()`, `resumeURL()`,
// `resumeEventSource()` (plain EventSource) and `cancelStream()` (DELETE).

import { ResponseError, readBody } from "./errors.js";
import { dialectOfPath, isFinal } from "./dialects.js";
import { stream } from "./stream.js";

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
  const dialect = dialectOfPath(path);
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
