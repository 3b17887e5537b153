/**
 * Settings read from the environment, in one place: nothing else parses
 * DEVBOX_* variables.
 */
export interface Settings {
  /** Image of the agent container added to the pod; the cluster must be able to pull it. */
  agentImage: string;
  /** The cluster's DNS domain (the kubelet's clusterDomain). */
  clusterDomain: string;
}

export const DEFAULT_AGENT_IMAGE = 'node:22-slim';

export function settings(env: NodeJS.ProcessEnv = process.env): Settings {
  return {
    agentImage: env.DEVBOX_AGENT_IMAGE?.trim() || DEFAULT_AGENT_IMAGE,
    clusterDomain: env.DEVBOX_CLUSTER_DOMAIN?.trim() || 'cluster.local',
  };
}
