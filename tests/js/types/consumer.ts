// A strict TypeScript user of every entry point of the package, checked by `tsc --noEmit`
// (tests/test_js_npm.py) with "tokenrelay" resolved through package.json "exports".
import {
  EventTooLargeError,
  Reply,
  ResponseError,
  SSEParser,
  encodeEvent,
  gatewayStream,
  isFinal,
  partsOf,
  resumeURL,
  stream,
  type FinishReason,
  type Part,
  type SSEEvent,
} from "tokenrelay";
import { comment } from "tokenrelay/sse";
import { backoffDelay, DEFAULT_RETRY } from "tokenrelay/stream";
import { cancelStream } from "tokenrelay/gateway";
import { parseAnthropic } from "tokenrelay/dialects";
import { TokenRelayError } from "tokenrelay/errors";
import { EventWriter, SSE_HEADERS, frame, lastEventId, sendEvents, type ResponseLike } from "tokenrelay/server";

const parser = new SSEParser({ lastEventId: "1" });
const events: SSEEvent[] = parser.feed(new TextEncoder().encode("data: x\n\n"));
const id: string = parser.lastEventId;
const retry: number | null = parser.retry;
const text: string = encodeEvent({ data: "x", id: "2", retry: 10 }) + comment("ping");

async function client(signal: AbortSignal): Promise<string> {
  const reply = new Reply();
  for await (const event of stream("http://h/events", { signal, retry: { delay: 10 }, until: (e) => isFinal("openai-chat", e) })) {
    const parts: Part[] = partsOf("openai-chat", event);
    reply.add(parts);
  }
  const es = gatewayStream("http://h", "/v1/chat/completions", { model: "m", messages: [] });
  for await (const event of es) reply.add(partsOf(es.dialect, event));
  reply.add(parseAnthropic({ type: "message_stop", data: "{}" }));
  const finish: FinishReason | null = reply.finish;
  await cancelStream("http://h", "str_1", { headers: { Authorization: "Bearer k" } });
  return `${reply.text}${finish ?? ""}${resumeURL("http://h", "s", "1")}`;
}

function errors(error: unknown): number {
  if (error instanceof ResponseError) return error.status;
  if (error instanceof EventTooLargeError) return error.limit;
  return error instanceof TokenRelayError ? 1 : backoffDelay(DEFAULT_RETRY, 2);
}

async function server(res: ResponseLike, req: { url: string; headers: Record<string, string> }): Promise<void> {
  const after: string = lastEventId(req);
  const why = await sendEvents(
    res,
    async function* (signal: AbortSignal) {
      yield { data: { after }, id: "1", event: "token" };
      yield "plain";
      if (!signal.aborted) yield { comment: "hello" };
    },
    { retry: 1000, ping: 15000, headers: { "X-A": "b" } },
  );
  const writer = new EventWriter(res, { ping: null });
  const ok: boolean = await writer.send(frame("x"));
  writer.close({ data: why });
  void ok;
  void SSE_HEADERS["Content-Type"];
}

export { client, errors, server, events, id, retry, text };
