import type { Dialect } from "./dialects.js";
import type { EventStream, StreamOptions } from "./stream.js";

/** The URL of `/v1/streams/{id}`; with `lastEventId`, as the query parameter. */
export function resumeURL(base: string, streamId: string, lastEventId?: string): string;

/** Resume a gateway stream over fetch. */
export function resumeStream(base: string, streamId: string, options?: StreamOptions): EventStream;

/** Resume with plain EventSource (browsers). */
export function resumeEventSource(base: string, streamId: string, lastEventId?: string, init?: EventSourceInit): EventSource;

/** Cancel the generation behind a stream (`DELETE /v1/streams/{id}`). */
export function cancelStream(base: string, streamId: string, options?: { headers?: HeadersInit; fetch?: typeof fetch }): Promise<unknown>;

/** A POST to the gateway whose reconnects resume from /v1/streams/{x-stream-id}. */
export function gatewayStream(base: string, path: string, body: unknown, options?: StreamOptions): EventStream & { dialect: Dialect };
