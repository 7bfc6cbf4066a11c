// Withdrawals in every phase, end to end on a Hardhat node, through `withdraw()` of
// scripts/withdraw.ts (what `npm run withdraw` runs): the keeper's answer over HTTP
// (GET /api/accounts/:address/withdrawal), its permit when one is needed, the transaction.
//   pre-session      vault.withdraw
//   trading, closing the keeper's permit (reserved in the pit, journaled), vault.withdrawWithPermit
//   settling         nothing while the account's delta is not posted (DeltaNotPosted), then
//                    vault.withdraw up to withdrawable(): the chain's automine is paused during
//                    closing and blocks are mined one at a time, so each state is seen for certain
//   after finalize   vault.withdraw, all of it
//   a voided session (the guardian's veto while trading): every withdrawal stands, and the vault's
//                    balances are the keeper's ledger's.
import { expect } from "chai";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { BaseError, ContractFunctionRevertedError, createPublicClient, createWalletClient, http, type Address, type PublicClient } from "viem";
import type { HDAccount } from "viem/accounts";
import { hardhat } from "viem/chains";
import { createKeeper, type Keeper } from "../../keeper/keeper.ts";
import { loadConfig } from "../../keeper/config.ts";
import { vaultAbi } from "../../keeper/chain/vault-abi.ts";
import { parseDeployment } from "../../keeper/chain/deployment.ts";
import type { DeploymentRecord } from "../../keeper/chain/deploy.ts";
import { getSettlement } from "../../keeper/settlement/store.ts";
import { decodeEntries } from "../../keeper/settlement/batches.ts";
import { readOnChainSession } from "../../keeper/settlement/submit.ts";
import { deploy, mintAndDeposit, startNode, user, vaultBalance, type Node } from "../support/chain.ts";
import { signed } from "../support/keeper.ts";
import { withdraw, type WithdrawOutcome, type WithdrawRequest } from "../../scripts/withdraw.ts";

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms: number) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

const USDC = 1_000_000n;

describe("withdrawals in every phase, end to end on a Hardhat node", function () {
  this.timeout(300_000);
  let node: Node;
  let keeper: Keeper | undefined;
  let record: DeploymentRecord;
  let base: string;
  let pc: PublicClient;
  let usdc: Address;
  let pepe: Address;
  let vault: Address;
  /** W withdraws through the first session (and trades once); V through the voided one; M1, M2 make markets. */
  const W = user(4);
  const M1 = user(5);
  const M2 = user(6);
  const V = user(7);
  const GUARDIAN = user(19);
  let wId: number;

  const rpc = (method: string, params: unknown[] = []) => (pc as unknown as { request(a: { method: string; params: unknown[] }): Promise<unknown> }).request({ method, params });
  const out = (who: HDAccount, request: WithdrawRequest): Promise<WithdrawOutcome> =>
    withdraw({ keeperUrl: base, publicClient: pc, wallet: createWalletClient({ chain: hardhat, transport: http(node.url), account: who }) }, request);
  const ok = (o: WithdrawOutcome) => {
    if (!o.ok) throw new Error(`withdrawal refused: ${o.code}: ${o.message}`);
    return o;
  };
  const plan = async (who: HDAccount, token: string) => (await fetch(`${base}/api/accounts/${who.address}/withdrawal?token=${token}`)).json() as Promise<Record<string, string>>;
  const phase = () => keeper!.runner.current.phase;
  const onChain = (id: number) => readOnChainSession(pc, vault, id);

  /** Every account's vault balance of every token equals the keeper's ledger (GET /api/accounts onChain). */
  async function vaultMatchesKeeper(): Promise<void> {
    const accounts = [W, M1, M2, V].map((u) => u.address as Address).concat(record.treasury as Address, record.insurance as Address);
    let last = "";
    await until(
      "the keeper's ledger to follow the vault",
      async () => {
        const diffs: string[] = [];
        for (const a of accounts) {
          const view = (await (await fetch(`${base}/api/accounts/${a}`)).json()) as { inventory: { token: string; onChain: string }[] };
          for (const t of record.tokens) {
            const v = await vaultBalance(pc, record, a, t.symbol);
            const k = BigInt(view.inventory.find((i) => i.token === t.symbol)!.onChain);
            if (v !== k) diffs.push(`${a} ${t.symbol}: vault ${v}, keeper ${k}`);
          }
        }
        last = diffs.join("; ");
        return diffs.length === 0;
      },
      10_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${last}`);
    });
  }

  before(async () => {
    node = await startNode();
    pc = createPublicClient({ chain: hardhat, transport: http(node.url), pollingInterval: 100 }) as PublicClient;
    ({ record } = await deploy(node.url));
    vault = record.vault as Address;
    usdc = record.tokens.find((t) => t.symbol === "USDC")!.address as Address;
    pepe = record.tokens.find((t) => t.symbol === "PEPE")!.address as Address;
    await mintAndDeposit(node.url, record, W, { USDC: 10_000n * USDC });
    for (const m of [M1, M2]) await mintAndDeposit(node.url, record, m, { USDC: 10_000n * USDC, PEPE: 3n * 10n ** 24n, WIF: 3n * 10n ** 19n });
    await mintAndDeposit(node.url, record, V, { USDC: 1_000n * USDC });
    const config = loadConfig(
      {},
      {
        rpcUrl: node.url,
        dbPath: join(mkdtempSync(join(tmpdir(), "cme-withdraw-")), "keeper.sqlite"),
        port: 0,
        logLevel: "silent",
        preSessionSec: 8,
        tradingSec: 12,
        closingSec: 8,
        tickMs: 250,
        confirmations: 0,
        chainPollMs: 100,
        batchEntries: 2,
      },
    );
    keeper = await createKeeper(config, { deployment: parseDeployment(record), env: {}, logger: pino({ level: "silent" }) });
    await keeper.start();
    base = await keeper.app.listen({ host: "127.0.0.1", port: 0 });
    for (const m of [M1, M2]) {
      const r = await fetch(`${base}/set-broker`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(await signed(m, "SetBroker", { brokerId: "rule-market-maker" }, { vault })),
      });
      expect(r.status).to.equal(200);
    }
    wId = (await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "accountIdOf", args: [W.address] })) as number;
  });

  after(async () => {
    await rpc("evm_setAutomine", [true]).catch(() => {});
    await keeper?.stop();
    node?.stop();
  });

  it("pre-session: vault.withdraw, no keeper permit", async () => {
    expect(phase()).to.equal("pre_session");
    const o = ok(await out(W, { token: "USDC", amount: "100" }));
    expect(o).to.include({ route: "direct", amount: 100n * USDC, vaultBalance: 9_900n * USDC, walletBalance: 100n * USDC, permit: null });
    expect(o.plan).to.include({ phase: "pre_session", vaultPhase: "none", code: "no_session", available: (10_000n * USDC).toString() });
  });

  it("trading: the keeper's permit for what the pit allows, reserved in the pit, then vault.withdrawWithPermit", async () => {
    await until("trading", () => phase() === "trading", 30_000);
    // W buys a lot of PEPE from the market makers: a USDC loss and a PEPE gain to settle.
    const pit = keeper!.runner.port!;
    const pair = keeper!.runner.market.pairs.find((p) => p.symbol === "PEPE/USDC")!.id;
    await until(
      "W's fill",
      () => {
        const ask = pit.market(pair, 1, 0).asks[0];
        return ask !== undefined && (pit.submit(wId, { cancels: [], orders: [{ pair, side: "buy", price: ask.price, size: 1, type: "ioc" }] }).orders[0]?.filled ?? 0) > 0;
      },
      10_000,
    );
    const held = pit.account(wId).inventory.find((b) => b.asset === 0)!.amount;
    expect(held < 9_900n * USDC, `W's USDC in the pit: ${held}`).to.equal(true);

    // More than the pit holds for W is refused before anything is signed or sent.
    const tooMuch = await out(W, { token: "USDC", amount: "9900" });
    expect(tooMuch).to.include({ ok: false, code: "above_available" });
    const journal = () => [...keeper!.runner.journal.read<{ type: string; user: number; amount: bigint }>(1)].filter((e) => e.command.type === "withdraw" && e.command.user === wId);
    expect(journal()).to.have.length(0);

    const o = ok(await out(W, { token: "USDC", amount: "250" }));
    expect(o.plan).to.include({ phase: "trading", vaultPhase: "trading", route: "permit", code: "trading", available: held.toString() });
    expect(o).to.include({ route: "permit", amount: 250n * USDC, vaultBalance: 9_650n * USDC, walletBalance: 350n * USDC });
    expect(o.permit).to.include({ sessionId: 1, amount: (250n * USDC).toString() });
    // Reserved in the pit (journaled) before it was signed.
    expect(journal().map((e) => BigInt(e.command.amount))).to.deep.equal([250n * USDC]);
    expect(pit.account(wId).inventory.find((b) => b.asset === 0)!.amount).to.equal(held - 250n * USDC);
  });

  it("closing: still the vault's Trading phase, so a permit and vault.withdrawWithPermit", async () => {
    try {
      await until("closing", () => phase() === "closing", 30_000);
      expect((await onChain(1)).phase).to.equal("trading");
      const o = ok(await out(W, { token: "USDC", amount: "50" }));
      expect(o.plan).to.include({ phase: "closing", vaultPhase: "trading", route: "permit", code: "closing" });
      expect(o).to.include({ route: "permit", amount: 50n * USDC, vaultBalance: 9_600n * USDC });
      expect(o.permit).to.include({ sessionId: 1 });
    } finally {
      // Settlement's transactions now wait in the node's mempool until the test mines them.
      if (phase() === "closing") await rpc("evm_setAutomine", [false]);
    }
  });

  it("settling: nothing before the account's delta is posted (DeltaNotPosted), then vault.withdraw up to withdrawable()", async () => {
    await until("settling", () => phase() === "settling", 30_000);
    try {
      await settling();
    } finally {
      await rpc("evm_setAutomine", [true]);
      await rpc("evm_mine");
    }
  });

  async function settling(): Promise<void> {
    const settledUsdc = await vaultBalance(pc, record, W.address, "USDC");
    // beginSettlement is the first transaction: mine until the vault has it (no batch can be in that block).
    await until(
      "beginSettlement",
      async () => {
        await rpc("evm_mine");
        return (await onChain(1)).phase === "settling";
      },
      20_000,
    );
    const plan1 = getSettlement(keeper!.db, 1)!.plan;
    expect(plan1.batches.length).to.be.greaterThan(2);
    expect((await onChain(1)).batchesPosted).to.equal(0);

    const waiting = await plan(W, "USDC");
    expect(waiting).to.include({ phase: "settling", vaultPhase: "settling", route: "wait", code: "delta_not_posted", available: "0" });
    const refused = await out(W, { token: "USDC", amount: "1" });
    expect(refused).to.include({ ok: false, code: "wait" });
    // The vault itself refuses: DeltaNotPosted.
    let error = "";
    try {
      await pc.simulateContract({ account: W, address: vault, abi: vaultAbi, functionName: "withdraw", args: [usdc, USDC] });
    } catch (err) {
      const reverted = (err as BaseError).walk((e) => e instanceof ContractFunctionRevertedError) as ContractFunctionRevertedError;
      error = `${reverted.data?.errorName}(${reverted.data?.args?.join(", ")})`;
    }
    expect(error).to.equal(`DeltaNotPosted(1, ${W.address}, ${usdc})`);

    // Mine batch by batch until both of W's deltas are posted.
    const wBatch = Math.max(...plan1.batches.flatMap((b, i) => (decodeEntries(b.entries).some((e) => e.accountId === wId) ? [i] : [])));
    await until(
      "W's batch",
      async () => {
        await rpc("evm_mine");
        return (await onChain(1)).batchesPosted > wBatch;
      },
      20_000,
    );
    const s = await onChain(1);
    const delta = (index: number) => plan1.deltas.find((d) => d.accountId === wId && d.tokenIndex === index)!.delta;
    expect([delta(0) < 0n, delta(1) > 0n], "W's USDC and PEPE deltas").to.deep.equal([true, true]);
    const posted = await plan(W, "USDC");
    const withdrawable = await pc.readContract({ address: vault, abi: vaultAbi, functionName: "withdrawable", args: [W.address, usdc] });
    expect(posted).to.include({ route: "direct", code: "delta_posted", available: (settledUsdc + delta(0)).toString(), balance: settledUsdc.toString() });
    expect(BigInt(posted.available!)).to.equal(withdrawable);
    // W's PEPE: nothing settled yet, the gain after finalize.
    const gain = await plan(W, "PEPE");
    expect(gain).to.include({ route: "direct", code: "delta_posted", available: "0" });
    expect(gain.reason).to.match(/^settling, your delta is posted; the rest \([\d.]+ PEPE\) after finalize$/);

    // While batches remain (when W's were not the last), W withdraws what it owns either way.
    const remaining = s.batchCount - s.batchesPosted;
    const pending = out(W, { token: "USDC", amount: "100" });
    let settled: WithdrawOutcome | undefined;
    void pending.then(
      (o) => (settled = o),
      (err: Error) => (settled = { ok: false, code: "reverted", message: err.message, plan: null }),
    );
    await until(
      "W's settling withdrawal",
      async () => {
        await rpc("evm_mine");
        return settled !== undefined;
      },
      20_000,
    );
    const o = ok(settled!);
    expect(o).to.include({ route: "direct", amount: 100n * USDC });
    expect(o.plan).to.include({ code: "delta_posted" });
    expect(remaining, "batches left when W's delta was posted").to.be.greaterThan(0);
  }

  it("after finalize: vault.withdraw, all of it, and the vault agrees with the keeper", async () => {
    await until("finalized", async () => ((await keeper!.service.settlement(1)) as { status: string }).status === "finalized", 60_000);
    await until("session 2", () => keeper!.runner.current.id === 2 && phase() === "pre_session", 30_000);
    const plan1 = getSettlement(keeper!.db, 1)!.plan;
    const delta = (index: number) => plan1.deltas.find((d) => d.accountId === wId && d.tokenIndex === index)!.delta;
    const left = await vaultBalance(pc, record, W.address, "USDC");
    const allUsdc = ok(await out(W, { token: "USDC", amount: "all" }));
    expect(allUsdc.plan).to.include({ phase: "pre_session", vaultPhase: "finalized", code: "no_session", available: left.toString() });
    expect(allUsdc).to.include({ route: "direct", vaultBalance: 0n, amount: left });
    // Every USDC W deposited came back, less what the PEPE cost (its delta).
    expect(allUsdc.walletBalance).to.equal(10_000n * USDC + delta(0));
    const allPepe = ok(await out(W, { token: "PEPE", amount: "all" }));
    expect(allPepe).to.include({ route: "direct", amount: delta(1), vaultBalance: 0n, walletBalance: delta(1) });
    const nothing = await out(W, { token: pepe, amount: "all" });
    expect(nothing).to.include({ ok: false, code: "nothing_available" });
    await vaultMatchesKeeper();
  });

  it("a voided session: a permit withdrawal and a direct one after the veto stand, and the vault agrees with the keeper", async () => {
    const before = new Map<string, bigint>();
    for (const m of [M1, M2]) for (const t of record.tokens) before.set(`${m.address}:${t.symbol}`, await vaultBalance(pc, record, m.address, t.symbol));
    await until("session 2 trading", () => keeper!.runner.current.id === 2 && phase() === "trading", 40_000);
    const byPermit = ok(await out(V, { token: "USDC", amount: "10" }));
    expect(byPermit).to.include({ route: "permit", vaultBalance: 990n * USDC });
    expect(byPermit.permit).to.include({ sessionId: 2 });

    const guardian = createWalletClient({ chain: hardhat, transport: http(node.url), account: GUARDIAN });
    await pc.waitForTransactionReceipt({ hash: await guardian.writeContract({ address: vault, abi: vaultAbi, functionName: "vetoSession", args: [2, "withdraw test"] }) });
    expect((await onChain(2)).phase).to.equal("voided");
    // The keeper still trades its session; the vault pays without a permit.
    expect(phase()).to.equal("trading");
    const direct = ok(await out(V, { token: "USDC", amount: "5" }));
    expect(direct.plan).to.include({ phase: "trading", vaultPhase: "voided", route: "direct", code: "voided", available: (990n * USDC).toString() });
    expect(direct).to.include({ route: "direct", vaultBalance: 985n * USDC, walletBalance: 15n * USDC });

    await until("session 2 voided and session 3 open", () => keeper!.runner.current.id === 3, 90_000);
    expect(((await keeper!.service.settlement(2)) as { status: string }).status).to.equal("voided");
    // Every account keeps its pre-session balance: the makers' trades are gone, V's withdrawals stand.
    for (const m of [M1, M2]) for (const t of record.tokens) expect(await vaultBalance(pc, record, m.address, t.symbol), `${m.address} ${t.symbol}`).to.equal(before.get(`${m.address}:${t.symbol}`));
    expect(await vaultBalance(pc, record, V.address, "USDC")).to.equal(985n * USDC);
    await vaultMatchesKeeper();
    expect(await plan(V, "USDC")).to.include({ route: "direct", available: (985n * USDC).toString() });
  });
});
