/**
 * `<workload>` arguments (Deployment or StatefulSet), the container devbox runs, and
 * the Services that send traffic to it, port by port.
 */
import type {
  V1Container,
  V1Deployment,
  V1PodTemplateSpec,
  V1Service,
  V1ServicePort,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { DevboxError } from '../util/errors.js';
import { closestNames } from './suggest.js';

export type WorkloadKind = 'Deployment' | 'StatefulSet';

/** A Deployment or StatefulSet as read from the API (plain JSON, `kind` always set). */
export type Workload = (V1Deployment & { kind: 'Deployment' }) | (V1StatefulSet & { kind: 'StatefulSet' });

/** A parsed `<workload>` argument; `kind` undefined means "Deployment or StatefulSet". */
export interface WorkloadRef {
  kind?: WorkloadKind;
  name: string;
}

const kindAliases: Record<string, WorkloadKind> = {
  deploy: 'Deployment',
  deployment: 'Deployment',
  deployments: 'Deployment',
  sts: 'StatefulSet',
  statefulset: 'StatefulSet',
  statefulsets: 'StatefulSet',
};

/** Short form used in messages and suggestions, as kubectl prints it. */
export function workloadLabel(kind: WorkloadKind, name: string): string {
  return `${kind.toLowerCase()}/${name}`;
}

/**
 * Parses `api`, `deploy/api`, `Deployment/api`, `deployments.apps/api`, `sts/db`,
 * `statefulset.v1.apps/db` (kinds are case-insensitive, names are not).
 */
export function parseWorkloadRef(text: string): WorkloadRef {
  const trimmed = text.trim();
  const parts = trimmed.split('/');
  if (parts.length > 2 || parts.some((p) => p === '')) {
    throw new DevboxError('BAD_INPUT', `invalid workload "${text}"`, {
      hint: 'use a Deployment or StatefulSet name, or kind/name such as deploy/api or sts/db',
    });
  }
  if (parts.length === 1) return { name: trimmed };
  const [kindText, name] = parts as [string, string];
  const base = kindText.toLowerCase().replace(/\.(v1\.)?apps$/, '');
  const kind = kindAliases[base];
  if (!kind) {
    throw new DevboxError('BAD_INPUT', `devbox runs Deployments and StatefulSets, not "${kindText}"`, {
      hint: 'use deploy/<name> or sts/<name>',
    });
  }
  return { kind, name };
}

/** NOT_FOUND for `ref`, suggesting the nearest workloads of `available`. */
export function workloadNotFound(
  ref: WorkloadRef,
  namespace: string,
  available: readonly { kind: WorkloadKind; name: string }[],
): DevboxError {
  const pool = available.filter((w) => !ref.kind || w.kind === ref.kind);
  const labels = pool.map((w) => workloadLabel(w.kind, w.name));
  const near = closestNames(
    ref.name,
    pool.map((w) => w.name),
  )
    .flatMap((n) => pool.filter((w) => w.name === n))
    .map((w) => workloadLabel(w.kind, w.name));
  const what = ref.kind ? ref.kind.toLowerCase() : 'deployment or statefulset';
  let hint: string;
  if (near.length) hint = `did you mean ${near.join(', ')}?`;
  else if (labels.length)
    hint = `workloads in namespace "${namespace}": ${labels.slice(0, 10).join(', ')}${labels.length > 10 ? ', …' : ''}`;
  else
    hint = `namespace "${namespace}" has no ${ref.kind ? `${what}s` : 'Deployments or StatefulSets'}; pick another with -n`;
  return new DevboxError('NOT_FOUND', `${what} "${ref.name}" not found in namespace "${namespace}"`, {
    hint,
  });
}

/**
 * Picks the workload `ref` names among the ones found by that name (at most one per
 * kind). Both kinds under one name is ambiguous; none is NOT_FOUND with suggestions.
 */
export function chooseWorkload(
  ref: WorkloadRef,
  namespace: string,
  found: readonly Workload[],
  available: readonly { kind: WorkloadKind; name: string }[],
): Workload {
  const matches = found.filter((w) => w.metadata?.name === ref.name && (!ref.kind || w.kind === ref.kind));
  if (matches.length === 1) return matches[0] as Workload;
  if (matches.length > 1) {
    throw new DevboxError(
      'BAD_INPUT',
      `both a Deployment and a StatefulSet are named "${ref.name}" in namespace "${namespace}"`,
      {
        hint: `say which: deploy/${ref.name} or sts/${ref.name}`,
      },
    );
  }
  throw workloadNotFound(ref, namespace, available);
}

/** The workload's pod template. */
export function podTemplate(w: Workload): V1PodTemplateSpec {
  return w.spec?.template ?? {};
}

/** Containers the agent must never be mistaken for. */
const reservedContainerNames = new Set(['devbox-agent']);

/** Where a Service port lands in the pod. */
export interface ServicePortTarget {
  service: string;
  /** The Service port entry (`port`, `protocol`, `name`, `targetPort`). */
  servicePort: V1ServicePort;
  /** Container declaring the target port; undefined for a numeric port no container declares. */
  container: string | undefined;
  /** The numeric port in the pod. */
  containerPort: number;
}

function protocolOf(p: { protocol?: string }): string {
  return p.protocol || 'TCP';
}

/** Containers whose ports Services can name: app containers, then sidecar init containers. */
function portContainers(template: V1PodTemplateSpec): V1Container[] {
  const spec = template.spec;
  return [
    ...(spec?.containers ?? []),
    ...(spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always'),
  ];
}

/**
 * Resolves a Service port against a pod template as the EndpointSlice controller does:
 * a named targetPort matches a container port by name and protocol; a numeric one is
 * taken as is. Undefined when a named port does not exist (the pod gets no endpoint).
 */
export function resolveTargetPort(
  template: V1PodTemplateSpec,
  servicePort: V1ServicePort,
): { container: string | undefined; containerPort: number } | undefined {
  const target = servicePort.targetPort ?? servicePort.port;
  const protocol = protocolOf(servicePort);
  const containers = portContainers(template);
  if (typeof target === 'string') {
    for (const c of containers) {
      const p = c.ports?.find((cp) => cp.name === target && protocolOf(cp) === protocol);
      if (p) return { container: c.name, containerPort: p.containerPort };
    }
    return undefined;
  }
  const owner = containers.find((c) =>
    c.ports?.some((cp) => cp.containerPort === target && protocolOf(cp) === protocol),
  );
  return { container: owner?.name, containerPort: target };
}

/** True when the Service's selector selects pods with these labels. */
export function selects(service: V1Service, labels: Record<string, string> | undefined): boolean {
  const selector = service.spec?.selector;
  if (!selector || Object.keys(selector).length === 0) return false;
  if (service.spec?.type === 'ExternalName') return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** The Services selecting the workload's pods, by name. */
export function servicesSelecting(w: Workload, services: readonly V1Service[]): V1Service[] {
  const labels = podTemplate(w).metadata?.labels;
  return services
    .filter((s) => selects(s, labels))
    .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
}

/**
 * Other workloads whose pods a Service also selects. Moving such a Service's
 * targetPort to the agent would take those pods out of its endpoints.
 */
export function otherWorkloadsSelected(
  service: V1Service,
  self: Workload,
  others: readonly Workload[],
): string[] {
  return others
    .filter((o) => !(o.kind === self.kind && o.metadata?.name === self.metadata?.name))
    .filter((o) => selects(service, podTemplate(o).metadata?.labels))
    .map((o) => workloadLabel(o.kind, o.metadata?.name ?? ''));
}

/** Every port of `services` resolved against the workload's pod template. */
export function servicePortTargets(w: Workload, services: readonly V1Service[]): ServicePortTarget[] {
  const template = podTemplate(w);
  const out: ServicePortTarget[] = [];
  for (const s of servicesSelecting(w, services)) {
    for (const sp of s.spec?.ports ?? []) {
      const r = resolveTargetPort(template, sp);
      if (r) out.push({ service: s.metadata?.name ?? '', servicePort: sp, ...r });
    }
  }
  return out;
}

/**
 * The container devbox runs: `requested` when given, else the first container a
 * Service port names or declares, else the first container.
 */
export function pickContainer(w: Workload, services: readonly V1Service[], requested?: string): V1Container {
  const containers = (podTemplate(w).spec?.containers ?? []).filter(
    (c) => !reservedContainerNames.has(c.name),
  );
  const label = workloadLabel(w.kind, w.metadata?.name ?? '');
  if (requested !== undefined) {
    const c = containers.find((x) => x.name === requested);
    if (c) return c;
    throw new DevboxError('NOT_FOUND', `container "${requested}" not found in ${label}`, {
      hint: `containers: ${containers.map((x) => x.name).join(', ')}`,
    });
  }
  const targeted = servicePortTargets(w, services).find((t) =>
    containers.some((c) => c.name === t.container),
  );
  const chosen = containers.find((c) => c.name === targeted?.container) ?? containers[0];
  if (!chosen) throw new DevboxError('BAD_INPUT', `${label} has no containers`);
  return chosen;
}

/**
 * The Service ports that reach `container`: ports it declares, plus numeric target
 * ports no container declares (traffic to them lands on whatever listens in the pod,
 * which for devbox is the chosen container).
 */
export function portsReachingContainer(
  w: Workload,
  services: readonly V1Service[],
  container: string,
): ServicePortTarget[] {
  return servicePortTargets(w, services).filter(
    (t) => t.container === container || t.container === undefined,
  );
}
