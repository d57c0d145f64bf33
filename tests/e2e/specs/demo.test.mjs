// The `demo` provider: no upstream; the proxy serves its own Deep Chat page at `/`.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ChatPage, DEEP_CHAT_BUNDLE, DEEP_CHAT_CDN_URL, E2E_DIR, STOP_KEY, T, createSuite, visible,
} from '../lib/harness.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

const PAGE_SCRIPT = path.join(E2E_DIR, 'page', 'e2e-page.js');

// Opens the proxy's own page with the test instrumentation injected, waits for its socket.
async function openDemoPage(scope, proxy) {
  const page = await scope.newPage();
  await page.addInitScript({ path: PAGE_SCRIPT });
  // Only the script is routed. Never fulfil the *document* through page.route: Chromium then
  // treats it as public, and Local Network Access blocks its WebSocket to 127.0.0.1
  // (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS).
  const cdnHits = [];
  await page.route(DEEP_CHAT_CDN_URL, (route) => {
    cdnHits.push(route.request().url());
    return route.fulfill({ path: DEEP_CHAT_BUNDLE, contentType: 'text/javascript; charset=utf-8' });
  });
  const response = await page.goto(proxy.httpUrl('/'));
  assert.equal(response.status(), 200, 'GET / serves the demo page');
  assert.match(response.headers()['content-type'] || '', /text\/html/);
  await page.waitForFunction(() => window.e2e.attachExisting(), null, { timeout: T.ready, polling: 20 })
    .catch((e) => { throw new Error(`the demo page never rendered a <deep-chat>: ${e.message}`, { cause: e }); });
  const state = await page.waitForFunction(() => window.e2e.connectionState() !== 'pending' && window.e2e.connectionState(), null, { timeout: T.ready, polling: 20 })
    .then((h) => h.jsonValue())
    .catch((e) => { throw new Error(`the demo page's Deep Chat socket did not open: ${e.message}`, { cause: e }); });
  if (state !== 'open') {
    const { connect, shown } = await page.evaluate(() => ({
      connect: window.e2e.connectConfig(),
      shown: window.e2e.bubbles().map((b) => b.text),
    }));
    // Deep Chat opens its socket while rendering, so it never will now.
    assert.fail('the demo page rendered <deep-chat> without opening a WebSocket: its `connect` config never '
      + `reached Deep Chat (element.connect is ${JSON.stringify(connect)}; the chat shows ${JSON.stringify(shown)}). `
      + 'Likely cause: properties assigned to <deep-chat> before the custom element is defined are discarded on '
      + "upgrade; assign them after `await customElements.whenDefined('deep-chat')` (or create the element then).");
  }
  return { chat: new ChatPage(page, []), cdnHits };
}

async function chatOnce(chat, text) {
  const before = await chat.snapshot(); // the page may show an intro bubble (not a message)
  await chat.send(text);
  // Also stop waiting if the stop key shows up as text (page not configured with --stop-key).
  const snap = await chat.waitFor(
    (s, [n, key]) => s.messages.length >= n + 2 && ((s.messages.at(-1).role === 'ai' && !s.bubbles.some((b) => b.streaming))
      || s.messages.at(-1).text.includes(key)) && s,
    [before.messages.length, STOP_KEY],
    { what: 'the demo reply to finish' },
  );
  const reply = snap.messages.at(-1);
  assert.equal(reply.role, 'ai');
  assert.ok(reply.text.length > 0, 'a non-empty reply');
  assert.ok(!reply.text.includes(STOP_KEY),
    `the stop key ${JSON.stringify(STOP_KEY)} is shown as text, so the page's stream.simulation does not equal --stop-key: ${JSON.stringify(reply.text)}`);
  assert.ok(reply.text.includes(text), `the demo reply echoes the message: ${JSON.stringify(reply.text)}`);
  const bubble = snap.bubbles.filter((b) => b.kind === 'ai').at(-1);
  // The canned answer contains markdown, so compare what a reader sees loosely.
  assert.ok(visible(bubble.text).includes(visible(text)), `the bubble shows the echo: ${JSON.stringify(bubble.text)}`);
  assert.ok(visible(bubble.text).length > visible(text).length, 'the bubble shows more than the echo');
  const steps = snap.aiTextHistory.slice(before.aiTextHistory.length);
  assert.ok(steps.length >= 2, `streamed in steps: ${JSON.stringify(steps)}`);
  assert.equal(snap.bubbles.filter((b) => b.kind === 'error').length, 0, 'no error shown');
  assert.equal(snap.bubbles.filter((b) => b.streaming).length, 0, 'streaming finished');
  assert.ok(snap.sockets.at(-1).url.endsWith('/chat'), `socket goes to the proxy's /chat: ${snap.sockets.at(-1).url}`);
  return snap;
}

describe('demo provider page', () => {
  test('GET / loads Deep Chat from the CDN URL and a message gets a streamed reply', async (t) => suite.run(t, async (scope) => {
    const proxy = await scope.startProxy({ provider: ['demo', '--tokens-per-second', '200'], name: 'demo proxy' });
    const { chat, cdnHits } = await openDemoPage(scope, proxy);
    assert.deepEqual(cdnHits, [DEEP_CHAT_CDN_URL], 'the page loads the pinned Deep Chat bundle from the CDN');
    await chatOnce(chat, 'Hello demo ✨');
  }));

  test('--deep-chat-script points the page at another bundle URL', async (t) => suite.run(t, async (scope) => {
    const local = `${scope.staticServer.origin}/vendor/deep-chat/deepChat.bundle.js`;
    const proxy = await scope.startProxy({
      provider: ['demo', '--tokens-per-second', '200', '--deep-chat-script', local],
      name: 'demo proxy',
    });
    const { chat, cdnHits } = await openDemoPage(scope, proxy);
    assert.deepEqual(cdnHits, [], 'the CDN is not used');
    await chatOnce(chat, 'Local bundle');
  }));
});
