// The Node server side in a real Express app: the same suite as over plain node:http
// (../server_suite.mjs). Needs express (run with ../resolve_deps.mjs and
// TOKENRELAY_NODE_DEPS; tests/test_js_npm.py does).
import express from "express";

import { serverSuite } from "../server_suite.mjs";

serverSuite("express", async (handler) => {
  const app = express();
  app.get("/events", (req, res) => handler(req, res));
  const server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${server.address().port}/events`,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(resolve));
    },
  };
});
