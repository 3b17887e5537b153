/**
 * Seeded fuzzing of what a user types on the command line: `-e`, `-p`, `-v`, the workload
 * argument, and a dev container's runArgs. Bad values are BAD_INPUT errors naming the flag;
 * good values read back exactly as written.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRunArgs } from '../../../src/devcontainer/join-plan.js';
import type { PortBinding } from '../../../src/docker/client.js';
import { parsePublishFlag, parseVolumeFlag } from '../../../src/docker/session-flags.js';
import { parseWorkloadRef } from '../../../src/kube/workload.js';
import { parseEnvFlags } from '../../../src/session/flags.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { fuzz, onlyTypedErrors, type Rng } from '../../support/fuzz.js';

const badInput = (err: unknown) => isDevboxError(err, 'BAD_INPUT');
const FLAG_CHARS = 'aZ_09-.=:/[]@ \t\n"\'\\$éudptcpro';

function flagText(rng: Rng): string {
  return rng.string(rng.int(24), FLAG_CHARS);
}

function formatPublish(b: PortBinding): string {
  const ip = b.hostIp === undefined ? '' : b.hostIp.includes(':') ? `[${b.hostIp}]:` : `${b.hostIp}:`;
  const host = b.hostPort === undefined ? (ip ? ':' : '') : `${b.hostPort}:`;
  return `${ip}${host}${b.containerPort}${b.protocol ? `/${b.protocol}` : ''}`;
}

describe('fuzz: command-line flag values', () => {
  it('-e: any value after the first = is kept byte for byte; bad names are BAD_INPUT naming the flag', () => {
    fuzz('env flags', { rounds: 2000 }, (rng) => {
      const name = rng.chance(3)
        ? flagText(rng)
        : `${rng.pick(['A', '_', 'db'])}${rng.string(rng.int(8), 'A_0.-z')}`;
      const value = flagText(rng);
      const flag = rng.chance(5) ? name : `${name}=${value}`;
      const out = onlyTypedErrors(badInput, () => parseEnvFlags([flag], { [name]: 'from-host' }), flag);
      if (!out) {
        assert.throws(
          () => parseEnvFlags([flag], {}),
          (e: Error) => e.message.includes(`-e ${flag}`),
        );
        return;
      }
      const key = flag.includes('=') ? flag.slice(0, flag.indexOf('=')) : flag;
      assert.deepEqual(out, { [key]: flag.includes('=') ? flag.slice(flag.indexOf('=') + 1) : 'from-host' });
    });
  });

  it('-p: parses to ports 1..65535 or is BAD_INPUT naming the value, and round-trips', () => {
    fuzz('publish flags', { rounds: 3000 }, (rng) => {
      const text = rng.chance(2)
        ? flagText(rng)
        : [
            rng.pick(['', '127.0.0.1:', '[::1]:', '0.0.0.0:', 'x:']),
            rng.pick(['', `${rng.int(70000)}:`, ':']),
            String(rng.int(70000)),
            rng.pick(['', '/tcp', '/udp', '/sctp', '/']),
          ].join('');
      const binding = onlyTypedErrors(badInput, () => parsePublishFlag(text), text);
      if (!binding) {
        assert.throws(
          () => parsePublishFlag(text),
          (e: Error) => e.message.includes(`-p ${text}`),
        );
        return;
      }
      for (const port of [binding.containerPort, binding.hostPort ?? 1]) {
        assert.ok(Number.isInteger(port) && port >= 1 && port <= 65535, text);
      }
      assert.deepEqual(parsePublishFlag(formatPublish(binding)), binding, text);
    });
  });

  it('-v: parses to a source and an absolute target or is BAD_INPUT naming the value, and round-trips', () => {
    fuzz('volume flags', { rounds: 3000 }, (rng) => {
      const path = () => rng.string(rng.int(12), './abc:~ ');
      const text = rng.chance(2)
        ? flagText(rng)
        : `${path()}:${rng.chance(4) ? '' : '/'}${path()}${rng.pick(['', ':ro', ':rw', ':x'])}`;
      const mount = onlyTypedErrors(badInput, () => parseVolumeFlag(text), text);
      if (!mount) {
        assert.throws(
          () => parseVolumeFlag(text),
          (e: Error) => e.message.includes(`-v ${text}`),
        );
        return;
      }
      assert.ok(mount.source !== '' && mount.target.startsWith('/'), text);
      const again = parseVolumeFlag(`${mount.source}:${mount.target}${mount.readOnly ? ':ro' : ''}`);
      assert.deepEqual(again, mount, text);
    });
  });

  it('the workload argument is a name or kind/name, or BAD_INPUT', () => {
    fuzz('workload refs', { rounds: 2000 }, (rng) => {
      const text = rng.chance(2)
        ? rng.string(rng.int(20), 'ab/ .-DeployStsApps1v')
        : `${rng.pick(['deploy', 'Deployment', 'sts', 'statefulset.v1.apps', 'deployments.apps', 'pod', ''])}/${rng.string(rng.int(8), 'api-0')}`;
      const ref = onlyTypedErrors(badInput, () => parseWorkloadRef(text), text);
      if (!ref) return;
      assert.ok(ref.name !== '' && !ref.name.includes('/'), text);
      assert.ok(ref.kind === undefined || ref.kind === 'Deployment' || ref.kind === 'StatefulSet', text);
    });
  });

  it("a dev container's runArgs split into flags that point at entries that exist", () => {
    fuzz('run args', { rounds: 2000 }, (rng) => {
      const args = Array.from({ length: rng.int(8) }, () =>
        rng.chance(2)
          ? rng.pick(['-p', '-it', '-itp', '--publish', '--network=host', '-h', '--rm', '-e', '-'])
          : flagText(rng),
      );
      const parsed = parseRunArgs(args);
      let last = -1;
      for (const p of parsed) {
        assert.ok(p.index >= last && p.index < args.length, JSON.stringify(args));
        if (p.valueIndex !== undefined) {
          assert.equal(p.valueIndex, p.index + 1);
          assert.equal(p.value, args[p.valueIndex]);
        }
        last = p.valueIndex ?? p.index;
        assert.ok(p.flag.startsWith('-'), JSON.stringify(p));
      }
    });
  });
});
