// Tools (issue 20): the proxy runs the model's tool calls on an MCP server it started (the
// fixture server of tests/mcp, whose `slow` tool takes a moment) while Deep Chat shows a
// status; the answer then replaces the status in the same bubble, after the text the model
// wrote before its call. Seen in Chromium with Deep Chat 2.4.2: a frame with `overwrite: true`
// replaces the streaming message's text, so "Let me check.\n\nRunning slow…" becomes
// "Let me check.\n\nIt slept 1200 ms." and no bubble of the status is left.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { REPO_DIR, assertSettled, createSuite, openaiProvider, visible } from '../lib/harness.mjs';

const suite = createSuite();
before(suite.setup);
after(suite.teardown);

const FIXTURE = path.join(REPO_DIR, 'tests', 'mcp', 'fixture.mjs');
const MCP = ['--mcp', `fixture=node ${FIXTURE}`];
const BEFORE = 'Let me check.';
const ANSWER = ['It slept ', '1200 ms.'];
const FINAL = `${BEFORE}\n\n${ANSWER.join('')}`;
const aiBubbles = (s) => s.bubbles.filter((b) => b.kind === 'ai');
const shown = (s) => JSON.stringify(s.bubbles.map((b) => `${b.kind}/${b.role}: ${b.text}`));

function enqueueToolReply(mock) {
  mock.enqueue({
    events: [BEFORE, { toolCall: { name: 'slow', arguments: '{"ms":1200}' } }],
    finishReason: 'tool_calls',
  });
  mock.enqueue({ events: ANSWER });
}

async function statusThenAnswer(chat, mock) {
  const during = await chat.waitFor(
    (s) => s.bubbles.some((b) => b.kind === 'ai' && b.text.includes('Running slow…')) && s,
    null,
    { what: 'the tool status' },
  );
  assert.ok(
    aiBubbles(during).some((b) => b.text.includes(BEFORE) && b.text.includes('Running slow…')),
    `the status follows the text before the call, in one bubble: ${shown(during)}`,
  );
  // The predicate runs in the page: the expected text goes in as its argument.
  await chat.waitFor(
    (s, t) => s.messages.some((m) => m.role === 'ai' && m.text.replace(/\s+/g, ' ').trim() === t)
      && !s.bubbles.some((b) => b.streaming || b.kind === 'loading') && !s.busy && s,
    visible(FINAL),
    { what: 'the answer, settled' },
  );
  await new Promise((r) => setTimeout(r, 300));
  const snap = await chat.snapshot();
  assertSettled(snap);
  assert.deepEqual(aiBubbles(snap).map((b) => visible(b.text)), [visible(FINAL)], `the answer replaced the status: ${shown(snap)}`);
  assert.ok(!JSON.stringify(snap.bubbles).includes('1200}'), 'the arguments never reach the page');
  // The model got the tool's result in its second request.
  const second = mock.requests[1].body;
  const result = second.messages.find((m) => m.role === 'tool');
  assert.equal(result?.content, 'slept 1200 ms');
}

describe('tools from an MCP server with Deep Chat 2.4.2', () => {
  test('WebSocket: a status while the tool runs, then the answer in the same bubble', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy, openChat } = scope;
    const proxy = await startProxy({ provider: openaiProvider(mock), global: MCP });
    const chat = await openChat(proxy);
    enqueueToolReply(mock);
    await chat.send('How long does the slow tool sleep?');
    await statusThenAnswer(chat, mock);
  }));

  test('HTTP SSE: the same status and answer', async (t) => suite.run(t, async (scope) => {
    const { mock, startProxy, openChat } = scope;
    const proxy = await startProxy({ provider: openaiProvider(mock), global: MCP });
    const chat = await openChat(proxy, {
      connect: { url: proxy.httpUrl('/chat'), stream: true },
    }, { waitForSocket: false });
    enqueueToolReply(mock);
    await chat.send('How long does the slow tool sleep?');
    await statusThenAnswer(chat, mock);
  }));
});
