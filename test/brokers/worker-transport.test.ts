// Model calls from worker threads: same typed results as in-process, through the real SDK.
import { expect } from "chai";
import { AiBroker } from "../../keeper/brokers/ai-broker.ts";
import { catalogue, type AiEntry } from "../../keeper/brokers/catalogue.ts";
import { SpendLedger } from "../../keeper/brokers/spend-ledger.ts";
import type { BrokerResult } from "../../keeper/brokers/types.ts";
import { WorkerTransport } from "../../keeper/brokers/worker-transport.ts";
import { OpenAICompatibleServer } from "../support/openai-server.ts";
import { context } from "../support/broker-context.ts";

const VALID = { orders: [{ pair: "PEPE/USDC", side: "sell", price: 1001, size: 2, type: "limit" }], cancels: [], outcry: "Offered!", plan: null };

describe("brokers/worker-transport", function () {
  this.timeout(20_000);
  let server: OpenAICompatibleServer;
  let pool: WorkerTransport;
  let broker: AiBroker;
  let impatient: AiBroker;

  before(async () => {
    server = await OpenAICompatibleServer.start();
    pool = new WorkerTransport(2);
    await pool.ready();
    const base = catalogue({ OPENAI_API_KEY: "sk-w", CME_OPENAI_BASE_URL: server.url }).find((e) => e.id === "openai-gpt5") as AiEntry;
    const withTimeout = (ms: number): AiEntry => ({ ...base, tiers: { cheap: { ...base.tiers.cheap, timeoutMs: ms }, expensive: base.tiers.expensive } });
    broker = new AiBroker({ entry: withTimeout(5_000), transport: pool, ledger: new SpendLedger(base.spendCapPicoUsd), cacheKey: "cme-broker-1" });
    impatient = new AiBroker({ entry: withTimeout(300), transport: pool, ledger: new SpendLedger(base.spendCapPicoUsd), cacheKey: "cme-broker-2" });
  });
  after(async () => {
    await pool.close();
    await server.close();
  });
  beforeEach(() => server.reset());

  const fail = (r: BrokerResult) => (r.ok ? expect.fail("expected a failure") : r.failure);

  it("answers calls from worker threads with the same request and decision", async () => {
    server.respond(() => ({ kind: "json", json: VALID }));
    const results = await Promise.all(Array.from({ length: 8 }, () => broker.decide(context())));
    for (const r of results) expect(r.ok && r.decision).to.deep.equal(VALID);
    expect(server.requests).to.have.length(8);
    expect(server.requests[0]!.body.model).to.equal("gpt-5-mini");
    expect(server.requests[0]!.headers.authorization).to.equal("Bearer sk-w");
    expect(results[0]!.call!.promptTokens).to.be.greaterThan(100);
  });

  it("returns typed failures across the thread boundary: 429 with retry-after, timeout, abort", async () => {
    server.enqueue({ kind: "error", status: 429, headers: { "retry-after": "3" } });
    expect(fail(await broker.decide(context()))).to.deep.include({ code: "rate_limited", retryAfterMs: 3_000 });
    server.enqueue({ kind: "json", json: VALID, delayMs: 2_000 });
    expect(fail(await impatient.decide(context())).code).to.equal("timeout");
    server.enqueue({ kind: "hang" });
    const ac = new AbortController();
    const p = broker.decide(context(), ac.signal);
    setTimeout(() => ac.abort(), 50);
    expect(fail(await p).code).to.equal("aborted");
    expect(pool.inFlight).to.equal(0);
  });
});
