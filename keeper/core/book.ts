// The fast central limit order book of one pair.
//
// Rules (the naive reference book in naive-book.ts implements the same rules plainly; the
// property tests hold the two to identical output):
// 1. Prices are integer ticks inside [minPrice, maxPrice] (the pair's band around the session
//    reference); sizes are integer lots inside [minSize, maxSize]. A non-integer price is
//    "off_tick", one outside the band "price_out_of_band", a bad size "bad_size".
// 2. Price-time priority: the best price trades first; within a price, the order that entered
//    the level first. A replace that only lowers the size at the same price keeps its place;
//    any other replace re-enters at the back of its (new) level.
// 3. Trades happen at the resting (maker) order's price. An incoming order matches while it
//    crosses (buy price >= best ask, sell price <= best bid) and has size left.
// 4. Order types: limit rests its remainder until cancelled or the session ends; ioc never
//    rests (its remainder is dropped); post_only is refused with "post_only_would_cross" when
//    its price would cross the opposite best on arrival (whoever owns that order).
// 5. Self-trade prevention: when the incoming order meets a resting order of the same owner,
//    the resting one is cancelled (reported as SELF_TRADE) and matching continues behind it.
//    Two orders of one owner never trade with each other.
// 6. Order ids are unique among resting orders ("duplicate_order_id"); cancel and replace
//    need the owner's own order ("unknown_order" otherwise, revealing nothing).
// 7. At rest the book is never crossed: best bid < best ask.
//
// Layout, for speed (no allocation per order on the hot path):
// - Price levels are arrays indexed by tick offset (price - minPrice): queue head, tail, total
//   lots and order count. A level holds one side at a time (the book is not crossed at rest).
// - Two bitmaps (one per side) mark non-empty levels, so the next best price after a level
//   empties is found 32 levels per step with Math.clz32.
// - Orders live in a pool of typed arrays (slots); each level is an intrusive doubly linked
//   FIFO through the slots, and each owner's orders form a second intrusive list. Freed slots
//   are reused; the pool doubles when full. order id -> slot is an open-addressing table
//   (id-index.ts).

import {
  BUY,
  CANCELLED,
  FILL,
  IOC,
  MatchReport,
  POST_ONLY,
  SELF_TRADE,
  SELL,
  type BookLimits,
  type BookReject,
  type MatchingBook,
  type OrderInfo,
  type RestingOrder,
  type SideCode,
  type TypeCode,
} from "./matching.ts";
import { IdIndex } from "./id-index.ts";
import type { DepthLevel } from "./types.ts";

const NONE = -1;

function ctz(x: number): number {
  return 31 - Math.clz32(x & -x);
}

export class OrderBook implements MatchingBook {
  readonly limits: BookLimits;
  readonly report = new MatchReport();

  private readonly minPrice: number;
  private readonly maxPrice: number;
  private readonly minSize: number;
  private readonly maxSize: number;
  private readonly levels: number;

  // price levels
  private readonly head: Int32Array;
  private readonly tail: Int32Array;
  private readonly lvlQty: Float64Array;
  private readonly lvlCnt: Int32Array;
  private readonly bidBits: Uint32Array;
  private readonly askBits: Uint32Array;
  private bestBidIdx = NONE;
  private bestAskIdx: number;

  // order pool
  private cap = 0;
  private used = 0;
  private oId = new Float64Array(0);
  private oOwner = new Int32Array(0);
  private oLvl = new Int32Array(0);
  private oRem = new Float64Array(0);
  private oSize = new Float64Array(0);
  private oSide = new Uint8Array(0);
  private oType = new Uint8Array(0);
  private oNext = new Int32Array(0);
  private oPrev = new Int32Array(0);
  private uNext = new Int32Array(0);
  private uPrev = new Int32Array(0);
  private free = new Int32Array(0);
  private freeTop = 0;
  private readonly ids: IdIndex;
  private ownerHead = new Int32Array(0);

  constructor(limits: BookLimits, initialOrders = 1024) {
    this.limits = limits;
    this.minPrice = limits.minPrice;
    this.maxPrice = limits.maxPrice;
    this.minSize = limits.minSize;
    this.maxSize = limits.maxSize;
    const n = limits.maxPrice - limits.minPrice + 1;
    this.levels = n;
    this.head = new Int32Array(n).fill(NONE);
    this.tail = new Int32Array(n).fill(NONE);
    this.lvlQty = new Float64Array(n);
    this.lvlCnt = new Int32Array(n);
    this.bidBits = new Uint32Array((n + 31) >>> 5);
    this.askBits = new Uint32Array((n + 31) >>> 5);
    this.bestAskIdx = n;
    this.ids = new IdIndex(initialOrders);
    this.growPool(Math.max(16, initialOrders));
  }

  get size(): number {
    return this.ids.size;
  }

  check(price: number, size: number): BookReject | null {
    if (!Number.isInteger(price)) return "off_tick";
    if (price < this.minPrice || price > this.maxPrice) return "price_out_of_band";
    if (!Number.isInteger(size) || size < this.minSize || size > this.maxSize) return "bad_size";
    return null;
  }

  bestBid(): number {
    return this.bestBidIdx === NONE ? -1 : this.bestBidIdx + this.minPrice;
  }

  bestAsk(): number {
    return this.bestAskIdx === this.levels ? -1 : this.bestAskIdx + this.minPrice;
  }

  place(orderId: number, owner: number, side: SideCode, type: TypeCode, price: number, size: number): BookReject | null {
    const report = this.report;
    report.reset();
    const bad = this.check(price, size);
    if (bad !== null) return bad;
    if (this.ids.has(orderId)) return "duplicate_order_id";
    const lvl = price - this.minPrice;
    if (type === POST_ONLY && (side === BUY ? lvl >= this.bestAskIdx : lvl <= this.bestBidIdx)) {
      return "post_only_would_cross";
    }
    this.enter(orderId, owner, side, type, lvl, size);
    return null;
  }

  cancel(orderId: number, owner: number): boolean {
    this.report.reset();
    const slot = this.ids.get(orderId);
    if (slot < 0 || this.oOwner[slot] !== owner) return false;
    this.cancelSlot(slot);
    this.fixBest();
    return true;
  }

  cancelAll(owner: number): number {
    this.report.reset();
    if (owner >= this.ownerHead.length) return 0;
    const slots: number[] = [];
    for (let s = this.ownerHead[owner]!; s !== NONE; s = this.uNext[s]!) slots.push(s);
    const oId = this.oId;
    slots.sort((a, b) => oId[a]! - oId[b]!);
    for (const s of slots) this.cancelSlot(s);
    this.fixBest();
    return slots.length;
  }

  replace(orderId: number, owner: number, price: number, size: number): BookReject | null {
    const report = this.report;
    report.reset();
    const slot = this.ids.get(orderId);
    if (slot < 0 || this.oOwner[slot] !== owner) return "unknown_order";
    const bad = this.check(price, size);
    if (bad !== null) return bad;
    const lvl = price - this.minPrice;
    const side = this.oSide[slot]! as SideCode;
    const type = this.oType[slot]! as TypeCode;
    const oldRem = this.oRem[slot]!;
    if (lvl === this.oLvl[slot] && size <= oldRem) {
      this.oRem[slot] = size;
      this.oSize[slot] = size;
      this.lvlQty[lvl] = this.lvlQty[lvl]! - (oldRem - size);
      report.rested = true;
      report.keptPriority = true;
      report.takerRemaining = size;
      return null;
    }
    if (type === POST_ONLY && (side === BUY ? lvl >= this.bestAskIdx : lvl <= this.bestBidIdx)) {
      return "post_only_would_cross";
    }
    this.unlink(slot);
    this.fixBest();
    this.enter(orderId, owner, side, type, lvl, size);
    return null;
  }

  orderInfo(orderId: number, out: OrderInfo): boolean {
    const slot = this.ids.get(orderId);
    if (slot < 0) return false;
    out.orderId = orderId;
    out.owner = this.oOwner[slot]!;
    out.side = this.oSide[slot]! as SideCode;
    out.type = this.oType[slot]! as TypeCode;
    out.price = this.oLvl[slot]! + this.minPrice;
    out.remaining = this.oRem[slot]!;
    out.size = this.oSize[slot]!;
    return true;
  }

  depth(side: SideCode, levels: number): DepthLevel[] {
    const out: DepthLevel[] = [];
    if (side === BUY) {
      for (let l = this.bestBidIdx; l !== NONE && out.length < levels; l = this.nextBidFrom(l - 1)) {
        out.push({ price: l + this.minPrice, size: this.lvlQty[l]!, orders: this.lvlCnt[l]! });
      }
    } else {
      for (let l = this.bestAskIdx; l !== this.levels && out.length < levels; l = this.nextAskFrom(l + 1)) {
        out.push({ price: l + this.minPrice, size: this.lvlQty[l]!, orders: this.lvlCnt[l]! });
      }
    }
    return out;
  }

  ordersOf(owner: number): RestingOrder[] {
    const out: RestingOrder[] = [];
    if (owner >= this.ownerHead.length) return out;
    for (let s = this.ownerHead[owner]!; s !== NONE; s = this.uNext[s]!) out.push(this.view(s));
    out.sort((a, b) => a.orderId - b.orderId);
    return out;
  }

  orders(): RestingOrder[] {
    const out: RestingOrder[] = [];
    for (let l = this.bestBidIdx; l !== NONE; l = this.nextBidFrom(l - 1)) {
      for (let s = this.head[l]!; s !== NONE; s = this.oNext[s]!) out.push(this.view(s));
    }
    for (let l = this.bestAskIdx; l !== this.levels; l = this.nextAskFrom(l + 1)) {
      for (let s = this.head[l]!; s !== NONE; s = this.oNext[s]!) out.push(this.view(s));
    }
    return out;
  }

  rest(order: RestingOrder): void {
    this.insert(order.orderId, order.owner, order.side, order.type, order.price - this.minPrice, order.remaining, order.size);
  }

  // ---------------------------------------------------------------- internals

  private view(s: number): RestingOrder {
    return {
      orderId: this.oId[s]!,
      owner: this.oOwner[s]!,
      side: this.oSide[s]! as SideCode,
      type: this.oType[s]! as TypeCode,
      price: this.oLvl[s]! + this.minPrice,
      remaining: this.oRem[s]!,
      size: this.oSize[s]!,
    };
  }

  /** Matches an incoming order and rests its remainder when its type allows. */
  private enter(orderId: number, owner: number, side: SideCode, type: TypeCode, lvl: number, size: number): void {
    const report = this.report;
    const head = this.head;
    const oNext = this.oNext;
    const oOwner = this.oOwner;
    const oRem = this.oRem;
    const lvlQty = this.lvlQty;
    const minPrice = this.minPrice;
    let rem = size;
    if (side === BUY) {
      while (rem > 0) {
        const l = this.bestAskIdx;
        if (l > lvl) break;
        let o = head[l]!;
        while (o !== NONE) {
          const nx = oNext[o]!;
          const mr = oRem[o]!;
          if (oOwner[o] === owner) {
            report.push(SELF_TRADE, this.oId[o]!, owner, SELL, l + minPrice, mr, 0);
            this.unlink(o);
          } else {
            const f = mr < rem ? mr : rem;
            rem -= f;
            oRem[o] = mr - f;
            lvlQty[l] = lvlQty[l]! - f;
            report.push(FILL, this.oId[o]!, oOwner[o]!, SELL, l + minPrice, f, mr - f);
            if (mr === f) this.unlink(o);
            if (rem === 0) break;
          }
          o = nx;
        }
        if (head[l] === NONE) this.bestAskIdx = this.nextAskFrom(l + 1);
      }
    } else {
      while (rem > 0) {
        const l = this.bestBidIdx;
        if (l < lvl) break; // also when the bid side is empty (NONE = -1)
        let o = head[l]!;
        while (o !== NONE) {
          const nx = oNext[o]!;
          const mr = oRem[o]!;
          if (oOwner[o] === owner) {
            report.push(SELF_TRADE, this.oId[o]!, owner, BUY, l + minPrice, mr, 0);
            this.unlink(o);
          } else {
            const f = mr < rem ? mr : rem;
            rem -= f;
            oRem[o] = mr - f;
            lvlQty[l] = lvlQty[l]! - f;
            report.push(FILL, this.oId[o]!, oOwner[o]!, BUY, l + minPrice, f, mr - f);
            if (mr === f) this.unlink(o);
            if (rem === 0) break;
          }
          o = nx;
        }
        if (head[l] === NONE) this.bestBidIdx = this.nextBidFrom(l - 1);
      }
    }
    report.takerFilled = size - rem;
    report.takerRemaining = rem;
    if (rem > 0 && type !== IOC) {
      this.insert(orderId, owner, side, type, lvl, rem, size);
      report.rested = true;
    }
  }

  private insert(orderId: number, owner: number, side: SideCode, type: TypeCode, lvl: number, rem: number, size: number): void {
    let slot: number;
    if (this.freeTop > 0) slot = this.free[--this.freeTop]!;
    else {
      if (this.used === this.cap) this.growPool(this.cap * 2);
      slot = this.used++;
    }
    this.oId[slot] = orderId;
    this.oOwner[slot] = owner;
    this.oLvl[slot] = lvl;
    this.oRem[slot] = rem;
    this.oSize[slot] = size;
    this.oSide[slot] = side;
    this.oType[slot] = type;
    const t = this.tail[lvl]!;
    this.oPrev[slot] = t;
    this.oNext[slot] = NONE;
    if (t === NONE) {
      this.head[lvl] = slot;
      const bits = side === BUY ? this.bidBits : this.askBits;
      bits[lvl >>> 5] = bits[lvl >>> 5]! | (1 << (lvl & 31));
    } else this.oNext[t] = slot;
    this.tail[lvl] = slot;
    this.lvlQty[lvl] = this.lvlQty[lvl]! + rem;
    this.lvlCnt[lvl] = this.lvlCnt[lvl]! + 1;
    if (side === BUY) {
      if (lvl > this.bestBidIdx) this.bestBidIdx = lvl;
    } else if (lvl < this.bestAskIdx) this.bestAskIdx = lvl;
    if (owner >= this.ownerHead.length) this.growOwners(owner + 1);
    const oh = this.ownerHead[owner]!;
    this.uPrev[slot] = NONE;
    this.uNext[slot] = oh;
    if (oh !== NONE) this.uPrev[oh] = slot;
    this.ownerHead[owner] = slot;
    this.ids.set(orderId, slot);
  }

  /** Removes a slot from its level and owner lists; best pointers are the caller's job. */
  private unlink(slot: number): void {
    const lvl = this.oLvl[slot]!;
    const p = this.oPrev[slot]!;
    const n = this.oNext[slot]!;
    if (p === NONE) this.head[lvl] = n;
    else this.oNext[p] = n;
    if (n === NONE) this.tail[lvl] = p;
    else this.oPrev[n] = p;
    this.lvlQty[lvl] = this.lvlQty[lvl]! - this.oRem[slot]!;
    this.lvlCnt[lvl] = this.lvlCnt[lvl]! - 1;
    if (this.head[lvl] === NONE) {
      const bits = this.oSide[slot] === BUY ? this.bidBits : this.askBits;
      bits[lvl >>> 5] = bits[lvl >>> 5]! & ~(1 << (lvl & 31));
    }
    const up = this.uPrev[slot]!;
    const un = this.uNext[slot]!;
    if (up === NONE) this.ownerHead[this.oOwner[slot]!] = un;
    else this.uNext[up] = un;
    if (un !== NONE) this.uPrev[un] = up;
    this.ids.delete(this.oId[slot]!);
    this.free[this.freeTop++] = slot;
  }

  private cancelSlot(slot: number): void {
    this.report.push(CANCELLED, this.oId[slot]!, this.oOwner[slot]!, this.oSide[slot]!, this.oLvl[slot]! + this.minPrice, this.oRem[slot]!, 0);
    this.unlink(slot);
  }

  /** After removals: move best pointers off levels that emptied. */
  private fixBest(): void {
    const b = this.bestBidIdx;
    if (b !== NONE && this.head[b] === NONE) this.bestBidIdx = this.nextBidFrom(b - 1);
    const a = this.bestAskIdx;
    if (a !== this.levels && this.head[a] === NONE) this.bestAskIdx = this.nextAskFrom(a + 1);
  }

  /** Highest non-empty bid level <= from, or NONE. */
  private nextBidFrom(from: number): number {
    if (from < 0) return NONE;
    const bits = this.bidBits;
    let w = from >>> 5;
    let word = bits[w]! & (0xffffffff >>> (31 - (from & 31)));
    while (word === 0) {
      if (--w < 0) return NONE;
      word = bits[w]!;
    }
    return (w << 5) + 31 - Math.clz32(word);
  }

  /** Lowest non-empty ask level >= from, or `levels`. */
  private nextAskFrom(from: number): number {
    const n = this.levels;
    if (from >= n) return n;
    const bits = this.askBits;
    const words = bits.length;
    let w = from >>> 5;
    let word = bits[w]! & (0xffffffff << (from & 31));
    while (word === 0) {
      if (++w >= words) return n;
      word = bits[w]!;
    }
    return (w << 5) + ctz(word);
  }

  private growPool(cap: number): void {
    const grow = <T extends Float64Array | Int32Array | Uint8Array>(old: T, make: (n: number) => T): T => {
      const a = make(cap);
      a.set(old);
      return a;
    };
    this.oId = grow(this.oId, (n) => new Float64Array(n));
    this.oOwner = grow(this.oOwner, (n) => new Int32Array(n));
    this.oLvl = grow(this.oLvl, (n) => new Int32Array(n));
    this.oRem = grow(this.oRem, (n) => new Float64Array(n));
    this.oSize = grow(this.oSize, (n) => new Float64Array(n));
    this.oSide = grow(this.oSide, (n) => new Uint8Array(n));
    this.oType = grow(this.oType, (n) => new Uint8Array(n));
    this.oNext = grow(this.oNext, (n) => new Int32Array(n));
    this.oPrev = grow(this.oPrev, (n) => new Int32Array(n));
    this.uNext = grow(this.uNext, (n) => new Int32Array(n));
    this.uPrev = grow(this.uPrev, (n) => new Int32Array(n));
    this.free = grow(this.free, (n) => new Int32Array(n));
    this.cap = cap;
  }

  private growOwners(n: number): void {
    const size = Math.max(n, this.ownerHead.length * 2, 64);
    const a = new Int32Array(size).fill(NONE);
    a.set(this.ownerHead);
    this.ownerHead = a;
  }
}
