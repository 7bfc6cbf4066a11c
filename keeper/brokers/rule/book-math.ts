// Small pure helpers the rule-based strategies share: reference prices, VWAP, imbalance,
// position capacity and reconciling wanted quotes against the orders already resting.
import type { BrokerContext, MarketContext, OrderContext, ProposedOrder, Side } from "../types.ts";
import { OUTCRY_MAX_CHARS } from "../decision-schema.ts";

/** Best price on one side not made up only of the user's own orders (you cannot trade with yourself). */
function othersBest(m: MarketContext, side: "buy" | "sell", ctx?: BrokerContext): number | null {
  const levels = side === "buy" ? m.bids : m.asks;
  for (const l of levels) {
    let own = 0;
    if (ctx !== undefined) for (const o of ctx.openOrders) if (o.pair === m.symbol && o.side === side && o.price === l.price) own += o.size;
    if (l.size > own) return l.price;
  }
  return null;
}

export function bestBid(m: MarketContext, ctx?: BrokerContext): number | null {
  return othersBest(m, "buy", ctx);
}

export function bestAsk(m: MarketContext, ctx?: BrokerContext): number | null {
  return othersBest(m, "sell", ctx);
}

/** Mid, else the last trade, else the mark: a price every strategy can quote around. */
export function refPrice(m: MarketContext): number {
  if (m.mid !== null) return m.mid;
  const last = m.trades[m.trades.length - 1];
  return last?.price ?? m.mark;
}

/** Volume-weighted average of the last `window` trades, or null without trades. */
export function vwap(m: MarketContext, window: number): number | null {
  const ts = m.trades.slice(-window);
  let notional = 0;
  let volume = 0;
  for (const t of ts) {
    notional += t.price * t.size;
    volume += t.size;
  }
  return volume === 0 ? null : notional / volume;
}

/** (bid volume − ask volume) / total over the top `levels`: +1 all bids, −1 all asks. */
export function imbalance(m: MarketContext, levels = 3): number {
  let b = 0;
  let a = 0;
  for (const l of m.bids.slice(0, levels)) b += l.size;
  for (const l of m.asks.slice(0, levels)) a += l.size;
  return b + a === 0 ? 0 : (b - a) / (b + a);
}

/** Lots the user may still add on `side` without passing its risk limit (never negative). */
export function capacity(position: number, riskLimit: number, side: Side): number {
  const room = side === "buy" ? riskLimit - position : riskLimit + position;
  return Math.max(0, Math.floor(room));
}

export function hasDirective(ctx: BrokerContext, code: "reduce_only" | "cross" | "quote_mid", pair?: string): boolean {
  return ctx.directives.some((d) => d.code === code && (pair === undefined || d.pair === undefined || d.pair === pair));
}

/** Largest size that only reduces the position on `side` (zero when it would add). */
export function reducingSize(position: number, side: Side): number {
  if (side === "buy") return position < 0 ? Math.floor(-position) : 0;
  return position > 0 ? Math.floor(position) : 0;
}

export function ordersOn(ctx: BrokerContext, pair: string): OrderContext[] {
  return ctx.openOrders.filter((o) => o.pair === pair);
}

/**
 * Keeps resting orders that already match a wanted quote (so they keep their queue priority),
 * cancels the rest, and places whatever is missing.
 */
export function reconcile(
  existing: OrderContext[],
  wanted: ProposedOrder[],
  maxAgeMs = Infinity,
): { cancels: string[]; orders: ProposedOrder[] } {
  const cancels: string[] = [];
  const remaining = [...wanted];
  for (const o of existing) {
    const fresh = o.ageMs <= maxAgeMs;
    const i = !fresh ? -1 : remaining.findIndex((w) => w.side === o.side && w.price === o.price && w.size <= o.size && o.size <= w.size * 2);
    if (i >= 0) remaining.splice(i, 1);
    else cancels.push(o.orderId);
  }
  return { cancels, orders: remaining };
}

export function clipOutcry(text: string): string {
  return text.length <= OUTCRY_MAX_CHARS ? text : text.slice(0, OUTCRY_MAX_CHARS - 1) + "…";
}

export function signed(n: number): string {
  const r = Math.round(n * 100) / 100;
  return r > 0 ? `+${r}` : `${r}`;
}

/** The base symbol, for short outcry lines ("PEPE" from "PEPE/USDC"). */
export function short(pair: string): string {
  return pair.split("/")[0] ?? pair;
}
