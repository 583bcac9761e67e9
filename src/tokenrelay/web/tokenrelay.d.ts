export * from "./dialects.js";
export * from "./errors.js";
export * from "./gateway.js";
export * from "./sse.js";
export * from "./stream.js";
