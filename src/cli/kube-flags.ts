import type { Command, OptionValues } from '@commander-js/extra-typings';
import type { KubeTarget } from '../kube/kubeconfig.js';

/** kubectl's cluster-selecting flags, the same on every verb. */
export function withKubeFlags<
  Args extends unknown[],
  Opts extends OptionValues,
  Globals extends OptionValues,
>(command: Command<Args, Opts, Globals>) {
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
