#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { cleanCommand } from './clean.js';
import { devcontainerCommand } from './devcontainer.js';
import { doctorCommand } from './doctor.js';
import { downCommand } from './down.js';
import { envCommand } from './env.js';
import { reportError } from './output.js';
import { statusCommand } from './status.js';
import { upCommand } from './up.js';

// `devbox … | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const program = new Command('devbox')
  .description(
    "Run a Kubernetes workload in a local Docker container with the pod's DNS, env, volumes and inbound traffic.",
  )
  .version(process.env.npm_package_version ?? '0.1.0')
  .showSuggestionAfterError()
  .exitOverride()
  .addHelpText(
    'after',
    `
Examples:
  devbox up api                       # run deployment/api locally, in the foreground; Ctrl-C undoes it
  devbox up api -n shop --detach      # return once the session is ready
  devbox up api --image api:dev -e LOG_LEVEL=debug -v $PWD:/app -- npm run dev
  devbox status                       # sessions on this machine and their tunnels
  devbox down api -n shop             # remove the containers and restore the cluster exactly
  devbox clean                        # undo every devbox change left in the namespace

Set DEVBOX_DEBUG=* (or a list such as docker,kube) for debug output.`,
  );

try {
  // Inside the try: building the commands reads DEVBOX_* settings, which may be malformed.
  for (const command of [
    upCommand(),
    downCommand(),
    statusCommand(),
    envCommand(),
    cleanCommand(),
    doctorCommand(),
    devcontainerCommand(),
  ]) {
    program.addCommand(command.exitOverride());
  }
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander has printed its message (or the help) already.
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else {
    const format = process.argv.includes('json') ? 'json' : 'text';
    process.exitCode = reportError(err, format);
  }
}
