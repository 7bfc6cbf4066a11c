// A user's own requests for quote over signed HTTP (POST /trade/*, app.inject): locks, whitelists,
// minFill, the remainder, and a 400 naming every bad field. The pit moves only when the test says.
import { expect } from "chai";
import type { Keeper } from "../../keeper/keeper.ts";
import type { LoopFactory } from "../../keeper/session/runner.ts";
import { isNonceUsed } from "../../keeper/store/nonces.ts";
import { RFQ_MAX_WHITELIST } from "../../keeper/core/commands.ts";
import { FAKE_DEPLOYMENT, offlineKeeper, signedTrade, wallet, type TradeFields } from "../support/keeper.ts";

const until = async (cond: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** No brokers: nothing quotes or trades but the test. */
const idleLoop: LoopFactory = () => ({ start() {}, stop: async () => {}, reprompt() {} });
/** PEPE/USDC's reference price in ticks. */
const REF = 10_000;

interface QuotesView {
  requests: { requestId: number; accountId: number; whitelisted: boolean; lockedBy: number | null; minFill: number; remainder: string; remaining: number; quotes: { quoteId: number; quoter: number }[] }[];
}

describe("POST /trade/* (requests for quote by the user)", function () {
  this.timeout(30_000);
  let k: Keeper;
  const alice = wallet(); // account 10: asks
  const bob = wallet(); // 11: quotes
  const carol = wallet(); // 12: quotes
  const dave = wallet(); // no vault account

  before(async () => {
    k = await offlineKeeper({ preSessionSec: 1, tradingSec: 3600 }, { createLoop: idleLoop });
    const [usdc, pepe] = FAKE_DEPLOYMENT.tokens;
    k.runner.applyVaultEvents(
      [alice, bob, carol].flatMap((u, i) => [
        { kind: "account" as const, block: 2, accountId: 10 + i, address: u.address },
        { kind: "deposit" as const, block: 2, id: `u${i}`, address: u.address, token: usdc!.address, amount: 10_000_000_000n, balance: 10_000_000_000n },
        { kind: "deposit" as const, block: 2, id: `p${i}`, address: u.address, token: pepe!.address, amount: 10n ** 25n, balance: 10n ** 25n },
      ]),
      2n,
    );
    await k.start();
    await until(() => k.runner.current.phase === "trading");
  });
  after(async () => k?.stop());

  const post = async (action: string, body: object) => {
    const r = await k.app.inject({ method: "POST", url: `/trade/${action}`, payload: body });
    return { status: r.statusCode, json: r.json() as Record<string, unknown> & { seq: number; events: string[]; error: string; field: string } };
  };
  const act = async (who: typeof alice, action: Parameters<typeof signedTrade>[1], fields: TradeFields) => post(action, await signedTrade(who, action, fields));
  const quotes = async (account?: string) => (await k.app.inject(account === undefined ? "/api/quotes" : `/api/quotes?account=${account}`)).json() as QuotesView;
  const ask = async (fields: TradeFields) => {
    const r = await act(alice, "request", { pair: "PEPE/USDC", side: "buy", price: 0, ttlSec: 120, ...fields });
    expect(r.status, JSON.stringify(r.json)).to.equal(200);
    return r.json.seq;
  };
  const quote = async (who: typeof alice, requestId: number, price: number, size: number) => act(who, "quote", { requestId, price, size, ttlSec: 120 });

  it("publishes the TradeAction struct with whitelist, minFill and remainder, and the lock and unlock routes", async () => {
    const body = (await k.app.inject("/api/eip712")).json() as { types: Record<string, { name: string; type: string }[]>; primaryTypes: Record<string, string> };
    expect(body.types.TradeAction!.map((f) => `${f.type} ${f.name}`)).to.include.members(["address[] whitelist", "uint256 minFill", "string remainder"]);
    expect(body.primaryTypes).to.include({ "/trade/lock": "TradeAction", "/trade/unlock": "TradeAction" });
  });

  it("lock: while a quoter holds it the requester cannot take another's quote; a replayed lock is 401; once unlocked it can", async () => {
    const requestId = await ask({ size: 4 });
    const fromBob = await quote(bob, requestId, REF + 2, 4);
    const fromCarol = await quote(carol, requestId, REF + 1, 4);
    expect([fromBob.status, fromCarol.status]).to.deep.equal([200, 200]);

    const lockBody = await signedTrade(bob, "lock", { requestId });
    const locked = await post("lock", lockBody);
    expect(locked.status, JSON.stringify(locked.json)).to.equal(200);
    expect(locked.json.events).to.deep.equal(["rfq_locked"]);
    const replay = await post("lock", lockBody);
    expect(replay.status).to.equal(401);
    expect(replay.json).to.include({ error: "replayed_nonce", field: "nonce" });
    expect((await quotes()).requests.find((r) => r.requestId === requestId)).to.include({ lockedBy: 11 });

    // Nobody else may lock, nor unlock what they do not hold; the requester may not take carol's quote.
    expect((await act(carol, "lock", { requestId })).json).to.include({ error: "rfq_locked" });
    const notHeld = await act(carol, "unlock", { requestId });
    expect(notHeld.status).to.equal(409);
    expect(notHeld.json).to.include({ error: "rfq_not_locked" });
    const blocked = await act(alice, "accept", { requestId, quoteId: fromCarol.json.seq, size: 0, price: 0 });
    expect(blocked.status).to.equal(409);
    expect(blocked.json).to.include({ error: "rfq_locked" });

    const unlocked = await act(bob, "unlock", { requestId });
    expect(unlocked.status, JSON.stringify(unlocked.json)).to.equal(200);
    expect(unlocked.json.events).to.deep.equal(["rfq_unlocked"]);
    expect((await quotes()).requests.find((r) => r.requestId === requestId)).to.include({ lockedBy: null });
    const taken = await act(alice, "accept", { requestId, quoteId: fromCarol.json.seq, size: 0, price: 0 });
    expect(taken.status, JSON.stringify(taken.json)).to.equal(200);
    expect(taken.json.events).to.include.members(["rfq_accepted", "fill"]);
  });

  it("whitelist: a wallet left out neither sees the request in GET /api/quotes?account= nor may quote it; a listed one does both", async () => {
    // Addresses in any case: the struct is hashed over the address, not its spelling.
    const body = await signedTrade(alice, "request", { pair: "PEPE/USDC", side: "sell", size: 3, price: 0, ttlSec: 120, whitelist: [bob.address.toLowerCase()] });
    const made = await post("request", { ...body, whitelist: [`0x${bob.address.slice(2).toUpperCase()}`] });
    expect(made.status, JSON.stringify(made.json)).to.equal(200);
    const requestId = made.json.seq;
    expect(k.runner.pit!.reads.rfqRequest(requestId)).to.deep.include({ whitelist: [11] });

    const ids = async (account: string) => (await quotes(account)).requests.map((r) => r.requestId);
    expect(await ids(carol.address)).to.not.include(requestId);
    expect(await ids(dave.address)).to.not.include(requestId);
    expect(await ids(bob.address)).to.include(requestId);
    expect(await ids(alice.address.toLowerCase())).to.include(requestId);
    const seen = (await quotes(bob.address)).requests.find((r) => r.requestId === requestId)!;
    expect(seen).to.include({ whitelisted: true, accountId: 10 });
    expect(seen).to.not.have.property("whitelist");

    const refused = await quote(carol, requestId, REF - 1, 3);
    expect(refused.status).to.equal(409);
    expect(refused.json).to.include({ error: "rfq_not_invited" });
    expect((await quote(bob, requestId, REF - 1, 3)).status).to.equal(200);
    expect((await act(alice, "cancel", { requestId })).status).to.equal(200);
  });

  it("minFill: quotes and accepts below it are refused; remainder drop: what an accept leaves ends with it", async () => {
    const requestId = await ask({ size: 6, minFill: 3, remainder: "drop" });
    expect((await quotes()).requests.find((r) => r.requestId === requestId)).to.include({ minFill: 3, remainder: "drop", remaining: 6 });
    const small = await quote(bob, requestId, REF + 1, 2);
    expect(small.status).to.equal(409);
    expect(small.json).to.include({ error: "rfq_below_min_fill" });
    expect((await quote(bob, requestId, REF + 1, 4)).status).to.equal(200);
    const under = await act(alice, "accept", { requestId, quoteId: 0, size: 2, price: 0 });
    expect(under.status).to.equal(409);
    expect(under.json).to.include({ error: "rfq_below_min_fill" });

    const taken = await act(alice, "accept", { requestId, quoteId: 0, size: 0, price: 0 });
    expect(taken.status, JSON.stringify(taken.json)).to.equal(200);
    expect(taken.json.events).to.include.members(["rfq_accepted", "fill"]);
    // 4 of 6 traded; the 2 left are dropped, not kept open.
    expect(k.runner.pit!.reads.rfqRequest(requestId)).to.equal(null);
    expect((await quotes()).requests.map((r) => r.requestId)).to.not.include(requestId);
  });

  it("remainder keep: what an accept leaves stays open", async () => {
    const requestId = await ask({ size: 5, remainder: "keep" });
    expect((await quote(carol, requestId, REF + 1, 2)).status).to.equal(200);
    expect((await act(alice, "accept", { requestId, quoteId: 0, size: 0, price: 0 })).status).to.equal(200);
    expect((await quotes()).requests.find((r) => r.requestId === requestId)).to.include({ remaining: 3, minFill: 1 });
    expect((await act(alice, "cancel", { requestId })).status).to.equal(200);
  });

  describe("a 400 naming each bad field", () => {
    const request = { pair: "PEPE/USDC", side: "buy", size: 4, price: 0, ttlSec: 60, remainder: "keep" };
    const expect400 = async (action: string, body: object, field: string, error = "bad_request") => {
      const r = await post(action, body);
      expect(r.status, `${action} ${field}: ${JSON.stringify(r.json)}`).to.equal(400);
      expect(r.json, field).to.include({ error, field });
      return r;
    };

    it("request: whitelist, minFill, remainder as the schema sees them", async () => {
      const signedRequest = async (over: Record<string, unknown>) => ({ ...(await signedTrade(alice, "request", request)), ...over });
      await expect400("request", await signedRequest({ whitelist: ["0x1234"] }), "whitelist.0");
      await expect400("request", await signedRequest({ whitelist: [bob.address, 7] }), "whitelist.1");
      await expect400("request", await signedRequest({ whitelist: Array.from({ length: RFQ_MAX_WHITELIST + 1 }, () => bob.address) }), "whitelist");
      await expect400("request", await signedRequest({ minFill: -1 }), "minFill");
      await expect400("request", await signedRequest({ minFill: 1.5 }), "minFill");
      await expect400("request", await signedRequest({ minFill: "3" + "0".repeat(12) }), "minFill");
      await expect400("request", await signedRequest({ remainder: "half" }), "remainder");
      const { remainder: _r, ...without } = await signedRequest({});
      await expect400("request", without, "remainder");
    });

    it("request: a whitelisted wallet without a vault account, the requester itself, a minFill beyond the size, without using the nonce", async () => {
      const unknown = await signedTrade(alice, "request", { ...request, whitelist: [bob.address, dave.address] });
      const r = await expect400("request", unknown, "whitelist.1", "unknown_account");
      expect(r.json.message).to.contain(dave.address);
      expect(isNonceUsed(k.db, alice.address, unknown.nonce as string)).to.equal(false);
      await expect400("request", await signedTrade(alice, "request", { ...request, whitelist: [alice.address] }), "whitelist.0", "own_account");
      await expect400("request", await signedTrade(alice, "request", { ...request, minFill: 5 }), "minFill", "bad_min_fill");
      // Signed and valid, the same fields pass.
      const good = await post("request", await signedTrade(alice, "request", { ...request, whitelist: [bob.address, carol.address], minFill: 4 }));
      expect(good.status, JSON.stringify(good.json)).to.equal(200);
      expect(k.runner.pit!.reads.rfqRequest(good.json.seq)).to.deep.include({ whitelist: [11, 12], minFill: 4 });
      expect((await act(alice, "cancel", { requestId: good.json.seq })).status).to.equal(200);
    });

    for (const action of ["lock", "unlock"] as const) {
      it(`${action}: requestId, and no field of another action`, async () => {
        const body = await signedTrade(bob, action, { requestId: 1 });
        await expect400(action, { ...body, requestId: 0 }, "requestId");
        await expect400(action, { ...body, requestId: 1.5 }, "requestId");
        const { requestId: _id, ...without } = body;
        await expect400(action, without, "requestId");
        await expect400(action, { ...body, pair: "PEPE/USDC" }, "pair");
        await expect400(action, { ...body, whitelist: [] }, "whitelist");
        // Well formed, a request that is not open is the pit's refusal.
        const r = await post(action, body);
        expect(r.status).to.equal(409);
        expect(r.json).to.include({ error: "unknown_request" });
      });
    }

    it("a field changed after signing is 401, like any other action", async () => {
      const body = await signedTrade(alice, "request", { ...request, whitelist: [bob.address], minFill: 2, remainder: "drop" });
      for (const over of [{ whitelist: [carol.address] }, { whitelist: [] }, { minFill: 3 }, { remainder: "keep" }]) {
        const r = await post("request", { ...body, ...over });
        expect(r.status, JSON.stringify(over)).to.equal(401);
        expect(r.json).to.include({ error: "wrong_signer" });
      }
      const lock = await signedTrade(bob, "lock", { requestId: 5 });
      expect((await post("unlock", lock)).status, "a lock's signature is not an unlock's").to.equal(401);
    });

    it("GET /api/quotes?account= takes only an address", async () => {
      const r = await k.app.inject("/api/quotes?account=bob");
      expect(r.statusCode).to.equal(400);
      expect(r.json()).to.include({ field: "account" });
    });
  });
});
