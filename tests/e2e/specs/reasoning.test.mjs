// Reasoning models (issue 17): the mock upstream streams `delta.reasoning_content` before the
// answer, as DeepSeek, vLLM and llama.cpp do, and the proxy shows it as `--reasoning` says.
//
// What Deep Chat does with it, as observed in Chromium: frames `{"text": …, "role": "thinking"}`
// build a message of their own under the role `thinking` (2.4.2 draws it as an AI bubble with
// the role's class; both versions list it in getMessages()), closed by a stop key of the same
// role; the answer that follows is a second bubble. Over SSE one response is one message unless
// a frame names a new role, so the answer's first event carries `role: "ai"` (2.4.2 only; 1.4.11
// keeps one bubble over SSE). `--reasoning status` shows "Thinking…" that the answer's first
// frame (`overwrite: true`) replaces.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  DEEP_CHAT_1_BUNDLE, DEEP_CHAT_1_CDN_URL, assertSettled, createSuite, openaiProvider, visible,
} from '../lib/harness.mjs';
import { documentFor } from '../lib/readme.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

const THINKING = ['The user asks for 27 × 453. ', '27 × 400 = 10800, 27 × 53 = 1431 → 12231.'];
const ANSWER = ['27 × 453 = ', '12,231 ✅'];
const aiBubbles = (s) => s.bubbles.filter((b) => b.kind === 'ai');
const shown = (s) => JSON.stringify(s.bubbles.map((b) => `${b.kind}/${b.role}${b.streaming ? ' (streaming)' : ''}: ${b.text}`));

// The reply: thinking, a pause the test opens, then the answer.
function thinkingPlan(mock) {
  const gate = mock.gate();
  return {
    gate,
    plan: { events: [...THINKING.map((reasoning) => ({ reasoning })), { wait: gate }, ...ANSWER] },
  };
}

// Waits until the answer is a complete AI message and nothing streams or loads.
function waitForAnswer(chat, text) {
  return chat.waitFor(
    (s, t) => s.messages.some((m) => m.role === 'ai' && m.text === t)
      && !s.bubbles.some((b) => b.streaming || b.kind === 'loading') && !s.busy && s,
    text,
    { what: `the answer ${JSON.stringify(text)}, settled` },
  );
}

async function settleThenSnapshot(chat) {
  // A stray frame (a late stop key, a third bubble) would land within this grace period.
  await new Promise((r) => setTimeout(r, 300));
  return chat.snapshot();
}

describe('reasoning models with Deep Chat 2.4.2', () => {
  test('--reasoning show over WebSocket: the thinking bubble first, then the answer exact; memory keeps only the answer', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy, openChat } = scope;
    const proxy = await startProxy({ provider: openaiProvider(mock), global: ['--reasoning', 'show'] });
    const chat = await openChat(proxy);
    const { gate, plan } = thinkingPlan(mock);
    mock.enqueue(plan);
    await chat.send('27 × 453?');

    // The thinking shows on its own while the answer has not started.
    const mid = await chat.waitFor(
      (s, t) => s.bubbles.some((b) => b.role === 'thinking' && b.text.includes(t)) && s,
      THINKING[1].trim(),
      { what: 'the thinking bubble' },
    );
    assert.equal(aiBubbles(mid).length, 1, `only the thinking so far: ${shown(mid)}`);
    gate.open();

    await waitForAnswer(chat, ANSWER.join(''));
    const snap = await settleThenSnapshot(chat);
    assertSettled(snap);
    assert.deepEqual(aiBubbles(snap).map((b) => [b.role, visible(b.text)]), [
      ['thinking', visible(THINKING.join(''))],
      ['ai', visible(ANSWER.join(''))],
    ], `two bubbles, thinking first: ${shown(snap)}`);
    assert.deepEqual(snap.messages.map((m) => m.role), ['user', 'thinking', 'ai']);
    assert.equal(snap.messages.at(-1).text, ANSWER.join(''), 'the answer exact');

    // The next request upstream carries the answer, never the thinking.
    mock.enqueue({ events: ['You are welcome.'] });
    await chat.send('Thanks!');
    await waitForAnswer(chat, 'You are welcome.');
    const upstream = mock.requests.at(-1).body.messages;
    assert.deepEqual(upstream.map((m) => m.role), ['user', 'assistant', 'user']);
    assert.equal(upstream[1].content, ANSWER.join(''));
    assert.ok(!JSON.stringify(upstream).includes('10800'), JSON.stringify(upstream));
  }));

  test('--reasoning hide (the default): one bubble, the answer exact', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy, openChat } = scope;
    const proxy = await startProxy({ provider: openaiProvider(mock) });
    const chat = await openChat(proxy);
    const { gate, plan } = thinkingPlan(mock);
    mock.enqueue(plan);
    await chat.send('27 × 453?');
    // While the model thinks, nothing of it reaches the page.
    await mock.until((reqs) => reqs.length === 1 && reqs[0].sentEvents >= THINKING.length, 5000, 'the thinking sent');
    await new Promise((r) => setTimeout(r, 200));
    const mid = await chat.snapshot();
    assert.ok(!mid.bubbles.some((b) => b.text.includes('10800')), `no thinking shown: ${shown(mid)}`);
    gate.open();
    await waitForAnswer(chat, ANSWER.join(''));
    const snap = await settleThenSnapshot(chat);
    assertSettled(snap);
    assert.deepEqual(aiBubbles(snap).map((b) => visible(b.text)), [visible(ANSWER.join(''))], shown(snap));
    assert.deepEqual(snap.messages.map((m) => m.role), ['user', 'ai']);
  }));

  test('--reasoning status: "Thinking…" while the model thinks, replaced by the answer in the same bubble', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy, openChat } = scope;
    const proxy = await startProxy({ provider: openaiProvider(mock), global: ['--reasoning', 'status'] });
    const chat = await openChat(proxy);
    const { gate, plan } = thinkingPlan(mock);
    mock.enqueue(plan);
    await chat.send('27 × 453?');
    await chat.waitFor((s) => s.bubbles.some((b) => b.kind === 'ai' && b.text === 'Thinking…') && s, null, { what: 'the status' });
    gate.open();
    await waitForAnswer(chat, ANSWER.join(''));
    const snap = await settleThenSnapshot(chat);
    assertSettled(snap);
    assert.deepEqual(aiBubbles(snap).map((b) => visible(b.text)), [visible(ANSWER.join(''))], shown(snap));
  }));

  test('--reasoning show over HTTP SSE: two bubbles, thinking first, the answer exact', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy, openChat } = scope;
    const proxy = await startProxy({ provider: openaiProvider(mock), global: ['--reasoning', 'show'] });
    const chat = await openChat(proxy, {
      connect: { url: proxy.httpUrl('/chat'), stream: true },
      requestBodyLimits: { maxMessages: 0 },
    }, { waitForSocket: false });
    const { gate, plan } = thinkingPlan(mock);
    mock.enqueue(plan);
    await chat.send('27 × 453?');
    gate.open();
    await waitForAnswer(chat, ANSWER.join(''));
    const snap = await settleThenSnapshot(chat);
    assertSettled(snap);
    assert.deepEqual(aiBubbles(snap).map((b) => [b.role, visible(b.text)]), [
      ['thinking', visible(THINKING.join(''))],
      ['ai', visible(ANSWER.join(''))],
    ], shown(snap));

    // Deep Chat sends the thinking message back with the dialogue; the upstream never sees it.
    mock.enqueue({ events: ['You are welcome.'] });
    await chat.send('Thanks!');
    await waitForAnswer(chat, 'You are welcome.');
    const upstream = mock.requests.at(-1).body.messages;
    assert.deepEqual(upstream.map((m) => m.role), ['user', 'assistant', 'user'], JSON.stringify(upstream));
  }));
});

describe('reasoning models with the other WebSocket reply modes (Deep Chat 2.4.2, no stream)', () => {
  const CASES = {
    'whole, --reasoning show: the thinking as one message, then the answer': {
      mode: 'whole', reasoning: 'show', bubbles: [['thinking', THINKING.join('')], ['ai', ANSWER.join('')]],
    },
    'overwrite, --reasoning status: the answer replaces "Thinking…"': {
      mode: 'overwrite', reasoning: 'status', bubbles: [['ai', ANSWER.join('')]],
    },
  };
  for (const [name, c] of Object.entries(CASES)) {
    test(name, async (t) => suite.run(t, async (scope) => {
      const { mock, startProxy, openChat } = scope;
      const proxy = await startProxy({ provider: openaiProvider(mock), global: ['--reasoning', c.reasoning] });
      const chat = await openChat(proxy, { connect: { url: proxy.wsUrl(`/chat?reply=${c.mode}`), websocket: true } });
      const { gate, plan } = thinkingPlan(mock);
      mock.enqueue(plan);
      await chat.send('27 × 453?');
      gate.open();
      await waitForAnswer(chat, ANSWER.join(''));
      const snap = await settleThenSnapshot(chat);
      assertSettled(snap);
      assert.deepEqual(aiBubbles(snap).map((b) => [b.role, visible(b.text)]), c.bubbles.map(([role, text]) => [role, visible(text)]), shown(snap));
    }));
  }
});

describe('reasoning models with Deep Chat 1.4.11', () => {
  test('--reasoning show over WebSocket: two messages, thinking first, the answer exact', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy } = scope;
    const proxy = await startProxy({ provider: openaiProvider(mock), stopKey: null, global: ['--reasoning', 'show'] });
    const request = JSON.stringify({ url: proxy.wsUrl('/chat'), websocket: true });
    const body = `<script type="module" src="${DEEP_CHAT_1_CDN_URL}"></script>\n`
      + `<deep-chat request='${request}' stream='{"simulation": "stop-key"}'></deep-chat>`;
    const url = scope.staticServer.addPage('/reasoning/deep-chat-1.html', documentFor('Deep Chat 1.x, --reasoning show', body));
    const chat = await scope.openPage(url, { routes: { [DEEP_CHAT_1_CDN_URL]: DEEP_CHAT_1_BUNDLE } });
    assert.equal(await chat.waitForOwnChat(), 'open');
    const { gate, plan } = thinkingPlan(mock);
    mock.enqueue(plan);
    await chat.send('27 × 453?');
    gate.open();
    const snap = await chat.waitFor(
      (s, t) => s.onMessage.some((m) => m.event === 'new-message' && m.message?.role === 'ai' && m.message.text === t) && s,
      ANSWER.join(''),
      { what: 'Deep Chat 1.x to complete the answer' },
    );
    assert.deepEqual(snap.messages.map((m) => [m.role, m.text]), [
      ['user', '27 × 453?'],
      ['thinking', THINKING.join('')],
      ['ai', ANSWER.join('')],
    ]);
    const settled = await settleThenSnapshot(chat);
    assert.deepEqual(aiBubbles(settled).map((b) => visible(b.text)), [visible(THINKING.join('')), visible(ANSWER.join(''))], shown(settled));
  }));
});
