/**
 * Output formats for a resolved environment: dotenv (sourceable by a POSIX shell with
 * `set -a; . ./file`, and read by the common dotenv parsers) and JSON.
 */
import type { ResolvedEnvVar } from './resolve.js';

/** What a masked secret value prints as. */
export const SECRET_MASK = '********';

export interface EnvFormatOptions {
  /** Replace the values of secret variables with SECRET_MASK. */
  maskSecrets?: boolean;
}

const bare = /^[A-Za-z0-9_./:@%+,=-]*$/;

/** Quotes a value so shells and dotenv parsers read it back unchanged. */
export function quoteDotenvValue(value: string): string {
  if (bare.test(value)) return value;
  // Single quotes are literal in shells, dotenv and compose files; newlines may sit inside.
  if (!value.includes("'")) return `'${value}'`;
  return `"${value.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

function shown(v: ResolvedEnvVar, options: EnvFormatOptions): string {
  return options.maskSecrets && v.secret ? SECRET_MASK : v.value;
}

/** `NAME=value` lines, in the order given, ending with a newline. */
export function toDotenv(vars: readonly ResolvedEnvVar[], options: EnvFormatOptions = {}): string {
  return vars.map((v) => `${v.name}=${quoteDotenvValue(shown(v, options))}\n`).join('');
}

/** A JSON object of name → value, in the order given, ending with a newline. */
export function toEnvJson(vars: readonly ResolvedEnvVar[], options: EnvFormatOptions = {}): string {
  // Built by hand: a JS object would move integer-like names (valid env names) to the front.
  const seen = new Map<string, string>();
  for (const v of vars) seen.set(v.name, shown(v, options));
  if (seen.size === 0) return '{}\n';
  const lines = [...seen].map(([k, v]) => `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
  return `{\n${lines.join(',\n')}\n}\n`;
}

/** `NAME=value` strings for Docker's `Env` (no quoting, secrets never masked). */
export function toDockerEnv(vars: readonly ResolvedEnvVar[]): string[] {
  return vars.map((v) => `${v.name}=${v.value}`);
}
