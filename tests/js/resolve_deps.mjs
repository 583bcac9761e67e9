// `node --import ./tests/js/resolve_deps.mjs ...`: bare imports that Node cannot resolve
// from where they are written are looked up again, first as the tokenrelay package itself
// (src/tokenrelay/web, through its package.json "exports", as an installed copy would be),
// then in $TOKENRELAY_NODE_DEPS/node_modules (where .ci/run npm-installs express,
// eventsource-parser and typescript). So the example and the tests import "express" and
// "tokenrelay/server" exactly as a user's code does, with nothing installed in the tree.
import { register } from "node:module";

register("./resolve_deps_hooks.mjs", import.meta.url);
