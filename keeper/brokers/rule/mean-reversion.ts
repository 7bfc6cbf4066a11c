// Mean reversion: fades moves away from the recent VWAP. Stretched above the mean it offers, below
// it bids; flat-ish, it works an exit at the mean. Aggressive settings cross instead of waiting.
import type { BrokerContext, Decision, ProposedOrder } from "../types.ts";
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
  vwap,
} from "./book-math.ts";

export function meanReversion(ctx: BrokerContext, p: StrategyParams, _rand: () => number): Decision {
  const orders: ProposedOrder[] = [];
  const cancels: string[] = [];
  const notes: string[] = [];
  const reduceOnly = hasDirective(ctx, "reduce_only");

  for (const m of ctx.markets) {
    // "No fill in your last 5 orders" is per pair: cross where it is asked for.
    const wantsCross = hasDirective(ctx, "cross", m.symbol);
    const pos = m.position;
    const ref = refPrice(m);
    const mean = vwap(m, p.window) ?? m.mark;
    const dev = ref - mean;
    const bb = bestBid(m, ctx);
    const ba = bestAsk(m, ctx);
    const threshold = Math.max(0.5, p.thresholdTicks);
    const clip = Math.max(1, Math.round(p.size * (0.5 + p.aggressiveness)));
    const cross = p.aggressiveness >= 0.7 || wantsCross;
    const passive: ProposedOrder[] = [];
    const takers: ProposedOrder[] = [];
    let note: string;

    const fade = dev >= threshold ? "sell" : dev <= -threshold ? "buy" : null;
    if (fade !== null) {
      let size = Math.min(clip, capacity(pos, p.riskLimit, fade), m.maxOrderLots);
      if (reduceOnly) size = Math.min(size, reducingSize(m.holding, fade));
      const touch = fade === "sell" ? bb : ba;
      if (size <= 0) note = `${short(m.symbol)} stretched ${signed(dev)}t but at limit`;
      else if (cross && touch !== null) {
        takers.push({ pair: m.symbol, side: fade, price: touch, size, type: "ioc" });
        note = `${short(m.symbol)} ${signed(dev)}t off mean, fading ${fade} ${size}@${touch} now`;
      } else {
        // Rest just inside the touch so the fade fills if the stretch continues.
        const price =
          fade === "sell" ? Math.max(Math.ceil(ref), (bb ?? 0) + 1) : Math.max(1, Math.min(Math.floor(ref), (ba ?? Infinity) - 1));
        passive.push({ pair: m.symbol, side: fade, price, size, type: "limit" });
        note = `${short(m.symbol)} ${signed(dev)}t off mean, offering to fade ${fade} ${size}@${price}`;
      }
    } else if (pos !== 0) {
      const side = pos > 0 ? "sell" : "buy";
      const size = Math.min(reducingSize(pos, side), clip, m.maxOrderLots);
      const touch = side === "sell" ? bb : ba;
      if (wantsCross && touch !== null && size > 0) {
        takers.push({ pair: m.symbol, side, price: touch, size, type: "ioc" });
        note = `${short(m.symbol)} back at mean, closing ${size}@${touch}`;
      } else {
        const target = side === "sell" ? Math.max(Math.round(mean), (bb ?? 0) + 1) : Math.max(1, Math.min(Math.round(mean), (ba ?? Infinity) - 1));
        if (size > 0) passive.push({ pair: m.symbol, side, price: target, size, type: "limit" });
        note = `${short(m.symbol)} near mean, working exit ${side} ${size}@${target}`;
      }
    } else if (wantsCross && !reduceOnly && (bb !== null || ba !== null)) {
      const side = dev > 0 ? "sell" : "buy";
      const touch = side === "sell" ? bb : ba;
      const size = Math.min(Math.max(1, Math.round(clip / 2)), m.maxOrderLots);
      if (touch !== null) takers.push({ pair: m.symbol, side, price: touch, size, type: "ioc" });
      note = `${short(m.symbol)} flat, small ${side} ${size} to find the market`;
    } else {
      note = `${short(m.symbol)} ${signed(dev)}t from mean ${Math.round(mean)}, waiting`;
    }
    const r = reconcile(ordersOn(ctx, m.symbol), passive);
    cancels.push(...r.cancels);
    orders.push(...r.orders, ...takers);
    notes.push(note);
  }
  return { orders, cancels, outcry: clipOutcry(`MeanRev: ${notes.join(" | ") || "no pairs"}`), plan: null };
}
