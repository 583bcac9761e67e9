// The chat page's markdown renderer: formatting works, and nothing of the model's own
// markup survives — only the renderer's fixed tags and attributes, whatever the input.
import assert from "node:assert/strict";
import { test } from "node:test";

import { escapeHTML, renderMarkdown } from "../../src/tokenrelay/web/markdown.js";

const TAGS = new Set(["p", "br", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li", "hr", "a"]);

/** Every tag is the renderer's own, with only its own attributes. */
function assertSafe(html, source) {
  for (const [, name, attrs] of html.matchAll(/<\/?([^\s>/]+)([^>]*)>/g)) {
    assert.ok(TAGS.has(name), `tag <${name}> from ${JSON.stringify(source)}`);
    const rest = attrs
      .replace(/ href="(https?:\/\/|mailto:)[^"<>]*"/i, "")
      .replace(/ target="_blank" rel="noopener noreferrer nofollow"/, "")
      .replace(/ class="language-[\w+#.-]*"/, "")
      .replace(/ start="\d+"/, "");
    assert.equal(rest, "", `attributes ${attrs} from ${JSON.stringify(source)}`);
  }
}

test("formatting: headings, emphasis, code, lists, quotes, links", () => {
  const html = renderMarkdown("# Title\n\nSome **bold**, *it*, `a<b` and ~~gone~~.\n\n```js\nlet x = 1 < 2;\n```\n- one\n- two\n\n1. first\n2. second\n\n> quoted\n\n[site](https://example.com/?a=1&b=2)");
  assert.match(html, /<h1>Title<\/h1>/);
  assert.match(html, /<strong>bold<\/strong>, <em>it<\/em>, <code>a&lt;b<\/code> and <del>gone<\/del>/);
  assert.match(html, /<pre><code class="language-js">let x = 1 &lt; 2;<\/code><\/pre>/);
  assert.match(html, /<ul><li>one<\/li><li>two<\/li><\/ul>/);
  assert.match(html, /<ol><li>first<\/li><li>second<\/li><\/ol>/);
  assert.match(html, /<blockquote><p>quoted<\/p><\/blockquote>/);
  assert.match(html, /<a href="https:\/\/example.com\/\?a=1&amp;b=2" target="_blank" rel="noopener noreferrer nofollow">site<\/a>/);
});

test("an open code fence renders as code so far (streaming)", () => {
  assert.equal(renderMarkdown("```\n<b>x"), "<pre><code>&lt;b&gt;x</code></pre>");
});

test("model markup is shown as text", () => {
  const source = '<script>window.pwned=1</script> <img src=x onerror="window.pwned=1"> <a href="javascript:alert(1)">x</a>';
  const html = renderMarkdown(source);
  assert.ok(!html.includes("<script") && !html.includes("<img") && !html.includes("<a href=\"javascript"));
  assert.match(html, /&lt;script&gt;window.pwned=1&lt;\/script&gt;/);
  assertSafe(html, source);
});

test("links only with http(s) or mailto URLs", () => {
  for (const url of ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<script>", "vbscript:x", "//evil", "jav&#x09;ascript:x"]) {
    const html = renderMarkdown(`[x](${url})`);
    assert.ok(!html.includes("<a "), `${url} became a link: ${html}`);
    assertSafe(html, url);
  }
  const html = renderMarkdown('[x](https://e.com/"onmouseover="alert(1))');
  assertSafe(html, "quote in url");
  assert.ok(!html.includes('"onmouseover'), html);
});

test("no input produces a tag or attribute of its own (random mixes)", () => {
  const pieces = ["<", ">", "\"", "'", "&", "*", "**", "_", "`", "```", "~~", "[", "]", "(", ")", "https://a.b/", "javascript:", "script", "img", " onerror=", "=", "\n", "\n\n", "# ", "- ", "1. ", "> ", "x", " ", "\u0000", "&lt;", "\r"];
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
  for (let n = 0; n < 3000; n++) {
    const source = Array.from({ length: 1 + Math.floor(random() * 30) }, () => pieces[Math.floor(random() * pieces.length)]).join("");
    assertSafe(renderMarkdown(source), source);
  }
});

test("escapeHTML escapes the five", () => {
  assert.equal(escapeHTML(`<a href="x" title='y'>&</a>`), "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
});
