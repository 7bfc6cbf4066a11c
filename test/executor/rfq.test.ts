// Requests for quote through the session loop: rule brokers asking, quoting and taking blocks over
// the real pit, what a broker is shown, and what it is told when its rfq action is refused.
import { expect } from "chai";
import type { DecisionRecord } from "../../keeper/brokers/decision-log.ts";
import { RuleBroker } from "../../keeper/brokers/rule/rule-broker.ts";
import type { BrokerContext, Decision } from "../../keeper/brokers/types.ts";
import { encodeState } from "../../keeper/brokers/ai-prompt.ts";
import type { FillEvent } from "../../keeper/core/types.ts";
import { ManualClock } from "../../keeper/executor/clock.ts";
import { SessionExecutor } from "../../keeper/executor/session-executor.ts";
import { NOTHING, ok, ScriptedBroker } from "../support/executor.ts";
import { PEPE, REF, TestPit } from "../support/pit.ts";

const COUNTER = 99;
const TAPE = 13;

function setup(users: number[]) {
  const clock = new ManualClock(1_000_000);
  const pit = new TestPit(clock).fundAndOpen([...users, COUNTER, TAPE], 10_000, 100);
  const records: DecisionRecord[] = [];
  const exec = new SessionExecutor({ port: pit, clock, sink: { decision: (r) => records.push(r), event: () => {} } });
  const blocks: FillEvent[] = [];
  pit.pit.subscribe((_cmd, r) => {
    if (r.ok) for (const e of r.events) if (e.kind === "fill" && e.block === true) blocks.push(e);
  });
  const step = async (n = 1) => {
    for (let i = 0; i < n; i++) {
      clock.advance(1_000);
      await exec.tick(clock.now());
      await exec.idle();
    }
  };
  const add = (user: number, broker: RuleBroker | ScriptedBroker, prompt = "") =>
    exec.addBroker({ user, brokerId: broker.brokerId, prompt, pairs: ["PEPE/USDC"], lessons: [] }, { broker });
  return { clock, pit, exec, records, blocks, step, add };
}

describe("executor/rfq (requests for quote through the session loop)", () => {
  it("a momentum trader too big for the top of the book requests, two market makers quote, and it takes the best quote as a block trade within 2 ticks", async () => {
    const t = setup([10, 11, 12]);
    // A rising tape (REF, REF+1, REF+20) and a thin book: 2 lots at REF+30.
    for (const px of [REF, REF + 1, REF + 20]) {
      t.pit.rest(COUNTER, "sell", px, 1);
      const r = t.pit.port.submit(TAPE, { cancels: [], orders: [{ pair: PEPE, side: "buy", price: px, size: 1, type: "ioc" }] });
      expect(r.orders[0]!.filled).to.equal(1);
    }
    t.pit.rest(COUNTER, "buy", REF - 10, 2);
    t.pit.rest(COUNTER, "sell", REF + 30, 2);
    t.add(10, new RuleBroker("rule-momentum", "momentum"), "size 5");
    t.add(11, new RuleBroker("rule-market-maker", "market_maker"), "timid");
    t.add(12, new RuleBroker("rule-market-maker", "market_maker"), "degen");

    await t.step();
    const request = t.pit.rfqReached.find((x) => x.user === 10 && x.type === "request");
    expect(request?.outcome.accepted).to.equal(true);
    const requestId = request!.outcome.id!;
    expect(t.pit.pit.reads.rfqRequest(requestId)).to.deep.include({ side: "buy", size: 5, limit: REF + 31 });

    await t.step();
    const quotes = t.pit.rfqReached.filter((x) => x.type === "quote");
    expect(quotes.map((q) => [q.user, q.outcome.accepted]).sort()).to.deep.equal([
      [11, true],
      [12, true],
    ]);
    const live = t.pit.pit.reads.rfqRequest(requestId)!.quotes;
    const timid = live.find((q) => q.quoter === 11)!;
    const degen = live.find((q) => q.quoter === 12)!;
    // The aggressive maker quotes tighter than the timid one, both inside the trader's limit.
    expect(degen.price).to.be.lessThan(timid.price);
    expect(timid.price).to.be.at.most(REF + 31);

    await t.step();
    const accept = t.pit.rfqReached.find((x) => x.user === 10 && x.type === "accept");
    expect(accept?.outcome).to.deep.include({ accepted: true, filled: 5 });
    expect(t.blocks).to.have.length(1);
    expect(t.blocks[0]).to.deep.include({ block: true, taker: 10, maker: 12, takerSide: "buy", price: degen.price, size: 5 });
    expect(t.pit.pit.reads.rfqRequest(requestId)).to.equal(null);
    await t.exec.finish({ aiLessons: false });
  });

  it("never shows a whitelisted request to a broker outside the whitelist, nor a broker its own request as one to quote", async () => {
    const t = setup([11, 12]);
    const seen = new Map<number, BrokerContext[]>();
    for (const u of [11, 12]) {
      const b = new ScriptedBroker(`scripted-${u}`, (ctx) => ((seen.get(u) ?? seen.set(u, []).get(u)!).push(ctx), ok(NOTHING)), "rule");
      t.add(u, b);
    }
    const now = t.clock.now();
    const only11 = t.pit.pit.apply({ type: "rfq_request", user: COUNTER, pair: PEPE, side: "buy", size: 5, limit: REF + 20, expiresAt: now + 10_000, whitelist: [11], remainder: "keep" });
    const own12 = t.pit.pit.apply({ type: "rfq_request", user: 12, pair: PEPE, side: "sell", size: 3, expiresAt: now + 10_000, remainder: "keep" });
    expect(only11.ok && own12.ok).to.equal(true);
    await t.step();
    const c11 = seen.get(11)![0]!;
    const c12 = seen.get(12)![0]!;
    expect(c11.rfqIn?.map((r) => r.requestId)).to.deep.equal([only11.seq, own12.seq]);
    expect(c11.rfqIn?.[0]).to.deep.include({ pair: "PEPE/USDC", side: "buy", size: 5, limit: REF + 20, myQuote: null });
    expect(c11.rfqMine).to.equal(undefined);
    // 12 is not on the whitelist, and its own request is in "mine", not as one to quote.
    expect(c12.rfqIn).to.equal(undefined);
    expect(c12.rfqMine?.map((r) => [r.requestId, r.quotes])).to.deep.equal([[own12.seq, []]]);
    expect(encodeState(c11)).to.contain(`rfq in ${only11.seq} b 5 lim ${REF + 20} 9s`);
    expect(encodeState(c12)).to.not.contain(`rfq in ${only11.seq}`);
    expect(encodeState(c12)).to.contain(`rfq mine ${own12.seq} s 3 lim - 9s quotes -`);
    await t.exec.finish({ aiLessons: false });
  });

  it("refuses a malformed rfq action before it reaches the pit and tells the broker why; the pit's refusals come back too", async () => {
    const t = setup([10]);
    const replies: ((ctx: BrokerContext) => Decision)[] = [
      () => ({ ...NOTHING, rfq: [{ action: "quote", requestId: 5 }, { action: "request", pair: "PEPE/USDC", side: "buy" }, { action: "accept", requestId: 4242 }] }),
      () => ({ ...NOTHING, rfq: [{ action: "request", pair: "PEPE/USDC", side: "buy", size: 5, limit: REF + 5, ttlSec: 1 }] }),
      // Its own request, with a quote id nobody gave: well formed, so the pit answers.
      (ctx) => ({ ...NOTHING, rfq: [{ action: "accept", requestId: ctx.rfqMine![0]!.requestId, quoteId: 999_999 }] }),
    ];
    const b = new ScriptedBroker("scripted", (ctx, n) => ok(replies[n - 1]?.(ctx) ?? NOTHING), "rule");
    t.add(10, b);
    await t.step();
    expect(t.pit.rfqReached).to.have.length(0);
    await t.step();
    expect(b.contexts[1]!.refusals).to.include.members([
      "rfq 1 (quote on request 5): a quote needs requestId, price (integer ticks) and size (integer lots)",
      "rfq 2 (request): a request needs pair, side (buy|sell) and size (integer lots)",
      "rfq 3 (accept on request 4242): no open request of yours with this id",
    ]);
    // The well-formed request reached the pit, its ttl clamped to 2 s.
    const request = t.pit.rfqReached[0]!;
    expect(request).to.deep.include({ user: 10, type: "request" });
    expect(t.pit.pit.reads.rfqRequest(request.outcome.id!)!.expiresAt).to.equal(t.clock.now() + 2_000);
    await t.step(2);
    expect(t.pit.rfqReached.map((x) => [x.type, x.outcome.accepted])).to.deep.equal([
      ["request", true],
      ["accept", false],
    ]);
    expect(b.contexts[3]!.refusals).to.include(`rfq 1 (accept on request ${request.outcome.id}): refused by the pit: unknown_quote`);
    await t.exec.finish({ aiLessons: false });
  });
});
