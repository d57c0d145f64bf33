// Files out: the proxy's `gemini` provider against the mock upstream's Gemini mode. The model
// streams text, then an inline PNG part, then finishes; the proxy relays the image as a Deep
// Chat `{"files": [{"src": "data:image/png;base64,…", "type": "image"}]}` frame inside the reply.
//
// How Deep Chat 2.4.2 shows that (observed): a `files` frame during a stream is added as its own
// AI message right away, while the streamed text stays one message that the stop key (or the
// end of the SSE response) completes. So the person sees one AI turn drawn as one group of two
// bubbles: the text, then the picture; getMessages() lists them as two AI entries, and text
// streamed *after* the picture is appended to the text bubble above it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  API_KEY, assertSettled, createSuite, geminiProvider, visible,
} from '../lib/harness.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

// A 1×1 PNG (one opaque reddish pixel).
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const DATA_URL = `data:image/png;base64,${PNG}`;

// Waits until the reply's text message is complete (Deep Chat fired "message" for it), nothing
// streams, and the submit button is back.
function waitForCompleteTurn(chat, text) {
  return chat.waitFor(
    (s, t) => s.onMessage.some((m) => m.event === 'message' && m.message?.role === 'ai' && m.message.text === t)
      && !s.bubbles.some((b) => b.streaming) && !['loading', 'stop'].includes(s.submit) && s,
    text,
    { what: `the AI text ${JSON.stringify(text)} to complete` },
  );
}

const TRANSPORTS = {
  websocket: (scope, proxy) => scope.openChat(proxy),
  'HTTP SSE': (scope, proxy) => scope.openChat(proxy, {
    connect: { url: proxy.httpUrl('/chat'), stream: true },
    requestBodyLimits: { maxMessages: 0 }, // as the README says for HTTP
  }, { waitForSocket: false }),
};

describe('images a model returns (gemini)', () => {
  for (const [transport, open] of Object.entries(TRANSPORTS)) {
    test(`text, then an inline PNG, then STOP: the picture shows under the text in the same AI turn (${transport})`, async (t) => suite.run(t, async (scope) => {
      const { mock, startProxy } = scope;
      const proxy = await startProxy({ provider: geminiProvider(mock, 'm') });
      const chat = await open(scope, proxy);
      const g = mock.gate();
      mock.enqueue({ events: ['Here is ', 'a red dot: ', { wait: g }, { inlineData: { mimeType: 'image/png', data: PNG } }] });
      await chat.send('Draw me a dot');

      // The text streams first; the picture is not there yet.
      const mid = await chat.waitFor(
        (s) => s.bubbles.some((b) => b.kind === 'ai' && b.streaming && b.text.includes('a red dot:')) && s,
        null,
        { what: 'the text streaming before the image' },
      );
      assert.equal(mid.bubbles.filter((b) => b.images.length).length, 0, 'no picture yet');
      g.open();

      const done = await waitForCompleteTurn(chat, 'Here is a red dot: ');
      // What a person sees: the question, then one AI group: the text, then the picture.
      assert.deepEqual(done.bubbles.map((b) => [b.kind, b.role, b.group]), [
        ['user', 'user', 'single'],
        ['ai', 'ai', 'first'],
        ['image', 'ai', 'last'],
      ], `bubbles: ${JSON.stringify(done.bubbles.map((b) => [b.kind, b.role, b.group, b.text]))}`);
      assert.equal(visible(done.bubbles[1].text), 'Here is a red dot:');
      assert.deepEqual(done.bubbles[1].images, [], 'the text bubble has no picture of its own');
      const [img] = done.bubbles[2].images;
      assert.equal(done.bubbles[2].images.length, 1);
      assert.equal(img.src, DATA_URL, 'the <img> shows the data URL the model sent');
      assert.ok(img.loaded, 'the browser decoded the PNG');
      assert.deepEqual([img.width, img.height], [1, 1]);
      assert.equal(done.bubbles.filter((b) => b.kind === 'error').length, 0, 'no error');
      assertSettled(done);
      // Deep Chat's own record of the turn: the text and the file, both from the AI.
      assert.deepEqual(done.messages, [
        { role: 'user', text: 'Draw me a dot' },
        { role: 'ai', text: 'Here is a red dot: ' },
        { role: 'ai', files: [{ src: DATA_URL, type: 'image' }] },
      ]);
      if (transport === 'websocket') {
        const frames = done.sockets[0].received.map((f) => JSON.parse(f.data));
        assert.deepEqual(frames.slice(-2), [{ files: [{ src: DATA_URL, type: 'image' }] }, { text: proxy.stopKey }],
          'the image frame is part of the reply, before its stop key');
      }

      const req = mock.requests[0];
      assert.equal(req.api, 'gemini');
      assert.equal(req.url, '/v1beta/models/m:streamGenerateContent?alt=sse');
      assert.equal(req.headers['x-goog-api-key'], API_KEY);
      assert.deepEqual(req.body.contents, [{ role: 'user', parts: [{ text: 'Draw me a dot' }] }]);

      // The chat is ready for the next message, whose reply is a bubble of its own.
      mock.enqueue({ events: ['Glad you ', 'like it.'] });
      await chat.send('Thanks!');
      const next = await waitForCompleteTurn(chat, 'Glad you like it.');
      assert.deepEqual(next.bubbles.slice(3).map((b) => [b.kind, visible(b.text)]), [['user', 'Thanks!'], ['ai', 'Glad you like it.']]);
      assert.deepEqual(next.bubbles.slice(0, 3), done.bubbles, 'the first turn is unchanged');
      assertSettled(next);
      const turn2 = mock.requests[1].body.contents;
      t.diagnostic(`turn 2 sent upstream: ${JSON.stringify(turn2).replace(PNG, '<png>')}`);
      // The dialogue goes upstream (WebSocket: the proxy's memory; HTTP: the page sends it all).
      assert.deepEqual(turn2.map((c) => c.role), ['user', 'model', 'user']);
      assert.deepEqual(turn2[1].parts[0], { text: 'Here is a red dot: ' });
      assert.deepEqual(turn2.at(-1), { role: 'user', parts: [{ text: 'Thanks!' }] });
    }));
  }

  test('text after the picture joins the text bubble above it (Deep Chat 2.4.2 behaviour)', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy, openChat } = scope;
    const proxy = await startProxy({ provider: geminiProvider(mock, 'm') });
    const chat = await openChat(proxy);
    mock.enqueue({ events: ['Before ', { inlineData: { mimeType: 'image/png', data: PNG } }, 'after.'] });
    await chat.send('Text, picture, text');
    const done = await waitForCompleteTurn(chat, 'Before after.');
    assert.deepEqual(done.bubbles.map((b) => [b.kind, visible(b.text), b.images.map((i) => i.src)]), [
      ['user', 'Text, picture, text', []],
      ['ai', 'Before after.', []],
      ['image', '', [DATA_URL]],
    ]);
    // The proxy relayed the model's order exactly; the regrouping is Deep Chat's.
    const frames = done.sockets[0].received.map((f) => JSON.parse(f.data));
    assert.deepEqual(frames, [{ text: 'Before ' }, { files: [{ src: DATA_URL, type: 'image' }] }, { text: 'after.' }, { text: proxy.stopKey }]);
    assertSettled(done);
  }));
});
