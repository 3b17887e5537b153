/**
 * Draining the local app before it stops (a restart or a rebuild of the dev loop): new inbound
 * connections are refused, so the agent serves them from the app in the pod, and kept-alive ones
 * are closed at their first quiet moment after the app answered — what a server does at its
 * keep-alive timeout, which clients handle by reconnecting. Stopping the app instead closes them
 * at any moment, and a request already on its way meets a closed connection.
 */
import type net from 'node:net';
import type { Duplex } from 'node:stream';

/** Quiet after the app's answer before a connection is closed (as the agent hands over, agent/intercept.ts). */
const QUIET_MS = 250;
/** A closed connection whose peers do not close after our FIN is destroyed after this. */
const CLOSE_MS = 5_000;

interface Joined {
  stream: Duplex;
  local: net.Socket;
  appSpokeLast: boolean;
  lastBytesAt: number;
  timer?: NodeJS.Timeout;
}

export interface DrainResult {
  /** Connections closed at a quiet moment. */
  closed: number;
  /** Connections still open when the wait ended (busy, or streaming). */
  left: number;
}

export class InboundDrain {
  private open = new Set<Joined>();
  private closing = false;
  private closed = 0;
  private waiters: (() => void)[] = [];

  /** True while the app is being drained: new inbound connections are refused. */
  get draining(): boolean {
    return this.closing;
  }

  /** Follows a connection joined to the local app. */
  track(stream: Duplex, local: net.Socket): void {
    const conn: Joined = { stream, local, appSpokeLast: false, lastBytesAt: Date.now() };
    this.open.add(conn);
    stream.on('data', () => {
      conn.appSpokeLast = false;
      conn.lastBytesAt = Date.now();
    });
    local.on('data', () => {
      conn.appSpokeLast = true;
      conn.lastBytesAt = Date.now();
      if (this.closing && !conn.timer) this.schedule(conn);
    });
    local.once('close', () => {
      clearTimeout(conn.timer);
      this.open.delete(conn);
      if (this.open.size === 0) for (const wake of this.waiters.splice(0)) wake();
    });
  }

  /** Starts draining; resolves once every connection is closed or `timeoutMs` has passed. */
  async drain(timeoutMs: number): Promise<DrainResult> {
    this.closing = true;
    this.closed = 0;
    for (const conn of this.open) if (conn.appSpokeLast) this.schedule(conn);
    if (this.open.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
    }
    return { closed: this.closed, left: this.open.size };
  }

  /** Takes inbound connections again. */
  resume(): void {
    this.closing = false;
    for (const conn of this.open) {
      clearTimeout(conn.timer);
      conn.timer = undefined;
    }
  }

  private schedule(conn: Joined): void {
    clearTimeout(conn.timer);
    const left = QUIET_MS - (Date.now() - conn.lastBytesAt);
    conn.timer = setTimeout(() => this.close(conn), Math.max(0, left));
  }

  private close(conn: Joined): void {
    conn.timer = undefined;
    // The client spoke since: the app's next answer arms the timer again.
    if (!this.closing || !conn.appSpokeLast || conn.local.destroyed) return;
    if (Date.now() - conn.lastBytesAt < QUIET_MS) {
      this.schedule(conn);
      return;
    }
    this.closed++;
    // FIN both ways; each side's own FIN in reply ends the join cleanly.
    conn.local.end();
    conn.stream.end();
    const stuck = setTimeout(() => {
      conn.local.destroy();
      conn.stream.destroy();
    }, CLOSE_MS);
    stuck.unref();
    conn.local.once('close', () => clearTimeout(stuck));
  }
}
