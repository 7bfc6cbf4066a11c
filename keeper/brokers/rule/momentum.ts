// Momentum: follows the tape. When the last trade runs away from the recent VWAP by more than the
// threshold it takes liquidity in that direction with IOC orders; when the move turns against its
// position it gets out. It never rests orders.
import type { BrokerContext, Decision, ProposedOrder, RfqAction } from "../types.ts";
import type { StrategyParams } from "./strategy-params.ts";
import { bestAsk, bestBid, capacity, clipOutcry, hasDirective, ordersOn, reducingSize, short, signed, vwap } from "./book-math.ts";

/** Seconds a momentum trader's request stays open: long enough for quotes to come and be taken. */
const RFQ_TTL_SEC = 8;

export function momentum(ctx: BrokerContext, p: StrategyParams, _rand: () => number): Decision {
  const orders: ProposedOrder[] = [];
  const cancels: string[] = [];
  const notes: string[] = [];
  const rfq: RfqAction[] = [];
  const reduceOnly = hasDirective(ctx, "reduce_only");

  for (const m of ctx.markets) {
    // "No fill in your last 5 orders" is per pair: cross where it is asked for.
    const wantsCross = hasDirective(ctx, "cross", m.symbol);
    for (const o of ordersOn(ctx, m.symbol)) cancels.push(o.orderId);
    // A block asked for on an earlier tick: take the best quotes within its limit, or wait for them.
    const asked = (ctx.rfqMine ?? []).filter((r) => r.pair === m.symbol);
    if (asked.length > 0) {
      for (const r of asked) {
        const best = r.quotes?.[0];
        if (best !== undefined) {
          rfq.push({ action: "accept", requestId: r.requestId, quoteId: null, limit: r.limit });
          notes.push(`${short(m.symbol)} taking rfq ${r.requestId} best ${best.size}@${best.price}`);
        } else notes.push(`${short(m.symbol)} rfq ${r.requestId} waiting for quotes`);
      }
      continue;
    }
    const pos = m.position;
    const last = m.trades[m.trades.length - 1];
    const mean = vwap(m, p.window);
    const bb = bestBid(m, ctx);
    const ba = bestAsk(m, ctx);
    if (last === undefined || mean === null || m.trades.length < 3) {
      if (wantsCross && !reduceOnly && ba !== null) {
        const size = Math.min(Math.max(1, Math.round(p.size / 2)), capacity(pos, p.riskLimit, "buy"), m.maxOrderLots);
        if (size > 0) orders.push({ pair: m.symbol, side: "buy", price: ba, size, type: "ioc" });
        notes.push(`${short(m.symbol)} no tape, probing ${size}@${ba}`);
      } else notes.push(`${short(m.symbol)} waiting for a tape`);
      continue;
    }
    const signal = last.price - mean;
    // Degens trigger on smaller moves and pay up more to get filled.
    const threshold = Math.max(0.5, p.thresholdTicks * (1.25 - p.aggressiveness * 0.5));
    const slip = Math.round(p.aggressiveness * 2);
    const clip = Math.max(1, Math.round(p.size * (0.5 + p.aggressiveness)));
    const trend = signal >= threshold ? "buy" : signal <= -threshold ? "sell" : null;
    if (trend !== null) {
      const px = trend === "buy" ? ba : bb;
      let size = Math.min(clip, capacity(pos, p.riskLimit, trend), m.maxOrderLots);
      if (reduceOnly) size = Math.min(size, reducingSize(m.holding, trend));
      if (px !== null && size > 0) {
        const price = trend === "buy" ? px + slip : Math.max(1, px - slip);
        // More than the book's top level can absorb: ask the pit for a block instead.
        const top = (trend === "buy" ? m.asks : m.bids).find((l) => l.price === px)?.size ?? 0;
        if (!reduceOnly && size > top) {
          const limit = trend === "buy" ? px + Math.max(1, slip) : Math.max(1, px - Math.max(1, slip));
          rfq.push({ action: "request", pair: m.symbol, side: trend, size, limit, ttlSec: RFQ_TTL_SEC });
          notes.push(`${short(m.symbol)} ${signed(signal)}t vs vwap, top ${top} too thin: rfq ${trend} ${size} lim ${limit}`);
          continue;
        }
        orders.push({ pair: m.symbol, side: trend, price, size, type: "ioc" });
        notes.push(`${short(m.symbol)} ${signed(signal)}t vs vwap, ${trend === "buy" ? "lifting" : "hitting"} ${size}@${price}`);
      } else notes.push(`${short(m.symbol)} ${signed(signal)}t but at risk limit (pos ${signed(pos)})`);
      continue;
    }
    // No trend: get out of a position the tape has turned against (or any, when told to cross).
    const against = (pos > 0 && signal < 0) || (pos < 0 && signal > 0);
    if (pos !== 0 && (against || wantsCross)) {
      const side = pos > 0 ? "sell" : "buy";
      const px = side === "buy" ? ba : bb;
      const size = Math.min(reducingSize(pos, side), clip, m.maxOrderLots);
      if (px !== null && size > 0) {
        orders.push({ pair: m.symbol, side, price: px, size, type: "ioc" });
        notes.push(`${short(m.symbol)} trend faded, cutting ${size}@${px}`);
        continue;
      }
    }
    if (wantsCross && !reduceOnly && pos === 0) {
      const side = last.takerSide;
      const px = side === "buy" ? ba : bb;
      const size = Math.min(Math.max(1, Math.round(clip / 2)), capacity(pos, p.riskLimit, side), m.maxOrderLots);
      if (px !== null && size > 0) {
        orders.push({ pair: m.symbol, side, price: px, size, type: "ioc" });
        notes.push(`${short(m.symbol)} flat tape, following last ${side} ${size}@${px}`);
        continue;
      }
    }
    notes.push(`${short(m.symbol)} ${signed(signal)}t vs vwap, no trend${pos !== 0 ? `, holding ${signed(pos)}` : ""}`);
  }
  return { orders, cancels, outcry: clipOutcry(`Momentum: ${notes.join(" | ") || "no pairs"}`), plan: null, ...(rfq.length > 0 ? { rfq } : {}) };
}
