import { expect } from "chai";
import { commandFromJson, commandToJson, type Command, type CommandBody } from "../../keeper/core/commands.ts";
import { Engine, type EngineSnapshot } from "../../keeper/core/engine.ts";
import { CoreInputError } from "../../keeper/core/errors.ts";
import { Prng } from "../../keeper/core/prng.ts";
import { replay, replayFrom } from "../../keeper/core/replay.ts";
import type { CommandResult, EngineConfig, EngineEvent, FillEvent, Reservation } from "../../keeper/core/types.ts";
import { deltasFromFillLog, encodeFillLog, FILL_LOG_VERSION, parseFillLog, type FillLog, type FillLogFill } from "../../keeper/settlement/fill-log.ts";
import { buildPlan, PlanMismatchError, type PlanInput } from "../../keeper/settlement/plan.ts";
import { FillLogRecorder } from "../../keeper/settlement/recorder.ts";
import { DOGE, DOGE_LOT, INSURANCE, PEPE, PEPE_LOT, PEPE_USDC, session, Session, testConfig, TREASURY, USDC } from "../support/engine.ts";
import { big } from "../support/random-session.ts";

const json = (x: unknown) => JSON.stringify(x, big);

function units(s: Session, user: number, asset: number): number {
  return s.engine.account(user).positions.find((p) => p.asset === asset)!.units;
}
function reserved(s: Session, user: number, pair = PEPE_USDC): Reservation {
  return s.engine.reservations(user).find((r) => r.pair === pair)!;
}
function ofKind<K extends EngineEvent["kind"]>(events: readonly EngineEvent[], kind: K): Extract<EngineEvent, { kind: K }>[] {
  return events.filter((e): e is Extract<EngineEvent, { kind: K }> => e.kind === kind);
}
/** The state without the command counters, which rejected commands advance too. */
function core(s: Session): string {
  const { lastSeq: _seq, lastTs: _ts, ...rest } = s.engine.snapshot();
  return json(rest);
}
const NONE: Reservation = { pair: PEPE_USDC, buyLots: 0, buyNotional: 0, sellLots: 0, sellNotional: 0 };

const request = (user: number, side: "buy" | "sell", size: number, expiresAt: number, extra: Partial<Extract<CommandBody, { type: "rfq_request" }>> = {}) =>
  ({ type: "rfq_request", user, pair: PEPE_USDC, side, size, expiresAt, remainder: "keep", ...extra }) as const;
const quote = (user: number, requestId: number, price: number, size: number, validUntil: number) =>
  ({ type: "rfq_quote", user, requestId, price, size, validUntil }) as const;

/**
 * Trading, with a market maker (7), a requester (1) with 1,000,000 micro-USDC, and quoters 2, 3, 4
 * with 1,000,000 micro-USDC and 500 lots of PEPE each. The PEPE book is empty: mark 1000.
 */
function pit(config: EngineConfig = testConfig()): Session {
  const s = session(config);
  s.ok({ type: "deposit", user: 7, asset: USDC, amount: 10_000_000n });
  s.ok({ type: "deposit", user: 7, asset: PEPE, amount: 1000n * PEPE_LOT });
  s.ok({ type: "deposit", user: 1, asset: USDC, amount: 1_000_000n });
  for (const q of [2, 3, 4]) {
    s.ok({ type: "deposit", user: q, asset: USDC, amount: 1_000_000n });
    s.ok({ type: "deposit", user: q, asset: PEPE, amount: 500n * PEPE_LOT });
  }
  s.ok({ type: "start_trading" });
  return s;
}

describe("Requests for quote (keeper/core/rfq.ts)", () => {
  describe("rfq_request", () => {
    it("reserves margin like an order of its size at its limit, or at the mark without one", () => {
      const s = pit();
      const r = s.ok(request(1, "buy", 100, 5_000, { limit: 1100, minFill: 10 }));
      expect(r.events).to.deep.equal([
        {
          kind: "rfq_requested", seq: r.seq, ts: s.ts - 1, requestId: r.seq, pair: PEPE_USDC, user: 1, side: "buy", size: 100, limit: 1100,
          reservePrice: 1100, expiresAt: 5_000, whitelist: null, minFill: 10, remainder: "keep",
        },
      ]);
      expect(reserved(s, 1)).to.deep.equal({ pair: PEPE_USDC, buyLots: 100, buyNotional: 110_000, sellLots: 0, sellNotional: 0 });
      // the account view counts it like an open buy: notional plus the 5 bps fee
      expect(s.engine.account(1).positions.find((p) => p.asset === USDC)!.reserved).to.equal(110_000 + 55);
      const m = s.ok(request(2, "sell", 40, 5_000));
      expect(m.events[0]).to.include({ limit: null, reservePrice: 1000, minFill: 1 });
      expect(reserved(s, 2)).to.deep.include({ sellLots: 40, sellNotional: 40_000 });
      expect(s.engine.rfqRequests().map((v) => v.requestId)).to.deep.equal([r.seq, m.seq]);
    });

    it("rejects with reason codes: phase, pair, price and size rules, minFill, expiry, account, count", () => {
      const pre = session();
      pre.ok({ type: "deposit", user: 1, asset: USDC, amount: 1_000_000n });
      expect(pre.do(request(1, "buy", 10, 5_000))).to.include({ ok: false, reason: "not_trading" });
      const s = pit(testConfig({ maxOpenOrdersPerUser: 2 }));
      expect(s.do({ ...request(1, "buy", 10, 5_000), pair: 99 })).to.include({ ok: false, reason: "unknown_pair" });
      expect(s.do(request(1, "buy", 10, 5_000, { limit: 1000.5 }))).to.include({ ok: false, reason: "off_tick" });
      expect(s.do(request(1, "buy", 10, 5_000, { limit: 2000 }))).to.include({ ok: false, reason: "price_out_of_band" });
      expect(s.do(request(1, "buy", 0, 5_000))).to.include({ ok: false, reason: "bad_size" });
      expect(s.do(request(1, "buy", 2_000_000, 5_000))).to.include({ ok: false, reason: "bad_size" });
      expect(s.do(request(1, "buy", 10, 5_000, { minFill: 11 }))).to.include({ ok: false, reason: "bad_size" });
      expect(s.do(request(1, "buy", 10, 5_000, { minFill: 0 }))).to.include({ ok: false, reason: "bad_size" });
      expect(s.do(request(1, "buy", 10, s.ts))).to.include({ ok: false, reason: "rfq_expired" });
      expect(s.do(request(55, "buy", 10, 5_000))).to.include({ ok: false, reason: "insufficient_margin" });
      s.ok(request(1, "buy", 10, 5_000));
      s.ok(request(1, "buy", 10, 5_000));
      expect(s.do(request(1, "buy", 10, 5_000))).to.include({ ok: false, reason: "too_many_orders" });
      // requests and quotes are counted apart from orders
      s.ok({ type: "place", user: 1, pair: PEPE_USDC, side: "buy", orderType: "limit", price: 900, size: 1 });
    });

    it("throws CoreInputError naming the field for malformed requests", () => {
      const s = pit();
      const bad = (body: object, field: string) =>
        expect(() => s.engine.apply({ ...request(1, "buy", 10, 5_000), ...body, seq: s.engine.nextSeq, ts: s.ts } as Command))
          .to.throw(CoreInputError).with.property("field", field);
      bad({ remainder: "later" }, "remainder");
      bad({ whitelist: [] }, "whitelist");
      bad({ whitelist: [2, -1] }, "whitelist");
      bad({ expiresAt: 1.5 }, "expiresAt");
      bad({ side: "BUY" }, "side");
      bad({ minFill: "1" }, "minFill");
    });

    it("refuses requests that would take the account below initial margin, unless they reduce exposure", () => {
      const s = pit();
      s.ok({ type: "deposit", user: 8, asset: USDC, amount: 10_000n });
      // the same arithmetic as orders: 49 lots at 1000 fit in 10,000 at 20% IM, 50 do not
      expect(s.do(request(8, "buy", 50, 5_000, { limit: 1000 }))).to.include({ ok: false, reason: "insufficient_margin" });
      const r = s.ok(request(8, "buy", 49, 5_000, { limit: 1000 }));
      expect(s.engine.account(8).freeMargin).to.equal(175);
      // what the request reserves is taken from what orders may use, and back on cancel
      expect(s.do({ type: "place", user: 8, pair: PEPE_USDC, side: "buy", orderType: "limit", price: 990, size: 1 })).to.include({ ok: false, reason: "insufficient_margin" });
      s.ok({ type: "rfq_cancel", user: 8, requestId: r.seq });
      const o = s.ok({ type: "place", user: 8, pair: PEPE_USDC, side: "buy", orderType: "limit", price: 990, size: 1 });
      s.ok({ type: "cancel", user: 8, orderId: o.seq });
      // an account below initial margin may still ask to reduce
      s.ok({ type: "deposit", user: 9, asset: USDC, amount: 1000n });
      s.ok({ type: "place", user: 7, pair: PEPE_USDC, side: "sell", orderType: "limit", price: 1000, size: 4 });
      s.ok({ type: "place", user: 9, pair: PEPE_USDC, side: "buy", orderType: "ioc", price: 1000, size: 4 });
      s.ok({ type: "place", user: 7, pair: PEPE_USDC, side: "buy", orderType: "limit", price: 810, size: 1 });
      s.ok({ type: "place", user: 7, pair: PEPE_USDC, side: "sell", orderType: "limit", price: 830, size: 1 });
      expect(s.engine.marginStatus(9)).to.equal("below_mm");
      expect(s.do(request(9, "buy", 1, 5_000))).to.include({ ok: false, reason: "insufficient_margin" });
      expect(s.do(request(9, "sell", 5, 5_000))).to.include({ ok: false, reason: "insufficient_margin" });
      s.ok(request(9, "sell", 4, 5_000, { limit: 800 }));
    });
  });

  describe("rfq_quote", () => {
    it("reserves the quoter's margin; a new quote replaces the quoter's previous one", () => {
      const s = pit();
      const r = s.ok(request(1, "buy", 100, 5_000, { limit: 1100 }));
      const q = s.ok(quote(2, r.seq, 1050, 100, 4_000));
      expect(q.events).to.deep.equal([
        { kind: "rfq_quoted", seq: q.seq, ts: s.ts - 1, quoteId: q.seq, requestId: r.seq, pair: PEPE_USDC, quoter: 2, side: "sell", price: 1050, size: 100, validUntil: 4_000 },
      ]);
      expect(reserved(s, 2)).to.deep.equal({ pair: PEPE_USDC, buyLots: 0, buyNotional: 0, sellLots: 100, sellNotional: 105_000 });
      const q2 = s.ok(quote(2, r.seq, 1040, 50, 4_000));
      expect(q2.events[0]).to.deep.include({ kind: "rfq_cancelled", requestId: r.seq, quoteId: q.seq, user: 2, side: "sell", remaining: 100, reason: "replaced" });
      expect(reserved(s, 2)).to.deep.include({ sellLots: 50, sellNotional: 52_000 });
      expect(s.engine.rfqRequest(r.seq)!.quotes.map((x) => [x.quoteId, x.quoter, x.price, x.size])).to.deep.equal([[q2.seq, 2, 1040, 50]]);
    });

    it("rejects with reason codes: request, invitation, lock, size, minFill, limit, expiry, margin", () => {
      const s = pit(testConfig({ maxOpenOrdersPerUser: 1 }));
      const r = s.ok(request(1, "buy", 100, 5_000, { limit: 1100, minFill: 20, whitelist: [3, 2, 3] }));
      expect(r.events[0]).to.deep.include({ whitelist: [2, 3] });
      expect(s.do(quote(2, 12345, 1050, 50, 4_000))).to.include({ ok: false, reason: "unknown_request" });
      expect(s.do(quote(4, r.seq, 1050, 50, 4_000))).to.include({ ok: false, reason: "rfq_not_invited" });
      expect(s.do(quote(1, r.seq, 1050, 50, 4_000))).to.include({ ok: false, reason: "rfq_not_invited" });
      expect(s.do(quote(2, r.seq, 1050.5, 50, 4_000))).to.include({ ok: false, reason: "off_tick" });
      expect(s.do(quote(2, r.seq, 1050, 101, 4_000))).to.include({ ok: false, reason: "bad_size" });
      expect(s.do(quote(2, r.seq, 1050, 19, 4_000))).to.include({ ok: false, reason: "rfq_below_min_fill" });
      expect(s.do(quote(2, r.seq, 1101, 50, 4_000))).to.include({ ok: false, reason: "rfq_beyond_limit" });
      expect(s.do(quote(2, r.seq, 1050, 50, s.ts))).to.include({ ok: false, reason: "rfq_expired" });
      // a quote reserves like a resting sell: 2 holds 500 lots, so it may sell them, not more
      expect(s.ok(quote(2, r.seq, 1100, 20, 4_000)).ok).to.equal(true);
      // one open request or quote per account here (maxOpenOrdersPerUser 1); a replacement is fine
      const r3 = s.ok(request(3, "sell", 30, 5_000));
      expect(s.do(quote(3, r.seq, 1050, 50, 4_000))).to.include({ ok: false, reason: "too_many_orders" });
      s.ok(quote(2, r.seq, 1090, 30, 4_000));
      s.ok({ type: "rfq_lock", user: 2, requestId: r.seq });
      s.ok({ type: "rfq_cancel", user: 3, requestId: r3.seq });
      expect(s.do(quote(3, r.seq, 1050, 50, 4_000))).to.include({ ok: false, reason: "rfq_locked" });
      s.ts = 5_000;
      expect(s.do(quote(2, r.seq, 1050, 50, 6_000))).to.include({ ok: false, reason: "rfq_expired" });
    });

    it("refuses a quote below initial margin unless it reduces exposure", () => {
      const s = pit();
      s.ok({ type: "deposit", user: 8, asset: USDC, amount: 10_000n });
      const r = s.ok(request(2, "sell", 100, 5_000));
      expect(s.do(quote(8, r.seq, 1000, 50, 4_000))).to.include({ ok: false, reason: "insufficient_margin" });
      s.ok(quote(8, r.seq, 1000, 49, 4_000));
      expect(s.engine.account(8).freeMargin).to.equal(175);
    });
  });

  describe("rfq_accept", () => {
    it("trades one quote at its price as a block trade: taker fee for the requester, maker fee for the quoter, marks untouched", () => {
      const s = pit();
      const r = s.ok(request(1, "buy", 100, 5_000, { limit: 1100 }));
      const q2 = s.ok(quote(2, r.seq, 1050, 100, 4_000));
      const q3 = s.ok(quote(3, r.seq, 1040, 60, 4_000));
      const a = s.ok({ type: "rfq_accept", user: 1, requestId: r.seq, quoteId: q3.seq });
      // 60 lots at 1040 = 62,400 micro-USDC; taker fee ceil(62,400 * 5 / 10^4) = 32; maker fee 0
      const fill: FillEvent = {
        kind: "fill", seq: a.seq, ts: s.ts - 1, tradeId: 1, pair: PEPE_USDC, price: 1040, size: 60, quoteAmount: 62_400, takerSide: "buy",
        maker: 3, makerOrderId: q3.seq, makerFee: 0, makerRemaining: 0, taker: 1, takerOrderId: r.seq, takerFee: 32, block: true,
      };
      expect(a.events).to.deep.equal([
        { kind: "rfq_accepted", seq: a.seq, ts: s.ts - 1, requestId: r.seq, pair: PEPE_USDC, user: 1, side: "buy", filled: 60, quoteIds: [q3.seq], remaining: 40, status: "open" },
        fill,
      ]);
      expect([units(s, 1, USDC), units(s, 1, PEPE)]).to.deep.equal([1_000_000 - 62_400 - 32, 60]);
      expect([units(s, 3, USDC), units(s, 3, PEPE)]).to.deep.equal([1_000_000 + 62_400, 440]);
      expect(units(s, TREASURY, USDC)).to.equal(32);
      expect(s.engine.account(1)).to.include({ feesPaid: 32, volume: 62_400, fills: 1 });
      // on the tape, marked; the mark is still the reference (no book, no last trade)
      expect(s.engine.recentTrades(PEPE_USDC, 5)).to.deep.equal([fill]);
      expect(s.engine.mark(PEPE_USDC)).to.equal(1000);
      // the quote ended; the request keeps 40 lots open at its limit, with 2's quote
      expect(reserved(s, 3)).to.deep.equal(NONE);
      expect(reserved(s, 1)).to.deep.equal({ pair: PEPE_USDC, buyLots: 40, buyNotional: 44_000, sellLots: 0, sellNotional: 0 });
      expect(s.engine.rfqRequest(r.seq)).to.deep.include({ remaining: 40, size: 100 });
      expect(s.engine.rfqRequest(r.seq)!.quotes.map((x) => x.quoteId)).to.deep.equal([q2.seq]);
      // a book trade, by contrast, sets the last trade price
      s.ok({ type: "place", user: 7, pair: PEPE_USDC, side: "sell", orderType: "limit", price: 1010, size: 1 });
      s.ok({ type: "place", user: 4, pair: PEPE_USDC, side: "buy", orderType: "ioc", price: 1010, size: 1 });
      expect(s.engine.mark(PEPE_USDC)).to.equal(1010);
    });

    it("takes the best quotes, price then time, up to its size and the tighter limit", () => {
      const s = pit();
      const r = s.ok(request(2, "sell", 100, 5_000, { limit: 950 }));
      const q1 = s.ok(quote(1, r.seq, 960, 50, 4_000));
      const q3 = s.ok(quote(3, r.seq, 970, 30, 4_000));
      const q4 = s.ok(quote(4, r.seq, 970, 50, 4_000));
      expect(s.do(quote(7, r.seq, 940, 50, 4_000))).to.include({ ok: false, reason: "rfq_beyond_limit" });
      // with a limit of 975 nothing trades
      expect(s.do({ type: "rfq_accept", user: 2, requestId: r.seq, limit: 975 })).to.include({ ok: false, reason: "rfq_no_quote" });
      const a = s.ok({ type: "rfq_accept", user: 2, requestId: r.seq, size: 90 });
      expect(ofKind(a.events, "fill").map((f) => [f.maker, f.price, f.size, f.block])).to.deep.equal([[3, 970, 30, true], [4, 970, 50, true], [1, 960, 10, true]]);
      expect(a.events[0]).to.deep.include({ filled: 90, quoteIds: [q3.seq, q4.seq, q1.seq], remaining: 10, status: "open" });
      // 1's quote traded 10 of its 50 lots and ended; nothing of it stays reserved
      expect(reserved(s, 1)).to.deep.equal(NONE);
      expect(s.engine.rfqRequest(r.seq)).to.deep.include({ remaining: 10, quotes: [] });
      expect(reserved(s, 2)).to.deep.equal({ pair: PEPE_USDC, buyLots: 0, buyNotional: 0, sellLots: 10, sellNotional: 9_500 });
    });

    it("drops the rest after a partial accept with remainder drop, or when less than minFill is left", () => {
      const s = pit();
      const r = s.ok(request(1, "buy", 100, 5_000, { limit: 1100, remainder: "drop" }));
      const q2 = s.ok(quote(2, r.seq, 1050, 60, 4_000));
      const q3 = s.ok(quote(3, r.seq, 1060, 100, 4_000));
      const a = s.ok({ type: "rfq_accept", user: 1, requestId: r.seq, quoteId: q2.seq });
      expect(a.events[0]).to.deep.include({ filled: 60, remaining: 0, status: "dropped" });
      expect(a.events.slice(2)).to.deep.equal([
        { kind: "rfq_cancelled", seq: a.seq, ts: s.ts - 1, requestId: r.seq, quoteId: q3.seq, pair: PEPE_USDC, user: 3, side: "sell", remaining: 100, reason: "request_ended" },
      ]);
      expect(s.engine.rfqRequests()).to.deep.equal([]);
      for (const u of [1, 2, 3]) expect(reserved(s, u)).to.deep.equal(NONE);

      const k = s.ok(request(1, "buy", 100, 5_000, { minFill: 30 }));
      const q4 = s.ok(quote(4, k.seq, 1000, 100, 4_000));
      expect(s.do({ type: "rfq_accept", user: 1, requestId: k.seq, quoteId: q4.seq, size: 29 })).to.include({ ok: false, reason: "rfq_below_min_fill" });
      const b = s.ok({ type: "rfq_accept", user: 1, requestId: k.seq, quoteId: q4.seq, size: 80 });
      expect(b.events[0]).to.deep.include({ filled: 80, remaining: 0, status: "dropped" });
      expect(reserved(s, 1)).to.deep.equal(NONE);

      const f = s.ok(request(1, "buy", 50, 5_000));
      const q5 = s.ok(quote(2, f.seq, 1000, 50, 4_000));
      expect(s.ok({ type: "rfq_accept", user: 1, requestId: f.seq, quoteId: q5.seq }).events[0]).to.deep.include({ filled: 50, remaining: 0, status: "filled" });
      expect(reserved(s, 1)).to.deep.equal(NONE);
    });

    it("rejects with reason codes, leaving everything as it was", () => {
      const s = pit();
      const r = s.ok(request(1, "buy", 100, 5_000, { limit: 1100, minFill: 10 }));
      const other = s.ok(request(4, "buy", 100, 5_000));
      const q2 = s.ok(quote(2, r.seq, 1050, 100, 4_000));
      const before = core(s);
      expect(s.do({ type: "rfq_accept", user: 2, requestId: r.seq, quoteId: q2.seq })).to.include({ ok: false, reason: "unknown_request" });
      expect(s.do({ type: "rfq_accept", user: 1, requestId: 999, quoteId: q2.seq })).to.include({ ok: false, reason: "unknown_request" });
      expect(s.do({ type: "rfq_accept", user: 1, requestId: r.seq, quoteId: other.seq })).to.include({ ok: false, reason: "unknown_quote" });
      expect(s.do({ type: "rfq_accept", user: 1, requestId: r.seq, quoteId: q2.seq, size: 101 })).to.include({ ok: false, reason: "bad_size" });
      expect(s.do({ type: "rfq_accept", user: 1, requestId: r.seq, quoteId: q2.seq, size: 9 })).to.include({ ok: false, reason: "rfq_below_min_fill" });
      expect(s.do({ type: "rfq_accept", user: 1, requestId: r.seq, quoteId: q2.seq, limit: 1049 })).to.include({ ok: false, reason: "rfq_beyond_limit" });
      expect(s.do({ type: "rfq_accept", user: 1, requestId: r.seq, limit: 1049 })).to.include({ ok: false, reason: "rfq_no_quote" });
      expect(s.do({ type: "rfq_accept", user: 1, requestId: r.seq, limit: 10 })).to.include({ ok: false, reason: "price_out_of_band" });
      s.ts = 4_000;
      expect(s.do({ type: "rfq_accept", user: 1, requestId: r.seq, quoteId: q2.seq })).to.include({ ok: false, reason: "rfq_expired" });
      expect(s.do({ type: "rfq_accept", user: 1, requestId: r.seq })).to.include({ ok: false, reason: "rfq_no_quote" });
      s.ts = 5_000;
      expect(s.do({ type: "rfq_accept", user: 1, requestId: r.seq })).to.include({ ok: false, reason: "rfq_expired" });
      expect(core(s)).to.equal(before);
    });

    it("checks initial margin again for both sides at the trade's price", () => {
      const s = pit();
      s.ok({ type: "deposit", user: 8, asset: USDC, amount: 10_000n });
      // no limit: reserved at the mark (1000), which the quote's 1200 exceeds
      const r = s.ok(request(8, "buy", 49, 5_000));
      const q = s.ok(quote(2, r.seq, 1200, 49, 4_000));
      const before = core(s);
      expect(s.do({ type: "rfq_accept", user: 8, requestId: r.seq, quoteId: q.seq })).to.include({ ok: false, reason: "insufficient_margin" });
      expect(s.do({ type: "rfq_accept", user: 8, requestId: r.seq })).to.include({ ok: false, reason: "insufficient_margin" });
      expect(core(s)).to.equal(before);

      // the quoter's margin: 9 quotes a buy at 1000 with just enough, then the mark falls to 820
      s.ok({ type: "deposit", user: 9, asset: USDC, amount: 10_000n });
      const sr = s.ok(request(3, "sell", 49, 5_000));
      const sq = s.ok(quote(9, sr.seq, 1000, 49, 4_000));
      s.ok({ type: "place", user: 7, pair: PEPE_USDC, side: "buy", orderType: "limit", price: 810, size: 1 });
      s.ok({ type: "place", user: 7, pair: PEPE_USDC, side: "sell", orderType: "limit", price: 830, size: 1 });
      expect(s.engine.mark(PEPE_USDC)).to.equal(820);
      expect(s.do({ type: "rfq_accept", user: 3, requestId: sr.seq, quoteId: sq.seq })).to.deep.include({ ok: false, reason: "insufficient_margin", message: "the quoter's margin no longer covers its quote" });
      // the best-quotes accept skips it
      expect(s.do({ type: "rfq_accept", user: 3, requestId: sr.seq })).to.include({ ok: false, reason: "rfq_no_quote" });
      expect(reserved(s, 9)).to.deep.equal({ pair: PEPE_USDC, buyLots: 49, buyNotional: 49_000, sellLots: 0, sellNotional: 0 });
    });
  });

  describe("rfq_lock / rfq_unlock", () => {
    it("lets only the locker's quote trade and no one else quote, until it unlocks or its quote ends", () => {
      const s = pit();
      const r = s.ok(request(1, "buy", 100, 5_000));
      expect(s.do({ type: "rfq_lock", user: 2, requestId: r.seq })).to.include({ ok: false, reason: "unknown_quote" });
      const q2 = s.ok(quote(2, r.seq, 1050, 50, 4_000));
      const q3 = s.ok(quote(3, r.seq, 1000, 50, 4_000));
      const l = s.ok({ type: "rfq_lock", user: 2, requestId: r.seq });
      expect(l.events).to.deep.equal([{ kind: "rfq_locked", seq: l.seq, ts: s.ts - 1, requestId: r.seq, pair: PEPE_USDC, quoter: 2, quoteId: q2.seq }]);
      expect(s.engine.rfqRequest(r.seq)!.lockedBy).to.equal(2);
      expect(s.do({ type: "rfq_lock", user: 3, requestId: r.seq })).to.include({ ok: false, reason: "rfq_locked" });
      expect(s.do({ type: "rfq_lock", user: 2, requestId: r.seq })).to.include({ ok: false, reason: "rfq_locked" });
      expect(s.do(quote(4, r.seq, 990, 50, 4_000))).to.include({ ok: false, reason: "rfq_locked" });
      expect(s.do({ type: "rfq_accept", user: 1, requestId: r.seq, quoteId: q3.seq })).to.include({ ok: false, reason: "rfq_locked" });
      expect(s.do({ type: "rfq_unlock", user: 3, requestId: r.seq })).to.include({ ok: false, reason: "rfq_not_locked" });
      // the locker may improve its quote and keeps the lock
      const q2b = s.ok(quote(2, r.seq, 1040, 50, 4_000));
      expect(s.engine.rfqRequest(r.seq)!.lockedBy).to.equal(2);
      const u = s.ok({ type: "rfq_unlock", user: 2, requestId: r.seq });
      expect(u.events).to.deep.equal([{ kind: "rfq_unlocked", seq: u.seq, ts: s.ts - 1, requestId: r.seq, pair: PEPE_USDC, quoter: 2, reason: "user" }]);
      expect(s.do({ type: "rfq_unlock", user: 2, requestId: r.seq })).to.include({ ok: false, reason: "rfq_not_locked" });

      // locked again: the best-quotes accept takes only the locker's (worse) quote, and the lock ends with it
      s.ok({ type: "rfq_lock", user: 2, requestId: r.seq });
      const a = s.ok({ type: "rfq_accept", user: 1, requestId: r.seq, size: 60 });
      expect(ofKind(a.events, "fill").map((f) => [f.maker, f.makerOrderId, f.price, f.size])).to.deep.equal([[2, q2b.seq, 1040, 50]]);
      expect(ofKind(a.events, "rfq_unlocked")).to.deep.equal([{ kind: "rfq_unlocked", seq: a.seq, ts: s.ts - 1, requestId: r.seq, pair: PEPE_USDC, quoter: 2, reason: "quote_ended" }]);
      expect(s.engine.rfqRequest(r.seq)).to.deep.include({ lockedBy: null, remaining: 50 });
      // a withdrawn quote lets go of its lock too
      s.ok({ type: "rfq_lock", user: 3, requestId: r.seq });
      const w = s.ok({ type: "rfq_cancel", user: 3, requestId: r.seq });
      expect(w.events.map((e) => e.kind)).to.deep.equal(["rfq_cancelled", "rfq_unlocked"]);
      expect(s.engine.rfqRequest(r.seq)!.lockedBy).to.equal(null);
    });
  });

  describe("rfq_cancel", () => {
    it("cancels the requester's request with its quotes, or withdraws the quoter's quote, releasing the margin", () => {
      const s = pit();
      const r = s.ok(request(1, "buy", 100, 5_000, { limit: 1100 }));
      const q2 = s.ok(quote(2, r.seq, 1050, 100, 4_000));
      const q3 = s.ok(quote(3, r.seq, 1060, 100, 4_000));
      expect(s.do({ type: "rfq_cancel", user: 4, requestId: r.seq })).to.include({ ok: false, reason: "unknown_quote" });
      expect(s.do({ type: "rfq_cancel", user: 1, requestId: 999 })).to.include({ ok: false, reason: "unknown_request" });
      const w = s.ok({ type: "rfq_cancel", user: 3, requestId: r.seq });
      expect(w.events).to.deep.equal([
        { kind: "rfq_cancelled", seq: w.seq, ts: s.ts - 1, requestId: r.seq, quoteId: q3.seq, pair: PEPE_USDC, user: 3, side: "sell", remaining: 100, reason: "user" },
      ]);
      expect(reserved(s, 3)).to.deep.equal(NONE);
      const c = s.ok({ type: "rfq_cancel", user: 1, requestId: r.seq });
      expect(c.events).to.deep.equal([
        { kind: "rfq_cancelled", seq: c.seq, ts: s.ts - 1, requestId: r.seq, quoteId: q2.seq, pair: PEPE_USDC, user: 2, side: "sell", remaining: 100, reason: "request_ended" },
        { kind: "rfq_cancelled", seq: c.seq, ts: s.ts - 1, requestId: r.seq, quoteId: null, pair: PEPE_USDC, user: 1, side: "buy", remaining: 100, reason: "user" },
      ]);
      for (const u of [1, 2, 3]) expect(reserved(s, u)).to.deep.equal(NONE);
      expect(s.do({ type: "rfq_cancel", user: 1, requestId: r.seq })).to.include({ ok: false, reason: "unknown_request" });
      expect(s.do({ type: "rfq_accept", user: 1, requestId: r.seq, quoteId: q2.seq })).to.include({ ok: false, reason: "unknown_request" });
    });
  });

  describe("expiry (rfq_expire)", () => {
    it("makes requests and quotes inert at their expiry and releases them on the sweep, quotes first", () => {
      const s = pit();
      s.ts = 10_000;
      const r = s.ok(request(1, "buy", 100, 10_100, { limit: 1100 }));
      const q2 = s.ok(quote(2, r.seq, 1050, 100, 10_050));
      const q3 = s.ok(quote(3, r.seq, 1060, 100, 10_500));
      expect(s.engine.nextRfqExpiry()).to.equal(10_050);
      s.ts = 10_050;
      expect(s.do({ type: "rfq_accept", user: 1, requestId: r.seq, quoteId: q2.seq })).to.include({ ok: false, reason: "rfq_expired" });
      expect(s.do({ type: "rfq_lock", user: 2, requestId: r.seq })).to.include({ ok: false, reason: "rfq_expired" });
      expect(reserved(s, 2).sellLots).to.equal(100);
      const e1 = s.ok({ type: "rfq_expire" });
      expect(e1.events).to.deep.equal([
        { kind: "rfq_expired", seq: e1.seq, ts: 10_052, requestId: r.seq, quoteId: q2.seq, pair: PEPE_USDC, user: 2, side: "sell", remaining: 100 },
      ]);
      expect(reserved(s, 2)).to.deep.equal(NONE);
      expect(s.engine.nextRfqExpiry()).to.equal(10_100);
      s.ts = 10_100;
      expect(s.do(quote(4, r.seq, 1000, 10, 10_200))).to.include({ ok: false, reason: "rfq_expired" });
      const e2 = s.ok({ type: "rfq_expire" });
      expect(e2.events).to.deep.equal([
        { kind: "rfq_cancelled", seq: e2.seq, ts: 10_101, requestId: r.seq, quoteId: q3.seq, pair: PEPE_USDC, user: 3, side: "sell", remaining: 100, reason: "request_ended" },
        { kind: "rfq_expired", seq: e2.seq, ts: 10_101, requestId: r.seq, quoteId: null, pair: PEPE_USDC, user: 1, side: "buy", remaining: 100 },
      ]);
      for (const u of [1, 2, 3]) expect(reserved(s, u)).to.deep.equal(NONE);
      expect(s.engine.nextRfqExpiry()).to.equal(null);
      expect(s.ok({ type: "rfq_expire" }).events).to.deep.equal([]);
    });
  });

  describe("liquidation and the end of trading", () => {
    it("a liquidation cancels the account's requests and quotes before covering", () => {
      const s = pit();
      s.ok({ type: "deposit", user: 5, asset: USDC, amount: 1000n });
      s.ok({ type: "place", user: 7, pair: PEPE_USDC, side: "buy", orderType: "limit", price: 1000, size: 4 });
      s.ok({ type: "place", user: 5, pair: PEPE_USDC, side: "sell", orderType: "ioc", price: 1000, size: 4 });
      const own = s.ok(request(5, "buy", 2, 50_000, { limit: 1000 }));
      const others = s.ok(request(3, "sell", 10, 50_000));
      const mine = s.ok(quote(5, others.seq, 1000, 2, 40_000));
      const kept = s.ok(quote(2, own.seq, 1000, 2, 40_000));
      s.ok({ type: "rfq_lock", user: 5, requestId: others.seq });
      s.ok({ type: "place", user: 7, pair: PEPE_USDC, side: "buy", orderType: "limit", price: 1190, size: 10 });
      s.ok({ type: "place", user: 7, pair: PEPE_USDC, side: "sell", orderType: "limit", price: 1210, size: 10 });
      expect(s.engine.liquidationsDue()).to.deep.equal([{ type: "liquidate", user: 5 }]);
      const l = s.ok({ type: "liquidate", user: 5 });
      const ended = [...ofKind(l.events, "rfq_cancelled"), ...ofKind(l.events, "rfq_unlocked")].map((e) => [e.kind, e.requestId, "quoteId" in e ? e.quoteId : null, e.reason]);
      expect(ended).to.deep.equal([
        ["rfq_cancelled", own.seq, kept.seq, "request_ended"],
        ["rfq_cancelled", own.seq, null, "liquidation"],
        ["rfq_cancelled", others.seq, mine.seq, "liquidation"],
        ["rfq_unlocked", others.seq, null, "quote_ended"],
      ]);
      // covered in the book exactly as without the RFQs (engine.test.ts)
      expect(ofKind(l.events, "fill").map((f) => [f.price, f.size])).to.deep.equal([[1210, 4]]);
      expect(reserved(s, 5)).to.deep.equal(NONE);
      expect(reserved(s, 2)).to.deep.equal(NONE);
      expect(s.engine.rfqRequests().map((r) => [r.requestId, r.lockedBy, r.quotes.length])).to.deep.equal([[others.seq, null, 0]]);
    });

    it("end_trading cancels every request and quote", () => {
      const s = pit();
      const r = s.ok(request(1, "buy", 100, 50_000));
      const q = s.ok(quote(2, r.seq, 1000, 100, 40_000));
      const e = s.ok({ type: "end_trading" });
      expect(ofKind(e.events, "rfq_cancelled").map((c) => [c.quoteId, c.reason])).to.deep.equal([[q.seq, "session_end"], [null, "session_end"]]);
      expect(e.events.at(-1)!.kind).to.equal("phase_changed");
      for (const u of [1, 2]) expect(reserved(s, u)).to.deep.equal(NONE);
      expect(s.engine.nextRfqExpiry()).to.equal(null);
      expect(s.do(request(1, "buy", 100, 50_000))).to.include({ ok: false, reason: "not_trading" });
      expect(s.do({ type: "rfq_expire" })).to.include({ ok: false, reason: "not_trading" });
    });
  });

  describe("snapshot / restore", () => {
    it("round-trips open requests, quotes and locks through JSON; with none, the hash is as before RFQs", () => {
      const s = pit();
      expect("rfq" in s.engine.snapshot()).to.equal(false);
      const r = s.ok(request(1, "buy", 100, 50_000, { whitelist: [2, 3], minFill: 5 }));
      s.ok(quote(2, r.seq, 1000, 100, 40_000));
      s.ok({ type: "rfq_lock", user: 2, requestId: r.seq });
      const r2 = s.ok(request(2, "sell", 10, 50_000, { limit: 990, remainder: "drop" }));
      const snap = JSON.parse(JSON.stringify(s.engine.snapshot())) as EngineSnapshot;
      const back = Engine.restore(snap);
      expect(back.stateHash()).to.equal(s.engine.stateHash());
      expect(json(back.rfqRequests())).to.equal(json(s.engine.rfqRequests()));
      for (const u of [1, 2]) expect(back.reservations(u)).to.deep.equal(s.engine.reservations(u));
      s.ok({ type: "rfq_cancel", user: 1, requestId: r.seq });
      s.ok({ type: "rfq_cancel", user: 2, requestId: r2.seq });
      expect("rfq" in s.engine.snapshot()).to.equal(false);
    });
  });

  describe("fill log", () => {
    it("records block trades as fills marked block; the recomputed deltas match the engine's, and a tampered block trade does not", () => {
      const config = testConfig();
      const s = session(config);
      const rec = new FillLogRecorder(config, () => s.engine.closeOut());
      const go = (body: CommandBody): CommandResult => {
        const r = s.do(body);
        rec.listener(s.journal.at(-1)!, r);
        return r;
      };
      const opening: PlanInput["openingBalances"] = [];
      const deposit = (user: number, asset: number, amount: bigint) => {
        go({ type: "deposit", user, asset, amount });
        opening.push({ accountId: user, tokenIndex: asset, amount });
      };
      deposit(1, USDC, 1_000_000n);
      deposit(2, USDC, 1_000_000n);
      deposit(2, PEPE, 500n * PEPE_LOT + 7n);
      deposit(3, PEPE, 200n * PEPE_LOT);
      deposit(3, USDC, 50_000n);
      go({ type: "start_trading" });
      const r = go(request(1, "buy", 150, 50_000, { limit: 1100 }));
      const q2 = go(quote(2, r.seq, 1050, 100, 40_000));
      go(quote(3, r.seq, 1030, 30, 40_000));
      expect(go({ type: "rfq_accept", user: 1, requestId: r.seq })).to.include({ ok: true });
      go({ type: "place", user: 3, pair: PEPE_USDC, side: "sell", orderType: "limit", price: 1000, size: 5 });
      go({ type: "place", user: 1, pair: PEPE_USDC, side: "buy", orderType: "ioc", price: 1000, size: 5 });
      go({ type: "end_trading" });
      go({ type: "close_out" });
      const events = rec.events();
      const fills = events.filter((e): e is FillLogFill => e.type === "fill");
      expect(fills.map((f) => [f.maker, f.priceTicks, f.sizeLots, f.block])).to.deep.equal([
        [3, 1030n, 30n, true],
        [2, 1050n, 100n, true],
        [3, 1000n, 5n, undefined],
      ]);
      expect(fills[1]!.takerFee).to.equal(BigInt(Math.ceil((1050 * 100 * 5) / 10_000)));
      expect(q2.ok).to.equal(true);

      const input = planInput(config, opening, events, s.engine);
      // buildPlan refuses a log whose recomputed deltas differ from the engine's
      const { fillLog } = buildPlan(input);
      const lines = fillLog.split("\n");
      expect(lines.filter((l) => l.endsWith(',"block":true}'))).to.have.length(2);
      const parsed = parseFillLog(fillLog);
      if (!parsed.ok) throw new Error(parsed.message);
      expect(parsed.log.header.version).to.equal(FILL_LOG_VERSION);
      expect(encodeFillLog(parsed.log)).to.equal(fillLog);
      const honest = deltasFromFillLog(parsed.log);
      expect(honest.map((d) => [d.accountId, d.tokenIndex, d.delta])).to.deep.equal(s.engine.closeOut()!.deltas.map((d) => [d.user, d.asset, d.delta]));

      const tampered: FillLog = { ...parsed.log, events: parsed.log.events.map((e) => (e.type === "fill" && e.block === true && e.maker === 2 ? { ...e, priceTicks: e.priceTicks - 1n } : e)) };
      expect(json(deltasFromFillLog(tampered))).to.not.equal(json(honest));
      expect(() => buildPlan({ ...input, events: tampered.events })).to.throw(PlanMismatchError);
      // dropping the flag alone changes the bytes (and the hash), not the deltas
      const unflagged = fillLog.replace(',"block":true}', "}");
      const p2 = parseFillLog(unflagged);
      expect(p2.ok && json(deltasFromFillLog(p2.log))).to.equal(json(honest));
      expect(parseFillLog(fillLog.replace(',"block":true}', ',"block":false}'))).to.deep.include({ ok: false, code: "bad_record", field: "block" });
    });
  });

  describe("random interleavings (property)", () => {
    const coverage = new Map<string, number>();
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      it(`conserve every asset, never reserve below zero, recompute from the fill log and replay identically (seed ${seed})`, () => {
        const run = randomRfqSession(seed, 1500);
        const { engine, config, journal, results, seen, deposits, mid, opening, recorder } = run;
        // every kind of RFQ event happened
        for (const [k, n] of seen) coverage.set(k, (coverage.get(k) ?? 0) + n);
        for (const k of ["rfq_requested", "rfq_quoted", "rfq_locked", "rfq_accepted", "block_fill", "rfq_expired", "rfq_cancelled:user", "rfq_cancelled:request_ended"]) {
          expect(seen.get(k) ?? 0, k).to.be.greaterThan(0);
        }
        expect(engine.phase).to.equal("settling");
        const st = engine.closeOut()!;
        for (const a of config.assets) {
          expect(st.deltas.filter((d) => d.asset === a.id).reduce((x, d) => x + d.delta, 0n)).to.equal(0n);
          expect(st.balances.filter((b) => b.asset === a.id).reduce((x, b) => x + b.amount, 0n)).to.equal(deposits.get(a.id));
        }
        // the fill log, block trades included, recomputes the engine's deltas (buildPlan checks it)
        const { fillLog } = buildPlan(planInput(config, mergeOpening(opening), recorder.events(), engine));
        expect(fillLog).to.include(',"block":true}');
        const hash = engine.stateHash();
        const full = replay(config, journal);
        expect(full.engine.stateHash()).to.equal(hash);
        expect(json(full.results)).to.equal(json(results));
        const stored = JSON.parse(JSON.stringify(journal.map(commandToJson))) as Parameters<typeof commandFromJson>[0][];
        expect(replay(config, stored.map(commandFromJson)).engine.stateHash()).to.equal(hash);
        expect(Engine.restore(mid.snapshot).stateHash()).to.equal(mid.hash);
        const tail = replayFrom(mid.snapshot, journal);
        expect(tail.engine.stateHash()).to.equal(hash);
        expect(json(tail.results)).to.equal(json(results.slice(mid.seq)));
      });
    }

    it("met every way a request or quote ends, liquidations with RFQs open included, over those seeds", () => {
      for (const k of [
        "rfq_unlocked:user", "rfq_unlocked:quote_ended", "rfq_cancelled:replaced", "rfq_cancelled:session_end", "rfq_cancelled:liquidation", "liquidated",
      ]) {
        expect(coverage.get(k) ?? 0, k).to.be.greaterThan(0);
      }
    });
  });
});

/** Opening balances summed per (account, token): an account may deposit one token twice. */
function mergeOpening(list: PlanInput["openingBalances"]): PlanInput["openingBalances"] {
  const sums = new Map<string, PlanInput["openingBalances"][number]>();
  for (const b of list) {
    const k = `${b.accountId}:${b.tokenIndex}`;
    const had = sums.get(k);
    sums.set(k, had === undefined ? { ...b } : { ...had, amount: had.amount + b.amount });
  }
  return [...sums.values()];
}

function planInput(config: EngineConfig, opening: PlanInput["openingBalances"], events: PlanInput["events"], engine: Engine): PlanInput {
  return {
    chainId: 31337,
    vault: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
    sessionId: config.sessionId,
    treasury: config.treasury,
    pairs: config.pairs.map((p) => ({ id: p.id, symbol: p.symbol, base: p.base, quote: p.quote, lotSize: config.assets.find((a) => a.id === p.base)!.unitBaseUnits, quotePerTickLot: p.quotePerTickLot })),
    openingBalances: opening,
    events,
    deltas: engine.closeOut()!.deltas,
    maxEntriesPerBatch: 50,
  };
}

// ------------------------------------------------------------------ random sessions

interface RandomRun {
  engine: Engine;
  config: EngineConfig;
  journal: Command[];
  results: CommandResult[];
  seen: Map<string, number>;
  deposits: Map<number, bigint>;
  mid: { seq: number; snapshot: EngineSnapshot; hash: string };
  /** What settlement needs: the opening balances and the fill log's events. */
  opening: PlanInput["openingBalances"];
  recorder: FillLogRecorder;
}

/**
 * Deposits, then a random mix of book orders and cancels, requests, quotes (some not invited,
 * too large or expired), accepts (by quote or best), cancels, locks, unlocks and sweeps (some
 * late, so inert requests and quotes are met), with the liquidations the core asks for, then the
 * close. A naive-book mirror gets the same commands. After every command: every account's
 * reservations equal what its resting orders, open requests and live quotes reserve (so none
 * is ever negative), and every asset sums to what was deposited.
 */
function randomRfqSession(seed: number, steps: number): RandomRun {
  const config = testConfig({ maxOpenOrdersPerUser: 12 });
  const engine = new Engine(config);
  const mirror = new Engine(config, { book: "naive" });
  const rng = new Prng(seed);
  const journal: Command[] = [];
  const results: CommandResult[] = [];
  const seen = new Map<string, number>();
  const deposits = new Map<number, bigint>(config.assets.map((a) => [a.id, 0n]));
  const opening: PlanInput["openingBalances"] = [];
  const recorder = new FillLogRecorder(config, () => engine.closeOut());
  let mid: RandomRun["mid"] | null = null;
  let ts = 1_000_000;
  const users = 8;
  const pairIndex = new Map(config.pairs.map((p, i) => [p.id, i]));
  const send = (body: CommandBody): CommandResult => {
    const cmd = { ...body, seq: engine.nextSeq, ts } as Command;
    journal.push(cmd);
    const r = engine.apply(cmd);
    const m = mirror.apply(cmd);
    if (json(m) !== json(r)) throw new Error(`naive mirror diverged at seq ${cmd.seq} (${cmd.type})`);
    results.push(r);
    recorder.listener(cmd, r);
    if (r.ok && cmd.type === "deposit") opening.push({ accountId: cmd.user, tokenIndex: cmd.asset, amount: cmd.amount });
    if (r.ok) {
      for (const e of r.events) {
        const k = e.kind === "fill" && e.block === true ? "block_fill" : e.kind === "rfq_cancelled" || e.kind === "rfq_unlocked" ? `${e.kind}:${e.reason}` : e.kind;
        seen.set(k, (seen.get(k) ?? 0) + 1);
        if (e.kind === "deposited") deposits.set(e.asset, deposits.get(e.asset)! + e.amount);
      }
    }
    check();
    if (cmd.seq === 600) mid = { seq: cmd.seq, snapshot: JSON.parse(JSON.stringify(engine.snapshot())) as EngineSnapshot, hash: engine.stateHash() };
    return r;
  };
  const check = () => {
    const expected = new Map<number, number[]>();
    const add = (user: number, pair: number, side: "buy" | "sell", price: number, lots: number) => {
      const k = user * 100 + pairIndex.get(pair)!;
      const row = expected.get(k) ?? [0, 0, 0, 0];
      const o = side === "buy" ? 0 : 2;
      row[o] = row[o]! + lots;
      row[o + 1] = row[o + 1]! + lots * price;
      expected.set(k, row);
    };
    for (const rq of engine.rfqRequests()) {
      add(rq.user, rq.pair, rq.side, rq.reservePrice, rq.remaining);
      for (const q of rq.quotes) add(q.quoter, q.pair, q.side, q.price, q.size);
    }
    const totals = new Map<number, bigint>(config.assets.map((a) => [a.id, 0n]));
    for (const user of engine.accounts()) {
      const acc = engine.account(user);
      for (const o of acc.openOrders) add(user, o.pair, o.side, o.price, o.remaining);
      for (const p of acc.positions) totals.set(p.asset, totals.get(p.asset)! + p.baseUnits);
      for (const res of engine.reservations(user)) {
        const row = expected.get(user * 100 + pairIndex.get(res.pair)!) ?? [0, 0, 0, 0];
        expect([res.buyLots, res.buyNotional, res.sellLots, res.sellNotional], `reservations of ${user} on ${res.pair}`).to.deep.equal(row);
        expect(Math.min(res.buyLots, res.buyNotional, res.sellLots, res.sellNotional)).to.be.at.least(0);
      }
    }
    expect(totals).to.deep.equal(deposits);
  };

  for (let u = 1; u <= users; u++) {
    send({ type: "deposit", user: u, asset: USDC, amount: BigInt(rng.chance(0.75) ? rng.int(100_000, 400_000) : rng.int(2_000, 8_000)) });
    if (rng.chance(0.8)) send({ type: "deposit", user: u, asset: PEPE, amount: BigInt(rng.int(0, 200)) * PEPE_LOT + BigInt(rng.int(0, 9)) });
    if (rng.chance(0.5)) send({ type: "deposit", user: u, asset: DOGE, amount: BigInt(rng.int(1, 40)) * DOGE_LOT });
  }
  send({ type: "deposit", user: INSURANCE, asset: USDC, amount: 20_000n });
  send({ type: "start_trading" });
  const fair = config.pairs.map((p) => p.referencePriceTicks);
  const pickRequest = (quoted = false) => {
    const all = engine.rfqRequests();
    const open = quoted ? all.filter((v) => v.quotes.length > 0) : all;
    return open.length === 0 ? null : rng.pick(open);
  };
  for (let step = 0; step < steps; step++) {
    ts += rng.int(0, 30);
    // the keeper sweeps when an expiry has passed, usually at once, sometimes a little later
    const next = engine.nextRfqExpiry();
    if (next !== null && next <= ts && rng.chance(0.5)) send({ type: "rfq_expire" });
    const pi = rng.int(0, config.pairs.length - 1);
    const pair = config.pairs[pi]!;
    fair[pi] = Math.round(fair[pi]! + (pair.referencePriceTicks - fair[pi]!) * 0.02 + fair[pi]! * (rng.next() - 0.5) * 0.03);
    const f = fair[pi]!;
    const spread = Math.max(1, Math.round(f * 0.01));
    const user = rng.int(1, users);
    const side = rng.chance(0.5) ? ("buy" as const) : ("sell" as const);
    const x = rng.next();
    if (x < 0.22) {
      const price = side === "buy" ? f - rng.int(-2 * spread, 3 * spread) : f + rng.int(-2 * spread, 3 * spread);
      send({ type: "place", user, pair: pair.id, side, orderType: rng.chance(0.8) ? "limit" : "ioc", price, size: rng.int(1, 60) });
    } else if (x < 0.28) {
      const open = engine.openOrders(user);
      if (open.length > 0) send({ type: "cancel", user, orderId: rng.pick(open).orderId });
    } else if (x < 0.40) {
      const size = rng.int(1, 80);
      const limit = rng.chance(0.6) ? (side === "buy" ? f + rng.int(-spread, 4 * spread) : f - rng.int(-spread, 4 * spread)) : undefined;
      const whitelist = rng.chance(0.3) ? [rng.int(1, users), rng.int(1, users)] : undefined;
      const minFill = rng.chance(0.3) ? rng.int(1, Math.max(1, Math.floor(size / 2))) : undefined;
      send({
        type: "rfq_request", user, pair: pair.id, side, size, expiresAt: ts + rng.int(-5, 1500), remainder: rng.chance(0.5) ? "keep" : "drop",
        ...(limit === undefined ? {} : { limit }), ...(whitelist === undefined ? {} : { whitelist }), ...(minFill === undefined ? {} : { minFill }),
      });
    } else if (x < 0.64) {
      const rq = pickRequest();
      if (rq !== null) {
        const rf = fair[pairIndex.get(rq.pair)!]!;
        const sp = Math.max(1, Math.round(rf * 0.01));
        const invited = rq.whitelist !== null && rng.chance(0.8) ? rng.pick(rq.whitelist) : user;
        const price = rq.side === "buy" ? rf + rng.int(-2 * sp, 3 * sp) : rf - rng.int(-2 * sp, 3 * sp);
        const size = rng.chance(0.1) ? rq.remaining + 1 : rng.int(Math.min(rq.minFill, rq.remaining), rq.remaining);
        send({ type: "rfq_quote", user: invited, requestId: rq.requestId, price, size, validUntil: ts + rng.int(-5, 1000) });
      }
    } else if (x < 0.82) {
      const rq = pickRequest(rng.chance(0.85));
      if (rq !== null) {
        const by = rng.chance(0.9) ? rq.user : user;
        const size = rng.chance(0.3) ? rng.int(1, rq.remaining) : undefined;
        const limit = rng.chance(0.2) ? fair[pairIndex.get(rq.pair)!]! : undefined;
        const q = rq.quotes.length > 0 && rng.chance(0.5) ? rng.pick(rq.quotes) : null;
        send({ type: "rfq_accept", user: by, requestId: rq.requestId, ...(q === null ? {} : { quoteId: q.quoteId }), ...(size === undefined ? {} : { size }), ...(limit === undefined ? {} : { limit }) });
      }
    } else if (x < 0.87) {
      const rq = pickRequest();
      if (rq !== null) {
        const by = rng.chance(0.4) ? rq.user : rq.quotes.length > 0 && rng.chance(0.8) ? rng.pick(rq.quotes).quoter : user;
        send({ type: "rfq_cancel", user: by, requestId: rq.requestId });
      }
    } else if (x < 0.92) {
      const rq = pickRequest(true);
      if (rq !== null) {
        // mostly the locker unlocks or a quoter locks; sometimes someone else tries
        const by = rq.lockedBy !== null && rng.chance(0.7) ? rq.lockedBy : rq.quotes.length > 0 && rng.chance(0.8) ? rng.pick(rq.quotes).quoter : user;
        send({ type: rq.lockedBy !== null ? (rng.chance(0.8) ? "rfq_unlock" : "rfq_lock") : rng.chance(0.8) ? "rfq_lock" : "rfq_unlock", user: by, requestId: rq.requestId });
      }
    } else if (x < 0.94) {
      send({ type: "rfq_expire" });
    } else {
      // a sweep through the book that moves the mark, then the liquidations due
      const price = side === "buy" ? Math.round(f * 1.15) : Math.round(f * 0.85);
      send({ type: "place", user, pair: pair.id, side, orderType: rng.chance(0.5) ? "ioc" : "limit", price, size: rng.int(40, 200) });
    }
    // an account in trouble shouts for a block to get out and someone quotes; it may not accept in time
    for (const due of engine.liquidationsDue()) {
      if (due.type !== "liquidate" || !rng.chance(0.8)) continue;
      for (const p of config.pairs) {
        const x = engine.account(due.user).positions.find((a) => a.asset === p.base)!.units;
        if (x === 0) continue;
        const size = Math.min(Math.abs(x), 100);
        const ask = send({ type: "rfq_request", user: due.user, pair: p.id, side: x > 0 ? "sell" : "buy", size, expiresAt: ts + 500, remainder: "keep" });
        if (!ask.ok) continue;
        send({ type: "rfq_quote", user: rng.int(1, users), requestId: ask.seq, price: engine.mark(p.id), size, validUntil: ts + 400 });
        if (rng.chance(0.3)) send({ type: "rfq_accept", user: due.user, requestId: ask.seq });
      }
    }
    for (const liq of engine.liquidationsDue()) send(liq);
  }
  send({ type: "end_trading" });
  expect(engine.rfqRequests()).to.deep.equal([]);
  for (const u of engine.accounts()) {
    for (const res of engine.reservations(u)) expect([res.buyLots, res.buyNotional, res.sellLots, res.sellNotional]).to.deep.equal([0, 0, 0, 0]);
  }
  send({ type: "close_out" });
  if (mid === null) throw new Error("the session was too short for a midway snapshot");
  return { engine, config, journal, results, seen, deposits, mid, opening, recorder };
}
