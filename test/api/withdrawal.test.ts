// GET /api/accounts/:address/withdrawal through app.inject over a keeper without a chain: the
// route, the amount available now and why, by the keeper's phase; 400 naming the field for bad
// input. (On a real vault, every phase: test/keeper/withdraw.test.ts.)
import { expect } from "chai";
import type { Keeper } from "../../keeper/keeper.ts";
import { listen } from "../../keeper/api/server.ts";
import { FAKE_DEPLOYMENT, offlineKeeper, wallet } from "../support/keeper.ts";

const until = async (cond: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 25));
  }
};

describe("GET /api/accounts/:address/withdrawal", function () {
  this.timeout(30_000);
  let k: Keeper;
  const alice = wallet();
  const [usdc, pepe] = FAKE_DEPLOYMENT.tokens;

  beforeEach(async () => {
    k = await offlineKeeper({ preSessionSec: 1, tradingSec: 3, closingSec: 2 });
    k.runner.applyVaultEvents(
      [
        { kind: "account", block: 2, accountId: 3, address: alice.address },
        { kind: "deposit", block: 2, id: "a", address: alice.address, token: usdc!.address, amount: 500_000_000n, balance: 500_000_000n },
      ],
      2n,
    );
    await k.start();
  });
  afterEach(async () => k.stop());

  const get = (url: string) => k.app.inject(url);

  it("between sessions: vault.withdraw, all of it", async () => {
    const r = await get(`/api/accounts/${alice.address}/withdrawal?token=USDC`);
    expect(r.statusCode, r.body).to.equal(200);
    expect(r.json()).to.deep.equal({
      account: alice.address,
      token: "USDC",
      tokenAddress: usdc!.address,
      decimals: 6,
      sessionId: 1,
      phase: "pre_session",
      vaultPhase: null,
      route: "direct",
      code: "no_session",
      available: "500000000",
      balance: "500000000",
      reason: "no session is running, so all of it, directly from the vault",
    });
    // The token by address or in any case; an account that never deposited has nothing.
    expect((await get(`/api/accounts/${alice.address}/withdrawal?token=${usdc!.address.toLowerCase()}`)).json()).to.include({ token: "USDC", available: "500000000" });
    expect((await get(`/api/accounts/${alice.address}/withdrawal?token=usdc`)).json()).to.include({ token: "USDC" });
    expect((await get(`/api/accounts/${alice.address}/withdrawal?token=PEPE`)).json()).to.include({ token: "PEPE", tokenAddress: pepe!.address, available: "0" });
    expect((await get(`/api/accounts/${wallet().address}/withdrawal?token=USDC`)).json()).to.include({ route: "direct", available: "0" });
  });

  it("trading and closing: a permit for what the pit allows", async () => {
    await until(() => k.runner.current.phase === "trading", 5_000);
    const trading = (await get(`/api/accounts/${alice.address}/withdrawal?token=USDC`)).json();
    expect(trading).to.include({ phase: "trading", route: "permit", code: "trading", available: "500000000", reason: "during trading, with the keeper's permit" });
    await until(() => k.runner.current.phase === "closing", 6_000);
    const closing = (await get(`/api/accounts/${alice.address}/withdrawal?token=USDC`)).json();
    expect(closing).to.include({ phase: "closing", route: "permit", code: "closing", available: "500000000" });
    expect(closing.reason).to.equal("closing, with the keeper's permit until settlement begins");
  });

  it("answers the same from the API thread (as production serves it)", async () => {
    const base = await listen(k);
    for (const path of [`/api/accounts/${alice.address}/withdrawal?token=USDC`, `/api/accounts/${alice.address}/withdrawal?token=DOGE`]) {
      const r = await fetch(base + path);
      const local = await get(path);
      expect([r.status, await r.json()], path).to.deep.equal([local.statusCode, local.json()]);
    }
  });

  it("refuses bad input with 400 naming the field", async () => {
    for (const [url, field, error] of [
      [`/api/accounts/${alice.address}/withdrawal`, "token", "bad_request"],
      [`/api/accounts/${alice.address}/withdrawal?token=US%20DC`, "token", "bad_request"],
      [`/api/accounts/${alice.address}/withdrawal?token=0x12345678901234567890`, "token", "bad_request"],
      [`/api/accounts/${alice.address}/withdrawal?token=0x1234`, "token", "unknown_token"],
      [`/api/accounts/${alice.address}/withdrawal?token=DOGE`, "token", "unknown_token"],
      [`/api/accounts/${alice.address}/withdrawal?token=0x000000000000000000000000000000000000dEaD`, "token", "unknown_token"],
      [`/api/accounts/0x1234/withdrawal?token=USDC`, "address", "bad_request"],
      [`/api/accounts/${alice.address}/withdrawal?token=USDC&amount=1`, "amount", "bad_request"],
    ] as const) {
      const r = await get(url);
      expect(r.statusCode, url).to.equal(400);
      expect(r.json(), url).to.include({ error, field });
    }
    const unknown = (await get(`/api/accounts/${alice.address}/withdrawal?token=DOGE`)).json();
    expect(unknown.message).to.equal("DOGE is not listed (listed: USDC, PEPE, WIF)");
  });
});
