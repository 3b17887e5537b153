import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { Target } from '../tunnel/protocol.js';

/** Connects a TCP socket from the pod; rejects with an errno-coded error (ETIMEDOUT after `timeoutMs`). */
export function dialTcp(target: Target, timeoutMs: number, signal?: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    const fail = (err: Error) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(Object.assign(new Error(`connect timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      timeoutMs,
    );
    const onAbort = () => fail(Object.assign(new Error('dial cancelled'), { code: 'ECANCELED' }));
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('error', fail);
      resolve(socket);
    });
  });
}

/** A UDP socket connected to `target` (names resolved with the pod's resolver). */
export async function dialUdp(target: Target): Promise<dgram.Socket> {
  const family = net.isIP(target.host);
  const address = family ? target.host : (await lookup(target.host)).address;
  const socket = dgram.createSocket(net.isIPv6(address) ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      socket.close();
      reject(err);
    };
    socket.once('error', fail);
    socket.connect(target.port, address, () => {
      socket.off('error', fail);
      resolve(socket);
    });
  });
}
