/**
 * Inbound (intercepted) connections: the agent hands over a stream that an
 * in-cluster client opened to the workload; it is joined to the local app at
 * 127.0.0.1:<appPort>. On a confirming stream the first byte tells the agent
 * whether the local app took the connection: when it is not listening
 * (starting, crashed, restarting) the agent serves the connection from the app
 * in the pod, so callers never meet a dead local app. Without confirmation the
 * stream is reset, as the pod would reset it.
 */
import net from 'node:net';
import { abortStream, joinStreams } from '../tunnel/index.js';
import { ACCEPT_CONNECTED, ACCEPT_REFUSED } from '../tunnel/protocol.js';
import type { InterceptPort } from './config.js';
import type { InboundDrain } from './inbound-drain.js';
import type { InboundStream } from './tunnel-link.js';

export interface InboundStats {
  accepted: number;
  open: number;
  /** Streams refused because nothing listened on the local app port (served by the pod's app when the agent can). */
  refused: number;
  bytesIn: number;
  bytesOut: number;
}

export function newInboundStats(): InboundStats {
  return { accepted: 0, open: 0, refused: 0, bytesIn: 0, bytesOut: 0 };
}

export interface InboundOptions {
  /** Remaps an app port to a different local port; ports not listed go to the same port number. */
  interceptPorts: InterceptPort[];
  stats: InboundStats;
  /** Local address of the app; 127.0.0.1 (the app shares the sidecar's network namespace). */
  appHost?: string;
  onError: (what: string, err: unknown) => void;
  /** While it drains, new connections are refused (the agent serves them from the pod's app). */
  drain?: InboundDrain;
}

/** The local port an inbound stream for `appPort` goes to. */
export function localPortFor(appPort: number, interceptPorts: InterceptPort[]): number {
  return interceptPorts.find((p) => p.port === appPort)?.appPort ?? appPort;
}

export function createInboundHandler(opts: InboundOptions): (inbound: InboundStream) => void {
  const host = opts.appHost ?? '127.0.0.1';
  const { stats } = opts;
  return (inbound) => {
    stats.accepted++;
    stats.open++;
    const port = localPortFor(inbound.appPort, opts.interceptPorts);
    const what = `inbound ${inbound.clientAddress}:${inbound.clientPort} → ${host}:${port}`;
    if (opts.drain?.draining && inbound.confirm) {
      stats.refused++;
      refuse(inbound);
      stats.open--;
      return;
    }
    const local = net.connect({ host, port, allowHalfOpen: true });
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      stats.open--;
    };
    local.on('error', (err) => {
      if (local.connecting || !local.remoteAddress) {
        stats.refused++;
        opts.onError(what, err);
        if (inbound.confirm) refuse(inbound);
        else abortStream(inbound.stream);
        finish();
      }
    });
    local.once('connect', () => {
      if (inbound.confirm) inbound.stream.write(Buffer.from([ACCEPT_CONNECTED]));
      inbound.stream.on('data', (chunk: Buffer) => {
        stats.bytesIn += chunk.length;
      });
      local.on('data', (chunk: Buffer) => {
        stats.bytesOut += chunk.length;
      });
      opts.drain?.track(inbound.stream, local);
      void joinStreams(inbound.stream, local).then(finish);
    });
  };
}

/** Tells the agent the local app did not take the connection: it serves it from the pod's app. */
function refuse(inbound: InboundStream): void {
  inbound.stream.on('error', () => {});
  inbound.stream.end(Buffer.from([ACCEPT_REFUSED]));
  inbound.stream.resume();
}
