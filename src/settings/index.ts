import { homedir } from 'node:os';
import { join } from 'node:path';
import { PORT_FORWARD_TRANSPORTS, type PortForwardTransport } from '../tunnel/portforward-transports.js';
import { DevboxError } from '../util/errors.js';

/**
 * Settings the CLI side reads from the environment, in one place: nothing else
 * parses DEVBOX_* variables. Two exceptions by design: DEVBOX_DEBUG is read by
 * util/log.ts, which the daemons share; the daemons' own start-up env is their
 * contract (tunnel/agent-contract.ts, sidecar/config.ts).
 */
export interface Settings {
  /** Image of the agent container added to the pod; the cluster must be able to pull it. */
  agentImage: string;
  /** The cluster's DNS domain (the kubelet's clusterDomain). */
  clusterDomain: string;
  /** How port-forwards talk to the API server (DEVBOX_PORT_FORWARD): auto, spdy, spdy-websocket or websocket. */
  portForward: PortForwardTransport;
  /** Where devbox keeps what it can rebuild (DEVBOX_CACHE_DIR, else $XDG_CACHE_HOME/devbox). */
  cacheDir: string;
  /** The local test cluster's directory (DEVBOX_CLUSTER_DIR), as `npm run cluster:up` writes it. */
  clusterDir: string;
  /** Namespace `npm run demo` deploys its shop into (DEVBOX_DEMO_NAMESPACE). */
  demoNamespace: string;
}

export const DEFAULT_AGENT_IMAGE = 'node:22-slim';

export function settings(env: NodeJS.ProcessEnv = process.env): Settings {
  return {
    agentImage: env.DEVBOX_AGENT_IMAGE?.trim() || DEFAULT_AGENT_IMAGE,
    clusterDomain: env.DEVBOX_CLUSTER_DOMAIN?.trim() || 'cluster.local',
    portForward: portForwardTransport(env.DEVBOX_PORT_FORWARD),
    cacheDir:
      env.DEVBOX_CACHE_DIR?.trim() || join(env.XDG_CACHE_HOME?.trim() || join(homedir(), '.cache'), 'devbox'),
    clusterDir: env.DEVBOX_CLUSTER_DIR?.trim() || join(homedir(), '.devbox', 'cluster'),
    demoNamespace: env.DEVBOX_DEMO_NAMESPACE?.trim() || 'devbox-demo',
  };
}

function portForwardTransport(value: string | undefined): PortForwardTransport {
  const v = value?.trim().toLowerCase() || 'auto';
  if ((PORT_FORWARD_TRANSPORTS as readonly string[]).includes(v)) return v as PortForwardTransport;
  throw new DevboxError(
    'BAD_INPUT',
    `DEVBOX_PORT_FORWARD=${value} is not one of ${PORT_FORWARD_TRANSPORTS.join(', ')}`,
    {
      hint: 'unset it: auto finds what the API server and the proxies before it take',
    },
  );
}
