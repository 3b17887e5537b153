import { Command } from 'commander';

import { createProgress } from '../util/progress.js';
import { kubeTarget, withKubeFlags } from './kube-flags.js';
import { outputFormat } from './output.js';

export function envCommand(): Command {
  return withKubeFlags(new Command('env'))
    .description(
      "Print the environment Kubernetes gives the workload's container, resolved as the kubelet does",
    )
    .argument('<workload>', 'Deployment or StatefulSet name, or kind/name')
    .option('-c, --container <name>', 'container of the pod (default: the one its Service targets)')
    .option('-o, --output <format>', 'dotenv or json', 'dotenv')
    .option('--show-secrets', 'print values that come from Secrets instead of masking them')
    .addHelpText(
      'after',
      `
Examples:
  devbox env api                      # dotenv, secrets masked
  devbox env api -n shop -o json      # one JSON object
  devbox env sts/db --show-secrets > .env`,
    )
    .action(async (workload: string, flags) => {
      const { workloadEnv } = await import('../session/env.js');
      const { toDotenv, toEnvJson } = await import('../kube/index.js');
      const format = outputFormat(flags.output, ['dotenv', 'json']);
      const result = await workloadEnv({
        target: kubeTarget(flags),
        workload,
        container: flags.container,
        progress: createProgress(process.stderr, { quiet: true }),
      });
      for (const warning of result.warnings) process.stderr.write(`warning: ${warning}\n`);
      const mask = { maskSecrets: !flags.showSecrets };
      process.stdout.write(format === 'json' ? toEnvJson(result.vars, mask) : toDotenv(result.vars, mask));
    });
}
