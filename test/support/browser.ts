/**
 * A real browser for tests: Debian's headless Chromium driven by playwright-core. Each
 * {@link BrowserUser} is a context of its own (cookies, cache), as two people on two machines
 * would be. Screenshots go to one directory per browser, which the test prints.
 *
 * `npm run cluster:up` installs Chromium; `DEVBOX_CHROMIUM` points at another binary.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

export const chromiumPath = process.env.DEVBOX_CHROMIUM || '/usr/bin/chromium';

const NAVIGATION_TIMEOUT_MS = 30_000;

export interface TestBrowser {
  /** Where {@link BrowserUser.screenshot} writes its files. */
  readonly screenshotDir: string;
  /** A new, empty context: no cookies, nothing cached. `name` prefixes its screenshots. */
  newUser(name: string): Promise<BrowserUser>;
  close(): Promise<void>;
}

export interface BrowserUser {
  readonly name: string;
  /** Navigates like a typed address; resolves with the final response's status after redirects. */
  goto(url: string): Promise<number>;
  /** The page's visible text. */
  text(): Promise<string>;
  /** The address the page shows now (after redirects). */
  url(): string;
  /** Writes a full-page PNG named `<user>-<label>.png` and returns its path. */
  screenshot(label: string): Promise<string>;
  /** The context's cookies (for asserting their attributes). */
  cookies(): ReturnType<BrowserContext['cookies']>;
}

/** Starts headless Chromium; a missing binary fails with what to install. */
export async function launchBrowser(): Promise<TestBrowser> {
  if (!existsSync(chromiumPath)) {
    throw new Error(
      `No Chromium at ${chromiumPath}. Install it with \`apt-get install chromium\` (npm run cluster:up does), ` +
        'or set DEVBOX_CHROMIUM to a Chromium binary',
    );
  }
  // No proxy: every test address is on this machine or in the cluster's ranges.
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-proxy-server'],
  });
  const screenshotDir = mkdtempSync(join(tmpdir(), 'devbox-screenshots-'));
  const contexts: BrowserContext[] = [];
  return {
    screenshotDir,
    async newUser(name) {
      const context = await browser.newContext();
      contexts.push(context);
      context.setDefaultNavigationTimeout(NAVIGATION_TIMEOUT_MS);
      const page = await context.newPage();
      return browserUser(name, context, page, screenshotDir);
    },
    async close() {
      for (const context of contexts) await context.close().catch(() => {});
      await browser.close().catch(() => {});
    },
  };
}

function browserUser(name: string, context: BrowserContext, page: Page, dir: string): BrowserUser {
  return {
    name,
    async goto(url) {
      const response = await page.goto(url, { waitUntil: 'load' });
      if (!response) throw new Error(`${name}: no response from ${url}`);
      return response.status();
    },
    // biome-ignore lint/performance/useDomNodeTextContent: the text as a person sees it, not the DOM's
    text: () => page.locator('body').innerText(),
    url: () => page.url(),
    async screenshot(label) {
      const path = join(dir, `${name}-${label}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    cookies: () => context.cookies(),
  };
}
