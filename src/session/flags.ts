/** Docker-style flags turned into data, with errors that name the flag. */
import { DevboxError } from '../util/errors.js';

const envName = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** `-e KEY=value`, or `-e KEY` to pass this shell's value through (as `docker run -e` does). */
export function parseEnvFlags(
  flags: readonly string[],
  hostEnv: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const out: Record<string, string> = {};
  const problems: string[] = [];
  for (const flag of flags) {
    const eq = flag.indexOf('=');
    const key = eq === -1 ? flag : flag.slice(0, eq);
    if (!envName.test(key)) {
      problems.push(`-e ${flag}: "${key}" is not a variable name`);
      continue;
    }
    if (eq !== -1) out[key] = flag.slice(eq + 1);
    else if (hostEnv[key] !== undefined) out[key] = hostEnv[key]!;
  }
  if (problems.length) {
    throw new DevboxError('BAD_INPUT', problems.join('\n'), { hint: 'use -e NAME=value or -e NAME' });
  }
  return out;
}
