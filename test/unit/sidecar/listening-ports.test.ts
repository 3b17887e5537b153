import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProcNet, procListeningPorts } from '../../../src/sidecar/listening-ports.js';

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 342 1 0
   1: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 343 1 0
   2: 00000000:D442 0100FF7F:B287 06 00000000:00000000 03:00000E6A 00000000     0        0 0 3 0
`;
const TCP6 = `  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000
`;
const UDP = `  sl  local_address rem_address   st
  10: 00000000:14E9 00000000:0000 07 00000000:00000000
  11: 1400600A:0050 00000000:0000 07 00000000:00000000
`;

describe('listening ports', () => {
  it('keeps wildcard TCP listeners and wildcard UDP sockets only', () => {
    assert.deepEqual(parseProcNet(TCP, 'TCP'), ['TCP/8080']);
    assert.deepEqual(parseProcNet(TCP6, 'TCP'), ['TCP/5432']);
    assert.deepEqual(parseProcNet(UDP, 'UDP'), ['UDP/5353']);
  });

  it('reads all four tables and skips those that cannot be read', () => {
    const files: Record<string, string> = { '/proc/net/tcp': TCP, '/proc/net/udp': UDP };
    const read = (path: string) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT ${path}`);
      return text;
    };
    assert.deepEqual([...procListeningPorts(read)].sort(), ['TCP/8080', 'UDP/5353']);
  });
});
