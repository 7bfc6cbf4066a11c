// The contract both order books implement (the fast book.ts and the reference naive-book.ts),
// so the engine and the property tests can drive either one. Sides and order types are small
// integers here because the fast book keeps them in typed arrays; the engine maps them to the
// string names of types.ts at its boundary.

import type { DepthLevel } from "./types.ts";

export const BUY = 0;
export const SELL = 1;
export type SideCode = 0 | 1;

export const LIMIT = 0;
export const IOC = 1;
export const POST_ONLY = 2;
export type TypeCode = 0 | 1 | 2;

/** What the matching step produced, in the order it happened. */
export const FILL = 0;
/** A resting order of the taker's own owner, cancelled by self-trade prevention. */
export const SELF_TRADE = 1;
/** A resting order removed by cancel / cancelAll. */
export const CANCELLED = 2;

export type BookReject =
  | "off_tick"
  | "price_out_of_band"
  | "bad_size"
  | "duplicate_order_id"
  | "post_only_would_cross"
  | "unknown_order";

export interface BookLimits {
  readonly minPrice: number;
  readonly maxPrice: number;
  readonly minSize: number;
  readonly maxSize: number;
}

/**
 * Reusable scratch record of one book operation, overwritten by the next call. Entry i
 * describes the resting order it touched: its id, owner, side, price, the lots filled or
 * cancelled (`size`) and the lots it still has open afterwards (`remaining`).
 */
export class MatchReport {
  count = 0;
  kind = new Uint8Array(64);
  orderId = new Float64Array(64);
  owner = new Int32Array(64);
  side = new Uint8Array(64);
  price = new Int32Array(64);
  size = new Float64Array(64);
  remaining = new Float64Array(64);
  /** Lots of the incoming order filled, and left open (resting, or dropped for IOC). */
  takerFilled = 0;
  takerRemaining = 0;
  /** Whether the incoming order (or the replaced order) rests in the book afterwards. */
  rested = false;
  /** replace only: same price, smaller size, priority kept. */
  keptPriority = false;

  reset(): void {
    this.count = 0;
    this.takerFilled = 0;
    this.takerRemaining = 0;
    this.rested = false;
    this.keptPriority = false;
  }

  push(kind: number, orderId: number, owner: number, side: number, price: number, size: number, remaining: number): void {
    const i = this.count;
    if (i === this.kind.length) this.grow();
    this.kind[i] = kind;
    this.orderId[i] = orderId;
    this.owner[i] = owner;
    this.side[i] = side;
    this.price[i] = price;
    this.size[i] = size;
    this.remaining[i] = remaining;
    this.count = i + 1;
  }

  private grow(): void {
    const n = this.kind.length * 2;
    const k = new Uint8Array(n); k.set(this.kind); this.kind = k;
    const id = new Float64Array(n); id.set(this.orderId); this.orderId = id;
    const o = new Int32Array(n); o.set(this.owner); this.owner = o;
    const s = new Uint8Array(n); s.set(this.side); this.side = s;
    const p = new Int32Array(n); p.set(this.price); this.price = p;
    const z = new Float64Array(n); z.set(this.size); this.size = z;
    const r = new Float64Array(n); r.set(this.remaining); this.remaining = r;
  }
}

/** Filled by MatchingBook.orderInfo. */
export class OrderInfo {
  orderId = 0;
  owner = 0;
  side: SideCode = BUY;
  type: TypeCode = LIMIT;
  price = 0;
  remaining = 0;
  size = 0;
}

export interface RestingOrder {
  readonly orderId: number;
  readonly owner: number;
  readonly side: SideCode;
  readonly type: TypeCode;
  readonly price: number;
  readonly remaining: number;
  readonly size: number;
}

export interface MatchingBook {
  readonly limits: BookLimits;
  /** Scratch result of the last place / replace / cancel / cancelAll. */
  readonly report: MatchReport;
  /** Price and size rules alone (no book state). */
  check(price: number, size: number): BookReject | null;
  place(orderId: number, owner: number, side: SideCode, type: TypeCode, price: number, size: number): BookReject | null;
  /** Cancels the owner's order; the report gets one CANCELLED entry. False if not found. */
  cancel(orderId: number, owner: number): boolean;
  /** Cancels every order of the owner (oldest placement last-in-list order is not promised). */
  cancelAll(owner: number): number;
  replace(orderId: number, owner: number, price: number, size: number): BookReject | null;
  orderInfo(orderId: number, out: OrderInfo): boolean;
  /** Best prices in ticks, or -1 when the side is empty. */
  bestBid(): number;
  bestAsk(): number;
  depth(side: SideCode, levels: number): DepthLevel[];
  /** Resting orders of one owner, sorted by order id. */
  ordersOf(owner: number): RestingOrder[];
  /** Every resting order in priority order: bids best first (FIFO within a level), then asks. */
  orders(): RestingOrder[];
  /** Appends an order at the back of its level without matching (restoring a snapshot). */
  rest(order: RestingOrder): void;
  readonly size: number;
}
