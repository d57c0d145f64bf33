// Deep Chat <-> deepchat-proxy over plain HTTP on --path: `connect: {url, stream: true}`
// (Server-Sent Events) and `connect: {url}` (one JSON answer), plus file uploads.
// HTTP has no per-connection memory, so these pages send the whole dialogue
// (`requestBodyLimits: {maxMessages: 0}`), as the proxy's README tells users to.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  T, assertSettled, createSuite, openaiProvider, visible,
} from '../lib/harness.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

// A 1×1 PNG.
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

function httpChat({ openChat }, proxy, { stream }) {
  return openChat(proxy, {
    connect: stream ? { url: proxy.httpUrl('/chat'), stream: true } : { url: proxy.httpUrl('/chat') },
    requestBodyLimits: { maxMessages: 0 },
  }, { waitForSocket: false });
}

// Waits for `n` AI messages with the newest one finished (and the submit button back).
function waitForReplies(chat, n) {
  return chat.waitFor(
    (s, count) => s.messages.filter((m) => m.role === 'ai').length >= count
      && s.messages.at(-1).role === 'ai' && !s.bubbles.some((b) => b.streaming)
      && !['loading', 'stop'].includes(s.submit) && s,
    n,
    { what: `${n} finished AI replies` },
  );
}

function waitForError(chat) {
  return chat.waitFor(
    (s) => s.bubbles.some((b) => b.kind === 'error') && !s.bubbles.some((b) => b.streaming)
      && !['loading', 'stop'].includes(s.submit) && s,
    null,
    { what: 'an error bubble and the submit button back' },
  );
}

describe('HTTP SSE (connect {url, stream: true})', () => {
  test('a reply streams in steps with a stop button, and turn 2 carries the dialogue', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy } = scope;
    const proxy = await startProxy({ provider: openaiProvider(mock) });
    const chat = await httpChat(scope, proxy, { stream: true });
    const g = mock.gate();
    mock.enqueue({ events: ['Über ', '"SSE" 🚀', { wait: g }, '\nline two ✅'] });
    await chat.send('Stream over HTTP, please');
    const mid = await chat.waitFor(
      (s) => s.bubbles.some((b) => b.kind === 'ai' && b.streaming && b.text.includes('🚀')) && s,
      null,
      { what: 'partial text while streaming' },
    );
    assert.equal(mid.messages.at(-1).text, 'Über "SSE" 🚀');
    assert.equal(mid.submit, 'stop', 'the submit button offers to stop while streaming');
    g.open();
    const done = await waitForReplies(chat, 1);
    assert.equal(done.messages[1].text, 'Über "SSE" 🚀\nline two ✅');
    assert.equal(visible(done.bubbles.filter((b) => b.kind === 'ai')[0].text), visible('Über "SSE" 🚀\nline two ✅'));
    assertSettled(done);
    assert.equal(done.sockets.length, 0, 'no WebSocket involved');

    mock.enqueue({ events: ['Second.'] });
    await chat.send('Again');
    const second = await waitForReplies(chat, 2);
    assert.equal(second.messages[3].text, 'Second.');
    assert.deepEqual(mock.requests[1].body.messages, [
      { role: 'user', content: 'Stream over HTTP, please' },
      { role: 'assistant', content: 'Über "SSE" 🚀\nline two ✅' },
      { role: 'user', content: 'Again' },
    ]);
  }));

  test('an upstream 500 shows an error, then the next message works', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy } = scope;
    const proxy = await startProxy({ provider: openaiProvider(mock) });
    const chat = await httpChat(scope, proxy, { stream: true });
    mock.enqueue({ status: 500, json: { error: { message: 'Overloaded, try later', type: 'server_error' } }, times: 10 });
    await chat.send('Hello?');
    const failed = await waitForError(chat);
    const err = failed.bubbles.find((b) => b.kind === 'error');
    t.diagnostic(`error shown: ${JSON.stringify(err.text)} after ${mock.requests.length} upstream attempt(s)`);
    assert.match(err.text, /Overloaded/);
    assertSettled(failed);
    mock.clearQueue();
    mock.enqueue({ events: ['Recovered.'] });
    await chat.send('Now?');
    const ok = await waitForReplies(chat, 1);
    assert.equal(ok.messages.at(-1).text, 'Recovered.');
    assert.equal(ok.bubbles.at(-1).kind, 'ai');
  }));

  test('the stop button aborts the upstream request', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy } = scope;
    const proxy = await startProxy({ provider: openaiProvider(mock) });
    const chat = await httpChat(scope, proxy, { stream: true });
    mock.enqueue({ events: ['Endless ', 'story ', { wait: mock.gate() }], hang: true });
    await chat.send('Tell me everything');
    await chat.waitFor((s) => s.submit === 'stop' && s.bubbles.some((b) => b.kind === 'ai' && b.text.includes('story')) && s,
      null, { what: 'streaming with a stop button' });
    const clickedAt = Date.now();
    await chat.page.locator('deep-chat .input-button:has(#stop-icon)').click();
    await mock.until((r) => r[0].clientClosed, T.cancel, 'the proxy to close the upstream connection');
    t.diagnostic(`upstream connection closed ${mock.requests[0].clientClosedAt - clickedAt} ms after the click`);
    const snap = await chat.waitFor((s) => !s.bubbles.some((b) => b.streaming) && !['loading', 'stop'].includes(s.submit) && s,
      null, { what: 'the chat to settle after stop' });
    assert.equal(snap.messages.at(-1).text, 'Endless story ', 'the text so far stays');
    assertSettled(snap);
  }));
});

describe('HTTP JSON (connect {url})', () => {
  test('one complete answer per message; an upstream error shows its message', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy } = scope;
    const proxy = await startProxy({ provider: openaiProvider(mock) });
    const chat = await httpChat(scope, proxy, { stream: false });
    mock.enqueue({ events: ['Whole ', 'answer ', '— at once 🙂'] });
    await chat.send('JSON please');
    const done = await waitForReplies(chat, 1);
    assert.equal(done.messages[1].text, 'Whole answer — at once 🙂');
    assertSettled(done);

    mock.enqueue({ status: 429, json: { error: { message: 'Rate limit reached for e2e-model', type: 'rate_limit' } }, times: 10 });
    await chat.send('Another');
    const failed = await waitForError(chat);
    const err = failed.bubbles.find((b) => b.kind === 'error');
    t.diagnostic(`error shown: ${JSON.stringify(err.text)} after ${mock.requests.length - 1} upstream attempt(s)`);
    assert.match(err.text, /Rate limit reached/);
    assertSettled(failed);
    assert.deepEqual(mock.requests[1].body.messages.map((m) => m.role), ['user', 'assistant', 'user']);
  }));
});

describe('files', () => {
  for (const transport of ['http', 'websocket']) {
    test(`an attached image reaches the upstream as an image part (${transport})`, async (t) => suite.run(t, async (scope) => {
      const { mock, startProxy, openChat } = scope;
      const proxy = await startProxy({ provider: openaiProvider(mock) });
      const chat = transport === 'http'
        ? await httpChat(scope, proxy, { stream: true })
        : await openChat(proxy);
      mock.enqueue({ events: ['A single ', 'dot.'] });
      await chat.sendWithFile('What is in this picture?', { name: 'dot.png', type: 'image/png', base64: PNG });
      const done = await waitForReplies(chat, 1);
      assert.equal(done.messages.at(-1).text, 'A single dot.');
      const last = mock.requests[0].body.messages.at(-1);
      assert.equal(last.role, 'user');
      assert.ok(Array.isArray(last.content), `multimodal content parts: ${JSON.stringify(last).slice(0, 300)}`);
      const text = last.content.find((p) => p.type === 'text');
      const image = last.content.find((p) => p.type === 'image_url');
      assert.equal(text?.text, 'What is in this picture?');
      assert.equal(image?.image_url?.url, `data:image/png;base64,${PNG}`);
    }));
  }
});
