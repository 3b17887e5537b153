/**
 * The resolver settings of the pod, for the sidecar (the service container
 * inherits them): the kubelet's search list for `ClusterFirst`, `ndots:5`, and
 * the pod's own `dnsConfig`.
 */
import { podTemplate, type Workload } from '../kube/index.js';
import { settings } from '../settings/index.js';

export interface DnsSettings {
  search: string[];
  options: string[];
}

export function podDnsSettings(
  workload: Workload,
  namespace: string,
  domain = settings().clusterDomain,
): DnsSettings {
  const spec = podTemplate(workload).spec;
  const policy = spec?.dnsPolicy ?? 'ClusterFirst';
  const clusterFirst = policy === 'ClusterFirst' || policy === 'ClusterFirstWithHostNet';
  const search = clusterFirst ? [`${namespace}.svc.${domain}`, `svc.${domain}`, domain] : [];
  const options = new Map<string, string | undefined>(clusterFirst ? [['ndots', '5']] : []);
  for (const s of spec?.dnsConfig?.searches ?? []) if (!search.includes(s)) search.push(s);
  for (const o of spec?.dnsConfig?.options ?? []) if (o.name) options.set(o.name, o.value);
  return {
    search,
    options: [...options].map(([name, value]) => (value === undefined ? name : `${name}:${value}`)),
  };
}
