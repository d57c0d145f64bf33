// The README's Deep Chat 2.x frontend snippets, run as written: each becomes a page (served from
// the harness's 127.0.0.1 server) whose only changes are the proxy address (127.0.0.1:8080 ->
// the test proxy) and the CDN bundle, routed to the local deep-chat 2.4.2. A snippet that stops
// working makes its test fail. The proxy runs with its defaults (stop key `stop-key`, as the
// snippets configure) plus --retries 0, so an upstream error shows at once.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  DEEP_CHAT_BUNDLE, DEEP_CHAT_CDN_URL, assertSettled, createSuite, openaiProvider, visible,
  withoutRequestId,
} from '../lib/harness.mjs';
import {
  README_PATH, bundleLoadedLast, bundleScriptTag, bundleScriptUrl, deepChatSnippets, documentFor, readmeText,
  withProxyAddress, wrapJs,
} from '../lib/readme.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

const snippets = deepChatSnippets();
const { property } = snippets;

// The README's example of the proxy's error text (`openai upstream at api.openai.com is rate
// limiting requests (HTTP 429): Rate limit reached …`), up to its ellipsis, with the upstream
// host the test uses in place of OpenAI's.
function readmeErrorExample(host) {
  const m = /`(openai upstream at api\.openai\.com is rate limiting requests \(HTTP 429\): [^`…]*)…`/.exec(readmeText());
  assert.ok(m, `${README_PATH} no longer shows an example of the proxy's 429 error text`);
  return m[1].replace('api.openai.com', host);
}

// How each snippet's page is built from the README text.
const PAGES = {
  property: {
    what: 'Deep Chat 2.x, properties after customElements.whenDefined (WebSocket)',
    body: () => property.code,
    websocket: true,
    showsServiceErrors: true,
  },
  attributes: {
    what: 'Deep Chat 2.x as attributes (WebSocket)',
    // The snippet is the element only; the page loads Deep Chat with the 2.x snippet's <script>.
    body: () => `${bundleScriptTag(property)}\n${snippets.attributes.code}`,
    websocket: true,
    showsServiceErrors: true,
  },
  httpSse: {
    what: 'plain HTTP, streamed (SSE)',
    body: () => wrapJs(property, snippets.httpSse),
    sendsWholeDialogue: true,
  },
  httpJson: {
    what: 'plain HTTP, one JSON answer',
    body: () => wrapJs(property, snippets.httpJson),
    json: true,
    sendsWholeDialogue: true,
  },
};

// Opens the page built from `body` and waits until Deep Chat is ready for a message.
async function openSnippetPage(scope, proxy, name, body, { websocket }) {
  assert.equal(bundleScriptUrl(property), DEEP_CHAT_CDN_URL,
    'the README loads another Deep Chat than the suite pins (harness DEEP_CHAT_CDN_URL, package.json): update them together');
  const html = documentFor(`README snippet: ${name}`, withProxyAddress(body, proxy.port));
  const url = scope.staticServer.addPage(`/readme/${name}.html`, html);
  const chat = await scope.openPage(url, { routes: { [DEEP_CHAT_CDN_URL]: DEEP_CHAT_BUNDLE } });
  const state = await chat.waitForOwnChat();
  const why = async () => `the page built from README.md never configured Deep Chat: ${JSON.stringify(await chat.diagnose())}\npage:\n${html}`;
  if (websocket) {
    if (state !== 'open') assert.fail(await why());
  } else {
    // No socket over HTTP: ready once `connect` reached the element and Deep Chat stopped
    // showing its "Connect to any API…" placeholder (what it renders when unconfigured).
    await chat.page.waitForFunction(
      (expected) => window.e2e.connectConfig()?.url === expected
        && !window.e2e.bubbles().some((b) => b.text.includes('Connect to any API')),
      proxy.httpUrl('/chat'),
      { timeout: 5000, polling: 20 },
    ).catch(async () => assert.fail(await why()));
  }
  assert.deepEqual(chat.routed, [bundleScriptUrl(property)], 'the page loaded Deep Chat from the README\'s script URL');
  return chat;
}

// Waits for `n` AI messages, the newest finished and the submit button back (or for the stop
// key to show up as text: the page's stream.simulation then differs from the proxy's stop key).
async function waitForReplies(chat, n, stopKey) {
  const snap = await chat.waitFor(
    (s, [count, key]) => ((s.messages.filter((m) => m.role === 'ai').length >= count
      && s.messages.at(-1).role === 'ai' && !s.bubbles.some((b) => b.streaming)
      && !['loading', 'stop'].includes(s.submit)) || s.bubbles.some((b) => b.text.includes(key))) && s,
    [n, stopKey],
    { what: `${n} finished AI replies` },
  );
  assert.ok(!snap.bubbles.some((b) => b.text.includes(stopKey)),
    `the proxy's stop key ${JSON.stringify(stopKey)} is shown as text, so the snippet's stream.simulation does not end the reply: ${JSON.stringify(snap.bubbles.map((b) => b.text))}`);
  return snap;
}

// One message and its reply; streamed replies are also seen mid-stream.
async function roundTrip(chat, mock, proxy, { question, parts, rest, streamed, websocket }) {
  const full = parts.join('') + rest.join('');
  const before = await chat.snapshot();
  const g = mock.gate();
  mock.enqueue({ events: [...parts, { wait: g }, ...rest] });
  await chat.send(question);
  if (streamed) {
    await chat.waitFor(
      (s, expected) => s.bubbles.some((b) => b.kind === 'ai' && b.streaming && b.text.replace(/\s+/g, ' ').trim() === expected) && s,
      visible(parts.join('')),
      { what: 'the first part of the reply on screen while the rest is held back' },
    );
  }
  g.open();
  const done = await waitForReplies(chat, before.messages.filter((m) => m.role === 'ai').length + 1, proxy.stopKey);
  assert.deepEqual(done.messages.slice(-2), [{ role: 'user', text: question }, { role: 'ai', text: full }]);
  const bubble = done.bubbles.filter((b) => b.kind === 'ai').at(-1);
  assert.equal(visible(bubble.text), visible(full), 'the reply is shown exactly');
  assert.equal(done.bubbles.filter((b) => b.kind === 'error').length, 0, 'no error shown');
  assertSettled(done);
  if (websocket) {
    const frames = done.sockets.at(-1).received.map((f) => JSON.parse(f.data));
    assert.deepEqual(frames.at(-1), { text: proxy.stopKey }, 'the reply ended with the stop key');
  } else {
    assert.equal(done.sockets.length, 0, 'no WebSocket involved');
  }
  return done;
}

describe('README.md Deep Chat snippets, as written', () => {
  test('README.md has the expected Deep Chat snippets', () => {
    // deepChatSnippets() threw already if a snippet is missing, doubled or of an unknown kind.
    assert.deepEqual(Object.keys(snippets).sort(), ['attributes', 'auth', 'conversation', 'httpJson', 'httpSse', 'property', 'routes', 'v1', 'wsOverwrite', 'wsWhole']);
    assert.match(property.code, /await customElements\.whenDefined\("deep-chat"\)/);
    assert.match(snippets.httpSse.intro, /Server-Sent Events/);
    assert.match(snippets.httpJson.intro, /one JSON answer/);
  });

  for (const [name, spec] of Object.entries(PAGES)) {
    test(`${name}: ${spec.what} — a message gets its reply`, async (t) => suite.run(t, async (scope) => {
      const { mock, startProxy } = scope;
      const proxy = await startProxy({ provider: openaiProvider(mock), stopKey: null, global: ['--retries', '0'] });
      const chat = await openSnippetPage(scope, proxy, name, spec.body(), spec);
      await roundTrip(chat, mock, proxy, {
        question: 'Hello from the README 👋',
        parts: ['Snippet ', 'reply — «exact» '],
        rest: ['& streamed ✅\nline two'],
        streamed: !spec.json,
        websocket: spec.websocket,
      });
      assert.deepEqual(mock.requests[0].body.messages, [{ role: 'user', content: 'Hello from the README 👋' }]);

      if (spec.sendsWholeDialogue) {
        // requestBodyLimits {maxMessages: 0}: turn 2 carries the dialogue over stateless HTTP.
        await roundTrip(chat, mock, proxy, {
          question: 'And turn two?', parts: ['Second '], rest: ['answer.'], streamed: !spec.json,
        });
        assert.deepEqual(mock.requests[1].body.messages, [
          { role: 'user', content: 'Hello from the README 👋' },
          { role: 'assistant', content: 'Snippet reply — «exact» & streamed ✅\nline two' },
          { role: 'user', content: 'And turn two?' },
        ]);
      }

      if (spec.showsServiceErrors) {
        // errorMessages {displayServiceErrorMessages: true}: the proxy's text, not Deep Chat's.
        mock.enqueue({ status: 429, json: { error: { message: 'Rate limit reached for e2e-model', type: 'rate_limit' } } });
        await chat.send('One more?');
        const failed = await chat.waitFor(
          (s) => s.bubbles.some((b) => b.kind === 'error') && !s.bubbles.some((b) => b.streaming) && s,
          null,
          { what: 'an error bubble' },
        );
        const shown = failed.bubbles.find((b) => b.kind === 'error').text;
        const host = `127.0.0.1:${mock.port}`;
        assert.ok(shown.startsWith(readmeErrorExample(host)), `the README's example error text is what a person sees: ${JSON.stringify(shown)}`);
        assert.equal(withoutRequestId(shown), `openai upstream at ${host} is rate limiting requests (HTTP 429): Rate limit reached for e2e-model`);
        assertSettled(await chat.waitForStopFrames(2, { key: proxy.stopKey }));
      }
    }));
  }

  // The other WebSocket setups (`?reply=whole`, `?reply=overwrite`): two turns, one AI bubble
  // each with the exact text, and no stop key on the wire.
  for (const name of ['wsWhole', 'wsOverwrite']) {
    test(`${name}: the README's ${name === 'wsWhole' ? 'whole-reply' : 'overwrite'} WebSocket snippet — two turns, one bubble each`, async (t) => suite.run(t, async (scope) => {
      const { mock, startProxy } = scope;
      const proxy = await startProxy({ provider: openaiProvider(mock), stopKey: null, global: ['--retries', '0'] });
      const chat = await openSnippetPage(scope, proxy, name, wrapJs(property, snippets[name]), { websocket: true });
      const turns = [['Hello from the README 👋', ['Snippet ', 'reply — «exact» ', '✅\nline two']], ['Turn two?', ['Second ', 'answer.']]];
      for (const [i, [question, parts]] of turns.entries()) {
        mock.enqueue({ events: parts });
        await chat.send(question);
        await chat.waitFor(
          (s, [n, text]) => s.messages.filter((m) => m.role === 'ai').length === n && s.messages.at(-1).text === text
            && !s.bubbles.some((b) => b.streaming || b.kind === 'loading') && s,
          [i + 1, parts.join('')],
          { what: `reply ${i + 1} complete` },
        );
      }
      await new Promise((r) => setTimeout(r, 300)); // a stray frame would land meanwhile
      const snap = await chat.snapshot();
      assert.deepEqual(snap.messages.map((m) => [m.role, m.text]), turns.flatMap(([q, parts]) => [['user', q], ['ai', parts.join('')]]));
      assert.deepEqual(snap.bubbles.filter((b) => b.kind === 'ai').map((b) => visible(b.text)), turns.map(([, parts]) => visible(parts.join(''))));
      const frames = snap.sockets.at(-1).received.map((f) => JSON.parse(f.data));
      assert.ok(!frames.some((f) => f.text === proxy.stopKey), 'no stop-key frame');
    }));
  }

  // The README's reason for `await customElements.whenDefined`: properties set before Deep Chat's
  // bundle has upgraded the element are lost. As written the bundle's <script> comes first, so
  // it runs first anyway; with it moved last, only the whenDefined line keeps the snippet
  // working. The attribute form claims not to care about the order at all.
  for (const name of ['property', 'attributes']) {
    test(`${name}: still connects when Deep Chat's bundle is the last script on the page`, async (t) => suite.run(t, async (scope) => {
      const { mock, startProxy } = scope;
      const proxy = await startProxy({ provider: openaiProvider(mock), stopKey: null, global: ['--retries', '0'] });
      const body = bundleLoadedLast(PAGES[name].body(), bundleScriptTag(property));
      assert.ok(body.trimEnd().endsWith(bundleScriptTag(property)));
      const chat = await openSnippetPage(scope, proxy, `${name}-bundle-last`, body, PAGES[name]);
      await roundTrip(chat, mock, proxy, {
        question: 'Late bundle?', parts: ['Still ', 'configured '], rest: ['and connected.'], streamed: true, websocket: true,
      });
    }));
  }
});
