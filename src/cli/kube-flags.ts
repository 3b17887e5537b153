import type { Command } from 'commander';
import type { KubeTarget } from '../kube/kubeconfig.js';

/** kubectl's cluster-selecting flags, the same on every verb. */
export function withKubeFlags(command: Command): Command {
  return command
    .option(
      '-n, --namespace <namespace>',
      'namespace of the workload (default: the context\'s, else "default")',
    )
    .option('--context <context>', 'kubeconfig context to use (default: the current context)')
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)');
}

export function kubeTarget(options: {
  namespace?: string;
  context?: string;
  kubeconfig?: string;
}): KubeTarget {
  return { namespace: options.namespace, context: options.context, kubeconfig: options.kubeconfig };
}
