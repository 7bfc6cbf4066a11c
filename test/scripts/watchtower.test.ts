// The watchtower (scripts/audit/watch.ts, `npm run audit -- --watch`) end to end: sessions settled
// on a Hardhat network, indexed by the Ponder app, fill logs served over HTTP as the keeper
// publishes them, and the guardian (Hardhat #19, LOCAL_GUARDIAN) vetoing what does not match.
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { expect } from "chai";
import { after, before, describe, it } from "mocha";
import type { Address } from "viem";
import { mnemonicToAccount } from "viem/accounts";
import { CMEVaultAbi } from "../../indexer/abis/CMEVault.ts";
import { LOCAL_GUARDIAN, type DeploymentRecord } from "../../keeper/chain/deploy.ts";
import { checkSettlementWindow } from "../../keeper/config.ts";
import { deltasFromFillLog, type FillLog } from "../../keeper/settlement/fill-log.ts";
import { FILL_LOG_NOT_PUBLISHED, watch, type WatchOptions, type WatchSummary, type WatchVerdict } from "../../scripts/audit/watch.ts";
import { repoRoot, startChain, startIndexer, waitForBlock, type Indexer, type LocalChain } from "../support/indexer.ts";
import { deployWithDriver, fillLogOf, type Driver } from "../support/session-driver.ts";

const USDC = 10n ** 6n;
const PEPE = 10n ** 18n;
const MNEMONIC = "test test test test test test test test test test test junk";
const CHALLENGE_WINDOW = 900; // the vault's floor, what deployCME leaves
const SETTLING = 2;
const FINALIZED = 3;
const VOIDED = 4;

/** `npm run audit -- …` as an outsider runs it: a child process, its exit code and output. */
async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(join(repoRoot, "node_modules", ".bin", "tsx"), [join(repoRoot, "scripts", "audit.ts"), ...args], {
    cwd: repoRoot,
    env: { ...process.env, CME_GUARDIAN_KEY: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { code, stdout, stderr };
}

type Watcher = {
  verdicts: WatchVerdict[];
  logs: string[];
  /** The next verdict (waits for it). */
  next: () => Promise<WatchVerdict>;
  stop: () => Promise<WatchSummary>;
};

describe("watchtower (scripts/audit/watch.ts) against an indexed vault", function () {
  this.timeout(240_000);

  let chain: LocalChain;
  let deployment: DeploymentRecord;
  let indexer: Indexer;
  let d: Driver;
  let server: Server;
  let fillLogBase: string;
  const published = new Map<number, string>();
  const guardian = mnemonicToAccount(MNEMONIC, { addressIndex: 19 });
  let ids: { treasury: number; alice: number; bob: number; carol: number; settler: number };
  let usdcIndex: number;
  const running: Watcher[] = [];

  /** A watchtower on this chain and indexer (`rpc: false`: through the indexer only). */
  function startWatch(options: Partial<WatchOptions> = {}, { rpc = true } = {}): Watcher {
    const controller = new AbortController();
    const verdicts: WatchVerdict[] = [];
    const logs: string[] = [];
    const waiting: ((v: WatchVerdict) => void)[] = [];
    let taken = 0;
    const done = watch({
      graphqlUrl: indexer.graphqlUrl,
      ...(rpc ? { rpcUrl: chain.url } : {}),
      fillLogUrlFor: (id) => `${fillLogBase}/api/sessions/${id}/fill-log`,
      signal: controller.signal,
      pollMs: 100,
      onVerdict: (v) => {
        verdicts.push(v);
        waiting.shift()?.(v);
      },
      onLog: (line) => logs.push(line),
      ...options,
    });
    let failure: unknown;
    done.catch((error: unknown) => (failure = error));
    const w: Watcher = {
      verdicts,
      logs,
      next: () => {
        const ready = verdicts[taken];
        taken++;
        if (ready !== undefined) return Promise.resolve(ready);
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no verdict after 60 s (${String(failure ?? "still watching")}); log:\n${logs.join("\n")}`)), 60_000);
          waiting.push((v) => {
            clearTimeout(timer);
            resolve(v);
          });
        });
      },
      stop: async () => {
        controller.abort();
        return await done;
      },
    };
    running.push(w);
    return w;
  }

  /** Every account's balances now, for fill-log openings. */
  async function opening(): Promise<FillLog["balances"]> {
    const rows: FillLog["balances"] = [];
    for (const [accountId, wallet] of [[ids.alice, d.wallets[4]!], [ids.bob, d.wallets[5]!], [ids.carol, d.wallets[6]!]] as const) {
      for (const t of deployment.tokens) {
        const amount = await d.vault.read.balanceOf([wallet.account.address, t.address]);
        if (amount > 0n) rows.push({ type: "balance", accountId, tokenIndex: t.index, amount });
      }
    }
    return rows;
  }

  /** A fill log with one trade between alice (maker) and carol (taker) for `sessionId`. */
  async function aliceSellsToCarol(sessionId: number): Promise<FillLog> {
    return fillLogOf(
      deployment,
      ids.treasury,
      sessionId,
      [{ pairId: 1, maker: ids.alice, taker: ids.carol, takerSide: "buy", priceTicks: 1_100n, sizeLots: 1_000_000n, makerFee: 0n, takerFee: 2_000n }],
      await opening(),
    );
  }

  /**
   * Settles `log` dishonestly: its hash is committed, but the posted deltas also move 500 USDC
   * from bob (not in any fill) to the settler's own account. Every token still nets to zero.
   */
  async function settleSkimming(log: FillLog) {
    const entries = deltasFromFillLog(log).map((e) => ({ ...e }));
    const skim = 500n * USDC;
    entries.push({ accountId: ids.settler, tokenIndex: usdcIndex, delta: skim }, { accountId: ids.bob, tokenIndex: usdcIndex, delta: -skim });
    return await d.settle(log, { batchSize: 2, entries, finalize: false });
  }

  const phaseOf = async (sessionId: number) => (await d.vault.read.session([sessionId])).phase;
  const sameBalances = (a: Map<string, bigint>, b: Map<string, bigint>) => expect([...b.entries()]).to.deep.equal([...a.entries()]);

  before(async function () {
    chain = await startChain();
    // nobody may void before the watchtower has had its window
    ({ deployment, d } = await deployWithDriver(chain.viem, 3_600n));
    expect(guardian.address).to.equal(LOCAL_GUARDIAN);
    indexer = await startIndexer(chain.url, deployment);
    usdcIndex = d.token("USDC").index;
    const [alice, bob, carol] = [d.wallets[4]!, d.wallets[5]!, d.wallets[6]!];
    await d.deposit(alice, "PEPE", 1_000_000n * PEPE);
    await d.deposit(bob, "USDC", 10_000n * USDC);
    await d.deposit(carol, "USDC", 10_000n * USDC);
    await d.deposit(carol, "PEPE", 500_000n * PEPE);
    // the settler registers its own account: registering is open to anyone and moves nothing
    await d.mined(await d.vault.write.register([deployment.settler]));
    ids = {
      treasury: await d.accountId(deployment.treasury),
      alice: await d.accountId(alice.account.address),
      bob: await d.accountId(bob.account.address),
      carol: await d.accountId(carol.account.address),
      settler: await d.accountId(deployment.settler),
    };

    server = createServer((req, res) => {
      const id = Number(/^\/api\/sessions\/(\d+)\/fill-log$/.exec(req.url ?? "")?.[1]);
      const body = published.get(id);
      if (body === undefined) res.writeHead(404).end();
      else res.writeHead(200, { "content-type": "application/x-ndjson; charset=utf-8" }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    const address = server.address();
    fillLogBase = `http://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;
  });

  after(async function () {
    for (const w of running) await w.stop().catch(() => undefined);
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
    await indexer?.stop();
    await chain?.stop();
  });

  it("vetoes a dishonest settlement inside the challenge window; finalize then reverts and no balance moves", async function () {
    const w = startWatch({ guardian }); // from the vault's first session
    const before = await d.vaultBalances();
    await d.startSession(1, 3_600n);
    const log = await aliceSellsToCarol(1);
    const run = await settleSkimming(log);
    published.set(1, run.text);

    const v = await w.next();
    expect(v.sessionId).to.equal(1);
    expect(v.outcome, v.line).to.equal("fail");
    expect(v.failed).to.deep.equal(["fills reproduce deltas"]);
    expect(v.reason).to.match(/^fills reproduce deltas: account \d+ USDC: fills give -?\d+, posted -?\d+/);
    expect(v.veto !== null && "tx" in v.veto, v.line).to.equal(true);
    expect(v.line).to.match(/^session 1 FAIL: fills reproduce deltas: .* -> vetoed in 0x[0-9a-f]{64} \(block \d+, \d+ s before the window closed\)$/);

    // vetoed on-chain, by the guardian, with the failed check as its reason, before finalize opened
    const s = await d.vault.read.session([1]);
    expect(s.phase).to.equal(VOIDED);
    if (v.veto === null || !("tx" in v.veto)) throw new Error("no veto");
    expect(v.veto.blockTimestamp).to.be.lessThan(s.finalizableAt);
    expect(v.finalizableAt).to.equal(s.finalizableAt);
    expect(s.finalizableAt - v.veto.blockTimestamp).to.be.greaterThan(CHALLENGE_WINDOW - 60);
    const [vetoed] = await d.publicClient.getContractEvents({ address: deployment.vault, abi: CMEVaultAbi, eventName: "SessionVetoed", args: { sessionId: 1 } });
    expect(vetoed?.args.guardian).to.equal(LOCAL_GUARDIAN);
    expect(vetoed?.args.reason).to.equal(v.reason);
    expect(vetoed?.transactionHash).to.equal(v.veto.tx);

    // the settler waits out the window and tries anyway: the session is over
    await d.openFinalize(1);
    await chain.viem.assertions.revertWithCustomErrorWithArgs(d.vault.write.finalize([1]), d.vault, "WrongPhase", [1, VOIDED, SETTLING]);
    sameBalances(before, await d.vaultBalances());
    expect(await d.vault.read.balanceOf([deployment.settler, d.token("USDC").address])).to.equal(0n);
    expect((await w.stop()).vetoed).to.equal(1);
  });

  it("passes an honest session and sends nothing; the session finalizes after the window", async function () {
    const w = startWatch({ guardian });
    const sent = await d.publicClient.getTransactionCount({ address: LOCAL_GUARDIAN });
    const before = await d.vaultBalances();
    await d.startSession(2, 3_600n);
    const log = fillLogOf(
      deployment,
      ids.treasury,
      2,
      [
        { pairId: 1, maker: ids.alice, taker: ids.bob, takerSide: "buy", priceTicks: 1_000n, sizeLots: 2_000_000n, makerFee: 0n, takerFee: 4_000n },
        { pairId: 1, maker: ids.carol, taker: ids.alice, takerSide: "sell", priceTicks: 990n, sizeLots: 500_000n, makerFee: -250n, takerFee: 1_000n },
      ],
      await opening(),
    );
    const run = await d.settle(log, { batchSize: 2, finalize: false });
    published.set(2, run.text);

    const v = await w.next();
    expect(v.sessionId).to.equal(2);
    expect(v.outcome, v.line).to.equal("pass");
    expect(v.veto).to.equal(null);
    expect(v.report?.checks.every((c) => c.ok)).to.equal(true);
    expect(v.report?.checks.map((c) => c.name)).to.include.members(["indexer matches the vault", "fill log hash", "batch chain root", "deltas net to zero", "fills reproduce deltas"]);
    expect(v.line).to.match(/^session 2 PASS: \d+ \(account, token\) deltas recomputed, all equal \(finalize opens \d{4}-\d\d-\d\dT/);
    expect(await d.publicClient.getTransactionCount({ address: LOCAL_GUARDIAN })).to.equal(sent);

    await chain.viem.assertions.revertWithCustomError(d.vault.write.finalize([2]), d.vault, "ChallengeWindowNotOver");
    await d.finalize(2);
    expect(await phaseOf(2)).to.equal(FINALIZED);
    const after = await d.vaultBalances();
    for (const e of run.entries) {
      const owner = await d.vault.read.accountAt([e.accountId]);
      const token = deployment.tokens.find((t) => t.index === e.tokenIndex)!.address;
      const key = `${owner.toLowerCase()}/${token.toLowerCase()}`;
      expect(after.get(key), key).to.equal(before.get(key)! + e.delta);
    }
    await w.stop();
  });

  it("without a guardian key reports the failure (one line, exit 1) and sends nothing", async function () {
    await d.startSession(3, 3_600n);
    const run = await settleSkimming(await aliceSellsToCarol(3));
    published.set(3, run.text);
    const block = await d.publicClient.getBlockNumber();
    const run3 = cli(
      ["--watch", "--graphql", indexer.graphqlUrl, "--rpc", chain.url, "--fill-log", `${fillLogBase}/api/sessions/{session}/fill-log`, "--from", "3", "--sessions", "1", "--poll-ms", "100"],
      { CME_GUARDIAN_KEY: "" },
    );
    // beside the CLI, one trusting only the indexer (no RPC): it assumes the vault's floor for the window
    const blind = startWatch({ fromSession: 3 }, { rpc: false });
    const { code, stdout, stderr } = await run3;
    expect(code, stdout + stderr).to.equal(1);
    const lines = stdout.trim().split("\n");
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/session 3 FAIL: fills reproduce deltas: account \d+ USDC: .* -> NOT vetoed \(no guardian key\)/);
    expect(stderr).to.match(/no guardian key: reporting only/);
    // the indexer-only one reaches the same verdict, and its estimate of the window is exact here
    const seen = await blind.next();
    expect(seen).to.include({ sessionId: 3, outcome: "fail", veto: null, finalizableAt: (await d.vault.read.session([3])).finalizableAt });
    expect(seen.failed).to.deep.equal(["fills reproduce deltas"]);
    await blind.stop();
    // nothing was sent: no block was mined and the session is still settling
    expect(await d.publicClient.getBlockNumber()).to.equal(block);
    expect(await phaseOf(3)).to.equal(SETTLING);

    // the guardian vetoes it by hand; a watchtower that comes later reports it voided
    const byHand = await d.mined(await (await d.vaultAs(d.wallets[19]!)).write.vetoSession([3, "fills reproduce deltas (by hand)"]));
    await waitForBlock(indexer.url, byHand.blockNumber);
    const late = startWatch({ fromSession: 3 });
    const v = await late.next();
    expect(v).to.include({ sessionId: 3, outcome: "voided", voidedBy: LOCAL_GUARDIAN, veto: null });
    expect(v.line).to.equal(`session 3 VOIDED by ${LOCAL_GUARDIAN} before the watchtower decided: every balance stays as before the session`);
    await late.stop();
  });

  it("waits for a fill log published late in the window, then audits it", async function () {
    const w = startWatch({ guardian });
    await d.startSession(4, 3_600n);
    const run = await d.settle(await aliceSellsToCarol(4), { batchSize: 1, finalize: false });
    const waiting = async () => w.logs.some((l) => l.startsWith(`session 4: ${FILL_LOG_NOT_PUBLISHED} yet (fill log ${fillLogBase}/api/sessions/4/fill-log: HTTP 404)`));
    for (let i = 0; i < 300 && !(await waiting()); i++) await new Promise((r) => setTimeout(r, 100));
    expect(await waiting(), w.logs.join("\n")).to.equal(true);
    expect(w.verdicts).to.have.length(0);
    published.set(4, run.text);
    const v = await w.next();
    expect(v, v.line).to.include({ sessionId: 4, outcome: "pass", veto: null });
    await d.finalize(4);
    await w.stop();
  });

  it("vetoes with 'fill log not published' when the log is still missing as the window is about to close", async function () {
    const w = startWatch({ guardian, vetoMarginSec: 120 });
    await d.startSession(5, 3_600n);
    const before = await d.vaultBalances();
    await d.settle(await aliceSellsToCarol(5), { batchSize: 2, finalize: false });
    const finalizableAt = BigInt((await d.vault.read.session([5])).finalizableAt);
    // polls go by while the window is wide open: nothing is decided
    await new Promise((r) => setTimeout(r, 1_000));
    expect(w.verdicts).to.have.length(0);
    expect(w.logs.some((l) => l.startsWith(`session 5: ${FILL_LOG_NOT_PUBLISHED} yet`))).to.equal(true);
    // a minute before the window closes, inside the 120 s margin
    await d.reach(finalizableAt - 60n);
    const v = await w.next();
    expect(v).to.include({ sessionId: 5, outcome: "fail", reason: FILL_LOG_NOT_PUBLISHED, report: null });
    expect(v.failed).to.deep.equal([FILL_LOG_NOT_PUBLISHED]);
    if (v.veto === null || !("tx" in v.veto)) throw new Error(`no veto: ${v.line}`);
    expect(BigInt(v.veto.blockTimestamp) < finalizableAt).to.equal(true);
    expect(await phaseOf(5)).to.equal(VOIDED);
    sameBalances(before, await d.vaultBalances());
    await w.stop();
  });

  it("refuses bad watch usage on the command line (exit 2)", async function () {
    const noTemplate = await cli(["--watch", "--graphql", indexer.graphqlUrl, "--fill-log", "/tmp/log.jsonl"]);
    expect(noTemplate.code).to.equal(2);
    expect(noTemplate.stderr).to.match(/--fill-log must contain \{session\}/);
    const keyWithoutRpc = await cli(["--watch", "--graphql", indexer.graphqlUrl], { CME_GUARDIAN_KEY: `0x${"ab".repeat(32)}`, CME_RPC_URL: "" });
    expect(keyWithoutRpc.code).to.equal(2);
    expect(keyWithoutRpc.stderr).to.match(/a guardian key needs --rpc/);
    const notAGuardian = await cli(["--watch", "--graphql", indexer.graphqlUrl, "--rpc", chain.url], { CME_GUARDIAN_KEY: `0x${"ab".repeat(32)}` });
    expect(notAGuardian.code).to.equal(2);
    expect(notAGuardian.stderr).to.match(/cannot start: 0x[0-9a-fA-F]{40} does not hold GUARDIAN_ROLE/);
  });

  it("refuses to start with a guardian that lacks GUARDIAN_ROLE, or without an RPC to veto through", async function () {
    const stranger = mnemonicToAccount(MNEMONIC, { addressIndex: 18 });
    const base = { graphqlUrl: indexer.graphqlUrl, fillLogUrlFor: () => "", signal: new AbortController().signal, onVerdict: () => undefined };
    let error: unknown;
    await watch({ ...base, rpcUrl: chain.url, guardian: stranger }).catch((e: unknown) => (error = e));
    expect(error).to.have.property("name", "WatchConfigError");
    expect(String(error)).to.match(new RegExp(`${stranger.address} does not hold GUARDIAN_ROLE`));
    error = undefined;
    await watch({ ...base, guardian }).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/a guardian needs an RPC URL/);
    error = undefined;
    await watch({ ...base, rpcUrl: chain.url, vault: `0x${"11".repeat(20)}` as Address }).catch((e: unknown) => (error = e));
    expect(String(error)).to.match(/the indexer indexes vault 0x[0-9a-fA-F]{40}, not 0x1111/);
  });
});

describe("checkSettlementWindow (keeper/config.ts)", () => {
  it("accepts a settlement window plus grace longer than the challenge window", () => {
    expect(checkSettlementWindow(24 * 3600, 3600, 900)).to.equal(null);
    expect(checkSettlementWindow(600, 301, 900)).to.equal(null);
  });

  it("names the variable and every figure when the vault could be voided before finalize opens", () => {
    const message = checkSettlementWindow(600, 300, 900);
    expect(message).to.match(/^CME_SETTLEMENT_WINDOW_SEC: 600 s \+ the vault's grace period 300 s must exceed its challenge window 900 s/);
    expect(checkSettlementWindow(60, 0, 3 * 24 * 3600)).to.not.equal(null);
  });
});
