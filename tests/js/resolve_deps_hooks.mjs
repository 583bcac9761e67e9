// The resolve hook registered by resolve_deps.mjs (module hooks run in a thread of their own).
import { pathToFileURL } from "node:url";

const PACKAGE = new URL("../../src/tokenrelay/web/tokenrelay.js", import.meta.url).href;
const DEPS = process.env.TOKENRELAY_NODE_DEPS;
const FROM_DEPS = DEPS ? pathToFileURL(`${DEPS}/node_modules/_`).href : null;

function isBare(specifier) {
  return !/^(?:\.{0,2}\/|[a-z][a-z0-9+.-]*:)/i.test(specifier);
}

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (error?.code !== "ERR_MODULE_NOT_FOUND" || !isBare(specifier)) throw error;
    if (specifier === "tokenrelay" || specifier.startsWith("tokenrelay/")) {
      return nextResolve(specifier, { ...context, parentURL: PACKAGE });
    }
    if (!FROM_DEPS) throw error;
    return nextResolve(specifier, { ...context, parentURL: FROM_DEPS });
  }
}
