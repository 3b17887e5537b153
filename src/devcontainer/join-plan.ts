/**
 * What changes when a dev container joins the sidecar's network namespace.
 * Docker refuses a hostname, DNS settings, extra hosts, links, a MAC or IP
 * address and any port publishing on a container that joins another one's
 * network; the Dev Containers CLI turns `appPort` into `-p`. Published ports
 * move to the sidecar (which owns the network, so they reach the dev
 * container); everything else is reported, with its position and what to change.
 */
import type { PortBinding } from '../docker/index.js';
import { parsePublishFlag } from '../docker/index.js';
import { DevboxError, errorText } from '../util/errors.js';
import type { DevcontainerConfig } from './config.js';
import { type JsoncDocument, locate } from './jsonc.js';

/** A `runArgs` entry or property Docker would refuse, and what to do instead. */
export interface JoinProblem {
  /** `file:line:column` */
  where: string;
  what: string;
  fix: string;
}

export interface JoinPlan {
  /** `runArgs` left for the dev container (published ports removed). */
  runArgs: string[];
  /** Ports to publish on the sidecar instead, from `appPort` and `-p`/`--publish` in `runArgs`. */
  publish: PortBinding[];
  /** What moved, for the user to know. */
  notes: string[];
  problems: JoinProblem[];
}

/** docker run flags that take no value (so the next entry is not theirs). */
const BOOLEAN_FLAGS = new Set([
  '--init',
  '--privileged',
  '--rm',
  '--detach',
  '--interactive',
  '--tty',
  '--read-only',
  '--publish-all',
  '--no-healthcheck',
  '--oom-kill-disable',
  '--disable-content-trust',
  '--quiet',
  '--help',
  '--sig-proxy',
  '--use-api-socket',
]);
const BOOLEAN_SHORT = new Set(['d', 'i', 't', 'P', 'q']);
const SHORT_WITH_VALUE = new Set(['a', 'c', 'e', 'h', 'l', 'm', 'p', 'u', 'v', 'w']);

/** Refused on a joined container: flag → [what, fix]. */
const REFUSED: Record<string, [string, string]> = {
  '--network': [
    'the dev container must join the session sidecar\'s network ("--network=container:<sidecar>"), so it cannot choose a network',
    'remove it from "runArgs"; the cluster and the host are reached through the sidecar',
  ],
  '--net': [
    "the dev container must join the session sidecar's network, so it cannot choose a network",
    'remove it from "runArgs"',
  ],
  '--hostname': [
    "a container joined to another one's network takes that container's hostname (the pod's name)",
    'remove it from "runArgs"',
  ],
  '--domainname': [
    "a container joined to another one's network takes that container's host and domain name",
    'remove it from "runArgs"',
  ],
  '--dns': [
    "DNS comes from the sidecar, which answers with the cluster's names (Docker refuses --dns on a joined container)",
    'remove it from "runArgs"',
  ],
  '--dns-search': ["the search list is the pod's, set on the sidecar", 'remove it from "runArgs"'],
  '--dns-option': ["DNS options are the pod's, set on the sidecar", 'remove it from "runArgs"'],
  '--dns-opt': ["DNS options are the pod's, set on the sidecar", 'remove it from "runArgs"'],
  '--add-host': [
    'Docker refuses extra hosts on a joined container',
    "remove it; resolve the name in the cluster, or add it to the image's /etc/hosts in your Dockerfile",
  ],
  '--link': ['Docker refuses links on a joined container', 'remove it from "runArgs"'],
  '--mac-address': ['Docker refuses a MAC address on a joined container', 'remove it from "runArgs"'],
  '--ip': ["the address is the sidecar's", 'remove it from "runArgs"'],
  '--ip6': ["the address is the sidecar's", 'remove it from "runArgs"'],
  '--network-alias': ["network aliases belong to the sidecar's network", 'remove it from "runArgs"'],
  '--net-alias': ["network aliases belong to the sidecar's network", 'remove it from "runArgs"'],
  '--expose': [
    'Docker refuses exposed ports on a joined container',
    'remove it; every port the dev container listens on is already reachable inside the session, and `devbox up -p` publishes one on this machine',
  ],
  '--publish-all': [
    'Docker refuses publishing on a joined container, and -P has no port list to move to the sidecar',
    'replace it with explicit ports in "appPort" or `devbox up -p <host>:<container>`',
  ],
};
const SHORT_ALIASES: Record<string, string> = { h: '--hostname', p: '--publish', P: '--publish-all' };

interface ParsedArg {
  index: number;
  /** Index of the value when it is the next entry. */
  valueIndex?: number;
  flag: string;
  value?: string;
  /** Part of a group of short flags (`-itp 80`). */
  combined?: boolean;
}

/** Splits runArgs into flags and their values as the docker CLI reads them. */
export function parseRunArgs(args: readonly string[]): ParsedArg[] {
  const out: ParsedArg[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      if (eq !== -1) out.push({ index: i, flag: arg.slice(0, eq), value: arg.slice(eq + 1) });
      else if (BOOLEAN_FLAGS.has(arg) || i + 1 >= args.length) out.push({ index: i, flag: arg });
      else {
        out.push({ index: i, valueIndex: i + 1, flag: arg, value: args[i + 1] ?? '' });
        i++;
      }
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1) {
      const letters = arg.slice(1);
      // Combined booleans (-it), then a shorthand that may carry its value (-p8080:80, -p=8080:80, -p 8080:80).
      let j = 0;
      while (j < letters.length && BOOLEAN_SHORT.has(letters[j]!)) {
        out.push({
          index: i,
          flag: SHORT_ALIASES[letters[j]!] ?? `-${letters[j]}`,
          combined: letters.length > 1,
        });
        j++;
      }
      if (j >= letters.length) continue;
      const letter = letters[j]!;
      const flag = SHORT_ALIASES[letter] ?? `-${letter}`;
      const rest = letters.slice(j + 1).replace(/^=/, '');
      const base = { index: i, flag, ...(j > 0 ? { combined: true } : {}) };
      if (!SHORT_WITH_VALUE.has(letter)) out.push(base);
      else if (rest) out.push({ ...base, value: rest });
      else if (i + 1 < args.length) {
        out.push({ ...base, valueIndex: i + 1, value: args[i + 1] ?? '' });
        i++;
      } else out.push(base);
    }
    // A positional entry: docker run would read it as the image; leave it to docker.
  }
  return out;
}

/** appPort as the Dev Containers CLI publishes it: numbers on 127.0.0.1, strings as `-p` values. */
function appPortBinding(port: number | string): PortBinding {
  return typeof port === 'number' ? parsePublishFlag(`127.0.0.1:${port}:${port}`) : parsePublishFlag(port);
}

/**
 * How `config` runs joined to a sidecar: ports to publish on the sidecar and
 * runArgs without them, or every problem at once (see `assertJoinable`).
 */
export function planJoin(doc: JsoncDocument, config: DevcontainerConfig): JoinPlan {
  const problems: JoinProblem[] = [];
  const notes: string[] = [];
  const publish: PortBinding[] = [];
  const args = config.runArgs ?? [];

  const ports =
    config.appPort === undefined ? [] : Array.isArray(config.appPort) ? config.appPort : [config.appPort];
  ports.forEach((port, i) => {
    const path = Array.isArray(config.appPort) ? ['appPort', i] : ['appPort'];
    try {
      publish.push(appPortBinding(port));
      notes.push(
        `appPort ${port} is published on the session sidecar (the dev container shares its network)`,
      );
    } catch (err) {
      problems.push({
        where: locate(doc, path),
        what: `appPort ${port}: ${errorText(err)}`,
        fix: 'use "8080" or "127.0.0.1:8080:3000"',
      });
    }
  });

  const drop = new Set<number>();
  for (const parsed of parseRunArgs(args)) {
    const where = locate(doc, ['runArgs', parsed.index]);
    const shown =
      parsed.valueIndex !== undefined
        ? `${args[parsed.index]} ${args[parsed.valueIndex]}`
        : args[parsed.index];
    if (parsed.flag === '--publish' && parsed.combined) {
      problems.push({
        where,
        what: `"${shown}" combines -p with other flags`,
        fix: 'write -p on its own entry so devbox can move it to the sidecar',
      });
      continue;
    }
    if (parsed.flag === '--publish') {
      try {
        publish.push(parsePublishFlag(parsed.value ?? ''));
        drop.add(parsed.index);
        if (parsed.valueIndex !== undefined) drop.add(parsed.valueIndex);
        notes.push(`"${shown}" is published on the session sidecar instead of the dev container`);
      } catch (err) {
        problems.push({
          where,
          what: `"${shown}": ${errorText(err)}`,
          fix: 'use -p <host port>:<container port>',
        });
      }
      continue;
    }
    const refused = REFUSED[parsed.flag];
    if (refused) problems.push({ where, what: `"${shown}": ${refused[0]}`, fix: refused[1] });
  }
  return { runArgs: args.filter((_, i) => !drop.has(i)), publish, notes, problems };
}

/** Throws a BAD_INPUT listing every problem of `plan`, with positions and fixes. */
export function assertJoinable(file: string, plan: JoinPlan): void {
  if (plan.problems.length === 0) return;
  const lines = plan.problems.map((p) => `${p.where}: ${p.what}\n      → ${p.fix}`);
  throw new DevboxError(
    'BAD_INPUT',
    `${file} sets what a dev container joined to a devbox session cannot have:\n  ${lines.join('\n  ')}`,
    {
      hint: 'The dev container shares the session sidecar\'s network (cluster DNS and addresses, the pod\'s hostname); ports go on the sidecar with "appPort" or `devbox up -p`.',
    },
  );
}
