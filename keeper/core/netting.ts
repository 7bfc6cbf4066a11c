// Netting: what the session changed, per (account, token), in vault base units. These are the
// entries the keeper posts on-chain; the vault's finalize refuses unless every token's deltas
// sum to zero, so the core asserts the same here first: a non-zero sum is a core bug.

import { InvariantError } from "./errors.ts";
import type { AccountId, AssetId, NetDelta } from "./types.ts";

/** int112 bounds of the vault's delta field. */
const DELTA_MAX = (1n << 111n) - 1n;
const DELTA_MIN = -(1n << 111n);

export interface NettingAccount {
  readonly user: AccountId;
  /** Final balance by dense asset index. */
  readonly final: readonly bigint[];
  /** Deposits minus withdrawals during the session, by dense asset index. */
  readonly net: readonly bigint[];
}

/**
 * delta = final - net deposits. Returns the non-zero deltas sorted by (user, asset) and
 * throws InvariantError unless each asset's deltas sum to exactly zero and fit int112.
 */
export function netDeltas(assetIds: readonly AssetId[], accounts: readonly NettingAccount[]): NetDelta[] {
  const sums = assetIds.map(() => 0n);
  const out: NetDelta[] = [];
  const sorted = [...accounts].sort((a, b) => a.user - b.user);
  for (const acc of sorted) {
    assetIds.forEach((asset, a) => {
      const delta = (acc.final[a] ?? 0n) - (acc.net[a] ?? 0n);
      sums[a] = sums[a]! + delta;
      if (delta === 0n) return;
      if (delta > DELTA_MAX || delta < DELTA_MIN) {
        throw new InvariantError("delta does not fit int112", { user: acc.user, asset, delta: delta.toString() });
      }
      out.push({ user: acc.user, asset, delta });
    });
  }
  assertNetZero(assetIds, out);
  return out;
}

/** Throws InvariantError unless every asset's deltas sum to exactly zero. */
export function assertNetZero(assetIds: readonly AssetId[], deltas: readonly NetDelta[]): void {
  const sums = new Map<AssetId, bigint>(assetIds.map((a) => [a, 0n]));
  for (const d of deltas) {
    const s = sums.get(d.asset);
    if (s === undefined) throw new InvariantError("delta for an unknown asset", { asset: d.asset });
    sums.set(d.asset, s + d.delta);
  }
  for (const [asset, sum] of sums) {
    if (sum !== 0n) throw new InvariantError(`deltas of asset ${asset} sum to ${sum}, not zero`, { asset, sum: sum.toString() });
  }
}
