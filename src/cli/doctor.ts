import { Command } from '@commander-js/extra-typings';

import { kubeTarget, withKubeFlags } from './kube-flags.js';
import { EXIT_PROBLEMS_FOUND, outputOption, printJson } from './output.js';
import { nonEmpty } from './values.js';

export function doctorCommand() {
  return withKubeFlags(new Command('doctor'))
    .description('Check Docker, the cluster and your permissions without changing anything')
    .option(
      '--agent-image <image>',
      'image of the agent in the pod (default: $DEVBOX_AGENT_IMAGE, else node:22-slim)',
      nonEmpty,
    )
    .addOption(outputOption(['text', 'json']))
    .addHelpText(
      'after',
      `
Examples:
  devbox doctor -n shop
  devbox doctor --context staging -o json

Exits with ${EXIT_PROBLEMS_FOUND} when a check fails (0 when none does; warnings do not count).`,
    )
    .action(async (flags) => {
      const { doctor } = await import('../session/doctor.js');
      const { settings } = await import('../settings/index.js');
      const findings = await doctor({
        target: kubeTarget(flags),
        agentImage: flags.agentImage ?? settings().agentImage,
      });
      if (flags.output === 'json') printJson(findings);
      else {
        const mark = { ok: '✓', warn: '!', fail: '✗' } as const;
        for (const f of findings) {
          process.stdout.write(
            `${mark[f.status]} ${f.check}: ${f.detail}\n${f.hint ? `  → ${f.hint}\n` : ''}`,
          );
        }
      }
      if (findings.some((f) => f.status === 'fail')) process.exitCode = EXIT_PROBLEMS_FOUND;
    });
}
