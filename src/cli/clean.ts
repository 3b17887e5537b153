import { Command } from '@commander-js/extra-typings';

import { createProgress } from '../util/progress.js';
import { kubeTarget, withKubeFlags } from './kube-flags.js';
import { outputOption, printJson } from './output.js';

export function cleanCommand() {
  return withKubeFlags(new Command('clean'))
    .description('Undo every devbox change left in the namespace (after a crash), from any machine')
    .option('--all', 'every namespace, and every local session')
    .option('--force', "end live sessions too (someone's session whose lease is still renewed)")
    .addOption(outputOption(['text', 'json']))
    .addHelpText(
      'after',
      '\nExamples:\n  devbox clean -n shop\n  devbox clean --all -o json\n  devbox clean -n shop --force',
    )
    .action(async (flags) => {
      const { clean } = await import('../session/clean.js');
      const result = await clean({
        target: kubeTarget(flags),
        all: Boolean(flags.all),
        force: Boolean(flags.force),
        progress: createProgress(process.stderr),
      });
      for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
      for (const l of result.left) {
        process.stderr.write(
          `left ${l.workload} (${l.namespace}) alone: session of ${l.holder}, renewed ${l.renewedSecondsAgo} s ago; --force ends it\n`,
        );
      }
      if (flags.output === 'json') return printJson(result);
      const done = [...result.restored.map((r) => r.object), ...result.deleted];
      process.stdout.write(
        done.length || result.containersRemoved.length
          ? `Restored or removed: ${[...done, ...result.containersRemoved].join(', ')}\n`
          : `Nothing of devbox's left in ${result.namespaces.join(', ') || 'any namespace'}.\n`,
      );
    });
}
