// dialects.js: the events of each LLM wire dialect as small neutral parts (OpenAI Chat,
// Anthropic Messages, OpenAI Responses), and `Reply`, which assembles them. Checked against
// the Python encoders' output for every fixture (tests/js/dialect_vectors.json).

import { TokenRelayError } from "./errors.js";

// The parts:
//
//   {type: "text", text, choice}            {type: "reasoning", text, choice}
//   {type: "refusal", text, choice}         (the model declined: OpenAI's refusal field)
//   {type: "tool_call", index, id, name, arguments, choice}   (arguments: a fragment)
//   {type: "usage", input, output}          (input: every prompt token, cached included;
//                                            null when this event does not say)
//   {type: "finish", reason, raw, choice}   (reason in one vocabulary for every dialect,
//                                            FINISH_REASONS; raw: the dialect's own word)
//   {type: "error", message, kind, status}  {type: "done"}
//
// The vocabulary is the Python side's (tokenrelay.llm: Usage, FinishReason), and the
// readers are checked against its encoders for every fixture (tests/js/dialects.test.mjs).

/** Why a choice ended, the same words whatever the dialect (tokenrelay.llm.FinishReason). */
export const FINISH_REASONS = Object.freeze(["stop", "length", "tool_calls", "content_filter", "pause", "error", "other"]);

const CHAT_FINISH = {
  stop: "stop",
  length: "length",
  tool_calls: "tool_calls",
  function_call: "tool_calls",
  content_filter: "content_filter",
  // words of OpenAI-compatible servers
  eos: "stop",
  eos_token: "stop",
  stop_sequence: "stop",
  end_turn: "stop",
  max_tokens: "length",
  model_length: "length",
  tool_use: "tool_calls",
  refusal: "content_filter",
  error: "error",
};
const ANTHROPIC_FINISH = {
  end_turn: "stop",
  stop_sequence: "stop",
  max_tokens: "length",
  model_context_window_exceeded: "length",
  tool_use: "tool_calls",
  refusal: "content_filter",
  pause_turn: "pause",
};
const RESPONSES_INCOMPLETE = { max_output_tokens: "length", content_filter: "content_filter" };

function finishPart(table, raw, choice = 0) {
  return { type: "finish", reason: Object.hasOwn(table, raw) ? table[raw] : "other", raw, choice };
}


const DIALECT_OF_PATH = {
  "/v1/chat/completions": "openai-chat",
  "/v1/messages": "anthropic",
  "/v1/responses": "openai-responses",
};

/** The dialect of a gateway endpoint's path ("openai-chat" for one it does not know). */
export function dialectOfPath(path) {
  return DIALECT_OF_PATH[path] || "openai-chat";
}

function parseJSON(data) {
  try {
    return JSON.parse(data);
  } catch {
    return undefined;
  }
}

function errorPart(error, fallback = "error") {
  if (error && typeof error === "object") {
    return {
      type: "error",
      message: String(error.message || fallback),
      kind: String(error.type || error.code || "error"),
      status: typeof error.status === "number" ? error.status : null,
    };
  }
  return { type: "error", message: String(error || fallback), kind: "error", status: null };
}

// Anthropic's input_tokens leaves out the cache's tokens; the neutral count has them all.
function anthropicInput(usage) {
  if (!usage || typeof usage !== "object") return null;
  const fields = ["input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"];
  if (!fields.some((f) => typeof usage[f] === "number")) return null;
  return fields.reduce((sum, f) => sum + (typeof usage[f] === "number" ? usage[f] : 0), 0);
}

/** Parts of one event of an OpenAI chat completions stream. */
export function parseOpenAIChat(event) {
  if (event.data === "[DONE]") return [{ type: "done" }];
  const chunk = parseJSON(event.data);
  if (event.type === "error") return [errorPart(chunk?.error ?? chunk ?? event.data)];
  if (!chunk || typeof chunk !== "object") return [];
  if (chunk.error) return [errorPart(chunk.error)];
  const parts = [];
  for (const choice of chunk.choices || []) {
    const c = choice.index || 0;
    const delta = choice.delta || {};
    const reasoning = delta.reasoning_content || delta.reasoning;
    if (typeof reasoning === "string" && reasoning) parts.push({ type: "reasoning", text: reasoning, choice: c });
    if (typeof delta.content === "string" && delta.content) parts.push({ type: "text", text: delta.content, choice: c });
    if (typeof delta.refusal === "string" && delta.refusal) parts.push({ type: "refusal", text: delta.refusal, choice: c });
    for (const call of delta.tool_calls || []) {
      parts.push({
        type: "tool_call",
        index: call.index || 0,
        id: call.id || "",
        name: call.function?.name || "",
        arguments: call.function?.arguments || "",
        choice: c,
      });
    }
    if (choice.finish_reason) parts.push(finishPart(CHAT_FINISH, choice.finish_reason, c));
  }
  if (chunk.usage) {
    parts.push({ type: "usage", input: chunk.usage.prompt_tokens ?? 0, output: chunk.usage.completion_tokens ?? 0 });
  }
  return parts;
}

/** Parts of one event of an Anthropic messages stream. */
export function parseAnthropic(event) {
  const body = parseJSON(event.data);
  if (!body || typeof body !== "object") return [];
  switch (body.type || event.type) {
    case "message_start": {
      const usage = body.message?.usage;
      const input = anthropicInput(usage);
      return input === null ? [] : [{ type: "usage", input, output: usage.output_tokens ?? 0 }];
    }
    case "content_block_start": {
      const block = body.content_block || {};
      if (block.type === "tool_use") {
        return [{ type: "tool_call", index: body.index ?? 0, id: block.id || "", name: block.name || "", arguments: "", choice: 0 }];
      }
      if (block.type === "text" && block.text) return [{ type: "text", text: block.text, choice: 0 }];
      return [];
    }
    case "content_block_delta": {
      const d = body.delta || {};
      if (d.type === "text_delta") return d.text ? [{ type: "text", text: d.text, choice: 0 }] : [];
      if (d.type === "thinking_delta") return d.thinking ? [{ type: "reasoning", text: d.thinking, choice: 0 }] : [];
      if (d.type === "input_json_delta") {
        return d.partial_json ? [{ type: "tool_call", index: body.index ?? 0, id: "", name: "", arguments: d.partial_json, choice: 0 }] : [];
      }
      return [];
    }
    case "message_delta": {
      const parts = [];
      if (body.delta?.stop_reason) parts.push(finishPart(ANTHROPIC_FINISH, body.delta.stop_reason));
      if (body.usage) parts.push({ type: "usage", input: anthropicInput(body.usage), output: body.usage.output_tokens ?? 0 });
      return parts;
    }
    case "message_stop":
      return [{ type: "done" }];
    case "error":
      return [errorPart(body.error)];
    default:
      return [];
  }
}

/** Parts of one event of an OpenAI Responses stream. */
export function parseOpenAIResponses(event) {
  const body = parseJSON(event.data);
  if (!body || typeof body !== "object") return [];
  switch (body.type || event.type) {
    case "response.output_text.delta":
      return body.delta ? [{ type: "text", text: body.delta, choice: 0 }] : [];
    case "response.reasoning_summary_text.delta":
    case "response.reasoning_text.delta":
      return body.delta ? [{ type: "reasoning", text: body.delta, choice: 0 }] : [];
    case "response.refusal.delta":
      return body.delta ? [{ type: "refusal", text: body.delta, choice: 0 }] : [];
    case "response.output_item.added": {
      const item = body.item || {};
      if (item.type !== "function_call") return [];
      return [{ type: "tool_call", index: body.output_index ?? 0, id: item.call_id || "", name: item.name || "", arguments: item.arguments || "", choice: 0 }];
    }
    case "response.function_call_arguments.delta":
      return body.delta ? [{ type: "tool_call", index: body.output_index ?? 0, id: "", name: "", arguments: body.delta, choice: 0 }] : [];
    case "response.completed":
    case "response.incomplete": {
      const r = body.response || {};
      const parts = [];
      if (r.usage) parts.push({ type: "usage", input: r.usage.input_tokens ?? 0, output: r.usage.output_tokens ?? 0 });
      if (r.status === "incomplete") {
        parts.push(finishPart(RESPONSES_INCOMPLETE, r.incomplete_details?.reason || "incomplete"));
      } else {
        // The Responses API has no finish reason: a completed response that called a tool
        // waits for its result.
        const called = (r.output || []).some((item) => item?.type === "function_call");
        parts.push({ type: "finish", reason: called ? "tool_calls" : "stop", raw: r.status || "completed", choice: 0 });
      }
      parts.push({ type: "done" });
      return parts;
    }
    case "response.failed": {
      // Its usage too: what the failed generation consumed (after an `error` event, a
      // reader that reads on past isFinal gets it here).
      const r = body.response || {};
      const parts = [];
      if (r.usage) parts.push({ type: "usage", input: r.usage.input_tokens ?? 0, output: r.usage.output_tokens ?? 0 });
      return [...parts, errorPart(r.error, "response failed"), { type: "done" }];
    }
    case "error":
      // The event is the error: its `type` is the event's, the error's own is `code`.
      return [errorPart(body.error || { message: body.message, code: body.code, status: body.status })];
    default:
      return [];
  }
}

const PARSERS = {
  "openai-chat": parseOpenAIChat,
  anthropic: parseAnthropic,
  "openai-responses": parseOpenAIResponses,
};

/** The parts of `event` in `dialect` ("openai-chat", "anthropic", "openai-responses"). */
export function partsOf(dialect, event) {
  const parse = PARSERS[dialect];
  if (!parse) throw new TokenRelayError(`unknown dialect: ${dialect}`);
  return parse(event);
}

/** The stream is complete after this event: its last event, or an error. */
export function isFinal(dialect, event) {
  return partsOf(dialect, event).some((p) => p.type === "done" || p.type === "error");
}

/** What a stream said so far, assembled from parts (choice 0). */
export class Reply {
  constructor() {
    this.text = "";
    this.reasoning = "";
    this.refusal = "";
    this.toolCalls = []; // {id, name, arguments} by index
    this.usage = null; // {input, output}
    this.finish = null; // one of FINISH_REASONS
    this.finishRaw = null; // the dialect's own word
    this.error = null; // {message, kind, status}
    this.done = false;
  }

  /** Apply parts; returns this. */
  add(parts) {
    for (const p of parts) {
      if (p.choice) continue;
      switch (p.type) {
        case "text":
          this.text += p.text;
          break;
        case "reasoning":
          this.reasoning += p.text;
          break;
        case "refusal":
          this.refusal += p.text;
          break;
        case "tool_call": {
          const call = (this.toolCalls[p.index] ??= { id: "", name: "", arguments: "" });
          call.id ||= p.id;
          call.name ||= p.name;
          call.arguments += p.arguments;
          break;
        }
        case "usage":
          this.usage = { input: p.input ?? this.usage?.input ?? 0, output: p.output ?? 0 };
          break;
        case "finish":
          this.finish = p.reason;
          this.finishRaw = p.raw ?? p.reason;
          break;
        case "error":
          this.error = { message: p.message, kind: p.kind, status: p.status };
          this.done = true;
          break;
        case "done":
          this.done = true;
          break;
        default:
      }
    }
    return this;
  }
}
