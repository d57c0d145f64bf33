// Reads the repository README's fenced code blocks, so specs can run its Deep Chat snippets as
// written. E2E_README points at another file (e.g. a deliberately broken copy, to see the
// README spec fail).
import fs from 'node:fs';
import path from 'node:path';
import { REPO_DIR } from './harness.mjs';

export const README_PATH = process.env.E2E_README ? path.resolve(process.env.E2E_README) : path.join(REPO_DIR, 'README.md');

// Every fenced block: { lang, code, line (1-based, of the opening fence), heading, intro }, where
// `intro` is the prose right before the block and `heading` the nearest heading above it.
// Blocks indented inside list items lose their common indentation.
export function fencedBlocks(markdown) {
  const lines = markdown.split('\n');
  const blocks = [];
  let heading = null;
  let prose = [];
  for (let i = 0; i < lines.length; i += 1) {
    const open = /^(\s*)(`{3,})([\w-]*)\s*$/.exec(lines[i]);
    if (!open) {
      if (/^#{1,6}\s/.test(lines[i])) {
        heading = lines[i].replace(/^#+\s*/, '').trim();
        prose = [];
      } else {
        prose.push(lines[i].trim()); // '' separates paragraphs
      }
      continue;
    }
    const [, indent, fence, lang] = open;
    const body = [];
    let j = i + 1;
    while (j < lines.length && !new RegExp(`^\\s*${fence}\\s*$`).test(lines[j])) {
      body.push(lines[j].startsWith(indent) ? lines[j].slice(indent.length) : lines[j].trimStart());
      j += 1;
    }
    if (j >= lines.length) throw new Error(`${README_PATH}:${i + 1}: unclosed code fence`);
    // The paragraph just before the fence.
    while (prose.length && prose.at(-1) === '') prose.pop();
    const intro = prose.slice(prose.lastIndexOf('') + 1).join(' ');
    blocks.push({ lang, code: body.join('\n'), line: i + 1, heading, intro });
    prose = [];
    i = j;
  }
  return blocks;
}

export function readmeText() {
  return fs.readFileSync(README_PATH, 'utf8');
}

export function readmeBlocks() {
  return fencedBlocks(readmeText());
}

// The README's Deep Chat frontend snippets, by kind. Every html/js block that configures Deep
// Chat must be one of these kinds (exactly one each), so a new or reshaped snippet makes the
// specs fail until they cover it.
const deepChatCount = (b) => (b.code.match(/<deep-chat\b/g) || []).length;

export const SNIPPET_KINDS = {
  // Deep Chat 2.x, properties set from a module script after customElements.whenDefined.
  property: (b) => b.lang === 'html' && /<script type="module">/.test(b.code) && /\bchat\.connect\s*=/.test(b.code),
  // Deep Chat 2.x as attributes.
  attributes: (b) => b.lang === 'html' && /<deep-chat[^>]*\sconnect='/s.test(b.code) && deepChatCount(b) === 1,
  // Two Deep Chat 2.x elements on two routes of one proxy ("Several models, routes and fallbacks").
  routes: (b) => b.lang === 'html' && deepChatCount(b) === 2,
  // Deep Chat 1.x: `request` and a top-level `stream` attribute.
  v1: (b) => b.lang === 'html' && /<deep-chat[^>]*\srequest='/s.test(b.code),
  // Plain HTTP, Server-Sent Events.
  httpSse: (b) => b.lang === 'js' && /url:\s*"http:\/\/127\.0\.0\.1:8080/.test(b.code) && /stream:\s*true/.test(b.code),
  // Plain HTTP, one JSON answer.
  httpJson: (b) => b.lang === 'js' && /url:\s*"http:\/\/127\.0\.0\.1:8080/.test(b.code) && !/stream:/.test(b.code),
  // WebSocket, one whole frame per reply (`?reply=whole`).
  wsWhole: (b) => b.lang === 'js' && /url:\s*"ws:\/\/127\.0\.0\.1:8080\/chat\?reply=whole"/.test(b.code),
  // WebSocket, overwrite frames (`?reply=overwrite`).
  wsOverwrite: (b) => b.lang === 'js' && /url:\s*"ws:\/\/127\.0\.0\.1:8080\/chat\?reply=overwrite"/.test(b.code),
  // A named conversation: the id from localStorage on the connect URL, and loadHistory
  // ("Conversations").
  conversation: (b) => b.lang === 'js' && /\bchat\.loadHistory\s*=/.test(b.code),
  // WebSocket with a bearer token ("Securing it").
  auth: (b) => b.lang === 'js' && /websocket:\s*\["bearer\."/.test(b.code),
};

const configuresDeepChat = (b) => ['html', 'js'].includes(b.lang) && /<deep-chat|\bchat\.\w+\s*=/.test(b.code);

export function deepChatSnippets() {
  const found = Object.fromEntries(Object.keys(SNIPPET_KINDS).map((k) => [k, []]));
  const blocks = readmeBlocks().filter(configuresDeepChat);
  for (const block of blocks) {
    const kinds = Object.keys(SNIPPET_KINDS).filter((k) => SNIPPET_KINDS[k](block));
    if (kinds.length !== 1) {
      throw new Error(`${README_PATH}:${block.line}: a Deep Chat snippet that matches ${kinds.length ? kinds.join(' and ') : 'no known kind'}; `
        + `teach lib/readme.mjs and the specs about it:\n${block.code}`);
    }
    found[kinds[0]].push(block);
  }
  for (const [kind, list] of Object.entries(found)) {
    if (list.length !== 1) {
      throw new Error(`${README_PATH}: expected exactly one "${kind}" Deep Chat snippet, found ${list.length} (lines ${list.map((b) => b.line).join(', ') || 'none'})`);
    }
  }
  return Object.fromEntries(Object.entries(found).map(([k, [b]]) => [k, b]));
}

// The snippet with the README's proxy address (127.0.0.1:8080) replaced by the test proxy's.
export function withProxyAddress(code, port) {
  if (!code.includes('127.0.0.1:8080')) throw new Error(`the snippet no longer mentions 127.0.0.1:8080:\n${code}`);
  return code.replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`);
}

// `<script type="module" src="…">` loading Deep Chat, as the property-form snippet has it.
export function bundleScriptTag(property) {
  const tag = property.code.split('\n').find((l) => /<script\b[^>]*\bsrc=/.test(l));
  if (!tag) throw new Error(`README:${property.line}: the 2.x snippet no longer loads Deep Chat with a <script src>`);
  return tag.trim();
}

export function bundleScriptUrl(property) {
  return /\bsrc="([^"]+)"/.exec(bundleScriptTag(property))[1];
}

// A js-only snippet placed the way the README says the other snippets set properties: in the
// property-form snippet, replacing its property assignments (everything from `chat.connect`
// on), after its `customElements.whenDefined` and `const chat = …` lines.
export function wrapJs(property, js) {
  const lines = property.code.split('\n');
  const at = lines.findIndex((l) => /\bchat\.connect\s*=/.test(l));
  const close = lines.findLastIndex((l) => l.trim() === '</script>');
  if (at < 0 || close < at) throw new Error(`README:${property.line}: cannot find where the 2.x snippet sets chat.connect`);
  const indent = /^\s*/.exec(lines[at])[0];
  return [...lines.slice(0, at), ...js.code.split('\n').map((l) => indent + l), ...lines.slice(close)].join('\n');
}

// The same markup with the Deep Chat <script src> moved to the end: the bundle then runs after
// everything else on the page.
export function bundleLoadedLast(html, tag) {
  if (!html.includes(tag)) return `${html}\n${tag}`;
  return `${html.replace(`${tag}\n`, '').replace(tag, '')}\n${tag}`;
}

// A whole document around a snippet.
export function documentFor(title, body) {
  return `<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>${title}</title>\n</head>\n<body>\n${body}\n</body>\n</html>\n`;
}
