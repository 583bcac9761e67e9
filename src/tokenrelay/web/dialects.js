// dialects.js: the events of each LLM wire dialect as small neutral parts (OpenAI Chat,
// Anthropic Messages, OpenAI Responses), and `Reply`, which assembles them. Checked against
// the Python encoders' output for every fixture (tests/js/dialect_vectors.json).

import { TokenRelayError } from "./errors.js";

// The parts:
//
//   {type: "text", text, choice}            {type: "reasoning", text, choice}
//   {type: "tool_call", index, id, name, arguments, choice}   (arguments: a fragment)
//   {type: "usage", input, output}          {type: "finish", reason, choice}
//   {type: "error", message, kind, status}  {type: "done"}

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
    if (choice.finish_reason) parts.push({ type: "finish", reason: choice.finish_reason, choice: c });
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
      return usage && (usage.input_tokens || usage.output_tokens)
        ? [{ type: "usage", input: usage.input_tokens ?? 0, output: usage.output_tokens ?? 0 }]
        : [];
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
      if (body.delta?.stop_reason) parts.push({ type: "finish", reason: body.delta.stop_reason, choice: 0 });
      if (body.usage) parts.push({ type: "usage", input: body.usage.input_tokens ?? null, output: body.usage.output_tokens ?? 0 });
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
      parts.push({ type: "finish", reason: r.incomplete_details?.reason || r.status || "completed", choice: 0 });
      parts.push({ type: "done" });
      return parts;
    }
    case "response.failed":
      return [errorPart(body.response?.error, "response failed"), { type: "done" }];
    case "error":
      return [errorPart(body.error || body)];
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
    this.toolCalls = []; // {id, name, arguments} by index
    this.usage = null; // {input, output}
    this.finish = null;
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
