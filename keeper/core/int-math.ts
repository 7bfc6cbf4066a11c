// Exact integer helpers. Safe-integer (double) arithmetic on the hot path, bigint elsewhere.

import { InvariantError } from "./errors.ts";

const BPS = 10_000;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/**
 * ceil(a * bps / 10000) for a safe integer a >= 0 and |bps| <= 10000, exact even when a * bps
 * would leave the safe-integer range: a is split at 10000 so each product stays small.
 */
export function bpsUp(a: number, bps: number): number {
  const n = a * bps;
  // Below 2^53 the product is exact, and a non-integer n / 10000 never rounds to an integer
  // (its distance to one, >= 1e-4, exceeds half an ulp there), so ceil of the double is exact.
  if (n <= MAX_SAFE && n >= -MAX_SAFE) return Math.ceil(n / BPS);
  const hi = Math.floor(a / BPS);
  const lo = a - hi * BPS;
  return hi * bps + Math.ceil((lo * bps) / BPS);
}

/** floor(a * bps / 10000), same domain as bpsUp. */
export function bpsDown(a: number, bps: number): number {
  const n = a * bps;
  if (n <= MAX_SAFE && n >= -MAX_SAFE) return Math.floor(n / BPS);
  const hi = Math.floor(a / BPS);
  const lo = a - hi * BPS;
  return hi * bps + Math.floor((lo * bps) / BPS);
}

/** Floor division for bigints (rounds toward negative infinity). */
export function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
}

/** Ceil division for bigints with b > 0. */
export function ceilDiv(a: bigint, b: bigint): bigint {
  return -floorDiv(-a, b);
}

/** Greatest common divisor of two bigints (>= 0; gcd(0, 0) = 0). */
export function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b < 0n ? -b : b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

/** Least common multiple of positive bigints. */
export function lcm(a: bigint, b: bigint): bigint {
  return (a / gcd(a, b)) * b;
}

export function toSafeNumber(x: bigint, what: string): number {
  if (x > BigInt(Number.MAX_SAFE_INTEGER) || x < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new InvariantError(`${what} leaves the safe-integer range`, { value: x.toString() });
  }
  return Number(x);
}

/**
 * Splits `total` into integer shares proportional to `weights`, each share capped by `caps`
 * (when given). Largest-remainder rounding; remainder ties go to the lower index, so the
 * result is a pure function of the inputs. Requires sum(caps) >= total when caps are given.
 * Shares are returned in input order and sum to exactly `total`.
 */
export function proRata(total: bigint, weights: readonly bigint[], caps?: readonly bigint[]): bigint[] {
  const n = weights.length;
  const shares: bigint[] = new Array<bigint>(n).fill(0n);
  if (total === 0n) return shares;
  if (total < 0n) throw new InvariantError("proRata of a negative total", { total: total.toString() });
  const active: boolean[] = weights.map((w, i) => w > 0n && (caps === undefined || (caps[i] ?? 0n) > 0n));
  let left = total;
  // Water-filling: participants whose proportional share reaches their cap take the cap and
  // drop out; the rest is shared again among the others.
  for (;;) {
    let weightSum = 0n;
    for (let i = 0; i < n; i++) if (active[i]) weightSum += weights[i]!;
    if (weightSum === 0n) {
      if (left === 0n) return shares;
      throw new InvariantError("proRata cannot place the total within the caps", { left: left.toString() });
    }
    let capped = false;
    if (caps !== undefined) {
      for (let i = 0; i < n; i++) {
        if (!active[i]) continue;
        const room = caps[i]! - shares[i]!;
        if ((left * weights[i]!) / weightSum >= room) {
          shares[i] = caps[i]!;
          left -= room;
          active[i] = false;
          capped = true;
        }
      }
    }
    if (capped) continue;
    const rema: { i: number; r: bigint }[] = [];
    let given = 0n;
    for (let i = 0; i < n; i++) {
      if (!active[i]) continue;
      const num = left * weights[i]!;
      const q = num / weightSum;
      shares[i] = shares[i]! + q;
      given += q;
      rema.push({ i, r: num % weightSum });
    }
    let rest = left - given;
    rema.sort((a, b) => (a.r === b.r ? a.i - b.i : a.r > b.r ? -1 : 1));
    // rest < number of active participants, and each of them has room for one more unit
    // because its floor share stayed strictly below its cap.
    for (const { i } of rema) {
      if (rest === 0n) break;
      shares[i] = shares[i]! + 1n;
      rest -= 1n;
    }
    return shares;
  }
}
