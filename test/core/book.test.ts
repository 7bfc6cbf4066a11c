import { expect } from "chai";
import { OrderBook } from "../../keeper/core/book.ts";
import { NaiveBook } from "../../keeper/core/naive-book.ts";
import {
  BUY,
  CANCELLED,
  FILL,
  IOC,
  LIMIT,
  POST_ONLY,
  SELF_TRADE,
  SELL,
  type MatchingBook,
  type SideCode,
  type TypeCode,
} from "../../keeper/core/matching.ts";
import { Prng } from "../../keeper/core/prng.ts";

const limits = { minPrice: 90, maxPrice: 110, minSize: 1, maxSize: 50 };

function entries(book: MatchingBook) {
  const r = book.report;
  const out = [];
  for (let i = 0; i < r.count; i++) {
    out.push({
      kind: r.kind[i],
      orderId: r.orderId[i],
      owner: r.owner[i],
      side: r.side[i],
      price: r.price[i],
      size: r.size[i],
      remaining: r.remaining[i],
    });
  }
  return { entries: out, filled: r.takerFilled, remaining: r.takerRemaining, rested: r.rested, kept: r.keptPriority };
}

describe("OrderBook", () => {
  describe("place", () => {
    it("trades at the maker's price, best price first, then time", () => {
      const b = new OrderBook(limits);
      expect(b.place(1, 1, SELL, LIMIT, 101, 5)).to.equal(null);
      expect(b.place(2, 2, SELL, LIMIT, 100, 5)).to.equal(null);
      expect(b.place(3, 3, SELL, LIMIT, 100, 5)).to.equal(null);
      expect(b.place(4, 4, BUY, LIMIT, 102, 12)).to.equal(null);
      const e = entries(b);
      expect(e.entries.map((x) => [x.orderId, x.price, x.size, x.remaining])).to.deep.equal([
        [2, 100, 5, 0],
        [3, 100, 5, 0],
        [1, 101, 2, 3],
      ]);
      expect(e.filled).to.equal(12);
      expect(e.rested).to.equal(false);
      expect(b.bestAsk()).to.equal(101);
      expect(b.bestBid()).to.equal(-1);
    });

    it("rests the remainder of a limit order and drops that of an IOC", () => {
      const b = new OrderBook(limits);
      b.place(1, 1, SELL, LIMIT, 100, 3);
      b.place(2, 2, BUY, IOC, 100, 5);
      expect(b.report.takerRemaining).to.equal(2);
      expect(b.report.rested).to.equal(false);
      expect(b.size).to.equal(0);
      b.place(3, 2, BUY, LIMIT, 99, 5);
      expect(b.report.rested).to.equal(true);
      expect(b.bestBid()).to.equal(99);
    });

    it("refuses a post-only order that would cross and rests one that does not", () => {
      const b = new OrderBook(limits);
      b.place(1, 1, SELL, LIMIT, 100, 3);
      expect(b.place(2, 2, BUY, POST_ONLY, 100, 1)).to.equal("post_only_would_cross");
      expect(b.place(3, 2, BUY, POST_ONLY, 99, 1)).to.equal(null);
      expect(b.size).to.equal(2);
    });

    it("cancels the resting order of the same owner instead of trading with it", () => {
      const b = new OrderBook(limits);
      b.place(1, 7, SELL, LIMIT, 100, 3);
      b.place(2, 8, SELL, LIMIT, 100, 3);
      b.place(3, 7, BUY, LIMIT, 100, 4);
      const e = entries(b);
      expect(e.entries.map((x) => [x.kind, x.orderId, x.size])).to.deep.equal([
        [SELF_TRADE, 1, 3],
        [FILL, 2, 3],
      ]);
      expect(e.remaining).to.equal(1);
      expect(b.bestBid()).to.equal(100);
      expect(b.bestAsk()).to.equal(-1);
    });

    it("rejects off-tick prices, prices outside the band, bad sizes and duplicate ids", () => {
      const b = new OrderBook(limits);
      expect(b.place(1, 1, BUY, LIMIT, 100.5, 1)).to.equal("off_tick");
      expect(b.place(1, 1, BUY, LIMIT, 89, 1)).to.equal("price_out_of_band");
      expect(b.place(1, 1, BUY, LIMIT, 111, 1)).to.equal("price_out_of_band");
      expect(b.place(1, 1, BUY, LIMIT, 100, 0)).to.equal("bad_size");
      expect(b.place(1, 1, BUY, LIMIT, 100, 51)).to.equal("bad_size");
      expect(b.place(1, 1, BUY, LIMIT, 100, 1.5)).to.equal("bad_size");
      expect(b.place(1, 1, BUY, LIMIT, 100, 1)).to.equal(null);
      expect(b.place(1, 2, SELL, LIMIT, 105, 1)).to.equal("duplicate_order_id");
    });
  });

  describe("replace", () => {
    it("keeps priority when only the size goes down, loses it otherwise", () => {
      const b = new OrderBook(limits);
      b.place(1, 1, SELL, LIMIT, 100, 5);
      b.place(2, 2, SELL, LIMIT, 100, 5);
      expect(b.replace(1, 1, 100, 2)).to.equal(null);
      expect(b.report.keptPriority).to.equal(true);
      expect(b.orders().map((o) => o.orderId)).to.deep.equal([1, 2]);
      expect(b.replace(1, 1, 100, 4)).to.equal(null);
      expect(b.report.keptPriority).to.equal(false);
      expect(b.orders().map((o) => o.orderId)).to.deep.equal([2, 1]);
      expect(b.depth(SELL, 5)).to.deep.equal([{ price: 100, size: 9, orders: 2 }]);
    });

    it("trades when the new price crosses, and refuses other owners", () => {
      const b = new OrderBook(limits);
      b.place(1, 1, SELL, LIMIT, 100, 5);
      b.place(2, 2, BUY, LIMIT, 98, 5);
      expect(b.replace(2, 1, 100, 5)).to.equal("unknown_order");
      expect(b.replace(2, 2, 100, 5)).to.equal(null);
      expect(b.report.takerFilled).to.equal(5);
      expect(b.size).to.equal(0);
    });
  });

  describe("cancel / cancelAll", () => {
    it("moves the best price to the next level and keeps depth exact", () => {
      const b = new OrderBook(limits);
      b.place(1, 1, BUY, LIMIT, 100, 5);
      b.place(2, 1, BUY, LIMIT, 95, 5);
      b.place(3, 2, BUY, LIMIT, 91, 5);
      expect(b.cancel(1, 2)).to.equal(false);
      expect(b.cancel(1, 1)).to.equal(true);
      expect(b.bestBid()).to.equal(95);
      expect(b.cancelAll(1)).to.equal(1);
      expect(b.report.kind[0]).to.equal(CANCELLED);
      expect(b.bestBid()).to.equal(91);
      expect(b.depth(BUY, 3)).to.deep.equal([{ price: 91, size: 5, orders: 1 }]);
    });
  });

  describe("against the naive reference book", () => {
    // Random streams over a narrow band so orders cross, stack and empty levels often;
    // few owners so self-trade prevention fires.
    for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
      it(`gives identical reports and books (seed ${seed})`, () => {
        const rng = new Prng(seed);
        const lim = seed % 2 === 0 ? limits : { minPrice: 1, maxPrice: 300, minSize: 1, maxSize: 20 };
        const fast = new OrderBook(lim, 16);
        const naive = new NaiveBook(lim);
        const live: { id: number; owner: number }[] = [];
        let nextId = 1;
        let mid = Math.floor((lim.minPrice + lim.maxPrice) / 2);
        for (let step = 0; step < 4000; step++) {
          const r = rng.next();
          let a: unknown;
          let b: unknown;
          if (r < 0.6 || live.length === 0) {
            const owner = rng.int(0, 5);
            const side = rng.int(0, 1) as SideCode;
            const type = rng.pick([LIMIT, LIMIT, LIMIT, IOC, POST_ONLY]) as TypeCode;
            mid = Math.min(lim.maxPrice - 3, Math.max(lim.minPrice + 3, mid + rng.int(-1, 1)));
            const off = rng.int(-3, 6);
            const price = rng.chance(0.01) ? lim.maxPrice + 1 : side === BUY ? mid - off : mid + off;
            const size = rng.chance(0.01) ? 0 : rng.int(1, lim.maxSize);
            const id = rng.chance(0.01) && live.length > 0 ? rng.pick(live).id : nextId++;
            a = [fast.place(id, owner, side, type, price, size), entries(fast)];
            b = [naive.place(id, owner, side, type, price, size), entries(naive)];
            if (fast.report.rested && !live.some((o) => o.id === id)) live.push({ id, owner });
          } else if (r < 0.85) {
            const o = rng.pick(live);
            const owner = rng.chance(0.9) ? o.owner : o.owner + 1;
            a = [fast.cancel(o.id, owner), entries(fast)];
            b = [naive.cancel(o.id, owner), entries(naive)];
          } else if (r < 0.97) {
            const o = rng.pick(live);
            const price = mid + rng.int(-4, 4);
            const size = rng.int(1, lim.maxSize);
            a = [fast.replace(o.id, o.owner, price, size), entries(fast)];
            b = [naive.replace(o.id, o.owner, price, size), entries(naive)];
          } else {
            const owner = rng.int(0, 5);
            a = [fast.cancelAll(owner), entries(fast)];
            b = [naive.cancelAll(owner), entries(naive)];
          }
          expect(a, `step ${step}`).to.deep.equal(b);
          expect(fast.bestBid()).to.equal(naive.bestBid());
          expect(fast.bestAsk()).to.equal(naive.bestAsk());
          if (fast.bestBid() !== -1 && fast.bestAsk() !== -1) expect(fast.bestBid()).to.be.below(fast.bestAsk());
          if (step % 97 === 0) {
            expect(fast.orders()).to.deep.equal(naive.orders());
            expect(fast.depth(BUY, 5)).to.deep.equal(naive.depth(BUY, 5));
            expect(fast.depth(SELL, 5)).to.deep.equal(naive.depth(SELL, 5));
          }
          // live ids that no longer rest are dropped lazily
          for (let i = live.length - 1; i >= 0; i--) {
            const info = { orderId: 0, owner: 0, side: 0, type: 0, price: 0, remaining: 0, size: 0 } as never;
            if (!fast.orderInfo(live[i]!.id, info)) live.splice(i, 1);
          }
        }
        expect(fast.orders()).to.deep.equal(naive.orders());
        expect(fast.size).to.equal(naive.size);
      });
    }

    it("conserves size: lots placed = lots filled twice + resting + cancelled + dropped", () => {
      const rng = new Prng(99);
      const book = new OrderBook(limits, 16);
      let placed = 0;
      let traded = 0;
      let removed = 0;
      let nextId = 1;
      for (let step = 0; step < 5000; step++) {
        if (rng.chance(0.8)) {
          const size = rng.int(1, 50);
          const side = rng.int(0, 1) as SideCode;
          const type = rng.pick([LIMIT, IOC]) as TypeCode;
          if (book.place(nextId++, rng.int(0, 9), side, type, rng.int(95, 105), size) !== null) continue;
          placed += size;
          const r = book.report;
          for (let i = 0; i < r.count; i++) {
            if (r.kind[i] === FILL) traded += r.size[i]!;
            else removed += r.size[i]!;
          }
          if (!r.rested) removed += r.takerRemaining;
        } else {
          book.cancelAll(rng.int(0, 9));
          const r = book.report;
          for (let i = 0; i < r.count; i++) removed += r.size[i]!;
        }
      }
      const resting = book.orders().reduce((s, o) => s + o.remaining, 0);
      expect(placed).to.equal(2 * traded + resting + removed);
    });
  });
});
