/**
 * Entry point of the sidecar daemon (`node sidecar.mjs [config.json]`).
 * `node sidecar.mjs status` prints the running daemon's status document,
 * for `docker exec <sidecar> node sidecar.mjs status`. `node sidecar.mjs share
 * [config.json] [--ttl <seconds> | --revoke]` makes (or revokes) the session's share
 * links and prints the daemon's JSON answer.
 */

import { collectDeadBuffers } from '../util/dead-buffers.js';
import { DevboxError, errorText } from '../util/errors.js';
import { daemonLogger } from '../util/log.js';
import { CONFIG_FILE_ENV, loadSidecarConfig } from './config.js';
import { startSidecar } from './sidecar.js';

const SHUTDOWN_LIMIT_MS = 10_000;

async function main(argv: string[]): Promise<number> {
  const log = daemonLogger('sidecar');
  const command = argv[0] === 'status' || argv[0] === 'share' ? argv[0] : undefined;
  const file = (command ? argv[1] : argv[0]) ?? process.env[CONFIG_FILE_ENV];
  let config: ReturnType<typeof loadSidecarConfig>;
  try {
    config = loadSidecarConfig(file);
  } catch (err) {
    log.error(errorText(err), { hint: err instanceof DevboxError ? err.hint : undefined });
    return 2;
  }

  if (command) {
    const host = config.statusAddress === '0.0.0.0' ? '127.0.0.1' : config.statusAddress;
    const res = await fetch(`http://${host}:${config.statusPort}${statusRequest(command, argv.slice(2))}`, {
      method: command === 'status' ? 'GET' : argv[2] === '--revoke' ? 'DELETE' : 'POST',
    });
    process.stdout.write(await res.text());
    return res.ok ? 0 : 1;
  }

  collectDeadBuffers();
  const sidecar = await startSidecar(config, { log });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info('signal received', { signal });
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  const limit = setTimeout(() => {
    log.error('shutdown took too long, exiting');
    process.exit(1);
  }, SHUTDOWN_LIMIT_MS);
  limit.unref();
  await sidecar.close();
  return 0;
}

function statusRequest(command: 'status' | 'share', args: string[]): string {
  if (command === 'status') return '/status';
  return args[0] === '--ttl' && args[1] ? `/shares?ttl=${encodeURIComponent(args[1])}` : '/shares';
}

// A bug must not die silently: log it as a JSON line, then exit so the container's restart policy applies.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (err: unknown) => {
    daemonLogger('sidecar').error(`crash (${event}): ${errorText(err)}`, {
      stack: err instanceof Error ? err.stack : undefined,
    });
    process.exit(70);
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    daemonLogger('sidecar').error(`fatal: ${errorText(err)}`, {
      hint: err instanceof DevboxError ? err.hint : undefined,
    });
    process.exit(1);
  },
);
