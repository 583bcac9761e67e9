// A small, safe markdown renderer for model output (an ES module, no dependencies).
//
// Safety by construction: every piece of the source is HTML-escaped first (& < > " ' and
// U+0000 dropped), and only then wrapped in a fixed set of tags that this module writes
// itself: p, br, h1-h6, strong, em, del, code, pre, blockquote, ul, ol, li, hr, and a with
// an http(s) or mailto href. No tag, attribute or URL scheme of the model's own ever
// reaches the DOM, so `<script>` or `<img onerror>` in the output is shown as text.
//
// It renders partial input well (a code fence still open while tokens arrive shows as
// code so far), because the chat page re-renders the whole reply on every token.

const ESCAPES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** `text` with the five HTML-significant characters escaped. */
export function escapeHTML(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const BULLET = /^\s{0,3}[-*+]\s+(.*)$/;
const NUMBERED = /^\s{0,3}(\d{1,9})[.)]\s+(.*)$/;
const SAFE_URL = /^(https?:\/\/|mailto:)[^\s<>"']+$/i;

function isBlockStart(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || BULLET.test(line) || NUMBERED.test(line);
}

/** Inline formatting of one run of text (no line breaks inside code spans). */
export function renderInline(text) {
  const out = [];
  // Code spans first: their content gets no further formatting.
  const parts = String(text).split(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/);
  for (let i = 0; i < parts.length; i += 3) {
    out.push(formatText(parts[i]));
    if (i + 2 < parts.length) out.push(`<code>${escapeHTML(parts[i + 2])}</code>`);
  }
  return out.join("");
}

function formatText(raw) {
  // Links become placeholders before escaping, so emphasis never reaches into a URL.
  const links = [];
  let text = raw.replace(/\[([^\]\n]+)\]\(([^()\s]+)\)/g, (whole, label, url) => {
    if (!SAFE_URL.test(url)) return whole;
    links.push(`<a href="${escapeHTML(url)}" target="_blank" rel="noopener noreferrer nofollow">${emphasis(escapeHTML(label))}</a>`);
    return `\u0000${links.length - 1}\u0000`;
  });
  text = emphasis(escapeHTML(text));
  return text.replace(/\u0000(\d+)\u0000/g, (_, n) => links[Number(n)]);
}

function emphasis(html) {
  return html
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^\w])__(?=\S)([\s\S]*?\S)__(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/(^|[^*\w])\*(?=[^\s*])([^*]*?[^\s*])\*(?!\*)/g, "$1<em>$2</em>")
    .replace(/(^|[^\w])_(?=[^\s_])([^_]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>")
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, "<del>$1</del>");
}

/** `source` (markdown) as HTML that holds only this module's own tags. */
export function renderMarkdown(source) {
  const lines = String(source).replace(/\u0000/g, "\uFFFD").replace(/\r\n?/g, "\n").split("\n");
  const html = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if ((m = FENCE.exec(line))) {
      const marker = m[1];
      const body = [];
      i += 1;
      const close = (l) => {
        const t = l.trim();
        return t.length >= marker.length && t === marker[0].repeat(t.length);
      };
      while (i < lines.length && !close(lines[i])) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // the closing fence (or the end: a fence still open while streaming)
      const lang = m[2] ? ` class="language-${escapeHTML(m[2])}"` : "";
      html.push(`<pre><code${lang}>${escapeHTML(body.join("\n"))}</code></pre>`);
    } else if ((m = HEADING.exec(line))) {
      const level = m[1].length;
      html.push(`<h${level}>${renderInline(m[2])}</h${level}>`);
      i += 1;
    } else if (RULE.test(line)) {
      html.push("<hr>");
      i += 1;
    } else if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
        inner.push(m[1]);
        i += 1;
      }
      html.push(`<blockquote>${renderMarkdown(inner.join("\n"))}</blockquote>`);
    } else if (BULLET.test(line) || NUMBERED.test(line)) {
      const ordered = !BULLET.test(line);
      const pattern = ordered ? NUMBERED : BULLET;
      const items = [];
      while (i < lines.length && (m = pattern.exec(lines[i]))) {
        let item = ordered ? m[2] : m[1];
        i += 1;
        // Indented lines continue the item.
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !BULLET.test(lines[i]) && !NUMBERED.test(lines[i])) {
          item += `\n${lines[i].trim()}`;
          i += 1;
        }
        items.push(`<li>${renderInline(item).replace(/\n/g, "<br>")}</li>`);
      }
      const start = ordered ? Number.parseInt(NUMBERED.exec(line)[1], 10) : 1;
      const tag = ordered ? "ol" : "ul";
      html.push(`<${tag}${ordered && start !== 1 ? ` start="${start}"` : ""}>${items.join("")}</${tag}>`);
    } else if (line.trim() === "") {
      i += 1;
    } else {
      const para = [];
      while (i < lines.length && lines[i].trim() !== "" && (para.length === 0 || !isBlockStart(lines[i]))) {
        para.push(lines[i]);
        i += 1;
      }
      html.push(`<p>${renderInline(para.join("\n")).replace(/\n/g, "<br>")}</p>`);
    }
  }
  return html.join("\n");
}
