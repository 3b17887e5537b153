import { Command } from '@commander-js/extra-typings';

import { createProgress } from '../util/progress.js';
import { kubeTarget, withKubeFlags } from './kube-flags.js';
import { outputOption } from './output.js';

export function envCommand() {
  return withKubeFlags(new Command('env'))
    .description(
      "Print the environment Kubernetes gives the workload's container, resolved as the kubelet does",
    )
    .argument('<workload>', 'Deployment or StatefulSet name, or kind/name')
    .option('-c, --container <name>', 'container of the pod (default: the one its Service targets)')
    .addOption(outputOption(['dotenv', 'json']))
    .option('--show-secrets', 'print values that come from Secrets instead of masking them')
    .addHelpText(
      'after',
      `
Examples:
  devbox env api                      # dotenv, secrets masked
  devbox env api -n shop -o json      # one JSON object
  devbox env sts/db --show-secrets > .env`,
    )
    .action(async (workload, flags) => {
      const { workloadEnv } = await import('../session/env.js');
      const { toDotenv, toEnvJson } = await import('../kube/index.js');
      const result = await workloadEnv({
        target: kubeTarget(flags),
        workload,
        container: flags.container,
        progress: createProgress(process.stderr, { quiet: true }),
      });
      for (const warning of result.warnings) process.stderr.write(`warning: ${warning}\n`);
      const mask = { maskSecrets: !flags.showSecrets };
      process.stdout.write(
        flags.output === 'json' ? toEnvJson(result.vars, mask) : toDotenv(result.vars, mask),
      );
    });
}
