// Fee-aware scalper, after the TRUMP/USDC bot: reads top-of-book imbalance, joins the side the
// book leans toward as a maker, and trades only when the spread pays for the round trip's fees
// plus a minimum edge. Holding, it exits at the touch, or cuts as a taker when the book flips.
import type { BrokerContext, Decision, ProposedOrder } from "../types.ts";
import type { StrategyParams } from "./strategy-params.ts";
import { bestAsk, bestBid, capacity, clipOutcry, hasDirective, imbalance, ordersOn, reconcile, reducingSize, short } from "./book-math.ts";

const r2 = (x: number) => Math.round(x * 100) / 100;

export function scalper(ctx: BrokerContext, p: StrategyParams, _rand: () => number): Decision {
  const orders: ProposedOrder[] = [];
  const cancels: string[] = [];
  const notes: string[] = [];
  const reduceOnly = hasDirective(ctx, "reduce_only");

  for (const m of ctx.markets) {
    // "No fill in your last 5 orders" is per pair: cross where it is asked for.
    const wantsCross = hasDirective(ctx, "cross", m.symbol);
    const bb = bestBid(m, ctx);
    const ba = bestAsk(m, ctx);
    const mine = ordersOn(ctx, m.symbol);
    if (bb === null || ba === null) {
      cancels.push(...mine.map((o) => o.orderId));
      notes.push(`${short(m.symbol)} one-sided book, standing aside`);
      continue;
    }
    const pos = m.position;
    const mid = (bb + ba) / 2;
    const spread = ba - bb;
    const makerFee = (mid * m.makerFeeBps) / 10_000;
    const takerFee = (mid * m.takerFeeBps) / 10_000;
    const imb = imbalance(m, 3);
    const threshold = 0.6 - 0.4 * p.aggressiveness;
    const clip = Math.max(1, Math.round(p.size * (0.5 + p.aggressiveness)));
    // A maker round trip earns the spread (improving by a tick on each side when there is room).
    const improve = spread > 2 ? 1 : 0;
    const edge = spread - 2 * improve - 2 * makerFee;
    const wanted: ProposedOrder[] = [];
    const takers: ProposedOrder[] = [];
    let note: string;

    if (Math.abs(pos) >= 1) {
      const side = pos > 0 ? "sell" : "buy";
      const size = Math.min(reducingSize(pos, side), m.maxOrderLots);
      const flipped = (pos > 0 && imb <= -threshold) || (pos < 0 && imb >= threshold);
      if ((flipped || wantsCross) && size > 0) {
        takers.push({ pair: m.symbol, side, price: side === "sell" ? bb : ba, size, type: "ioc" });
        note = `${short(m.symbol)} book flipped (${r2(imb)}), cutting ${size} as taker (fee ${r2(takerFee)}t)`;
      } else {
        const price = side === "sell" ? ba - improve : bb + improve;
        if (size > 0) wanted.push({ pair: m.symbol, side, price, size, type: "post_only" });
        note = `${short(m.symbol)} exit ${side} ${size}@${price}, imb ${r2(imb)}`;
      }
    } else if (!reduceOnly && Math.abs(imb) >= threshold && edge >= p.minEdgeTicks) {
      const side = imb > 0 ? "buy" : "sell";
      const size = Math.min(clip, capacity(pos, p.riskLimit, side), m.maxOrderLots);
      const price = side === "buy" ? bb + improve : ba - improve;
      if (wantsCross) {
        takers.push({ pair: m.symbol, side, price: side === "buy" ? ba : bb, size, type: "ioc" });
        note = `${short(m.symbol)} imb ${r2(imb)}, no recent fills, taking ${size}`;
      } else {
        if (size > 0) wanted.push({ pair: m.symbol, side, price, size, type: "post_only" });
        note = `${short(m.symbol)} imb ${r2(imb)}, edge ${r2(edge)}t > fees, joining ${side} ${size}@${price}`;
      }
    } else if (wantsCross && !reduceOnly && edge + 2 * makerFee - takerFee >= 0) {
      const side = imb >= 0 ? "buy" : "sell";
      const size = Math.min(Math.max(1, Math.round(clip / 2)), m.maxOrderLots);
      takers.push({ pair: m.symbol, side, price: side === "buy" ? ba : bb, size, type: "ioc" });
      note = `${short(m.symbol)} quiet, probing ${side} ${size}`;
    } else {
      note =
        edge < p.minEdgeTicks
          ? `${short(m.symbol)} edge ${r2(edge)}t after fees < ${p.minEdgeTicks}t, standing aside`
          : `${short(m.symbol)} imb ${r2(imb)} below ${r2(threshold)}, waiting`;
    }
    const r = reconcile(mine, wanted);
    cancels.push(...r.cancels);
    orders.push(...r.orders, ...takers);
    notes.push(note);
  }
  return { orders, cancels, outcry: clipOutcry(`Scalper: ${notes.join(" | ") || "no pairs"}`), plan: null };
}
