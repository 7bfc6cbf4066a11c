// The keeper's HTTP surface through app.inject: schemas, EIP-712 auth, nonces, phases, errors.
import { expect } from "chai";
import type { Hex } from "viem";
import type { Keeper } from "../../keeper/keeper.ts";
import { getUser } from "../../keeper/store/users.ts";
import { putFillLog } from "../../keeper/store/published.ts";
import { SECP256K1_N } from "../../keeper/auth/verify.ts";
import { FAKE_DEPLOYMENT, offlineKeeper, signed, wallet } from "../support/keeper.ts";

/** The same signature with s' = n - s and the other parity: it recovers the same signer. */
function malleate(signature: Hex): Hex {
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  const v = Number.parseInt(signature.slice(130), 16);
  return `0x${signature.slice(2, 66)}${(SECP256K1_N - s).toString(16).padStart(64, "0")}${(v === 27 ? 28 : 27).toString(16)}`;
}

describe("keeper API", function () {
  let k: Keeper;
  const alice = wallet();
  const bob = wallet();
  const stranger = wallet();

  beforeEach(async () => {
    k = await offlineKeeper();
    k.runner.applyVaultEvents(
      [
        { kind: "account", block: 2, accountId: 3, address: alice.address },
        { kind: "account", block: 2, accountId: 4, address: bob.address },
      ],
      2n,
    );
    await k.start();
  });
  afterEach(async () => k.stop());

  const post = (url: string, payload: unknown) => k.app.inject({ method: "POST", url, payload: payload as object });

  describe("GET /api/eip712", () => {
    it("publishes the domain (chain id, vault) and every action type", async () => {
      const r = await k.app.inject("/api/eip712");
      expect(r.statusCode).to.equal(200);
      const body = r.json();
      expect(body.domain).to.deep.equal({ name: "CME Keeper", version: "1", chainId: 31337, verifyingContract: FAKE_DEPLOYMENT.vault });
      expect(Object.keys(body.types)).to.include.members(["SetBroker", "SetPrompt", "SetPairs", "Reprompt", "WithdrawalRequest", "Admin"]);
    });
  });

  describe("POST /set-broker", () => {
    it("applies a correctly signed request", async () => {
      const r = await post("/set-broker", await signed(alice, "SetBroker", { brokerId: "rule-market-maker" }));
      expect(r.statusCode, r.body).to.equal(200);
      expect(r.json().settings).to.include({ brokerId: "rule-market-maker", accountId: 3, effectiveSession: 1 });
      expect(getUser(k.db, alice.address)?.brokerId).to.equal("rule-market-maker");
    });

    it("refuses an unsigned body with 400 naming the signature", async () => {
      const body = await signed(alice, "SetBroker", { brokerId: "rule-market-maker" });
      const { signature: _s, ...unsigned } = body;
      const r = await post("/set-broker", unsigned);
      expect(r.statusCode).to.equal(400);
      expect(r.json()).to.include({ error: "bad_request", field: "signature" });
      expect(getUser(k.db, alice.address)).to.equal(undefined);
    });

    it("refuses a signature by another wallet with 401", async () => {
      const r = await post("/set-broker", await signed(bob, "SetBroker", { brokerId: "rule-market-maker" }, { account: alice.address }));
      expect(r.statusCode).to.equal(401);
      expect(r.json()).to.include({ error: "wrong_signer", field: "signature" });
      expect(getUser(k.db, alice.address)).to.equal(undefined);
    });

    it("refuses a replayed nonce with 401 and keeps the first change", async () => {
      const body = await signed(alice, "SetBroker", { brokerId: "rule-market-maker" });
      expect((await post("/set-broker", body)).statusCode).to.equal(200);
      const again = await signed(alice, "SetBroker", { brokerId: "rule-momentum" }, { nonce: BigInt(body.nonce) });
      const r = await post("/set-broker", again);
      expect(r.statusCode).to.equal(401);
      expect(r.json()).to.include({ error: "replayed_nonce", field: "nonce" });
      expect(getUser(k.db, alice.address)?.brokerId).to.equal("rule-market-maker");
    });

    it("refuses an expired request with 401", async () => {
      const r = await post("/set-broker", await signed(alice, "SetBroker", { brokerId: "rule-market-maker" }, { expiry: Math.floor(Date.now() / 1000) - 1 }));
      expect(r.statusCode).to.equal(401);
      expect(r.json()).to.include({ error: "expired", field: "expiry" });
    });

    it("refuses a request signed for another chain with 401", async () => {
      const body = await signed(alice, "SetBroker", { brokerId: "rule-market-maker" }, { chainId: 1 });
      const declared = await post("/set-broker", { ...body, chainId: 1 });
      expect(declared.statusCode).to.equal(401);
      expect(declared.json()).to.include({ error: "wrong_chain", field: "chainId" });
      const undeclared = await post("/set-broker", body);
      expect(undeclared.statusCode).to.equal(401);
      expect(undeclared.json().error).to.equal("wrong_signer");
      expect(undeclared.json().message).to.match(/chain id 31337/);
      expect(getUser(k.db, alice.address)).to.equal(undefined);
    });

    it("refuses a request for another vault with 401", async () => {
      const r = await post("/set-broker", await signed(alice, "SetBroker", { brokerId: "rule-market-maker" }, { vault: "0x000000000000000000000000000000000000dEaD" }));
      expect(r.statusCode).to.equal(401);
    });

    it("refuses an unknown broker with 400 naming brokerId, without using the nonce", async () => {
      const body = await signed(alice, "SetBroker", { brokerId: "no-such-broker" });
      const r = await post("/set-broker", body);
      expect(r.statusCode).to.equal(400);
      expect(r.json()).to.include({ error: "unknown_broker", field: "brokerId" });
      const retry = await post("/set-broker", { ...(await signed(alice, "SetBroker", { brokerId: "rule-market-maker" }, { nonce: BigInt(body.nonce) })) });
      expect(retry.statusCode).to.equal(200);
    });

    it("refuses a wallet without a vault account with 403", async () => {
      const r = await post("/set-broker", await signed(stranger, "SetBroker", { brokerId: "rule-market-maker" }));
      expect(r.statusCode).to.equal(403);
      expect(r.json()).to.include({ error: "not_registered", field: "account" });
    });
  });

  describe("one authorization, one use, one encoding", () => {
    it("refuses the nonce re-spelled (leading zeros, hex, sign) with 400 naming nonce, and the replay changes nothing", async () => {
      const body = await signed(alice, "SetBroker", { brokerId: "rule-market-maker" }, { nonce: 1796n });
      expect((await post("/set-broker", body)).statusCode).to.equal(200);
      const momentum = await signed(alice, "SetBroker", { brokerId: "rule-momentum" }, { nonce: 1796n });
      for (const nonce of ["01796", "001796", "0x704", "-1796", "1796.0", "1.796e3"]) {
        const r = await post("/set-broker", { ...momentum, nonce });
        expect(r.statusCode, nonce).to.equal(400);
        expect(r.json(), nonce).to.include({ error: "bad_request", field: "nonce" });
      }
      expect((await post("/set-broker", momentum)).json()).to.include({ error: "replayed_nonce", field: "nonce" });
      expect(getUser(k.db, alice.address)?.brokerId).to.equal("rule-market-maker");
    });

    it("refuses a replay with the account in another case, v as 0/1 or an upper-case signature with 401", async () => {
      const body = await signed(alice, "SetPrompt", { prompt: "buy low" });
      expect((await post("/set-prompt", body)).statusCode).to.equal(200);
      const sig = body.signature;
      for (const variant of [
        { ...body, account: body.account.toLowerCase() },
        { ...body, account: `0x${body.account.slice(2).toUpperCase()}` },
        { ...body, signature: `${sig.slice(0, 130)}0${Number.parseInt(sig.slice(130), 16) - 27}` },
        { ...body, signature: `0x${sig.slice(2).toUpperCase()}` },
      ]) {
        const r = await post("/set-prompt", variant);
        expect(r.statusCode, JSON.stringify(variant)).to.equal(401);
        expect(r.json()).to.include({ error: "replayed_nonce", field: "nonce" });
      }
    });

    it("refuses a high-s (malleated) signature with 401 naming signature and keeps the nonce unused", async () => {
      const body = await signed(alice, "SetPrompt", { prompt: "buy low" });
      const r = await post("/set-prompt", { ...body, signature: malleate(body.signature) });
      expect(r.statusCode).to.equal(401);
      expect(r.json()).to.include({ error: "high_s_signature", field: "signature" });
      expect(getUser(k.db, alice.address)).to.equal(undefined);
      expect((await post("/set-prompt", body)).statusCode).to.equal(200);
      expect((await post("/set-prompt", { ...body, signature: malleate(body.signature) })).json()).to.include({ error: "high_s_signature" });
    });

    it("refuses expiry and chain id that are not safe integers with 400 naming the field", async () => {
      const body = await signed(alice, "SetPrompt", { prompt: "buy low" });
      const raw = (json: string) => k.app.inject({ method: "POST", url: "/set-prompt", payload: json, headers: { "content-type": "application/json" } });
      const expiry = await raw(JSON.stringify(body).replace(/"expiry":\d+/, '"expiry":1e999'));
      expect(expiry.statusCode).to.equal(400);
      expect(expiry.json().field).to.equal("expiry");
      const chain = await raw(JSON.stringify({ ...body, chainId: 0 }).replace('"chainId":0', '"chainId":1e999'));
      expect(chain.statusCode).to.equal(400);
      expect(chain.json().field).to.equal("chainId");
      expect(getUser(k.db, alice.address)).to.equal(undefined);
    });

    it("refuses an admin request whose nonce has leading zeros with 400 naming nonce", async () => {
      const { account: _a, action: _b, ...body } = await signed(alice, "Admin", { action: "settle", sessionId: 1 });
      const r = await post("/admin/settle", { ...body, nonce: `0${body.nonce}` });
      expect(r.statusCode).to.equal(400);
      expect(r.json().field).to.equal("nonce");
    });
  });

  describe("numeric query and path parameters", () => {
    const bad = ["Infinity", "-Infinity", "1e999", "1e1", "-0", "0x10", "010", "1.0", "+5", " 5", "", "9007199254740993"];
    for (const [path, field] of [
      ["/api/books/PEPE-USDC?levels=", "levels"],
      ["/api/trades/PEPE-USDC?limit=", "limit"],
      ["/api/outcry?limit=", "limit"],
    ] as const) {
      it(`${path}… refuses anything but a decimal integer in range with 400 naming ${field}`, async () => {
        for (const v of bad) {
          const r = await k.app.inject(path + encodeURIComponent(v));
          expect(r.statusCode, v).to.equal(400);
          expect(r.json(), v).to.include({ error: "bad_request", field });
        }
        const repeated = await k.app.inject(`${path}5&${field}=6`);
        expect(repeated.statusCode).to.equal(400);
        expect(repeated.json().field).to.equal(field);
        expect((await k.app.inject(`${path}0`)).json().field).to.equal(field);
        expect((await k.app.inject(`${path}5`)).statusCode).to.equal(200);
        expect((await k.app.inject(path.slice(0, -field.length - 2))).statusCode).to.equal(200);
      });
    }
    it("refuses a session id that is not a decimal integer with 400 naming id", async () => {
      for (const v of ["0x1", "1e0", "-0", "Infinity", "01", "4294967296"]) {
        const r = await k.app.inject(`/api/sessions/${encodeURIComponent(v)}/settlement`);
        expect(r.statusCode, v).to.equal(400);
        expect(r.json(), v).to.include({ field: "id" });
      }
      expect((await k.app.inject("/api/sessions/1/settlement")).statusCode).to.equal(200);
    });
  });

  describe("content types", () => {
    it("serves every documented GET with the media type /docs gives it", async () => {
      putFillLog(k.db, 1, '{"type":"header"}\n{"type":"fill"}\n', "0xabc");
      const spec = (await k.app.inject("/docs/json")).json() as {
        paths: Record<string, { get?: { responses: Record<string, { content?: Record<string, unknown> }> } }>;
      };
      const urls: Record<string, string> = {
        "/api/session": "/api/session",
        "/api/books/{pair}": "/api/books/PEPE-USDC",
        "/api/trades/{pair}": "/api/trades/PEPE-USDC",
        "/api/outcry": "/api/outcry",
        "/api/quotes": "/api/quotes",
        "/api/leaderboard": "/api/leaderboard",
        "/api/top-prompts": "/api/top-prompts",
        "/api/brokers": "/api/brokers",
        "/api/accounts/{address}": `/api/accounts/${alice.address}`,
        "/api/accounts/{address}/withdrawal": `/api/accounts/${alice.address}/withdrawal?token=USDC`,
        "/api/sessions/{id}/fill-log": "/api/sessions/1/fill-log",
        "/api/sessions/{id}/settlement": "/api/sessions/1/settlement",
        "/api/eip712": "/api/eip712",
        "/healthz": "/healthz",
        "/metrics": "/metrics",
      };
      const documented = Object.keys(spec.paths).filter((p) => spec.paths[p]!.get !== undefined);
      expect(documented.sort()).to.deep.equal(Object.keys(urls).sort());
      for (const [path, url] of Object.entries(urls)) {
        const types = Object.keys(spec.paths[path]!.get!.responses["200"]!.content ?? {});
        expect(types, path).to.have.length(1);
        const r = await k.app.inject(url);
        expect(r.statusCode, url).to.equal(200);
        expect(String(r.headers["content-type"]).split(";")[0], url).to.equal(types[0]);
      }
    });

    it("serves the fill log as JSON Lines, byte for byte, and /metrics as Prometheus text", async () => {
      const body = '{"type":"header"}\n{"type":"fill"}\n';
      putFillLog(k.db, 1, body, "0xabc");
      const log = await k.app.inject("/api/sessions/1/fill-log");
      expect(log.headers["content-type"]).to.equal("application/x-ndjson; charset=utf-8");
      expect(log.headers["x-fill-log-hash"]).to.equal("0xabc");
      expect(log.body).to.equal(body);
      const m = await k.app.inject("/metrics");
      expect(m.headers["content-type"]).to.equal("text/plain; version=0.0.4; charset=utf-8");
    });
  });

  describe("malformed bodies", () => {
    it("400 for invalid JSON", async () => {
      const r = await k.app.inject({ method: "POST", url: "/set-prompt", payload: "{not json", headers: { "content-type": "application/json" } });
      expect(r.statusCode).to.equal(400);
      expect(r.json()).to.include({ error: "malformed_json", field: "body" });
    });
    it("400 naming an unknown field", async () => {
      const r = await post("/set-prompt", { ...(await signed(alice, "SetPrompt", { prompt: "buy low" })), extra: 1 });
      expect(r.statusCode).to.equal(400);
      expect(r.json().field).to.equal("extra");
    });
    it("400 naming a bad account address", async () => {
      const r = await post("/set-prompt", { ...(await signed(alice, "SetPrompt", { prompt: "buy low" })), account: "0x1234" });
      expect(r.statusCode).to.equal(400);
      expect(r.json().field).to.equal("account");
    });
    it("400 naming the bad pair entry", async () => {
      const r = await post("/set-pairs", await signed(alice, "SetPairs", { pairs: ["PEPE/USDC", "pepe"] }));
      expect(r.statusCode).to.equal(400);
      expect(r.json().field).to.equal("pairs.1");
    });
    it("400 for an empty prompt", async () => {
      const r = await post("/set-prompt", await signed(alice, "SetPrompt", { prompt: "" }));
      expect(r.statusCode).to.equal(400);
      expect(r.json().field).to.equal("prompt");
    });
    it("400 for a zero withdrawal amount", async () => {
      const r = await post("/withdrawal-permit", await signed(alice, "WithdrawalRequest", { token: FAKE_DEPLOYMENT.tokens[0]!.address, amount: "0" }));
      expect(r.statusCode).to.equal(400);
      expect(r.json().field).to.equal("amount");
    });
  });

  describe("phases", () => {
    it("sets pairs in pre-session and refuses unknown pairs naming the entry", async () => {
      const ok = await post("/set-pairs", await signed(alice, "SetPairs", { pairs: ["PEPE/USDC"] }));
      expect(ok.statusCode, ok.body).to.equal(200);
      expect(ok.json().settings.pairs).to.deep.equal(["PEPE/USDC"]);
      const bad = await post("/set-pairs", await signed(alice, "SetPairs", { pairs: ["PEPE/USDC", "DOGE/USDC"] }));
      expect(bad.statusCode).to.equal(400);
      expect(bad.json()).to.include({ error: "unknown_pair", field: "pairs.1" });
    });
    it("refuses a re-prompt outside trading with 409", async () => {
      const r = await post("/reprompt", await signed(alice, "Reprompt", { prompt: "be bold" }));
      expect(r.statusCode).to.equal(409);
      expect(r.json().error).to.equal("wrong_phase");
    });
    it("refuses a withdrawal permit outside a session with 409 and says to withdraw directly", async () => {
      const r = await post("/withdrawal-permit", await signed(alice, "WithdrawalRequest", { token: FAKE_DEPLOYMENT.tokens[0]!.address, amount: "5" }));
      expect(r.statusCode).to.equal(409);
      expect(r.json().message).to.match(/withdraw directly/);
    });
  });

  describe("public reads", () => {
    it("GET /api/session shows the phase, clock and pair units", async () => {
      const r = await k.app.inject("/api/session");
      expect(r.statusCode).to.equal(200);
      const s = r.json();
      expect(s).to.include({ id: 1, phase: "pre_session", chainId: 31337 });
      expect(s.pairs.map((p: { symbol: string }) => p.symbol)).to.deep.equal(["PEPE/USDC", "WIF/USDC"]);
      expect(s.pairs[0]).to.include({ referencePrice: "0.00001", quotePerTickLot: 100, referencePriceTicks: 10000 });
      expect(s.phaseEndsAt).to.be.greaterThan(s.serverTime);
    });
    it("books: empty before trading, 404 for an unknown pair", async () => {
      const r = await k.app.inject("/api/books/PEPE-USDC?levels=5");
      expect(r.statusCode).to.equal(200);
      expect(r.json()).to.include({ pair: "PEPE/USDC" });
      expect((await k.app.inject("/api/books/DOGE-USDC")).statusCode).to.equal(404);
      const bad = await k.app.inject("/api/books/PEPE-USDC?levels=1000");
      expect(bad.statusCode).to.equal(400);
      expect(bad.json().field).to.equal("levels");
    });
    it("accounts never show the prompt", async () => {
      await post("/set-prompt", await signed(alice, "SetPrompt", { prompt: "secret sauce" }));
      const r = await k.app.inject(`/api/accounts/${alice.address}`);
      expect(r.statusCode).to.equal(200);
      expect(r.body).to.not.include("secret sauce");
      expect(r.json()).to.include({ accountId: 3 });
    });
    it("brokers catalogue lists built-in brokers as available", async () => {
      const r = await k.app.inject("/api/brokers");
      const rule = r.json().filter((b: { kind: string }) => b.kind === "rule");
      expect(rule.length).to.be.greaterThan(0);
      expect(rule.every((b: { available: boolean }) => b.available)).to.equal(true);
      expect(r.body).to.not.match(/apiKey/);
    });
    it("healthz, metrics and docs", async () => {
      const h = await k.app.inject("/healthz");
      expect(h.statusCode).to.equal(200);
      expect(h.json()).to.include({ ok: true, phase: "pre_session" });
      const m = await k.app.inject("/metrics");
      expect(m.headers["content-type"]).to.match(/text\/plain/);
      expect(m.body).to.match(/# TYPE cme_tick_lag_ms histogram/);
      expect(m.body).to.match(/cme_session_phase\{phase="pre_session"\} 1/);
      const d = await k.app.inject("/docs/json");
      expect(d.statusCode).to.equal(200);
      expect(Object.keys(d.json().paths)).to.include.members(["/set-broker", "/api/session", "/api/books/{pair}", "/admin/settle"]);
      expect((await k.app.inject("/docs")).statusCode).to.be.oneOf([200, 302]);
    });
    it("healthz is 503 and names the part that stopped, then ok again once it progresses", async () => {
      const settlement = k.health.component("settlement");
      settlement.problem("settlement of session 7 stopped: the RPC refused connections");
      const bad = await k.app.inject("/healthz");
      expect(bad.statusCode).to.equal(503);
      expect(bad.json().ok).to.equal(false);
      expect(bad.json().components.settlement).to.include({ ok: false, reason: "settlement of session 7 stopped: the RPC refused connections" });
      settlement.problem(null);
      settlement.progress();
      const good = await k.app.inject("/healthz");
      expect(good.statusCode, good.body).to.equal(200);
      expect(good.json().components.settlement.ok).to.equal(true);
    });
  });

  describe("the pit page", () => {
    it("serves keeper/web at / with content types, and nothing outside it", async () => {
      const index = await k.app.inject("/");
      expect(index.statusCode).to.equal(200);
      expect(index.headers["content-type"]).to.match(/text\/html/);
      expect((await k.app.inject("/../package.json")).statusCode).to.equal(404);
      expect((await k.app.inject("/%2e%2e/package.json")).statusCode).to.equal(404);
      expect((await k.app.inject("/no-such-file.js")).statusCode).to.equal(404);
    });
  });

  describe("POST /admin/settle", () => {
    it("refuses a signature that is not the settler's with 401", async () => {
      const { account: _a, action: _b, ...body } = await signed(alice, "Admin", { action: "settle", sessionId: 1 });
      const r = await post("/admin/settle", body);
      expect(r.statusCode).to.equal(401);
      expect(r.json().error).to.equal("wrong_signer");
    });
  });
});
