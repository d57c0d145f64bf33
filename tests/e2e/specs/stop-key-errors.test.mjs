// Two things a person must never notice go wrong: a model that says the stop key itself, and an
// upstream error shown as a useless generic message.
//  * The proxy runs with its default stop key `stop-key` (as the README's snippets configure);
//    a reply that *is* "stop-key" must still show as text, and the chat must stay usable.
//  * With `errorMessages: {displayServiceErrorMessages: true}` an upstream 429 shows the proxy's
//    readable text (the proxy retries 429 twice by default: each attempt gets a 429 here).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  assertSettled, createSuite, openaiProvider, visible, withoutRequestId,
} from '../lib/harness.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

const KEY = 'stop-key';
const framesIn = (snap) => snap.sockets.at(-1).received.map((f) => JSON.parse(f.data));

// Waits for `n` finished AI messages; also stops if the stop key shows up as text, or an error.
function waitForReplies(chat, n) {
  return chat.waitFor(
    (s, count) => ((s.messages.filter((m) => m.role === 'ai').length >= count && s.messages.at(-1).role === 'ai'
      && !s.bubbles.some((b) => b.streaming) && !['loading', 'stop'].includes(s.submit))
      || s.bubbles.some((b) => b.kind === 'error')) && s,
    n,
    { what: `${n} finished AI replies` },
  );
}

describe('a model that says the stop key', () => {
  test('a whole reply of exactly "stop-key" (one delta) is shown as text, and the next message works', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    const proxy = await startProxy({ provider: openaiProvider(mock), stopKey: null });
    assert.equal(proxy.stopKey, KEY);
    const chat = await openChat(proxy, { connect: { url: proxy.wsUrl(), websocket: true, stream: { simulation: KEY } } });
    mock.enqueue({ events: [KEY] });
    await chat.send('Say the magic words');
    // Deep Chat completes a message only on the stop key: a swallowed reply never completes.
    const done = await chat.waitFor(
      (s) => s.onMessage.some((m) => m.event === 'message' && m.message?.role === 'ai') && !s.bubbles.some((b) => b.streaming) && s,
      null,
      { what: 'the reply "stop-key" to be shown and completed' },
    );
    assert.deepEqual(done.messages, [{ role: 'user', text: 'Say the magic words' }, { role: 'ai', text: KEY }]);
    const ai = done.bubbles.filter((b) => b.kind === 'ai');
    assert.deepEqual(ai.map((b) => visible(b.text)), [KEY], 'the bubble shows "stop-key"');
    assert.equal(done.bubbles.filter((b) => b.kind === 'error').length, 0);
    assertSettled(done);
    const frames = framesIn(done);
    t.diagnostic(`frames: ${JSON.stringify(frames)}`);
    assert.deepEqual(frames.at(-1), { text: KEY }, 'the reply ends with the real stop key');
    assert.ok(frames.slice(0, -1).every((f) => f.text !== KEY), 'no content frame equals the stop key');
    assert.equal(frames.slice(0, -1).map((f) => f.text).join(''), KEY, 'the content frames spell the reply');

    mock.enqueue({ events: ['Ready ', 'again.'] });
    await chat.send('Anything else?');
    const next = await waitForReplies(chat, 2);
    assert.deepEqual(next.messages.map((m) => m.text), ['Say the magic words', KEY, 'Anything else?', 'Ready again.']);
    assert.deepEqual(next.bubbles.filter((b) => b.kind === 'ai').map((b) => visible(b.text)), [KEY, 'Ready again.']);
    assertSettled(next);
    assert.deepEqual(mock.requests[1].body.messages.map((m) => m.content), ['Say the magic words', KEY, 'Anything else?'],
      'the proxy remembers the reply as the model said it');
  }));

  test('a delta equal to "stop-key" in the middle of a reply does not cut it short', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    const proxy = await startProxy({ provider: openaiProvider(mock), stopKey: null });
    const chat = await openChat(proxy, { connect: { url: proxy.wsUrl(), websocket: true, stream: { simulation: KEY } } });
    const g1 = mock.gate();
    const g2 = mock.gate();
    // The gates make each delta leave on its own, so "stop-key" is a delta by itself.
    mock.enqueue({ events: ['Type ', { wait: g1 }, KEY, { wait: g2 }, ' to end a reply.'] });
    await chat.send('How do replies end?');
    await chat.waitFor((s) => s.bubbles.some((b) => b.kind === 'ai' && b.streaming && b.text.includes('Type')) && s, null, { what: '"Type " on screen' });
    g1.open();
    const mid = await chat.waitFor(
      (s, key) => s.bubbles.some((b) => b.kind === 'ai' && b.text.includes(key)) && s,
      KEY,
      { what: '"stop-key" on screen mid-reply' },
    );
    assert.ok(mid.bubbles.find((b) => b.kind === 'ai').streaming, 'the reply is still streaming');
    g2.open();
    const done = await waitForReplies(chat, 1);
    assert.equal(done.messages.at(-1).text, `Type ${KEY} to end a reply.`);
    assert.equal(visible(done.bubbles.filter((b) => b.kind === 'ai')[0].text), `Type ${KEY} to end a reply.`);
    assertSettled(done);
    const frames = framesIn(done);
    assert.equal(frames.filter((f) => f.text === KEY).length, 1, `one stop-key frame: ${JSON.stringify(frames)}`);
    assert.deepEqual(frames.at(-1), { text: KEY });
    // The delta that equalled the stop key went out split in two.
    assert.deepEqual(frames.slice(0, -1).map((f) => f.text), ['Type ', 's', 'top-key', ' to end a reply.']);
  }));
});

describe('upstream errors as text a person can read', () => {
  const rateLimited = {
    status: 429,
    json: { error: { message: 'Rate limit reached for e2e-model on requests per min (RPM): Limit 3.', type: 'requests', code: 'rate_limit_exceeded' } },
  };
  // The upstream is named by its host, so an operator sees which service failed.
  const proxyText = (mock) => `openai upstream at 127.0.0.1:${mock.port} is rate limiting requests (HTTP 429): Rate limit reached for e2e-model on requests per min (RPM): Limit 3.`;

  test('WebSocket, displayServiceErrorMessages: a 429 on every attempt shows the proxy\'s text; then a reply works', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    const proxy = await startProxy({ provider: openaiProvider(mock) }); // default --retries 2
    const chat = await openChat(proxy, { errorMessages: { displayServiceErrorMessages: true } });
    mock.enqueue({ ...rateLimited, times: 3 });
    await chat.send('Too fast?');
    const failed = await chat.waitForErrors(1);
    await chat.waitForStopFrames(1);
    assert.deepEqual(failed.bubbles.map((b) => [b.kind, b.kind === 'error' ? withoutRequestId(b.text) : b.text]), [['user', 'Too fast?'], ['error', proxyText(mock)]]);
    assert.equal(mock.requests.length, 3, 'the proxy tried three times (one try, two retries)');
    assert.equal(mock.pending(), 0);
    assertSettled(failed);

    mock.enqueue({ events: ['Slower ', 'now.'] });
    await chat.send('Now?');
    const ok = await chat.waitFor(
      (s) => s.messages.at(-1).role === 'ai' && s.messages.at(-1).text === 'Slower now.' && !s.bubbles.some((b) => b.streaming) && s,
      null,
      { what: 'the reply after the error' },
    );
    assert.deepEqual(ok.bubbles.slice(-2).map((b) => [b.kind, visible(b.text)]), [['user', 'Now?'], ['ai', 'Slower now.']]);
    assertSettled(ok);
  }));

  test('HTTP SSE, displayServiceErrorMessages: the same 429 text (--retries 0)', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    const proxy = await startProxy({ provider: openaiProvider(mock), global: ['--retries', '0'] });
    const chat = await openChat(proxy, {
      connect: { url: proxy.httpUrl('/chat'), stream: true },
      errorMessages: { displayServiceErrorMessages: true },
    }, { waitForSocket: false });
    mock.enqueue(rateLimited);
    await chat.send('Too fast over HTTP?');
    const failed = await chat.waitFor(
      (s) => s.bubbles.some((b) => b.kind === 'error') && !['loading', 'stop'].includes(s.submit) && s,
      null,
      { what: 'an error bubble' },
    );
    assert.equal(withoutRequestId(failed.bubbles.find((b) => b.kind === 'error').text), proxyText(mock));
    assert.equal(mock.requests.length, 1);
    assertSettled(failed);
  }));

  test('without displayServiceErrorMessages Deep Chat shows its own generic text instead', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    const proxy = await startProxy({ provider: openaiProvider(mock), global: ['--retries', '0'] });
    const chat = await openChat(proxy, { errorMessages: undefined });
    assert.equal(await chat.page.evaluate(() => document.querySelector('deep-chat').errorMessages), undefined);
    mock.enqueue(rateLimited);
    await chat.send('Too fast?');
    const failed = await chat.waitForErrors(1);
    const shown = failed.bubbles.find((b) => b.kind === 'error').text;
    t.diagnostic(`shown without displayServiceErrorMessages: ${JSON.stringify(shown)}`);
    assert.notEqual(shown, proxyText(mock));
    assert.ok(!shown.includes('429') && !shown.includes('Rate limit'), `generic text: ${JSON.stringify(shown)}`);
    // The proxy sent its text all the same; only the page chose not to show it.
    const frames = framesIn(await chat.waitForStopFrames(1));
    assert.deepEqual(frames.filter((f) => f.error !== undefined).map((f) => withoutRequestId(f.error)), [proxyText(mock)]);
  }));
});
