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
import type { RfqAction } from "../../keeper/brokers/types.ts";
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
    expect(encodeState(c12)).to.contain(`rfq mine ${own12.seq} s 3 lim - 9s min 1 quotes -`);
    // Neither the requester's whitelist nor the requester shows to anyone.
    expect(JSON.stringify(c11)).to.not.match(/whitelist/);
    expect(Object.keys(c11.rfqIn![0]!).sort()).to.deep.equal(["expiresMs", "limit", "lock", "minFill", "myQuote", "pair", "requestId", "side", "size"]);
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

  /** A scripted broker per user whose n-th reply is `script[n - 1]` (nothing after the script ends). */
  const scripted = (t: ReturnType<typeof setup>, user: number, script: ((ctx: BrokerContext) => RfqAction[] | null)[]) => {
    const b = new ScriptedBroker(`scripted-${user}`, (ctx, n) => {
      const rfq = script[n - 1]?.(ctx) ?? null;
      return ok(rfq === null ? NOTHING : { ...NOTHING, rfq });
    }, "rule");
    t.add(user, b);
    return b;
  };
  const requestOf = (ctx: BrokerContext) => ctx.rfqMine?.[0]?.requestId ?? ctx.rfqIn?.[0]?.requestId ?? 0;

  it("a request with minFill, remainder drop and a whitelist: only the listed broker sees and quotes it, a quote below minFill is refused, and what an accept leaves is dropped", async () => {
    const t = setup([10, 11, 12]);
    const asker = scripted(t, 10, [
      () => [{ action: "request", pair: "PEPE/USDC", side: "buy", size: 6, minFill: 3, remainder: "drop", whitelist: [11], ttlSec: 30 }],
      () => null,
      () => null,
      (ctx) => [{ action: "accept", requestId: requestOf(ctx) }],
    ]);
    const listed = scripted(t, 11, [
      () => null,
      (ctx) => [
        { action: "quote", requestId: requestOf(ctx), price: REF + 1, size: 2 },
        { action: "quote", requestId: requestOf(ctx), price: REF + 1, size: 4 },
      ],
    ]);
    const outsider = scripted(t, 12, [() => null, () => [{ action: "quote", requestId: t.pit.rfqReached[0]!.outcome.id!, price: REF, size: 6 }]]);

    await t.step();
    const made = t.pit.rfqReached[0]!;
    expect(made).to.deep.include({ user: 10, type: "request" });
    const requestId = made.outcome.id!;
    expect(t.pit.pit.reads.rfqRequest(requestId)).to.deep.include({ size: 6, minFill: 3, remainder: "drop", whitelist: [11] });

    await t.step(2);
    expect(listed.contexts[1]!.rfqIn).to.have.length(1);
    expect(listed.contexts[1]!.rfqIn![0]).to.deep.include({ requestId, minFill: 3, lock: null, myQuote: null });
    expect(encodeState(listed.contexts[1]!)).to.contain(`rfq in ${requestId} b 6 lim - 29s min 3`);
    // The outsider never sees it, and quoting it blind is refused before the pit.
    expect(outsider.contexts[1]!.rfqIn).to.equal(undefined);
    expect(outsider.contexts[2]!.refusals).to.include(`rfq 1 (quote on request ${requestId}): no open request addressed to you with this id`);
    expect(t.pit.rfqReached.filter((x) => x.user === 12)).to.deep.equal([]);
    // Below minFill the pit refuses the quote; the one at minFill or more stands.
    expect(listed.contexts[2]!.refusals).to.include(`rfq 1 (quote on request ${requestId}): refused by the pit: rfq_below_min_fill`);
    expect(asker.contexts[2]!.rfqMine![0]!.quotes!.map((q) => [q.quoter, q.size])).to.deep.equal([[11, 4]]);

    await t.step(2);
    expect(t.pit.rfqReached.find((x) => x.type === "accept")?.outcome).to.deep.include({ accepted: true, filled: 4 });
    expect(t.blocks.map((b) => [b.taker, b.maker, b.size, b.price])).to.deep.equal([[10, 11, 4, REF + 1]]);
    // 2 lots were left and the request said drop: it is gone, from the pit and from the context.
    expect(t.pit.pit.reads.rfqRequest(requestId)).to.equal(null);
    expect(asker.contexts[4]!.rfqMine).to.equal(undefined);
    await t.exec.finish({ aiLessons: false });
  });

  it("lock and unlock: a quoter locks, the requester sees who holds it and cannot take another's quote, and takes it once unlocked", async () => {
    const t = setup([10, 11, 12]);
    const asker = scripted(t, 10, [
      () => [{ action: "request", pair: "PEPE/USDC", side: "buy", size: 4, ttlSec: 30 }],
      () => null,
      () => null,
      // 12's quote is the better one, but 11 holds the lock.
      (ctx) => [{ action: "accept", requestId: requestOf(ctx), quoteId: ctx.rfqMine![0]!.quotes!.find((q) => q.quoter === 12)!.quoteId }],
      () => null,
      (ctx) => [{ action: "accept", requestId: requestOf(ctx), quoteId: ctx.rfqMine![0]!.quotes!.find((q) => q.quoter === 12)!.quoteId }],
    ]);
    const locker = scripted(t, 11, [
      () => null,
      (ctx) => [{ action: "quote", requestId: requestOf(ctx), price: REF + 2, size: 4 }],
      (ctx) => [{ action: "lock", requestId: requestOf(ctx) }],
      () => null,
      (ctx) => [{ action: "unlock", requestId: requestOf(ctx) }],
    ]);
    const other = scripted(t, 12, [
      () => null,
      (ctx) => [{ action: "quote", requestId: requestOf(ctx), price: REF + 1, size: 4 }],
      () => null,
      (ctx) => [{ action: "lock", requestId: requestOf(ctx) }],
      (ctx) => [{ action: "unlock", requestId: requestOf(ctx) }],
    ]);

    await t.step(3);
    const requestId = t.pit.rfqReached[0]!.outcome.id!;
    expect(t.pit.rfqReached.map((x) => [x.user, x.type, x.outcome.accepted])).to.deep.include.members([
      [11, "lock", true],
    ]);
    await t.step();
    // Tick 4: everyone is shown the lock, each as far as it concerns them.
    expect(locker.contexts[3]!.rfqIn![0]!.lock).to.equal("you");
    expect(other.contexts[3]!.rfqIn![0]!.lock).to.equal("other");
    expect(asker.contexts[3]!.rfqMine![0]!.lockedBy).to.equal(11);
    expect(encodeState(asker.contexts[3]!)).to.match(new RegExp(`rfq mine ${requestId} b 4 lim - \\d+s min 1 locked 11 quotes `));
    expect(encodeState(other.contexts[3]!)).to.contain("locked other");
    await t.step();
    expect(other.contexts[4]!.refusals).to.include(`rfq 1 (lock on request ${requestId}): refused by the pit: rfq_locked`);
    expect(asker.contexts[4]!.refusals).to.include(`rfq 1 (accept on request ${requestId}): refused by the pit: rfq_locked`);
    expect(t.blocks).to.deep.equal([]);
    await t.step();
    // Tick 5: 11 let go; 12 never held the lock.
    expect(other.contexts[5]!.refusals).to.include(`rfq 1 (unlock on request ${requestId}): refused by the pit: rfq_not_locked`);
    expect(asker.contexts[5]!.rfqMine![0]!.lockedBy).to.equal(null);
    expect(locker.contexts[5]!.rfqIn![0]!.lock).to.equal(null);
    await t.step();
    expect(t.blocks.map((b) => [b.taker, b.maker, b.size, b.price])).to.deep.equal([[10, 12, 4, REF + 1]]);
    await t.exec.finish({ aiLessons: false });
  });

  it("refuses malformed or impossible minFill, remainder, whitelist, lock and unlock with reasons, before the pit", async () => {
    const t = setup([10]);
    const b = scripted(t, 10, [
      () => [
        { action: "request", pair: "PEPE/USDC", side: "buy", size: 5, minFill: 0 },
        { action: "request", pair: "PEPE/USDC", side: "buy", size: 5, minFill: 6 },
        { action: "request", pair: "PEPE/USDC", side: "buy", size: 5, remainder: "half" as "keep" },
        { action: "request", pair: "PEPE/USDC", side: "buy", size: 5, whitelist: [11.5] },
        { action: "request", pair: "PEPE/USDC", side: "buy", size: 5, whitelist: [10, 11] },
      ],
      () => [
        { action: "lock" },
        { action: "lock", requestId: 4242 },
        { action: "unlock", requestId: 4242 },
        { action: "request", pair: "PEPE/USDC", side: "buy", size: 5, whitelist: Array.from({ length: 65 }, (_, i) => 100 + i) },
      ],
    ]);
    await t.step(3);
    expect(t.pit.rfqReached).to.deep.equal([]);
    expect(b.contexts[1]!.refusals).to.include.members([
      "rfq 1 (request): minFill must be integer lots or null",
      "rfq 2 (request): minFill 6 must lie between the pair's minimum size 1 and the request's size 5",
      'rfq 3 (request): remainder must be "keep", "drop" or null',
      "rfq 4 (request): whitelist must be null or at most 64 account ids",
      "rfq 5 (request): your own account cannot quote your request",
    ]);
    expect(b.contexts[2]!.refusals).to.include.members([
      "rfq 1 (lock): a lock needs requestId",
      "rfq 2 (lock on request 4242): no open request addressed to you with this id",
      "rfq 3 (unlock on request 4242): no open request addressed to you with this id",
      "rfq 4 (request): whitelist must be null or at most 64 account ids",
    ]);
    await t.exec.finish({ aiLessons: false });
  });

  it("passes a well-formed request's minFill, remainder and whitelist to the pit; an empty whitelist is none", async () => {
    const t = setup([10, 11]);
    scripted(t, 10, [
      () => [
        { action: "request", pair: "PEPE/USDC", side: "sell", size: 5, minFill: 2, remainder: "keep", whitelist: [11], limit: REF - 5 },
        { action: "request", pair: "PEPE/USDC", side: "buy", size: 3, minFill: null, remainder: null, whitelist: [] },
      ],
    ]);
    await t.step();
    const [a, b] = t.pit.rfqReached.map((x) => t.pit.pit.reads.rfqRequest(x.outcome.id!)!);
    expect(a).to.deep.include({ side: "sell", size: 5, minFill: 2, remainder: "keep", whitelist: [11], limit: REF - 5 });
    expect(b).to.deep.include({ side: "buy", size: 3, minFill: 1, remainder: "keep", whitelist: null });
    await t.exec.finish({ aiLessons: false });
  });
});
