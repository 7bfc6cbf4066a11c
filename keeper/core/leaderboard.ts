// The session's leaderboard: PnL per participant valued at the closing marks (the same prices
// the closing cross used), best first; ties go to the lower AccountId. Treasury and insurance
// are not participants.

import type { AccountId, LeaderboardEntry, NetDelta } from "./types.ts";

export interface LeaderboardInput {
  readonly deltas: readonly NetDelta[];
  /** Net deposits per user valued at the closing marks (quote base units): the starting stake. */
  readonly stakes: ReadonlyMap<AccountId, bigint>;
  /** Value of one base unit of an asset in quote base units, as num / den. */
  readonly price: (asset: number) => { readonly num: bigint; readonly den: bigint };
  readonly exclude: readonly AccountId[];
}

export function leaderboard(input: LeaderboardInput): LeaderboardEntry[] {
  const pnl = new Map<AccountId, bigint>();
  for (const user of input.stakes.keys()) pnl.set(user, 0n);
  for (const d of input.deltas) {
    const { num, den } = input.price(d.asset);
    const v = d.delta * num;
    // floor for gains and losses alike, so equal deltas rank equally
    const value = v >= 0n ? v / den : -((-v + den - 1n) / den);
    pnl.set(d.user, (pnl.get(d.user) ?? 0n) + value);
  }
  const skip = new Set(input.exclude);
  const rows = [...pnl].filter(([user]) => !skip.has(user));
  rows.sort((a, b) => (a[1] === b[1] ? a[0] - b[0] : a[1] > b[1] ? -1 : 1));
  return rows.map(([user, p], i) => {
    const stake = input.stakes.get(user) ?? 0n;
    return { rank: i + 1, user, pnl: p, returnBps: stake > 0n ? Number((p * 10_000n) / stake) : 0 };
  });
}

export function top(entries: readonly LeaderboardEntry[], n = 10): LeaderboardEntry[] {
  return entries.slice(0, n);
}
