// Tokens and estimated cost per broker per session, with a hard cap. A call is made only when its
// worst case (prompt estimate + full completion budget) still fits under the cap, so the cap holds
// even though the real cost is known only after the reply.
import type { TierPrices } from "./catalogue.ts";
import type { Tier } from "./types.ts";

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

/** Cost in pico-USD (1e-12): integer prices in micro-USD per million tokens make this exact. */
export function costPicoUsd(prices: TierPrices, u: Usage): bigint {
  const cached = Math.min(u.cachedTokens, u.promptTokens);
  return (
    BigInt(u.promptTokens - cached) * prices.inputMicroUsdPerMTok +
    BigInt(cached) * prices.cachedInputMicroUsdPerMTok +
    BigInt(u.completionTokens) * prices.outputMicroUsdPerMTok
  );
}

/** "$0.50", "$0.0049": enough digits to see small session budgets move. */
export function formatUsd(picoUsd: bigint): string {
  const usd = Number(picoUsd) / 1e12;
  if (usd >= 1 || usd === 0) return `$${usd.toFixed(2)}`;
  return usd >= 0.0001 ? `$${usd.toFixed(4)}` : `$${usd.toExponential(1)}`;
}

export interface TierTotals {
  calls: number;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  costPicoUsd: bigint;
}

const emptyTotals = (): TierTotals => ({ calls: 0, promptTokens: 0, completionTokens: 0, cachedTokens: 0, costPicoUsd: 0n });

export class SpendLedger {
  private spent = 0n;
  private reserved = 0n;
  readonly byTier: Record<Tier, TierTotals> = { cheap: emptyTotals(), expensive: emptyTotals() };

  constructor(readonly capPicoUsd: bigint) {}

  get spentPicoUsd(): bigint {
    return this.spent;
  }

  get totalTokens(): number {
    const c = this.byTier.cheap;
    const e = this.byTier.expensive;
    return c.promptTokens + c.completionTokens + e.promptTokens + e.completionTokens;
  }

  /** The cap is reached when not even the cheapest possible call fits any more. */
  exhausted(minimumCallPicoUsd = 1n): boolean {
    return this.spent + this.reserved + minimumCallPicoUsd > this.capPicoUsd;
  }

  /** Holds `estimate` against the cap; false (and nothing held) when it would not fit. */
  reserve(estimatePicoUsd: bigint): boolean {
    if (this.spent + this.reserved + estimatePicoUsd > this.capPicoUsd) return false;
    this.reserved += estimatePicoUsd;
    return true;
  }

  /** Releases a reservation and books what the call actually cost. */
  settle(reservedPicoUsd: bigint, tier: Tier, usage: Usage | null, actualPicoUsd: bigint): void {
    this.reserved -= reservedPicoUsd;
    if (this.reserved < 0n) this.reserved = 0n;
    this.spent += actualPicoUsd;
    const t = this.byTier[tier];
    t.calls += 1;
    t.costPicoUsd += actualPicoUsd;
    if (usage !== null) {
      t.promptTokens += usage.promptTokens;
      t.completionTokens += usage.completionTokens;
      t.cachedTokens += usage.cachedTokens;
    }
  }

  summary(): { spentUsd: number; capUsd: number; tokens: number; calls: number } {
    return {
      spentUsd: Number(this.spent) / 1e12,
      capUsd: Number(this.capPicoUsd) / 1e12,
      tokens: this.totalTokens,
      calls: this.byTier.cheap.calls + this.byTier.expensive.calls,
    };
  }
}
