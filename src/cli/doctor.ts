import { Command } from 'commander';

import { settings } from '../session/settings.js';
import { kubeTarget, withKubeFlags } from './kube-flags.js';
import { outputFormat, printJson } from './output.js';

export function doctorCommand(): Command {
  return withKubeFlags(new Command('doctor'))
    .description('Check Docker, the cluster and your permissions without changing anything')
    .option('--agent-image <image>', 'image of the agent in the pod', settings().agentImage)
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (flags) => {
      const { doctor } = await import('../session/doctor.js');
      const format = outputFormat(flags.output);
      const findings = await doctor({ target: kubeTarget(flags), agentImage: flags.agentImage });
      if (format === 'json') printJson(findings);
      else {
        const mark = { ok: '✓', warn: '!', fail: '✗' } as const;
        for (const f of findings) {
          process.stdout.write(
            `${mark[f.status]} ${f.check}: ${f.detail}\n${f.hint ? `  → ${f.hint}\n` : ''}`,
          );
        }
      }
      if (findings.some((f) => f.status === 'fail')) process.exitCode = 1;
    });
}
