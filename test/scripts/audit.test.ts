// scripts/audit.ts end to end: sessions settled on a Hardhat network, indexed by the Ponder app,
// audited by the CLI as an outsider would run it (child process, exit code, printed verdict).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import { after, before, describe, it } from "mocha";
import type { Hex } from "viem";
import { deltasFromFillLog, encodeFillLog, parseFillLog, type FillLog } from "../../keeper/settlement/fill-log.ts";
import type { DeploymentRecord } from "../../keeper/chain/deploy.ts";
import { repoRoot, startChain, startIndexer, waitForBlock, type Indexer, type LocalChain } from "../support/indexer.ts";
import { deployWithDriver, fillLogOf, type Driver } from "../support/session-driver.ts";

const USDC = 10n ** 6n;
const PEPE = 10n ** 18n;

type Run = { code: number | null; stdout: string; stderr: string };

async function audit(...args: string[]): Promise<Run> {
  const child = spawn(join(repoRoot, "node_modules", ".bin", "tsx"), [join(repoRoot, "scripts", "audit.ts"), ...args], {
    cwd: repoRoot,
    env: { ...process.env, CME_RPC_URL: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { code, stdout, stderr };
}

/** The status word ("ok" or "FAIL") the report prints for check `name`. */
function checkStatus(run: Run, name: string): string | undefined {
  const line = run.stdout.split("\n").find((l) => l.trim().replace(/^(ok|FAIL)\s+/, "").startsWith(name));
  return line?.trim().split(/\s+/)[0];
}

describe("audit (scripts/audit.ts) against an indexed vault", function () {
  this.timeout(180_000);

  let chain: LocalChain;
  let deployment: DeploymentRecord;
  let indexer: Indexer;
  let d: Driver;
  let dir: string;
  let honestLog: FillLog;
  let honestPath: string;
  let lyingPath: string;
  let server: Server | undefined;

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), "cme-audit-"));
    chain = await startChain();
    ({ deployment, d } = await deployWithDriver(chain.viem, 60n));
    indexer = await startIndexer(chain.url, deployment);
    const treasury = await d.accountId(deployment.treasury);
    const [alice, bob, carol] = d.wallets.slice(4, 7) as [(typeof d.wallets)[number], (typeof d.wallets)[number], (typeof d.wallets)[number]];
    await d.deposit(alice, "PEPE", 1_000_000n * PEPE);
    await d.deposit(bob, "USDC", 10_000n * USDC);
    await d.deposit(carol, "USDC", 10_000n * USDC);
    await d.deposit(carol, "PEPE", 500_000n * PEPE);
    const [a, b, c] = await Promise.all([alice, bob, carol].map((w) => d.accountId(w.account.address)));

    const opening = async (): Promise<FillLog["balances"]> => {
      const rows: FillLog["balances"] = [];
      for (const [accountId, wallet] of [[a!, alice], [b!, bob], [c!, carol]] as const) {
        for (const t of deployment.tokens) {
          const amount = await d.vault.read.balanceOf([wallet.account.address, t.address]);
          if (amount > 0n) rows.push({ type: "balance", accountId, tokenIndex: t.index, amount });
        }
      }
      return rows;
    };

    // Session 1, honest: the keeper posts exactly what its fills imply.
    await d.startSession(1, 3_600n);
    honestLog = fillLogOf(
      deployment,
      treasury,
      1,
      [
        { pairId: 1, maker: a!, taker: b!, takerSide: "buy", priceTicks: 1_000n, sizeLots: 2_000_000n, makerFee: 0n, takerFee: 4_000n },
        { pairId: 1, maker: c!, taker: a!, takerSide: "sell", priceTicks: 990n, sizeLots: 500_000n, makerFee: -250n, takerFee: 1_000n, block: true },
        { pairId: 1, maker: b!, taker: c!, takerSide: "buy", priceTicks: 1_020n, sizeLots: 700_000n, makerFee: 0n, takerFee: 1_400n },
      ],
      await opening(),
    );
    const honest = await d.settle(honestLog, { batchSize: 2 });
    honestPath = join(dir, "session-1.jsonl");
    writeFileSync(honestPath, honest.text);

    // Session 2, dishonest: the honest log's hash is committed, but 500 USDC moves from bob to
    // alice in the posted deltas (each token still nets to zero, so the vault accepts it).
    await d.startSession(2, 3_600n);
    const log2 = fillLogOf(
      deployment,
      treasury,
      2,
      [{ pairId: 1, maker: a!, taker: c!, takerSide: "buy", priceTicks: 1_100n, sizeLots: 1_000_000n, makerFee: 0n, takerFee: 2_000n }],
      await opening(),
    );
    const usdc = deployment.tokens.find((t) => t.symbol === "USDC")!.index;
    const shifted = deltasFromFillLog(log2).map((e) => ({ ...e }));
    const skim = 500n * USDC;
    const aliceUsdc = shifted.find((e) => e.accountId === a && e.tokenIndex === usdc)!;
    aliceUsdc.delta += skim;
    shifted.push({ accountId: b!, tokenIndex: usdc, delta: -skim });
    const lying = await d.settle(log2, { batchSize: 3, entries: shifted });
    lyingPath = join(dir, "session-2.jsonl");
    writeFileSync(lyingPath, lying.text);

    await waitForBlock(indexer.url, lying.finalized!.blockNumber);
  });

  after(async function () {
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
    await indexer?.stop();
    await chain?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("passes an honest session, checking the vault itself too", async function () {
    const run = await audit("--session", "1", "--graphql", indexer.graphqlUrl, "--fill-log", honestPath, "--rpc", chain.url);
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    expect(run.stdout).to.match(/PASS: session 1 reproduces from public data \(finalized/);
    for (const name of ["indexer matches the vault", "fill log hash", "fill log format", "batch chain root", "indexed deltas", "deltas net to zero", "fills reproduce deltas", "no negative balance"]) {
      expect(checkStatus(run, name), name).to.equal("ok");
    }
    expect(run.stdout).to.match(/fill log format +canonical, \d+ opening balances, 3 fills \(1 block trade\), 0 transfers/);
  });

  it("fails a tampered fill log: the hash and the recomputed deltas both disagree", async function () {
    const tampered = structuredClone(honestLog);
    const fill = tampered.events[0]!;
    if (fill.type !== "fill") throw new Error("expected a fill");
    fill.sizeLots -= 1_000n;
    const path = join(dir, "session-1-tampered.jsonl");
    writeFileSync(path, encodeFillLog(tampered));
    const run = await audit("--session", "1", "--graphql", indexer.graphqlUrl, "--fill-log", path);
    expect(run.code, run.stdout + run.stderr).to.equal(1);
    expect(checkStatus(run, "fill log hash")).to.equal("FAIL");
    expect(checkStatus(run, "fills reproduce deltas")).to.equal("FAIL");
    expect(checkStatus(run, "batch chain root")).to.equal("ok");
    expect(run.stdout).to.match(/FAIL: session 1: 2 checks failed \(fill log hash, fills reproduce deltas\)/);
    expect(run.stdout).to.not.match(/moves no value/);
  });

  it("fails a log whose block trade lost its flag on the hash alone, and says the change moves no value", async function () {
    const tampered = structuredClone(honestLog);
    const fill = tampered.events[1]!;
    if (fill.type !== "fill" || fill.block !== true) throw new Error("expected a block trade");
    delete fill.block;
    const path = join(dir, "session-1-unmarked.jsonl");
    writeFileSync(path, encodeFillLog(tampered));
    const run = await audit("--session", "1", "--graphql", indexer.graphqlUrl, "--fill-log", path);
    expect(run.code, run.stdout + run.stderr).to.equal(1);
    expect(checkStatus(run, "fill log hash")).to.equal("FAIL");
    expect(checkStatus(run, "fills reproduce deltas")).to.equal("ok");
    expect(run.stdout).to.match(/committed 0x[0-9a-f]{64}; its fills still reproduce every posted delta, so what changed moves no value/);
    expect(run.stdout).to.match(/3 fills \(0 block trades\)/);
  });

  it("fails a session whose posted deltas differ from the committed fills", async function () {
    const run = await audit("--session", "2", "--graphql", indexer.graphqlUrl, "--fill-log", lyingPath);
    expect(run.code, run.stdout + run.stderr).to.equal(1);
    expect(checkStatus(run, "fill log hash")).to.equal("ok");
    expect(checkStatus(run, "deltas net to zero")).to.equal("ok");
    expect(checkStatus(run, "fills reproduce deltas")).to.equal("FAIL");
    expect(run.stdout).to.match(/fills give -?\d+, posted -?\d+/);
  });

  it("fails a fill log for another session", async function () {
    const run = await audit("--session", "2", "--graphql", indexer.graphqlUrl, "--fill-log", honestPath);
    expect(run.code).to.equal(1);
    expect(checkStatus(run, "fill log format")).to.equal("FAIL");
    expect(run.stdout).to.match(/header is for session 1/);
  });

  it("fetches the fill log over HTTP as the keeper publishes it", async function () {
    const body = encodeFillLog(honestLog);
    expect(parseFillLog(body).ok).to.equal(true);
    server = createServer((req, res) => {
      if (req.url === "/api/sessions/1/fill-log") res.writeHead(200, { "content-type": "application/x-ndjson; charset=utf-8" }).end(body);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", () => resolve()));
    const address = server.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    const run = await audit("--session", "1", "--graphql", indexer.graphqlUrl, "--fill-log", `http://127.0.0.1:${port}/api/sessions/1/fill-log`);
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    const missing = await audit("--session", "9", "--graphql", indexer.graphqlUrl, "--fill-log", `http://127.0.0.1:${port}/api/sessions/9/fill-log`);
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.match(/HTTP 404/);
  });

  it("reports an unknown session and bad usage", async function () {
    const unknown = await audit("--session", "77", "--graphql", indexer.graphqlUrl, "--fill-log", honestPath);
    expect(unknown.code).to.equal(1);
    expect(unknown.stdout).to.match(/the indexer has no session 77/);
    const usage = await audit("--graphql", indexer.graphqlUrl);
    expect(usage.code).to.equal(2);
    expect(usage.stderr).to.match(/--session must be a session id/);
  });

  it("reports a session still settling as pending, and a voided one as holding up", async function () {
    const treasury = await d.accountId(deployment.treasury);
    const [a, c] = await Promise.all([d.wallets[4]!, d.wallets[6]!].map((w) => d.accountId(w.account.address)));
    await d.startSession(3, 600n);
    const log = fillLogOf(deployment, treasury, 3, [
      { pairId: 1, maker: a!, taker: c!, takerSide: "buy", priceTicks: 1_000n, sizeLots: 10_000n, makerFee: 0n, takerFee: 10n },
    ]);
    const run = await d.settle(log, { batchSize: 2, finalize: false, postBatches: 1 });
    const path = join(dir, "session-3.jsonl");
    writeFileSync(path, run.text);
    await waitForBlock(indexer.url, run.batches[0]!.blockNumber);
    const pending = await audit("--session", "3", "--graphql", indexer.graphqlUrl, "--fill-log", path);
    expect(pending.code, pending.stdout + pending.stderr).to.equal(3);
    expect(pending.stdout).to.match(/PENDING: session 3: 1 of 3 batches posted \(settling: not finalized yet\)/);

    const testClient = await chain.viem.getTestClient();
    await testClient.increaseTime({ seconds: 600 + 60 + 1 });
    await testClient.mine({ blocks: 1 });
    const voided = await d.mined(await (await d.vaultAs(d.wallets[9]!)).write.voidSession([3]));
    await waitForBlock(indexer.url, voided.blockNumber);
    const after = await audit("--session", "3", "--graphql", indexer.graphqlUrl, "--fill-log", path);
    expect(after.code, after.stdout + after.stderr).to.equal(0);
    expect(after.stdout).to.match(/PASS: session 3 holds up \(voided: its deltas were dropped and no balance changed\)/);
    expect(checkStatus(after, "fill log hash")).to.equal("ok");
  });

  it("names the indexed vault in what it checks", async function () {
    const tampered = structuredClone(honestLog);
    tampered.header.vault = `0x${"11".repeat(20)}` as Hex;
    const path = join(dir, "wrong-vault.jsonl");
    writeFileSync(path, encodeFillLog(tampered));
    const run = await audit("--session", "1", "--graphql", indexer.graphqlUrl, "--fill-log", path);
    expect(run.code).to.equal(1);
    expect(run.stdout).to.match(/header names vault 0x1111/);
  });
});
