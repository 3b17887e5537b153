import type { ListenOptions, Server } from 'node:net';

/** Starts `server` listening; rejects with the error that stops it (EADDRINUSE, EACCES, …). */
export function listen(server: Server, options: ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
