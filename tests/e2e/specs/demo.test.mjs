// The proxy's own Deep Chat page at `/`: the `demo` provider's (no upstream), with the bundle from
// the CDN, from a local file the proxy serves, or missing (the page must say so), and the same
// page for a real provider with --playground.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ChatPage, DEEP_CHAT_BUNDLE, DEEP_CHAT_CDN_URL, E2E_DIR, STOP_KEY, T, createSuite, openaiProvider, visible,
} from '../lib/harness.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

const PAGE_SCRIPT = path.join(E2E_DIR, 'page', 'e2e-page.js');

// Opens the proxy's own page with the test instrumentation injected, waits for its socket.
// `routeCdn: false` leaves the CDN unrouted (the suite's browser refuses every non-loopback URL).
async function openDemoPage(scope, proxy, { routeCdn = true } = {}) {
  const page = await scope.newPage();
  await page.addInitScript({ path: PAGE_SCRIPT });
  // Only the script is routed. Never fulfil the *document* through page.route: Chromium then
  // treats it as public, and Local Network Access blocks its WebSocket to 127.0.0.1
  // (net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS).
  const cdnHits = [];
  if (routeCdn) {
    await page.route(DEEP_CHAT_CDN_URL, (route) => {
      cdnHits.push(route.request().url());
      return route.fulfill({ path: DEEP_CHAT_BUNDLE, contentType: 'text/javascript; charset=utf-8' });
    });
  }
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
  return { chat: new ChatPage(page, []), cdnHits, page };
}

// Deep Chat's own container is 320×350 unless told otherwise; on the page it should fill the
// window's width and most of its height.
async function assertFillsThePage(page) {
  const size = await page.evaluate(() => {
    const host = document.querySelector('deep-chat');
    const inner = host.shadowRoot && host.shadowRoot.querySelector('#container');
    const box = (el) => el && (({ width, height }) => ({ width, height }))(el.getBoundingClientRect());
    return { window: { width: innerWidth, height: innerHeight }, host: box(host), inner: box(inner) };
  });
  for (const [what, box] of [['<deep-chat>', size.host], ["Deep Chat's container", size.inner]]) {
    assert.ok(box, `${what} exists: ${JSON.stringify(size)}`);
    assert.ok(box.width >= 0.9 * size.window.width && box.height >= 0.7 * size.window.height,
      `${what} fills the page: ${JSON.stringify(size)}`);
  }
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

  test('with the CDN unreachable the page says so and names the flag', async (t) => suite.run(t, async (scope) => {
    const proxy = await scope.startProxy({ provider: ['demo'], name: 'demo proxy' });
    const page = await scope.newPage();
    // No route for the CDN: the suite's browser refuses it, as a machine with no network would.
    const response = await page.goto(proxy.httpUrl('/'));
    assert.equal(response.status(), 200);
    const alert = page.getByRole('alert');
    await alert.waitFor({ state: 'visible', timeout: T.ready });
    const text = await alert.innerText();
    assert.match(text, /Deep Chat did not load/);
    assert.match(text, /unpkg\.com/, 'it says where it tried');
    assert.match(text, /--deep-chat-script node_modules\/deep-chat\/dist\/deepChat\.bundle\.js/, 'it names the fix');
    assert.equal(await page.locator('deep-chat').count(), 0, 'no empty chat box is left behind');
  }));

  test('--deep-chat-script with a local file: the proxy serves the bundle and the chat works offline', async (t) => suite.run(t, async (scope) => {
    const proxy = await scope.startProxy({
      provider: ['demo', '--tokens-per-second', '200', '--deep-chat-script', DEEP_CHAT_BUNDLE],
      name: 'demo proxy',
    });
    const bundleRequests = [];
    scope.context.on('request', (r) => { if (r.url().endsWith('/deep-chat.js')) bundleRequests.push(r.url()); });
    const { chat, cdnHits, page } = await openDemoPage(scope, proxy, { routeCdn: false });
    assert.deepEqual(cdnHits, []);
    assert.deepEqual(bundleRequests, [proxy.httpUrl('/deep-chat.js')], 'the bundle comes from the page\'s own origin');
    await assertFillsThePage(page);
    await chatOnce(chat, 'Offline ✈');
    await chatOnce(chat, 'And again');
  }));

  test('--playground serves the page for a real provider, relaying to its upstream', async (t) => suite.run(t, async (scope) => {
    const proxy = await scope.startProxy({
      provider: openaiProvider(scope.mock, ['--playground', '--deep-chat-script', DEEP_CHAT_BUNDLE]),
      name: 'playground proxy',
    });
    const { chat, page } = await openDemoPage(scope, proxy, { routeCdn: false });
    assert.match(await page.locator('#description').innerText(), /openai, model e2e-model, upstream 127\.0\.0\.1:\d+/);
    await assertFillsThePage(page);
    scope.mock.enqueue({ events: ['Hello ', 'from ', 'the ', 'mock ', 'upstream'] });
    const before = await chat.snapshot();
    await chat.send('Hi playground');
    const snap = await chat.waitFor(
      (s, n) => s.messages.length >= n + 2 && s.messages.at(-1).role === 'ai' && !s.bubbles.some((b) => b.streaming) && s,
      before.messages.length,
      { what: 'the playground reply to finish' },
    );
    assert.equal(snap.messages.at(-1).text, 'Hello from the mock upstream');
    assert.equal(snap.bubbles.filter((b) => b.kind === 'error').length, 0, 'no error shown');
    assert.deepEqual(scope.mock.requests.at(-1).body.messages.at(-1), { role: 'user', content: 'Hi playground' });
  }));
});
