import { expect } from "chai";
import { commandFromJson, commandToJson, type Command } from "../../keeper/core/commands.ts";
import { Engine, type EngineSnapshot } from "../../keeper/core/engine.ts";
import { InvariantError } from "../../keeper/core/errors.ts";
import { replay, replayFrom, verifyReplay } from "../../keeper/core/replay.ts";
import { ORDER_TRANSITIONS, type CommandResult, type OrderState } from "../../keeper/core/types.ts";
import { testConfig } from "../support/engine.ts";
import { big, runRandomSession } from "../support/random-session.ts";

const config = testConfig();
const json = (x: unknown) => JSON.stringify(x, big);

describe("replay", () => {
  for (const seed of [1, 2, 3]) {
    it(`rebuilds the identical state from the journal, and from a snapshot taken midway (seed ${seed})`, () => {
      const engine = new Engine(config);
      const results: CommandResult[] = [];
      let snapshot: EngineSnapshot | null = null;
      let midHash = "";
      const journal = runRandomSession(engine, config, [], {
        seed,
        steps: 1500,
        check: (e, cmd, r) => {
          results.push(r);
          if (cmd.seq === 700) {
            snapshot = JSON.parse(JSON.stringify(e.snapshot())) as EngineSnapshot;
            midHash = e.stateHash();
          }
        },
      });
      const hash = engine.stateHash();
      expect(engine.phase).to.equal("settling");

      const full = replay(config, journal);
      expect(full.engine.stateHash()).to.equal(hash);
      expect(json(full.results)).to.equal(json(results));

      expect(Engine.restore(snapshot!).stateHash()).to.equal(midHash);
      const tail = replayFrom(snapshot!, journal);
      expect(tail.engine.stateHash()).to.equal(hash);
      expect(json(tail.results)).to.equal(json(results.slice(700)));
      expect(json(tail.engine.closeOut())).to.equal(json(engine.closeOut()));

      // through the journal's JSON codec, as the keeper stores it
      const stored = JSON.parse(JSON.stringify(journal.map(commandToJson)));
      verifyReplay(config, stored.map(commandFromJson) as Command[], hash);
    });
  }

  it("detects a diverging journal", () => {
    const engine = new Engine(config);
    const journal = runRandomSession(engine, config, [], { seed: 4, steps: 200, keepTrading: true });
    const hash = engine.stateHash();
    const tampered = journal.map((c) => (c.type === "deposit" && c.seq === 1 ? { ...c, amount: c.amount + 1n } : c));
    expect(() => verifyReplay(config, tampered, hash)).to.throw(InvariantError, /diverged/);
  });
});

describe("Engine against the naive reference book", () => {
  for (const seed of [11, 12, 13, 14, 15]) {
    it(`gives identical results, events and state on random sessions (seed ${seed})`, () => {
      const fast = new Engine(config);
      const naive = new Engine(config, { book: "naive" });
      // runRandomSession compares every result of the mirror with the driver's
      runRandomSession(fast, config, [naive], { seed, steps: 2500 });
      expect(naive.stateHash()).to.equal(fast.stateHash());
    });
  }
});

describe("Engine invariants on random sessions", () => {
  for (const seed of [21, 22, 23]) {
    it(`conserves every asset, never rests crossed, keeps marks and reservations current (seed ${seed})`, () => {
      const engine = new Engine(config);
      const net = new Map<number, bigint>(config.assets.map((a) => [a.id, 0n]));
      let step = 0;
      const state = new Map<number, OrderState>();
      const move = (id: number, to: OrderState) => {
        const from = state.get(id);
        expect(from, `order ${id} unknown`).to.not.equal(undefined);
        expect(ORDER_TRANSITIONS[from!], `order ${id}: ${from} -> ${to}`).to.include(to);
        state.set(id, to);
      };
      runRandomSession(engine, config, [], {
        seed,
        steps: 2000,
        check: (e, _cmd, r) => {
          if (r.ok) {
            // every order walks the lifecycle table; nothing touches a filled or cancelled order
            for (const ev of r.events) {
              if (ev.kind === "order_accepted") state.set(ev.orderId, "new");
              if (ev.kind === "order_replaced") move(ev.orderId, "resting");
              if (ev.kind === "order_cancelled") move(ev.orderId, "cancelled");
              if (ev.kind === "fill") move(ev.makerOrderId, ev.makerRemaining === 0 ? "filled" : "resting");
            }
            // the outcome of a place or replace is the taker order's state after its own events
            if (r.order !== undefined && state.get(r.order.orderId) !== r.order.status) move(r.order.orderId, r.order.status);
            for (const ev of r.events) {
              if (ev.kind === "deposited") net.set(ev.asset, net.get(ev.asset)! + ev.amount);
              if (ev.kind === "withdrawn") net.set(ev.asset, net.get(ev.asset)! - ev.amount);
            }
          }
          for (const p of config.pairs) {
            const bid = e.bestBid(p.id);
            const ask = e.bestAsk(p.id);
            if (bid !== null && ask !== null) expect(bid).to.be.below(ask);
            // the cached lot value the pre-trade check uses must equal the fresh mark
            const cached = (e as unknown as { lotValue: Float64Array }).lotValue[config.pairs.indexOf(p)];
            expect(cached).to.equal(e.mark(p.id) * p.quotePerTickLot);
          }
          if (step++ % 25 !== 0) return;
          const totals = new Map<number, bigint>(config.assets.map((a) => [a.id, 0n]));
          for (const user of e.accounts()) {
            const acc = e.account(user);
            for (const pos of acc.positions) totals.set(pos.asset, totals.get(pos.asset)! + pos.baseUnits);
            for (const p of config.pairs) {
              const sells = acc.openOrders.filter((o) => o.pair === p.id && o.side === "sell").reduce((s, o) => s + o.remaining, 0);
              expect(acc.positions.find((x) => x.asset === p.base)!.reserved).to.equal(sells);
            }
          }
          expect(totals).to.deep.equal(net);
        },
      });
      const st = engine.closeOut()!;
      expect(st.balances.every((b) => b.amount >= 0n)).to.equal(true);
      for (const a of config.assets) {
        expect(st.deltas.filter((d) => d.asset === a.id).reduce((s, d) => s + d.delta, 0n)).to.equal(0n);
        expect(st.balances.filter((b) => b.asset === a.id).reduce((s, b) => s + b.amount, 0n)).to.equal(net.get(a.id));
      }
    });
  }
});
