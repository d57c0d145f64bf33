// Opens the Deep Chat pages of deploy/ in headless Chromium and chats through them
// (run by deploy/check_live.py when Chromium and the browser suite's node_modules are there).
//
//   node deploy/check_pages.mjs NODE_MODULES NAME=URL...
//
// NODE_MODULES holds playwright-core and deep-chat (tests/e2e/node_modules after `npm ci`). The
// CDN script (unpkg.com/deep-chat@2.4.2) is answered from deep-chat's own bundle; every other
// request that would leave the machine is refused. For each page: wait for <deep-chat>, send a
// message, and expect the proxy's demo provider to answer it (its reply echoes the message; Deep
// Chat's built-in demo answer instead means the page's `connect` never took effect), no error.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, ...pages] = process.argv.slice(2);
const { chromium } = await import(pathToFileURL(path.join(modules, 'playwright-core', 'index.mjs')).href);
const bundle = fs.readFileSync(path.join(modules, 'deep-chat', 'dist', 'deepChat.bundle.js'));
const chromiumBin = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const SENT = 'hello from check_pages';

const browser = await chromium.launch({
  executablePath: chromiumBin,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
let failed = 0;
try {
  for (const spec of pages) {
    const [name, url] = spec.split(/=(.*)/s);
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    await page.route('**/*', (route) => {
      const target = new URL(route.request().url());
      if (target.hostname === 'unpkg.com' && target.pathname.startsWith('/deep-chat@2.4.2/')) {
        return route.fulfill({ body: bundle, contentType: 'text/javascript' });
      }
      if (!['localhost', '127.0.0.1', '[::1]'].includes(target.hostname)) return route.abort('blockedbyclient');
      return route.continue();
    });
    try {
      await page.goto(url, { timeout: 15_000 });
      await page.waitForFunction(() => document.querySelector('deep-chat')?.submitUserMessage, null, { timeout: 15_000 });
      // The page sets its properties once the element is defined; give it that turn.
      await page.waitForFunction(() => document.querySelector('deep-chat').connect, null, { timeout: 5_000 })
        .catch(() => {
          throw new Error("<deep-chat> never got the page's `connect` (set before the element was "
            + 'defined? the page must wait for customElements.whenDefined)');
        });
      await page.waitForTimeout(300);
      await page.evaluate((text) => document.querySelector('deep-chat').submitUserMessage({ text }), SENT);
      // The demo provider echoes the message; the reply is done when its text stops changing.
      const reply = await page.waitForFunction((sent) => {
        const ai = document.querySelector('deep-chat').getMessages().filter((m) => m.role === 'ai' && m.text);
        const text = ai.length ? ai[ai.length - 1].text : '';
        const now = Date.now();
        if (text !== window.__lastReply) { window.__lastReply = text; window.__since = now; return false; }
        return (text.includes(sent) || /demo response/i.test(text)) && now - window.__since > 600 && text;
      }, SENT, { timeout: 20_000, polling: 100 }).then((h) => h.jsonValue());
      if (/this is a demo response/i.test(reply)) {
        problems.push("Deep Chat answered by itself: the page's connect settings never took effect");
      }
      const errors = await page.evaluate(() => document.querySelector('deep-chat').getMessages().filter((m) => m.error));
      if (errors.length) problems.push(`error bubble: ${JSON.stringify(errors)}`);
      if (problems.length) {
        failed += 1;
        console.log(`FAIL: ${name}: ${problems.join('; ')}`);
      } else {
        console.log(`ok: ${name}: Deep Chat 2.4.2 in Chromium chats through it (${reply.length} characters of reply)`);
      }
    } catch (err) {
      failed += 1;
      console.log(`FAIL: ${name}: ${[err.message.split('\n')[0], ...problems].join('; ')}`);
    } finally {
      await page.close();
    }
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
