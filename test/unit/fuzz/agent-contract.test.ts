/**
 * Seeded fuzzing of the agent's contract: the env `up` writes into the pod template, read back
 * by the agent at start and by a resumed `up` from the cluster (where anyone who may edit the
 * workload can change it). Encoded launches read back unchanged; edited ones read back to
 * valid settings or are BAD_INPUT naming the variable.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AGENT_ENV,
  type AgentEnvVar,
  type AgentLaunch,
  decodeAgentContainerEnv,
  decodeAgentEnv,
  encodeAgentEnv,
} from '../../../src/tunnel/agent-contract.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { fuzz, onlyTypedErrors, type Rng } from '../../support/fuzz.js';

const badInput = (err: unknown) => isDevboxError(err, 'BAD_INPUT');

function randomLaunch(rng: Rng): AgentLaunch {
  const tunnelPort = 1 + rng.int(65535);
  const healthPort = rng.chance(3) ? 0 : 1 + rng.int(65535);
  const listen = new Set<number>();
  const intercepts = [];
  for (let i = rng.int(4); i > 0; i--) {
    const listenPort = 1 + rng.int(65535);
    const appPort = 1 + rng.int(65535);
    if (
      listenPort === appPort ||
      listenPort === tunnelPort ||
      listenPort === healthPort ||
      listen.has(listenPort)
    )
      continue;
    listen.add(listenPort);
    intercepts.push({ listenPort, appPort });
  }
  return {
    tunnelPort,
    healthPort,
    intercepts,
    ...(rng.chance(2) ? { session: rng.string(8, 'abcdef0123') } : {}),
  };
}

function checkLaunch(launch: AgentLaunch, shown: string): void {
  assert.ok(launch.tunnelPort >= 1 && launch.tunnelPort <= 65535, shown);
  assert.ok(launch.healthPort >= 0 && launch.healthPort <= 65535, shown);
  const listen = launch.intercepts.map((i) => i.listenPort);
  assert.equal(new Set(listen).size, listen.length, shown);
  for (const i of launch.intercepts) {
    assert.ok(i.listenPort >= 1 && i.listenPort <= 65535 && i.appPort >= 1 && i.appPort <= 65535, shown);
    assert.ok(i.listenPort !== launch.tunnelPort && i.listenPort !== i.appPort, shown);
  }
}

describe("fuzz: the agent's env contract", () => {
  it('a launch written into a template reads back unchanged, by the agent and by a resumed up', () => {
    fuzz('agent env round trip', { rounds: 2000 }, (rng) => {
      const launch = randomLaunch(rng);
      const fromTemplate = decodeAgentContainerEnv(encodeAgentEnv(launch, { secret: 's', key: 'token' }));
      assert.deepEqual({ ...fromTemplate, tokenSecret: undefined }, { ...launch, tokenSecret: undefined });
      assert.deepEqual(fromTemplate.tokenSecret, { name: 's', key: 'token' });
      const env = Object.fromEntries(
        encodeAgentEnv(launch, { value: 't0ken' }).map((e) => [e.name, e.value]),
      );
      const agent = decodeAgentEnv(env);
      assert.deepEqual(
        {
          tunnelPort: agent.tunnelPort,
          healthPort: agent.healthPort,
          intercepts: agent.intercepts,
          session: agent.session,
        },
        { session: undefined, ...launch },
      );
    });
  });

  it('an edited agent env reads back to valid settings or is BAD_INPUT naming a variable', () => {
    const names = Object.values(AGENT_ENV);
    fuzz('agent env edited', { rounds: 3000 }, (rng) => {
      const env: AgentEnvVar[] = encodeAgentEnv(randomLaunch(rng), { secret: 's', key: 'k' });
      for (let i = 1 + rng.int(3); i > 0; i--) {
        const value = rng.chance(2)
          ? rng.string(rng.int(16), '0123456789:, x-')
          : String(rng.pick([-1, 0, 1, 65535, 65536, 99999999999, 47000]));
        if (rng.chance(4)) env.splice(rng.int(env.length), 1);
        else env.push({ name: rng.pick(names), value });
      }
      const shown = JSON.stringify(env);
      const read = onlyTypedErrors(badInput, () => decodeAgentContainerEnv(env), shown);
      if (read) checkLaunch(read, shown);
      const literal = Object.fromEntries(env.map((e) => [e.name, e.value ?? 'token']));
      const agent = onlyTypedErrors(badInput, () => decodeAgentEnv(literal), shown);
      if (agent) checkLaunch(agent, shown);
    });
  });
});
