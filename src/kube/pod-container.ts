/** The one container of a pod (or pod template) that env and volumes are resolved for. */
import type { V1Container, V1PodSpec } from '@kubernetes/client-node';
import { DevboxError } from '../util/errors.js';

export function findContainer(spec: V1PodSpec | undefined, name: string): V1Container | undefined {
  return spec?.containers?.find((c) => c.name === name) ?? spec?.initContainers?.find((c) => c.name === name);
}

interface ContainerInput {
  pod: { metadata?: { namespace?: string }; spec?: V1PodSpec };
  container: string;
  namespace?: string;
  livePod?: { metadata?: { namespace?: string } };
}

/** The pod's spec, the named container and the namespace; NOT_FOUND lists the containers there are. */
export function podContainer(
  input: ContainerInput,
  what: string,
): { spec: V1PodSpec; container: V1Container; namespace: string } {
  const spec = input.pod.spec;
  const namespace = input.namespace ?? input.pod.metadata?.namespace ?? input.livePod?.metadata?.namespace;
  if (!namespace) throw new DevboxError('BAD_INPUT', `${what} needs a namespace`);
  const container = findContainer(spec, input.container);
  if (!spec || !container) {
    const names = [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])].map((c) => c.name);
    throw new DevboxError('NOT_FOUND', `container "${input.container}" not found`, {
      hint: names.length ? `containers: ${names.join(', ')}` : undefined,
    });
  }
  return { spec, container, namespace };
}
