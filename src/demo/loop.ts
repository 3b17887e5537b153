/**
 * The demo's dev loop: `devbox up api --sync server.js:/app/server.js` in the foreground, an edit
 * of the api's source on this machine, and the in-cluster storefront's next request answered by
 * the edited code; Ctrl-C (here SIGINT) then ends the session.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DevboxError } from '../util/errors.js';
import { shopManifests } from './shop.js';

export interface LoopDemo {
  cli: string;
  env: NodeJS.ProcessEnv;
  namespace: string;
  image: string;
  /** The storefront's newest log line that satisfies `match`, waiting up to `timeoutMs`. */
  storefrontSays: (match: (line: string) => boolean, timeoutMs: number) => Promise<string>;
  say: (text: string) => void;
}

const EDITED = 'local container, edited';

export async function showDevLoop(demo: LoopDemo): Promise<void> {
  const code = (await shopManifests(demo.image)).find((m) => m.metadata.name === 'shop-code') as unknown as {
    data: Record<string, string>;
  };
  const source = code.data['server.js'] ?? '';
  const project = await mkdtemp(join(tmpdir(), 'devbox-demo-'));
  const args = [
    'up',
    'api',
    '-n',
    demo.namespace,
    '--sync',
    'server.js:/app/server.js',
    '--on-change',
    'restart',
  ];
  let up: ChildProcess | undefined;
  let exited: Promise<number | null> = Promise.resolve(null);
  try {
    await writeFile(join(project, 'server.js'), source);
    demo.say(`The dev loop: the api's source is ${join(project, 'server.js')}.`);
    process.stdout.write(`\n$ devbox ${args.join(' ')}\n`);
    up = spawn(process.execPath, [demo.cli, ...args], {
      cwd: project,
      env: { ...process.env, ...demo.env },
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    // Its progress is shown as it comes, and read to know when the loop follows the files.
    let progress = '';
    const loopRuns = new Promise<void>((resolve) =>
      up!.stderr!.on('data', (chunk: Buffer) => {
        process.stderr.write(chunk);
        progress += chunk.toString();
        if (/sync: first copy/.test(progress)) resolve();
      }),
    );
    exited = new Promise<number | null>((resolve) => up!.once('exit', (c) => resolve(c)));
    const failed = exited.then((c) => {
      throw new DevboxError('INTERNAL', `devbox up --sync exited early (exit ${c})`);
    });
    await Promise.race([loopRuns, failed]);
    await Promise.race([
      demo.storefrontSays((l) => l.includes('"answeredBy":"local container"'), 120_000),
      failed,
    ]);

    await writeFile(join(project, 'server.js'), source.replace("'local container'", `'${EDITED}'`));
    const saved = Date.now();
    demo.say(`Edited server.js on this machine (its answer now says "${EDITED}").`);
    const edited = await Promise.race([
      demo.storefrontSays((l) => l.includes(`"answeredBy":"${EDITED}"`), 60_000),
      failed,
    ]);
    demo.say(
      `${((Date.now() - saved) / 1000).toFixed(1)} s after the save, the storefront's request is answered by the edited code:\n  ${edited}`,
    );
    up.kill('SIGINT');
    failed.catch(() => {});
    const status = await exited;
    if (status !== 130)
      throw new DevboxError('INTERNAL', `devbox up did not end cleanly on Ctrl-C (exit ${status})`);
  } finally {
    // On a failure, Ctrl-C ends the session as it would in a terminal, and we wait for its clean-up.
    if (up && up.exitCode === null) {
      up.kill('SIGINT');
      await exited;
    }
    await rm(project, { recursive: true, force: true });
  }
}
