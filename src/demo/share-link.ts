/**
 * The demo's last step: a share link to a personal session of `api`, checked the way a browser
 * uses it (the link's redirect sets a cookie; requests with the cookie reach the local container,
 * requests without it reach the pod).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ShareResult } from '../session/share.js';
import { DevboxError } from '../util/errors.js';

/** Who answered a request to the entry: the api's JSON `where`. */
async function answeredBy(url: string, cookie?: string): Promise<string> {
  const response = await fetch(url, {
    headers: cookie ? { cookie } : {},
    signal: AbortSignal.timeout(10_000),
  });
  return ((await response.json()) as { where?: string }).where ?? `status ${response.status}`;
}

/** Opens the link as a browser does: the redirect's cookie, then the page it leads to. */
export async function followLink(link: string): Promise<{ cookie: string; where: string }> {
  const response = await fetch(link, { redirect: 'manual', signal: AbortSignal.timeout(10_000) });
  const cookie = response.headers.get('set-cookie')?.split(';')[0];
  const location = response.headers.get('location');
  if (response.status !== 302 || !cookie || !location) {
    throw new DevboxError('INTERNAL', `the link answered ${response.status} without the session's cookie`);
  }
  const page = new URL(location, link).href;
  return { cookie, where: await answeredBy(page, cookie) };
}

/** Runs the port-forward `share` printed until its local port answers. */
export async function startPortForward(kubectl: string, args: string[], url: string, env: NodeJS.ProcessEnv) {
  const child: ChildProcess = spawn(kubectl, args, { env: { ...process.env, ...env }, stdio: 'ignore' });
  for (let i = 0; i < 100 && child.exitCode === null; i++) {
    if (
      await answeredBy(url).then(
        () => true,
        () => false,
      )
    )
      return child;
    await sleep(300);
  }
  child.kill();
  throw new DevboxError('TUNNEL', `kubectl ${args.join(' ')} did not serve ${url}`);
}

/** Checks the link end to end; returns what the browser with the link and one without saw. */
export async function checkShare(result: ShareResult): Promise<{ withLink: string; without: string }> {
  const { where } = await followLink(result.link);
  return { withLink: where, without: await answeredBy(result.entry.url) };
}
