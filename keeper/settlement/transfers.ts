// Step 1 of settlement: the close-out's per-account adjustments as transfers between accounts,
// the form the fill log records (settlement/fill-log.ts). Pure.
import type { ClosingAdjustment } from "../core/types.ts";

/**
 * The closing cross reports signed per-account changes; the fill log records value moving from
 * one account to another. Within each group that nets to zero (step, pair, asset; coarser groups
 * when a finer one does not net), payers are matched to receivers in account order, which gives
 * transfers implying exactly the same per-account changes.
 */
export function adjustmentsToTransfers(
  adjustments: readonly ClosingAdjustment[],
): { tokenIndex: number; from: number; to: number; amount: bigint; reason: string }[] {
  const out: { tokenIndex: number; from: number; to: number; amount: bigint; reason: string }[] = [];
  const groups = new Map<string, ClosingAdjustment[]>();
  const add = (key: string, a: ClosingAdjustment) => {
    const g = groups.get(key);
    if (g === undefined) groups.set(key, [a]);
    else g.push(a);
  };
  for (const a of adjustments) if (a.amount !== 0n) add(`${a.step}|${a.pair}|${a.asset}`, a);
  const leftovers: ClosingAdjustment[] = [];
  const settleGroup = (items: ClosingAdjustment[], reason: string): boolean => {
    const net = items.reduce((s, a) => s + a.amount, 0n);
    if (net !== 0n) return false;
    const payers = items.filter((a) => a.amount < 0n).map((a) => ({ user: a.user, left: -a.amount })).sort((x, y) => x.user - y.user);
    const payees = items.filter((a) => a.amount > 0n).map((a) => ({ user: a.user, left: a.amount })).sort((x, y) => x.user - y.user);
    let i = 0;
    let j = 0;
    while (i < payers.length && j < payees.length) {
      const p = payers[i]!;
      const q = payees[j]!;
      const amount = p.left < q.left ? p.left : q.left;
      if (p.user !== q.user) out.push({ tokenIndex: items[0]!.asset, from: p.user, to: q.user, amount, reason });
      p.left -= amount;
      q.left -= amount;
      if (p.left === 0n) i++;
      if (q.left === 0n) j++;
    }
    return true;
  };
  for (const items of groups.values()) if (!settleGroup(items, items[0]!.step)) leftovers.push(...items);
  if (leftovers.length > 0) {
    const byAsset = new Map<number, ClosingAdjustment[]>();
    for (const a of leftovers) byAsset.set(a.asset, [...(byAsset.get(a.asset) ?? []), a]);
    for (const items of byAsset.values()) {
      const steps = [...new Set(items.map((a) => a.step))].join("_");
      if (!settleGroup(items, steps)) throw new Error(`closing adjustments of asset ${items[0]!.asset} do not net to zero`);
    }
  }
  return out;
}
