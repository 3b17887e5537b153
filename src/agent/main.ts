// The agent daemon inside the workload's pod. Bundled into one file and run with plain `node`.

import { collectDeadBuffers } from '../util/dead-buffers.js';
import { errorText, isDevboxError } from '../util/errors.js';
import { daemonLogger } from '../util/log.js';
import { startAgent } from './agent.js';
import { parseAgentConfig } from './config.js';

async function main(): Promise<void> {
  const log = daemonLogger('agent');
  let config: ReturnType<typeof parseAgentConfig>;
  try {
    config = parseAgentConfig(process.env);
  } catch (err) {
    log.error(errorText(err), isDevboxError(err) && err.hint ? { hint: err.hint } : undefined);
    process.exit(2);
  }
  // The Service points at this process: dying would cut the app off, so a stray exception is logged
  // and the agent keeps serving.
  process.on('uncaughtException', (err) =>
    log.error('uncaught exception', { error: errorText(err), stack: err.stack }),
  );
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: errorText(err) }));
  collectDeadBuffers();
  const agent = await startAgent(config, log);
  const stop = (signal: string) => {
    log.info('stopping', { signal });
    agent.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  daemonLogger('agent').error('agent failed to start', { error: errorText(err) });
  process.exit(1);
});
