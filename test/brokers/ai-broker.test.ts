// The AI broker through the real openai SDK against a local OpenAI-compatible server.
import { expect } from "chai";
import { AiBroker } from "../../keeper/brokers/ai-broker.ts";
import { catalogue, type AiEntry } from "../../keeper/brokers/catalogue.ts";
import { InProcessTransport } from "../../keeper/brokers/model-transport.ts";
import { RULES_PROMPT } from "../../keeper/brokers/prompt-files.ts";
import { SpendLedger } from "../../keeper/brokers/spend-ledger.ts";
import type { BrokerResult } from "../../keeper/brokers/types.ts";
import { OpenAICompatibleServer } from "../support/openai-server.ts";
import { context } from "../support/broker-context.ts";

const VALID = {
  orders: [{ pair: "PEPE/USDC", side: "buy", price: 999, size: 3, type: "post_only" }],
  cancels: ["12"],
  outcry: "Bidding 999 for three!",
  plan: null,
};

function entryFor(server: OpenAICompatibleServer, timeoutMs = 5_000): AiEntry {
  const e = catalogue({ OPENAI_API_KEY: "sk-test", CME_OPENAI_BASE_URL: server.url }).find((x) => x.id === "openai-gpt5") as AiEntry;
  return { ...e, tiers: { cheap: { ...e.tiers.cheap, timeoutMs }, expensive: { ...e.tiers.expensive, timeoutMs: timeoutMs * 2 } } };
}

function failure(r: BrokerResult) {
  expect(r.ok, "expected a failure").to.equal(false);
  return (r as Extract<BrokerResult, { ok: false }>).failure;
}

describe("brokers/ai-broker (openai SDK over a local server)", () => {
  let server: OpenAICompatibleServer;
  let broker: AiBroker;
  let ledger: SpendLedger;

  before(async () => {
    server = await OpenAICompatibleServer.start();
  });
  after(async () => {
    await server.close();
  });
  beforeEach(() => {
    server.reset();
    server.respond(() => ({ kind: "json", json: VALID }));
    const entry = entryFor(server);
    ledger = new SpendLedger(entry.spendCapPicoUsd);
    broker = new AiBroker({ entry, transport: new InProcessTransport(), ledger, cacheKey: "cme-broker-7" });
  });

  it("sends the cheap model a structured-output request laid out for caching, and returns the decision", async () => {
    const r = await broker.decide(context({ strategy: "Buy dips, size 3." }));
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.decision).to.deep.equal(VALID);
    expect(server.requests).to.have.length(1);
    const body = server.requests[0]!.body;
    expect(body.model).to.equal("gpt-5-mini");
    expect(body.response_format.type).to.equal("json_schema");
    expect(body.response_format.json_schema.strict).to.equal(true);
    expect(body.response_format.json_schema.schema.required).to.deep.equal(["orders", "cancels", "outcry", "plan", "rfq"]);
    expect(body.max_completion_tokens).to.equal(600);
    expect(body.reasoning_effort).to.equal("minimal");
    expect(body.prompt_cache_key).to.equal("cme-broker-7");
    // Fixed rules first, then the user's strategy, then the changing state.
    expect(body.messages[0]).to.deep.equal({ role: "system", content: RULES_PROMPT });
    expect(body.messages[1].content).to.contain("Buy dips, size 3.");
    expect(body.messages[2].content).to.match(/^t 10 left 2990s tick\nmkt PEPE\/USDC mid 1000 mark 1000/);
    expect(server.requests[0]!.headers.authorization).to.equal("Bearer sk-test");
  });

  it("logs which model answered and what the call cost, from the usage field", async () => {
    server.respond(() => ({ kind: "json", json: VALID, model: "gpt-5-mini-2025-08-07", usage: { prompt_tokens: 1200, completion_tokens: 40, cached_tokens: 1024 } }));
    const r = await broker.decide(context());
    expect(r.call).to.deep.include({ tier: "cheap", requestedModel: "gpt-5-mini", model: "gpt-5-mini-2025-08-07", promptTokens: 1200, completionTokens: 40, cachedTokens: 1024, estimated: false });
    const expected = 176n * 250_000n + 1024n * 25_000n + 40n * 2_000_000n;
    expect(r.call!.costPicoUsd).to.equal(expected);
    expect(ledger.spentPicoUsd).to.equal(expected);
  });

  it("uses the expensive model for the opening plan, the re-prompt and reviews", async () => {
    for (const purpose of ["open", "reprompt", "review"] as const) {
      server.reset();
      const r = await broker.decide(context({ purpose, reprompt: purpose === "reprompt" ? "get flat" : null }));
      expect(server.requests[0]!.body.model, purpose).to.equal("gpt-5");
      expect(r.call!.tier).to.equal("expensive");
    }
    expect(server.requests[0]!.body.messages[2].content).to.contain("do review");
  });

  const cases: [string, Parameters<OpenAICompatibleServer["enqueue"]>[0], string, RegExp][] = [
    ["malformed JSON", { kind: "content", content: '{"orders": [' }, "malformed_json", /not valid JSON/],
    ["prose instead of JSON", { kind: "content", content: "I think you should buy." }, "malformed_json", /not valid JSON/],
    ["a schema violation (fractional price)", { kind: "json", json: { ...VALID, orders: [{ ...VALID.orders[0], price: 999.5 }] } }, "schema_violation", /orders\.0\.price/],
    ["a schema violation (missing field)", { kind: "json", json: { orders: [], cancels: [] } }, "schema_violation", /outcry/],
    ["a schema violation (outcry too long)", { kind: "json", json: { ...VALID, outcry: "x".repeat(141) } }, "schema_violation", /outcry/],
    ["a refusal", { kind: "refusal", refusal: "I can't help with trading." }, "refusal", /refused: I can't help/],
    ["a truncated reply", { kind: "content", content: '{"orders":[{"pair":"PEPE', finishReason: "length" }, "truncated", /cut off/],
    ["a content filter stop", { kind: "content", content: "", finishReason: "content_filter" }, "content_filter", /filter/],
    ["a 500", { kind: "error", status: 500 }, "server_error", /500/],
    ["a 503", { kind: "error", status: 503 }, "server_error", /503/],
    ["a 401", { kind: "error", status: 401 }, "auth_error", /key/],
    ["a 400", { kind: "error", status: 400, message: "bad schema" }, "http_error", /400/],
    ["a dropped connection", { kind: "destroy" }, "connection_error", /reach/],
  ];
  for (const [name, reply, code, message] of cases) {
    it(`turns ${name} into a typed "${code}" failure after exactly one request`, async () => {
      server.enqueue(reply);
      const f = failure(await broker.decide(context()));
      expect(f.code).to.equal(code);
      expect(f.message).to.match(message);
      expect(server.requests, "the SDK must not retry on its own").to.have.length(1);
    });
  }

  it("accepts JSON wrapped in a markdown fence (some local models do that)", async () => {
    server.enqueue({ kind: "content", content: "```json\n" + JSON.stringify(VALID) + "\n```" });
    const r = await broker.decide(context());
    expect(r.ok && r.decision).to.deep.equal(VALID);
  });

  it("counts the tokens of replies it could not use", async () => {
    server.enqueue({ kind: "content", content: "not json at all" });
    const r = await broker.decide(context());
    expect(r.ok).to.equal(false);
    expect(r.call!.promptTokens).to.be.greaterThan(100);
    expect(ledger.spentPicoUsd > 0n).to.equal(true);
  });

  it("times out a slow reply and charges its reservation, since the provider may bill it", async () => {
    server.enqueue({ kind: "json", json: VALID, delayMs: 2_000 });
    const entry = entryFor(server, 200);
    const slow = new AiBroker({ entry, transport: new InProcessTransport(), ledger, cacheKey: "k" });
    const f = failure(await slow.decide(context()));
    expect(f.code).to.equal("timeout");
    expect(ledger.spentPicoUsd > 0n).to.equal(true);
  });

  it("reads retry-after (seconds) and retry-after-ms from a 429", async () => {
    server.enqueue({ kind: "error", status: 429, headers: { "retry-after": "7" } });
    const f = failure(await broker.decide(context()));
    expect(f).to.deep.include({ code: "rate_limited", retryAfterMs: 7_000 });
    expect(f.message).to.contain("retry after 7s");
    server.enqueue({ kind: "error", status: 429, headers: { "retry-after-ms": "1500" } });
    expect(failure(await broker.decide(context()))).to.deep.include({ code: "rate_limited", retryAfterMs: 1_500 });
    expect(ledger.spentPicoUsd).to.equal(0n);
  });

  it("does not call at all once the next call could pass the spend cap", async () => {
    const entry = entryFor(server);
    const tiny = new SpendLedger(1_000_000n); // $0.000001: less than one worst-case call
    const capped = new AiBroker({ entry, transport: new InProcessTransport(), ledger: tiny, cacheKey: "k" });
    const f = failure(await capped.decide(context()));
    expect(f.code).to.equal("spend_cap");
    expect(f.message).to.equal("spend cap of $1.0e-6 reached ($0.00 spent)");
    expect(server.requests).to.have.length(0);
  });

  it("is cancelled by the loop's abort signal", async () => {
    server.enqueue({ kind: "hang" });
    const ac = new AbortController();
    const p = broker.decide(context(), ac.signal);
    setTimeout(() => ac.abort(), 20);
    expect(failure(await p).code).to.equal("aborted");
  });

  it("asks the expensive model for lessons, and returns null when it cannot", async () => {
    server.enqueue({ kind: "json", json: { lessons: ["Quote tighter when the book is thin.", "Cut losers at 3 ticks."] } });
    const r = await broker.lessons("make markets", "pnl +1.00");
    expect(r!.lessons).to.deep.equal(["Quote tighter when the book is thin.", "Cut losers at 3 ticks."]);
    const body = server.requests[server.requests.length - 1]!.body;
    expect(body.model).to.equal("gpt-5");
    expect(body.response_format.json_schema.name).to.equal("broker_lessons");
    server.enqueue({ kind: "error", status: 500 });
    expect(await broker.lessons("make markets", "pnl +1.00")).to.equal(null);
  });
});
