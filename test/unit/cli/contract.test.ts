/** What a user and a script can rely on from every command, checked on the built CLI. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { PROTOCOL_VERSION } from '../../../src/tunnel/protocol.js';
import { devbox, listedCommands } from './cli.js';

/** How to call each command so that it gets past its arguments. */
const invocations: Record<string, string[]> = {
  up: ['up', 'api'],
  down: ['down', 'api'],
  share: ['share', 'api'],
  status: ['status'],
  env: ['env', 'api'],
  clean: ['clean'],
  doctor: ['doctor'],
  'devcontainer init': ['devcontainer', 'init', 'api'],
  version: ['version'],
  completion: ['completion', 'bash'],
};

const jsonError = (stdout: string) =>
  (JSON.parse(stdout) as { error: { code: string; message: string } }).error;

describe('the CLI contract', { timeout: 120_000 }, () => {
  let commands: string[][];
  let withOutput: string[];

  before(async () => {
    commands = await listedCommands();
    withOutput = [];
    for (const command of commands) {
      if ((await devbox([...command, '--help'])).stdout.includes('-o, --output <format>'))
        withOutput.push(command.join(' '));
    }
  });

  it('knows how to call every command the help lists', () => {
    assert.deepEqual(commands.map((c) => c.join(' ')).sort(), Object.keys(invocations).sort());
    assert.ok(withOutput.length >= 7, `commands with -o: ${withOutput.join(', ')}`);
  });

  it('refuses a bad -o value on every command that has -o, as bad input naming the flag', async () => {
    for (const command of withOutput) {
      const result = await devbox([...invocations[command]!, '-o', 'yaml']);
      assert.equal(result.code, 2, `${command}: ${result.stderr}`);
      assert.match(result.stderr, /-o, --output <format>.*'yaml'.*json/, command);
      assert.equal(result.stdout, '', command);
    }
  });

  it('prints errors as JSON however -o json is spelled', async () => {
    for (const spelling of [['-o', 'json'], ['-ojson'], ['--output=json'], ['--output', 'json']]) {
      const result = await devbox(['env', 'api', ...spelling]);
      assert.equal(result.code, 7, result.stderr);
      const error = jsonError(result.stdout);
      assert.equal(error.code, 'NO_CLUSTER');
      assert.match(error.message, /no kubeconfig/);
      assert.match(result.stderr, /^error: no kubeconfig/m, 'the text error still goes to stderr');
    }
  });

  it('prints JSON errors for a command line the parser refuses, when JSON was asked for', async () => {
    const result = await devbox(['up', 'api', '-ojson', '--timeout', 'abc']);
    assert.equal(result.code, 2, result.stderr);
    assert.match(jsonError(result.stdout).message, /--timeout/);
    const unknown = await devbox(['status', '--output=json', '--bogus']);
    assert.equal(unknown.code, 2);
    assert.match(jsonError(unknown.stdout).message, /--bogus/);
  });

  it('does not print JSON because a workload or a value is named json', async () => {
    for (const args of [
      ['env', 'json'],
      ['up', 'json'],
      ['up', 'api', '-e', 'json'],
      ['up', 'api', '-c', '-o', '--', 'json'],
      ['up', 'api', '--', 'echo', '-o', 'json'],
    ]) {
      const result = await devbox(args);
      assert.notEqual(result.code, 0, args.join(' '));
      assert.equal(result.stdout, '', `${args.join(' ')}: ${result.stdout}`);
    }
  });

  it('refuses malformed flag values before doing anything, naming the flag', async () => {
    for (const [args, flag] of [
      [['up', 'api', '--timeout', 'abc'], /--timeout/],
      [['up', 'api', '--timeout', '0'], /--timeout/],
      [['up', 'api', '--timeout', '-5'], /--timeout/],
      [['up', 'api', '--timeout='], /--timeout/],
      [['up', 'api', '--agent-image', ''], /--agent-image/],
      [['doctor', '--agent-image', ' '], /--agent-image/],
      [['up', 'api', '-e', '1BAD=x'], /-e 1BAD/],
      [['up', 'api', '-p', 'abc'], /-p abc/],
      [['up', 'api', '-v', 'nocolon'], /-v nocolon/],
      [['up', 'api', '--write-env', 'x'], /--sidecar-only/],
      [['completion', 'sh'], /bash, zsh, fish/],
    ] as const) {
      const result = await devbox([...args]);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, flag, args.join(' '));
      assert.doesNotMatch(
        result.stderr,
        /kubeconfig/,
        `${args.join(' ')} was refused for its flag, not later`,
      );
    }
  });

  it('up -o json prints nothing but JSON on stdout', async () => {
    const result = await devbox(['up', 'api', '-o', 'json']);
    assert.equal(result.code, 7);
    assert.equal(jsonError(result.stdout).code, 'NO_CLUSTER');
    assert.match(result.stderr, /kubeconfig/);
  });

  it('prints its own version, Node.js and the tunnel protocol, whatever npm sets', async () => {
    const own = (
      JSON.parse(readFileSync(new URL('../../../../package.json', import.meta.url), 'utf8')) as {
        version: string;
      }
    ).version;
    const env = { npm_package_version: '9.9.9' };
    const json = await devbox(['version', '-o', 'json'], env);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), {
      devbox: own,
      node: process.versions.node,
      tunnelProtocol: PROTOCOL_VERSION,
    });
    const text = await devbox(['version'], env);
    assert.equal(
      text.stdout,
      `devbox ${own}\nNode.js ${process.versions.node}\ntunnel protocol ${PROTOCOL_VERSION}\n`,
    );
    assert.equal((await devbox(['--version'], env)).stdout, `${own}\n`);
  });

  it('doctor exits with "problems found" (10) when a check fails, distinct from an internal error', async () => {
    const text = await devbox(['doctor']);
    assert.equal(text.code, 10, text.stderr);
    assert.match(text.stdout, /✗ cluster: no kubeconfig/);
    const json = await devbox(['doctor', '-o', 'json']);
    assert.equal(json.code, 10, json.stderr);
    const findings = JSON.parse(json.stdout) as { check: string; status: string }[];
    assert.equal(findings.find((f) => f.check === 'cluster')?.status, 'fail');
  });

  it('documents the exit codes in --help', async () => {
    const help = (await devbox(['--help'])).stdout;
    for (const code of ['1 ', '2 ', '10 ', '128+n'])
      assert.match(help, new RegExp(`\\n {2}${code.replace('+', '\\+')}`));
  });

  it('gives every command examples, kubectl flags where it reaches the cluster, and -o where it prints results', async () => {
    const local = ['status', 'version', 'completion'];
    for (const command of commands) {
      const name = command.join(' ');
      const help = (await devbox([...command, '--help'])).stdout;
      assert.match(help, /\nExamples:\n/, name);
      if (!local.includes(name))
        for (const flag of ['-n, --namespace', '--context', '--kubeconfig'])
          assert.ok(help.includes(flag), `${name} ${flag}`);
      if (name !== 'completion') assert.ok(withOutput.includes(name), `${name} has -o`);
    }
  });
});
