import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Command } from '@commander-js/extra-typings';
import { requestedOutput } from '../../../src/cli/argv.js';

const program = new Command('devbox').addCommand(
  new Command('up')
    .argument('<workload>')
    .option('-e, --env <kv>')
    .option('-d, --detach')
    .option('--devcontainer [path]')
    .option('-o, --output <format>'),
);

describe('the output format a command line asks for', () => {
  it('reads every spelling of -o', () => {
    for (const args of [
      ['up', 'api', '-o', 'json'],
      ['up', 'api', '-ojson'],
      ['up', 'api', '--output=json'],
      ['up', 'api', '--output', 'json'],
      ['up', '-dojson', 'api'],
      ['up', '--devcontainer', '-o', 'json', 'api'],
    ])
      assert.equal(requestedOutput(program, args), 'json', args.join(' '));
  });

  it('ignores json anywhere but as the value of -o', () => {
    for (const args of [
      ['up', 'json'],
      ['up', 'api', '-e', 'json'],
      ['up', 'api', '-e', '-o', 'json'],
      ['up', 'api', '--', '-o', 'json'],
      ['up', 'api', '--devcontainer', 'json'],
      ['json'],
    ])
      assert.equal(requestedOutput(program, args), undefined, args.join(' '));
  });

  it('takes the last -o, as commander does', () => {
    assert.equal(requestedOutput(program, ['up', 'a', '-o', 'json', '-o', 'text']), 'text');
  });
});
