/**
 * Inbound (intercepted) connections: the agent hands over a stream that an
 * in-cluster client opened to the workload; it is joined to the local app at
 * 127.0.0.1:<appPort>. When the app is not listening the stream is reset, so
 * the in-cluster client sees a reset just as it would from the pod.
 */
import net from 'node:net';
import { abortStream, joinStreams } from '../tunnel/index.js';
import type { InterceptPort } from './config.js';
import type { InboundStream } from './tunnel-link.js';

export interface InboundStats {
  accepted: number;
  open: number;
  /** Streams reset because nothing listened on the local app port. */
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
        abortStream(inbound.stream);
        finish();
      }
    });
    local.once('connect', () => {
      inbound.stream.on('data', (chunk: Buffer) => {
        stats.bytesIn += chunk.length;
      });
      local.on('data', (chunk: Buffer) => {
        stats.bytesOut += chunk.length;
      });
      void joinStreams(inbound.stream, local).then(finish);
    });
  };
}
