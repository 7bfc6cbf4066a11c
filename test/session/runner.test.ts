// A whole session without a chain: deposits fed as vault events, brokers configured over signed
// HTTP, built-in brokers trading on an accelerated clock, closing, netting and the settlement plan.
// Then a fresh pit replaying the journal reaches the same state.
import { expect } from "chai";
import { PROMPT_MAX_CHARS } from "../../keeper/brokers/prompt-rules.ts";
import type { Keeper } from "../../keeper/keeper.ts";
import { getSettlement } from "../../keeper/settlement/store.ts";
import { getFillLog } from "../../keeper/store/published.ts";
import { parseFillLog, deltasFromFillLog } from "../../keeper/settlement/fill-log.ts";
import { decodeEntries } from "../../keeper/settlement/batches.ts";
import { openPit } from "../../keeper/session/open-pit.ts";
import { systemClock } from "../../keeper/executor/clock.ts";
import { FAKE_DEPLOYMENT, offlineKeeper, signed, signedTrade, wallet } from "../support/keeper.ts";

const until = async (cond: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe("an offline session (no chain)", function () {
  this.timeout(60_000);
  let k: Keeper;
  after(async () => k?.stop());

  it("trades with built-in brokers, closes and plans a net-zero settlement that replays", async () => {
    k = await offlineKeeper({ preSessionSec: 2, tradingSec: 10, closingSec: 1, tickMs: 100, batchEntries: 3 });
    const users = Array.from({ length: 6 }, () => wallet());
    const [usdc, pepe, wif] = FAKE_DEPLOYMENT.tokens;
    const events = users.flatMap((u, i) => [
      { kind: "account" as const, block: 2, accountId: 10 + i, address: u.address },
      { kind: "deposit" as const, block: 2, id: `d${i}a`, address: u.address, token: usdc!.address, amount: 10_000_000_000n, balance: 10_000_000_000n },
      // Makers (even) hold more memecoin than their risk limit, so they skew their quotes down and
      // the mid drifts from the reference; the aggressive mean-reverters (odd) fade it by crossing.
      { kind: "deposit" as const, block: 2, id: `d${i}b`, address: u.address, token: pepe!.address, amount: i % 2 === 0 ? 4n * 10n ** 24n : 10n ** 23n, balance: i % 2 === 0 ? 4n * 10n ** 24n : 10n ** 23n },
      { kind: "deposit" as const, block: 2, id: `d${i}c`, address: u.address, token: wif!.address, amount: i % 2 === 0 ? 4n * 10n ** 19n : 10n ** 18n, balance: i % 2 === 0 ? 4n * 10n ** 19n : 10n ** 18n },
    ]);
    k.runner.applyVaultEvents(events, 2n);
    await k.start();
    const brokers = ["rule-market-maker", "rule-mean-reversion", "rule-market-maker", "rule-mean-reversion", "rule-market-maker", "rule-mean-reversion"];
    for (const [i, u] of users.entries()) {
      const r = await k.app.inject({ method: "POST", url: "/set-broker", payload: await signed(u, "SetBroker", { brokerId: brokers[i]! }) });
      expect(r.statusCode, r.body).to.equal(200);
      const prompt = i % 2 === 0 ? "risk limit 10, spread 2 ticks, size 3" : "aggressiveness 0.9, threshold 1, size 2";
      await k.app.inject({ method: "POST", url: "/set-prompt", payload: await signed(u, "SetPrompt", { prompt }) });
    }
    await until(() => k.runner.current.phase === "trading", 10_000);
    // A re-prompt the broker would not take is a 400 naming the field, and leaves the one
    // re-prompt unspent; a good one is then taken, once.
    for (const bad of ["   \n\t ", "x".repeat(PROMPT_MAX_CHARS + 1)]) {
      const r = await k.app.inject({ method: "POST", url: "/reprompt", payload: await signed(users[0]!, "Reprompt", { prompt: bad }) });
      expect(r.statusCode, r.body).to.equal(400);
      expect(r.json().field).to.equal("prompt");
    }
    const re1 = await k.app.inject({ method: "POST", url: "/reprompt", payload: await signed(users[0]!, "Reprompt", { prompt: "tighter spreads" }) });
    expect(re1.statusCode, re1.body).to.equal(200);
    const re2 = await k.app.inject({ method: "POST", url: "/reprompt", payload: await signed(users[0]!, "Reprompt", { prompt: "again" }) });
    expect(re2.statusCode).to.equal(409);
    expect(re2.json().error).to.equal("reprompt_used");

    // A request for quote: on the stream and in GET /api/quotes, its whitelist never published.
    const streamed: string[] = [];
    const detach = k.hub.relay((messages) => streamed.push(...messages));
    const rq = k.runner.pit!.apply({ type: "rfq_request", user: 13, pair: 1, side: "buy", size: 2, expiresAt: Date.now() + 60_000, whitelist: [10, 12], remainder: "keep" });
    expect(rq.ok, JSON.stringify(rq)).to.equal(true);
    const quotes = (await k.app.inject("/api/quotes")).json() as { requests: Record<string, unknown>[] };
    expect(quotes.requests).to.have.length(1);
    expect(quotes.requests[0]).to.include({ requestId: rq.seq, pair: "PEPE/USDC", accountId: 13, side: "buy", size: 2, whitelisted: true });
    expect(quotes.requests[0]).to.not.have.property("whitelist");
    await until(() => streamed.some((m) => m.includes('"type":"trade_request"')), 5_000);
    const published = JSON.parse(streamed.find((m) => m.includes('"type":"trade_request"'))!) as Record<string, unknown>;
    expect(published).to.include({ requestId: rq.seq, whitelisted: true });
    expect(published).to.not.have.property("whitelist");
    detach();
    expect(k.runner.pit!.apply({ type: "rfq_cancel", user: 13, requestId: rq.seq }).ok).to.equal(true);

    // The same by signed requests over HTTP: users[0] asks, users[1] quotes, users[0] accepts.
    const trade = (path: string, payload: object) => k.app.inject({ method: "POST", url: `/trade/${path}`, payload });
    const asked = await trade("request", await signedTrade(users[0]!, "request", { pair: "PEPE/USDC", side: "buy", size: 1, price: 0, ttlSec: 30 }));
    expect(asked.statusCode, asked.body).to.equal(200);
    expect(asked.json().events).to.include("rfq_requested");
    const requestId = asked.json().seq as number;
    const bad = await trade("quote", { ...(await signedTrade(users[1]!, "quote", { requestId, price: 10_000, size: 1, ttlSec: 30 })), size: 2 });
    expect(bad.statusCode, "a field changed after signing").to.equal(401);
    const quoted = await trade("quote", await signedTrade(users[1]!, "quote", { requestId, price: 10_000, size: 1, ttlSec: 30 }));
    expect(quoted.statusCode, quoted.body).to.equal(200);
    const accepted = await trade("accept", await signedTrade(users[0]!, "accept", { requestId, quoteId: quoted.json().seq as number, size: 0, price: 0 }));
    expect(accepted.statusCode, accepted.body).to.equal(200);
    expect(accepted.json().events).to.include.members(["rfq_accepted", "fill"]);
    const missing = await trade("cancel", await signedTrade(users[0]!, "cancel", { requestId: 999_999 }));
    expect(missing.statusCode).to.equal(409);
    expect(missing.json().error).to.equal("unknown_request");

    // The built-in brokers quote; a taker crosses their quotes through the pit's own port (the
    // path every broker order takes), so the session has fills whatever the brokers decide.
    const taker = 11;
    for (let i = 0; i < 20 && k.runner.current.phase === "trading"; i++) {
      const pit = k.runner.port!;
      for (const pair of [1, 2]) {
        const m = pit.market(pair, 1, 0);
        const ask = m.asks[0];
        const bid = m.bids[0];
        if (i % 2 === 0 && ask !== undefined) pit.submit(taker, { cancels: [], orders: [{ pair, side: "buy", price: ask.price, size: 1, type: "ioc" }] });
        if (i % 2 === 1 && bid !== undefined) pit.submit(taker, { cancels: [], orders: [{ pair, side: "sell", price: bid.price, size: 1, type: "ioc" }] });
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    await until(() => k.runner.current.phase === "settled" || (k.runner.current.id === 2), 30_000);
    const plan = getSettlement(k.db, 1)!.plan;
    expect(plan.deltas.length).to.be.greaterThan(0);
    const net = new Map<number, bigint>();
    for (const d of plan.deltas) net.set(d.tokenIndex, (net.get(d.tokenIndex) ?? 0n) + d.delta);
    for (const v of net.values()) expect(v).to.equal(0n);
    // The batches carry exactly the planned deltas.
    expect(plan.batches.flatMap((b) => decodeEntries(b.entries))).to.deep.equal(plan.deltas);
    // The published fill log reproduces every delta.
    const log = getFillLog(k.db, 1)!;
    const parsed = parseFillLog(log.body);
    expect(parsed.ok).to.equal(true);
    if (parsed.ok) expect(deltasFromFillLog(parsed.log)).to.deep.equal(plan.deltas);
    const fills = parsed.ok ? parsed.log.events.filter((e) => e.type === "fill").length : 0;
    expect(fills).to.be.greaterThan(0);

    // Replaying the journal in a fresh pit gives the same state hash and deltas.
    const { pit } = openPit({
      market: { engine: { ...k.runner.market.engine, sessionId: 1 }, pairs: k.runner.market.pairs },
      sessionId: 1,
      journal: null,
      clock: systemClock,
      phase: () => ({ sessionId: 1, phase: "settling", endsAtMs: 0 }),
    });
    for (const e of k.runner.journal.read(1)) pit.replay(e.command);
    const live = k.runner.current.id === 1 ? k.runner.pit! : undefined;
    expect(pit.reads.closeOut()!.deltas).to.deep.equal(plan.deltas.map((d) => ({ user: d.accountId, asset: d.tokenIndex, delta: d.delta })));
    if (live !== undefined) expect(pit.stateHash()).to.equal(live.stateHash());
    const top = await k.app.inject("/api/top-prompts");
    expect(top.json().length).to.be.greaterThan(0);
    expect(top.json()[0]).to.include({ sessionId: 1, rank: 1 });
  });
});
