// A scripted OpenAI-compatible upstream (Chat Completions, SSE) for the e2e suite.
//
// Each POST .../chat/completions takes the next queued *plan* (FIFO). A plan is:
//   { status?: number, headers?: object, json?: any, body?: string,   // plain (error) response
//     events?: Event[], done?: boolean (default true), hang?: boolean,  // streaming response
//     times?: number }  // answer this many requests with the plan (default 1), e.g. so that
//                       // the proxy's own retries of a 429/5xx see the same failure
// where an Event is one of
//   'text'                  -> data: {"choices":[{"delta":{"content":"text"}}]}
//   { content: 'text' }     -> same
//   { reasoning: 'text' }   -> data: {"choices":[{"delta":{"content":null,"reasoning_content":"text"}}]}
//                              (a reasoning model's thinking, as DeepSeek, vLLM and llama.cpp send it)
//   { content, splitInside: 'é' } -> same, but the SSE event is written in two TCP writes
//                              split after the first byte of that (multi-byte) character
//   { raw: 'data: ...' }    -> written verbatim (a trailing blank line is added if missing)
//   { error: {...} }        -> data: {"error":{...}}
//   { delay: ms }           -> pause
//   { wait: gate }          -> pause until gate.open() (see mock.gate())
//   { drop: true }          -> destroy the TCP socket mid-stream (no [DONE], no chunked terminator)
//   { toolCall: { name, arguments } } -> the model calls a tool: a `delta.tool_calls` chunk
//                              with the call's id and name, then its arguments in two pieces
//                              (give the plan `finishReason: 'tool_calls'`, as OpenAI ends it)
// A streaming plan starts with an OpenAI-style role chunk and ends with a finish_reason chunk
// and `data: [DONE]` unless `done: false`; `hang: true` keeps the response open until the
// client goes away.
//
// Gemini mode: a POST to .../v1beta/models/{model}:streamGenerateContent?alt=sse (the proxy's
// `gemini` provider with --base-url mock.origin) takes the next plan the same way, and its events
// are written as Gemini `GenerateContentResponse` SSE events:
//   'text' or { content: 'text' } -> data: {"candidates":[{"content":{"parts":[{"text":"text"}],"role":"model"},"index":0}]}
//   { inlineData: { mimeType, data } } -> the same with an inline file part (an image the model made)
//   { reasoning: 'text' } -> a thought-summary part: {"text":"text","thought":true}
//   { raw }, { delay }, { wait }, { drop } as above
// There is no role chunk and no [DONE]: the last event carries `"finishReason": plan.finishReason`
// (default "STOP") and usage metadata, unless `done: false`.
//
// Every request is recorded: parsed JSON body, headers, which API it spoke (`api`: 'openai' or
// 'gemini'), and whether/when the *client* closed the connection before the response was
// complete (i.e. the proxy cancelled it).
import http from 'node:http';
import { once } from 'node:events';

export function gate() {
  let open;
  const promise = new Promise((resolve) => { open = resolve; });
  return { promise, open: () => open() };
}

function chunkLine(id, delta, finishReason = null) {
  return `data: ${JSON.stringify({
    id,
    object: 'chat.completion.chunk',
    created: 1700000000,
    model: 'e2e-mock',
    choices: [{ index: 0, delta, finish_reason: finishReason }],
  })}\n\n`;
}

// One Gemini SSE event (the real API ends its events with CRLF CRLF).
function geminiLine(parts, { candidate = {}, response = {} } = {}) {
  return `data: ${JSON.stringify({
    candidates: [{ content: { parts, role: 'model' }, index: 0, ...candidate }],
    ...response,
    modelVersion: 'e2e-mock',
  })}\r\n\r\n`;
}

// Which API a request is for, by its path (null: no such route).
function apiOf(req) {
  const { pathname } = new URL(req.url, 'http://x');
  if (req.method !== 'POST') return null;
  if (pathname.endsWith('/chat/completions')) return 'openai';
  if (/^\/v1beta\/models\/[^/]+:streamGenerateContent$/.test(pathname)) return 'gemini';
  return null;
}

export async function startMockUpstream({ log = () => {} } = {}) {
  const queue = [];
  const requests = [];
  const waiters = new Set();
  const sockets = new Set();

  const notify = () => {
    for (const w of [...waiters]) {
      if (w.check()) { waiters.delete(w); w.resolve(); }
    }
  };

  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    let body = null;
    try { body = JSON.parse(rawBody); } catch { /* recorded raw */ }
    const rec = {
      index: requests.length,
      method: req.method,
      url: req.url,
      headers: req.headers,
      rawBody,
      body,
      receivedAt: Date.now(),
      clientClosed: false,
      clientClosedAt: null,
      droppedByMock: false,
      completed: false,
      sentEvents: 0,
    };
    requests.push(rec);
    log(`mock upstream: ${req.method} ${req.url} #${rec.index}`);

    res.on('close', () => {
      if (!res.writableEnded && !rec.droppedByMock) {
        rec.clientClosed = true;
        rec.clientClosedAt = Date.now();
        log(`mock upstream: client closed request #${rec.index} after ${rec.clientClosedAt - rec.receivedAt} ms`);
      }
      notify();
    });
    notify();

    rec.api = apiOf(req);
    if (!rec.api) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `mock upstream: no route ${req.method} ${req.url}` } }));
      return;
    }
    const plan = queue[0];
    if (plan) {
      plan.served = (plan.served || 0) + 1;
      if (plan.served >= (plan.times ?? 1)) queue.shift();
    }
    if (!plan) {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'mock upstream: no response queued for this request' } }));
      return;
    }
    rec.plan = plan.name || null;

    if (!plan.events) {
      const status = plan.status ?? 200;
      const payload = plan.json !== undefined ? JSON.stringify(plan.json) : (plan.body ?? '');
      res.writeHead(status, { 'content-type': plan.json !== undefined ? 'application/json' : 'text/plain', ...plan.headers });
      res.end(payload, () => { rec.completed = true; notify(); });
      return;
    }

    res.writeHead(plan.status ?? 200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      ...plan.headers,
    });
    res.flushHeaders();
    const id = `chatcmpl-e2e-${rec.index}`;
    const alive = () => !res.destroyed && !rec.clientClosed;
    const write = (s) => { if (alive()) res.write(s); };
    const gemini = rec.api === 'gemini';
    const textLine = (text) => (gemini ? geminiLine([{ text }]) : chunkLine(id, { content: text }));
    if (!gemini) write(chunkLine(id, { role: 'assistant', content: '' }));
    for (const ev of plan.events) {
      if (!alive()) return;
      if (gemini && ev.inlineData !== undefined) {
        write(geminiLine([{ inlineData: ev.inlineData }]));
      } else if (ev.reasoning !== undefined) {
        write(gemini
          ? geminiLine([{ text: ev.reasoning, thought: true }])
          : chunkLine(id, { content: null, reasoning_content: ev.reasoning }));
      } else if (typeof ev === 'string' || ev.content !== undefined) {
        const line = textLine(typeof ev === 'string' ? ev : ev.content);
        if (ev.splitInside === undefined) {
          write(line);
        } else {
          const bytes = Buffer.from(line, 'utf8');
          const at = Buffer.byteLength(line.slice(0, line.indexOf(ev.splitInside)), 'utf8') + 1;
          write(bytes.subarray(0, at));
          // Let the first half leave as its own segment before the rest follows.
          await new Promise((r) => setTimeout(r, 15));
          write(bytes.subarray(at));
        }
      } else if (ev.raw !== undefined) {
        write(ev.raw.endsWith('\n\n') ? ev.raw : `${ev.raw.replace(/\n*$/, '')}\n\n`);
      } else if (ev.error !== undefined) {
        write(`data: ${JSON.stringify({ error: ev.error })}\n\n`);
      } else if (ev.toolCall !== undefined && !gemini) {
        const index = rec.toolCalls = (rec.toolCalls ?? -1) + 1;
        const { name, arguments: args } = ev.toolCall;
        const half = Math.floor(args.length / 2);
        write(chunkLine(id, { tool_calls: [{ index, id: `call_e2e_${index}`, type: 'function', function: { name, arguments: args.slice(0, half) } }] }));
        write(chunkLine(id, { tool_calls: [{ index, function: { arguments: args.slice(half) } }] }));
      } else if (ev.delay !== undefined) {
        await new Promise((r) => setTimeout(r, ev.delay));
      } else if (ev.wait !== undefined) {
        await Promise.race([ev.wait.promise, once(res, 'close')]);
      } else if (ev.drop) {
        rec.droppedByMock = true;
        log(`mock upstream: dropping request #${rec.index} mid-stream`);
        req.socket.destroy();
        return;
      } else {
        throw new Error(`mock upstream: unknown event ${JSON.stringify(ev)}`);
      }
      rec.sentEvents += 1;
      notify();
    }
    if (plan.hang) return; // until the client leaves
    if (plan.done !== false && gemini) {
      const n = plan.events.length;
      write(geminiLine([{ text: '' }], {
        candidate: { finishReason: plan.finishReason ?? 'STOP' },
        response: { usageMetadata: { promptTokenCount: 3, candidatesTokenCount: n, totalTokenCount: 3 + n } },
      }));
    } else if (plan.done !== false) {
      write(chunkLine(id, {}, plan.finishReason ?? 'stop'));
      write('data: [DONE]\n\n');
    }
    if (alive()) res.end(() => { rec.completed = true; notify(); });
  });
  server.on('connection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();

  return {
    url: `http://127.0.0.1:${port}/v1`, // the openai provider's --base-url
    origin: `http://127.0.0.1:${port}`, // the gemini provider's --base-url
    port,
    requests,
    // Queue the plan(s) for the next request(s).
    enqueue(...plans) { queue.push(...plans); },
    pending() { return queue.length; },
    clearQueue() { queue.length = 0; },
    reset() { queue.length = 0; requests.length = 0; },
    gate,
    // Resolves once predicate(requests) holds (re-checked on every mock state change).
    until(predicate, timeoutMs, what) {
      if (predicate(requests)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const w = { check: () => predicate(requests), resolve: () => { clearTimeout(timer); resolve(); } };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`mock upstream: timed out after ${timeoutMs} ms waiting for ${what}`));
        }, timeoutMs);
        waiters.add(w);
      });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
