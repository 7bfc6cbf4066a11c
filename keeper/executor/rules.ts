// The session rules (DESIGN.md, Executor). They shape each request as directives and are enforced
// on each reply, against the state at the moment the reply arrives:
//   below MM   -> the keeper liquidates (every tick, before asking anyone); the broker is not asked.
//   below IM   -> only orders that reduce the position are accepted.
//   no fill in the last N orders on a pair -> every reply must include a crossing order on that
//                 pair (an empty reply does not do); without one its new orders there are refused,
//                 and after the second such reply the keeper sends the minimum crossing IOC itself.
//   not quoting around the mid   -> resting orders far from the mid are refused.
// Plus the risk checks every reply gets: known pair, one of the user's pairs, size limit, price
// band around the mark, open-order limit, cancels of orders that are still open.
import type { Directive, ProposedOrder, RfqAction } from "../brokers/types.ts";
import type { Refusal } from "../brokers/decision-log.ts";
import type { AccountView, MarketView, OrderRequest, PairView, RfqAcceptOrder, RfqQuoteOrder, RfqRequestOrder, RfqView, Side } from "./pit-port.ts";
import { positionLots } from "./context-builder.ts";
import { RFQ_MAX_WHITELIST } from "../core/commands.ts";

export interface RuleConfig {
  /** A quote counts as "around the mid" within this many bps of it... */
  quoteBandBps: number;
  /** ...or this many ticks, whichever is wider. */
  minQuoteBandTicks: number;
  /** Orders further than this from the mark are refused. */
  priceBandBps: number;
  minPriceBandTicks: number;
  /** "No fill in the last N orders". */
  noFillWindow: number;
  maxOpenOrders: number;
}

export const DEFAULT_RULES: RuleConfig = {
  quoteBandBps: 50,
  minQuoteBandTicks: 2,
  priceBandBps: 1000,
  minPriceBandTicks: 10,
  noFillWindow: 5,
  maxOpenOrders: 20,
};

/** One of the user's accepted orders, for the no-fill window of its pair. */
export interface RecentOrder {
  orderId: string;
  pair: number;
  filled: boolean;
}

/** A user's recent accepted orders per pair id, oldest first. */
export type RecentOrders = ReadonlyMap<number, readonly RecentOrder[]>;

/** True when the pair's last `window` orders all went unfilled. */
export function noFillOn(recent: RecentOrders, pair: number, window: number): boolean {
  const last = (recent.get(pair) ?? []).slice(-window);
  return last.length >= window && last.every((o) => !o.filled);
}

export interface Assessment {
  liquidate: boolean;
  directives: Directive[];
}

/**
 * The best price on `side` of the book that is not the user's own: crossing your own order is
 * not a trade (self-trade prevention), so it does not count as a crossing order.
 */
export function othersBest(m: MarketView | undefined, account: AccountView, side: Side): number | null {
  if (m === undefined) return null;
  const levels = side === "buy" ? m.bids : m.asks;
  for (const l of levels) {
    let own = 0;
    for (const o of account.openOrders) if (o.pair === m.pair && o.side === side && o.price === l.price) own += o.size;
    if (l.size > own) return l.price;
  }
  return null;
}

export function quoteBandTicks(mid: number, cfg: RuleConfig): number {
  return Math.max(cfg.minQuoteBandTicks, Math.ceil((mid * cfg.quoteBandBps) / 10_000));
}

function priceBandTicks(mark: number, cfg: RuleConfig): number {
  return Math.max(cfg.minPriceBandTicks, Math.ceil((mark * cfg.priceBandBps) / 10_000));
}

function fmt(n: number): string {
  return String(Math.round(n * 100) / 100);
}

/** What the rules ask of this broker now. */
export function assess(
  account: AccountView,
  pairs: readonly PairView[],
  markets: ReadonlyMap<number, MarketView>,
  recent: RecentOrders,
  cfg: RuleConfig,
): Assessment {
  if (account.marginStatus === "below_mm") return { liquidate: true, directives: [] };
  if (account.marginStatus === "below_im") {
    const held = pairs
      .map((p) => ({ p, pos: positionLots(account, p) }))
      .filter((x) => Math.abs(x.pos) >= 1)
      .map((x) => `${x.pos > 0 ? "sell" : "buy"} up to ${Math.floor(Math.abs(x.pos))} ${x.p.symbol}`);
    return {
      liquidate: false,
      directives: [
        {
          code: "reduce_only",
          text: `below initial margin: only orders that reduce your position are accepted (${held.join(", ") || "you hold no position: cancel orders"})`,
        },
      ],
    };
  }
  const directives: Directive[] = [];
  for (const p of pairs) {
    if (!noFillOn(recent, p.pair, cfg.noFillWindow)) continue;
    const m = markets.get(p.pair);
    const bb = othersBest(m, account, "buy");
    const ba = othersBest(m, account, "sell");
    const ways = [ba !== null ? `buy >= ${ba}` : null, bb !== null ? `sell <= ${bb}` : null].filter((x) => x !== null);
    // Nothing to cross against: nothing can be asked.
    if (ways.length === 0) continue;
    directives.push({
      code: "cross",
      pair: p.symbol,
      text:
        `no fill in your last ${cfg.noFillWindow} orders on ${p.symbol}: include a crossing order there (${ways.join(" or ")}); ` +
        `a reply without one has its new ${p.symbol} orders refused, and after two such replies the keeper sends the minimum crossing IOC for you`,
    });
  }
  for (const p of pairs) {
    const m = markets.get(p.pair);
    if (m === undefined || m.mid === null) continue;
    const band = quoteBandTicks(m.mid, cfg);
    const mine = account.openOrders.filter((o) => o.pair === p.pair);
    const bidOk = mine.some((o) => o.side === "buy" && o.price >= m.mid! - band);
    const askOk = mine.some((o) => o.side === "sell" && o.price <= m.mid! + band);
    if (!bidOk || !askOk) {
      directives.push({
        code: "quote_mid",
        pair: p.symbol,
        bandTicks: band,
        text: `not quoting around the mid on ${p.symbol}: keep a bid >= ${Math.ceil(m.mid - band)} and an ask <= ${Math.floor(m.mid + band)} (mid ${fmt(m.mid)}); resting orders further out are refused`,
      });
    }
  }
  return { liquidate: false, directives };
}

/**
 * The directives a late reply is held to: those it was asked under that still apply now. A reply
 * is never held to a rule it was not asked about, except reduce-only, which protects the pit.
 */
export function directivesForReply(asked: readonly Directive[], now: Assessment): Directive[] {
  const out: Directive[] = [];
  for (const d of now.directives) {
    if (d.code === "reduce_only" || asked.some((a) => a.code === d.code && a.pair === d.pair)) out.push(d);
  }
  return out;
}

export interface EnforcedOrder {
  /** Index in the broker's reply. */
  index: number;
  request: OrderRequest;
  crossing: boolean;
}

export interface Enforcement {
  cancels: string[];
  orders: EnforcedOrder[];
  refusals: Refusal[];
  /** Pairs (symbols) whose cross directive this reply did not meet. */
  missedCross: string[];
}

function describe(o: ProposedOrder, index: number): string {
  return `order ${index + 1} (${o.side} ${o.size}@${o.price} ${o.type} ${o.pair})`;
}

function isCrossing(side: Side, price: number, type: string, m: MarketView | undefined, account: AccountView): boolean {
  if (type === "post_only") return false;
  if (side === "buy") {
    const ba = othersBest(m, account, "sell");
    return ba !== null && price >= ba;
  }
  const bb = othersBest(m, account, "buy");
  return bb !== null && price <= bb;
}

export interface EnforceInput {
  orders: readonly ProposedOrder[];
  cancels: readonly string[];
  /** The user's own pairs (resolved) and the pit's lookup for any symbol. */
  userPairs: readonly PairView[];
  pairBySymbol: (symbol: string) => PairView | undefined;
  markets: ReadonlyMap<number, MarketView>;
  account: AccountView;
  directives: readonly Directive[];
  cfg: RuleConfig;
}

/** Splits a reply into what may reach the book and what is refused, with reasons. */
export function enforce(input: EnforceInput): Enforcement {
  const { account, cfg, markets } = input;
  const refusals: Refusal[] = [];
  const open = new Map(account.openOrders.map((o) => [o.orderId, o] as const));

  const cancels: string[] = [];
  const cancelled = new Set<string>();
  for (const id of input.cancels) {
    if (id === "all" || id === "*") {
      for (const o of account.openOrders) if (!cancelled.has(o.orderId)) (cancelled.add(o.orderId), cancels.push(o.orderId));
      continue;
    }
    if (cancelled.has(id)) continue;
    if (!open.has(id)) {
      refusals.push({ code: "unknown_order", text: `cancel ${id}: no such open order (it may have filled)` });
      continue;
    }
    cancelled.add(id);
    cancels.push(id);
  }

  const reduceOnly = input.directives.some((d) => d.code === "reduce_only");
  // A cross directive without a pair (older callers) asks it of every one of the user's pairs.
  const crossPairs = new Set<string>();
  for (const d of input.directives) {
    if (d.code !== "cross") continue;
    if (d.pair !== undefined) crossPairs.add(d.pair);
    else for (const p of input.userPairs) crossPairs.add(p.symbol);
  }
  const quoteMid = new Map(input.directives.filter((d) => d.code === "quote_mid").map((d) => [d.pair, d] as const));
  const userPairIds = new Set(input.userPairs.map((p) => p.pair));

  let resting = account.openOrders.filter((o) => !cancelled.has(o.orderId)).length;
  // Reduce-only room per pair and side: the position, less what already rests on the reducing side.
  const room = new Map<string, number>();
  const roomFor = (p: PairView, side: Side): number => {
    const key = `${p.pair}:${side}`;
    const had = room.get(key);
    if (had !== undefined) return had;
    const pos = positionLots(account, p);
    const reducing = side === "buy" ? Math.floor(Math.max(0, -pos)) : Math.floor(Math.max(0, pos));
    const already = account.openOrders
      .filter((o) => o.pair === p.pair && o.side === side && !cancelled.has(o.orderId))
      .reduce((a, o) => a + o.size, 0);
    const r = Math.max(0, reducing - already);
    room.set(key, r);
    return r;
  };

  const accepted: EnforcedOrder[] = [];
  input.orders.forEach((o, index) => {
    const p = input.pairBySymbol(o.pair);
    if (p === undefined) return void refusals.push({ code: "unknown_pair", text: `${describe(o, index)}: no such pair` });
    if (!userPairIds.has(p.pair)) return void refusals.push({ code: "not_your_pair", text: `${describe(o, index)}: not one of your pairs` });
    if (o.size > p.maxOrderLots) {
      return void refusals.push({ code: "max_size", text: `${describe(o, index)}: larger than the max order size ${p.maxOrderLots}` });
    }
    const m = markets.get(p.pair);
    const mark = m?.mark ?? o.price;
    const band = priceBandTicks(mark, cfg);
    if (Math.abs(o.price - mark) > band) {
      return void refusals.push({ code: "price_band", text: `${describe(o, index)}: more than ${band} ticks from the mark ${fmt(mark)}` });
    }
    const crossing = isCrossing(o.side, o.price, o.type, m, account);
    if (reduceOnly) {
      const r = roomFor(p, o.side);
      if (o.size > r) {
        return void refusals.push({
          code: "reduce_only",
          text: `${describe(o, index)}: below initial margin only exposure-reducing orders are accepted (room ${r} lots)`,
        });
      }
      room.set(`${p.pair}:${o.side}`, r - o.size);
    }
    const qm = quoteMid.get(p.symbol);
    if (qm !== undefined && !crossing && m !== undefined && m.mid !== null && o.type !== "ioc") {
      const b = qm.bandTicks ?? quoteBandTicks(m.mid, cfg);
      const far = o.side === "buy" ? o.price < m.mid - b : o.price > m.mid + b;
      if (far) return void refusals.push({ code: "quote_mid", text: `${describe(o, index)}: quote within ${b} ticks of the mid ${fmt(m.mid)}` });
    }
    if (o.type !== "ioc" && !crossing) {
      if (resting >= cfg.maxOpenOrders) {
        return void refusals.push({ code: "open_orders", text: `${describe(o, index)}: you already have ${cfg.maxOpenOrders} open orders` });
      }
      resting += 1;
    }
    accepted.push({ index, request: { pair: p.pair, side: o.side, price: o.price, size: o.size, type: o.type }, crossing });
  });

  // Below IM reduce-only wins: it never asks for an order that could add exposure.
  const missedCross: string[] = [];
  let orders = accepted;
  if (!reduceOnly) {
    for (const symbol of crossPairs) {
      const id = input.userPairs.find((p) => p.symbol === symbol)?.pair;
      const on = orders.filter((x) => x.request.pair === id);
      if (on.some((x) => x.crossing)) continue;
      missedCross.push(symbol);
      refusals.push({ code: "cross", text: `no crossing order on ${symbol}: no fill in your last ${cfg.noFillWindow} orders there, and every reply must cross there until one fills` });
      for (const x of on) {
        refusals.push({ code: "cross", text: `${describe(input.orders[x.index]!, x.index)}: refused until you include a crossing order on ${symbol}` });
      }
      orders = orders.filter((x) => !on.includes(x));
    }
  }
  return { cancels, orders, refusals, missedCross };
}

/**
 * The keeper's own crossing order for a broker that twice replied without the one the rules asked
 * for: the pair's minimum size, IOC, at the best price of others on the far side; toward flat when
 * the user holds a position, else a buy (a sell when nobody offers). Null when nobody can be crossed.
 */
export function minimumCross(account: AccountView, pair: PairView, market: MarketView | undefined): OrderRequest | null {
  const ask = othersBest(market, account, "sell");
  const bid = othersBest(market, account, "buy");
  const pos = positionLots(account, pair);
  const prefer: Side = pos > 0 ? "sell" : pos < 0 ? "buy" : "buy";
  for (const side of [prefer, prefer === "buy" ? "sell" : "buy"] as const) {
    const price = side === "buy" ? ask : bid;
    if (price !== null) return { pair: pair.pair, side, price, size: pair.minOrderLots, type: "ioc" };
  }
  return null;
}

// ------------------------------------------------------------------ requests for quote

/** How long a request or quote stays open: the broker's ttlSec, clamped to these bounds. */
export const RFQ_TTL_MIN_SEC = 2;
export const RFQ_TTL_MAX_SEC = 30;
export const RFQ_TTL_DEFAULT_SEC = 10;

export type EnforcedRfq =
  | { index: number; action: "request"; label: string; request: RfqRequestOrder }
  | { index: number; action: "quote"; label: string; quote: RfqQuoteOrder }
  | { index: number; action: "accept"; label: string; accept: RfqAcceptOrder }
  | { index: number; action: "cancel" | "lock" | "unlock"; label: string; requestId: number };

export interface EnforceRfqInput {
  actions: readonly RfqAction[];
  userPairs: readonly PairView[];
  pairBySymbol: (symbol: string) => PairView | undefined;
  markets: ReadonlyMap<number, MarketView>;
  account: AccountView;
  /** What the user may see (port.rfqs): requests addressed to it and its own. */
  rfqs: readonly RfqView[];
  directives: readonly Directive[];
  nowMs: number;
  cfg: RuleConfig;
}

const posInt = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x) && x > 0;
const accountId = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= 0xffff_ffff;

export function rfqTtlMs(ttlSec: number | null | undefined): number {
  const s = typeof ttlSec === "number" && Number.isFinite(ttlSec) ? ttlSec : RFQ_TTL_DEFAULT_SEC;
  return Math.round(Math.min(RFQ_TTL_MAX_SEC, Math.max(RFQ_TTL_MIN_SEC, s)) * 1000);
}

/**
 * Checks a reply's rfq actions as orders are checked: well-formed for their action, on one of the
 * user's pairs, within the price band and the max size, and below initial margin only what reduces
 * the position. A request's minFill lies between the pair's minimum size and its size, its
 * remainder is "keep" or "drop", its whitelist names at most RFQ_MAX_WHITELIST accounts other than
 * the broker's own. Lock and unlock name a request addressed to the broker. Counts, margin and the
 * rfq rules proper (who holds a lock, a live quote to lock with) are the core's (rfq.ts).
 */
export function enforceRfq(input: EnforceRfqInput): { actions: EnforcedRfq[]; refusals: Refusal[] } {
  const { account, cfg, markets, nowMs } = input;
  const refusals: Refusal[] = [];
  const out: EnforcedRfq[] = [];
  const reduceOnly = input.directives.some((d) => d.code === "reduce_only");
  const userPairIds = new Set(input.userPairs.map((p) => p.pair));
  const byId = new Map(input.rfqs.map((r) => [r.requestId, r] as const));
  const room = new Map<string, number>();
  const takeRoom = (p: PairView, side: Side, size: number): number | null => {
    const key = `${p.pair}:${side}`;
    let r = room.get(key);
    if (r === undefined) {
      const pos = positionLots(account, p);
      const reducing = side === "buy" ? Math.floor(Math.max(0, -pos)) : Math.floor(Math.max(0, pos));
      const already = account.openOrders.filter((o) => o.pair === p.pair && o.side === side).reduce((a, o) => a + o.size, 0);
      r = Math.max(0, reducing - already);
    }
    if (size > r) return r;
    room.set(key, r - size);
    return null;
  };
  const inBand = (p: PairView, price: number): number | null => {
    const mark = markets.get(p.pair)?.mark ?? price;
    const band = priceBandTicks(mark, cfg);
    return Math.abs(price - mark) > band ? band : null;
  };

  input.actions.forEach((a, index) => {
    const kind = typeof a?.action === "string" ? a.action : "?";
    const label = `rfq ${index + 1} (${kind}${posInt(a?.requestId) ? ` on request ${a.requestId}` : ""})`;
    const refuse = (code: string, why: string) => void refusals.push({ code, text: `${label}: ${why}` });
    if (a === null || typeof a !== "object") return refuse("rfq_malformed", "not an action");
    switch (a.action) {
      case "request": {
        if (typeof a.pair !== "string" || (a.side !== "buy" && a.side !== "sell") || !posInt(a.size)) {
          return refuse("rfq_malformed", "a request needs pair, side (buy|sell) and size (integer lots)");
        }
        if (a.limit != null && !posInt(a.limit)) return refuse("rfq_malformed", "limit must be integer ticks or null");
        if (a.minFill != null && !posInt(a.minFill)) return refuse("rfq_malformed", "minFill must be integer lots or null");
        if (a.remainder != null && a.remainder !== "keep" && a.remainder !== "drop") return refuse("rfq_malformed", 'remainder must be "keep", "drop" or null');
        if (a.whitelist != null && (!Array.isArray(a.whitelist) || a.whitelist.length > RFQ_MAX_WHITELIST || !a.whitelist.every(accountId))) {
          return refuse("rfq_malformed", `whitelist must be null or at most ${RFQ_MAX_WHITELIST} account ids`);
        }
        const p = input.pairBySymbol(a.pair);
        if (p === undefined) return refuse("unknown_pair", `no such pair ${a.pair}`);
        if (!userPairIds.has(p.pair)) return refuse("not_your_pair", `${a.pair} is not one of your pairs`);
        if (a.size > p.maxOrderLots) return refuse("max_size", `larger than the max size ${p.maxOrderLots}`);
        if (a.minFill != null && (a.minFill < p.minOrderLots || a.minFill > a.size)) {
          return refuse("bad_min_fill", `minFill ${a.minFill} must lie between the pair's minimum size ${p.minOrderLots} and the request's size ${a.size}`);
        }
        if (a.whitelist?.includes(account.user)) return refuse("bad_whitelist", "your own account cannot quote your request");
        if (a.limit != null) {
          const band = inBand(p, a.limit);
          if (band !== null) return refuse("price_band", `limit more than ${band} ticks from the mark`);
        }
        if (reduceOnly) {
          const r = takeRoom(p, a.side, a.size);
          if (r !== null) return refuse("reduce_only", `below initial margin only exposure-reducing requests are accepted (room ${r} lots)`);
        }
        const request: RfqRequestOrder = { pair: p.pair, side: a.side, size: a.size, limit: a.limit ?? null, expiresAt: nowMs + rfqTtlMs(a.ttlSec) };
        // An empty whitelist is none: anyone may quote.
        if (a.whitelist != null && a.whitelist.length > 0) request.whitelist = [...a.whitelist];
        if (a.minFill != null) request.minFill = a.minFill;
        if (a.remainder != null) request.remainder = a.remainder;
        out.push({ index, action: "request", label, request });
        return;
      }
      case "quote": {
        if (!posInt(a.requestId) || !posInt(a.price) || !posInt(a.size)) {
          return refuse("rfq_malformed", "a quote needs requestId, price (integer ticks) and size (integer lots)");
        }
        const r = byId.get(a.requestId);
        if (r === undefined || r.user === account.user || r.expiresAt <= nowMs) return refuse("unknown_request", "no open request addressed to you with this id");
        const p = input.userPairs.find((x) => x.pair === r.pair);
        if (p === undefined) return refuse("not_your_pair", "the request is not on one of your pairs");
        if (a.size > p.maxOrderLots) return refuse("max_size", `larger than the max size ${p.maxOrderLots}`);
        const band = inBand(p, a.price);
        if (band !== null) return refuse("price_band", `price more than ${band} ticks from the mark`);
        if (reduceOnly) {
          const left = takeRoom(p, r.side === "buy" ? "sell" : "buy", a.size);
          if (left !== null) return refuse("reduce_only", `below initial margin only exposure-reducing quotes are accepted (room ${left} lots)`);
        }
        out.push({ index, action: "quote", label, quote: { requestId: a.requestId, price: a.price, size: a.size, validUntil: nowMs + rfqTtlMs(a.ttlSec) } });
        return;
      }
      case "accept": {
        if (!posInt(a.requestId)) return refuse("rfq_malformed", "an accept needs requestId (and optionally quoteId, size, limit)");
        if ((a.quoteId != null && !posInt(a.quoteId)) || (a.size != null && !posInt(a.size)) || (a.limit != null && !posInt(a.limit))) {
          return refuse("rfq_malformed", "quoteId, size and limit must be positive integers or null");
        }
        const r = byId.get(a.requestId);
        if (r === undefined || r.user !== account.user) return refuse("unknown_request", "no open request of yours with this id");
        if (reduceOnly) {
          const p = input.userPairs.find((x) => x.pair === r.pair);
          const size = Math.min(a.size ?? r.remaining, r.remaining);
          const left = p === undefined ? 0 : takeRoom(p, r.side, size);
          if (left !== null) return refuse("reduce_only", `below initial margin only exposure-reducing trades are accepted (room ${left} lots)`);
        }
        out.push({ index, action: "accept", label, accept: { requestId: a.requestId, quoteId: a.quoteId ?? null, size: a.size ?? null, limit: a.limit ?? null } });
        return;
      }
      case "cancel": {
        if (!posInt(a.requestId)) return refuse("rfq_malformed", "a cancel needs requestId");
        out.push({ index, action: "cancel", label, requestId: a.requestId });
        return;
      }
      case "lock":
      case "unlock": {
        if (!posInt(a.requestId)) return refuse("rfq_malformed", `${a.action === "lock" ? "a lock" : "an unlock"} needs requestId`);
        const r = byId.get(a.requestId);
        if (r === undefined || r.user === account.user || r.expiresAt <= nowMs) return refuse("unknown_request", "no open request addressed to you with this id");
        out.push({ index, action: a.action, label, requestId: a.requestId });
        return;
      }
      default:
        return refuse("rfq_malformed", 'action must be "request", "quote", "accept", "cancel", "lock" or "unlock"');
    }
  });
  return { actions: out, refusals };
}
