// The README's pre-2.0 form ("Deep Chat 1.4.11 – 1.x": `request` and a top-level `stream`
// attribute) run as written against Deep Chat 1.4.11 (npm alias `deep-chat-1`), loaded from its
// CDN URL routed to the local bundle. Only the proxy address is rewritten; the proxy runs with
// its default stop key `stop-key`, which the snippet configures.
//
// What 1.4.11 does on the WebSocket, as observed here: it sends
// `{"messages":[{"role":"user","text":"…"}]}` per message (the same shape as 2.x), reads
// `{"text": …}` frames, ends the reply on the frame equal to `stream.simulation`, and shows
// `{"error": …}` frames as error bubbles. Unlike 2.x it fires "new-message" (not "message") once
// a reply is complete, and it leaves the finished bubble's `streamed-message` class in place, so
// "done" here is the completion event, not the class.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  DEEP_CHAT_1_BUNDLE, DEEP_CHAT_1_CDN_URL, createSuite, openaiProvider, visible,
  withoutRequestId,
} from '../lib/harness.mjs';
import { deepChatSnippets, documentFor, withProxyAddress } from '../lib/readme.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

const { v1 } = deepChatSnippets();

async function openV1Page(scope, proxy) {
  // The snippet is the element only: the page loads Deep Chat 1.4.11 first.
  const body = `<script type="module" src="${DEEP_CHAT_1_CDN_URL}"></script>\n${withProxyAddress(v1.code, proxy.port)}`;
  const url = scope.staticServer.addPage('/readme/deep-chat-1.html', documentFor('README snippet: Deep Chat 1.x', body));
  const chat = await scope.openPage(url, { routes: { [DEEP_CHAT_1_CDN_URL]: DEEP_CHAT_1_BUNDLE } });
  const state = await chat.waitForOwnChat();
  if (state !== 'open') assert.fail(`Deep Chat 1.4.11 configured by the README's 1.x snippet never opened its WebSocket: ${JSON.stringify(await chat.diagnose())}`);
  assert.deepEqual(chat.routed, [DEEP_CHAT_1_CDN_URL]);
  assert.equal(await chat.page.evaluate(() => customElements.get('deep-chat').prototype.hasOwnProperty('connect')), false,
    'this is the 1.x component (no `connect` property)');
  return chat;
}

// Waits until Deep Chat 1.x reports the reply `text` as a complete AI message (or shows a new
// error bubble beyond the `errors` already shown, or the stop key as text).
async function waitForCompletedReply(chat, text, stopKey, { errors = 0 } = {}) {
  const snap = await chat.waitFor(
    (s, [t, key, n]) => (s.onMessage.some((m) => m.event === 'new-message' && m.message?.role === 'ai' && m.message.text === t)
      || s.bubbles.filter((b) => b.kind === 'error').length > n || s.bubbles.some((b) => b.text.includes(key))) && s,
    [text, stopKey, errors],
    { what: `Deep Chat 1.x to complete the reply ${JSON.stringify(text)}` },
  );
  assert.ok(!snap.bubbles.some((b) => b.text.includes(stopKey)), `the stop key is shown as text: ${JSON.stringify(snap.bubbles.map((b) => b.text))}`);
  assert.equal(snap.bubbles.filter((b) => b.kind === 'error').length, errors, `no new error: ${JSON.stringify(snap.bubbles.map((b) => b.text))}`);
  return snap;
}

describe('Deep Chat 1.4.11 with the README\'s 1.x snippet', () => {
  test('streamed replies render exactly, one bubble each, and an upstream error shows the proxy\'s text', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy } = scope;
    const proxy = await startProxy({ provider: openaiProvider(mock), stopKey: null, global: ['--retries', '0'] });
    const chat = await openV1Page(scope, proxy);

    const parts = ['Hallo ', 'from the ', 'proxy — «1.x» '];
    const rest = ['✅\nsecond line'];
    const full = parts.join('') + rest.join('');
    const g = mock.gate();
    mock.enqueue({ events: [...parts, { wait: g }, ...rest] });
    await chat.send('Hi, old Deep Chat 👴');
    await chat.waitFor(
      (s, expected) => s.bubbles.some((b) => b.kind === 'ai' && b.text.replace(/\s+/g, ' ').trim() === expected) && s,
      visible(parts.join('')),
      { what: 'the first part of the reply on screen while the rest is held back' },
    );
    g.open();
    const first = await waitForCompletedReply(chat, full, proxy.stopKey);
    assert.deepEqual(first.messages, [{ role: 'user', text: 'Hi, old Deep Chat 👴' }, { role: 'ai', text: full }]);
    const ai = first.bubbles.filter((b) => b.kind === 'ai');
    assert.equal(ai.length, 1);
    assert.equal(visible(ai[0].text), visible(full), 'the reply is shown exactly');

    // What 1.4.11 sends and receives on the socket.
    const sock = first.sockets.at(-1);
    t.diagnostic(`1.4.11 sent: ${sock.sent.map((f) => f.data).join(' ')}; received: ${sock.received.map((f) => f.data).join(' ')}`);
    assert.deepEqual(sock.sent.map((f) => JSON.parse(f.data)), [{ messages: [{ role: 'user', text: 'Hi, old Deep Chat 👴' }] }]);
    const frames = sock.received.map((f) => JSON.parse(f.data));
    assert.deepEqual(frames.at(-1), { text: proxy.stopKey });
    assert.equal(frames.slice(0, -1).map((f) => f.text).join(''), full);
    assert.deepEqual(mock.requests[0].body.messages, [{ role: 'user', content: 'Hi, old Deep Chat 👴' }]);

    // A second message gets its own bubble: the stop key ended the first reply.
    mock.enqueue({ events: ['Second ', 'reply.'] });
    await chat.send('Again?');
    const second = await waitForCompletedReply(chat, 'Second reply.', proxy.stopKey);
    assert.deepEqual(second.messages.map((m) => m.text), ['Hi, old Deep Chat 👴', full, 'Again?', 'Second reply.']);
    assert.deepEqual(second.bubbles.filter((b) => b.kind === 'ai').map((b) => visible(b.text)), [visible(full), 'Second reply.']);
    assert.deepEqual(mock.requests[1].body.messages.map((m) => m.role), ['user', 'assistant', 'user'], 'the proxy remembered the dialogue');

    // errorMessages {displayServiceErrorMessages: true} works in 1.x as well.
    mock.enqueue({ status: 500, json: { error: { message: 'The old model is tired', type: 'server_error' } } });
    await chat.send('Fail, please');
    const failed = await chat.waitFor((s) => s.bubbles.some((b) => b.kind === 'error') && s, null, { what: 'an error bubble' });
    assert.equal(withoutRequestId(failed.bubbles.find((b) => b.kind === 'error').text), `openai upstream at 127.0.0.1:${mock.port} failed (HTTP 500): The old model is tired`);
    await chat.waitForStopFrames(3, { key: proxy.stopKey });

    mock.enqueue({ events: ['Recovered.'] });
    await chat.send('And now?');
    const recovered = await waitForCompletedReply(chat, 'Recovered.', proxy.stopKey, { errors: 1 });
    assert.equal(recovered.messages.at(-1).text, 'Recovered.');
    assert.equal(recovered.bubbles.at(-1).kind, 'ai');
    assert.equal(visible(recovered.bubbles.at(-1).text), 'Recovered.');
  }));
});
