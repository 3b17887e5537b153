import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  AGENT_ENV,
  AGENT_TUNABLE_DEFAULTS,
  type AgentEnvVar,
  type AgentLaunch,
  decodeAgentContainerEnv,
  decodeAgentEnv,
  encodeAgentEnv,
} from '../../../src/tunnel/agent-contract.js';
import { isDevboxError } from '../../../src/util/errors.js';

/** The env a container process sees for a template env list (literal values only). */
function processEnv(env: AgentEnvVar[]): Record<string, string> {
  return Object.fromEntries(env.flatMap((e) => (e.value === undefined ? [] : [[e.name, e.value]])));
}

/** Asserts that `run` throws one BAD_INPUT error whose message holds every part. */
function refuses(run: () => unknown, parts: string[]): void {
  assert.throws(run, (err) => {
    assert.ok(isDevboxError(err, 'BAD_INPUT'), String(err));
    for (const part of parts) assert.ok(err.message.includes(part), `${part} in: ${err.message}`);
    return true;
  });
}

const launch: AgentLaunch = {
  tunnelPort: 47000,
  healthPort: 47004,
  intercepts: [
    { listenPort: 47002, appPort: 8080 },
    { listenPort: 47003, appPort: 9090 },
  ],
  session: 'a1b2c3',
};

describe('agent contract', () => {
  it('round-trips a launch through the agent process env', () => {
    const env = processEnv(encodeAgentEnv(launch, { value: 'tok' }));
    assert.deepEqual(decodeAgentEnv(env), { token: 'tok', ...launch, ...AGENT_TUNABLE_DEFAULTS });
  });

  it('round-trips a launch through a pod template, the token by Secret reference', () => {
    const env = encodeAgentEnv(launch, { secret: 'devbox-agent-deploy-api', key: 'token' });
    assert.deepEqual(env[0], {
      name: AGENT_ENV.token,
      valueFrom: { secretKeyRef: { name: 'devbox-agent-deploy-api', key: 'token' } },
    });
    assert.ok(!env.some((e) => e.value === 'tok'));
    assert.deepEqual(decodeAgentContainerEnv(env), {
      ...launch,
      tokenSecret: { name: 'devbox-agent-deploy-api', key: 'token' },
    });
  });

  it('round-trips seeded random launches', () => {
    let seed = 0x5eed;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 200; i++) {
      const ports = new Set<number>();
      const fresh = () => {
        let p: number;
        do p = 1 + next(65535);
        while (ports.has(p));
        ports.add(p);
        return p;
      };
      const tunnelPort = fresh();
      const healthPort = next(4) === 0 ? 0 : fresh();
      const intercepts = Array.from({ length: next(5) }, () => ({ listenPort: fresh(), appPort: fresh() }));
      const one: AgentLaunch = { tunnelPort, healthPort, intercepts, session: `s${i}` };
      const decoded = decodeAgentEnv(processEnv(encodeAgentEnv(one, { value: 'x' })));
      assert.deepEqual(
        { tunnelPort: decoded.tunnelPort, healthPort: decoded.healthPort, intercepts: decoded.intercepts },
        { tunnelPort, healthPort, intercepts },
        `seed ${0x5eed}, launch ${i}`,
      );
    }
  });

  it('reads spaces as separators and applies defaults', () => {
    const config = decodeAgentEnv({ [AGENT_ENV.token]: 't', [AGENT_ENV.intercept]: '9080:8080, 9443:8443' });
    assert.equal(config.tunnelPort, 47000);
    assert.equal(config.healthPort, 0);
    assert.equal(config.session, undefined);
    assert.deepEqual(config.intercepts, [
      { listenPort: 9080, appPort: 8080 },
      { listenPort: 9443, appPort: 8443 },
    ]);
  });

  it('refuses malformed values, naming each variable, all at once', () => {
    refuses(
      () =>
        decodeAgentEnv({
          [AGENT_ENV.tunnelPort]: '47000x',
          [AGENT_ENV.healthPort]: '70000',
          [AGENT_ENV.intercept]: '47002:8080,47002:8081,8080,1:1,0:80',
          [AGENT_ENV.acceptWaitMs]: '-1',
          [AGENT_ENV.sessionTimeoutMs]: '1e9',
        }),
      [
        'DEVBOX_AGENT_TOKEN is required',
        'DEVBOX_TUNNEL_PORT must be an integer from 1 to 65535, got "47000x"',
        'DEVBOX_HEALTH_PORT must be an integer from 0 to 65535, got "70000"',
        'DEVBOX_INTERCEPT listens twice on 47002',
        'DEVBOX_INTERCEPT entry "8080" is not listenPort:appPort',
        `DEVBOX_INTERCEPT entry "1:1" listens on the app's own port`,
        'DEVBOX_INTERCEPT entry "0:80" is not listenPort:appPort',
        'DEVBOX_ACCEPT_WAIT_MS',
        'DEVBOX_SESSION_TIMEOUT_MS',
      ],
    );
  });

  it('refuses an intercept on the tunnel or health port', () => {
    refuses(
      () =>
        decodeAgentEnv({
          [AGENT_ENV.token]: 't',
          [AGENT_ENV.tunnelPort]: '47000',
          [AGENT_ENV.healthPort]: '47001',
          [AGENT_ENV.intercept]: '47000:80,47001:81',
        }),
      [
        'DEVBOX_INTERCEPT listen port 47000 collides with DEVBOX_TUNNEL_PORT',
        'DEVBOX_INTERCEPT listen port 47001 collides with DEVBOX_HEALTH_PORT',
      ],
    );
  });

  it('refuses an agent container whose env was edited, with the caller’s hint', () => {
    const edited = encodeAgentEnv(launch, { secret: 's', key: 'token' })
      .filter((e) => e.name !== AGENT_ENV.token && e.name !== AGENT_ENV.tunnelPort)
      .map((e) => (e.name === AGENT_ENV.intercept ? { ...e, value: '47002:80:1' } : e));
    assert.throws(
      () => decodeAgentContainerEnv(edited, 'run `devbox down api`'),
      (err) => {
        assert.ok(isDevboxError(err, 'BAD_INPUT'));
        for (const part of [
          'DEVBOX_AGENT_TOKEN is required',
          'DEVBOX_TUNNEL_PORT is missing',
          'DEVBOX_INTERCEPT entry "47002:80:1"',
        ])
          assert.ok(err.message.includes(part), `${part} in: ${err.message}`);
        assert.equal(err.hint, 'run `devbox down api`');
        return true;
      },
    );
    refuses(() => decodeAgentContainerEnv(undefined), ['DEVBOX_AGENT_TOKEN is required']);
  });
});
