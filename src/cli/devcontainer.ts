import { Command } from '@commander-js/extra-typings';

import { createProgress } from '../util/progress.js';
import { kubeTarget, withKubeFlags } from './kube-flags.js';
import { outputOption, printJson } from './output.js';

export function devcontainerCommand() {
  const command = new Command('devcontainer').description(
    'Dev containers (VS Code, Codespaces, the devcontainer CLI) that join a devbox session',
  );
  command.addCommand(
    withKubeFlags(new Command('init'))
      .description(
        "Write .devcontainer/devbox-<workload>/devcontainer.json: opening it starts the session's sidecar and joins it, with the pod's env and volumes",
      )
      .argument('<workload>', 'Deployment or StatefulSet name, or kind/name')
      .option('-c, --container <name>', 'container of the pod (default: the one its Service targets)')
      .option('--folder <dir>', 'project folder', '.')
      .option(
        '--image <image>',
        "dev container image (default: the project's devcontainer.json, else the pod's image)",
      )
      .option('--devbox-command <command>', 'how the editor runs devbox on this machine', 'devbox')
      .option('--force', 'overwrite a configuration written before')
      .addOption(outputOption(['text', 'json']))
      .addHelpText(
        'after',
        `
Examples:
  devbox devcontainer init api -n shop                 # based on .devcontainer/devcontainer.json if there is one
  devbox devcontainer init api --devbox-command "npx devbox"

Then open the folder in VS Code ("Reopen in Container") or run
  devcontainer up --workspace-folder . --config .devcontainer/devbox-api/devcontainer.json
and end the session with \`devbox down api\`.`,
      )
      .action(async (workload, flags) => {
        const { initDevcontainer } = await import('../devcontainer/index.js');
        const result = await initDevcontainer({
          target: kubeTarget(flags),
          workload,
          container: flags.container,
          folder: flags.folder,
          image: flags.image,
          devboxCommand: flags.devboxCommand.split(' ').filter(Boolean),
          force: Boolean(flags.force),
          progress: createProgress(process.stderr),
        });
        for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
        if (flags.output === 'json') printJson(result);
        else
          process.stdout.write(
            `Wrote ${result.configFile}${result.basedOn ? ` (based on ${result.basedOn})` : ''}.\n` +
              `Opening it starts ${result.workload}'s session; the pod's env goes to ${result.envFile} (git-ignored).\n`,
          );
      }),
  );
  return command;
}
