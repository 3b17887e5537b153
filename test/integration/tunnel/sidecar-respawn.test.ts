/**
 * The sidecar daemon crashing is survived in place: its supervisor starts it again in the same
 * container, so the service container keeps the network namespace it joined (a restarted
 * container would leave it with a dead loopback), and the session serves again by itself.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { docker } from '../../support/cluster.js';
import { startWorld, type World } from './fixture.js';

/** Kills the sidecar daemon (the supervisor's child, not PID 1) inside its container; its pid. */
const KILL_DAEMON = `
const fs = require('node:fs');
for (const pid of fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p) && p !== '1')) {
  let env = '';
  try { env = fs.readFileSync('/proc/' + pid + '/environ', 'utf8'); } catch { continue; }
  if (env.split('\\0').includes('DEVBOX_SIDECAR_DAEMON=1')) { process.kill(Number(pid), 'SIGKILL'); console.log(pid); process.exit(0); }
}
process.exit(3);
`;

const ECHO_ROLE = "fetch('http://echo/').then((r) => r.json()).then((b) => console.log(b.role))";

describe('sidecar daemon crash', { timeout: 300_000 }, () => {
  let world: World;

  before(async () => {
    world = await startWorld('tnl-respawn', 'tnl-respawn');
  });

  after(async () => {
    await world?.teardown();
  });

  it('is restarted in the same container and the local app reaches the cluster again', async () => {
    assert.equal((await world.local(ECHO_ROLE)).trim(), 'echo');
    const killed = await docker(['exec', world.sidecar, 'node', '-e', KILL_DAEMON]);
    assert.equal(killed.code, 0, `no daemon process found: ${killed.stderr}`);
    const deadline = Date.now() + 30_000;
    let answer = '';
    while (Date.now() < deadline) {
      answer = (await world.local(ECHO_ROLE, [], 10_000).catch((err) => String(err))).trim();
      if (answer === 'echo') break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    assert.equal(answer, 'echo', 'the local app reaches the cluster after the restart');
    const state = await docker(['inspect', '-f', '{{.State.Running}} {{.RestartCount}}', world.sidecar]);
    assert.equal(state.stdout.trim(), 'true 0', 'the container itself never restarted');
    const logs = await docker(['logs', world.sidecar]);
    assert.match(logs.stderr + logs.stdout, /restarting it in the same network namespace/);
  });
});
