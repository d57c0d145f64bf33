// Conversations that outlive the page: the README's "Conversations" snippet as written (the id
// kept in localStorage on the connect URL, loadHistory calling GET /chat/history), Deep Chat
// 2.4.2 chatting two turns, the page reloading, the old messages shown again, and the third
// question reaching the model with the first two turns. The proxy keeps conversations in a
// SQLite file in a temporary directory.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  DEEP_CHAT_BUNDLE, DEEP_CHAT_CDN_URL, T, createSuite, freePort, openaiProvider, visible, withTimeout,
} from '../lib/harness.mjs';
import { deepChatSnippets, documentFor, withProxyAddress, wrapJs } from '../lib/readme.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

const { property, conversation } = deepChatSnippets();

// Waits until the page shows `n` messages (user and AI bubbles), nothing streaming or loading.
function shown(chat, n, what) {
  return chat.waitFor(
    (s, count) => {
      const talk = s.bubbles.filter((b) => b.kind === 'user' || b.kind === 'ai');
      return talk.length >= count && !s.bubbles.some((b) => b.streaming || b.kind === 'loading')
        && !['loading', 'stop'].includes(s.submit) && s;
    },
    n,
    { what },
  );
}

const talkOf = (snap) => snap.bubbles
  .filter((b) => b.kind === 'user' || b.kind === 'ai')
  .map((b) => [b.kind, visible(b.text)]);

describe('conversations across a page reload (README "Conversations")', () => {
  test('two turns, a reload, the old messages through loadHistory, the third question with the first two turns', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy } = scope;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'deepchat-e2e-store-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const proxy = await startProxy({
      provider: openaiProvider(mock),
      stopKey: null,
      global: ['--retries', '0', '--store', `sqlite:${path.join(dir, 'conversations.db')}`],
    });
    const html = documentFor('README snippet: conversation', withProxyAddress(wrapJs(property, conversation), proxy.port));
    const url = scope.staticServer.addPage('/readme/conversation.html', html);
    const chat = await scope.openPage(url, { routes: { [DEEP_CHAT_CDN_URL]: DEEP_CHAT_BUNDLE } });
    assert.equal(await chat.waitForOwnChat(), 'open', 'the snippet connected its WebSocket');

    const turns = [['I am Ada, I like tea.', 'Hello Ada!'], ['What do I like?', 'You like tea.']];
    for (const [i, [question, answer]] of turns.entries()) {
      mock.enqueue({ events: [answer.slice(0, 5), answer.slice(5)] });
      await chat.send(question);
      await shown(chat, 2 * (i + 1), `reply ${i + 1}`);
    }
    const expected = turns.flatMap(([q, a]) => [['user', q], ['ai', a]]);
    const first = await chat.snapshot();
    assert.deepEqual(talkOf(first), expected);
    // A conversation not started yet (404) is an empty history to Deep Chat, not a failure.
    assert.deepEqual(first.bubbles.filter((b) => b.kind === 'error').map((b) => b.text), [], 'no error shown on the first visit');
    const socketUrl = (await chat.snapshot()).sockets.at(-1).url;
    assert.match(socketUrl, /\?conversation=[0-9a-f]{36}$/, 'the connect URL names the conversation');

    // A reload: a new page, a new socket; Deep Chat shows the old messages through loadHistory.
    await chat.page.reload();
    assert.equal(await chat.waitForOwnChat(), 'open', 'connected again after the reload');
    const restored = await shown(chat, 4, 'the first two turns, loaded through loadHistory');
    assert.deepEqual(talkOf(restored), expected, 'the saved dialogue is shown as it was');
    assert.equal(restored.sockets.at(-1).url, socketUrl, 'the same conversation id after the reload');
    assert.equal(restored.bubbles.filter((b) => b.kind === 'error').length, 0, 'no error shown');

    mock.enqueue({ events: ['Ada, ', 'tea.'] });
    await chat.send('Remind me: name and drink?');
    const done = await shown(chat, 6, 'the third reply');
    assert.deepEqual(talkOf(done).slice(-2), [['user', 'Remind me: name and drink?'], ['ai', 'Ada, tea.']]);
    assert.deepEqual(mock.requests[2].body.messages, [
      { role: 'user', content: 'I am Ada, I like tea.' },
      { role: 'assistant', content: 'Hello Ada!' },
      { role: 'user', content: 'What do I like?' },
      { role: 'assistant', content: 'You like tea.' },
      { role: 'user', content: 'Remind me: name and drink?' },
    ], 'the third question reached the model with the first two turns');
  }));
});

// A real redis-server on a free loopback port, in memory only; resolves once it accepts TCP.
async function startRedis() {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' });
  const failed = new Promise((_, reject) => child.once('error', (e) => reject(new Error(`redis-server is needed (apt-get install redis-server): ${e.message}`))));
  const up = (async () => {
    for (;;) {
      const ok = await new Promise((r) => {
        const s = net.connect({ host: '127.0.0.1', port });
        s.once('connect', () => { s.destroy(); r(true); });
        s.once('error', () => { s.destroy(); r(false); });
      });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await withTimeout(Promise.race([up, failed]), T.ready, 'redis-server accepting connections');
  return { url: `redis://127.0.0.1:${port}`, kill: () => child.kill('SIGKILL') };
}

describe('a conversation store that goes down', () => {
  test('the reply is still shown whole, with one note that the turn was not saved', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy, openChat } = scope;
    const redis = await startRedis();
    t.after(() => redis.kill());
    const proxy = await startProxy({ provider: openaiProvider(mock), global: ['--retries', '0', '--store', redis.url] });
    const chat = await openChat(proxy, {
      connect: { url: proxy.wsUrl('/chat?conversation=e2e-outage-conversation-01'), websocket: true, stream: { simulation: proxy.stopKey } },
    });
    mock.enqueue({ events: ['Saved ', 'fine.'] });
    await chat.send('Turn one');
    await shown(chat, 2, 'reply 1');
    redis.kill();
    mock.enqueue({ events: ['Still ', 'answered ', 'whole.'] });
    await chat.send('Turn two');
    const done = await chat.waitFor(
      (s) => s.bubbles.filter((b) => b.kind === 'ai').length === 2 && /not saved/.test(s.bubbles.at(-1).text)
        && !s.bubbles.some((b) => b.streaming) && s,
      null,
      { what: 'reply 2 with the note', timeout: 20_000 },
    );
    const text = visible(done.bubbles.filter((b) => b.kind === 'ai').at(-1).text);
    assert.ok(text.startsWith('Still answered whole.'), text);
    assert.equal(text.match(/This turn was not saved/g)?.length, 1, `the note, once: ${text}`);
    assert.equal(done.bubbles.filter((b) => b.kind === 'error').length, 0, 'no error bubble');
    assert.deepEqual(talkOf(done).slice(0, 3), [['user', 'Turn one'], ['ai', 'Saved fine.'], ['user', 'Turn two']]);
  }));
});
