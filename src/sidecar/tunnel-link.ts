/**
 * What the sidecar needs from one tunnel to one agent pod. The real
 * implementation wraps the tunnel module's client (see `agent-dialer.ts`);
 * tests use fakes. Keeping this surface small keeps the sidecar testable
 * without a cluster.
 */
import type { Duplex } from 'node:stream';
import type { Share } from '../tunnel/share.js';

/** One UDP flow through the tunnel: datagrams out, datagrams back. */
export interface UdpFlowLink {
  /** Sends one datagram; dropped silently under backpressure, as UDP would. */
  send(datagram: Buffer): void;
  /** Registers the receiver of datagrams coming back. */
  onDatagram(listener: (datagram: Buffer) => void): void;
  /** Called once when the flow ends (idle timeout on the agent, tunnel loss, close()). */
  onClose(listener: () => void): void;
  close(): void;
}

/** An inbound connection the agent hands over, and where it was meant to go. */
export interface InboundStream {
  stream: Duplex;
  /** The stream starts with the local app's answer (ACCEPT_CONNECTED / ACCEPT_REFUSED, see protocol.ts). */
  confirm?: boolean;
  /** The app port in the pod this connection stands for. */
  appPort: number;
  /** The agent port it arrived on (the Service targetPort). */
  interceptPort: number;
  clientAddress: string;
  clientPort: number;
}

export interface TunnelLinkStats {
  /** Outbound and inbound streams open now (used to spread load over tunnels). */
  streamsOpen: number;
}

export interface TunnelLink {
  /** Opens a TCP stream the agent dials to host:port; rejects when the agent cannot (e.g. ECONNREFUSED). */
  openTcp(host: string, port: number, signal?: AbortSignal): Promise<Duplex>;
  openUdp(host: string, port: number, signal?: AbortSignal): Promise<UdpFlowLink>;
  /** One raw DNS query answered with the pod's resolver. */
  dnsQuery(query: Buffer, signal?: AbortSignal): Promise<Buffer>;
  /** Resolves when the tunnel is gone, for whatever reason. */
  readonly closed: Promise<void>;
  close(): void;
  stats(): TunnelLinkStats;
  /** The agent's own counters, when it can report them. */
  agentStats?(timeoutMs: number): Promise<unknown>;
  /** Has the agent apply a share link while this tunnel lives; false when the agent cannot. */
  share?(share: Share): boolean;
  revokeShare?(key: string): void;
}

/** Where a dial goes: the agent pod and its tunnel port. */
export interface AgentTarget {
  pod: string;
  podIP: string;
  port: number;
}

/**
 * Opens a tunnel to one agent pod (port-forward + session). Inbound connections
 * accepted on it are given to `onInbound`. Rejects when the tunnel cannot be set up.
 */
export type TunnelDialer = (
  target: AgentTarget,
  onInbound: (inbound: InboundStream) => void,
  signal: AbortSignal,
) => Promise<TunnelLink>;
