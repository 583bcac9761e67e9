// The chat page: talks to the gateway that served it (OpenAI chat completions, streamed).
//
// One reply is one gatewayStream(): a POST whose reconnects resume from
// /v1/streams/{x-stream-id} with the last event id, so a network drop loses and doubles
// nothing. Stop cancels the generation upstream (DELETE /v1/streams/{id}) and aborts the
// fetch. Model output reaches the DOM only through renderMarkdown (escape, then a fixed
// set of tags). The conversation lives in this page (window.tokenrelayChat, for tests) and
// in sessionStorage, so a reload keeps it: a reply still streaming then is read again from
// /v1/streams/{id}, from its first event, and goes on where the gateway is.
import { renderMarkdown } from "./markdown.js";
import {
  Reply,
  ReconnectError,
  ResponseError,
  cancelStream,
  gatewayStream,
  isFinal,
  parseOpenAIChat,
  resumeStream,
} from "./tokenrelay.js";

const $ = (id) => document.getElementById(id);
const ui = {
  model: $("model"),
  messages: $("messages"),
  empty: $("empty"),
  banner: $("banner"),
  composer: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  regenerate: $("regenerate"),
  newChat: $("new-chat"),
  key: $("api-key"),
  status: $("status"),
};

// The API is where the page came from (so a path prefix in front of the gateway works).
const base = new URL(".", window.location.href).href.replace(/\/$/, "");

const state = {
  messages: [], // the conversation: {role, content}
  views: [], // the DOM element of each message
  current: null, // the reply being streamed: {controller, streamId, stopped}
};
window.tokenrelayChat = state;

// What survives a reload (this tab only): the conversation, and the id of a reply that was
// still streaming. Storage may be full or refused (private modes): the page works without.
const SAVED = "tokenrelay.chat";

function save() {
  const pending = state.current?.streamId || "";
  try {
    sessionStorage.setItem(SAVED, JSON.stringify({ messages: state.messages, pending }));
  } catch {
    // not saved: a reload starts afresh
  }
}

function saved() {
  try {
    const value = JSON.parse(sessionStorage.getItem(SAVED) || "null");
    const messages = Array.isArray(value?.messages) ? value.messages : [];
    return {
      messages: messages.filter((m) => (m?.role === "user" || m?.role === "assistant") && typeof m.content === "string"),
      pending: typeof value?.pending === "string" ? value.pending : "",
    };
  } catch {
    return { messages: [], pending: "" };
  }
}

function headers() {
  const key = ui.key.value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function showBanner(text) {
  ui.banner.textContent = text;
  ui.banner.hidden = !text;
}

function setStatus(text) {
  ui.status.textContent = text;
}

function scrollDown() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

function messageView(role) {
  ui.empty.hidden = true;
  const view = element("article", `msg ${role}`);
  view.append(element("div", "role", role === "user" ? "you" : ui.model.value || "assistant"));
  const body = element("div", "body");
  view.append(body);
  ui.messages.append(view);
  scrollDown();
  return view;
}

function addUserMessage(text) {
  const view = messageView("user");
  view.querySelector(".body").textContent = text; // the user's own text: never parsed
  state.messages.push({ role: "user", content: text });
  state.views.push(view);
  save();
}

function describe(error, resumed = false) {
  if (resumed && error instanceof ResponseError && error.status === 404) {
    return "The reply that was streaming before the page was reloaded is no longer on the gateway (it keeps finished streams for a while, then forgets them).";
  }
  if (error instanceof ResponseError) return `The gateway answered ${error.status}: ${error.message}`;
  if (error instanceof ReconnectError) return `The connection was lost and could not be resumed (${error.attempts} attempts): ${error.cause?.message || error.message}`;
  if (error instanceof TypeError) return `Could not reach the gateway at ${base}: ${error.message}`;
  return String(error?.message || error);
}

function renderReply(view, reply) {
  view.querySelector(".body").innerHTML = renderMarkdown(reply.text); // escaped, then formatted
  if (reply.reasoning) {
    let thinking = view.querySelector(".thinking");
    if (!thinking) {
      const details = element("details");
      details.append(element("summary", "", "thinking"));
      thinking = element("div", "thinking");
      details.append(thinking);
      view.querySelector(".body").before(details);
    }
    thinking.textContent = reply.reasoning;
  }
  const calls = reply.toolCalls.filter(Boolean);
  if (calls.length) {
    let tools = view.querySelector(".tools");
    if (!tools) {
      tools = element("div", "tools");
      view.querySelector(".body").after(tools);
    }
    tools.replaceChildren(...calls.map((c) => element("pre", "", `${c.name}(${c.arguments})`)));
  }
}

function setBusy(busy) {
  ui.send.hidden = busy;
  ui.stop.hidden = !busy;
  ui.regenerate.disabled = busy || !state.messages.some((m) => m.role === "user");
  ui.model.disabled = busy;
}

// A new reply: POST the conversation; the gateway streams it, resumable by id.
function generate() {
  const body = {
    model: ui.model.value,
    messages: state.messages.map(({ role, content }) => ({ role, content })),
    stream: true,
    stream_options: { include_usage: true },
  };
  return readReply("", (options) => gatewayStream(base, "/v1/chat/completions", body, options));
}

// The reply that was streaming when the page was reloaded: read it again from its first
// event (the gateway keeps the whole stream), then live.
function resumeReply(streamId) {
  return readReply(streamId, (options) =>
    resumeStream(base, streamId, { ...options, until: (event) => isFinal("openai-chat", event) }),
  );
}

async function readReply(streamId, open) {
  showBanner("");
  const view = messageView("assistant");
  view.dataset.state = "streaming";
  if (streamId) view.dataset.streamId = streamId;
  const meta = element("div", "meta");
  const reply = new Reply();
  const controller = new AbortController();
  const current = { controller, streamId, stopped: false, view };
  state.current = current;
  setBusy(true);
  const started = performance.now();
  let ttft = null;
  let pending = false;
  const render = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      renderReply(view, reply);
      scrollDown();
    });
  };
  const es = open({
    headers: headers(),
    signal: controller.signal,
    retry: { delay: 250, maxDelay: 4000, maxAttempts: 20 },
    // The gateway pings every 15 s of silence: 45 s without a byte is a dead connection
    // (a laptop that slept, a NAT that forgot us), and resuming it costs nothing.
    idleTimeout: 45000,
    onOpen: (response) => {
      if (!current.streamId) {
        current.streamId = response.headers.get("x-stream-id") || "";
        save(); // a reload from now on resumes this reply
      }
      view.dataset.streamId = current.streamId;
      if (es.reconnects) setStatus(`resumed after ${es.lastEventId} (${es.reconnects}× so far)`);
      else setStatus("streaming…");
    },
    onRetry: ({ attempt, error }) => {
      setStatus(`connection lost (${error?.message || "the stream ended early"}); resuming, attempt ${attempt}…`);
    },
  });
  let failure = null;
  try {
    for await (const event of es) {
      const parts = parseOpenAIChat(event);
      if (ttft === null && parts.some((p) => p.type === "text" || p.type === "reasoning" || p.type === "tool_call")) {
        ttft = performance.now() - started;
      }
      reply.add(parts);
      render();
    }
  } catch (error) {
    failure = error;
  }
  state.current = null;
  renderReply(view, reply);
  const stopped = current.stopped;
  const error = failure ? describe(failure, Boolean(streamId)) : reply.error ? `The model failed: ${reply.error.message}` : "";
  if (error) {
    view.append(element("div", "error", error));
    showBanner(error);
  }
  const bits = [];
  if (ttft !== null) bits.push(`first token ${Math.round(ttft)} ms`);
  bits.push(`total ${((performance.now() - started) / 1000).toFixed(2)} s`);
  if (reply.usage) bits.push(`tokens ${reply.usage.input} in · ${reply.usage.output} out`);
  if (es.reconnects) bits.push(`resumed ${es.reconnects}×`);
  meta.textContent = bits.join(" · ");
  view.append(meta);
  view.dataset.state = error && !reply.text ? "error" : stopped ? "stopped" : error ? "error" : "done";
  if (reply.text || reply.toolCalls.length) {
    state.messages.push({ role: "assistant", content: reply.text });
    state.views.push(view);
  } else {
    view.dataset.discard = "1"; // nothing to keep in the conversation
  }
  save();
  setStatus(stopped ? "stopped" : error ? "" : "done");
  setBusy(false);
  scrollDown();
}

function send(text) {
  if (state.current || !text.trim()) return;
  if (!ui.model.value) {
    showBanner("No model to talk to: the gateway listed none.");
    return;
  }
  addUserMessage(text);
  ui.prompt.value = "";
  generate();
}

function stop() {
  const current = state.current;
  if (!current) return;
  current.stopped = true;
  setStatus("stopping…");
  // Cancel the generation upstream; abort our own read at once, whatever the DELETE says.
  if (current.streamId) {
    cancelStream(base, current.streamId, { headers: headers() }).catch((error) => setStatus(`stop: ${describe(error)}`));
  }
  current.controller.abort();
}

function regenerate() {
  if (state.current) return;
  // Drop the last reply (and any failed attempt shown after the last user message).
  while (state.messages.length && state.messages.at(-1).role === "assistant") {
    state.messages.pop();
    state.views.pop().remove();
  }
  for (const view of ui.messages.querySelectorAll(".msg[data-discard]")) view.remove();
  save();
  if (state.messages.length) generate();
}

function newChat() {
  if (state.current) stop();
  state.messages = [];
  state.views = [];
  for (const view of ui.messages.querySelectorAll(".msg")) view.remove();
  ui.empty.hidden = false;
  showBanner("");
  setStatus("");
  setBusy(false);
  save();
}

// After a reload: show the saved conversation, and pick up a reply still streaming.
function restore() {
  const { messages, pending } = saved();
  for (const message of messages) {
    const view = messageView(message.role);
    const body = view.querySelector(".body");
    if (message.role === "user") body.textContent = message.content;
    else body.innerHTML = renderMarkdown(message.content);
    view.dataset.state = "done";
    state.messages.push(message);
    state.views.push(view);
  }
  if (pending && messages.at(-1)?.role === "user") resumeReply(pending);
}

async function loadModels() {
  try {
    const response = await fetch(`${base}/v1/models`, { headers: headers() });
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new ResponseError(response.status, response.headers.get("content-type"), body);
    const names = (body?.data || []).map((m) => m.id);
    const remembered = localStorage.getItem("tokenrelay.model");
    ui.model.replaceChildren(...names.map((n) => new Option(n, n)));
    if (names.includes(remembered)) ui.model.value = remembered;
    if (!names.length) showBanner("The gateway lists no models.");
    else showBanner("");
  } catch (error) {
    ui.model.replaceChildren(new Option("(no models)", ""));
    showBanner(`Could not list the models: ${describe(error)}`);
  }
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  send(ui.prompt.value);
});
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send(ui.prompt.value);
  }
});
ui.stop.addEventListener("click", stop);
ui.regenerate.addEventListener("click", regenerate);
ui.newChat.addEventListener("click", newChat);
ui.model.addEventListener("change", () => localStorage.setItem("tokenrelay.model", ui.model.value));
ui.key.value = localStorage.getItem("tokenrelay.key") || "";
$("key-form").addEventListener("submit", (event) => event.preventDefault());
ui.key.addEventListener("change", () => {
  localStorage.setItem("tokenrelay.key", ui.key.value.trim());
  loadModels();
});

setBusy(false);
loadModels().then(() => {
  restore();
  document.body.setAttribute("data-ready", "1");
});
