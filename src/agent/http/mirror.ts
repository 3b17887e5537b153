import http, { type IncomingHttpHeaders } from 'node:http';
import type { InterceptSpec } from '../../tunnel/protocol.js';
import type { AgentSession } from '../tunnel-server.js';
import type { Caller, CallerRequestOptions, Upstreams } from './upstreams.js';

/** Copies one mirror session may have in flight; more are dropped (and counted). */
export const MIRROR_IN_FLIGHT_MAX = 16;
/** Body bytes one copy may hold waiting for the mirror's local app; past it the copy is dropped. */
export const MIRROR_BUFFER_MAX = 1024 * 1024;

/** Where a request's body goes besides the real request: one copy per mirror session. */
export interface MirrorCopy {
  write(chunk: Buffer): void;
  end(): void;
  /** The caller's request failed or was aborted. */
  abort(): void;
}

/**
 * Sends copies of requests to mirror sessions. The caller is answered by the pod's app exactly as
 * without a mirror: a copy never holds back the caller's bytes (it buffers at most
 * {@link MIRROR_BUFFER_MAX}, then is dropped), its answer is read and thrown away, and a mirror that
 * is slow or gone only sees its copies dropped once {@link MIRROR_IN_FLIGHT_MAX} are in flight.
 */
export class Mirrors {
  private readonly inFlight = new Map<AgentSession, number>();

  constructor(private readonly upstreams: Upstreams) {}

  /** Starts copies of a request; undefined when there is no mirror to copy to. */
  copy(
    mirrors: readonly AgentSession[],
    spec: InterceptSpec,
    request: { method: string; path: string; headers: IncomingHttpHeaders },
    caller: Caller,
  ): MirrorCopy | undefined {
    const copies: MirrorCopy[] = [];
    for (const session of mirrors) {
      const n = this.inFlight.get(session) ?? 0;
      if (n >= MIRROR_IN_FLIGHT_MAX) {
        session.requests.dropped++;
        continue;
      }
      copies.push(this.start(session, spec, request, caller));
    }
    if (copies.length === 0) return undefined;
    if (copies.length === 1) return copies[0];
    return {
      write: (chunk) => {
        for (const c of copies) c.write(chunk);
      },
      end: () => {
        for (const c of copies) c.end();
      },
      abort: () => {
        for (const c of copies) c.abort();
      },
    };
  }

  private start(
    session: AgentSession,
    spec: InterceptSpec,
    request: { method: string; path: string; headers: IncomingHttpHeaders },
    caller: Caller,
  ): MirrorCopy {
    this.inFlight.set(session, (this.inFlight.get(session) ?? 0) + 1);
    session.requests.mirrored++;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      const left = (this.inFlight.get(session) ?? 1) - 1;
      if (left > 0) this.inFlight.set(session, left);
      else this.inFlight.delete(session);
    };
    const headers = { ...request.headers };
    delete headers.expect; // the copy must not wait for a 100 the caller's exchange already had
    const options: CallerRequestOptions = {
      agent: this.upstreams.sessionAgent(session, spec),
      method: request.method,
      path: request.path,
      headers,
      setHost: false,
      caller,
    };
    const out = http.request(options);
    out.on('error', finish);
    out.on('close', finish);
    out.on('response', (res) => {
      res.on('error', () => {});
      res.resume();
    });
    const drop = () => {
      if (finished) return;
      session.requests.dropped++;
      out.destroy();
    };
    // Node's client loses a body written before an asynchronously created connection exists:
    // the copy is held here until then.
    let held: Buffer[] | undefined = [];
    let heldBytes = 0;
    let ended = false;
    out.once('socket', () => {
      for (const chunk of held ?? []) out.write(chunk);
      held = undefined;
      if (ended) out.end();
    });
    return {
      write: (chunk) => {
        if (out.destroyed) return;
        heldBytes += held ? chunk.length : 0;
        if (heldBytes + out.writableLength + chunk.length > MIRROR_BUFFER_MAX) return drop();
        if (held) held.push(chunk);
        else out.write(chunk);
      },
      end: () => {
        ended = true;
        if (!held && !out.destroyed) out.end();
      },
      abort: () => out.destroy(),
    };
  }
}
