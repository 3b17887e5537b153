/**
 * Kubernetes resource quantities ("500m", "1.5Gi", "2e3") as exact rationals, with the
 * rounding the kubelet applies when it turns them into downward-API values.
 */
import { DevboxError } from '../../util/errors.js';

/** An exact quantity: `num / den`, with `den > 0`. */
export interface Quantity {
  num: bigint;
  den: bigint;
}

const binarySuffixes: Record<string, bigint> = {
  Ki: 1n << 10n,
  Mi: 1n << 20n,
  Gi: 1n << 30n,
  Ti: 1n << 40n,
  Pi: 1n << 50n,
  Ei: 1n << 60n,
};
const decimalSuffixes: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

const numberPattern = /^([+-]?)(\d*)(?:\.(\d*))?(.*)$/;
/**
 * Largest decimal exponent accepted. No resource comes near it (the kubelet saturates at
 * 2^63), and beyond it the exact arithmetic costs seconds, then fails outright.
 */
const EXPONENT_MAX = 1000;

/** Parses a quantity string; throws BAD_INPUT for anything the API server would reject. */
export function parseQuantity(text: string): Quantity {
  const m = numberPattern.exec(text);
  const whole = m?.[2] ?? '';
  const frac = m?.[3] ?? '';
  if (!m || (whole === '' && frac === '')) throw badQuantity(text);
  const sign = m[1] === '-' ? -1n : 1n;
  const suffix = m[4] ?? '';
  let num = sign * BigInt(`${whole}${frac}` || '0');
  let den = 10n ** BigInt(frac.length);
  let exp10 = 0;
  if (suffix in binarySuffixes) {
    num *= binarySuffixes[suffix] as bigint;
  } else if (suffix in decimalSuffixes) {
    exp10 = decimalSuffixes[suffix] as number;
  } else if (/^[eE][+-]?\d+$/.test(suffix)) {
    exp10 = Number.parseInt(suffix.slice(1), 10);
    if (Math.abs(exp10) > EXPONENT_MAX) {
      throw new DevboxError('BAD_INPUT', `quantity ${JSON.stringify(text)} is out of range`, {
        hint: `use an exponent from -${EXPONENT_MAX} to ${EXPONENT_MAX}, or a suffix such as Gi`,
      });
    }
  } else {
    throw badQuantity(text);
  }
  if (exp10 >= 0) num *= 10n ** BigInt(exp10);
  else den *= 10n ** BigInt(-exp10);
  return { num, den };
}

function badQuantity(text: string): DevboxError {
  return new DevboxError(
    'BAD_INPUT',
    `quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': ${JSON.stringify(text)}`,
  );
}

/** Smallest integer >= a/b for b > 0. */
function ceilDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a > 0n ? q + 1n : q;
}

/** The quantity rounded up to an integer, as Go's `Quantity.Value()`. */
export function quantityValue(q: Quantity): bigint {
  return ceilDiv(q.num, q.den);
}

/** The quantity times 1000 rounded up, as Go's `Quantity.MilliValue()`. */
export function quantityMilliValue(q: Quantity): bigint {
  return ceilDiv(q.num * 1000n, q.den);
}

export function isZeroQuantity(q: Quantity): boolean {
  return q.num === 0n;
}
