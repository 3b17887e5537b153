import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, it } from 'node:test';
import { isKnownHostKey } from '../../../src/docker/known-hosts.js';

const key = Buffer.from('the server key blob');
const other = Buffer.from('another key blob');
const b64 = key.toString('base64');

/** A hashed known_hosts name, as `ssh-keygen -H` writes it. */
function hashed(name: string): string {
  const salt = Buffer.from('0123456789abcdefghij');
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

describe('known_hosts', () => {
  it('accepts the key known_hosts holds for the host, plain or hashed, and the port form', () => {
    assert.equal(isKnownHostKey(`box,10.0.0.5 ssh-ed25519 ${b64}\n`, 'box', 22, key), true);
    assert.equal(isKnownHostKey(`${hashed('box')} ssh-ed25519 ${b64}\n`, 'box', 22, key), true);
    assert.equal(isKnownHostKey(`[box]:2222 ssh-ed25519 ${b64}\n`, 'box', 2222, key), true);
    assert.equal(isKnownHostKey(`${hashed('[box]:2222')} ssh-ed25519 ${b64}\n`, 'box', 2222, key), true);
  });

  it('refuses an unknown host, another key, another port, and a revoked key', () => {
    assert.equal(isKnownHostKey('', 'box', 22, key), false);
    assert.equal(isKnownHostKey(`other ssh-ed25519 ${b64}\n`, 'box', 22, key), false);
    assert.equal(isKnownHostKey(`box ssh-ed25519 ${b64}\n`, 'box', 22, other), false);
    assert.equal(isKnownHostKey(`box ssh-ed25519 ${b64}\n`, 'box', 2222, key), false);
    assert.equal(
      isKnownHostKey(`box ssh-ed25519 ${b64}\n@revoked box ssh-ed25519 ${b64}\n`, 'box', 22, key),
      false,
    );
    // Wildcards and negations are left to the ssh client: not trusted here.
    assert.equal(isKnownHostKey(`*.example ssh-ed25519 ${b64}\n`, 'box.example', 22, key), false);
    assert.equal(isKnownHostKey(`# box ssh-ed25519 ${b64}\n`, 'box', 22, key), false);
  });
});
