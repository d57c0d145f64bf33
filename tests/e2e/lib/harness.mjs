// Harness for the deepchat-proxy browser suite: static test page, proxy child process,
// headless Chromium (playwright-core, system binary), per-test artifacts on failure.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startMockUpstream } from './mock-upstream.mjs';

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = path.resolve(E2E_DIR, '..', '..');
export const ARTIFACTS_DIR = path.join(E2E_DIR, 'artifacts');
export const PROXY_BIN = process.env.DEEPCHAT_PROXY_BIN
  ? path.resolve(process.env.DEEPCHAT_PROXY_BIN)
  : path.join(REPO_DIR, 'target', 'release', 'deepchat-proxy');
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const DEEP_CHAT_BUNDLE = path.join(E2E_DIR, 'node_modules', 'deep-chat', 'dist', 'deepChat.bundle.js');
export const DEEP_CHAT_CDN_URL = 'https://unpkg.com/deep-chat@2.4.2/dist/deepChat.bundle.js';
// Deep Chat 1.4.11, installed as the npm alias `deep-chat-1`, for the pre-2.0 configuration form.
export const DEEP_CHAT_1_BUNDLE = path.join(E2E_DIR, 'node_modules', 'deep-chat-1', 'dist', 'deepChat.bundle.js');
export const DEEP_CHAT_1_CDN_URL = 'https://unpkg.com/deep-chat@1.4.11/dist/deepChat.bundle.js';
export const PAGE_SCRIPT = path.join(E2E_DIR, 'page', 'e2e-page.js');
export const STOP_KEY = 'e2e-stop-☃'; // non-default on purpose: proves --stop-key is honoured
export const API_KEY_ENV = 'DEEPCHAT_E2E_UPSTREAM_KEY';
export const API_KEY = 'sk-e2e-not-a-real-key';

// Upper bounds for awaited conditions; they are never slept on.
export const T = {
  ready: 15_000, // process up / component rendered / socket open
  reply: 10_000, // a streamed reply completes
  cancel: 3_000, // proxy closes the upstream after the browser goes away
};

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

function tryConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
}

// ------------------------------------------------------------------ static page
const STATIC = {
  '/': [path.join(E2E_DIR, 'page', 'index.html'), 'text/html; charset=utf-8'],
  '/index.html': [path.join(E2E_DIR, 'page', 'index.html'), 'text/html; charset=utf-8'],
  '/e2e-page.js': [path.join(E2E_DIR, 'page', 'e2e-page.js'), 'text/javascript; charset=utf-8'],
  '/vendor/deep-chat/deepChat.bundle.js': [DEEP_CHAT_BUNDLE, 'text/javascript; charset=utf-8'],
};

// Besides the files above, pages a test builds (addPage) are served from memory: a page must come
// from this real 127.0.0.1 server, not from page.route, or Chromium's Local Network Access checks
// block its WebSocket to the proxy.
export async function startStaticServer() {
  const pages = new Map();
  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url, 'http://x').pathname;
    const page = pages.get(pathname);
    if (page !== undefined && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(page);
      return;
    }
    const entry = STATIC[pathname];
    if (!entry || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    // CORS: the proxy's demo page (another origin) may load the bundle from here as a module.
    res.writeHead(200, { 'content-type': entry[1], 'cache-control': 'no-store', 'access-control-allow-origin': '*' });
    fs.createReadStream(entry[0]).pipe(res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    // Serves `html` at `pathname` (e.g. '/readme/attributes.html'); returns the page's URL.
    addPage(pathname, html) {
      pages.set(pathname, html);
      return `${origin}${pathname}`;
    },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

// ------------------------------------------------------------------ proxy process
// The proxy reads DEEPCHAT_PROXY_* settings from the environment; tests pass flags only.
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DEEPCHAT_PROXY_')));
}

// `stopKey: null` leaves --stop-key out, so the proxy uses its default `stop-key` (the value
// the README's snippets configure).
export async function startProxy({ provider, global = [], env = {}, name = 'proxy', stopKey = STOP_KEY }) {
  if (!fs.existsSync(PROXY_BIN)) {
    throw new Error(`proxy binary not found at ${PROXY_BIN}: run \`cargo build --release\` in ${REPO_DIR} or set DEEPCHAT_PROXY_BIN`);
  }
  const port = await freePort();
  const args = ['--listen', `127.0.0.1:${port}`, ...(stopKey === null ? [] : ['--stop-key', stopKey]), ...global, ...provider];
  const started = Date.now();
  const output = [];
  const child = spawn(PROXY_BIN, args, {
    env: { ...cleanEnv(), RUST_LOG: process.env.RUST_LOG || 'info', [API_KEY_ENV]: API_KEY, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Never outlive the test process, whatever happens to it.
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  const exited = once(child, 'exit').then(([code, signal]) => {
    process.off('exit', killOnExit);
    return { code, signal };
  });
  let exitInfo = null;
  exited.then((e) => { exitInfo = e; output.push(`[${Date.now() - started} ms] <exit code=${e.code} signal=${e.signal}>`); });
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8');
    let buf = '';
    stream.on('data', (d) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop();
      // eslint-disable-next-line no-control-regex
      for (const l of lines) output.push(`[${Date.now() - started} ms] ${l.replace(/\x1b\[[0-9;]*m/g, '')}`);
    });
  }
  const proc = {
    name,
    port,
    stopKey: stopKey ?? 'stop-key',
    args,
    wsUrl: (p = '/chat') => `ws://127.0.0.1:${port}${p}`,
    httpUrl: (p = '/') => `http://127.0.0.1:${port}${p}`,
    output,
    get exitInfo() { return exitInfo; },
    async stop() {
      if (exitInfo) return exitInfo;
      child.kill('SIGTERM');
      const res = await Promise.race([exited, new Promise((r) => setTimeout(r, 3000, null))]);
      if (res) return res;
      child.kill('SIGKILL');
      return exited;
    },
  };
  // Readiness: poll a TCP connect; fail fast if the process dies.
  const deadline = Date.now() + T.ready;
  for (;;) {
    if (exitInfo) {
      throw new Error(`proxy exited before listening (${JSON.stringify(exitInfo)}); args: ${args.join(' ')}\n${output.join('\n')}`);
    }
    if (await tryConnect(port)) break;
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`proxy did not accept connections on ${port} within ${T.ready} ms\n${output.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  output.push(`[${Date.now() - started} ms] <e2e: accepting TCP on 127.0.0.1:${port}>`);
  return proc;
}

// openai provider pointed at the mock upstream.
export function openaiProvider(mock, extra = []) {
  return ['openai', '--base-url', mock.url, '--model', 'e2e-model', '--api-key-env', API_KEY_ENV, ...extra];
}

// gemini provider pointed at the mock upstream's Gemini mode.
export function geminiProvider(mock, model = 'e2e-gemini', extra = []) {
  return ['gemini', '--base-url', mock.origin, '--model', model, '--api-key-env', API_KEY_ENV, ...extra];
}

// ------------------------------------------------------------------ browser
export async function launchBrowser() {
  const userDataDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'deepchat-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM_BIN,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-quic',
      '--disable-sync',
    ],
    viewport: { width: 720, height: 640 },
    timeout: 30_000,
  });
  // Nothing may leave the machine: anything not on loopback is refused (tests route
  // specific URLs, e.g. the Deep Chat CDN, to local files with page.route).
  await context.route(
    (url) => !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname),
    (route) => route.abort('blockedbyclient'),
  );
  // launchPersistentContext opens one blank page; keep it so the context stays alive.
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await fsp.rm(userDataDir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

// ------------------------------------------------------------------ chat page wrapper
export class ChatPage {
  constructor(page, consoleLog) {
    this.page = page;
    this.consoleLog = consoleLog;
  }

  // Mounts <deep-chat> with the given element properties and waits until its socket is open.
  async mount(config, { waitForSocket = true } = {}) {
    await this.page.evaluate((cfg) => window.e2e.mount(cfg), config);
    if (waitForSocket) {
      await this.page.waitForFunction(() => window.e2e.socketOpen(), null, { timeout: T.ready, polling: 20 })
        .catch((err) => { throw new Error(`Deep Chat's WebSocket to ${config.connect?.url} did not open: ${err.message}`, { cause: err }); });
    }
  }

  send(text) { return this.page.evaluate((t) => window.e2e.send(t), text); }
  sendWithFile(text, file) { return this.page.evaluate(([t, f]) => window.e2e.sendWithFile(t, f), [text, file]); }
  snapshot() { return this.page.evaluate(() => window.e2e.snapshot()); }
  bubbles() { return this.page.evaluate(() => window.e2e.bubbles()); }

  // Waits until fn(snapshot) is truthy; fn is serialised and evaluated in the page.
  async waitFor(fn, arg, { timeout = T.reply, what = 'page condition' } = {}) {
    try {
      const handle = await this.page.waitForFunction(
        ([src, a]) => {
          const f = new Function(`return (${src})`)();
          return f(window.e2e.snapshot(), a) || false;
        },
        [fn.toString(), arg],
        { timeout, polling: 20 },
      );
      return handle.jsonValue();
    } catch (err) {
      throw new Error(`waiting for ${what}: ${err.message}`, { cause: err });
    }
  }

  // Waits until the conversation has `n` finished AI replies (by getMessages) and nothing streams.
  waitForAiReplies(n, opts = {}) {
    return this.waitFor(
      (s, count) => s.messages.filter((m) => m.role === 'ai').length >= count
        && !s.bubbles.some((b) => b.streaming) && s.bubbles.length > 0 && s,
      n,
      { what: `${n} finished AI replies`, ...opts },
    );
  }

  // Waits until `n` error bubbles are shown and nothing streams anymore.
  waitForErrors(n, opts = {}) {
    return this.waitFor(
      (s, count) => s.bubbles.filter((b) => b.kind === 'error').length >= count
        && !s.bubbles.some((b) => b.streaming) && s,
      n,
      { what: `${n} error bubbles, no streaming bubble`, ...opts },
    );
  }

  // Waits until the page's newest socket has received `n` stop-key frames.
  waitForStopFrames(n, { key = STOP_KEY, ...opts } = {}) {
    return this.waitFor(
      (s, [count, k]) => {
        const sock = s.sockets[s.sockets.length - 1];
        const stops = sock ? sock.received.filter((f) => { try { return JSON.parse(f.data).text === k; } catch { return false; } }) : [];
        return stops.length >= count && s;
      },
      [n, key],
      { what: `${n} stop-key frames received`, timeout: 3000, ...opts },
    );
  }

  // For a page that creates and configures <deep-chat> itself (instrumented by openPage): waits
  // until the element has rendered, then until Deep Chat's connection is settled. Returns
  // 'open' (its WebSocket is open) or 'none' (rendered without opening one: an HTTP `connect`,
  // or a configuration that never reached Deep Chat).
  async waitForOwnChat() {
    await this.page.waitForFunction(() => window.e2e.attachExisting(), null, { timeout: T.ready, polling: 20 })
      .catch((e) => { throw new Error(`the page never rendered a <deep-chat>: ${e.message}`, { cause: e }); });
    return this.page.waitForFunction(() => window.e2e.connectionState() !== 'pending' && window.e2e.connectionState(), null, { timeout: T.ready, polling: 20 })
      .then((h) => h.jsonValue())
      .catch((e) => { throw new Error(`Deep Chat's WebSocket did not settle: ${e.message}`, { cause: e }); });
  }

  // The element's `connect` (or 1.x `request`) property and the texts shown, for failure messages.
  diagnose() {
    return this.page.evaluate(() => {
      const el = document.querySelector('deep-chat');
      const plain = (v) => JSON.parse(JSON.stringify(v ?? null));
      return {
        connect: el ? plain(el.connect) : null,
        request: el ? plain(el.request) : null,
        shown: window.e2e.bubbles().map((b) => `${b.kind}: ${b.text}`),
      };
    });
  }
}

// Nothing spins: no streaming bubble, no loading bubble, the submit button is back to normal.
export function assertSettled(snap) {
  assert.equal(snap.bubbles.filter((b) => b.streaming).length, 0, 'no message is still streaming');
  assert.equal(snap.bubbles.filter((b) => b.kind === 'loading').length, 0, 'no loading bubble');
  assert.equal(snap.busy, false, 'submit button is not busy');
  assert.ok(!['loading', 'stop'].includes(snap.submit), `submit button is back to normal: ${snap.submit}`);
}

// An error text without the ` (request id …)` every proxy error ends with; fails if it has none.
export function withoutRequestId(text) {
  const match = /^(.*) \(request id [A-Za-z0-9._:-]+\)$/s.exec(text);
  assert.ok(match, `no request id at the end of ${JSON.stringify(text)}`);
  return match[1];
}

// Collapses whitespace the way a reader perceives rendered text.
export const visible = (s) => s.replace(/\s+/g, ' ').trim();

// ------------------------------------------------------------------ suite fixture
// One browser, one static server and one mock upstream per test file; one proxy process
// and fresh pages per test.
export function createSuite() {
  const suite = { browser: null, staticServer: null, mock: null };

  suite.setup = async () => {
    await fsp.mkdir(ARTIFACTS_DIR, { recursive: true });
    [suite.staticServer, suite.mock, suite.browser] = await Promise.all([
      startStaticServer(),
      startMockUpstream(),
      launchBrowser(),
    ]);
  };

  suite.teardown = async () => {
    await Promise.all([
      suite.browser?.close(),
      suite.staticServer?.close(),
      suite.mock?.close(),
    ]);
  };

  // Runs one test body with per-test resources; on failure writes artifacts and rethrows.
  suite.run = async (t, body) => {
    const mock = suite.mock;
    mock.reset();
    const pages = [];
    const proxies = [];
    const consoleLog = [];
    const scope = {
      mock,
      staticServer: suite.staticServer,
      context: suite.browser.context,
      async startProxy(opts) {
        const p = await startProxy(opts);
        proxies.push(p);
        return p;
      },
      async newPage() {
        const page = await suite.browser.context.newPage();
        const idx = pages.length;
        page.on('console', (m) => consoleLog.push(`[page${idx}] console.${m.type()}: ${m.text()}`));
        page.on('pageerror', (e) => consoleLog.push(`[page${idx}] pageerror: ${e.stack || e}`));
        page.on('requestfailed', (r) => consoleLog.push(`[page${idx}] requestfailed: ${r.url()} ${r.failure()?.errorText}`));
        page.on('websocket', (ws) => {
          consoleLog.push(`[page${idx}] websocket opened: ${ws.url()}`);
          ws.on('close', () => consoleLog.push(`[page${idx}] websocket closed: ${ws.url()}`));
          ws.on('socketerror', (e) => consoleLog.push(`[page${idx}] websocket error: ${e}`));
        });
        pages.push(page);
        return page;
      },
      // A new page at `url` (a page that sets up <deep-chat> itself, e.g. from staticServer.addPage)
      // with the test instrumentation injected; `routes` maps script URLs (a CDN) to local files.
      // Only scripts are routed: a document fulfilled by page.route counts as public, and
      // Chromium's Local Network Access checks then block its WebSocket to 127.0.0.1.
      async openPage(url, { routes = {} } = {}) {
        const page = await scope.newPage();
        await page.addInitScript({ path: PAGE_SCRIPT });
        const routed = [];
        for (const [from, file] of Object.entries(routes)) {
          await page.route(from, (route) => {
            routed.push(route.request().url());
            return route.fulfill({ path: file, contentType: 'text/javascript; charset=utf-8' });
          });
        }
        const response = await page.goto(url);
        assert.equal(response.status(), 200, `GET ${url}`);
        const chat = new ChatPage(page, consoleLog);
        chat.routed = routed;
        return chat;
      },
      // A new page showing the test page with <deep-chat> connected to `proxy`'s socket;
      // `config` entries override the defaults (e.g. a different `connect`).
      async openChat(proxy, config = {}, { path: p = '/chat', waitForSocket = true, beforeMount } = {}) {
        const page = await scope.newPage();
        await page.goto(`${suite.staticServer.origin}/`);
        if (beforeMount) await beforeMount(page);
        const chat = new ChatPage(page, consoleLog);
        await chat.mount({
          connect: { url: proxy.wsUrl(p), websocket: true, stream: { simulation: proxy.stopKey } },
          errorMessages: { displayServiceErrorMessages: true },
          ...config,
        }, { waitForSocket });
        return chat;
      },
    };
    let failure = null;
    try {
      await body(scope);
      const crashed = proxies.find((p) => p.exitInfo);
      if (crashed) throw new Error(`${crashed.name} exited during the test: ${JSON.stringify(crashed.exitInfo)}`);
    } catch (err) {
      const crashed = proxies.find((p) => p.exitInfo);
      if (crashed && !err.message.includes('exited during the test')) {
        err.message += `\n(note: ${crashed.name} exited during the test: ${JSON.stringify(crashed.exitInfo)}; last output:\n${crashed.output.slice(-15).join('\n')})`;
      }
      failure = err;
      await saveArtifacts(t.name, { pages, proxies, consoleLog, mock }).catch((e) => {
        err.message += `\n(saving artifacts failed: ${e.message})`;
      });
    } finally {
      for (const page of pages) await page.close().catch(() => {});
      for (const proxy of proxies) await proxy.stop().catch(() => {});
    }
    if (failure) throw failure;
  };

  return suite;
}

async function saveArtifacts(testName, { pages, proxies, consoleLog, mock }) {
  const stem = path.join(ARTIFACTS_DIR, testName.replace(/[^a-zA-Z0-9._-]+/g, '_').slice(0, 100));
  const parts = [];
  for (const [i, page] of pages.entries()) {
    if (page.isClosed()) continue;
    await page.screenshot({ path: `${stem}.page${i}.png`, fullPage: true, timeout: 5000 }).catch(() => {});
    const snap = await page.evaluate(() => window.e2e && window.e2e.snapshot()).catch(() => null);
    if (snap) parts.push(`== page${i} snapshot (messages, bubbles, WebSocket frames)\n${JSON.stringify(snap, null, 2)}`);
  }
  parts.push(`== browser console\n${consoleLog.join('\n')}`);
  for (const p of proxies) parts.push(`== ${p.name} (${PROXY_BIN} ${p.args.join(' ')})\n${p.output.join('\n')}`);
  parts.push(`== mock upstream requests\n${JSON.stringify(mock.requests, null, 2)}`);
  await fsp.writeFile(`${stem}.console.log`, `${parts.join('\n\n')}\n`);
}
