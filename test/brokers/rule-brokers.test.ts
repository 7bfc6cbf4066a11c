import { expect } from "chai";
import { RuleBroker, runRule, systemDefaultDecision, type RuleStrategyId } from "../../keeper/brokers/rule/rule-broker.ts";
import type { Decision, ProposedOrder } from "../../keeper/brokers/types.ts";
import { context, tape } from "../support/broker-context.ts";

const bids = (d: Decision) => d.orders.filter((o) => o.side === "buy");
const asks = (d: Decision) => d.orders.filter((o) => o.side === "sell");
const crossing = (o: ProposedOrder, bestBid: number, bestAsk: number) => o.type !== "post_only" && (o.side === "buy" ? o.price >= bestAsk : o.price <= bestBid);

describe("brokers/rule/market-maker", () => {
  it("quotes both sides around the mid with post-only orders inside the touch", () => {
    const d = runRule("market_maker", context({ strategy: "spread 4, size 3, aggressiveness 0.5" }));
    expect(bids(d)).to.have.length(1);
    expect(asks(d)).to.have.length(1);
    const b = bids(d)[0]!;
    const a = asks(d)[0]!;
    expect(b.type).to.equal("post_only");
    expect(b.price).to.be.lessThan(1000).and.greaterThan(997);
    expect(a.price).to.be.greaterThan(1000).and.lessThan(1003);
    expect(d.outcry).to.match(/^MM: PEPE \d+@\d+\/\d+@\d+/);
  });

  it("skews both quotes down when long and up when short", () => {
    const flat = runRule("market_maker", context({ strategy: "risk limit 20" }));
    const long = runRule("market_maker", context({ strategy: "risk limit 20" }, { position: 15 }));
    const short = runRule("market_maker", context({ strategy: "risk limit 20" }, { position: -15 }));
    expect(bids(long)[0]!.price).to.be.lessThan(bids(flat)[0]!.price);
    expect(asks(long)[0]!.price).to.be.lessThan(asks(flat)[0]!.price);
    expect(bids(short)[0]!.price).to.be.greaterThan(bids(flat)[0]!.price);
    expect(long.outcry).to.contain("skew");
  });

  it("stops adding on the side that would pass the risk limit", () => {
    const d = runRule("market_maker", context({ strategy: "risk limit 10, size 4" }, { position: 10 }));
    expect(bids(d)).to.have.length(0);
    expect(asks(d)).to.have.length(1);
  });

  it("keeps resting quotes that still match (queue priority) and cancels the ones that moved", () => {
    const first = runRule("market_maker", context({ strategy: "size 3", seed: 1 }));
    const resting = first.orders.map((o, i) => ({ orderId: `o${i}`, pair: o.pair, side: o.side, price: o.price, size: o.size, type: o.type, ageMs: 1000 }));
    const again = runRule("market_maker", context({ strategy: "size 3", seed: 1, openOrders: resting }));
    expect(again.orders).to.deep.equal([]);
    expect(again.cancels).to.deep.equal([]);
    const moved = runRule("market_maker", context({ strategy: "size 3", seed: 1, openOrders: resting }, { mid: 1010, bids: [{ price: 1008, size: 5 }], asks: [{ price: 1012, size: 5 }] }));
    expect(moved.cancels).to.have.members(["o0", "o1"]);
    expect(moved.orders).to.have.length(2);
  });

  it("under reduce-only quotes only the side that reduces the position", () => {
    const d = runRule("market_maker", context({ directives: [{ code: "reduce_only", text: "" }] }, { position: 6, holding: 6 }));
    expect(bids(d)).to.have.length(0);
    expect(asks(d)).to.have.length(1);
    expect(asks(d)[0]!.size).to.be.at.most(6);
    expect(d.outcry).to.contain("reduce-only");
  });

  it("adds a crossing IOC when told its orders are not filling", () => {
    const d = runRule("market_maker", context({ directives: [{ code: "cross", text: "" }] }));
    expect(d.orders.some((o) => o.type === "ioc" && crossing(o, 998, 1002))).to.equal(true);
  });

  it("keeps its quotes within the band when asked to quote around the mid", () => {
    const d = runRule("market_maker", context({ strategy: "spread 40", directives: [{ code: "quote_mid", pair: "PEPE/USDC", bandTicks: 3, text: "" }] }));
    for (const o of d.orders) expect(Math.abs(o.price - 1000)).to.be.at.most(3);
  });

  it("is deterministic given the context and seed", () => {
    const a = runRule("market_maker", context({ seed: 99 }));
    const b = runRule("market_maker", context({ seed: 99 }));
    expect(a).to.deep.equal(b);
  });
});

describe("brokers/rule/momentum", () => {
  it("lifts the offer with an IOC when the tape runs up", () => {
    const d = runRule("momentum", context({ strategy: "threshold 2, size 4" }, { trades: tape(990, 1, 12) }));
    expect(d.orders).to.have.length(1);
    expect(d.orders[0]).to.include({ side: "buy", type: "ioc" });
    expect(d.orders[0]!.price).to.be.at.least(1002);
    expect(d.outcry).to.match(/Momentum: PEPE \+\d+(\.\d+)?t vs vwap, lifting/);
  });

  it("hits the bid when it runs down and cuts a long the tape turned against", () => {
    const down = runRule("momentum", context({ strategy: "threshold 2" }, { trades: tape(1010, -1, 12) }));
    expect(down.orders[0]).to.include({ side: "sell", type: "ioc" });
    const fade = runRule("momentum", context({ strategy: "threshold 50" }, { position: 8, trades: tape(1004, -1, 6) }));
    expect(fade.orders[0]).to.include({ side: "sell", type: "ioc" });
    expect(fade.outcry).to.contain("cutting");
  });

  it("waits without a tape and never rests orders", () => {
    const d = runRule("momentum", context({ openOrders: [{ orderId: "9", pair: "PEPE/USDC", side: "buy", price: 990, size: 1, type: "limit", ageMs: 1 }] }));
    expect(d.orders).to.deep.equal([]);
    expect(d.cancels).to.deep.equal(["9"]);
    expect(d.outcry).to.contain("waiting for a tape");
  });

  it("degenerate settings chase smaller moves and pay up more than timid ones", () => {
    const t = tape(998, 0.5, 10);
    const timid = runRule("momentum", context({ strategy: "timid, threshold 3" }, { trades: t }));
    const degen = runRule("momentum", context({ strategy: "degen, threshold 3" }, { trades: t }));
    expect(timid.orders).to.have.length(0);
    expect(degen.orders).to.have.length(1);
    expect(degen.orders[0]!.price).to.be.greaterThan(1002);
  });
});

describe("brokers/rule/mean-reversion", () => {
  it("offers above the mean when the mid is stretched up, bids when stretched down", () => {
    const trades = tape(980, 0, 10);
    const up = runRule("mean_reversion", context({ strategy: "threshold 3, aggressiveness 0.3" }, { trades }));
    expect(up.orders).to.have.length(1);
    expect(up.orders[0]).to.include({ side: "sell", type: "limit" });
    expect(up.orders[0]!.price).to.be.greaterThan(998);
    const down = runRule("mean_reversion", context({ strategy: "threshold 3, aggressiveness 0.3" }, { trades: tape(1020, 0, 10) }));
    expect(down.orders[0]).to.include({ side: "buy" });
  });

  it("crosses to fade when aggressive", () => {
    const d = runRule("mean_reversion", context({ strategy: "threshold 3, aggressiveness 0.9" }, { trades: tape(980, 0, 10) }));
    expect(d.orders[0]).to.include({ side: "sell", type: "ioc", price: 998 });
  });

  it("works an exit at the mean when back near it with a position", () => {
    const d = runRule("mean_reversion", context({ strategy: "threshold 5" }, { position: 4, trades: tape(1000, 0, 10) }));
    expect(d.orders[0]).to.include({ side: "sell" });
    expect(d.outcry).to.contain("working exit");
  });
});

describe("brokers/rule/scalper", () => {
  it("joins the heavy side as a maker when the spread pays the fees", () => {
    const d = runRule("scalper", context({ strategy: "min edge 1" }, { bids: [{ price: 998, size: 50 }], asks: [{ price: 1002, size: 5 }] }));
    expect(d.orders).to.have.length(1);
    expect(d.orders[0]).to.include({ side: "buy", type: "post_only", price: 999 });
    expect(d.outcry).to.match(/edge [\d.]+t > fees/);
  });

  it("stands aside when the spread does not cover fees plus the minimum edge", () => {
    const d = runRule(
      "scalper",
      context({ strategy: "min edge 1" }, { bids: [{ price: 999, size: 50 }], asks: [{ price: 1000, size: 5 }], mid: 999.5, makerFeeBps: 10 }),
    );
    expect(d.orders).to.deep.equal([]);
    expect(d.outcry).to.contain("standing aside");
  });

  it("cuts as a taker when the book flips against its position", () => {
    const d = runRule("scalper", context({}, { position: 3, bids: [{ price: 998, size: 2 }], asks: [{ price: 1002, size: 60 }] }));
    expect(d.orders[0]).to.include({ side: "sell", type: "ioc", price: 998, size: 3 });
  });
});

describe("brokers/rule/rule-broker", () => {
  it("answers every strategy with a decision and an outcry, never a failure", async () => {
    for (const s of ["market_maker", "momentum", "mean_reversion", "scalper"] as RuleStrategyId[]) {
      const r = await new RuleBroker(`rule-${s}`, s).decide(context({}, { trades: tape(995, 1, 8) }));
      expect(r.ok, s).to.equal(true);
      if (r.ok) expect(r.decision.outcry.length).to.be.within(1, 140);
    }
  });

  it("turns a strategy crash into a typed failure", async () => {
    const broken = context();
    (broken as { markets: unknown }).markets = null;
    const r = await new RuleBroker("rule-market-maker", "market_maker").decide(broken);
    expect(r.ok).to.equal(false);
    if (!r.ok) expect(r.failure.code).to.equal("broker_error");
  });

  it("the re-prompt overrides the prompt's knobs", () => {
    const d = runRule("market_maker", context({ strategy: "size 2, aggressiveness 0.5", reprompt: "size 8" }));
    expect(d.orders[0]!.size).to.be.at.least(8);
  });

  it("the system default is the market maker and says so", () => {
    const d = systemDefaultDecision(context(), "system default");
    expect(d.outcry.startsWith("[system default] MM:")).to.equal(true);
    expect(d.orders).to.have.length(2);
  });
});

describe("brokers/rule requests for quote", () => {
  const incoming = { requestId: 31, pair: "PEPE/USDC", side: "buy" as const, size: 40, limit: null, expiresMs: 8_000, myQuote: null };

  it("market makers quote open requests addressed to them: timid wide and small, degen tight and large", () => {
    const timid = runRule("market_maker", context({ strategy: "timid", rfqIn: [incoming] })).rfq!;
    const degen = runRule("market_maker", context({ strategy: "degen", rfqIn: [incoming] })).rfq!;
    expect(timid).to.have.length(1);
    expect(timid[0]).to.deep.include({ action: "quote", requestId: 31 });
    expect(degen[0]!.price!).to.be.lessThan(timid[0]!.price!);
    expect(degen[0]!.price!).to.be.greaterThan(1000);
    expect(degen[0]!.size!).to.be.greaterThan(timid[0]!.size!);
    // Already quoted and still live: no new quote.
    const again = runRule("market_maker", context({ rfqIn: [{ ...incoming, myQuote: { quoteId: 32, quoter: 7, price: 1004, size: 5, validMs: 6_000 } }] }));
    expect(again.rfq).to.equal(undefined);
  });

  it("a momentum trader too big for the top level requests a block, then accepts the best quote within its limit", () => {
    const rising = { trades: tape(990, 4, 5), asks: [{ price: 1003, size: 2 }] };
    const d = runRule("momentum", context({ strategy: "size 5" }, rising));
    expect(d.orders).to.deep.equal([]);
    expect(d.rfq).to.deep.equal([{ action: "request", pair: "PEPE/USDC", side: "buy", size: 5, limit: 1004, ttlSec: 8 }]);
    const mine = { requestId: 50, pair: "PEPE/USDC", side: "buy" as const, size: 5, limit: 1004, expiresMs: 6_000 };
    const waiting = runRule("momentum", context({ strategy: "size 5", rfqMine: [{ ...mine, quotes: [] }] }, rising));
    expect(waiting.rfq).to.equal(undefined);
    expect(waiting.orders).to.deep.equal([]);
    const quoted = runRule("momentum", context({ strategy: "size 5", rfqMine: [{ ...mine, quotes: [{ quoteId: 51, quoter: 8, price: 1002, size: 5, validMs: 5_000 }] }] }, rising));
    expect(quoted.rfq).to.deep.equal([{ action: "accept", requestId: 50, quoteId: null, limit: 1004 }]);
  });
});
