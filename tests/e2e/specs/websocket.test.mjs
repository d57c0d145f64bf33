// Deep Chat <-> deepchat-proxy over WebSocket with `stream: {simulation: <stop key>}`,
// the proxy's `openai` provider talking to a scripted mock upstream.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  API_KEY, STOP_KEY, T, assertSettled, createSuite, openaiProvider, visible,
} from '../lib/harness.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

// Parsed frames the proxy sent to the page on its (last) socket.
function framesIn(snap, socketIndex = snap.sockets.length - 1) {
  return snap.sockets[socketIndex].received.map((f) => JSON.parse(f.data));
}
// Parsed frames the page sent to the proxy.
function framesOut(snap, socketIndex = snap.sockets.length - 1) {
  return snap.sockets[socketIndex].sent.map((f) => JSON.parse(f.data));
}
const isStop = (f) => f.text === STOP_KEY;

describe('websocket streaming', () => {
  test('a reply is rendered exactly, arrives in steps, and a second message works', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    const proxy = await startProxy({ provider: openaiProvider(mock) });
    // Unicode, emoji (incl. ZWJ sequence and skin tone), both quote kinds, backslash, <, &,
    // single and double newlines. One event is cut mid-character on the wire.
    const parts = [
      'Grüße, 世界! ',
      '👋🏽 "double" and \'single\' quotes — naïve café.',
      '\nSecond line: ∑ ≠ ∞, a\\b, 1 < 2 & 3 > 2',
    ];
    const rest = ['\n\nNew paragraph 👩‍👩‍👧 ', { content: 'done ✅ €', splitInside: '€' }];
    const full = parts.join('') + rest.map((p) => (typeof p === 'string' ? p : p.content)).join('');
    const g = mock.gate();
    mock.enqueue({ events: [...parts.map((p) => ({ content: p })), { wait: g }, ...rest] });

    const chat = await openChat(proxy);
    await chat.send('Hello, proxy! ¿Qué tal? 🙂');

    // Mid-stream: the first part is on screen while the upstream is held back.
    const mid = await chat.waitFor(
      (s, expected) => s.bubbles.some((b) => b.kind === 'ai' && b.streaming
        && b.text.replace(/\s+/g, ' ').trim() === expected) && s,
      visible(parts.join('')),
      { what: 'partial AI text visible while streaming' },
    );
    assert.equal(mid.messages.at(-1).text, parts.join(''), 'partial text so far is exact');
    g.open();

    const done = await chat.waitForAiReplies(1);
    assert.deepEqual(done.messages.map((m) => m.role), ['user', 'ai']);
    assert.equal(done.messages[0].text, 'Hello, proxy! ¿Qué tal? 🙂');
    assert.equal(done.messages[1].text, full, 'getMessages() text equals the upstream text exactly');
    const ai = done.bubbles.filter((b) => b.kind === 'ai');
    assert.equal(ai.length, 1);
    assert.equal(visible(ai[0].text), visible(full), 'rendered text matches (whitespace-normalised)');
    assert.match(ai[0].text, /Second line/);
    assert.ok(ai[0].text.includes('\n'), 'newlines are rendered as line breaks');
    // The gated partial state above was seen; the history shows every distinct render.
    assert.ok(done.aiTextHistory.length >= 2, `AI bubble changed in several steps: ${JSON.stringify(done.aiTextHistory)}`);
    assert.equal(visible(done.aiTextHistory.at(-1)), visible(full));
    assert.equal(done.bubbles.filter((b) => b.kind === 'error').length, 0, 'no error shown');
    assertSettled(done);

    const frames = framesIn(done);
    assert.ok(frames.filter((f) => typeof f.text === 'string' && !isStop(f)).length >= 2, 'several text frames');
    assert.equal(frames.filter(isStop).length, 1, 'exactly one stop-key frame');
    assert.ok(isStop(frames.at(-1)), 'the stop key is the last frame');

    const req = mock.requests[0];
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/v1/chat/completions');
    assert.equal(req.headers.authorization, `Bearer ${API_KEY}`);
    assert.equal(req.body.model, 'e2e-model');
    assert.equal(req.body.stream, true);
    assert.deepEqual(req.body.messages, [{ role: 'user', content: 'Hello, proxy! ¿Qué tal? 🙂' }]);

    // Second message on the same socket.
    mock.enqueue({ events: ['Second ', 'answer ', '🎉'] });
    await chat.send('And again?');
    const second = await chat.waitForAiReplies(2);
    assert.deepEqual(second.messages.map((m) => m.role), ['user', 'ai', 'user', 'ai']);
    assert.equal(second.messages[3].text, 'Second answer 🎉');
    assert.equal(second.messages[1].text, full, 'first reply untouched');
    assert.equal(second.bubbles.filter((b) => b.kind === 'ai').length, 2);
    assertSettled(second);
    assert.equal(framesIn(second).filter(isStop).length, 2);
    assert.equal(second.sockets.length, 1, 'one socket for the whole chat');
  }));

  test('multi-turn: turn 3 sends the whole dialogue upstream (Deep Chat defaults)', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    const system = 'You are a terse test assistant. «Ünïcödé»';
    const proxy = await startProxy({ provider: openaiProvider(mock), global: ['--system-prompt', system] });
    const chat = await openChat(proxy);
    const turns = [
      ['What is 2+2?', ['It is ', '4.']],
      ['And times 3? "quoted"', ['That makes ', '12 🙂\nnext line']],
      ['Thanks!', ['You are ', 'welcome.']],
    ];
    for (const [i, [question, answer]] of turns.entries()) {
      mock.enqueue({ events: answer });
      await chat.send(question);
      await chat.waitForAiReplies(i + 1);
    }
    const snap = await chat.snapshot();
    assert.deepEqual(snap.messages.map((m) => m.text), turns.flatMap(([q, a]) => [q, a.join('')]));
    assert.equal(mock.requests.length, 3);
    assert.deepEqual(mock.requests[2].body.messages, [
      { role: 'system', content: system },
      { role: 'user', content: turns[0][0] },
      { role: 'assistant', content: turns[0][1].join('') },
      { role: 'user', content: turns[1][0] },
      { role: 'assistant', content: turns[1][1].join('') },
      { role: 'user', content: turns[2][0] },
    ]);
    // Fact: with default requestBodyLimits Deep Chat sends only the newest message per frame.
    const out = framesOut(snap);
    assert.deepEqual(out, turns.map(([q]) => ({ messages: [{ role: 'user', text: q }] })));
  }));
});

describe('upstream failures', () => {
  // Shared second half: a fresh message after the failure renders as its own reply.
  async function recoversWithFreshMessage(chat, mock, prior) {
    mock.enqueue({ events: ['Fresh ', 'reply ', 'after failure.'] });
    await chat.send('Try again please');
    const snap = await chat.waitFor(
      (s, n) => s.messages.filter((m) => m.role === 'ai').length >= n
        && s.messages.at(-1).role === 'ai' && s.messages.at(-1).text === 'Fresh reply after failure.'
        && !s.bubbles.some((b) => b.streaming) && s,
      prior.messages.filter((m) => m.role === 'ai').length + 1,
      { what: 'fresh reply after the failure' },
    );
    const lastAi = snap.bubbles.filter((b) => b.kind === 'ai').at(-1);
    assert.equal(visible(lastAi.text), 'Fresh reply after failure.', 'fresh reply is its own bubble');
    // Everything shown before is unchanged (nothing glued onto the broken message).
    assert.deepEqual(snap.messages.slice(0, prior.messages.length), prior.messages);
    assert.deepEqual(snap.bubbles.slice(0, prior.bubbles.length), prior.bubbles);
    assert.equal(snap.bubbles.at(-1).kind, 'ai', 'the fresh reply is the last bubble');
    assertSettled(snap);
    return snap;
  }

  test('HTTP 500 with a JSON error body shows an error, then recovers', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    const proxy = await startProxy({ provider: openaiProvider(mock) });
    const chat = await openChat(proxy);
    // Every attempt fails the same way (the proxy may retry a 5xx before giving up).
    mock.enqueue({ status: 500, json: { error: { message: 'The model is on fire 🔥', type: 'server_error' } }, times: 10 });
    await chat.send('Hello?');
    await chat.waitForErrors(1);
    const failed = await chat.waitForStopFrames(1, { what: 'the stop-key frame after the error' });
    const err = failed.bubbles.find((b) => b.kind === 'error');
    t.diagnostic(`error shown: ${JSON.stringify(err.text)} after ${mock.requests.length} upstream attempt(s)`);
    assert.match(err.text, /on fire/, `error text carries the upstream's message: ${JSON.stringify(err.text)}`);
    mock.clearQueue();
    assert.equal(failed.bubbles.filter((b) => b.kind === 'ai').length, 0, 'no AI text');
    assertSettled(failed);
    const frames = framesIn(failed);
    assert.equal(frames.filter((f) => typeof f.error === 'string').length, 1, 'one error frame');
    assert.ok(isStop(frames.at(-1)), 'error is followed by the stop key');
    await recoversWithFreshMessage(chat, mock, failed);
  }));

  test('an in-stream error event after some text shows an error, then recovers', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    const proxy = await startProxy({ provider: openaiProvider(mock) });
    const chat = await openChat(proxy);
    mock.enqueue({
      events: ['Partial ', 'answer ', { error: { message: 'Rate limit reached mid-stream', type: 'rate_limit' } }],
      done: false,
    });
    await chat.send('Tell me something long');
    await chat.waitForErrors(1);
    const failed = await chat.waitForStopFrames(1, { what: 'the stop-key frame after the error' });
    const err = failed.bubbles.find((b) => b.kind === 'error');
    t.diagnostic(`error shown: ${JSON.stringify(err.text)}; partial text kept: ${JSON.stringify(failed.messages.at(-1))}`);
    assert.match(err.text, /Rate limit reached mid-stream/, `error text: ${JSON.stringify(err.text)}`);
    assertSettled(failed);
    const frames = framesIn(failed);
    assert.deepEqual(frames.filter((f) => f.error !== undefined).length, 1, 'one error frame');
    assert.ok(isStop(frames.at(-1)), 'error is followed by the stop key');
    await recoversWithFreshMessage(chat, mock, failed);
  }));

  test('the upstream dropping the connection mid-stream shows an error, then recovers', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    const proxy = await startProxy({ provider: openaiProvider(mock) });
    const chat = await openChat(proxy);
    const g = mock.gate();
    mock.enqueue({ events: ['Some text ', 'before the ', { wait: g }, { drop: true }] });
    await chat.send('Go');
    // The text is on screen before the connection breaks.
    await chat.waitFor((s) => s.bubbles.some((b) => b.kind === 'ai' && b.streaming && b.text.includes('before the')) && s,
      null, { what: 'partial text before the drop' });
    g.open();
    await chat.waitForErrors(1);
    const failed = await chat.waitForStopFrames(1, { what: 'the stop-key frame after the error' });
    t.diagnostic(`error shown: ${JSON.stringify(failed.bubbles.find((b) => b.kind === 'error').text)}; frames: ${failed.sockets.at(-1).received.map((f) => f.data).join(' ')}`);
    assert.equal(failed.messages.at(-1).text, 'Some text before the ', 'the partial reply stays as it was');
    assertSettled(failed);
    const frames = framesIn(failed);
    assert.equal(frames.filter((f) => f.error !== undefined).length, 1, 'one error frame');
    assert.ok(isStop(frames.at(-1)), 'error is followed by the stop key');
    await recoversWithFreshMessage(chat, mock, failed);
  }));
});

describe('cancellation', () => {
  test('closing the page mid-stream closes the upstream request promptly', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    const proxy = await startProxy({ provider: openaiProvider(mock) });
    const chat = await openChat(proxy);
    const never = mock.gate();
    mock.enqueue({ events: ['Thinking ', 'very ', { wait: never }, 'never sent'], hang: true });
    await chat.send('Write me a novel');
    await chat.waitFor(
      (s) => s.bubbles.some((b) => b.kind === 'ai' && b.streaming && b.text.includes('very')) && s,
      null,
      { what: 'streaming started' },
    );
    assert.equal(mock.requests[0].clientClosed, false);
    const closedAt = Date.now();
    await chat.page.close();
    await mock.until((r) => r[0].clientClosed, T.cancel, 'the proxy to close the upstream connection');
    const ms = mock.requests[0].clientClosedAt - closedAt;
    t.diagnostic(`upstream connection closed ${ms} ms after page.close()`);
    assert.ok(ms < T.cancel);

    // The proxy keeps serving other pages.
    mock.enqueue({ events: ['Still ', 'alive.'] });
    const chat2 = await openChat(proxy);
    await chat2.send('Are you there?');
    const snap = await chat2.waitForAiReplies(1);
    assert.equal(snap.messages[1].text, 'Still alive.');
    assert.deepEqual(mock.requests[1].body.messages, [{ role: 'user', content: 'Are you there?' }], 'new page, new dialogue');
  }));
});

describe('connection options', () => {
  test('--path and WebSocket subprotocols (connect.websocket: [..]) work end to end', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    const proxy = await startProxy({ provider: openaiProvider(mock), global: ['--path', '/ws/deep-chat'] });
    const handshakes = [];
    const chat = await openChat(proxy, {
      connect: { url: proxy.wsUrl('/ws/deep-chat'), websocket: ['deep-chat.v1', 'json'], stream: { simulation: STOP_KEY } },
    }, {
      async beforeMount(page) {
        // The handshake's request headers are only visible through CDP.
        const cdp = await page.context().newCDPSession(page);
        cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => handshakes.push(e.request.headers));
        await cdp.send('Network.enable');
      },
    });
    // Deep Chat passes the array to `new WebSocket(url, protocols)`: one header, comma-separated.
    const header = Object.entries(handshakes[0] || {}).find(([k]) => k.toLowerCase() === 'sec-websocket-protocol')?.[1];
    assert.equal(header, 'deep-chat.v1, json');
    let snap = await chat.snapshot();
    assert.ok(['deep-chat.v1', 'json'].includes(snap.sockets[0].protocol),
      `the proxy selected one of the offered subprotocols (Chromium refuses the socket otherwise): ${JSON.stringify(snap.sockets[0].protocol)}`);
    mock.enqueue({ events: ['Custom ', 'path ', 'works.'] });
    await chat.send('Hi');
    snap = await chat.waitForAiReplies(1);
    assert.equal(snap.messages[1].text, 'Custom path works.');
  }));

  test('--ping-interval 1: Chromium answers the pings sent during a reply 3 s long', async (t) => suite.run(t, async ({ mock, startProxy, openChat }) => {
    // Pings ride along with a reply's frames; one unanswered for an interval ends the reply.
    // A browser answers them itself, so a long reply must arrive whole and without an error.
    const proxy = await startProxy({ provider: openaiProvider(mock), global: ['--ping-interval', '1'] });
    const parts = Array.from({ length: 40 }, (_, i) => `w${i} `);
    mock.enqueue({ events: parts.flatMap((p) => [p, { delay: 75 }]) });
    const chat = await openChat(proxy);
    await chat.send('Take your time');
    const snap = await chat.waitForAiReplies(1, { timeout: 20_000 });
    assert.equal(snap.messages[1].text, parts.join(''), 'the whole reply, nothing cut');
    assert.equal(snap.bubbles.filter((b) => b.kind === 'error').length, 0, 'no error shown');
    assert.equal(mock.requests.length, 1);
  }));
});
