import { Command } from '@commander-js/extra-typings';

import { createProgress } from '../util/progress.js';
import { kubeTarget, withKubeFlags } from './kube-flags.js';
import { outputOption, printJson } from './output.js';

export function shareCommand() {
  return withKubeFlags(new Command('share'))
    .description("Print a link that shows a teammate's browser your personal session of a workload")
    .argument(
      '<workload>',
      'Deployment or StatefulSet name, or kind/name, with a personal session (up --personal)',
    )
    .option(
      '--entry <kind/name[:port]>',
      'where browsers come in, and the port of its Service (default: the workload)',
    )
    .option('--name <name>', 'the session to share, when the workload has several on this machine')
    .option('--revoke', 'revoke every link to the session (links also end with the session)')
    .addOption(outputOption(['text', 'json']))
    .addHelpText(
      'after',
      `
Opening the link pins that browser (a cookie for the entry's host) to your session; every other
browser and client keeps seeing the cluster's own version. After devbox down an old link shows
the cluster's version.

Examples:
  devbox up api --personal --detach && devbox share api
  devbox share api -o json              # {"link", "entry", "session", "expires"}
  devbox share api --revoke`,
    )
    .action(async (workload, flags) => {
      const { share, revokeShares } = await import('../session/share.js');
      const options = {
        target: kubeTarget(flags),
        workload,
        ...(flags.entry === undefined ? {} : { entry: flags.entry }),
        ...(flags.name === undefined ? {} : { name: flags.name }),
        progress: createProgress(process.stderr),
      };
      if (flags.revoke) {
        const result = await revokeShares(options);
        if (flags.output === 'json') return printJson(result);
        process.stdout.write(`Revoked ${result.revoked} link(s) to session ${result.session}.\n`);
        return;
      }
      const result = await share(options);
      if (flags.output === 'json') return printJson(result);
      const { entry } = result;
      const reach =
        entry.kind === 'port-forward'
          ? `The entry (service/${entry.service}) is reached through a port-forward; keep this running:\n  kubectl ${entry.command.join(' ')}\n`
          : `The entry is service/${entry.service}${entry.kind === 'ingress' ? ` through ingress/${entry.ingress}` : ''}.\n`;
      process.stdout.write(`${reach}Link (until ${result.expires} or the session ends):\n  ${result.link}\n`);
    });
}
