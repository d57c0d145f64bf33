// The WebSocket reply modes (`?reply=whole`, `?reply=overwrite`, issue 22) with the real
// component: Deep Chat 2.4.2 configured as existing frontends are (no `stream`, `stream:
// {simulation: true}`, plain `websocket: true` for overwrite frames) and Deep Chat 1.4.11 with
// `request`. Each: two turns, exactly one AI bubble per reply with the exact text, and errors
// shown (an upstream error, and an error after text that keeps the text).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  DEEP_CHAT_1_BUNDLE, DEEP_CHAT_1_CDN_URL, createSuite, openaiProvider, visible,
} from '../lib/harness.mjs';
import { documentFor } from '../lib/readme.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

const SETUPS = {
  'whole, no stream': { mode: 'whole', connect: {} },
  'whole, stream: {simulation: true}': { mode: 'whole', connect: { stream: { simulation: true } } },
  'overwrite, no stream': { mode: 'overwrite', connect: {} },
};

const aiBubbles = (s) => s.bubbles.filter((b) => b.kind === 'ai');

// Sends `question`, lets the mock answer with `events`, and waits until `aiCount` AI bubbles
// and `errorCount` error bubbles are shown with nothing streaming or loading.
async function turn(chat, mock, question, events, aiCount, errorCount) {
  mock.enqueue({ events });
  await chat.send(question);
  const shown = async () => JSON.stringify((await chat.snapshot()).bubbles.map((b) => `${b.kind}${b.streaming ? ' (streaming)' : ''}: ${b.text}`));
  return chat.waitFor(
    (s, [ai, errs]) => s.bubbles.filter((b) => b.kind === 'ai').length >= ai
      && s.bubbles.filter((b) => b.kind === 'error').length >= errs
      && !s.bubbles.some((b) => b.streaming || b.kind === 'loading') && !s.busy && s,
    [aiCount, errorCount],
    { what: `${aiCount} AI bubbles and ${errorCount} error bubbles, settled` },
  ).catch(async (err) => { err.message += `\nshown: ${await shown()}`; throw err; });
}

async function settleThenSnapshot(chat) {
  // A stray frame (a stop key, a second bubble) would land within this grace period.
  await new Promise((r) => setTimeout(r, 300));
  return chat.snapshot();
}

describe('WebSocket reply modes with Deep Chat 2.4.2', () => {
  for (const [name, setup] of Object.entries(SETUPS)) {
    test(`${name}: two turns, one bubble each, errors shown`, async (t) => suite.run(t, async (scope) => {
      const { mock, startProxy, openChat } = scope;
      const proxy = await startProxy({ provider: openaiProvider(mock), global: ['--retries', '0'] });
      const chat = await openChat(proxy, {
        connect: { url: proxy.wsUrl(`/chat?reply=${setup.mode}`), websocket: true, ...setup.connect },
      });

      const first = 'Whole «exact» reply 👋 ';
      const firstRest = 'second part ✅\nline two';
      await turn(chat, mock, 'Hi?', [first, firstRest], 1, 0);
      await turn(chat, mock, 'Again?', ['Turn ', 'two.'], 2, 0);
      let snap = await settleThenSnapshot(chat);
      assert.deepEqual(aiBubbles(snap).map((b) => visible(b.text)), [visible(first + firstRest), 'Turn two.'],
        `exactly one AI bubble per reply: ${JSON.stringify(snap.bubbles.map((b) => `${b.kind}: ${b.text}`))}`);
      assert.equal(snap.bubbles.filter((b) => b.kind === 'error').length, 0);
      const frames = snap.sockets.at(-1).received.map((f) => JSON.parse(f.data));
      assert.ok(!frames.some((f) => f.text === proxy.stopKey), 'no stop-key frame');

      // An upstream error: one error bubble with the proxy's text.
      mock.enqueue({ status: 429, json: { error: { message: 'Rate limit reached for e2e-model', type: 'rate_limit' } } });
      await chat.send('Third?');
      snap = await chat.waitForErrors(1);
      assert.match(snap.bubbles.find((b) => b.kind === 'error').text, /HTTP 429/);

      // An error after text: overwrite keeps the text and adds the error; whole shows the error alone.
      const keeps = setup.mode === 'overwrite';
      await turn(chat, mock, 'Fourth?', ['Partial answer ', { error: { message: 'exploded mid-stream' } }], keeps ? 3 : 2, 2);
      snap = await settleThenSnapshot(chat);
      assert.equal(aiBubbles(snap).length, keeps ? 3 : 2, JSON.stringify(snap.bubbles.map((b) => `${b.kind}: ${b.text}`)));
      if (keeps) assert.equal(visible(aiBubbles(snap).at(-1).text), 'Partial answer');
      assert.match(snap.bubbles.filter((b) => b.kind === 'error').at(-1).text, /exploded mid-stream/);

      // And the socket still answers.
      await turn(chat, mock, 'Fifth?', ['Still here.'], keeps ? 4 : 3, 2);
      snap = await settleThenSnapshot(chat);
      assert.equal(aiBubbles(snap).length, keeps ? 4 : 3);
      assert.equal(visible(aiBubbles(snap).at(-1).text), 'Still here.');
    }));
  }
});

describe('WebSocket reply modes with Deep Chat 1.4.11', () => {
  for (const mode of ['whole', 'overwrite']) {
    test(`${mode}: two turns, one completed reply each, an error shown`, async (t) => suite.run(t, async (scope) => {
      const { mock, startProxy } = scope;
      const proxy = await startProxy({ provider: openaiProvider(mock), global: ['--retries', '0'] });
      const request = JSON.stringify({ url: proxy.wsUrl(`/chat?reply=${mode}`), websocket: true });
      const body = `<script type="module" src="${DEEP_CHAT_1_CDN_URL}"></script>\n`
        + `<deep-chat request='${request}' errorMessages='{"displayServiceErrorMessages": true}'></deep-chat>`;
      const url = scope.staticServer.addPage(`/modes/deep-chat-1-${mode}.html`, documentFor(`Deep Chat 1.x, reply=${mode}`, body));
      const chat = await scope.openPage(url, { routes: { [DEEP_CHAT_1_CDN_URL]: DEEP_CHAT_1_BUNDLE } });
      assert.equal(await chat.waitForOwnChat(), 'open');

      const done = (text, errors) => chat.waitFor(
        (s, [t, n]) => s.onMessage.some((m) => m.event === 'new-message' && m.message?.role === 'ai' && m.message.text === t)
          && s.bubbles.filter((b) => b.kind === 'error').length >= n && s,
        [text, errors],
        { what: `Deep Chat 1.x to complete ${JSON.stringify(text)}` },
      );
      mock.enqueue({ events: ['Hallo ', 'from 1.x ✅'] });
      await chat.send('Hi?');
      await done('Hallo from 1.x ✅', 0);
      mock.enqueue({ events: ['Second ', 'turn.'] });
      await chat.send('Again?');
      await done('Second turn.', 0);
      let snap = await settleThenSnapshot(chat);
      assert.deepEqual(aiBubbles(snap).map((b) => visible(b.text)), ['Hallo from 1.x ✅', 'Second turn.'],
        `one bubble per reply: ${JSON.stringify(snap.bubbles.map((b) => `${b.kind}: ${b.text}`))}`);

      mock.enqueue({ status: 429, json: { error: { message: 'Rate limit reached for e2e-model', type: 'rate_limit' } } });
      await chat.send('Third?');
      snap = await chat.waitForErrors(1);
      assert.match(snap.bubbles.find((b) => b.kind === 'error').text, /HTTP 429/);
    }));
  }
});
