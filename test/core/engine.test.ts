import { expect } from "chai";
import { Engine } from "../../keeper/core/engine.ts";
import { CoreInputError } from "../../keeper/core/errors.ts";
import type { EngineEvent, FillEvent, OrderCancelledEvent } from "../../keeper/core/types.ts";
import { INSURANCE, PEPE, PEPE_LOT, PEPE_USDC, session, Session, testConfig, TREASURY, USDC, DOGE_USDC } from "../support/engine.ts";

const buy = (user: number, price: number, size: number, orderType: "limit" | "ioc" | "post_only" = "limit") =>
  ({ type: "place", user, pair: PEPE_USDC, side: "buy", orderType, price, size }) as const;
const sell = (user: number, price: number, size: number, orderType: "limit" | "ioc" | "post_only" = "limit") =>
  ({ type: "place", user, pair: PEPE_USDC, side: "sell", orderType, price, size }) as const;

function units(s: Session, user: number, asset: number): number {
  return s.engine.account(user).positions.find((p) => p.asset === asset)!.units;
}
function fills(events: readonly EngineEvent[]): FillEvent[] {
  return events.filter((e): e is FillEvent => e.kind === "fill");
}
function cancels(events: readonly EngineEvent[]): OrderCancelledEvent[] {
  return events.filter((e): e is OrderCancelledEvent => e.kind === "order_cancelled");
}

/** A trading session with a rich market maker (7) holding USDC and PEPE. */
function trading(config = testConfig()): Session {
  const s = session(config);
  s.ok({ type: "deposit", user: 7, asset: USDC, amount: 10_000_000n });
  s.ok({ type: "deposit", user: 7, asset: PEPE, amount: 1000n * PEPE_LOT });
  s.ok({ type: "start_trading" });
  return s;
}

describe("Engine", () => {
  describe("apply", () => {
    it("throws CoreInputError naming the field for malformed commands, without consuming the seq", () => {
      const s = session();
      expect(() => s.engine.apply({ type: "start_trading", seq: 2, ts: 0 })).to.throw(CoreInputError).with.property("field", "seq");
      expect(() => s.engine.apply({ type: "deposit", seq: 1, ts: 0, user: 1, asset: USDC, amount: 5 as unknown as bigint }))
        .to.throw(CoreInputError).with.property("field", "amount");
      s.ok({ type: "start_trading" });
      s.ok({ type: "deposit", user: 1, asset: USDC, amount: 1000n });
      expect(() => s.engine.apply({ ...buy(1, 1000, 1), side: "BUY" as "buy", seq: s.engine.nextSeq, ts: 0 }))
        .to.throw(CoreInputError).with.property("field", "side");
      expect(() => s.engine.apply({ ...buy(-1, 1000, 1), seq: s.engine.nextSeq, ts: 0 })).to.throw(CoreInputError).with.property("field", "user");
      expect(s.engine.nextSeq).to.equal(3);
    });
  });

  describe("session phases", () => {
    it("follows pre_session -> trading -> closing -> settling and refuses anything else", () => {
      const s = session();
      s.ok({ type: "deposit", user: 1, asset: USDC, amount: 100_000n });
      expect(s.do(buy(1, 1000, 1))).to.include({ ok: false, reason: "not_trading" });
      expect(s.do({ type: "cancel", user: 1, orderId: 1 })).to.include({ ok: false, reason: "not_trading" });
      expect(s.do({ type: "end_trading" })).to.include({ ok: false, reason: "invalid_transition" });
      expect(s.do({ type: "close_out" })).to.include({ ok: false, reason: "invalid_transition" });
      s.ok({ type: "start_trading" });
      expect(s.engine.phase).to.equal("trading");
      expect(s.do({ type: "start_trading" })).to.include({ ok: false, reason: "invalid_transition" });
      const placed = s.ok(buy(1, 990, 3));
      const ended = s.ok({ type: "end_trading" });
      expect(cancels(ended.events)).to.deep.include({
        kind: "order_cancelled", seq: ended.seq, ts: s.ts - 1, pair: PEPE_USDC, orderId: placed.seq, user: 1, side: "buy", price: 990, remaining: 3, reason: "session_end",
      });
      expect(ended.events.at(-1)).to.deep.include({ kind: "phase_changed", from: "trading", to: "closing" });
      expect(s.engine.depth(PEPE_USDC, 5).bids).to.deep.equal([]);
      expect(s.do(buy(1, 1000, 1))).to.include({ ok: false, reason: "not_trading" });
      s.ok({ type: "withdraw", user: 1, asset: USDC, amount: 1n });
      s.ok({ type: "deposit", user: 1, asset: USDC, amount: 1n });
      s.ok({ type: "close_out" });
      expect(s.do({ type: "withdraw", user: 1, asset: USDC, amount: 1n })).to.include({ ok: false, reason: "wrong_phase" });
      expect(s.engine.phase).to.equal("settling");
      expect(s.do({ type: "deposit", user: 1, asset: USDC, amount: 1n })).to.include({ ok: false, reason: "wrong_phase" });
      expect(s.do({ type: "close_out" })).to.include({ ok: false, reason: "invalid_transition" });
    });
  });

  describe("place", () => {
    it("charges the taker 5 bps rounded up to the treasury and moves exact inventories", () => {
      const s = trading();
      s.ok({ type: "deposit", user: 1, asset: USDC, amount: 1_000_000n });
      s.ok(sell(7, 1001, 10));
      const r = s.ok(buy(1, 1001, 10, "ioc"));
      const [f] = fills(r.events);
      expect(f).to.include({ price: 1001, size: 10, quoteAmount: 10_010, takerFee: 6, makerFee: 0, maker: 7, taker: 1, takerSide: "buy", makerRemaining: 0 });
      expect(r.order).to.deep.equal({ orderId: r.seq, status: "filled", filled: 10, remaining: 0 });
      expect(units(s, 1, USDC)).to.equal(1_000_000 - 10_010 - 6);
      expect(units(s, 1, PEPE)).to.equal(10);
      expect(units(s, 7, USDC)).to.equal(10_000_000 + 10_010);
      expect(units(s, 7, PEPE)).to.equal(990);
      expect(units(s, TREASURY, USDC)).to.equal(6);
      expect(s.engine.recentTrades(PEPE_USDC, 5)).to.deep.equal([f]);
    });

    it("pays a maker rebate rounded down, out of the taker fee", () => {
      const s = trading(testConfig({ fees: { makerBps: -1, takerBps: 5 } }));
      s.ok({ type: "deposit", user: 1, asset: USDC, amount: 1_000_000n });
      s.ok(sell(7, 1001, 10));
      const [f] = fills(s.ok(buy(1, 1001, 10, "ioc")).events);
      expect(f).to.include({ takerFee: 6, makerFee: -1 });
      expect(units(s, 7, USDC)).to.equal(10_000_000 + 10_011);
      expect(units(s, TREASURY, USDC)).to.equal(5);
    });

    it("cancels the user's own resting order instead of trading with it", () => {
      const s = trading();
      const resting = s.ok(sell(7, 1001, 5));
      const r = s.ok(buy(7, 1001, 5));
      expect(fills(r.events)).to.deep.equal([]);
      expect(cancels(r.events).map((c) => [c.orderId, c.reason])).to.deep.equal([[resting.seq, "self_trade"]]);
      expect(r.order?.status).to.equal("resting");
      expect(s.engine.depth(PEPE_USDC, 2)).to.deep.equal({ pair: PEPE_USDC, bids: [{ price: 1001, size: 5, orders: 1 }], asks: [] });
    });

    it("drops an IOC remainder and refuses crossing post-only orders", () => {
      const s = trading();
      s.ok({ type: "deposit", user: 1, asset: USDC, amount: 1_000_000n });
      s.ok(sell(7, 1001, 2));
      const r = s.ok(buy(1, 1005, 5, "ioc"));
      expect(r.order).to.include({ status: "cancelled", filled: 2, remaining: 3 });
      expect(cancels(r.events)[0]).to.include({ reason: "ioc_remainder", remaining: 3 });
      s.ok(sell(7, 1003, 2));
      expect(s.do(buy(1, 1003, 1, "post_only"))).to.include({ ok: false, reason: "post_only_would_cross" });
      expect(s.ok(buy(1, 1002, 1, "post_only")).order?.status).to.equal("resting");
    });

    it("rejects with reason codes: unknown pair, off tick, bad size, out of band, too many orders", () => {
      const s = trading(testConfig({ maxOpenOrdersPerUser: 2 }));
      s.ok({ type: "deposit", user: 1, asset: USDC, amount: 1_000_000n });
      expect(s.do({ ...buy(1, 1000, 1), pair: 99 })).to.include({ ok: false, reason: "unknown_pair" });
      expect(s.do(buy(1, 999.5, 1))).to.include({ ok: false, reason: "off_tick" });
      expect(s.do(buy(1, 999, 0))).to.include({ ok: false, reason: "bad_size" });
      expect(s.do(buy(1, 999, 2.5))).to.include({ ok: false, reason: "bad_size" });
      expect(s.do(buy(1, 499, 1))).to.include({ ok: false, reason: "price_out_of_band" });
      expect(s.do(buy(1, 1501, 1))).to.include({ ok: false, reason: "price_out_of_band" });
      s.ok(buy(1, 990, 1));
      s.ok(buy(1, 991, 1));
      expect(s.do(buy(1, 992, 1))).to.include({ ok: false, reason: "too_many_orders" });
      expect(s.do(buy(2, 992, 1))).to.include({ ok: false, reason: "insufficient_margin" });
    });
  });

  describe("cancel / cancel_all", () => {
    it("only cancels the user's own orders", () => {
      const s = trading();
      const o = s.ok(sell(7, 1001, 5));
      expect(s.do({ type: "cancel", user: 8, orderId: o.seq })).to.include({ ok: false, reason: "unknown_order" });
      const c = s.ok({ type: "cancel", user: 7, orderId: o.seq });
      expect(cancels(c.events)[0]).to.include({ orderId: o.seq, remaining: 5, reason: "user" });
      expect(s.do({ type: "cancel", user: 7, orderId: o.seq })).to.include({ ok: false, reason: "unknown_order" });
    });

    it("cancels every order of the user, or only one pair's", () => {
      const s = trading();
      s.ok(sell(7, 1001, 1));
      s.ok(sell(7, 1002, 1));
      s.ok({ type: "deposit", user: 7, asset: 2, amount: 10n ** 10n });
      s.ok({ type: "place", user: 7, pair: DOGE_USDC, side: "sell", orderType: "limit", price: 2001, size: 1 });
      expect(cancels(s.ok({ type: "cancel_all", user: 7, pair: DOGE_USDC }).events)).to.have.length(1);
      expect(cancels(s.ok({ type: "cancel_all", user: 7 }).events)).to.have.length(2);
      expect(s.engine.openOrders(7)).to.deep.equal([]);
    });
  });

  describe("replace", () => {
    it("keeps time priority when only the size goes down, loses it otherwise", () => {
      const s = trading();
      s.ok({ type: "deposit", user: 1, asset: PEPE, amount: 100n * PEPE_LOT });
      s.ok({ type: "deposit", user: 2, asset: USDC, amount: 1_000_000n });
      const a = s.ok(sell(7, 1001, 5));
      const b = s.ok(sell(1, 1001, 5));
      const r1 = s.ok({ type: "replace", user: 7, orderId: a.seq, price: 1001, size: 3 });
      expect(r1.events[0]).to.include({ kind: "order_replaced", keptPriority: true, oldRemaining: 5, size: 3 });
      expect(fills(s.ok(buy(2, 1001, 3, "ioc")).events).map((f) => f.makerOrderId)).to.deep.equal([a.seq]);
      const c = s.ok(sell(7, 1001, 2)); // behind b
      const r2 = s.ok({ type: "replace", user: 1, orderId: b.seq, price: 1001, size: 6 });
      expect(r2.events[0]).to.include({ keptPriority: false });
      expect(fills(s.ok(buy(2, 1001, 8, "ioc")).events).map((f) => [f.makerOrderId, f.size])).to.deep.equal([
        [c.seq, 2],
        [b.seq, 6],
      ]);
    });

    it("trades when the new price crosses, and refuses other users' orders", () => {
      const s = trading();
      s.ok({ type: "deposit", user: 2, asset: USDC, amount: 1_000_000n });
      s.ok(sell(7, 1001, 5));
      const bid = s.ok(buy(2, 990, 5));
      expect(s.do({ type: "replace", user: 7, orderId: bid.seq, price: 1001, size: 5 })).to.include({ ok: false, reason: "unknown_order" });
      const r = s.ok({ type: "replace", user: 2, orderId: bid.seq, price: 1001, size: 5 });
      expect(r.order).to.deep.equal({ orderId: bid.seq, status: "filled", filled: 5, remaining: 0 });
      expect(fills(r.events)[0]).to.include({ takerOrderId: bid.seq, takerFee: 3 });
      expect(s.engine.account(2).openOrders).to.deep.equal([]);
    });
  });

  describe("margin", () => {
    it("reserves open orders: at 20% IM 10,000 USDC carries 49 lots of bids at 1000, not 50", () => {
      const s = trading();
      s.ok({ type: "deposit", user: 3, asset: USDC, amount: 10_000n });
      // cost 49,000 + fee 25 + IM 9,800 of the filled position: 10,000 - 9,825 free
      s.ok(buy(3, 1000, 49));
      expect(s.engine.account(3).freeMargin).to.equal(175);
      expect(s.do(buy(3, 1000, 1))).to.include({ ok: false, reason: "insufficient_margin" });
      expect(s.do({ type: "withdraw", user: 3, asset: USDC, amount: 200n })).to.include({ ok: false, reason: "insufficient_margin" });
      s.ok({ type: "withdraw", user: 3, asset: USDC, amount: 100n });
    });

    it("refuses orders below initial margin unless they reduce exposure", () => {
      const s = trading();
      s.ok({ type: "deposit", user: 4, asset: USDC, amount: 1000n });
      s.ok(sell(7, 1000, 4));
      s.ok(buy(4, 1000, 4, "ioc")); // borrows 3,002 USDC
      expect(units(s, 4, USDC)).to.equal(-3002);
      // the market drops to 820: equity 278 < MM 328
      s.ok(buy(7, 810, 1));
      s.ok(sell(7, 830, 1));
      expect(s.engine.mark(PEPE_USDC)).to.equal(820);
      const acc = s.engine.account(4);
      expect(acc).to.include({ equity: 278, exposure: 3280, initialMargin: 656, maintenanceMargin: 328, marginStatus: "below_mm" });
      expect(s.do(buy(4, 800, 1))).to.include({ ok: false, reason: "insufficient_margin" });
      expect(s.do(sell(4, 830, 5))).to.include({ ok: false, reason: "insufficient_margin" });
      expect(s.ok(sell(4, 830, 3)).order?.status).to.equal("resting");
      expect(s.do(sell(4, 831, 2))).to.include({ ok: false, reason: "insufficient_margin" });
    });

    it("bands the mark around the reference price", () => {
      const s = trading();
      s.ok(buy(7, 1400, 1));
      s.ok(sell(7, 1420, 1));
      expect(s.engine.mid(PEPE_USDC)).to.equal(1410);
      expect(s.engine.mark(PEPE_USDC)).to.equal(1200);
    });
  });

  describe("liquidate", () => {
    it("is produced by the core below MM, cancels orders, buys back the short and pays the fee to insurance", () => {
      const s = trading();
      s.ok({ type: "deposit", user: 5, asset: USDC, amount: 1000n });
      s.ok(buy(7, 1000, 4));
      s.ok(sell(5, 1000, 4, "ioc"));
      expect(units(s, 5, USDC)).to.equal(4998);
      const resting = s.ok(buy(5, 900, 1));
      expect(s.engine.liquidationsDue()).to.deep.equal([]);
      expect(s.do({ type: "liquidate", user: 5 })).to.include({ ok: false, reason: "not_liquidatable" });
      expect(s.do({ type: "withdraw", user: 5, asset: USDC, amount: 1n })).to.include({ ok: false, reason: "has_liabilities" });
      s.ok(buy(7, 1190, 10));
      s.ok(sell(7, 1210, 10));
      expect(s.engine.account(5)).to.include({ equity: 198, maintenanceMargin: 480, marginStatus: "below_mm" });
      const due = s.engine.liquidationsDue();
      expect(due).to.deep.equal([{ type: "liquidate", user: 5 }]);
      const r = s.ok(due[0]!);
      expect(cancels(r.events)[0]).to.include({ orderId: resting.seq, reason: "liquidation" });
      expect(fills(r.events).map((f) => [f.price, f.size, f.takerFee, f.taker])).to.deep.equal([[1210, 4, 3, 5]]);
      expect(r.events.at(-1)).to.deep.include({ kind: "liquidated", user: 5, equityBefore: 198, maintenanceBefore: 480, fee: 25, covered: true });
      expect(units(s, 5, USDC)).to.equal(4998 - 4840 - 3 - 25);
      expect(units(s, 5, PEPE)).to.equal(0);
      expect(units(s, INSURANCE, USDC)).to.equal(25);
      expect(s.engine.liquidationsDue()).to.deep.equal([]);
    });

    it("sells more of a long to pay the fee when covering the borrowed quote left too little for it", () => {
      const s = trading();
      s.ok({ type: "deposit", user: 5, asset: USDC, amount: 4860n });
      s.ok(sell(7, 1000, 20));
      s.ok(buy(5, 1000, 20, "ioc"));
      expect([units(s, 5, USDC), units(s, 5, PEPE)]).to.deep.equal([-15150, 20]);
      s.ok(buy(7, 800, 30));
      s.ok(sell(7, 820, 30));
      expect(s.engine.account(5)).to.include({ equity: 1050, marginStatus: "below_mm" });
      const r = s.ok({ type: "liquidate", user: 5 });
      // The cover needs 19 lots (15,200 - 8 taker fee) and leaves 42 of quote; the fee on 15,200 is
      // 76, so one more lot is sold for it, and insurance gets all of it.
      expect(fills(r.events).reduce((n, f) => n + f.size, 0)).to.equal(20);
      expect(r.events.at(-1)).to.deep.include({ kind: "liquidated", user: 5, fee: 76, covered: true });
      expect(units(s, INSURANCE, USDC)).to.equal(76);
      expect(units(s, 5, USDC)).to.be.greaterThanOrEqual(0);
    });
  });

  describe("deposit / withdraw", () => {
    it("keeps sub-lot dust in the balance without trading it", () => {
      const s = session();
      s.ok({ type: "deposit", user: 6, asset: PEPE, amount: (3n * PEPE_LOT) / 2n });
      let pepe = s.engine.account(6).positions.find((p) => p.asset === PEPE)!;
      expect([pepe.units, pepe.baseUnits]).to.deep.equal([1, (3n * PEPE_LOT) / 2n]);
      s.ok({ type: "withdraw", user: 6, asset: PEPE, amount: PEPE_LOT / 2n });
      pepe = s.engine.account(6).positions.find((p) => p.asset === PEPE)!;
      expect([pepe.units, pepe.baseUnits]).to.deep.equal([1, PEPE_LOT]);
      expect(s.do({ type: "withdraw", user: 6, asset: PEPE, amount: 2n * PEPE_LOT })).to.include({ ok: false, reason: "insufficient_balance" });
      expect(s.do({ type: "withdraw", user: 6, asset: 77, amount: 1n })).to.include({ ok: false, reason: "unknown_asset" });
      expect(s.do({ type: "deposit", user: 6, asset: USDC, amount: 0n })).to.include({ ok: false, reason: "bad_amount" });
      expect(s.do({ type: "deposit", user: 6, asset: USDC, amount: 2n ** 60n })).to.include({ ok: false, reason: "amount_too_large" });
    });

    it("refuses to pay out base the vault only holds once short sellers cover", () => {
      const s = session();
      s.ok({ type: "deposit", user: 1, asset: USDC, amount: 10_000n });
      s.ok({ type: "deposit", user: 2, asset: USDC, amount: 10_000n });
      s.ok({ type: "start_trading" });
      s.ok(sell(1, 1000, 5));
      s.ok(buy(2, 1000, 5, "ioc"));
      expect(units(s, 2, PEPE)).to.equal(5);
      expect(s.do({ type: "withdraw", user: 2, asset: PEPE, amount: PEPE_LOT })).to.include({ ok: false, reason: "insufficient_liquidity" });
    });

    it("pays out at most the net deposit while trading: what the session gained waits for settlement", () => {
      // Without this cap B could take out the PEPE it bought from a short seller, paid with the
      // untraded depositor D's PEPE, and the close would have to take it back from D.
      const s = session();
      const [A, B, C, D] = [1, 2, 3, 8];
      s.ok({ type: "deposit", user: A, asset: PEPE, amount: 10n * PEPE_LOT });
      s.ok({ type: "deposit", user: B, asset: USDC, amount: 100_000n });
      s.ok({ type: "deposit", user: C, asset: USDC, amount: 100_000n });
      s.ok({ type: "deposit", user: D, asset: PEPE, amount: 10n * PEPE_LOT });
      s.ok({ type: "start_trading" });
      s.ok(sell(A, 1000, 10));
      s.ok(sell(C, 1000, 5));
      s.ok(buy(B, 1000, 15, "ioc"));
      expect(s.do({ type: "withdraw", user: B, asset: PEPE, amount: PEPE_LOT })).to.deep.include({ ok: false, reason: "insufficient_balance" });
      expect(s.do({ type: "withdraw", user: A, asset: USDC, amount: 1n })).to.deep.include({ ok: false, reason: "insufficient_balance" });
      s.ok({ type: "withdraw", user: B, asset: USDC, amount: 80_000n }); // its own deposit, margin permitting
      s.ok({ type: "withdraw", user: D, asset: PEPE, amount: 10n * PEPE_LOT });
      expect(s.engine.snapshot().accounts.find((a) => a.user === B)!.net).to.deep.equal(["20000", "0", "0"]);
    });
  });

  describe("close_out", () => {
    it("covers a bankrupt short from insurance, then the winners (treasury included), and nets every token to zero", () => {
      const cfg = testConfig({ margin: { initialBps: 1000, maintenanceBps: 500, liquidationFeeBps: 0, liquidationSlippageBps: 1000 } });
      const s = trading(cfg);
      const H = 1;
      const S = 2;
      s.ok({ type: "deposit", user: H, asset: USDC, amount: 100_000n });
      s.ok({ type: "deposit", user: S, asset: USDC, amount: 1000n });
      s.ok({ type: "deposit", user: INSURANCE, asset: USDC, amount: 500n });
      s.ok(buy(H, 1000, 9));
      s.ok(sell(S, 1000, 9, "ioc"));
      s.ok(buy(7, 1195, 1));
      s.ok(sell(7, 1205, 1));
      expect(s.engine.account(S).equity).to.equal(9995 - 10_800);
      s.ok({ type: "end_trading" });
      const closed = s.ok({ type: "close_out" });
      expect(closed.events.at(-1)).to.deep.include({ kind: "closed_out", bankruptUsers: [S] });
      const st = s.engine.closeOut()!;
      expect(st.closingPrices).to.deep.equal([{ pair: PEPE_USDC, priceTicks: 1200 }, { pair: DOGE_USDC, priceTicks: 2000 }]);
      expect(st.balances.filter((b) => b.user === S).map((b) => b.amount)).to.deep.equal([0n, 0n, 0n]);
      expect(st.balances.filter((b) => b.user === INSURANCE && b.asset === USDC)[0]!.amount).to.equal(0n);
      const sum = (step: string, user: number) =>
        st.adjustments.filter((a) => a.step === step && a.user === user).reduce((x, a) => x + a.amount, 0n);
      expect(sum("insurance", INSURANCE)).to.equal(-500n);
      expect(sum("insurance", S)).to.equal(500n);
      // 305 left over PnL H 1,800 : treasury 5 (the taker fee)
      expect(sum("socialized", S)).to.equal(305n);
      expect(sum("socialized", H)).to.equal(-304n);
      expect(sum("socialized", TREASURY)).to.equal(-1n);
      // the market maker's 1,000 PEPE never traded: untouched
      expect(st.adjustments.filter((a) => a.user === 7)).to.deep.equal([]);
      expect(st.balances.every((b) => b.amount >= 0n)).to.equal(true);
      for (const asset of [0, 1, 2]) {
        expect(st.deltas.filter((d) => d.asset === asset).reduce((x, d) => x + d.delta, 0n)).to.equal(0n);
      }
      expect(st.deltas.filter((d) => d.user === S)).to.deep.equal([{ user: S, asset: USDC, delta: -1000n }]);
      expect(st.leaderboard[0]!.user).to.equal(H);
      expect(st.leaderboard.at(-1)).to.include({ user: S, pnl: -1000n, returnBps: -10_000 });
      expect(st.leaderboard.map((e) => e.user)).to.not.include.members([TREASURY, INSURANCE]);
      // the engine's views now show the final balances
      expect(units(s, S, USDC)).to.equal(0);
    });

    it("buys a short back only from the accounts that gained the base: a depositor who never traded keeps its 1,000 PEPE", () => {
      const s = session();
      const [B, S, D] = [1, 2, 8];
      s.ok({ type: "deposit", user: B, asset: USDC, amount: 1_000_000n });
      s.ok({ type: "deposit", user: S, asset: USDC, amount: 100_000n });
      s.ok({ type: "deposit", user: D, asset: PEPE, amount: 1000n * PEPE_LOT + 5n });
      s.ok({ type: "start_trading" });
      s.ok(sell(S, 1000, 91));
      s.ok(buy(B, 1000, 91, "ioc"));
      s.ok(buy(B, 1090, 1));
      s.ok(sell(S, 1110, 1));
      s.ok({ type: "end_trading" });
      s.ok({ type: "close_out" });
      const st = s.engine.closeOut()!;
      expect(st.closingPrices[0]).to.deep.equal({ pair: PEPE_USDC, priceTicks: 1100 });
      const bal = (user: number, asset: number) => st.balances.find((b) => b.user === user && b.asset === asset)!.amount;
      expect(bal(D, PEPE)).to.equal(1000n * PEPE_LOT + 5n);
      expect(st.adjustments.filter((a) => a.user === D)).to.deep.equal([]);
      expect(st.adjustments.filter((a) => a.step === "cover_short" && a.asset === PEPE)).to.deep.equal([
        { step: "cover_short", pair: PEPE_USDC, user: S, asset: PEPE, amount: 91n * PEPE_LOT },
        { step: "cover_short", pair: PEPE_USDC, user: B, asset: PEPE, amount: -91n * PEPE_LOT },
      ]);
      // the short pays 91 lots at 1,100: 100,100 micro-USDC, to B (who paid the 46 taker fee)
      expect(bal(B, USDC)).to.equal(1_000_000n - 91_000n - 46n + 100_100n);
      expect(bal(S, USDC)).to.equal(100_000n + 91_000n - 100_100n);
    });

    it("closes at the mid as end_trading finds the book, in the mark band; without a mid at the last trade, else the reference", () => {
      const close = (steps: (s: Session) => void): number[] => {
        const s = trading();
        s.ok({ type: "deposit", user: 1, asset: USDC, amount: 1_000_000n });
        steps(s);
        s.ok({ type: "end_trading" });
        s.ok({ type: "close_out" });
        return s.engine.closeOut()!.closingPrices.map((p) => p.priceTicks);
      };
      // mid 1,105.5 in whole ticks; DOGE has neither a book nor a trade: its reference
      expect(close((s) => (s.ok(buy(7, 1100, 1)), s.ok(sell(7, 1111, 1))))).to.deep.equal([1105, 2000]);
      // a mid above the band [800, 1,200] closes at its edge
      expect(close((s) => (s.ok(buy(7, 1300, 1)), s.ok(sell(7, 1320, 1))))).to.deep.equal([1200, 2000]);
      // one side empty: the last trade, banded
      expect(close((s) => (s.ok(sell(7, 1150, 2)), s.ok(buy(1, 1150, 1, "ioc"))))).to.deep.equal([1150, 2000]);
      expect(close((s) => (s.ok(sell(7, 1450, 1)), s.ok(buy(1, 1450, 1, "ioc")), s.ok(buy(7, 900, 3))))).to.deep.equal([1200, 2000]);
      // nothing traded and one side empty: the reference
      expect(close((s) => s.ok(buy(7, 900, 3)))).to.deep.equal([1000, 2000]);
    });
  });

  describe("read views", () => {
    it("report depth, mid, mark, open orders and reservations", () => {
      const s = trading();
      s.ok(buy(7, 998, 3));
      s.ok(buy(7, 998, 2));
      s.ok(buy(7, 995, 1));
      s.ok(sell(7, 1004, 4));
      expect(s.engine.depth(PEPE_USDC, 1)).to.deep.equal({ pair: PEPE_USDC, bids: [{ price: 998, size: 5, orders: 2 }], asks: [{ price: 1004, size: 4, orders: 1 }] });
      expect(s.engine.mid(PEPE_USDC)).to.equal(1001);
      expect(s.engine.mark(PEPE_USDC)).to.equal(1001);
      expect(s.engine.mid(DOGE_USDC)).to.equal(null);
      expect(s.engine.mark(DOGE_USDC)).to.equal(2000);
      const acc = s.engine.account(7);
      expect(acc.openOrders).to.have.length(4);
      expect(acc.positions.find((p) => p.asset === PEPE)!.reserved).to.equal(4);
      // 998*5 + 995 = 5,985 plus 5 bps rounded up
      expect(acc.positions.find((p) => p.asset === USDC)!.reserved).to.equal(5985 + 3);
      expect(s.engine.account(12345)).to.include({ equity: 0, marginStatus: "ok" });
    });
  });

  describe("snapshot / restore", () => {
    it("round-trips through JSON to the same state hash", () => {
      const s = trading();
      s.ok(buy(7, 998, 3));
      s.ok({ type: "deposit", user: 1, asset: USDC, amount: 1_000_000n });
      s.ok(sell(7, 1001, 3));
      s.ok(buy(1, 1001, 2, "ioc"));
      const snap = JSON.parse(JSON.stringify(s.engine.snapshot()));
      const copy = Engine.restore(snap);
      expect(copy.stateHash()).to.equal(s.engine.stateHash());
      expect(copy.recentTrades(PEPE_USDC, 5)).to.deep.equal(s.engine.recentTrades(PEPE_USDC, 5));
      expect(copy.account(1)).to.deep.equal(s.engine.account(1));
      expect(copy.nextSeq).to.equal(s.engine.nextSeq);
    });
  });
});

describe("Engine configuration", () => {
  it("throws CoreInputError naming the bad field", () => {
    const bad = (over: object) => () => new Engine({ ...testConfig(), ...over });
    expect(bad({ treasury: INSURANCE })).to.throw(CoreInputError).with.property("field", "config.insurance");
    const pairs = testConfig().pairs;
    expect(bad({ pairs: [{ ...pairs[0]!, quote: PEPE }] })).to.throw(CoreInputError).with.property("field", "config.pairs[0].quote");
    expect(bad({ pairs: [{ ...pairs[0]!, referencePriceTicks: 0 }] })).to.throw(CoreInputError).with.property("field", "config.pairs[0].referencePriceTicks");
    expect(bad({ pairs: [{ ...pairs[0]!, maxSizeLots: 2 ** 40 }] })).to.throw(CoreInputError).with.property("field", "config.pairs[0].maxSizeLots");
    expect(bad({ fees: { makerBps: -6, takerBps: 5 } })).to.throw(CoreInputError).with.property("field", "config.fees.makerBps");
    expect(bad({ margin: { initialBps: 500, maintenanceBps: 1000, liquidationFeeBps: 0, liquidationSlippageBps: 0 } }))
      .to.throw(CoreInputError).with.property("field", "config.margin.initialBps");
  });
});
