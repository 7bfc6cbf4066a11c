// Crash recovery: the keeper runs as a child process (scripts/keeper.ts) and the test SIGKILLs it
// from outside, watching its log: at a seeded random instant of trading, right after settlement
// batch 1 is posted, and with finalize sent but not yet mined (the test mines the node by hand
// for that run), then restarts it each time. The vault's final state must equal what an
// uninterrupted run of the same journal gives: every balance, every net, the committed root.
import { expect } from "chai";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Address } from "viem";
import { openDatabase } from "../../keeper/store/database.ts";
import { Journal } from "../../keeper/store/journal.ts";
import { getSettlement } from "../../keeper/settlement/store.ts";
import { listOutbox } from "../../keeper/store/outbox.ts";
import { getSession } from "../../keeper/store/sessions.ts";
import { openPit } from "../../keeper/session/open-pit.ts";
import { buildMarket } from "../../keeper/session/pairs.ts";
import { buildPlan } from "../../keeper/settlement/plan.ts";
import { parseDeployment } from "../../keeper/chain/deployment.ts";
import { loadConfig } from "../../keeper/config.ts";
import { systemClock } from "../../keeper/executor/clock.ts";
import { vaultAbi } from "../../keeper/chain/vault-abi.ts";
import { deploy, freePort, mintAndDeposit, startNode, user, vaultBalance, type Node } from "../support/chain.ts";
import { startFakeModel } from "../support/fake-model.ts";
import { signed } from "../support/keeper.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("keeper crash recovery (child process, SIGKILL)", function () {
  this.timeout(480_000);
  let node: Node;
  let model: Awaited<ReturnType<typeof startFakeModel>>;
  let child: ChildProcess | undefined;
  after(async () => {
    if (child !== undefined && child.exitCode === null) child.kill("SIGTERM");
    await model?.close();
    node?.stop();
  });

  it("resumes from the store at every crash point and settles exactly the journal", async () => {
    node = await startNode();
    model = await startFakeModel();
    const { record, path } = await deploy(node.url);
    const users = [4, 5, 6, 7, 8].map(user);
    for (const [i, u] of users.entries()) {
      await mintAndDeposit(node.url, record, u, i === 4 ? { USDC: 5_000_000_000n } : { USDC: 10_000_000_000n, PEPE: 3n * 10n ** 24n, WIF: 3n * 10n ** 19n });
    }
    const dbPath = join(mkdtempSync(join(tmpdir(), "cme-crash-")), "keeper.sqlite");
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    let log = "";
    /** Called with each JSON log line of the running keeper. */
    let onLine: (line: { msg?: string; step?: string; batch?: number }) => void = () => {};
    const run = () => {
      const c = spawn(process.execPath, ["--import", "tsx", "scripts/keeper.ts"], {
        cwd: process.cwd(),
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          ...process.env,
          CME_RPC_URL: node.url,
          CME_DEPLOYMENT: path,
          CME_DB_PATH: dbPath,
          CME_KEEPER_PORT: String(port),
          CME_PRE_SESSION_SEC: "6",
          CME_TRADING_SEC: "12",
          CME_CLOSING_SEC: "1",
          CME_TICK_MS: "250",
          CME_CONFIRMATIONS: "0",
          CME_CHAIN_POLL_MS: "100",
          CME_BATCH_ENTRIES: "2",
          CME_LOG_LEVEL: "info",
          CME_LOCAL_BASE_URL: model.url,
        },
      });
      let partial = "";
      c.stdout?.on("data", (d) => {
        log += String(d);
        const lines = (partial + String(d)).split("\n");
        partial = lines.pop()!;
        for (const l of lines) {
          try {
            onLine(JSON.parse(l) as { msg?: string });
          } catch {
            /* not a log line */
          }
        }
      });
      c.stderr?.on("data", (d) => (log += String(d)));
      child = c;
      return c;
    };
    const exited = (c: ChildProcess, ms: number) =>
      new Promise<NodeJS.Signals | number | null>((resolve, reject) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve(c.signalCode ?? c.exitCode);
        const t = setTimeout(() => reject(new Error(`keeper did not exit in time:\n${log.slice(-3000)}`)), ms);
        c.once("exit", (code, signal) => {
          clearTimeout(t);
          resolve(signal ?? code);
        });
      });
    const ready = async () => {
      for (let i = 0; i < 300; i++) {
        try {
          if ((await fetch(`${base}/healthz`)).ok) return;
        } catch {
          /* not yet */
        }
        await sleep(100);
      }
      throw new Error(`keeper did not come up:\n${log.slice(-3000)}`);
    };

    const rpc = (method: string, params: unknown[] = []) =>
      fetch(node.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
    const seed = Number(process.env.CME_CRASH_SEED ?? Date.now() % 100_000);
    const killAt = 2_000 + (seed % 7_000); // within the 12 s of trading, after the brokers have quoted
    console.log(`      crash seed ${seed}: killed ${killAt} ms into trading (CME_CRASH_SEED=${seed} repeats it)`);

    // Run 1: configure over HTTP, then die at a random instant of trading.
    onLine = (l) => {
      if (l.msg === "trading started") setTimeout(() => c.kill("SIGKILL"), killAt);
    };
    let c = run();
    await ready();
    const vault = record.vault as Address;
    for (const [i, u] of users.entries()) {
      for (;;) {
        const body = await signed(u, "SetBroker", { brokerId: i === 4 ? "local-llm" : "rule-market-maker" }, { vault });
        const r = await fetch(`${base}/set-broker`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
        if (r.status === 200) break;
        expect(r.status).to.equal(403); // the watcher has not seen the deposit yet
        await sleep(200);
      }
    }
    expect(await exited(c, 60_000), log.slice(-4000)).to.equal("SIGKILL");

    // Run 2: resumes trading from the journal, closes, settles, dies right after batch 1.
    onLine = (l) => {
      if (l.msg === "settlement batch posted" && l.batch === 1) c.kill("SIGKILL");
    };
    c = run();
    expect(await exited(c, 90_000), log.slice(-4000)).to.equal("SIGKILL");
    expect(log).to.match(/pit rebuilt from the journal/);

    // Run 3: resumes where the vault stands; the test mines each transaction the keeper sends,
    // and kills it once finalize is sent, before it is mined.
    await rpc("evm_setAutomine", [false]);
    onLine = (l) => {
      if (l.msg !== "settler transaction sent") return;
      if (l.step?.endsWith(":finalize")) c.kill("SIGKILL");
      else void rpc("evm_mine");
    };
    c = run();
    expect(await exited(c, 60_000), log.slice(-4000)).to.equal("SIGKILL");
    await rpc("evm_setAutomine", [true]);
    await rpc("evm_mine");
    onLine = () => {};

    // Run 4: finds finalize mined and carries on to the next session.
    c = run();
    await ready();
    for (let i = 0; i < 200; i++) {
      const s = (await (await fetch(`${base}/api/sessions/1/settlement`)).json()) as { status: string };
      if (s.status === "finalized") break;
      await sleep(200);
    }
    c.kill("SIGTERM");
    await exited(c, 20_000);

    // The operator's view of the same settlement, from the keeper's database.
    const status = spawnSync(process.execPath, ["--import", "tsx", "scripts/settle.ts", "--session", "1", "--local", "--status"], {
      cwd: process.cwd(),
      env: { ...process.env, CME_RPC_URL: node.url, CME_DEPLOYMENT: path, CME_DB_PATH: dbPath },
    });
    expect(String(status.stdout), String(status.stderr)).to.match(/session 1: finalized/);
    expect(String(status.stdout)).to.match(/vault: finalized/);

    // The uninterrupted run of the same journal.
    const db = openDatabase(dbPath);
    const deployment = parseDeployment(record);
    const config = loadConfig({}, { deploymentPath: path, rpcUrl: node.url });
    const session = getSession(db, 1)!;
    const rec = getSettlement(db, 1)!;
    expect(rec.status).to.equal("finalized");
    expect(rec.plan.batches.length).to.be.greaterThan(2);
    const treasury = (await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "accountIdOf", args: [record.treasury as Address] })) as number;
    const insurance = (await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "accountIdOf", args: [record.insurance as Address] })) as number;
    const market = buildMarket(deployment, config.referencePrices, { treasury, insurance }, 1);
    const { pit, recorder } = openPit({
      market,
      sessionId: 1,
      journal: null,
      clock: systemClock,
      phase: () => ({ sessionId: 1, phase: "settling", endsAtMs: 0 }),
    });
    for (const e of new Journal(db).read(1)) pit.replay(e.command);
    const replayed = pit.reads.closeOut()!;
    const { plan } = buildPlan({
      chainId: 31337,
      vault,
      sessionId: 1,
      treasury,
      pairs: market.pairs,
      openingBalances: (session.info.opening as { accountId: number; tokenIndex: number; amount: bigint }[]).map((b) => ({ ...b, amount: BigInt(b.amount) })),
      events: recorder.events(),
      deltas: replayed.deltas,
      maxEntriesPerBatch: 2,
    });
    expect(plan.batchRoot).to.equal(rec.plan.batchRoot);
    const onChain = await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "session", args: [1] });
    expect(onChain.phase).to.equal(3); // Finalized
    expect(onChain.batchRoot).to.equal(plan.batchRoot);
    expect(onChain.batchesPosted).to.equal(plan.batches.length);
    expect(onChain.fillLogHash).to.equal(plan.fillLogHash);
    for (const t of record.tokens) {
      expect(await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "sessionNet", args: [1, t.address as Address] })).to.equal(0n);
    }
    for (const u of users) {
      const id = (await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "accountIdOf", args: [u.address] })) as number;
      for (const t of record.tokens.filter((x) => market.engine.assets.some((a) => a.id === x.index))) {
        const final = replayed.balances.find((b) => b.user === id && b.asset === t.index)?.amount ?? 0n;
        expect(await vaultBalance(node.client, record, u.address, t.symbol), `${u.address} ${t.symbol}`).to.equal(final);
      }
    }
    // Each settlement step was mined exactly once.
    const steps = listOutbox(db, "session:1:");
    expect(steps.every((s) => s.status === "mined")).to.equal(true);
    expect(steps.map((s) => s.step)).to.include.members(["session:1:start", "session:1:begin", "session:1:finalize", ...plan.batches.map((b) => `session:1:batch:${b.index}`)]);
    db.close();
  });
});
