/**
 * The test browser itself: headless Chromium starts, follows redirects, keeps each context's
 * cookies to itself and writes screenshots where it says.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { launchBrowser, type TestBrowser } from '../../support/browser.js';

let browser: TestBrowser;
let server: http.Server;
let base: string;

before(async () => {
  server = http.createServer((req, res) => {
    if (req.url === '/pin') {
      res.writeHead(302, { location: '/', 'set-cookie': 'pinned=yes; HttpOnly; SameSite=Lax; Path=/' });
      res.end();
      return;
    }
    res.setHeader('content-type', 'text/html');
    res.end(`<html><body><h1>cookie: ${req.headers.cookie ?? 'none'}</h1></body></html>`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  server?.close();
});

test('two contexts keep their own cookies, and screenshots land where the browser says', async (t) => {
  t.diagnostic(`screenshots: ${browser.screenshotDir}`);
  const pinned = await browser.newUser('pinned');
  const other = await browser.newUser('other');

  assert.equal(await pinned.goto(`${base}/pin`), 200);
  assert.match(await pinned.text(), /cookie: pinned=yes/);
  assert.equal(await pinned.goto(`${base}/next`), 200);
  assert.match(await pinned.text(), /cookie: pinned=yes/);
  const [cookie] = await pinned.cookies();
  assert.equal(cookie?.httpOnly, true);
  assert.equal(cookie?.sameSite, 'Lax');

  assert.equal(await other.goto(`${base}/next`), 200);
  assert.match(await other.text(), /cookie: none/);

  const shot = await pinned.screenshot('after-pin');
  assert.ok(shot.startsWith(browser.screenshotDir));
  assert.deepEqual([...readFileSync(shot).subarray(1, 4)], [...Buffer.from('PNG')]);
});
