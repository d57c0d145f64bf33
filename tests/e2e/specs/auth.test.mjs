// Client auth in the browser: the proxy started with `--auth-token-env E2E_TOKENS`
// (E2E_TOKENS=tok-123). Over WebSocket the page offers the token as the subprotocol
// `bearer.<token>` (Deep Chat's `connect.websocket: ["bearer.tok-123"]`); over HTTP it sends
// `Authorization: Bearer <token>` (`connect.headers`), which makes the browser send a CORS
// preflight first. The test page's origin (127.0.0.1, another port) passes the default origin
// policy. A refused client must cost nothing: the mock upstream sees no request.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  DEEP_CHAT_BUNDLE, DEEP_CHAT_CDN_URL, assertSettled, createSuite, openaiProvider, visible,
  withoutRequestId,
} from '../lib/harness.mjs';
import { deepChatSnippets, documentFor, wrapJs } from '../lib/readme.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

const TOKEN = 'tok-123';

function startAuthProxy({ mock, startProxy }) {
  return startProxy({
    provider: openaiProvider(mock),
    stopKey: null, // the pages use the README's `stream: {simulation: "stop-key"}`
    global: ['--auth-token-env', 'E2E_TOKENS', '--retries', '0'],
    env: { E2E_TOKENS: TOKEN },
  });
}

const wsConnect = (proxy, websocket) => ({ url: proxy.wsUrl(), websocket, stream: { simulation: 'stop-key' } });

// Waits for `n` AI messages, the newest finished and the submit button back.
function waitForReplies(chat, n) {
  return chat.waitFor(
    (s, count) => s.messages.filter((m) => m.role === 'ai').length >= count
      && s.messages.at(-1).role === 'ai' && !s.bubbles.some((b) => b.streaming)
      && !['loading', 'stop'].includes(s.submit) && s,
    n,
    { what: `${n} finished AI replies` },
  );
}

// Collects the page's console output (Chromium logs why a WebSocket handshake failed there).
function consoleOf(page) {
  const lines = [];
  page.on('console', (m) => lines.push(m.text()));
  return lines;
}

describe('client auth: WebSocket subprotocol bearer.<token>', () => {
  test('the right token: the socket opens and a reply streams', async (t) => suite.run(t, async (scope) => {
    const { mock, openChat } = scope;
    const proxy = await startAuthProxy(scope);
    const chat = await openChat(proxy, { connect: wsConnect(proxy, [`bearer.${TOKEN}`]) });
    mock.enqueue({ events: ['Authenticated ', 'reply 🔐'] });
    await chat.send('Am I in?');
    const done = await chat.waitForAiReplies(1);
    assert.deepEqual(done.messages, [{ role: 'user', text: 'Am I in?' }, { role: 'ai', text: 'Authenticated reply 🔐' }]);
    assert.equal(visible(done.bubbles.filter((b) => b.kind === 'ai')[0].text), 'Authenticated reply 🔐');
    assertSettled(done);
    // Chromium only accepts the socket if the proxy selects one of the offered subprotocols.
    assert.equal(done.sockets[0].protocol, `bearer.${TOKEN}`);
    assert.equal(mock.requests.length, 1);
    assert.equal(mock.requests[0].headers.authorization, 'Bearer sk-e2e-not-a-real-key', 'the upstream gets the proxy\'s key, not the client token');
  }));

  for (const [what, websocket] of [['a wrong token', ['bearer.wrong-token']], ['no token', true]]) {
    test(`${what}: the chat shows a connection error and cannot send; the upstream sees nothing`, async (t) => suite.run(t, async (scope) => {
      const { mock, openChat } = scope;
      const proxy = await startAuthProxy(scope);
      let consoleLines = [];
      const chat = await openChat(proxy, { connect: wsConnect(proxy, websocket) }, {
        waitForSocket: false,
        beforeMount: (page) => { consoleLines = consoleOf(page); },
      });
      // Deep Chat shows its "Connection error" bubble (and retries every 5 s, failing again).
      const refused = await chat.waitFor(
        (s) => s.bubbles.some((b) => b.kind === 'error') && s.sockets.length > 0 && s.sockets[0].closedAt !== null && s,
        null,
        { what: 'a connection error shown', timeout: 5000 },
      );
      assert.deepEqual(refused.bubbles.map((b) => [b.kind, b.text]), [['error', 'Connection error']]);
      assert.equal(refused.sockets[0].openedAt, null, 'the socket never opened');
      assert.equal(refused.sockets[0].closeCode, 1006, 'the handshake failed');
      // The proxy answers 401 with `WWW-Authenticate: Bearer`; Chromium words that as below.
      const why = consoleLines.find((l) => /WebSocket connection to .* failed/.test(l));
      t.diagnostic(`browser console: ${why}`);
      assert.match(why ?? '', /HTTP Authentication failed|401/, 'Chromium reports the refused handshake');

      // A person types a message: the submit button stays disabled and Enter sends nothing.
      mock.enqueue({ events: ['must never be sent'] });
      const input = chat.page.locator('deep-chat #text-input');
      await input.click();
      await input.pressSequentially('Let me in?');
      await chat.page.waitForFunction(() => window.e2e.submitState() === 'disabled', null, { timeout: 2000, polling: 20 })
        .catch(async () => assert.fail(`the submit button is ${await chat.page.evaluate(() => window.e2e.submitState())}, not disabled`));
      await input.press('Enter');
      const after = await chat.snapshot();
      assert.equal(await input.innerText(), 'Let me in?', 'the typed text stays in the input');
      assert.deepEqual(after.messages, [], 'no message was added to the chat');
      assert.deepEqual(after.bubbles.map((b) => [b.kind, b.text]), [['error', 'Connection error']]);
      assert.ok(after.sockets.every((sock) => sock.openedAt === null && sock.sent.length === 0), 'no socket opened, nothing sent');

      // The proxy counted the refusal, and the upstream got nothing.
      const metrics = await (await fetch(proxy.httpUrl('/metrics'))).text();
      const rejected = /^deepchat_proxy_rejected_total\{reason="auth"\} (\d+)$/m.exec(metrics);
      assert.ok(rejected && Number(rejected[1]) >= 1, `the proxy counts auth rejections: ${metrics.split('\n').filter((l) => l.includes('rejected')).join('; ')}`);
      assert.equal(mock.requests.length, 0, 'the upstream got no request');
    }));
  }

  test('the README\'s "Securing it" snippet (its address and `token` supplied) connects', async (t) => suite.run(t, async (scope) => {
    const { mock, staticServer, openPage } = scope;
    const proxy = await startAuthProxy(scope);
    const { property, auth } = deepChatSnippets();
    const js = { ...auth, code: `const token = ${JSON.stringify(TOKEN)};\n${auth.code.replaceAll('wss://chat.example.com', `ws://127.0.0.1:${proxy.port}`)}` };
    assert.ok(js.code.includes(`ws://127.0.0.1:${proxy.port}/chat`), `the README's auth snippet still connects to wss://chat.example.com/chat: ${auth.code}`);
    const url = staticServer.addPage('/readme/auth.html', documentFor('README snippet: auth', wrapJs(property, js)));
    const chat = await openPage(url, { routes: { [DEEP_CHAT_CDN_URL]: DEEP_CHAT_BUNDLE } });
    assert.equal(await chat.waitForOwnChat(), 'open', `the socket did not open: ${JSON.stringify(await chat.diagnose())}`);
    mock.enqueue({ events: ['Token ', 'accepted.'] });
    await chat.send('Hello with a token');
    const done = await chat.waitForAiReplies(1);
    assert.equal(done.messages.at(-1).text, 'Token accepted.');
    assert.equal(done.sockets[0].protocol, `bearer.${TOKEN}`);
  }));
});

describe('client auth: HTTP Authorization header (connect.headers)', () => {
  const httpConnect = (proxy, token) => ({
    connect: { url: proxy.httpUrl('/chat'), stream: true, headers: { Authorization: `Bearer ${token}` } },
    requestBodyLimits: { maxMessages: 0 },
  });

  test('the right token: preflight passes and a reply streams over SSE', async (t) => suite.run(t, async (scope) => {
    const { mock, openChat } = scope;
    const proxy = await startAuthProxy(scope);
    const requests = [];
    const chat = await openChat(proxy, httpConnect(proxy, TOKEN), {
      waitForSocket: false,
      beforeMount: (page) => page.on('request', (r) => { if (r.url().startsWith(proxy.httpUrl('/chat'))) requests.push(r); }),
    });
    mock.enqueue({ events: ['Header ', 'auth ', 'works.'] });
    await chat.send('Over HTTP');
    const done = await waitForReplies(chat, 1);
    assert.equal(done.messages.at(-1).text, 'Header auth works.');
    assertSettled(done);
    // A cross-origin POST with an Authorization header is only sent after a successful CORS
    // preflight, so the POST itself is the proof the browser's preflight passed.
    const post = requests.find((r) => r.method() === 'POST');
    assert.equal((await post.allHeaders()).authorization, `Bearer ${TOKEN}`);
    assert.equal((await post.response()).status(), 200);
    assert.equal(mock.requests.length, 1);
    // The preflight as the browser sent it (no credentials: preflights never carry them).
    const preflight = await fetch(proxy.httpUrl('/chat'), {
      method: 'OPTIONS',
      headers: { origin: scope.staticServer.origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), scope.staticServer.origin);
    assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /authorization/i);
  }));

  test('a wrong token: the proxy\'s 401 message is shown and the upstream sees nothing', async (t) => suite.run(t, async (scope) => {
    const { mock, openChat } = scope;
    const proxy = await startAuthProxy(scope);
    const chat = await openChat(proxy, httpConnect(proxy, 'wrong-token'), { waitForSocket: false });
    mock.enqueue({ events: ['must never be sent'] });
    await chat.send('Over HTTP, badly');
    const failed = await chat.waitFor(
      (s) => s.bubbles.some((b) => b.kind === 'error') && !['loading', 'stop'].includes(s.submit) && s,
      null,
      { what: 'an error bubble' },
    );
    const shown = failed.bubbles.find((b) => b.kind === 'error').text;
    t.diagnostic(`shown: ${JSON.stringify(shown)}`);
    assert.equal(withoutRequestId(shown), 'invalid or expired token');
    assert.ok(!failed.messages.some((m) => m.role === 'ai'));
    assertSettled(failed);
    assert.equal(mock.requests.length, 0, 'the upstream got no request');
  }));
});
