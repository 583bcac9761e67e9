// The package's shape: package.json "exports" and "files" name every module and its
// types, the version is the Python package's, and each module exports at run time exactly
// the values its .d.ts declares (a name added to one and not the other fails here).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

const WEB = new URL("../../src/tokenrelay/web/", import.meta.url);
const pkg = JSON.parse(readFileSync(new URL("package.json", WEB), "utf8"));
const MODULES = ["sse", "stream", "gateway", "dialects", "errors", "server"];

/** The values (classes, functions, constants) a .d.ts declares, following `export *`. */
function declared(file) {
  const text = readFileSync(new URL(file, WEB), "utf8");
  const names = new Set();
  for (const m of text.matchAll(/^export (?:declare )?(?:class|function|const|let) ([A-Za-z_$][\w$]*)/gm)) names.add(m[1]);
  for (const m of text.matchAll(/^export \* from "\.\/([\w-]+)\.js";/gm)) for (const n of declared(`${m[1]}.d.ts`)) names.add(n);
  return names;
}

test("package.json: name, ES modules, engines, no dependencies", () => {
  assert.equal(pkg.name, "tokenrelay");
  assert.equal(pkg.type, "module");
  assert.equal(pkg.engines.node, ">=20");
  assert.equal(pkg.dependencies, undefined);
  const python = readFileSync(new URL("../__init__.py", WEB), "utf8").match(/^__version__ = "([^"]+)"/m)[1];
  assert.equal(pkg.version, python, "the npm package and the Python package share a version");
});

test("package.json: every module is exported with its types, and shipped", () => {
  assert.deepEqual(pkg.exports["."], { types: "./tokenrelay.d.ts", default: "./tokenrelay.js" });
  for (const name of MODULES) {
    assert.deepEqual(pkg.exports[`./${name}`], { types: `./${name}.d.ts`, default: `./${name}.js` }, name);
  }
  const targets = Object.values(pkg.exports).flatMap((t) => (typeof t === "string" ? [t] : Object.values(t)));
  const files = new Set(pkg.files.map((f) => `./${f}`));
  for (const target of targets) if (target !== "./package.json") assert.ok(files.has(target), `${target} is not in "files"`);
});

for (const name of ["tokenrelay", ...MODULES]) {
  test(`${name}.js exports what ${name}.d.ts declares`, async () => {
    const runtime = Object.keys(await import(new URL(`${name}.js`, WEB))).sort();
    assert.deepEqual(runtime, [...declared(`${name}.d.ts`)].sort());
  });
}

test("the client modules import nothing from node: (they run unchanged in browsers)", () => {
  for (const name of ["tokenrelay", ...MODULES]) {
    const text = readFileSync(new URL(`${name}.js`, WEB), "utf8");
    assert.doesNotMatch(text, /from "node:|require\(|\bprocess\.|\bBuffer\b/, name);
    for (const m of text.matchAll(/from "([^"]+)"/g)) assert.match(m[1], /^\.\/[\w-]+\.js$/, `${name}: ${m[1]}`);
  }
});
