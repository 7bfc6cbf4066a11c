// Market maker: two-sided post-only quotes around the mid, skewed against inventory so a long
// position quotes lower (sells more readily) and a short one higher. It is also the system default
// strategy for brokers that give nothing at the start.
import type { BrokerContext, Decision, ProposedOrder, RfqAction } from "../types.ts";
import type { StrategyParams } from "./strategy-params.ts";
import {
  bestAsk,
  bestBid,
  capacity,
  clipOutcry,
  hasDirective,
  ordersOn,
  reconcile,
  reducingSize,
  refPrice,
  short,
  signed,
} from "./book-math.ts";

export function marketMaker(ctx: BrokerContext, p: StrategyParams, rand: () => number): Decision {
  const orders: ProposedOrder[] = [];
  const cancels: string[] = [];
  const notes: string[] = [];
  const reduceOnly = hasDirective(ctx, "reduce_only");

  for (const m of ctx.markets) {
    // "No fill in your last 5 orders" is per pair: cross where it is asked for.
    const wantsCross = hasDirective(ctx, "cross", m.symbol);
    const ref = refPrice(m);
    const pos = m.position;
    // Aggressive makers quote tighter; the skew grows with inventory up to a full spread.
    const half = Math.max(1, Math.round((p.spreadTicks / 2) * (1.5 - p.aggressiveness)));
    const inv = Math.max(-1, Math.min(1, pos / p.riskLimit));
    let skew = Math.round(-inv * half * 2);
    const band = ctx.directives.find((d) => d.code === "quote_mid" && (d.pair === undefined || d.pair === m.symbol))?.bandTicks;
    let bidPx = Math.floor(ref - half + skew);
    let askPx = Math.ceil(ref + half + skew);
    if (band !== undefined) {
      // Asked to quote around the mid: keep both quotes inside the band even when skewed.
      bidPx = Math.max(bidPx, Math.ceil(ref - band));
      askPx = Math.min(askPx, Math.floor(ref + band));
      skew = 0;
    }
    const bb = bestBid(m, ctx);
    const ba = bestAsk(m, ctx);
    if (ba !== null && bidPx >= ba) bidPx = ba - 1;
    if (bb !== null && askPx <= bb) askPx = bb + 1;
    bidPx = Math.max(1, bidPx);
    if (askPx <= bidPx) askPx = bidPx + 1;

    const clip = Math.max(1, Math.round(p.size * (0.5 + p.aggressiveness)) + (rand() < 0.25 ? 1 : 0));
    let bidSize = Math.min(clip, capacity(pos, p.riskLimit, "buy"), m.maxOrderLots);
    let askSize = Math.min(clip, capacity(pos, p.riskLimit, "sell"), m.maxOrderLots);
    if (reduceOnly) {
      // Exposure is the whole holding (deposits too), not just this session's trades.
      bidSize = Math.min(bidSize, reducingSize(m.holding, "buy"));
      askSize = Math.min(askSize, reducingSize(m.holding, "sell"));
    }

    const wanted: ProposedOrder[] = [];
    if (bidSize > 0) wanted.push({ pair: m.symbol, side: "buy", price: bidPx, size: bidSize, type: "post_only" });
    if (askSize > 0) wanted.push({ pair: m.symbol, side: "sell", price: askPx, size: askSize, type: "post_only" });
    // Quotes nobody takes are refreshed every few seconds (seeded jitter keeps makers out of
    // step): in a quiet pit that churn is what fills a pair's window of 5 orders without a fill,
    // so the "cross" rule asks for a crossing order and the pit gets its first trade.
    const r = reconcile(ordersOn(ctx, m.symbol), wanted, 3_000 + rand() * 4_000);
    cancels.push(...r.cancels);
    orders.push(...r.orders);

    let note = `${short(m.symbol)} ${bidSize > 0 ? `${bidSize}@${bidPx}` : "-"}/${askSize > 0 ? `${askSize}@${askPx}` : "-"}`;
    if (pos !== 0) note += ` pos ${signed(pos)}${skew !== 0 ? ` skew ${signed(skew)}` : ""}`;
    if (wantsCross && !reduceOnly) {
      // No recent fills: take a small clip toward flat to get the pit moving.
      const side = pos > 0 ? "sell" : "buy";
      const px = side === "buy" ? ba : bb;
      const size = Math.min(Math.max(1, Math.round(clip / 2)), capacity(pos, p.riskLimit, side), m.maxOrderLots);
      if (px !== null && size > 0) {
        orders.push({ pair: m.symbol, side, price: px, size, type: "ioc" });
        note += ` ${side === "buy" ? "lift" : "hit"} ${size}@${px}`;
      }
    }
    notes.push(note);
  }
  const rfq = reduceOnly ? [] : answerRequests(ctx, p);
  if (rfq.length > 0) notes.push(`quoting ${rfq.length} rfq`);
  const mode = reduceOnly ? "MM reduce-only" : "MM";
  return { orders, cancels, outcry: clipOutcry(`${mode}: ${notes.join(" | ") || "no pairs"}`), plan: null, ...(rfq.length > 0 ? { rfq } : {}) };
}

/** Seconds an MM's answer to a request stays live. */
const RFQ_QUOTE_TTL_SEC = 10;

/**
 * Answers the open requests addressed to it (those it has no live quote on, or one about to lapse)
 * around its own quotes: a timid maker wide and small, an aggressive one tight and large; skewed
 * against inventory like its book quotes, and never beyond the requester's limit at a loss to its
 * reference price.
 */
export function answerRequests(ctx: BrokerContext, p: StrategyParams): RfqAction[] {
  const out: RfqAction[] = [];
  for (const r of ctx.rfqIn ?? []) {
    if (r.myQuote != null && r.myQuote.validMs > 2_000) continue;
    const m = ctx.markets.find((x) => x.symbol === r.pair);
    if (m === undefined) continue;
    const side = r.side === "buy" ? "sell" : "buy";
    const ref = refPrice(m);
    const half = Math.max(1, Math.round((p.spreadTicks / 2) * (1.5 - p.aggressiveness)));
    // Timid: three half-spreads out; degen: one.
    const edge = half + Math.round(half * 2 * (1 - p.aggressiveness));
    const inv = Math.max(-1, Math.min(1, m.position / p.riskLimit));
    const skew = Math.round(-inv * half * 2);
    let price = side === "sell" ? Math.ceil(ref + edge + skew) : Math.floor(ref - edge + skew);
    if (r.limit !== null) {
      if (side === "sell" && price > r.limit) price = r.limit;
      if (side === "buy" && price < r.limit) price = r.limit;
      // Inside the limit only while it still earns the edge over the reference price.
      if (side === "sell" ? price <= ref : price >= ref) continue;
    }
    price = Math.max(1, price);
    const clip = Math.max(1, Math.round(p.size * (0.5 + 3 * p.aggressiveness)));
    const size = Math.min(r.size, clip, capacity(m.position, p.riskLimit, side), m.maxOrderLots);
    if (size <= 0) continue;
    out.push({ action: "quote", requestId: r.requestId, price, size, ttlSec: RFQ_QUOTE_TTL_SEC });
  }
  return out;
}
