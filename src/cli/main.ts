#!/usr/bin/env node
import { Command, CommanderError, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { requestedOutput } from './argv.js';
import { cleanCommand } from './clean.js';
import { completionCommand } from './completion.js';
import { devcontainerCommand } from './devcontainer.js';
import { doctorCommand } from './doctor.js';
import { downCommand } from './down.js';
import { envCommand } from './env.js';
import { EXIT_CODES_HELP, reportError, reportUsageError } from './output.js';
import { shareCommand } from './share.js';
import { statusCommand } from './status.js';
import { upCommand } from './up.js';
import { devboxVersion, versionCommand } from './version.js';

// `devbox … | head` closes the pipe early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const program = new Command('devbox')
  .description(
    "Run a Kubernetes workload in a local Docker container with the pod's DNS, env, volumes and inbound traffic.",
  )
  .version(devboxVersion())
  .showSuggestionAfterError()
  .addHelpText(
    'after',
    `
Examples:
  devbox up api                       # run deployment/api locally, in the foreground; Ctrl-C undoes it
  devbox up api -n shop --detach      # return once the session is ready
  devbox up api --image api:dev -e LOG_LEVEL=debug -v $PWD:/app -- npm run dev
  devbox status                       # sessions on this machine and their tunnels
  devbox share api                    # a link that shows a teammate's browser your personal session
  devbox down api -n shop             # remove the containers and restore the cluster exactly
  devbox clean                        # undo every devbox change left in the namespace
  source <(devbox completion bash)    # complete commands and flags in this shell

Set DEVBOX_DEBUG=* (or a list such as docker,kube) for debug output.

${EXIT_CODES_HELP}`,
  );

const args = process.argv.slice(2);
try {
  for (const command of [
    upCommand(),
    downCommand(),
    shareCommand(),
    statusCommand(),
    envCommand(),
    cleanCommand(),
    doctorCommand(),
    devcontainerCommand(),
    versionCommand(),
    completionCommand(),
  ]) {
    program.addCommand(command);
  }
  // Every command, nested ones too, reports parse errors here instead of exiting.
  const overrideExit = (command: CommandUnknownOpts): void => {
    command.exitOverride();
    command.commands.forEach(overrideExit);
  };
  overrideExit(program);
  await program.parseAsync(args, { from: 'user' });
} catch (err) {
  const format = requestedOutput(program, args);
  if (err instanceof CommanderError) {
    // Commander has printed its message (or the help, or the version) already.
    process.exitCode = err.exitCode === 0 ? 0 : reportUsageError(err.message, format);
  } else {
    process.exitCode = reportError(err, format);
  }
}
