// End to end on a real Hardhat node: wallets deposit on-chain, configure brokers with signed
// requests over real HTTP, a session trades (built-in brokers plus an AI broker on a local
// OpenAI-compatible endpoint), a withdrawal permit is signed and used mid-session, a deposit is
// credited mid-session, the session closes, settles in batches and finalizes. Every user's vault
// balance then equals the keeper's final inventory and every token's deltas sum to zero.
import { expect } from "chai";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import pino from "pino";
import { createWalletClient, http, type Address } from "viem";
import { hardhat } from "viem/chains";
import { createKeeper, type Keeper } from "../../keeper/keeper.ts";
import { loadConfig } from "../../keeper/config.ts";
import { vaultAbi } from "../../keeper/chain/vault-abi.ts";
import { getSettlement } from "../../keeper/settlement/store.ts";
import { parseDeployment } from "../../keeper/chain/deployment.ts";
import { deploy, mintAndDeposit, startNode, user, vaultBalance, type Node } from "../support/chain.ts";
import { startFakeModel } from "../support/fake-model.ts";
import { signed } from "../support/keeper.ts";

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms: number) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

describe("keeper end to end on a Hardhat node", function () {
  this.timeout(240_000);
  let node: Node;
  let keeper: Keeper | undefined;
  let model: Awaited<ReturnType<typeof startFakeModel>>;
  after(async () => {
    await keeper?.stop();
    await model?.close();
    node?.stop();
  });

  it("deposits, signed configuration, trading, permit, settlement and finalize agree with the vault", async () => {
    node = await startNode();
    model = await startFakeModel();
    const { record } = await deploy(node.url);
    const users = [4, 5, 6, 7, 8].map(user);
    const taker = users[4]!;
    for (const [i, u] of users.entries()) {
      await mintAndDeposit(node.url, record, u, i === 4 ? { USDC: 5_000_000_000n } : { USDC: 10_000_000_000n, PEPE: 3n * 10n ** 24n, WIF: 3n * 10n ** 19n });
    }
    const config = loadConfig(
      {},
      {
        rpcUrl: node.url,
        dbPath: join(mkdtempSync(join(tmpdir(), "cme-e2e-")), "keeper.sqlite"),
        port: 0,
        logLevel: "silent",
        preSessionSec: 4,
        tradingSec: 10,
        closingSec: 1,
        tickMs: 250,
        confirmations: 0,
        chainPollMs: 100,
        batchEntries: 4,
      },
    );
    keeper = await createKeeper(config, {
      deployment: parseDeployment(record),
      env: { CME_LOCAL_BASE_URL: model.url },
      logger: pino({ level: "silent" }),
    });
    await keeper.start();
    const base = await keeper.app.listen({ host: "127.0.0.1", port: 0 });
    void (keeper.app.server.address() as AddressInfo);
    const post = async (path: string, body: unknown) => {
      const r = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    const vault = record.vault as Address;
    await until("deposits seen", async () => {
      const r = await fetch(`${base}/api/accounts/${taker.address}`);
      return ((await r.json()) as { accountId: number | null }).accountId !== null;
    }, 20_000);

    for (const [i, u] of users.entries()) {
      const brokerId = i === 4 ? "local-llm" : "rule-market-maker";
      const r = await post("/set-broker", await signed(u, "SetBroker", { brokerId }, { vault }));
      expect(r.status, JSON.stringify(r.json)).to.equal(200);
      const p = await post("/set-prompt", await signed(u, "SetPrompt", { prompt: "spread 2 ticks, size 3, risk limit 100" }, { vault }));
      expect(p.status).to.equal(200);
    }
    await until("trading", () => keeper!.runner.current.phase === "trading", 20_000);
    const sessionId = keeper.runner.current.id;
    const pit = keeper.runner.port!;
    const session = keeper.runner.pit!;
    const takerId = keeper.runner.participants.find((p) => p.address === taker.address.toLowerCase())!.accountId;

    // A withdrawal permit for a maker with no liabilities, used on-chain mid-session.
    const maker = users[0]!;
    const usdc = record.tokens.find((t) => t.symbol === "USDC")!.address as Address;
    const permit = await post("/withdrawal-permit", await signed(maker, "WithdrawalRequest", { token: usdc, amount: "1000000" }, { vault }));
    expect(permit.status, JSON.stringify(permit.json)).to.equal(200);
    const pm = permit.json.permit as { amount: string; nonce: string; deadline: number; signature: `0x${string}` };
    const w = createWalletClient({ chain: hardhat, transport: http(node.url), account: maker });
    const tx = await w.writeContract({
      address: vault,
      abi: vaultAbi,
      functionName: "withdrawWithPermit",
      args: [usdc, BigInt(pm.amount), maker.address, BigInt(pm.nonce), BigInt(pm.deadline), pm.signature],
    });
    expect((await node.client.waitForTransactionReceipt({ hash: tx })).status).to.equal("success");

    // A mid-session deposit is credited to the pit.
    const depositorId = keeper.runner.participants.find((p) => p.address === users[1]!.address.toLowerCase())!.accountId;
    const usdcOf = (id: number) => pit.account(id).inventory.find((b) => b.asset === 0)!.amount;
    const depositsBefore = [...keeper.runner.journal.read<{ type: string }>(sessionId)].filter((e) => e.command.type === "deposit").length;
    await mintAndDeposit(node.url, record, users[1]!, { USDC: 7_000_000n });
    // Trading moves the balance too, so look for the credit in the journal's effect: the deposit
    // command lands and the API's on-chain figure follows the vault.
    await until("in-session deposit", async () => {
      const r = await keeper!.app.inject(`/api/accounts/${users[1]!.address}`);
      const credited = [...keeper!.runner.journal.read<{ type: string; user: number; amount: bigint }>(sessionId)].filter((e) => e.command.type === "deposit");
      const last = credited[credited.length - 1]!.command;
      return BigInt(r.json().inventory[0].onChain) === 10_000_000_000n + 7_000_000n && credited.length === depositsBefore + 1 && last.user === depositorId && BigInt(last.amount) === 7_000_000n;
    }, 10_000);
    void usdcOf;

    // The AI taker sells what it does not hold: with liabilities, no permit, and nothing changes.
    await until("taker liability", () => pit.account(takerId).inventory.some((b) => b.amount < 0n), 20_000);
    const withdrawals = () => [...keeper!.runner.journal.read<{ type: string; user: number }>(sessionId)].filter((e) => e.command.type === "withdraw" && e.command.user === takerId).length;
    const refused = await post("/withdrawal-permit", await signed(taker, "WithdrawalRequest", { token: usdc, amount: "1" }, { vault }));
    expect(refused.status).to.equal(409);
    expect(refused.json.error).to.equal("has_liabilities");
    expect(refused.json.field).to.equal("account");
    expect(withdrawals()).to.equal(0);

    await until("finalized", async () => (await keeper!.service.settlement(sessionId) as { status: string }).status === "finalized", 60_000);
    const settlement = session.reads.closeOut()!;
    const plan = getSettlement(keeper.db, sessionId)!.plan;
    expect(plan.batches.length).to.be.greaterThan(1);
    expect(model.calls()).to.be.greaterThan(0);

    for (const t of record.tokens) {
      const net = await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "sessionNet", args: [sessionId, t.address as Address] });
      expect(net, `${t.symbol} net`).to.equal(0n);
    }
    const accounts = [...users.map((u) => u.address), record.treasury as Address];
    for (const a of accounts) {
      const id = (await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "accountIdOf", args: [a] })) as number;
      for (const t of record.tokens.filter((x) => keeper!.runner.market.engine.assets.some((e) => e.id === x.index))) {
        const onChain = await vaultBalance(node.client, record, a, t.symbol);
        const final = settlement.balances.find((b) => b.user === id && b.asset === t.index)?.amount ?? 0n;
        expect(onChain, `${a} ${t.symbol}`).to.equal(final);
      }
    }
    // The settler's admin route reports (and would resume) the settlement; anyone else is refused.
    const settler = user(1);
    const admin = await signed(settler, "Admin", { action: "settle", sessionId }, { vault });
    const { account: _a, action: _b, ...adminBody } = admin;
    const settled = await post("/admin/settle", adminBody);
    expect(settled.status, JSON.stringify(settled.json)).to.equal(200);
    expect(settled.json).to.include({ status: "finalized", sessionId });
    const published = await fetch(`${base}/api/sessions/${sessionId}/fill-log`);
    expect(published.status).to.equal(200);
    expect(published.headers.get("x-fill-log-hash")).to.equal(plan.fillLogHash);
  });
});
