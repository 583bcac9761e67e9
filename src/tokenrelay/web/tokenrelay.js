// tokenrelay: Server-Sent Events for LLM token streams, in browsers and in Node >= 20.
// ES modules with no dependencies and no build step; this one gathers the client side.
//
//   sse.js       SSEParser (bytes in, events out: the exact rules of the Python core,
//                WHATWG HTML §9.2.5-9.2.6), encodeEvent(), comment()
//   stream.js    stream() / EventStream: fetch as an async iterator of events that
//                reconnects with Last-Event-ID
//   gateway.js   gatewayStream(), resumeStream(), resumeURL(), resumeEventSource(),
//                cancelStream(): the gateway's /v1/streams/{id}
//   dialects.js  parseOpenAIChat(), parseAnthropic(), parseOpenAIResponses(), partsOf(),
//                isFinal(), Reply: the dialects' events as small neutral parts
//   errors.js    TokenRelayError and its subclasses
//   server.js    (not gathered here) SSE responses for node:http and Express

export * from "./dialects.js";
export * from "./errors.js";
export * from "./gateway.js";
export * from "./sse.js";
export * from "./stream.js";
