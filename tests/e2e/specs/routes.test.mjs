// One page, two Deep Chat elements on two routes of one proxy: the README's snippet from
// "Several models, routes and fallbacks", run as written (only the proxy address and the CDN
// bundle change). The proxy mirrors the README's command, with both routes pointed at the mock
// upstream, which speaks both providers: /chat is OpenAI Chat Completions and lets the page
// choose `fast` (sent upstream as another name), /support is Gemini with its own system prompt.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  API_KEY_ENV, DEEP_CHAT_BUNDLE, DEEP_CHAT_CDN_URL, T, createSuite, freePort, geminiProvider, openaiProvider,
  visible,
} from '../lib/harness.mjs';
import { deepChatSnippets, documentFor, withProxyAddress } from '../lib/readme.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

const { routes: snippet } = deepChatSnippets();

// The ids the README gives its two elements, and the route each connects to.
const ELEMENTS = [
  { id: 'assistant', path: '/chat' },
  { id: 'support', path: '/support' },
];

// Waits until element `id` shows `text` as its newest AI message and the socket it talks on
// (to `socketUrl`) received the stop key: the reply is complete. Returns its messages.
async function waitForReply(page, id, socketUrl, text) {
  const done = await page.waitForFunction(
    ([elementId, url, expected]) => {
      const messages = document.getElementById(elementId)?.getMessages?.() ?? [];
      // Deep Chat may replace a socket while it renders: any socket to the route counts.
      const ended = window.e2e.snapshot().sockets.some((s) => s.url === url
        && s.received.some((f) => f.data === JSON.stringify({ text: 'stop-key' })));
      return messages.at(-1)?.role === 'ai' && messages.at(-1).text === expected && ended && messages;
    },
    [id, socketUrl, text],
    { timeout: T.reply, polling: 20 },
  ).catch(async (err) => {
    const shown = await page.evaluate((elementId) => document.getElementById(elementId)?.getMessages?.(), id);
    throw new Error(`waiting for the reply ${JSON.stringify(text)} on #${id}: ${err.message}; messages: ${JSON.stringify(shown)}`, { cause: err });
  });
  return done.jsonValue();
}

describe('two routes on one page', () => {
  test('each Deep Chat element is answered by its own route and provider, the model chosen by the page', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy } = scope;
    const proxy = await startProxy({
      stopKey: null, // the snippet's stream.simulation is the default "stop-key"
      global: ['--retries', '0', '--allow-model', 'fast=e2e-fast-internal', '--allow-model', 'e2e-big'],
      provider: [
        ...openaiProvider(mock),
        '--route', '/support', '--system-prompt', 'You answer questions about our product.',
        ...geminiProvider(mock, 'e2e-gemini'),
      ],
    });
    const html = documentFor('README snippet: two routes', withProxyAddress(snippet.code, proxy.port));
    const url = scope.staticServer.addPage('/readme/routes.html', html);
    const chat = await scope.openPage(url, { routes: { [DEEP_CHAT_CDN_URL]: DEEP_CHAT_BUNDLE } });
    const { page } = chat;

    // Both sockets open, one per route.
    await page.waitForFunction(
      (urls) => {
        const snap = window.e2e.snapshot();
        return urls.every((u) => snap.sockets.some((s) => s.url === u && s.openedAt !== null && s.closedAt === null));
      },
      ELEMENTS.map((e) => proxy.wsUrl(e.path)),
      { timeout: T.ready, polling: 20 },
    ).catch((err) => { throw new Error(`both routes' sockets did not open: ${err.message}`, { cause: err }); });

    const answers = { assistant: 'From the chat route ✅', support: 'From the support route 🛟' };
    for (const [i, { id }] of ELEMENTS.entries()) {
      mock.enqueue({ events: [answers[id].slice(0, 5), answers[id].slice(5)] });
      await page.evaluate(([elementId, text]) => document.getElementById(elementId).submitUserMessage({ text }), [id, `Question for ${id}`]);
      const messages = await waitForReply(page, id, proxy.wsUrl(ELEMENTS[i].path), answers[id]);
      assert.deepEqual(messages.map((m) => [m.role, m.text]), [['user', `Question for ${id}`], ['ai', answers[id]]], `#${id}`);
      assert.equal(mock.requests.length, i + 1, 'one upstream request per message');
    }

    const [toChat, toSupport] = mock.requests;
    assert.equal(toChat.api, 'openai', '/chat is served by its OpenAI upstream');
    assert.equal(toChat.body.model, 'e2e-fast-internal', 'the page chose "fast" with additionalBodyProps');
    assert.deepEqual(toChat.body.messages, [{ role: 'user', content: 'Question for assistant' }]);
    assert.equal(toSupport.api, 'gemini', '/support is served by its Gemini upstream');
    assert.match(toSupport.url, /\/models\/e2e-gemini:streamGenerateContent/);
    assert.equal(visible(JSON.stringify(toSupport.body.systemInstruction ?? toSupport.body.system_instruction)).includes('You answer questions about our product.'), true,
      `the support route's own system prompt: ${JSON.stringify(toSupport.body)}`);

    // Each element's socket ended its reply with the stop key and got nothing of the other's.
    const snap = await chat.snapshot();
    for (const { id, path } of ELEMENTS) {
      const socket = snap.sockets.findLast((s) => s.url === proxy.wsUrl(path) && s.received.length > 0);
      const frames = socket.received.map((f) => JSON.parse(f.data));
      assert.deepEqual(frames.at(-1), { text: 'stop-key' }, `${path} ended with the stop key`);
      assert.equal(frames.filter((f) => f.text && f.text !== 'stop-key').map((f) => f.text).join(''), answers[id], `${path} carried only its own reply`);
    }
  }));

  test('a route whose first upstream is down is answered by its fallback, and the log says which', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy } = scope;
    const down = `http://127.0.0.1:${await freePort()}/v1`; // nothing listens there
    const proxy = await startProxy({
      stopKey: null,
      global: ['--retries', '0'],
      provider: [
        'openai', '--base-url', down, '--model', 'e2e-down', '--api-key-env', API_KEY_ENV,
        '--fallback', ...openaiProvider(mock),
        '--route', '/support', ...geminiProvider(mock, 'e2e-gemini'),
      ],
    });
    const html = documentFor('README snippet: two routes, a fallback', withProxyAddress(snippet.code, proxy.port));
    const url = scope.staticServer.addPage('/readme/routes-fallback.html', html);
    const chat = await scope.openPage(url, { routes: { [DEEP_CHAT_CDN_URL]: DEEP_CHAT_BUNDLE } });
    const { page } = chat;
    await page.waitForFunction(
      (u) => window.e2e.snapshot().sockets.some((s) => s.url === u && s.openedAt !== null),
      proxy.wsUrl('/chat'),
      { timeout: T.ready, polling: 20 },
    );
    mock.enqueue({ events: ['Answered by ', 'the fallback'] });
    await page.evaluate(() => document.getElementById('assistant').submitUserMessage({ text: 'Anyone there?' }));
    const messages = await waitForReply(page, 'assistant', proxy.wsUrl('/chat'), 'Answered by the fallback');
    assert.deepEqual(messages.at(-1), { role: 'ai', text: 'Answered by the fallback' });
    assert.equal(mock.requests.length, 1);
    assert.equal(mock.requests[0].body.model, 'e2e-model', 'the fallback sends its own --model');
    const logged = proxy.output.find((l) => l.includes('reply finished'));
    assert.ok(logged, `a reply log line in:\n${proxy.output.join('\n')}`);
    assert.match(logged, /route="?\/chat/);
    assert.match(logged, /model="?e2e-model/);
    assert.match(logged, /fallback=1/);
    assert.ok(logged.includes(`openai upstream at 127.0.0.1:${mock.port}`), `the log names the upstream's host: ${logged}`);
  }));
});
