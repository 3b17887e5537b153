/**
 * Entry point of the sidecar daemon (`node sidecar.mjs [config.json]`).
 * `node sidecar.mjs status` prints the running daemon's status document,
 * for `docker exec <sidecar> node sidecar.mjs status`. `node sidecar.mjs share
 * [config.json] [--ttl <seconds> | --revoke]` makes (or revokes) the session's share
 * links and prints the daemon's JSON answer; `node sidecar.mjs local-routes
 * [config.json] <json>` sets its local routes (see local-routes.ts); `node sidecar.mjs
 * inbound [config.json] drain [ms] | resume` brackets a stop of the local app (inbound-drain.ts).
 */

import { collectDeadBuffers } from '../util/dead-buffers.js';
import { DevboxError, errorText } from '../util/errors.js';
import { daemonLogger } from '../util/log.js';
import { CONFIG_FILE_ENV, loadSidecarConfig } from './config.js';
import { startSidecar } from './sidecar.js';
import { CONFIG_EXIT, supervise } from './supervisor.js';

const SHUTDOWN_LIMIT_MS = 10_000;
/** Set in the daemon's env by its supervisor (supervisor.ts). */
const DAEMON_ENV = 'DEVBOX_SIDECAR_DAEMON';
/** Commands that ask the running daemon (by docker exec) rather than start one. */
const COMMANDS = ['status', 'share', 'local-routes', 'inbound'] as const;
type Command = (typeof COMMANDS)[number];

async function main(argv: string[]): Promise<number> {
  const log = daemonLogger('sidecar');
  const command = COMMANDS.find((c) => c === argv[0]);
  const file = (command ? argv[1] : argv[0]) ?? process.env[CONFIG_FILE_ENV];
  let config: ReturnType<typeof loadSidecarConfig>;
  try {
    config = loadSidecarConfig(file);
  } catch (err) {
    log.error(errorText(err), { hint: err instanceof DevboxError ? err.hint : undefined });
    return CONFIG_EXIT;
  }

  if (command) {
    const host = config.statusAddress === '0.0.0.0' ? '127.0.0.1' : config.statusAddress;
    const request = daemonRequest(command, argv.slice(2));
    const res = await fetch(`http://${host}:${config.statusPort}${request.path}`, {
      method: request.method,
      ...(request.body !== undefined ? { body: request.body } : {}),
    });
    process.stdout.write(await res.text());
    return res.ok ? 0 : 1;
  }

  // The container's main process supervises; the daemon runs as its child.
  if (process.env[DAEMON_ENV] !== '1') {
    const daemon = supervise({
      command: process.execPath,
      args: [...process.execArgv, ...process.argv.slice(1)],
      env: { ...process.env, [DAEMON_ENV]: '1' },
      log,
    });
    process.on('SIGTERM', () => daemon.stop('SIGTERM'));
    process.on('SIGINT', () => daemon.stop('SIGINT'));
    return daemon.done;
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

/** The request to the running daemon that a command line asks for. */
function daemonRequest(command: Command, args: string[]): { path: string; method: string; body?: string } {
  if (command === 'status') return { path: '/status', method: 'GET' };
  if (command === 'local-routes') return { path: '/local-routes', method: 'PUT', body: args[0] ?? '' };
  if (command === 'inbound')
    return {
      path:
        args[0] === 'resume'
          ? '/inbound/resume'
          : `/inbound/drain?timeoutMs=${encodeURIComponent(args[1] ?? '2000')}`,
      method: 'POST',
    };
  return {
    path: args[0] === '--ttl' && args[1] ? `/shares?ttl=${encodeURIComponent(args[1])}` : '/shares',
    method: args[0] === '--revoke' ? 'DELETE' : 'POST',
  };
}

// A bug must not die silently: log it as a JSON line, then exit; the supervisor starts the daemon again.
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
