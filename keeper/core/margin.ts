// The margin engine: how much risk an account carries and whether it may add more.
//
// Definitions, for one account, all in quote core units (micro-USDC), exact integers:
//   m_p      mark of pair p in ticks (markTicks below): the pit's mid floor((best bid + best
//            ask) / 2) while both sides of the book hold orders, else the session's last trade
//            price, else the session reference price; then clamped to the pair's mark band
//              [markLow, markHigh] = [max(1, ceil(ref * (10^4 - markBandBps) / 10^4)),
//                                     floor(ref * (10^4 + markBandBps) / 10^4)]
//            around the reference (config.ts bandLow / bandHigh), so one wild print cannot
//            liquidate everyone. The closing price of the session is this mark at end_trading
//            (closing.ts).
//   v_p      value of one lot at mark = m_p * quotePerTickLot_p
//   Q        quote inventory (negative: borrowed quote, e.g. a leveraged buy)
//   x_p      base inventory of pair p in lots (negative: borrowed base, a short)
//   equity   E  = Q + sum_p x_p * v_p
//   exposure X  = sum_p |x_p| * v_p   (gross value of what can move against the quote numeraire)
//   IM = sum_p ceil(|x_p| * v_p * initialBps / 10^4)      (seed: 20%, at most 5x gross)
//   MM = sum_p ceil(|x_p| * v_p * maintenanceBps / 10^4)  (seed: 10%)
//   status   below_mm when E < MM, else below_im when E < IM, else ok.
//            An account without liabilities has E >= X >= IM: it is always ok.
//
// Open orders reserve what they could consume. For each pair, the worst of three outcomes
// counts: nothing fills, every open buy fills (B lots costing `cost` = their notional), or every
// open sell fills (S lots bringing `proceeds`). A fill's gain against the mark is not credited
// (an order priced better than the mark cannot create margin out of nothing); its loss is, and
// so is the fee (the larger of maker and taker):
//   im(x)    = ceil(|x| * v_p * initialBps / 10^4)
//   t0       = x_p * v_p - im(x_p)
//   t_buy    = x_p * v_p + min(0, B_p * v_p - cost_p) - fee(cost_p) - im(x_p + B_p)
//   t_sell   = x_p * v_p + min(0, proceeds_p - S_p * v_p) - fee(proceeds_p) - im(x_p - S_p)
//   free margin F = Q + sum_p min(t0, t_buy, t_sell)
// (|x| is convex, so filling all or nothing of one side is the worst case of that side.)
//
// Pre-trade (R1): an order is accepted when F, counting the order among the open ones, stays
// >= 0; or when it reduces exposure: a sell of at most x_p - S_p lots of a long, or a buy of at
// most -x_p - B_p lots of a short (it can never flip the position). Cancels are always allowed.
// Post-trade (R2): fills move inventories and release reservations (engine.ts).
// Below MM the keeper submits the core-produced liquidate command (engine.ts).

import type { ResolvedConfig } from "./config.ts";
import { bpsUp } from "./int-math.ts";
import { BUY_LOTS, BUY_NOTIONAL, SELL_LOTS, SELL_NOTIONAL, type Ledger } from "./ledger.ts";
import { BUY, type SideCode } from "./matching.ts";
import type { MarginStatus } from "./types.ts";

/**
 * m_p of the definitions above, in ticks. `bid` / `ask`: best prices, negative when that side of
 * the book is empty; `lastTrade`: the session's last trade price, 0 before the first trade;
 * `reference`: the session reference price; [`low`, `high`]: the mark band.
 */
export function markTicks(bid: number, ask: number, lastTrade: number, reference: number, low: number, high: number): number {
  let m: number;
  if (bid >= 0 && ask >= 0) m = Math.floor((bid + ask) / 2);
  else if (lastTrade > 0) m = lastTrade;
  else m = reference;
  return m < low ? low : m > high ? high : m;
}

export interface MarginFigures {
  readonly equity: number;
  readonly exposure: number;
  readonly initialMargin: number;
  readonly maintenanceMargin: number;
  readonly status: MarginStatus;
}

export class Margin {
  private readonly ledger: Ledger;
  private readonly quoteIndex: number;
  private readonly baseIndex: Int32Array;
  private readonly qptl: Float64Array;
  private readonly imBps: number;
  private readonly mmBps: number;
  /** Fee assumed on reserved notional: the larger of maker and taker. */
  private readonly feeBps: number;

  constructor(rc: ResolvedConfig, ledger: Ledger) {
    this.ledger = ledger;
    this.quoteIndex = rc.quoteIndex;
    this.baseIndex = Int32Array.from(rc.pairs.map((p) => p.baseIndex));
    this.qptl = Float64Array.from(rc.pairs.map((p) => p.config.quotePerTickLot));
    this.imBps = rc.config.margin.initialBps;
    this.mmBps = rc.config.margin.maintenanceBps;
    this.feeBps = Math.max(0, rc.config.fees.makerBps, rc.config.fees.takerBps);
  }

  /**
   * F of the definitions above, with an extra open order (side, price ticks, lots) on pair
   * `pi` counted (pi = -1: none). `lotValue[p]` is v_p.
   */
  freeMargin(u: number, lotValue: Float64Array, pi: number, side: SideCode, price: number, lots: number): number {
    const L = this.ledger;
    const inv = L.inv;
    const open = L.open;
    const nA = L.assets;
    const nP = L.pairs;
    const im = this.imBps;
    const feeBps = this.feeBps;
    const base = u * nA;
    let f = inv[base + this.quoteIndex]!;
    for (let p = 0; p < nP; p++) {
      const v = lotValue[p]!;
      const q = this.qptl[p]!;
      const x = inv[base + this.baseIndex[p]!]!;
      const o = (u * nP + p) * 4;
      let b = open[o + BUY_LOTS]!;
      let bn = open[o + BUY_NOTIONAL]!;
      let s = open[o + SELL_LOTS]!;
      let sn = open[o + SELL_NOTIONAL]!;
      if (p === pi) {
        if (side === BUY) {
          b += lots;
          bn += lots * price;
        } else {
          s += lots;
          sn += lots * price;
        }
      }
      let t = x * v - bpsUp(Math.abs(x) * v, im);
      if (b > 0) {
        const xb = x + b;
        const cost = bn * q;
        const edge = b * v - cost;
        const tb = x * v + (edge < 0 ? edge : 0) - bpsUp(cost, feeBps) - bpsUp(Math.abs(xb) * v, im);
        if (tb < t) t = tb;
      }
      if (s > 0) {
        const xs = x - s;
        const proceeds = sn * q;
        const edge = proceeds - s * v;
        const ts = x * v + (edge < 0 ? edge : 0) - bpsUp(proceeds, feeBps) - bpsUp(Math.abs(xs) * v, im);
        if (ts < t) t = ts;
      }
      f += t;
    }
    return f;
  }

  /** True when the order can only shrink the position of its pair (never flip it). */
  reducesExposure(u: number, pi: number, side: SideCode, lots: number): boolean {
    const L = this.ledger;
    const x = L.inv[u * L.assets + this.baseIndex[pi]!]!;
    const o = (u * L.pairs + pi) * 4;
    if (side === BUY) return x < 0 && L.open[o + BUY_LOTS]! + lots <= -x;
    return x > 0 && L.open[o + SELL_LOTS]! + lots <= x;
  }

  figures(u: number, lotValue: Float64Array): MarginFigures {
    const L = this.ledger;
    const base = u * L.assets;
    let equity = L.inv[base + this.quoteIndex]!;
    let exposure = 0;
    let initialMargin = 0;
    let maintenanceMargin = 0;
    for (let p = 0; p < L.pairs; p++) {
      const x = L.inv[base + this.baseIndex[p]!]!;
      if (x === 0) continue;
      const v = lotValue[p]!;
      const gross = Math.abs(x) * v;
      equity += x * v;
      exposure += gross;
      initialMargin += bpsUp(gross, this.imBps);
      maintenanceMargin += bpsUp(gross, this.mmBps);
    }
    const status: MarginStatus = equity < maintenanceMargin ? "below_mm" : equity < initialMargin ? "below_im" : "ok";
    return { equity, exposure, initialMargin, maintenanceMargin, status };
  }

  /** Cheap check used when scanning every account for liquidations. */
  belowMaintenance(u: number, lotValue: Float64Array): boolean {
    const L = this.ledger;
    const base = u * L.assets;
    let equity = L.inv[base + this.quoteIndex]!;
    let mm = 0;
    for (let p = 0; p < L.pairs; p++) {
      const x = L.inv[base + this.baseIndex[p]!]!;
      if (x === 0) continue;
      const v = lotValue[p]!;
      equity += x * v;
      mm += bpsUp(Math.abs(x) * v, this.mmBps);
    }
    return equity < mm;
  }

  /** Quote units reserved by open buys (notional plus fee) summed over pairs. */
  reservedQuote(u: number): number {
    const L = this.ledger;
    let r = 0;
    for (let p = 0; p < L.pairs; p++) {
      const cost = L.open[(u * L.pairs + p) * 4 + BUY_NOTIONAL]! * this.qptl[p]!;
      r += cost + bpsUp(cost, this.feeBps);
    }
    return r;
  }
}
