import { Command } from 'commander';

import { createProgress } from '../util/progress.js';
import { kubeTarget, withKubeFlags } from './kube-flags.js';
import { outputFormat, printJson } from './output.js';

export function cleanCommand(): Command {
  return withKubeFlags(new Command('clean'))
    .description('Undo every devbox change left in the namespace (after a crash), from any machine')
    .option('--all', 'every namespace, and every local session')
    .option('-o, --output <format>', 'text or json', 'text')
    .addHelpText('after', '\nExamples:\n  devbox clean -n shop\n  devbox clean --all')
    .action(async (flags) => {
      const { clean } = await import('../session/clean.js');
      const format = outputFormat(flags.output);
      const result = await clean({
        target: kubeTarget(flags),
        all: Boolean(flags.all),
        progress: createProgress(process.stderr),
      });
      for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
      if (format === 'json') return printJson(result);
      const done = [...result.restored.map((r) => r.object), ...result.deleted];
      process.stdout.write(
        done.length || result.containersRemoved.length
          ? `Restored or removed: ${[...done, ...result.containersRemoved].join(', ')}\n`
          : `Nothing of devbox's left in ${result.namespaces.join(', ') || 'any namespace'}.\n`,
      );
    });
}
