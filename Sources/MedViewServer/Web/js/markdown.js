// A small, safe Markdown subset for model answers, built with DOM APIs only.
//
// Model text is untrusted: it can repeat whatever a message or a web page said. So it never
// reaches innerHTML. Every piece of text becomes a Text node (textContent); the only elements
// created are p, br, strong, em, code, pre, ul, ol, li, h3, h4 and a. A link is created only for
// http:, https:, mailto: and tel: URLs (parsed with the URL constructor, so `JaVaScRiPt:` or
// ` javascript:` cannot slip through); anything else keeps its label as plain text.
//
// Supported: paragraphs (blank line), line breaks, **bold** / __bold__, *italic* / _italic_,
// `inline code`, ``` fenced code ```, - * + bullet lists, 1. 1) numbered lists, # headings,
// [label](url) links, bare http(s) URLs, and backslash escapes.

export const LINK_SCHEMES = new Set(["https:", "http:", "mailto:", "tel:"]);

/**
 * The normalised href for a URL the page may link to, or null.
 * @param {string} raw
 * @param {Set<string>} [schemes]
 */
export function safeHref(raw, schemes = LINK_SCHEMES) {
  if (typeof raw !== "string") return null;
  let url;
  try {
    url = new URL(raw.trim()); // no base: relative URLs are rejected
  } catch {
    return null;
  }
  if (!schemes.has(url.protocol)) return null;
  if ((url.protocol === "http:" || url.protocol === "https:") && !url.hostname) return null;
  return url.href;
}

/** Makes an <a> for a vetted href. External web links open in a new tab, without a referrer. */
export function linkElement(href) {
  const a = document.createElement("a");
  a.href = href;
  if (href.startsWith("http:") || href.startsWith("https:")) {
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
  }
  return a;
}

// ------------------------------------------------------------------------------------ blocks

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$/;
const BULLET = /^ {0,3}([-*+])[ \t]+(.*)$/;
const ORDERED = /^ {0,3}(\d{1,9})([.)])[ \t]+(.*)$/;
const BLANK = /^[ \t]*$/;

/**
 * @typedef {{kind: "p", text: string} | {kind: "h", level: number, text: string} |
 *   {kind: "code", text: string} | {kind: "ul" | "ol", start: number, marker: string, items: string[]}} Block
 */

/** @param {string} line */
function listItem(line) {
  let m = BULLET.exec(line);
  if (m && !/^[-*+]\s*$/.test(m[2]) ) return { kind: "ul", marker: m[1], start: 1, text: m[2] };
  m = ORDERED.exec(line);
  if (m) return { kind: "ol", marker: m[2], start: Number(m[1]), text: m[3] };
  return null;
}

/**
 * Splits text into blocks. Works on partial text too: an unclosed code fence runs to the end.
 * @param {string} text
 * @returns {Block[]}
 */
export function parseBlocks(text) {
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  /** @type {Block[]} */
  const blocks = [];
  /** @type {any} */
  let current = null;
  const close = () => {
    if (current) blocks.push(current);
    current = null;
  };
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      close();
      const marker = fence[1][0];
      const length = fence[1].length;
      const body = [];
      let j = i + 1;
      for (; j < lines.length; j += 1) {
        const end = new RegExp(`^ {0,3}\\${marker}{${length},}[ \\t]*$`).exec(lines[j]);
        if (end) break;
        body.push(lines[j]);
      }
      blocks.push({ kind: "code", text: body.join("\n") });
      i = j;
      continue;
    }
    if (BLANK.test(line)) {
      if (current && (current.kind === "ul" || current.kind === "ol")) {
        // A blank line between items of the same list keeps the list together.
        let j = i + 1;
        while (j < lines.length && BLANK.test(lines[j])) j += 1;
        const next = j < lines.length ? listItem(lines[j]) : null;
        if (next && next.kind === current.kind && next.marker === current.marker) {
          i = j - 1;
          continue;
        }
      }
      close();
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      close();
      blocks.push({ kind: "h", level: heading[1].length, text: heading[2] });
      continue;
    }
    const item = listItem(line);
    if (item) {
      if (!(current && current.kind === item.kind && current.marker === item.marker)) {
        close();
        current = { kind: item.kind, marker: item.marker, start: item.start, items: [] };
      }
      current.items.push(item.text);
      continue;
    }
    if (current && (current.kind === "ul" || current.kind === "ol")) {
      // Continuation of the last item (indented or lazy).
      const last = current.items.length - 1;
      current.items[last] += "\n" + line.trim();
      continue;
    }
    if (current && current.kind === "p") {
      current.text += "\n" + line;
      continue;
    }
    close();
    current = { kind: "p", text: line };
  }
  close();
  return blocks;
}

/** @param {Block} block */
function blockKey(block) {
  return JSON.stringify(block);
}

/** @param {Block} block */
export function buildBlock(block) {
  switch (block.kind) {
    case "p": {
      const p = document.createElement("p");
      appendInline(p, block.text.replace(/^[ \t]+/gm, ""), 0, true);
      return p;
    }
    case "h": {
      const h = document.createElement(block.level <= 2 ? "h3" : "h4");
      h.className = "md-heading";
      appendInline(h, block.text, 0, true);
      return h;
    }
    case "code": {
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      code.textContent = block.text;
      pre.append(code);
      return pre;
    }
    default: {
      const list = document.createElement(block.kind);
      if (block.kind === "ol" && block.start !== 1) list.start = block.start;
      // A last item with no text yet is a bullet the model is still writing: an empty dot
      // flashing under a streaming answer helps nobody, so it waits for its first word.
      const items = block.items.length > 0 && !block.items[block.items.length - 1].trim() ? block.items.slice(0, -1) : block.items;
      for (const text of items) {
        const li = document.createElement("li");
        appendInline(li, text, 0, true);
        list.append(li);
      }
      return list;
    }
  }
}

const sourceOf = new WeakMap();

/**
 * Renders `text` into `container`, rebuilding only blocks whose source changed: while an answer
 * streams, finished paragraphs keep their nodes (and any text selection in them).
 * @param {Element} container  holds nothing but the blocks this function made
 * @param {string} text
 */
export function renderMarkdownInto(container, text) {
  const blocks = parseBlocks(text);
  for (let i = 0; i < blocks.length; i += 1) {
    const key = blockKey(blocks[i]);
    const existing = container.children[i];
    if (existing && sourceOf.get(existing) === key) continue;
    const node = buildBlock(blocks[i]);
    sourceOf.set(node, key);
    if (existing) existing.replaceWith(node);
    else container.append(node);
  }
  while (container.children.length > blocks.length) container.lastElementChild?.remove();
}

// ------------------------------------------------------------------------------------ inline

const ESCAPABLE = /[\\`*_{}[\]()#+\-.!<>~|]/;
const LINK = /^\[([^[\]\n]{0,500})\]\([ \t]*<?([^\s<>()]*(?:\([^\s<>()]*\)[^\s<>()]*)*)>?(?:[ \t]+(?:"[^"\n]*"|'[^'\n]*'))?[ \t]*\)/;
const BARE_URL = /\bhttps?:\/\/[^\s<>"'`]+/g;
const MAX_DEPTH = 6;

const isSpace = (c) => c === undefined || /\s/.test(c);
const isWordChar = (c) => c !== undefined && /[\p{L}\p{N}]/u.test(c);

/**
 * Appends the inline content of `src` to `parent`.
 * @param {Element} parent
 * @param {string} src
 * @param {number} depth
 * @param {boolean} links  false inside a link (no nested links)
 */
function appendInline(parent, src, depth, links) {
  let text = "";
  const flush = () => {
    if (text) appendText(parent, text, links);
    text = "";
  };
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === "\\" && i + 1 < src.length && ESCAPABLE.test(src[i + 1])) {
      text += src[i + 1];
      i += 2;
      continue;
    }
    if (c === "\n") {
      flush();
      parent.append(document.createElement("br"));
      i += 1;
      continue;
    }
    if (c === "`") {
      let n = 1;
      while (src[i + n] === "`") n += 1;
      const close = findBacktickRun(src, i + n, n);
      if (close >= 0) {
        flush();
        const code = document.createElement("code");
        let inner = src.slice(i + n, close).replace(/\n/g, " ");
        if (inner.length >= 2 && inner.startsWith(" ") && inner.endsWith(" ") && inner.trim()) inner = inner.slice(1, -1);
        code.textContent = inner;
        parent.append(code);
        i = close + n;
      } else {
        text += "`".repeat(n);
        i += n;
      }
      continue;
    }
    if ((c === "*" || c === "_") && depth < MAX_DEPTH) {
      const delim = src[i + 1] === c ? c + c : c;
      const close = canOpen(src, i, delim) ? findClose(src, i + delim.length, delim) : -1;
      if (close >= 0) {
        flush();
        const node = document.createElement(delim.length === 2 ? "strong" : "em");
        appendInline(node, src.slice(i + delim.length, close), depth + 1, links);
        parent.append(node);
        i = close + delim.length;
      } else {
        text += delim;
        i += delim.length;
      }
      continue;
    }
    if (c === "[" && depth < MAX_DEPTH) {
      const m = LINK.exec(src.slice(i));
      if (m) {
        flush();
        const href = links ? safeHref(m[2]) : null;
        if (href) {
          const a = linkElement(href);
          appendInline(a, m[1], depth + 1, false);
          parent.append(a);
        } else {
          // Not a link we allow: keep the words, drop the target.
          appendInline(parent, m[1], depth + 1, false);
        }
        i += m[0].length;
        continue;
      }
    }
    text += c;
    i += 1;
  }
  flush();
}

function findBacktickRun(src, from, n) {
  let j = src.indexOf("`", from);
  while (j >= 0) {
    let run = 1;
    while (src[j + run] === "`") run += 1;
    if (run === n) return j;
    j = src.indexOf("`", j + run);
  }
  return -1;
}

function canOpen(src, i, delim) {
  const after = src[i + delim.length];
  if (isSpace(after)) return false;
  if (delim[0] === "_" && isWordChar(src[i - 1])) return false; // snake_case stays as is
  return true;
}

function findClose(src, from, delim) {
  const c = delim[0];
  let j = from + 1; // the content is never empty
  while (j <= src.length - delim.length) {
    if (src[j] === "`") {
      // skip code spans inside emphasis
      let n = 1;
      while (src[j + n] === "`") n += 1;
      const end = findBacktickRun(src, j + n, n);
      j = end >= 0 ? end + n : j + n;
      continue;
    }
    if (src.startsWith(delim, j) && !isSpace(src[j - 1])) {
      const next = src[j + delim.length];
      if (delim.length === 1 && next === c) {
        // part of a ** run inside *…*: skip the run
        j += 2;
        continue;
      }
      if (c === "_" && isWordChar(next)) {
        j += 1;
        continue;
      }
      return j;
    }
    j += 1;
  }
  return -1;
}

/** Appends plain text, turning bare http(s) URLs into links when allowed. */
function appendText(parent, text, links) {
  if (!links) {
    parent.append(document.createTextNode(text));
    return;
  }
  let last = 0;
  for (const match of text.matchAll(BARE_URL)) {
    let url = match[0];
    // Trailing punctuation belongs to the sentence, not the URL.
    while (/[.,;:!?'")\]]$/.test(url)) {
      if (url.endsWith(")") && (url.match(/\(/g) || []).length >= (url.match(/\)/g) || []).length) break;
      url = url.slice(0, -1);
    }
    const href = safeHref(url);
    if (!href) continue;
    const start = match.index ?? 0;
    if (start > last) parent.append(document.createTextNode(text.slice(last, start)));
    const a = linkElement(href);
    a.textContent = url;
    parent.append(a);
    last = start + url.length;
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}
