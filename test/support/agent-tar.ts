import { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { FilesSource } from '../../src/kube/volumes/index.js';

/** One entry: name, type, and the link target (links) or content (files). */
export type TarAgentEntry = [
  name: string,
  type: 'file' | 'directory' | 'symlink' | 'link' | 'fifo',
  extra?: string,
];

/** An agent whose files endpoint answers any path with a tar of `entries`, as written (hostile or not). */
export function tarAgent(entries: TarAgentEntry[]): FilesSource {
  return {
    files: async () => {
      const pack = tar.pack();
      for (const [name, type, extra] of entries) {
        if (type === 'file') pack.entry({ name, type, mode: 0o644 }, extra ?? 'x');
        else if (type === 'symlink' || type === 'link') pack.entry({ name, type, linkname: extra ?? '' });
        else pack.entry({ name, type, mode: 0o755 });
      }
      pack.finalize();
      return Readable.from(pack);
    },
  };
}

/** An agent whose tar stream carries the first entry of `entries`, then breaks off with `error` (a tunnel that drops). */
export function breakingAgent(entries: TarAgentEntry[], error: Error): FilesSource {
  return {
    files: async (path, opts) => {
      const chunks: Buffer[] = [];
      for await (const chunk of await tarAgent(entries).files(path, opts)) chunks.push(chunk as Buffer);
      const firstEntry = Buffer.concat(chunks).subarray(0, 1024);
      let sent = false;
      return new Readable({
        read() {
          if (sent) this.destroy(error);
          else {
            sent = true;
            this.push(firstEntry);
          }
        },
      });
    },
  };
}
