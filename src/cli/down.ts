import { Command } from '@commander-js/extra-typings';

import type { DownResult } from '../session/down.js';
import { DevboxError, errorText, isDevboxError } from '../util/errors.js';
import { createProgress } from '../util/progress.js';
import { kubeTarget, withKubeFlags } from './kube-flags.js';
import { outputOption, printJson } from './output.js';

export function downCommand() {
  return withKubeFlags(new Command('down'))
    .description(
      'End the session of workloads: remove their local containers and restore the cluster exactly',
    )
    .argument(
      '[workloads...]',
      'Deployment or StatefulSet names, or kind/name (none: every workload of devbox.yaml)',
    )
    .option(
      '--keep-agent',
      'leave the agent in the pods (it passes traffic through) so the next up is faster',
    )
    .option('--name <name>', 'the session to end, by its name on the workload (default: your login)')
    .addOption(outputOption(['text', 'json']))
    .addHelpText(
      'after',
      `
Examples:
  devbox down api
  devbox down api --name alice-fix               # one session of several; the others go on
  devbox down sts/db -n shop -o json
  devbox down                          # every workload of ./devbox.yaml`,
    )
    .action(async (names, flags) => {
      const { down } = await import('../session/down.js');
      const { findProjectFile } = await import('../project/index.js');
      const file = await findProjectFile(process.cwd());
      const workloads = names.length
        ? names.map((n) => file?.workloads.get(n)?.workload ?? n)
        : [...(file?.workloads.values() ?? [])].map((w) => w.workload);
      if (!workloads.length)
        throw new DevboxError('BAD_INPUT', 'Name a workload, or run where a devbox.yaml lists them', {
          hint: 'e.g. `devbox down api`',
        });
      const target = kubeTarget({
        ...flags,
        namespace: flags.namespace ?? file?.namespace,
        context: flags.context ?? file?.context,
      });
      const progress = createProgress(process.stderr);
      const results: DownResult[] = [];
      // One workload that cannot be ended does not keep the others up.
      const failures: { workload: string; err: unknown }[] = [];
      for (const workload of workloads) {
        try {
          const result = await down({
            target,
            workload,
            keepAgent: Boolean(flags.keepAgent),
            ...(flags.name !== undefined ? { name: flags.name } : {}),
            progress,
          });
          for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
          results.push(result);
        } catch (err) {
          if (workloads.length === 1) throw err;
          failures.push({ workload, err });
        }
      }
      if (failures.length) {
        const first = failures[0]!.err;
        throw new DevboxError(
          isDevboxError(first) ? first.code : 'INTERNAL',
          failures.map((f) => `${f.workload}: ${errorText(f.err)}`).join('\n'),
          { hint: `Ended: ${results.map((r) => r.workload).join(', ') || 'none'}.`, cause: first },
        );
      }
      if (flags.output === 'json') return printJson(names.length === 1 ? results[0] : results);
      for (const result of results) printDown(result);
    });
}

function printDown(result: DownResult): void {
  const restored = result.restored.map((r) => r.object);
  if (result.remaining.length) {
    process.stdout.write(
      `Ended session ${result.ended ?? ''} on ${result.workload}; removed ${result.containersRemoved.length} local container(s). Still running there: ${result.remaining.map((s) => `${s.name} (${s.holder})`).join(', ')}.\n`,
    );
    return;
  }
  process.stdout.write(
    restored.length || result.containersRemoved.length
      ? `Restored ${restored.join(', ') || 'nothing in the cluster'}; removed ${result.containersRemoved.length} local container(s).\n`
      : `No devbox session on ${result.workload} in ${result.namespace}: nothing to undo.\n`,
  );
}
