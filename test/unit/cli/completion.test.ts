/** Completion scripts follow the command tree: what they offer is what `--help` lists. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { devbox, listedCommands } from './cli.js';

const run = promisify(execFile);

describe('devbox completion', { timeout: 120_000 }, () => {
  let dir: string;
  let bashScript: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'devbox-completion-'));
    const result = await devbox(['completion', 'bash']);
    assert.equal(result.code, 0, result.stderr);
    bashScript = join(dir, 'devbox.bash');
    await writeFile(bashScript, result.stdout);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** What bash offers after `line` (a trailing space: a new word). */
  const complete = async (line: string): Promise<string[]> => {
    const words = line.split(' ');
    const script = `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _devbox; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const { stdout } = await run('bash', ['-c', script, 'bash', bashScript, ...words]);
    return stdout.split('\n').filter(Boolean);
  };

  it('offers every command of the help, then their flags and the values of -o', async () => {
    const top = await complete('devbox ');
    for (const [name] of await listedCommands()) assert.ok(top.includes(name!), `${name} in ${top}`);
    assert.deepEqual(await complete('devbox up --nam'), ['--namespace', '--name']);
    assert.ok((await complete('devbox up --')).includes('--timeout'));
    assert.deepEqual(await complete('devbox status -o '), ['text', 'json']);
    assert.deepEqual(await complete('devbox env -o '), ['dotenv', 'json']);
    assert.deepEqual((await complete('devbox completion ')).slice(0, 3), ['bash', 'zsh', 'fish']);
  });

  it('goes into nested commands and leaves flag values to file completion', async () => {
    assert.ok((await complete('devbox devcontainer ')).includes('init'));
    assert.deepEqual(await complete('devbox devcontainer init --devb'), ['--devbox-command']);
    assert.deepEqual(await complete('devbox up -n '), []);
    assert.deepEqual(await complete('devbox up -n shop --ti'), ['--timeout']);
  });

  it('writes zsh and fish scripts from the same tree', async () => {
    const zsh = await devbox(['completion', 'zsh']);
    assert.equal(zsh.code, 0, zsh.stderr);
    assert.match(zsh.stdout, /^#compdef devbox\n/);
    assert.match(zsh.stdout, /'\/devcontainer\/init'\) candidates=\(.*'--devbox-command:/);
    assert.match(zsh.stdout, /'\/env -o'\|'\/env --output'\) compadd -- dotenv json/);
    const fish = await devbox(['completion', 'fish']);
    assert.equal(fish.code, 0, fish.stderr);
    assert.match(fish.stdout, /complete -c devbox -n '__fish_seen_subcommand_from up' -l timeout -r -F/);
    assert.match(
      fish.stdout,
      /complete -c devbox -n '__fish_seen_subcommand_from devcontainer; and not __fish_seen_subcommand_from init help' -a init/,
    );
    assert.match(fish.stdout, /-s o -l output -x -a 'dotenv json'/);
  });
});
