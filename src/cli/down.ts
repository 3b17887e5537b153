import { Command } from '@commander-js/extra-typings';

import { createProgress } from '../util/progress.js';
import { kubeTarget, withKubeFlags } from './kube-flags.js';
import { outputOption, printJson } from './output.js';

export function downCommand() {
  return withKubeFlags(new Command('down'))
    .description('End the session of a workload: remove its local containers and restore the cluster exactly')
    .argument('<workload>', 'Deployment or StatefulSet name, or kind/name')
    .option(
      '--keep-agent',
      'leave the agent in the pods (it passes traffic through) so the next up is faster',
    )
    .addOption(outputOption(['text', 'json']))
    .addHelpText(
      'after',
      `
Examples:
  devbox down api
  devbox down sts/db -n shop -o json`,
    )
    .action(async (workload, flags) => {
      const { down } = await import('../session/down.js');
      const result = await down({
        target: kubeTarget(flags),
        workload,
        keepAgent: Boolean(flags.keepAgent),
        progress: createProgress(process.stderr),
      });
      for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
      if (flags.output === 'json') return printJson(result);
      const restored = result.restored.map((r) => r.object);
      process.stdout.write(
        restored.length || result.containersRemoved.length
          ? `Restored ${restored.join(', ') || 'nothing in the cluster'}; removed ${result.containersRemoved.length} local container(s).\n`
          : `No devbox session on ${result.workload} in ${result.namespace}: nothing to undo.\n`,
      );
    });
}
