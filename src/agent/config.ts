import { isIP } from 'node:net';
import {
  AGENT_FILES_ROOT,
  AGENT_TUNABLE_DEFAULTS,
  type AgentEnv,
  DEFAULT_TUNNEL_PORT,
  decodeAgentEnv,
} from '../tunnel/agent-contract.js';

/**
 * The agent's configuration: its environment as the contract defines it (`tunnel/agent-contract.ts`),
 * plus where it listens, which is not configurable in a pod.
 */
export interface AgentConfig extends AgentEnv {
  /** Tunnel listener; loopback only, reachable from outside the pod through port-forward alone. */
  tunnelHost: string;
  /** Address the intercept ports listen on; undefined = all interfaces. */
  interceptHost: string | undefined;
  /** Dial loopback and link-local targets too (tests on one machine only; never in a pod). */
  dialLocalTargets: boolean;
  /** The only tree `/v1/files` serves: where the app's volume mounts are (AGENT_FILES_ROOT). */
  filesRoot: string;
  /** The API server's Service as the kubelet named it in the pod's env; told to clients in the hello. */
  kubernetesService?: { host: string; port: number };
}

export const AGENT_DEFAULTS = {
  tunnelHost: '127.0.0.1',
  tunnelPort: DEFAULT_TUNNEL_PORT,
  healthPort: 0,
  dialLocalTargets: false,
  filesRoot: AGENT_FILES_ROOT,
  ...AGENT_TUNABLE_DEFAULTS,
} as const;

/** Reads the agent's configuration from `env`. Reports every problem at once in one BAD_INPUT error. */
export function parseAgentConfig(env: NodeJS.ProcessEnv): AgentConfig {
  const kubernetesService = kubernetesServiceIn(env);
  return {
    ...decodeAgentEnv(env),
    tunnelHost: AGENT_DEFAULTS.tunnelHost,
    interceptHost: undefined,
    dialLocalTargets: false,
    filesRoot: AGENT_FILES_ROOT,
    ...(kubernetesService ? { kubernetesService } : {}),
  };
}

/** KUBERNETES_SERVICE_HOST and _PORT as the kubelet sets them; undefined when either is missing or malformed. */
export function kubernetesServiceIn(env: NodeJS.ProcessEnv): { host: string; port: number } | undefined {
  const host = env.KUBERNETES_SERVICE_HOST ?? '';
  const port = Number(env.KUBERNETES_SERVICE_PORT);
  if (!isIP(host) || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host, port };
}
