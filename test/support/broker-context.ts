// Broker contexts for tests: a plausible pit around mid 1000 that each test bends as it needs.
import type { BrokerContext, MarketContext } from "../../keeper/brokers/types.ts";

export function market(over: Partial<MarketContext> = {}): MarketContext {
  return {
    symbol: "PEPE/USDC",
    baseSymbol: "PEPE",
    quoteSymbol: "USDC",
    makerFeeBps: 2,
    takerFeeBps: 5,
    maxOrderLots: 100,
    tickValue: 0.001,
    bids: [
      { price: 998, size: 10 },
      { price: 997, size: 20 },
    ],
    asks: [
      { price: 1002, size: 10 },
      { price: 1003, size: 20 },
    ],
    mid: 1000,
    mark: 1000,
    trades: [],
    position: 0,
    holding: 0,
    ...over,
  };
}

export function context(over: Partial<BrokerContext> = {}, m: Partial<MarketContext> = {}): BrokerContext {
  return {
    user: 7,
    brokerId: "rule-market-maker",
    sessionId: 3,
    tick: 10,
    nowMs: 10_000,
    timeLeftMs: 2_990_000,
    phase: "trading",
    purpose: "tick",
    strategy: "",
    reprompt: null,
    lessons: [],
    plan: null,
    markets: [market(m)],
    account: {
      quoteSymbol: "USDC",
      balances: [{ symbol: "USDC", amount: 1000 }],
      equity: 1000,
      initialMargin: 100,
      maintenanceMargin: 50,
      marginStatus: "ok",
      pnl: 0,
    },
    openOrders: [],
    refusals: [],
    keeperActions: [],
    directives: [],
    seed: 42,
    ...over,
  };
}

/** A tape of `n` trades stepping by `step` ticks from `from`. */
export function tape(from: number, step: number, n: number) {
  return Array.from({ length: n }, (_, i) => ({ price: from + i * step, size: 2, takerSide: step >= 0 ? ("buy" as const) : ("sell" as const), ageMs: (n - i) * 1000 }));
}
