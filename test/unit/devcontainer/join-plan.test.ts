import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DevcontainerConfig } from '../../../src/devcontainer/config.js';
import { assertJoinable, parseRunArgs, planJoin } from '../../../src/devcontainer/join-plan.js';
import { parseJsonc } from '../../../src/devcontainer/jsonc.js';
import { isDevboxError } from '../../../src/util/errors.js';

const plan = (text: string) => {
  const doc = parseJsonc(text, 'dc.json');
  return planJoin(doc, doc.value as DevcontainerConfig);
};

describe('parseRunArgs', () => {
  it('reads long flags with = or a separate value, booleans and short groups', () => {
    const parsed = parseRunArgs([
      '--cap-add=SYS_PTRACE',
      '--init',
      '--label',
      'a=b',
      '-it',
      '-p8080:80',
      '-p',
      '9090:90',
      '-h=x',
    ]);
    assert.deepEqual(
      parsed.map((p) => [p.flag, p.value ?? null]),
      [
        ['--cap-add', 'SYS_PTRACE'],
        ['--init', null],
        ['--label', 'a=b'],
        ['-i', null],
        ['-t', null],
        ['--publish', '8080:80'],
        ['--publish', '9090:90'],
        ['--hostname', 'x'],
      ],
    );
  });
});

describe('planJoin', () => {
  it('moves appPort and -p/--publish to the sidecar and keeps the rest of runArgs', () => {
    const result = plan(
      '{"image":"x","appPort":[3000,"8443:443"],"runArgs":["--init","-p","5000:5000/udp","--publish=127.0.0.1:7000:70","--cap-add","NET_RAW"]}',
    );
    assert.deepEqual(result.problems, []);
    assert.deepEqual(result.runArgs, ['--init', '--cap-add', 'NET_RAW']);
    assert.deepEqual(result.publish, [
      { containerPort: 3000, hostPort: 3000, hostIp: '127.0.0.1' },
      { containerPort: 443, hostPort: 8443 },
      { containerPort: 5000, hostPort: 5000, protocol: 'udp' },
      { containerPort: 70, hostPort: 7000, hostIp: '127.0.0.1' },
    ]);
    assert.equal(result.notes.length, 4);
  });

  it('a single number appPort is published on loopback as the Dev Containers CLI does', () => {
    assert.deepEqual(plan('{"image":"x","appPort":8080}').publish, [
      { containerPort: 8080, hostPort: 8080, hostIp: '127.0.0.1' },
    ]);
  });

  it('reports every flag Docker refuses on a joined container, with its position and the fix', () => {
    const text = `{
  "image": "x",
  "runArgs": [
    "--network=host",
    "--hostname", "dev",
    "--dns=1.1.1.1",
    "--add-host=db:10.0.0.1",
    "-P",
    "--expose", "80",
    "-itp", "80:80",
    "--mac-address=02:42:ac:11:00:02"
  ]
}`;
    const result = plan(text);
    const where = result.problems.map((p) => p.where);
    assert.deepEqual(where, [
      'dc.json:4:5',
      'dc.json:5:5',
      'dc.json:6:5',
      'dc.json:7:5',
      'dc.json:8:5',
      'dc.json:9:5',
      'dc.json:10:5',
      'dc.json:11:5',
    ]);
    assert.ok(result.problems.every((p) => p.fix.length > 0));
    assert.throws(
      () => assertJoinable('dc.json', result),
      (err) =>
        isDevboxError(err, 'BAD_INPUT') &&
        err.message.includes('dc.json:4:5: "--network=host"') &&
        err.message.includes('"--hostname dev"') &&
        err.message.includes('combines -p with other flags') &&
        /→ remove it from "runArgs"/.test(err.message),
    );
  });

  it('reports a malformed published port instead of guessing', () => {
    const result = plan('{"image":"x","appPort":["nope"],"runArgs":["-p","70000:1"]}');
    assert.equal(result.problems.length, 2);
    assert.match(result.problems[0]!.where, /dc\.json:1:25/);
  });

  it('accepts a config with nothing to change', () => {
    const result = plan('{"image":"x","runArgs":["--init","--privileged"]}');
    assert.deepEqual(result, { runArgs: ['--init', '--privileged'], publish: [], notes: [], problems: [] });
    assertJoinable('dc.json', result);
  });
});
