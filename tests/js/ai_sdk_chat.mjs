// The AI SDK's own chat client (AbstractChat, which React's useChat wraps, and its
// DefaultChatTransport) against the gateway's UI message stream endpoint. Run by
// tests/test_gateway_ui_chat.py: node ai_sdk_chat.mjs MODE JSON-ARGS; prints one JSON line.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(process.env.TOKENRELAY_AI_SDK_DIR + '/package.json');
const { AbstractChat, DefaultChatTransport } = await import(
  pathToFileURL(require.resolve('ai')).href
);

// The smallest ChatState: what a framework binding (React, Vue...) keeps in its own state.
class State {
  constructor(messages) {
    this.status = 'ready';
    this.error = undefined;
    this.messages = messages;
  }
  pushMessage(message) { this.messages = [...this.messages, message]; }
  popMessage() { this.messages = this.messages.slice(0, -1); }
  replaceMessage(index, message) {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
  }
  snapshot(thing) { return structuredClone(thing); }
}

class Chat extends AbstractChat {
  constructor({ messages = [], ...init }) { super({ ...init, state: new State(messages) }); }
}

const [mode, raw] = process.argv.slice(2);
const args = JSON.parse(raw);
const errors = [];

function chat({ id, key = args.key, model = args.model, messages = [] }) {
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const body = args.tools ? { model, tools: args.tools } : { model };
  const transport = new DefaultChatTransport({ api: args.api, headers, body });
  return new Chat({ id, transport, messages, onError: (e) => errors.push(String(e.message ?? e)) });
}

function view(c) {
  return { status: c.status, error: c.error ? String(c.error.message) : null, messages: c.messages };
}

const textOf = (c) => c.messages.filter((m) => m.role === 'assistant')
  .flatMap((m) => m.parts).filter((p) => p.type === 'text').map((p) => p.text).join('');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (mode === 'send') {
  // One chat per model: a user message, the answer read to its end.
  const out = {};
  for (const model of args.models) {
    const c = chat({ id: `chat-${model}`, model });
    await c.sendMessage({ text: args.text });
    out[model] = view(c);
  }
  console.log(JSON.stringify({ chats: out, errors }));
} else if (mode === 'cut') {
  // A page mid-answer: the connection drops (stop() aborts the fetch), then a reload
  // (a new Chat holding only what was saved: the user message) resumes the chat.
  const first = chat({ id: args.id });
  const sending = first.sendMessage({ text: args.text });
  const deadline = Date.now() + 20000;
  while (textOf(first).split(' ').length < args.words && Date.now() < deadline) await sleep(10);
  const before = textOf(first);
  await first.stop();
  await sending.catch(() => {});
  const user = first.messages.find((m) => m.role === 'user');
  // Another key resumes the same chat id: it must see nothing.
  const stranger = chat({ id: args.id, key: args.otherKey, messages: [user] });
  await stranger.resumeStream();
  const reloaded = chat({ id: args.id, messages: [user] });
  await reloaded.resumeStream();
  // Once finished, nothing is active: a later reload finds no stream (204).
  const later = chat({ id: args.id, messages: [...reloaded.messages] });
  await later.resumeStream();
  console.log(JSON.stringify({
    before, after: textOf(reloaded), reloaded: view(reloaded), stranger: view(stranger),
    later: view(later), errors,
  }));
} else {
  throw new Error(`unknown mode ${mode}`);
}
