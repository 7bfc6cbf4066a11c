// Requests for quote end to end on a real Hardhat node: built-in brokers trade a session in which
// a momentum trader too big for the top of the book asks for blocks and market makers quote them
// (an AI taker on a local OpenAI-compatible endpoint crosses the book so there is a tape to
// follow). The block trades are fills marked `block` from the engine through the recorder to the
// published fill log; the session settles and finalizes, and the vault's balances are what the
// log's fills (block trades included) replay to; `npm run audit` passes the session and counts
// its block trades, and fails a published log whose block trade was changed, unmarked or dropped.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";
import pino from "pino";
import type { Address } from "viem";
import { createKeeper, type Keeper } from "../../keeper/keeper.ts";
import { loadConfig } from "../../keeper/config.ts";
import { vaultAbi } from "../../keeper/chain/vault-abi.ts";
import { parseDeployment } from "../../keeper/chain/deployment.ts";
import type { DeploymentRecord } from "../../keeper/chain/deploy.ts";
import type { CloseOut, FillEvent } from "../../keeper/core/types.ts";
import { decodeEntries } from "../../keeper/settlement/batches.ts";
import { encodeFillLog, parseFillLog, type FillLog, type FillLogEvent, type FillLogFill } from "../../keeper/settlement/fill-log.ts";
import { deploy, mintAndDeposit, startNode, user, vaultBalance, type Node } from "../support/chain.ts";
import { startFakeModel } from "../support/fake-model.ts";
import { repoRoot, startIndexer, waitForBlock, type Indexer } from "../support/indexer.ts";
import { signed } from "../support/keeper.ts";

type Run = { code: number | null; stdout: string; stderr: string };

/** `npm run audit -- …` as an outsider runs it (as test/scripts/audit.test.ts does). */
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

/** The line the report prints for check `name`: its status word and detail. */
function checkLine(run: Run, name: string): { status: string; detail: string } | undefined {
  const line = run.stdout.split("\n").find((l) => l.trim().replace(/^(ok|FAIL)\s+/, "").startsWith(name));
  if (line === undefined) return undefined;
  const status = line.trim().split(/\s+/)[0]!;
  return { status, detail: line.slice(line.indexOf(name) + name.length).trim() };
}

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms: number) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
};

const key = (accountId: number, tokenIndex: number) => `${accountId}/${tokenIndex}`;

/**
 * The (account, token) deltas `events` imply, summed here from the fill log's own unit rules
 * rather than by the settlement code under test.
 */
function replay(log: FillLog, events: readonly FillLogEvent[]): Map<string, bigint> {
  const out = new Map<string, bigint>();
  const add = (accountId: number, tokenIndex: number, amount: bigint) => out.set(key(accountId, tokenIndex), (out.get(key(accountId, tokenIndex)) ?? 0n) + amount);
  for (const e of events) {
    if (e.type === "transfer") {
      add(e.from, e.tokenIndex, -e.amount);
      add(e.to, e.tokenIndex, e.amount);
      continue;
    }
    const pair = log.header.pairs.find((p) => p.pairId === e.pairId)!;
    const buyer = e.takerSide === "buy" ? e.taker : e.maker;
    const seller = e.takerSide === "buy" ? e.maker : e.taker;
    const quote = e.priceTicks * e.sizeLots * pair.tickSize;
    add(buyer, pair.base, e.sizeLots * pair.lotSize);
    add(seller, pair.base, -e.sizeLots * pair.lotSize);
    add(buyer, pair.quote, -quote - (buyer === e.taker ? e.takerFee : e.makerFee));
    add(seller, pair.quote, quote - (seller === e.taker ? e.takerFee : e.makerFee));
    add(log.header.treasury, pair.quote, e.makerFee + e.takerFee);
  }
  return out;
}

/** A fill as the engine emits it and as the fill log records it, for comparing the two. */
const tradeOf = (f: FillLogFill | FillEvent) =>
  "kind" in f
    ? { pairId: f.pair, maker: f.maker, taker: f.taker, takerSide: f.takerSide, price: BigInt(f.price), size: BigInt(f.size), makerFee: BigInt(f.makerFee), takerFee: BigInt(f.takerFee) }
    : { pairId: f.pairId, maker: f.maker, taker: f.taker, takerSide: f.takerSide, price: f.priceTicks, size: f.sizeLots, makerFee: f.makerFee, takerFee: f.takerFee };

describe("requests for quote settle on-chain and pass the audit", function () {
  this.timeout(300_000);

  let node: Node;
  let keeper: Keeper | undefined;
  let model: Awaited<ReturnType<typeof startFakeModel>> | undefined;
  let indexer: Indexer | undefined;
  let record: DeploymentRecord;
  let dir: string;
  let sessionId: number;
  /** Fills as the engine emitted them during the session, in order. */
  const engineFills: FillEvent[] = [];
  let recorded: FillLogEvent[];
  let closeOut: CloseOut;
  let log: FillLog;
  let logPath: string;
  let accounts: { address: Address; accountId: number; role: "maker" | "momentum" | "taker" | "treasury" | "insurance" }[];
  const deposits = new Map<string, bigint>();

  const blocksOf = (l: FillLog) => l.events.filter((e): e is FillLogFill => e.type === "fill" && e.block === true);

  before(async function () {
    dir = mkdtempSync(join(tmpdir(), "cme-rfq-settlement-"));
    node = await startNode();
    model = await startFakeModel();
    ({ record } = await deploy(node.url));
    // Three market makers quote the book and answer requests; two degenerate momentum traders
    // want 30 lots at a time, more than the makers' 3-4 lot clips at the top level, so they ask
    // for blocks; the AI taker alternately lifts and hits, which is the tape momentum follows.
    const makers = [4, 5, 6].map(user);
    const momentum = [7, 8].map(user);
    const taker = user(9);
    const full = { USDC: 10_000_000_000n, PEPE: 3n * 10n ** 24n, WIF: 3n * 10n ** 19n };
    for (const [u, funds] of [...[...makers, ...momentum].map((u) => [u, full] as const), [taker, { USDC: 5_000_000_000n }] as const]) {
      await mintAndDeposit(node.url, record, u, funds);
      for (const [symbol, amount] of Object.entries(funds)) deposits.set(`${u.address.toLowerCase()}/${symbol}`, amount);
    }

    const config = loadConfig(
      {},
      {
        rpcUrl: node.url,
        dbPath: join(dir, "keeper.sqlite"),
        port: 0,
        logLevel: "silent",
        preSessionSec: 4,
        tradingSec: 20,
        closingSec: 1,
        tickMs: 250,
        confirmations: 0,
        chainPollMs: 100,
        batchEntries: 4,
      },
    );
    keeper = await createKeeper(config, { deployment: parseDeployment(record), env: { CME_LOCAL_BASE_URL: model.url }, logger: pino({ level: "silent" }) });
    keeper.runner.events.on("pit", (pit) =>
      pit.subscribe((_cmd, r) => {
        if (r.ok) for (const e of r.events) if (e.kind === "fill") engineFills.push(e);
      }),
    );
    await keeper.start();
    const base = await keeper.app.listen({ host: "127.0.0.1", port: 0 });
    const post = async (path: string, body: unknown) => {
      const r = await fetch(base + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    const vault = record.vault as Address;
    await until("deposits seen", async () => {
      const r = await fetch(`${base}/api/accounts/${taker.address}`);
      return ((await r.json()) as { accountId: number | null }).accountId !== null;
    }, 20_000);
    const brokers = [
      ...makers.map((u) => [u, "rule-market-maker", "spread 2 ticks, size 3, risk limit 100"] as const),
      ...momentum.map((u) => [u, "rule-momentum", "degen, size 20, threshold 0, risk limit 1000"] as const),
      [taker, "local-llm", "cross the book"] as const,
    ];
    for (const [u, brokerId, prompt] of brokers) {
      const b = await post("/set-broker", await signed(u, "SetBroker", { brokerId }, { vault }));
      expect(b.status, JSON.stringify(b.json)).to.equal(200);
      const p = await post("/set-prompt", await signed(u, "SetPrompt", { prompt }, { vault }));
      expect(p.status, JSON.stringify(p.json)).to.equal(200);
    }

    await until("trading", () => keeper!.runner.current.phase === "trading", 30_000);
    sessionId = keeper.runner.current.id;
    const pit = keeper.runner.pit!;
    const recorder = keeper.runner.fillLog!;
    await until("a block trade", () => engineFills.some((f) => f.block === true), 40_000);
    await until("finalized", async () => ((await keeper!.service.settlement(sessionId)) as { status: string } | undefined)?.status === "finalized", 90_000);
    recorded = recorder.events();
    closeOut = pit.reads.closeOut()!;
    const r = await fetch(`${base}/api/sessions/${sessionId}/fill-log`);
    expect(r.status).to.equal(200);
    const published = await r.text();
    const parsed = parseFillLog(published);
    if (!parsed.ok) throw new Error(`published fill log: ${parsed.message}`);
    log = parsed.log;
    logPath = join(dir, `session-${sessionId}.jsonl`);
    writeFileSync(logPath, published);
    accounts = [];
    const roles = [
      ...makers.map((u) => [u.address, "maker"] as const),
      ...momentum.map((u) => [u.address, "momentum"] as const),
      [taker.address, "taker"] as const,
      [record.treasury as Address, "treasury"] as const,
      [record.insurance as Address, "insurance"] as const,
    ];
    for (const [address, role] of roles) {
      const accountId = (await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "accountIdOf", args: [address] })) as number;
      accounts.push({ address, accountId, role });
    }
    // The next session would trade on while the audit runs: the published log is all it needs.
    await keeper.stop();
    keeper = undefined;
    indexer = await startIndexer(node.url, record);
    await waitForBlock(indexer.url, await node.client.getBlockNumber());
  });

  after(async () => {
    await keeper?.stop();
    await indexer?.stop();
    await model?.close();
    node?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("marks block trades from the engine through the recorder to the published fill log, beside book fills", () => {
    const blocks = blocksOf(log);
    expect(blocks.length, "block trades in the fill log").to.be.greaterThan(0);
    const bookFills = log.events.filter((e) => e.type === "fill" && e.block !== true);
    expect(bookFills.length, "book fills in the fill log").to.be.greaterThan(0);
    // The engine's fills, block or not, are the log's fills one for one and in order.
    const logFills = log.events.filter((e): e is FillLogFill => e.type === "fill");
    expect(logFills.map(tradeOf)).to.deep.equal(engineFills.map(tradeOf));
    expect(logFills.map((f) => f.block === true)).to.deep.equal(engineFills.map((f) => f.block === true));
    expect(recorded).to.deep.equal(log.events);
    // The requester takes, the quoter makes (rfq.ts rule 5): here momentum asks and makers answer.
    const roleOf = (id: number) => accounts.find((a) => a.accountId === id)?.role;
    expect(new Set(blocks.map((b) => roleOf(b.taker)))).to.deep.equal(new Set(["momentum"]));
    expect(new Set(blocks.map((b) => roleOf(b.maker)))).to.deep.equal(new Set(["maker"]));
  });

  it("settles and finalizes: the vault holds what the fills, block trades included, replay to, and the keeper's final inventory", async () => {
    const vault = record.vault as Address;
    const s = await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "session", args: [sessionId] });
    expect(s.phase, "finalized").to.equal(3);
    for (const t of record.tokens) {
      const net = await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "sessionNet", args: [sessionId, t.address as Address] });
      expect(net, `${t.symbol} net`).to.equal(0n);
    }

    // What the vault applied: the entries of every batch posted for the session.
    const posted = await node.client.getContractEvents({ address: vault, abi: vaultAbi, eventName: "BatchPosted", args: { sessionId }, fromBlock: 0n });
    expect(posted.length).to.equal(s.batchCount);
    const onChain = new Map<string, bigint>();
    const perToken = new Map<number, bigint>();
    for (const ev of posted) {
      for (const e of decodeEntries(ev.args.entries!)) {
        onChain.set(key(e.accountId, e.tokenIndex), (onChain.get(key(e.accountId, e.tokenIndex)) ?? 0n) + e.delta);
        perToken.set(e.tokenIndex, (perToken.get(e.tokenIndex) ?? 0n) + e.delta);
      }
    }
    for (const [t, sum] of perToken) expect(sum, `token ${t} deltas sum`).to.equal(0n);

    const expected = replay(log, log.events);
    const nonZero = (m: Map<string, bigint>) => new Map([...m].filter(([, v]) => v !== 0n));
    expect(nonZero(onChain)).to.deep.equal(nonZero(expected));

    // Without the block trades the same log replays to other deltas for their parties: the
    // balances below hold only because settlement carried the block trades.
    const withoutBlocks = replay(log, log.events.filter((e) => !(e.type === "fill" && e.block === true)));
    const parties = new Set(blocksOf(log).flatMap((b) => [b.maker, b.taker]));
    const moved = [...parties].filter((id) => record.tokens.some((t) => (expected.get(key(id, t.index)) ?? 0n) !== (withoutBlocks.get(key(id, t.index)) ?? 0n)));
    expect(moved.length, "block-trade parties whose deltas the block trades change").to.be.greaterThan(0);

    const opening = new Map(log.balances.map((b) => [key(b.accountId, b.tokenIndex), b.amount]));
    for (const { address, accountId } of accounts) {
      for (const t of record.tokens) {
        const deposited = deposits.get(`${address.toLowerCase()}/${t.symbol}`) ?? 0n;
        expect(opening.get(key(accountId, t.index)) ?? 0n, `${address} ${t.symbol} opening`).to.equal(deposited);
        const balance = await vaultBalance(node.client, record, address, t.symbol);
        const delta = expected.get(key(accountId, t.index)) ?? 0n;
        expect(balance, `${address} ${t.symbol}: opening plus replayed fills`).to.equal(deposited + delta);
        const final = closeOut.balances.find((b) => b.user === accountId && b.asset === t.index)?.amount ?? 0n;
        expect(balance, `${address} ${t.symbol}: the keeper's final inventory`).to.equal(final);
      }
    }
  });

  it("npm run audit passes the session, checking the vault too, and counts its block trades", async function () {
    const run = await audit("--session", String(sessionId), "--graphql", indexer!.graphqlUrl, "--fill-log", logPath, "--rpc", node.url);
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    expect(run.stdout).to.match(new RegExp(`PASS: session ${sessionId} reproduces from public data \\(finalized`));
    for (const name of ["indexer matches the vault", "fill log hash", "fill log format", "batch chain root", "indexed deltas", "deltas net to zero", "fills reproduce deltas", "no negative balance"]) {
      expect(checkLine(run, name)?.status, name).to.equal("ok");
    }
    const fills = log.events.filter((e) => e.type === "fill").length;
    const blocks = blocksOf(log).length;
    expect(checkLine(run, "fill log format")!.detail).to.contain(`${fills} fills (${blocks} block trade${blocks === 1 ? "" : "s"})`);
  });

  /** Writes `tampered` next to the published log and audits the session with it. */
  async function auditTampered(name: string, tampered: FillLog): Promise<Run> {
    const path = join(dir, `${name}.jsonl`);
    writeFileSync(path, encodeFillLog(tampered));
    const run = await audit("--session", String(sessionId), "--graphql", indexer!.graphqlUrl, "--fill-log", path);
    expect(run.code, run.stdout + run.stderr).to.equal(1);
    return run;
  }

  /** The first block trade of a copy of the published log, and the copy. */
  function firstBlock(): { copy: FillLog; block: FillLogFill; index: number } {
    const copy = structuredClone(log);
    const index = copy.events.findIndex((e) => e.type === "fill" && e.block === true);
    return { copy, block: copy.events[index] as FillLogFill, index };
  }

  const usdc = () => record.tokens.find((t) => t.symbol === "USDC")!.index;

  it("fails a log whose block trade's price was changed, naming the two parties' USDC", async () => {
    const { copy, block } = firstBlock();
    block.priceTicks += 1n;
    const run = await auditTampered("price", copy);
    expect(checkLine(run, "fill log hash")!.status).to.equal("FAIL");
    const reproduce = checkLine(run, "fills reproduce deltas")!;
    expect(reproduce.status).to.equal("FAIL");
    // One more tick moves sizeLots * tickSize quote units from buyer to seller, and nothing else.
    const tick = block.sizeLots * log.header.pairs.find((p) => p.pairId === block.pairId)!.tickSize;
    const [buyer, seller] = block.takerSide === "buy" ? [block.taker, block.maker] : [block.maker, block.taker];
    const expected = replay(log, log.events);
    expect(reproduce.detail).to.contain(`account ${buyer} USDC: fills give ${(expected.get(key(buyer, usdc())) ?? 0n) - tick}, posted ${expected.get(key(buyer, usdc())) ?? 0n}`);
    expect(reproduce.detail).to.contain(`account ${seller} USDC: fills give ${(expected.get(key(seller, usdc())) ?? 0n) + tick}, posted ${expected.get(key(seller, usdc())) ?? 0n}`);
    expect(reproduce.detail.split("; ")).to.have.length(2);
    expect(run.stdout).to.match(new RegExp(`FAIL: session ${sessionId}: 2 checks failed \\(fill log hash, fills reproduce deltas\\)`));
  });

  it("fails a log whose block trade lost its block flag: only the hash tells, and it says the change moves no value", async () => {
    const { copy, index } = firstBlock();
    const { block: _dropped, ...unmarked } = copy.events[index] as FillLogFill;
    copy.events[index] = unmarked;
    const run = await auditTampered("unmarked", copy);
    const hash = checkLine(run, "fill log hash")!;
    expect(hash.status).to.equal("FAIL");
    expect(hash.detail).to.match(/its fills still reproduce every posted delta, so what changed moves no value \(a block flag/);
    expect(checkLine(run, "fills reproduce deltas")!.status).to.equal("ok");
    const blocks = blocksOf(log).length - 1;
    expect(checkLine(run, "fill log format")!.detail).to.contain(`(${blocks} block trade${blocks === 1 ? "" : "s"})`);
    expect(run.stdout).to.match(new RegExp(`FAIL: session ${sessionId}: 1 check failed \\(fill log hash\\)`));
  });

  it("fails a log missing a block trade, naming the accounts whose deltas it no longer gives", async () => {
    const { copy, block, index } = firstBlock();
    copy.events.splice(index, 1);
    const run = await auditTampered("dropped", copy);
    expect(checkLine(run, "fill log hash")!.status).to.equal("FAIL");
    const reproduce = checkLine(run, "fills reproduce deltas")!;
    expect(reproduce.status).to.equal("FAIL");
    // Its base and quote for both parties, and the fees for the treasury, are what no longer add up.
    const pair = log.header.pairs.find((p) => p.pairId === block.pairId)!;
    const symbol = (t: number) => record.tokens.find((x) => x.index === t)!.symbol;
    const named = [...reproduce.detail.matchAll(/account (\d+) (\w+): fills give/g)].map((m) => `${m[1]} ${m[2]}`);
    const expected = [block.maker, block.taker].flatMap((id) => [`${id} ${symbol(pair.base)}`, `${id} ${symbol(pair.quote)}`]);
    if (block.makerFee + block.takerFee !== 0n) expected.push(`${log.header.treasury} ${symbol(pair.quote)}`);
    expect(new Set(named)).to.deep.equal(new Set(expected));
  });
});
