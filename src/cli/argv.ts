/**
 * The output format a command line asks for, read the way commander reads it
 * (`-o json`, `-ojson`, `--output json`, `--output=json`), so that an error met
 * while parsing the rest is reported as JSON too. Only the value of
 * `-o/--output` counts: a workload or argument named `json` does not.
 */
import type { CommandUnknownOpts, Option } from '@commander-js/extra-typings';

export function requestedOutput(program: CommandUnknownOpts, args: readonly string[]): string | undefined {
  let command = program;
  let output: string | undefined;
  let positional = false;
  for (let i = 0; i < args.length; i++) {
    const token = args[i]!;
    if (token === '--') break;
    if (token.startsWith('--')) {
      const eq = token.indexOf('=');
      const option = findOption(command, eq === -1 ? token : token.slice(0, eq));
      let value: string | undefined = eq === -1 ? undefined : token.slice(eq + 1);
      if (value === undefined && option && takesNext(option, args[i + 1])) value = args[++i];
      if (option?.long === '--output') output = value;
    } else if (token.startsWith('-') && token.length > 1) {
      // Short flags: `-o json`, `-ojson`, and booleans grouped as `-dojson`.
      for (let at = 1; at < token.length; at++) {
        const option = findOption(command, `-${token[at]}`);
        if (!option || !(option.required || option.optional)) continue;
        let value: string | undefined = token.slice(at + 1) || undefined;
        if (value === undefined && takesNext(option, args[i + 1])) value = args[++i];
        if (option.long === '--output') output = value;
        break;
      }
    } else {
      const sub = positional
        ? undefined
        : command.commands.find((c) => c.name() === token || c.aliases().includes(token));
      if (sub) command = sub;
      else positional = true;
    }
  }
  return output;
}

function findOption(command: CommandUnknownOpts, flag: string): Option | undefined {
  for (let c: CommandUnknownOpts | null = command; c; c = c.parent) {
    const option = c.options.find((o) => o.long === flag || o.short === flag);
    if (option) return option;
  }
  return undefined;
}

/** Whether the option takes the next word as its value: always when required, unless it is a flag when optional. */
function takesNext(option: Option, next: string | undefined): boolean {
  if (next === undefined) return false;
  if (option.required) return true;
  return Boolean(option.optional) && !next.startsWith('-');
}
