import type { SSEEvent } from "./sse.js";

export type Dialect = "openai-chat" | "anthropic" | "openai-responses";
export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter" | "pause" | "error" | "other";

export const FINISH_REASONS: readonly FinishReason[];

export type Part =
  | { type: "text"; text: string; choice: number }
  | { type: "reasoning"; text: string; choice: number }
  | { type: "refusal"; text: string; choice: number }
  | { type: "tool_call"; index: number; id: string; name: string; arguments: string; choice: number }
  | { type: "usage"; input: number | null; output: number }
  | { type: "finish"; reason: FinishReason; raw: string; choice: number }
  | { type: "error"; message: string; kind: string; status: number | null }
  | { type: "done" };

type EventLike = Pick<SSEEvent, "type" | "data">;

export function dialectOfPath(path: string): Dialect;
export function parseOpenAIChat(event: EventLike): Part[];
export function parseAnthropic(event: EventLike): Part[];
export function parseOpenAIResponses(event: EventLike): Part[];
export function partsOf(dialect: Dialect, event: EventLike): Part[];
/** The stream is complete after this event: its last event, or an error. */
export function isFinal(dialect: Dialect, event: EventLike): boolean;

export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** What a stream said so far, assembled from parts (choice 0). */
export class Reply {
  text: string;
  reasoning: string;
  refusal: string;
  /** By the dialect's tool call index (may have holes). */
  toolCalls: ToolCall[];
  usage: { input: number; output: number } | null;
  finish: FinishReason | null;
  finishRaw: string | null;
  error: { message: string; kind: string; status: number | null } | null;
  done: boolean;
  add(parts: Iterable<Part>): this;
}
