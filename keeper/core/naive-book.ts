// The reference order book: the rules of book.ts written as plainly as possible (sorted plain
// arrays, linear scans, splice), so its correctness can be seen by reading it. The property
// tests feed it and the fast book the same random command streams and require identical
// reports and resting books. Too slow for production, by design.

import {
  BUY,
  CANCELLED,
  FILL,
  IOC,
  MatchReport,
  POST_ONLY,
  SELF_TRADE,
  type BookLimits,
  type BookReject,
  type MatchingBook,
  type OrderInfo,
  type RestingOrder,
  type SideCode,
  type TypeCode,
} from "./matching.ts";
import type { DepthLevel } from "./types.ts";

interface NaiveOrder {
  orderId: number;
  owner: number;
  side: SideCode;
  type: TypeCode;
  price: number;
  remaining: number;
  size: number;
}

export class NaiveBook implements MatchingBook {
  readonly limits: BookLimits;
  readonly report = new MatchReport();
  /** Best first; within a price, arrival order. */
  private bids: NaiveOrder[] = [];
  private asks: NaiveOrder[] = [];

  constructor(limits: BookLimits) {
    this.limits = limits;
  }

  get size(): number {
    return this.bids.length + this.asks.length;
  }

  check(price: number, size: number): BookReject | null {
    if (!Number.isInteger(price)) return "off_tick";
    if (price < this.limits.minPrice || price > this.limits.maxPrice) return "price_out_of_band";
    if (!Number.isInteger(size) || size < this.limits.minSize || size > this.limits.maxSize) return "bad_size";
    return null;
  }

  bestBid(): number {
    return this.bids[0]?.price ?? -1;
  }

  bestAsk(): number {
    return this.asks[0]?.price ?? -1;
  }

  private crosses(side: SideCode, price: number): boolean {
    if (side === BUY) return this.asks.length > 0 && price >= this.asks[0]!.price;
    return this.bids.length > 0 && price <= this.bids[0]!.price;
  }

  private find(orderId: number): NaiveOrder | undefined {
    return this.bids.find((o) => o.orderId === orderId) ?? this.asks.find((o) => o.orderId === orderId);
  }

  place(orderId: number, owner: number, side: SideCode, type: TypeCode, price: number, size: number): BookReject | null {
    this.report.reset();
    const bad = this.check(price, size);
    if (bad !== null) return bad;
    if (this.find(orderId) !== undefined) return "duplicate_order_id";
    if (type === POST_ONLY && this.crosses(side, price)) return "post_only_would_cross";
    this.enter({ orderId, owner, side, type, price, remaining: size, size });
    return null;
  }

  private enter(order: NaiveOrder): void {
    const opposite = order.side === BUY ? this.asks : this.bids;
    const size = order.remaining;
    while (order.remaining > 0 && opposite.length > 0 && this.crosses(order.side, order.price)) {
      const maker = opposite[0]!;
      if (maker.owner === order.owner) {
        this.report.push(SELF_TRADE, maker.orderId, maker.owner, maker.side, maker.price, maker.remaining, 0);
        opposite.shift();
        continue;
      }
      const fill = Math.min(maker.remaining, order.remaining);
      maker.remaining -= fill;
      order.remaining -= fill;
      this.report.push(FILL, maker.orderId, maker.owner, maker.side, maker.price, fill, maker.remaining);
      if (maker.remaining === 0) opposite.shift();
    }
    this.report.takerFilled = size - order.remaining;
    this.report.takerRemaining = order.remaining;
    if (order.remaining > 0 && order.type !== IOC) {
      this.insert(order);
      this.report.rested = true;
    }
  }

  private insert(order: NaiveOrder): void {
    const list = order.side === BUY ? this.bids : this.asks;
    const behind = (o: NaiveOrder): boolean => (order.side === BUY ? o.price < order.price : o.price > order.price);
    const at = list.findIndex(behind);
    if (at === -1) list.push(order);
    else list.splice(at, 0, order);
  }

  private remove(order: NaiveOrder): void {
    const list = order.side === BUY ? this.bids : this.asks;
    list.splice(list.indexOf(order), 1);
  }

  cancel(orderId: number, owner: number): boolean {
    this.report.reset();
    const o = this.find(orderId);
    if (o === undefined || o.owner !== owner) return false;
    this.report.push(CANCELLED, o.orderId, o.owner, o.side, o.price, o.remaining, 0);
    this.remove(o);
    return true;
  }

  cancelAll(owner: number): number {
    this.report.reset();
    const mine = [...this.bids, ...this.asks].filter((o) => o.owner === owner).sort((a, b) => a.orderId - b.orderId);
    for (const o of mine) {
      this.report.push(CANCELLED, o.orderId, o.owner, o.side, o.price, o.remaining, 0);
      this.remove(o);
    }
    return mine.length;
  }

  replace(orderId: number, owner: number, price: number, size: number): BookReject | null {
    this.report.reset();
    const o = this.find(orderId);
    if (o === undefined || o.owner !== owner) return "unknown_order";
    const bad = this.check(price, size);
    if (bad !== null) return bad;
    if (price === o.price && size <= o.remaining) {
      o.remaining = size;
      o.size = size;
      this.report.rested = true;
      this.report.keptPriority = true;
      this.report.takerRemaining = size;
      return null;
    }
    if (o.type === POST_ONLY && this.crosses(o.side, price)) return "post_only_would_cross";
    this.remove(o);
    this.enter({ orderId, owner, side: o.side, type: o.type, price, remaining: size, size });
    return null;
  }

  orderInfo(orderId: number, out: OrderInfo): boolean {
    const o = this.find(orderId);
    if (o === undefined) return false;
    out.orderId = o.orderId;
    out.owner = o.owner;
    out.side = o.side;
    out.type = o.type;
    out.price = o.price;
    out.remaining = o.remaining;
    out.size = o.size;
    return true;
  }

  depth(side: SideCode, levels: number): DepthLevel[] {
    const out: { price: number; size: number; orders: number }[] = [];
    for (const o of side === BUY ? this.bids : this.asks) {
      const last = out[out.length - 1];
      if (last !== undefined && last.price === o.price) {
        last.size += o.remaining;
        last.orders += 1;
      } else {
        if (out.length === levels) break;
        out.push({ price: o.price, size: o.remaining, orders: 1 });
      }
    }
    return out;
  }

  ordersOf(owner: number): RestingOrder[] {
    return this.orders().filter((o) => o.owner === owner).sort((a, b) => a.orderId - b.orderId);
  }

  orders(): RestingOrder[] {
    return [...this.bids, ...this.asks].map((o) => ({ ...o }));
  }

  rest(order: RestingOrder): void {
    this.insert({ ...order });
  }
}
