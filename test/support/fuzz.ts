/**
 * Seeded fuzzing. Every run draws from one seed: `DEVBOX_FUZZ_SEED` when set,
 * else a fresh random one, so each run explores new input and any failure can
 * be replayed exactly: the failure message names the seed to set.
 *
 *     DEVBOX_FUZZ_SEED=123456 node --test dist/test/unit/tunnel/spdy.test.js
 */
import { randomInt } from 'node:crypto';

/** The run's seed, read once. */
export const FUZZ_SEED: number = readSeed(process.env.DEVBOX_FUZZ_SEED);

function readSeed(text: string | undefined): number {
  if (text === undefined || text === '') return randomInt(1, 2 ** 32);
  const seed = Number(text);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new Error(`DEVBOX_FUZZ_SEED must be an integer from 0 to 4294967295, not ${JSON.stringify(text)}`);
  }
  return seed;
}

/** A small deterministic generator (xorshift32) with the draws fuzz tests need. */
export class Rng {
  private x: number;

  constructor(seed: number) {
    this.x = seed >>> 0 || 0x9e3779b9;
  }

  private next(): number {
    this.x ^= this.x << 13;
    this.x >>>= 0;
    this.x ^= this.x >>> 17;
    this.x ^= this.x << 5;
    this.x >>>= 0;
    return this.x;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    const x = this.next();
    return n <= 0 ? 0 : x % n;
  }

  /** True one time in `n`. */
  chance(n: number): boolean {
    return this.int(n) === 0;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  bytes(length: number): Buffer {
    const out = Buffer.allocUnsafe(length + 3);
    for (let i = 0; i < length; i += 4) out.writeUInt32LE(this.next(), i);
    return out.subarray(0, length);
  }

  /** A string of `length` characters drawn from `alphabet`. */
  string(length: number, alphabet: string): string {
    let out = '';
    for (let i = 0; i < length; i++) out += alphabet[this.int(alphabet.length)];
    return out;
  }

  /** `input` with a few bytes overwritten, inserted, deleted or cut off: near-valid input finds more than noise. */
  mutate(input: Buffer): Buffer {
    let out = Buffer.from(input);
    for (let edits = 1 + this.int(4); edits > 0; edits--) {
      const at = this.int(out.length + 1);
      switch (this.int(4)) {
        case 0:
          if (out.length) out[Math.min(at, out.length - 1)] = this.int(256);
          break;
        case 1:
          out = Buffer.concat([out.subarray(0, at), this.bytes(1 + this.int(8)), out.subarray(at)]);
          break;
        case 2:
          out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + this.int(8))]);
          break;
        default:
          out = out.subarray(0, at);
      }
    }
    return out;
  }
}

/** FNV-1a, so each test gets its own stream from the one run seed. */
function mix(seed: number, name: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export interface FuzzOptions {
  /** Rounds to run; keep a test well under a second. */
  rounds: number;
  /**
   * A round taking longer than this fails as a hang (default 1.5 s: far above any healthy round,
   * so that a loaded machine or a GC pause does not fail a test, yet a runaway parser does).
   */
  roundMs?: number;
}

function failure(name: string, round: number, err: unknown): Error {
  const text = err instanceof Error ? err.message : String(err);
  return new Error(
    `fuzz "${name}" failed in round ${round}; replay with DEVBOX_FUZZ_SEED=${FUZZ_SEED}\n${text}`,
    {
      cause: err,
    },
  );
}

/**
 * Runs `body` for each round with a generator seeded from the run seed and `name`.
 * A failing round, or one slower than `roundMs`, fails with a message naming the seed.
 */
export function fuzz(name: string, options: FuzzOptions, body: (rng: Rng, round: number) => void): void {
  const rng = new Rng(mix(FUZZ_SEED, name));
  const roundMs = options.roundMs ?? 1500;
  for (let round = 0; round < options.rounds; round++) {
    const started = performance.now();
    try {
      body(rng, round);
    } catch (err) {
      throw failure(name, round, err);
    }
    const took = performance.now() - started;
    if (took > roundMs)
      throw failure(name, round, new Error(`round took ${took.toFixed(0)} ms (limit ${roundMs} ms)`));
  }
}

/** {@link fuzz} for asynchronous bodies; a round that does not settle within `roundMs` fails as a hang. */
export async function fuzzAsync(
  name: string,
  options: FuzzOptions,
  body: (rng: Rng, round: number) => Promise<void>,
): Promise<void> {
  const rng = new Rng(mix(FUZZ_SEED, name));
  const roundMs = options.roundMs ?? 2000;
  for (let round = 0; round < options.rounds; round++) {
    let timer: NodeJS.Timeout | undefined;
    const hang = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`round did not finish within ${roundMs} ms`)), roundMs);
    });
    try {
      await Promise.race([body(rng, round), hang]);
    } catch (err) {
      throw failure(name, round, err);
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Calls `parse(input)` and returns its result, or undefined when it threw an error
 * `accepted` allows; any other thrown value fails, naming the input.
 */
export function onlyTypedErrors<T>(
  accepted: (err: unknown) => boolean,
  parse: () => T,
  input?: unknown,
): T | undefined {
  try {
    return parse();
  } catch (err) {
    if (accepted(err)) return undefined;
    const shown = Buffer.isBuffer(input) ? input.toString('hex') : JSON.stringify(input);
    const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    throw new Error(
      `untyped error ${text}${input === undefined ? '' : ` on input ${shown?.slice(0, 400)}`}`,
      {
        cause: err,
      },
    );
  }
}

/** A random JSON-like value: the shapes a hand-edited file or a tampered record holds where another was expected. */
export function randomValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 5 : 7)) {
    case 0:
      return rng.string(rng.int(10), 'ab:/.-_ 8é"\\{');
    case 1:
      return rng.int(3) === 0 ? -rng.int(1e6) : rng.int(70000);
    case 2:
      return rng.chance(2);
    case 3:
      return null;
    case 4:
      return rng.pick([
        '',
        '__proto__',
        'constructor',
        'devbox-agent',
        'app',
        'https://10.0.0.1:6443/',
        './ca.crt',
      ]);
    case 5:
      return Array.from({ length: rng.int(4) }, () => randomValue(rng, depth + 1));
    default: {
      const out: Record<string, unknown> = {};
      for (let i = rng.int(5); i > 0; i--) {
        const key = rng.pick(['name', 'server', 'image', 'container', 'x', '__proto__', 'a b']);
        Object.defineProperty(out, key, {
          value: randomValue(rng, depth + 1),
          enumerable: true,
          writable: true,
        });
      }
      return out;
    }
  }
}

/** A copy of `doc` with one value somewhere inside replaced by a {@link randomValue}. */
export function perturb(rng: Rng, doc: unknown): unknown {
  if (typeof doc !== 'object' || doc === null) return randomValue(rng);
  const copy: Record<string, unknown> | unknown[] = Array.isArray(doc) ? [...doc] : { ...(doc as object) };
  const keys = Object.keys(copy);
  if (keys.length === 0 || rng.chance(6)) return randomValue(rng);
  const key = rng.pick(keys);
  (copy as Record<string, unknown>)[key] = perturb(rng, (copy as Record<string, unknown>)[key]);
  return copy;
}
