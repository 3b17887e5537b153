import {
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
}

export const AGENT_DEFAULTS = {
  tunnelHost: '127.0.0.1',
  tunnelPort: DEFAULT_TUNNEL_PORT,
  healthPort: 0,
  ...AGENT_TUNABLE_DEFAULTS,
} as const;

/** Reads the agent's configuration from `env`. Reports every problem at once in one BAD_INPUT error. */
export function parseAgentConfig(env: NodeJS.ProcessEnv): AgentConfig {
  return { ...decodeAgentEnv(env), tunnelHost: AGENT_DEFAULTS.tunnelHost, interceptHost: undefined };
}
