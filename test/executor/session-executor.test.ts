// The session loop end to end: real pit (keeper/core Engine), real openai SDK, local model server.
import { expect } from "chai";
import { OpenAICompatibleServer, type Reply } from "../support/openai-server.ts";
import { COUNTERPARTY, decision, fail, Harness, hang, NOTHING, ok, QUOTE, ScriptedBroker, stateOf, twoPairPit, userOf } from "../support/executor.ts";
import { PEPE, REF } from "../support/pit.ts";
import type { DecisionRecord } from "../../keeper/brokers/decision-log.ts";
import { ManualClock } from "../../keeper/executor/clock.ts";
import { SessionExecutor, type ExecutorEvent } from "../../keeper/executor/session-executor.ts";

describe("executor/session-executor", function () {
  this.timeout(20_000);
  let server: OpenAICompatibleServer;
  before(async () => {
    server = await OpenAICompatibleServer.start();
  });
  after(async () => {
    await server.close();
  });

  describe("asking and applying", () => {
    it("asks each broker once per tick, applies valid replies to the book and logs which model answered", async () => {
      const h = new Harness(server, [10]).add(10);
      h.script(10, { kind: "json", json: QUOTE, model: "gpt-5-2025-08-07" }, { kind: "json", json: QUOTE, model: "gpt-5-mini-2025-08-07" });
      await h.step();
      const reached = h.pit.reachedBy(10);
      expect(reached.map((r) => [r.order.side, r.order.price, r.accepted])).to.deep.equal([
        ["buy", REF - 5, true],
        ["sell", REF + 5, true],
      ]);
      expect(h.openOrders(10)).to.have.length(2);
      expect(h.eventsOf("outcry").map((e) => e.text)).to.deep.equal(["in the pit"]);
      await h.step();
      // The opening plan went to the expensive model, the next tick to the cheap one.
      expect(h.requestsOf(10).map((r) => r.body.model)).to.deep.equal(["gpt-5", "gpt-5-mini"]);
      expect(h.records[0]!.call).to.deep.include({ tier: "expensive", requestedModel: "gpt-5", model: "gpt-5-2025-08-07" });
      expect(h.records[0]!.outcome).to.deep.include({ fills: 0 });
      const stats = h.executor.snapshotStats();
      expect(stats.aiCallsAnswered).to.equal(2);
      expect(stats.tokensPerAiCall).to.be.greaterThan(200);
    });

    it("runs rule-based and AI brokers side by side in one loop", async () => {
      const h = new Harness(server, [10, 11, 12]).add(10).add(11, "rule-market-maker", "size 3, spread 6").add(12, "rule-momentum");
      await h.step(2);
      expect(h.requestsOf(11)).to.have.length(0);
      expect(h.pit.reachedBy(11).filter((r) => r.accepted).length).to.be.greaterThan(0);
      expect(h.eventsOf("outcry").some((e) => e.user === 11 && e.text.startsWith("MM: PEPE"))).to.equal(true);
      expect(h.eventsOf("outcry").some((e) => e.user === 12 && e.text.startsWith("Momentum:"))).to.equal(true);
      expect(h.executor.snapshotStats().ruleDecisions).to.equal(4);
    });
  });

  describe("refused output", () => {
    it("never reaches the book, and the reason is in the broker's next request", async () => {
      const h = new Harness(server, [10]).add(10);
      const marker = 9_123;
      const bad = decision([{ side: "buy", price: marker }]);
      const steps: [Reply, RegExp][] = [
        [{ kind: "content", content: JSON.stringify(bad).slice(0, 40) }, /refused your last reply was not used: the reply was not valid JSON/],
        [{ kind: "json", json: { ...bad, orders: [{ ...bad.orders[0], price: marker + 0.5 }] } }, /refused your last reply was not used: the reply broke the schema: orders\.0\.price/],
        [{ kind: "refusal", refusal: "I won't trade memecoins." }, /refused your last reply was not used: the model refused: I won't trade memecoins\./],
        // Complete, valid JSON, but the reply hit the token limit: still refused.
        [{ kind: "content", content: JSON.stringify(bad), finishReason: "length" }, /refused your last reply was not used: the reply was cut off/],
        // Valid, but outside the price band: refused by the keeper's risk check.
        [{ kind: "json", json: decision([{ side: "buy", price: REF * 2 }]) }, /refused order 1 \(buy 1@20000 limit PEPE\/USDC\): more than 10[0-9]{2} ticks from the mark/],
      ];
      // Each bad reply is followed by a good one, so the broker stays below its pause threshold.
      h.script(10, { kind: "json", json: QUOTE });
      for (const [reply] of steps) h.script(10, reply, { kind: "json", json: QUOTE });
      await h.step(2 + steps.length * 2);
      steps.forEach(([, reason], i) => expect(stateOf(h.requestsOf(10)[2 + 2 * i]!), `step ${i}`).to.match(reason));
      expect(h.pit.reachedBy(10).some((r) => r.order.price === marker || r.order.price === REF * 2)).to.equal(false);
    });

    it("keeps the pit running through every kind of bad reply from many brokers at once", async () => {
      const users = [10, 11, 12, 13, 14, 15];
      const h = new Harness(server, [...users, 30, 31], { timeoutMs: 150 });
      for (const u of users) h.add(u);
      h.add(30, "rule-market-maker").add(31, "rule-scalper");
      const menu: Reply[] = [
        { kind: "json", json: QUOTE },
        { kind: "json", json: decision([{ side: "buy", price: REF + 10, type: "ioc" }]) },
        { kind: "content", content: "{" },
        { kind: "content", content: "[]" },
        { kind: "json", json: { orders: "all of them", cancels: [], outcry: "", plan: null } },
        { kind: "json", json: decision([{ side: "sell", price: -5 }]) },
        { kind: "refusal", refusal: "no" },
        { kind: "content", content: "{}", finishReason: "length" },
        { kind: "json", json: QUOTE, delayMs: 400 },
        { kind: "hang" },
        { kind: "error", status: 429, headers: { "retry-after": "1" } },
        { kind: "error", status: 500 },
        { kind: "error", status: 502 },
        { kind: "destroy" },
        { kind: "json", json: decision([{ side: "buy", price: REF, size: 10_000_000 }]) },
        { kind: "json", json: { ...QUOTE, cancels: ["all", "nope", "123456"] } },
      ];
      // Walks the whole menu in a scrambled order (5 is coprime with its length).
      let n = 0;
      h.fallback = () => menu[(n++ * 5) % menu.length]!;
      for (let t = 0; t < 30; t++) {
        const r = await h.executor.tick(h.clock.now());
        expect(r.phase).to.equal("trading");
        h.clock.advance(1_000);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await h.executor.finish({ aiLessons: false });
      expect(h.eventsOf("internal_error")).to.deep.equal([]);
      const stats = h.executor.snapshotStats();
      expect(Object.keys(stats.failures).length).to.be.at.least(6);
      expect(stats.ordersAccepted).to.be.greaterThan(0);
      // Nothing invalid ever reached the book.
      for (const r of h.pit.reached) {
        expect(Number.isInteger(r.order.price) && r.order.price > 0, JSON.stringify(r)).to.equal(true);
        expect(r.order.size).to.be.at.most(1_000_000);
      }
      expect(h.pit.pit.stateHash()).to.be.a("string");
    });
  });

  describe("timing", () => {
    it("keeps at most one call in flight per broker and checks a late reply against the state when it lands", async () => {
      const h = new Harness(server, [10]).add(10);
      h.script(10, { kind: "json", json: QUOTE }, { kind: "json", json: decision([{ side: "buy", price: REF - 5, size: 3 }]), delayMs: 300 });
      await h.step();
      h.clock.advance(1_000);
      await h.executor.tick(h.clock.now());
      for (let i = 0; i < 3; i++) {
        h.clock.advance(1_000);
        const r = await h.executor.tick(h.clock.now());
        expect(r.skippedInFlight).to.equal(1);
      }
      // Margin dropped below IM while the model was thinking: the buy now adds exposure.
      h.pit.marginOverride.set(10, "below_im");
      await h.executor.idle();
      expect(h.requestsOf(10)).to.have.length(2);
      await h.step(); // the next decision closes the late one's record
      const late = h.records.find((r) => r.late);
      expect(late, "a late record").to.not.equal(undefined);
      expect(late!.refusals.map((x) => x.code)).to.deep.equal(["reduce_only"]);
      expect(h.pit.reachedBy(10).filter((r) => r.order.size === 3)).to.deep.equal([]);
      expect(h.executor.snapshotStats().lateReplies).to.equal(1);
    });

    it("times out a slow reply: no action, the reason next tick", async () => {
      const h = new Harness(server, [10], { timeoutMs: 150 }).add(10);
      h.script(10, { kind: "json", json: QUOTE }, { kind: "json", json: decision([{ side: "buy", price: 9_001 }]), delayMs: 1_000 });
      await h.step(3);
      expect(h.pit.reachedBy(10).some((r) => r.order.price === 9_001)).to.equal(false);
      expect(stateOf(h.requestsOf(10)[2]!)).to.contain("refused your last reply was not used: the model did not answer in time");
    });

    it("honours a 429's retry-after before asking again", async () => {
      const h = new Harness(server, [10]).add(10);
      h.script(10, { kind: "json", json: QUOTE }, { kind: "error", status: 429, headers: { "retry-after": "5" } });
      await h.step(2);
      expect(h.requestsOf(10)).to.have.length(2);
      await h.step(4);
      expect(h.requestsOf(10)).to.have.length(2);
      await h.step();
      expect(h.requestsOf(10)).to.have.length(3);
      expect(stateOf(h.requestsOf(10)[2]!)).to.contain("rate limited by the provider (429), retry after 5s");
    });

    it("pauses a broker after repeated failures and leaves its orders as they are", async () => {
      const h = new Harness(server, [10], { config: { maxConsecutiveFailures: 3 } }).add(10);
      h.script(10, { kind: "json", json: QUOTE });
      for (let i = 0; i < 3; i++) h.script(10, { kind: "content", content: "nope" });
      await h.step(4);
      expect(h.eventsOf("paused")).to.have.length(1);
      const ordersBefore = h.openOrders(10).map((o) => o.orderId);
      expect(ordersBefore).to.have.length(2);
      await h.step(9);
      expect(h.requestsOf(10)).to.have.length(4);
      expect(h.openOrders(10).map((o) => o.orderId)).to.deep.equal(ordersBefore);
      expect(h.pit.cancelsReached.filter((c) => c.user === 10)).to.deep.equal([]);
      expect(h.executor.status(10)!.paused).to.equal(true);
      await h.step();
      expect(h.requestsOf(10)).to.have.length(5);
      expect(stateOf(h.requestsOf(10)[4]!)).to.contain("paused for 10s after 3 failed replies; your orders were left as they were");
    });

    it("runs on its own timer at the tick rate of an injected clock and counts missed ticks", async () => {
      const h = new Harness(server, [11]).add(11, "rule-market-maker");
      h.executor.start();
      for (let i = 0; i < 3; i++) {
        h.clock.advance(1_000);
        await h.executor.idle();
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(h.executor.snapshotStats()).to.deep.include({ ticks: 3, onTimeTicks: 3, missedTicks: 0 });
      h.clock.advance(4_000);
      await new Promise((resolve) => setImmediate(resolve));
      h.executor.stop();
      const s = h.executor.snapshotStats();
      // The tick due at +4 s ran; +5 s and +6 s were missed; +7 s was about to run.
      expect(s).to.deep.include({ ticks: 4, missedTicks: 2 });
      expect(s.onTimePct).to.equal((4 / 6) * 100);
    });
  });

  describe("liquidation: the keeper's own duty", () => {
    // 10,000 USDC levered into 40,000 lots at 10,010; at a mid of 8,100 equity (~2,340) is below
    // maintenance (10% of 32,400).
    const LOTS = 40_000;
    const CRASH = 8_100;

    it("liquidates every account below MM in the tick, before any broker is asked, whatever its broker is doing", async () => {
      const users = { hangs: 10, paused: 11, throws: 12, backsOff: 13, disconnected: 14, capped: 15, noBroker: 16 };
      const h = new Harness(server, Object.values(users), { config: { maxConsecutiveFailures: 2, errorBackoffMs: 5_000 } });
      const brokers = [
        new ScriptedBroker("hangs", (_c, _n, signal) => hang(signal)),
        new ScriptedBroker("pauses", () => fail({ code: "malformed_json", message: "not JSON" })),
        new ScriptedBroker("throws", (_c, n) => {
          if (n > 1) throw new Error("strategy bug");
          return ok(NOTHING);
        }),
        new ScriptedBroker("backs-off", () => fail({ code: "rate_limited", message: "429", retryAfterMs: 60_000 })),
        new ScriptedBroker("disconnects", () => fail({ code: "connection_error", message: "socket hang up" })),
        new ScriptedBroker("capped", () => fail({ code: "spend_cap", message: "spend cap reached" })),
      ];
      brokers.forEach((b, i) => h.addBroker(10 + i, b));
      for (const u of Object.values(users)) h.lever(u, LOTS);
      await h.stepAround(2);
      expect(h.eventsOf("paused").map((e) => e.user)).to.deep.equal([users.paused]);
      expect(h.executor.status(users.hangs)!.inFlight).to.equal(true);
      expect(h.eventsOf("liquidation")).to.deep.equal([]);

      h.crash(CRASH);
      expect(h.pit.pit.reads.liquidationsDue().length).to.equal(7);
      const before = h.events.length;
      h.clock.advance(1_000);
      const report = await h.executor.tick(h.clock.now());
      const inTick = h.events.slice(before);
      const liqs = h.eventsOf("liquidation");
      expect(report.liquidations).to.equal(7);
      expect(liqs.map((e) => [e.user, e.brokerState])).to.deep.equal([
        [users.hangs, "in_flight"],
        [users.paused, "paused"],
        [users.throws, "idle"],
        [users.backsOff, "backing_off"],
        [users.disconnected, "backing_off"],
        [users.capped, "spend_cap"],
        [users.noBroker, "none"],
      ]);
      // First thing in the tick: nothing a broker did this tick comes before the liquidations.
      expect(inTick.slice(0, 7).map((e) => e.type)).to.deep.equal(Array(7).fill("liquidation"));
      // The fees went to the insurance account (2 in this market).
      expect(h.pit.port.account(2).inventory.find((b) => b.asset === 0)?.amount ?? 0n).to.equal(liqs.reduce((a, e) => a + e.fee, 0n));
      for (const e of liqs) {
        expect(e.tick).to.equal(report.tick);
        expect(e.fullyCovered, e.summary).to.equal(true);
        expect(e.equityBefore < e.maintenanceBefore).to.equal(true);
        expect(e.covered).to.have.length(1);
        // The long is sold into the bid at the banded mid (within the 5% slippage of the mark).
        expect(e.covered[0]).to.deep.include({ pair: PEPE, asset: 1, side: "sell", price: CRASH - 10 });
        expect(e.covered[0]!.lots).to.be.within(35_000, LOTS);
        const after = h.pit.port.account(e.user);
        expect(after.inventory.every((b) => b.amount >= 0n), `user ${e.user} owes nothing`).to.equal(true);
        expect(after.marginStatus).to.equal("ok");
      }
      expect(h.pit.pit.reads.liquidationsDue()).to.deep.equal([]);
      // The hung call is still out; the keeper did not wait for it.
      expect(h.executor.status(users.hangs)!.inFlight).to.equal(true);
      expect(h.executor.snapshotStats().liquidations).to.equal(7);
      await h.executor.finish({ aiLessons: false });
    });

    it("tells the broker in its next request that the keeper liquidated it", async () => {
      const h = new Harness(server, [10]).add(10);
      h.lever(10, LOTS);
      await h.step();
      h.crash(CRASH);
      await h.step();
      expect(h.eventsOf("liquidation").map((e) => e.user)).to.deep.equal([10]);
      // Liquidated first, then asked in the same tick, and told.
      expect(h.requestsOf(10)).to.have.length(2);
      expect(stateOf(h.requestsOf(10)[1]!)).to.match(/\nkeeper the keeper liquidated below maintenance margin \(equity 2[0-9,.]+ USDC < 3[0-9.]+ USDC\): [0-9]+ orders cancelled, sold 3[0-9]+ PEPE\/USDC at 8090, fee [0-9.]+ USDC to insurance/);
    });
  });

  describe("requests for quote: the keeper's sweep", () => {
    it("ends a request past its expiry in the next tick, releasing its margin, whatever its broker does", async () => {
      const h = new Harness(server, [10]);
      h.addBroker(10, new ScriptedBroker("hangs", (_c, _n, signal) => hang(signal)));
      const expiresAt = h.clock.now() + 1_500;
      const r = h.pit.pit.apply({ type: "rfq_request", user: 10, pair: PEPE, side: "buy", size: 2, expiresAt, remainder: "keep" });
      expect(r.ok, JSON.stringify(r)).to.equal(true);
      const id = r.seq;
      await h.executor.tick(h.clock.now());
      expect(h.pit.pit.reads.rfqRequest(id)).to.not.equal(null);
      h.clock.advance(2_000);
      await h.executor.tick(h.clock.now());
      expect(h.pit.pit.reads.rfqRequest(id)).to.equal(null);
      expect(h.pit.pit.reads.nextRfqExpiry()).to.equal(null);
    });
  });

  describe("session rules", () => {
    it("below IM asks for exposure-reducing orders only and refuses the rest", async () => {
      const h = new Harness(server, [10], { pepeLots: 5 }).add(10);
      await h.step();
      h.pit.marginOverride.set(10, "below_im");
      h.script(10, { kind: "json", json: decision([{ side: "buy", price: REF - 3 }, { side: "sell", price: REF + 3, size: 5 }, { side: "sell", price: REF + 4, size: 1 }], { cancels: ["all"] }) });
      await h.step();
      const req = h.requestsOf(10)[1]!;
      expect(stateOf(req)).to.contain("rule below initial margin: only orders that reduce your position are accepted (sell up to 5 PEPE/USDC)");
      const reached = h.pit.reachedBy(10).slice(2);
      expect(reached.map((r) => [r.order.side, r.order.size])).to.deep.equal([["sell", 5]]);
      await h.step();
      const next = stateOf(h.requestsOf(10)[2]!);
      expect(next).to.contain(`refused order 1 (buy 1@${REF - 3} limit PEPE/USDC): below initial margin only exposure-reducing orders are accepted (room 0 lots)`);
      expect(next).to.contain(`refused order 3 (sell 1@${REF + 4} limit PEPE/USDC): below initial margin only exposure-reducing orders are accepted (room 0 lots)`);
    });

    it("after 5 orders without a fill on a pair asks for a crossing order there and refuses a reply without one", async () => {
      const h = new Harness(server, [10]).add(10);
      // Each reply replaces its quotes a tick wider: six accepted orders, no fills.
      for (let i = 0; i < 3; i++) h.script(10, { kind: "json", json: decision([{ side: "buy", price: REF - 5 - i, type: "post_only" }, { side: "sell", price: REF + 5 + i, type: "post_only" }], { cancels: ["all"] }) });
      await h.step(3);
      h.script(10, { kind: "json", json: decision([{ side: "buy", price: REF - 3, type: "post_only" }], { cancels: ["all"] }) });
      // Told why, the broker crosses on the next reply.
      h.script(10, { kind: "json", json: decision([{ side: "buy", price: REF + 10, type: "ioc" }]) });
      await h.step();
      const asked = stateOf(h.requestsOf(10)[3]!);
      expect(asked).to.contain(`rule no fill in your last 5 orders on PEPE/USDC: include a crossing order there (buy >= ${REF + 10} or sell <= ${REF - 10})`);
      expect(h.pit.reachedBy(10).some((r) => r.order.price === REF - 3)).to.equal(false);
      await h.step();
      const told = stateOf(h.requestsOf(10)[4]!);
      expect(told).to.contain("refused no crossing order on PEPE/USDC: no fill in your last 5 orders there");
      expect(told).to.contain(`refused order 1 (buy 1@${REF - 3} post_only PEPE/USDC): refused until you include a crossing order on PEPE/USDC`);
      // The crossing order is accepted, fills against the counterparty, and the request stops asking.
      await h.step();
      expect(h.pit.reachedBy(10).at(-1)).to.deep.include({ accepted: true });
      expect(h.pit.account(10).inventory.find((b) => b.asset === 1)!.amount > 0n).to.equal(true);
      expect(stateOf(h.requestsOf(10).at(-1)!)).not.to.contain("no fill in your last 5 orders");
      expect(h.eventsOf("keeper_order")).to.deep.equal([]);
    });

    it("after a second reply without the crossing order (empty replies too) the keeper sends the minimum crossing IOC itself, as the keeper's", async () => {
      const h = new Harness(server, [10]).add(10);
      for (let i = 0; i < 3; i++) h.script(10, { kind: "json", json: decision([{ side: "buy", price: REF - 5 - i, type: "post_only" }, { side: "sell", price: REF + 5 + i, type: "post_only" }], { cancels: ["all"] }) });
      await h.step(3);
      // Asked to cross, the broker says nothing, twice.
      h.script(10, { kind: "json", json: decision([]) }, { kind: "json", json: decision([], { outcry: "waiting" }) });
      await h.step();
      expect(h.eventsOf("keeper_order")).to.deep.equal([]);
      await h.step();
      const [k] = h.eventsOf("keeper_order");
      expect(k).to.deep.include({ user: 10, pair: "PEPE/USDC", side: "buy", price: REF + 10, size: 1, accepted: true, filled: 1 });
      expect(h.pit.reachedBy(10).at(-1)).to.deep.include({ order: { pair: PEPE, side: "buy", price: REF + 10, size: 1, type: "ioc" }, accepted: true });
      // Logged as the keeper's, not the broker's.
      const rec = h.records.find((r) => r.source === "keeper")!;
      expect(rec).to.deep.include({ user: 10, accepted: { orders: 1, cancels: 0, crossing: 1 } });
      expect(rec.outcome).to.deep.include({ fills: 1, filledLots: 1 });
      expect(h.eventsOf("outcry").filter((e) => e.source === "keeper")).to.deep.equal([]);
      await h.step();
      const next = stateOf(h.requestsOf(10).at(-1)!);
      expect(next).to.contain(`keeper the keeper crossed for you: buy 1 PEPE/USDC @${REF + 10} IOC, 1 filled`);
      expect(next).to.contain("this order was the keeper's, not yours");
      // The fill ends the no-fill stretch on the pair.
      expect(next).not.to.contain("rule no fill in your last 5 orders");
      expect(h.executor.snapshotStats().keeperOrders).to.equal(1);
    });

    it("asks a broker that is not quoting around the mid to do so and refuses far resting orders", async () => {
      const h = new Harness(server, [10]).add(10);
      h.script(10, { kind: "json", json: QUOTE }, { kind: "json", json: decision([{ side: "buy", price: REF - 200 }], { cancels: ["all"] }) }, { kind: "json", json: decision([{ side: "buy", price: REF - 300 }]) });
      await h.step(2);
      expect(stateOf(h.requestsOf(10)[1]!)).not.to.contain("not quoting");
      await h.step();
      const third = stateOf(h.requestsOf(10)[2]!);
      expect(third).to.contain("rule not quoting around the mid on PEPE/USDC: keep a bid >= 9950 and an ask <= 10050");
      expect(h.pit.reachedBy(10).some((r) => r.order.price === REF - 300)).to.equal(false);
      await h.step();
      expect(stateOf(h.requestsOf(10)[3]!)).to.contain("quote within 50 ticks of the mid");
    });

    it("gives each user one re-prompt per session, answered by the expensive model", async () => {
      const h = new Harness(server, [10], { config: { reviewEveryTicks: 1_000 } }).add(10);
      await h.step(2);
      expect(h.executor.reprompt(10, "  Flatten everything and stop.  ")).to.deep.equal({ ok: true });
      expect(h.executor.reprompt(10, "again")).to.deep.equal({ ok: false, reason: "already_used" });
      expect(h.executor.reprompt(77, "who")).to.deep.equal({ ok: false, reason: "unknown_user" });
      await h.step(2);
      const [, , reprompt, after] = h.requestsOf(10);
      expect(reprompt!.body.model).to.equal("gpt-5");
      expect(reprompt!.body.messages[1].content).to.contain("Your user's re-prompt (overrides the strategy where they conflict):\nFlatten everything and stop.");
      expect(stateOf(reprompt!)).to.contain("do your user just re-prompted you");
      expect(after!.body.model).to.equal("gpt-5-mini");
      expect(after!.body.messages[1].content).to.contain("Flatten everything and stop.");
      h.pit.phaseName = "closing";
      const h2 = new Harness(server, [11]).add(11);
      h2.pit.phaseName = "closing";
      expect(h2.executor.reprompt(11, "x")).to.deep.equal({ ok: false, reason: "not_trading" });
    });

    it("reviews with the expensive model periodically and carries the plan into cheap ticks", async () => {
      const h = new Harness(server, [10], { config: { reviewEveryTicks: 3 } }).add(10);
      h.script(10, { kind: "json", json: { ...QUOTE, plan: "quote 5 wide, lean short above 10020" } });
      await h.step(5);
      expect(h.requestsOf(10).map((r) => r.body.model)).to.deep.equal(["gpt-5", "gpt-5-mini", "gpt-5-mini", "gpt-5", "gpt-5-mini"]);
      expect(stateOf(h.requestsOf(10)[1]!)).to.contain("plan quote 5 wide, lean short above 10020");
      expect(stateOf(h.requestsOf(10)[3]!)).to.contain("do review");
    });

    it("gives the system default's orders for each pair the first reply leaves out, on the first reply only", async () => {
      const clock = new ManualClock(1_000_000);
      const { port } = twoPairPit(clock, [10]);
      const records: DecisionRecord[] = [];
      const events: ExecutorEvent[] = [];
      const exec = new SessionExecutor({ port, clock, sink: { decision: (r) => records.push(r), event: (e) => events.push(e) } });
      // Trades PEPE only, every time.
      const broker = new ScriptedBroker("pepe-only", () => ok(decision([{ side: "buy", price: REF - 5, type: "post_only" }], { outcry: "bid PEPE" })));
      exec.addBroker({ user: 10, brokerId: "pepe-only", prompt: "", pairs: ["PEPE/USDC", "WIF/USDC"], lessons: [] }, { broker });
      const step = async () => {
        clock.advance(1_000);
        await exec.tick(clock.now());
        await exec.idle();
      };
      await step();
      const open = () => port.account(10).openOrders.map((o) => [o.pair, o.side, o.type]);
      // PEPE: the broker's bid; WIF: the system default's two-sided quotes.
      expect(open()).to.deep.equal([
        [1, "buy", "post_only"],
        [2, "buy", "post_only"],
        [2, "sell", "post_only"],
      ]);
      expect(records).to.have.length(0);
      await step();
      expect(records[0]).to.deep.include({ source: "broker", defaulted: ["WIF/USDC"] });
      const cry = events.find((e) => e.type === "outcry");
      expect(cry).to.deep.include({ source: "broker" });
      expect((cry as { text: string }).text).to.match(/^bid PEPE \[system default on WIF\/USDC\] MM: WIF/);
      // Only the first reply: later replies that leave WIF out get nothing added there.
      await step();
      expect(records[1]!.defaulted).to.equal(undefined);
      expect(open().filter(([pair]) => pair === 2)).to.have.length(2);
      await exec.finish({ aiLessons: false });
    });

    it("trades the system default strategy for a broker that gives nothing at the start, once", async () => {
      const h = new Harness(server, [10]).add(10);
      const empty = { kind: "json" as const, json: decision([]) };
      h.script(10, empty, empty);
      await h.step();
      expect(h.openOrders(10)).to.have.length(2);
      expect(h.eventsOf("outcry")[0]!.text).to.match(/^in the pit \[system default\] MM: PEPE/);
      await h.step();
      expect(h.pit.reachedBy(10)).to.have.length(2);
      expect(h.records[0]!.source).to.equal("system_default");
    });
  });

  describe("spend and privacy", () => {
    it("holds the spend cap, then serves the broker with the built-in default and says so", async () => {
      const cap = 6_000_000_000n; // $0.006 (the opening call alone reserves about $0.005)
      const h = new Harness(server, [10], { spendCapPicoUsd: cap, maxCompletionTokens: [100, 200] }).add(10);
      await h.step(20);
      const status = h.executor.status(10)!;
      expect(status.cappedAtSpend).to.equal(true);
      expect(BigInt(Math.round(status.spend!.spentUsd * 1e12)) <= cap).to.equal(true);
      const calls = h.requestsOf(10).length;
      expect(calls).to.be.within(5, 19);
      expect(h.eventsOf("spend_cap")).to.have.length(1);
      await h.step(3);
      expect(h.requestsOf(10).length).to.equal(calls);
      const lines = h.eventsOf("outcry").filter((e) => e.source === "spend_cap_fallback");
      expect(lines.length).to.be.greaterThan(0);
      expect(lines[0]!.text).to.match(/^\[budget spent \(\$0\.00[0-9]{2}\): built-in market maker\] MM: PEPE/);
      expect(lines.at(-1)!.text).to.match(/^\[budget spent\] MM: PEPE/);
    });

    it("never puts another user's prompt, lessons, re-prompt or outcry in a broker's request", async () => {
      const users = [10, 11, 12, 13];
      const h = new Harness(server, users);
      const secret = (u: number) => `SECRET-${u}-XYZZY`;
      for (const u of users) h.add(u, "openai-gpt5", `My private edge is ${secret(u)}: buy the dip.`, [`lesson ${secret(u)}-L`]);
      h.fallback = (req) => ({ kind: "json", json: { ...QUOTE, outcry: `${secret(userOf(req))} shouts` } });
      await h.step(2);
      h.executor.reprompt(11, `re-prompt ${secret(11)}-R`);
      await h.step(3);
      const decisions = server.requests.filter((r) => r.body?.response_format?.json_schema?.name === "broker_decision");
      expect(decisions).to.have.length(20);
      for (const req of decisions) {
        const text = JSON.stringify(req.body);
        const own = userOf(req);
        expect(text).to.contain(secret(own));
        for (const u of users) if (u !== own) expect(text, `request of ${own}`).not.to.contain(secret(u));
      }
    });
  });

  describe("the end of the session", () => {
    it("closes outcomes and returns lessons: the model's when it answers, the rules' otherwise", async () => {
      const h = new Harness(server, [10, 11, 12]).add(10).add(11).add(12, "rule-market-maker");
      await h.step(3);
      h.fallback = (req) =>
        userOf(req) === 10
          ? { kind: "json", json: { lessons: ["Tighten quotes when the book is thin.", "Flatten before the bell."] } }
          : { kind: "error", status: 500 };
      h.pit.phaseName = "closing";
      const results = await h.executor.finish();
      expect(results.get(10)).to.deep.include({ lessonsBy: "model", lessons: ["Tighten quotes when the book is thin.", "Flatten before the bell."] });
      expect(results.get(11)!.lessonsBy).to.equal("rules");
      expect(results.get(11)!.lessons[0]).to.match(/^Last session: PnL/);
      expect(results.get(12)!.lessonsBy).to.equal("rules");
      expect(results.get(12)!.spend).to.equal(null);
      expect(results.get(10)!.spend!.calls).to.equal(4);
      expect(h.records.every((r) => r.outcome !== null || r.decision === undefined || r.refusals.some((x) => x.code === "phase"))).to.equal(true);
      // After the end nothing more is asked.
      const n = server.requests.length;
      await h.executor.tick(h.clock.now());
      expect(server.requests.length).to.equal(n);
      void COUNTERPARTY;
    });
  });
});
