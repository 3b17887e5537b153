import { readFileSync } from 'node:fs';
import { Command } from '@commander-js/extra-typings';

import { PROTOCOL_VERSION } from '../tunnel/protocol.js';
import { outputOption, printJson } from './output.js';

/** devbox's own version, from the package.json it ships with (not from the environment npm sets). */
export function devboxVersion(): string {
  // dist/src/cli/version.js → the package's root.
  const file = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

export function versionCommand() {
  return new Command('version')
    .description("Print devbox's version, the Node.js it runs on and its tunnel protocol version")
    .addOption(outputOption(['text', 'json']))
    .addHelpText('after', '\nExamples:\n  devbox version\n  devbox version -o json')
    .action((flags) => {
      const versions = {
        devbox: devboxVersion(),
        node: process.versions.node,
        tunnelProtocol: PROTOCOL_VERSION,
      };
      if (flags.output === 'json') return printJson(versions);
      process.stdout.write(
        `devbox ${versions.devbox}\nNode.js ${versions.node}\ntunnel protocol ${versions.tunnelProtocol}\n`,
      );
    });
}
