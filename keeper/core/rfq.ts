// Requests for quote (RFQ): block trades negotiated beside the book. A broker shouts "who sells
// 50M PEPE?" (a request), the others answer with prices (quotes), and the requester takes one or
// the best of them. This module keeps the requests and quotes and their rules; engine.ts applies
// the commands (commands.ts rfq_*) with the same risk stages as orders and moves the money.
//
// Rules:
// 1. Ids. A request's id is the seq of its rfq_request command, a quote's the seq of its
//    rfq_quote command, so request, quote and order ids never collide.
// 2. Sizes and prices follow the pair's order rules (book.ts rule 1): integer lots in
//    [minSizeLots, maxSizeLots], integer ticks inside the price band ("bad_size", "off_tick",
//    "price_out_of_band"). A request's `minFill` (default: the pair's minimum size) is the
//    smallest block it will trade; it lies in [minSizeLots, size].
// 3. Quotes. A quote answers one open request, on the other side, at one price, for
//    minFill <= size <= the request's open lots ("rfq_below_min_fill", "bad_size"). It is refused
//    when the quoter is the requester or is not on the request's whitelist ("rfq_not_invited"),
//    when its price is worse than the request's limit ("rfq_beyond_limit": above it for a buy
//    request, below it for a sell), when the request is locked by another quoter ("rfq_locked").
//    One live quote per quoter and request: a new quote replaces the quoter's previous one
//    (rfq_cancelled, reason "replaced"). A quote trades at most once: what of it the requester
//    does not take ends with it.
// 4. Lock. A quoter with a live quote may lock an open request (rfq_lock). While locked, only
//    the locker's quote can be accepted and no other quoter may quote (their live quotes wait).
//    The lock ends when the locker unlocks (rfq_unlock), when its quote ends without a
//    replacement (accepted, withdrawn, expired, cancelled: rfq_unlocked "quote_ended"), or with
//    the request. A second lock is "rfq_locked"; unlocking a lock one does not hold,
//    "rfq_not_locked".
// 5. Accept. Only the requester accepts (rfq_accept; anyone else gets "unknown_request"), either
//    one quote by id (min(size, the quote's size) lots), or, with no quote id, the best live
//    quotes: price first (lowest for a buy request, highest for a sell), then the older quote,
//    skipping quotes whose quoter's margin no longer covers them, until `size` (default: the
//    request's open lots) is filled, fewer than minFill lots are left to fill, the requester's
//    own margin refuses the next trade, or no quote within the limit (the tighter of the
//    accept's and the request's) is left; nothing traded is "rfq_no_quote", or the requester's
//    margin code. Every block trade is at least minFill lots.
//    Each block trade is a fill at the quote's price: the requester is the taker (pays the book's
//    taker fee), the quoter the maker (pays or earns the maker fee), fees to the treasury.
//    After the accept, the request ends "filled" when nothing is left, "dropped" when
//    remainder = "drop" or fewer than minFill lots are left; otherwise it stays open
//    (remainder = "keep") with its other quotes.
// 6. Risk (engine.ts, as for orders): an open request reserves margin like a resting order of its
//    open lots at its limit, or, without a limit, at the pair's mark when it was made
//    (`reservePrice`); a live quote like a resting order of its size at its price. Both pass the
//    pre-trade check of margin.ts when made (so below initial margin only reducing requests and
//    quotes pass); each block trade passes it again, for both sides, at the trade's price,
//    with the reservations it replaces released. Every end of a request or quote releases
//    exactly what it reserved. Requests and quotes count against maxOpenOrdersPerUser apart
//    from orders ("too_many_orders").
// 7. Block trades print on the tape (recentTrades, fill events with `block: true`) and in the
//    fill log, but do not move marks: they neither touch the book nor set the last trade price.
//    They move base from seller to buyer and quote from buyer to seller, fees to the treasury,
//    so every asset is conserved exactly as by book fills (closing.ts F1).
// 8. Expiry by the command clock: a request is open while ts < expiresAt, a quote live while
//    ts < validUntil (and its request open). Past that it is inert (quote, lock, accept are
//    "rfq_expired") until the rfq_expire command sweeps it and releases its reservation; the
//    keeper sends that sweep when Engine.nextRfqExpiry() has passed, like liquidations. A sweep
//    expires due quotes first, then due requests (each in (expiry, id) order); a request's
//    quotes end with it ("request_ended").
// 9. Cancel. rfq_cancel by the requester cancels its request (and its quotes); by a quoter,
//    withdraws its quote on that request. Liquidation cancels every request and quote of the
//    account, end_trading every request and quote.
// 10. RFQ commands run only while trading ("not_trading").
//
// Lifecycles (explicit transition tables; anything else is an InvariantError):
//   request: open <-> locked; open | locked -> open (partial accept, remainder kept)
//            open | locked -> filled | dropped | cancelled | expired (final)
//   quote:   live -> filled | withdrawn | cancelled | expired (final)

import { InvariantError } from "./errors.ts";
import { BUY, type SideCode } from "./matching.ts";
import type { AccountId, PairId } from "./types.ts";

export type RfqRemainder = "keep" | "drop";
export type RfqRequestState = "open" | "locked" | "filled" | "dropped" | "cancelled" | "expired";
export type RfqQuoteState = "live" | "filled" | "withdrawn" | "cancelled" | "expired";

export const RFQ_REQUEST_TRANSITIONS: Readonly<Record<RfqRequestState, readonly RfqRequestState[]>> = {
  open: ["open", "locked", "filled", "dropped", "cancelled", "expired"],
  locked: ["open", "filled", "dropped", "cancelled", "expired"],
  filled: [],
  dropped: [],
  cancelled: [],
  expired: [],
};

export const RFQ_QUOTE_TRANSITIONS: Readonly<Record<RfqQuoteState, readonly RfqQuoteState[]>> = {
  live: ["filled", "withdrawn", "cancelled", "expired"],
  filled: [],
  withdrawn: [],
  cancelled: [],
  expired: [],
};

/** No lock: RfqRequest.lockedBy. */
export const UNLOCKED = -1;

export class RfqRequest {
  remaining: number;
  state: RfqRequestState = "open";
  /** Dense account index of the quoter holding the lock, or UNLOCKED. */
  lockedBy = UNLOCKED;
  /** Live quotes, ascending id. */
  readonly quotes: RfqQuote[] = [];

  constructor(
    readonly id: number,
    /** Dense account index (ledger.ts). */
    readonly owner: number,
    readonly user: AccountId,
    readonly pi: number,
    readonly pair: PairId,
    readonly side: SideCode,
    readonly size: number,
    /** Ticks; 0 when the request has no limit. */
    readonly limit: number,
    /** The price its reservation counts: the limit, else the mark when it was made. */
    readonly reservePrice: number,
    readonly expiresAt: number,
    /** Sorted, unique; null: anyone may quote. */
    readonly whitelist: readonly AccountId[] | null,
    readonly minFill: number,
    readonly remainder: RfqRemainder,
  ) {
    this.remaining = size;
  }

  /** Whether `price` is at or inside `limit` (0: none) for this request's side. */
  within(price: number, limit: number): boolean {
    return limit === 0 || (this.side === BUY ? price <= limit : price >= limit);
  }

  invites(user: AccountId): boolean {
    return user !== this.user && (this.whitelist === null || this.whitelist.includes(user));
  }

  move(to: RfqRequestState): void {
    if (!RFQ_REQUEST_TRANSITIONS[this.state].includes(to)) {
      throw new InvariantError(`rfq request ${this.id}: ${this.state} -> ${to} is not a transition`);
    }
    this.state = to;
  }
}

export class RfqQuote {
  state: RfqQuoteState = "live";

  constructor(
    readonly id: number,
    readonly request: RfqRequest,
    readonly owner: number,
    readonly user: AccountId,
    /** The quoter's side: the other side of the request. */
    readonly side: SideCode,
    readonly price: number,
    readonly size: number,
    readonly validUntil: number,
  ) {}

  move(to: RfqQuoteState): void {
    if (!RFQ_QUOTE_TRANSITIONS[this.state].includes(to)) {
      throw new InvariantError(`rfq quote ${this.id}: ${this.state} -> ${to} is not a transition`);
    }
    this.state = to;
  }
}

/**
 * The open requests and live quotes of a session, in id order (Map insertion order: ids are
 * increasing seqs, and a restore inserts in id order), with per-account counts. It moves no
 * money: engine.ts reserves and releases around every add and end.
 */
export class RfqDesk {
  readonly requests = new Map<number, RfqRequest>();
  readonly quotes = new Map<number, RfqQuote>();
  /** Open requests plus live quotes per dense account index. */
  private readonly counts: number[] = [];

  get size(): number {
    return this.requests.size + this.quotes.size;
  }

  countOf(u: number): number {
    return this.counts[u] ?? 0;
  }

  addRequest(r: RfqRequest): void {
    this.requests.set(r.id, r);
    this.counts[r.owner] = this.countOf(r.owner) + 1;
  }

  addQuote(q: RfqQuote): void {
    this.quotes.set(q.id, q);
    q.request.quotes.push(q);
    this.counts[q.owner] = this.countOf(q.owner) + 1;
  }

  /** Ends an open request (its quotes must have ended first). */
  endRequest(r: RfqRequest, to: RfqRequestState): void {
    if (r.quotes.length > 0) throw new InvariantError(`rfq request ${r.id} ends with live quotes`);
    r.move(to);
    r.lockedBy = UNLOCKED;
    this.requests.delete(r.id);
    this.counts[r.owner] = this.countOf(r.owner) - 1;
  }

  endQuote(q: RfqQuote, to: RfqQuoteState): void {
    q.move(to);
    const list = q.request.quotes;
    list.splice(list.indexOf(q), 1);
    this.quotes.delete(q.id);
    this.counts[q.owner] = this.countOf(q.owner) - 1;
  }

  /** The quoter's live quote on the request. */
  quoteOf(r: RfqRequest, owner: number): RfqQuote | undefined {
    for (const q of r.quotes) if (q.owner === owner) return q;
    return undefined;
  }

  /**
   * The request's quotes that may trade at `ts` within `limit` (0: none), best first: price
   * (lowest for a buy request), then id. While locked, only the locker's.
   */
  best(r: RfqRequest, ts: number, limit: number): RfqQuote[] {
    const out: RfqQuote[] = [];
    for (const q of r.quotes) {
      if (ts >= q.validUntil || !r.within(q.price, limit)) continue;
      if (r.lockedBy !== UNLOCKED && q.owner !== r.lockedBy) continue;
      out.push(q);
    }
    const sign = r.side === BUY ? 1 : -1;
    return out.sort((a, b) => sign * (a.price - b.price) || a.id - b.id);
  }

  /** What a sweep at `ts` expires: quotes, then requests, each in (expiry, id) order. */
  due(ts: number): { quotes: RfqQuote[]; requests: RfqRequest[] } {
    const quotes: RfqQuote[] = [];
    const requests: RfqRequest[] = [];
    for (const q of this.quotes.values()) if (q.validUntil <= ts) quotes.push(q);
    for (const r of this.requests.values()) if (r.expiresAt <= ts) requests.push(r);
    quotes.sort((a, b) => a.validUntil - b.validUntil || a.id - b.id);
    requests.sort((a, b) => a.expiresAt - b.expiresAt || a.id - b.id);
    return { quotes, requests };
  }

  /** The earliest expiry of an open request or live quote, or null. */
  nextExpiry(): number | null {
    let t = Infinity;
    for (const q of this.quotes.values()) if (q.validUntil < t) t = q.validUntil;
    for (const r of this.requests.values()) if (r.expiresAt < t) t = r.expiresAt;
    return t === Infinity ? null : t;
  }
}
