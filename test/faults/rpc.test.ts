// RPC faults through a JSON-RPC proxy in front of a real Hardhat node (test/support/rpc-proxy.ts):
// HTTP 500s before and after the node acted, cut-short JSON, calls slower than the client's
// timeout, a five-second outage (connection refused), getLogs answering [] for ranges. The tx
// sender, with the transport's own retries switched off so every failure reaches it, must land
// exactly one transaction per step and still report a vault revert at once; the watcher must
// credit each deposit exactly once and never skip one behind an empty answer.
import { expect } from "chai";
import { encodeFunctionData, type Address } from "viem";
import { openDatabase, transaction } from "../../keeper/store/database.ts";
import { getCursor, setCursor } from "../../keeper/store/ledger.ts";
import { createChainClients } from "../../keeper/chain/client.ts";
import { ChainError, TxSender } from "../../keeper/chain/tx-sender.ts";
import { VaultWatcher } from "../../keeper/chain/watcher.ts";
import { vaultAbi } from "../../keeper/chain/vault-abi.ts";
import type { DeploymentRecord } from "../../keeper/chain/deploy.ts";
import { LOCAL_SETTLER_KEY } from "../../keeper/config.ts";
import { Metrics } from "../../keeper/ops/metrics.ts";
import { deploy, mintAndDeposit, startNode, user, type Node } from "../support/chain.ts";
import { startRpcProxy, type RpcProxy } from "../support/rpc-proxy.ts";
import { keeperLike } from "./keeper-like.ts";

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

describe("faults: RPC (proxy)", function () {
  this.timeout(300_000);
  let node: Node;
  let record: DeploymentRecord;
  let vault: Address;
  let proxy: RpcProxy;
  before(async () => {
    node = await startNode();
    record = (await deploy(node.url)).record;
    vault = record.vault as Address;
    proxy = await startRpcProxy(node.url, { label: "faults/rpc" });
  });
  afterEach(() => {
    proxy.faults = { fail500Before: 0, fail500After: 0, corruptJson: 0, delayMs: 0, slowFraction: 0, slowMs: 0, emptyRangeLogs: false };
  });
  after(async () => {
    await proxy?.close();
    node?.stop();
  });

  function sender(over: { rpcRetryMs?: number } = {}) {
    const metrics = new Metrics();
    const warnings: { o: Record<string, unknown>; m: string }[] = [];
    const s = new TxSender({
      clients: createChainClients({ rpcUrl: proxy.url, chainId: 31337, settlerKey: LOCAL_SETTLER_KEY, pollMs: 50, retryCount: 0, timeoutMs: 400 }),
      db: openDatabase(":memory:"),
      abi: vaultAbi,
      timeoutMs: 30_000,
      bumpPercent: 20,
      pollMs: 50,
      rpcRetryMs: over.rpcRetryMs ?? 60_000,
      metrics,
      log: { info: () => {}, warn: (o, m) => warnings.push({ o: o as Record<string, unknown>, m }) },
    });
    return { s, metrics, warnings };
  }
  const register = (i: number) => encodeFunctionData({ abi: vaultAbi, functionName: "register", args: [user(i).address] });
  const accountId = (i: number) => node.client.readContract({ address: vault, abi: vaultAbi, functionName: "accountIdOf", args: [user(i).address] });

  it("lands exactly one transaction per step through 30% HTTP 500s, cut-short JSON and timeouts", async () => {
    proxy.faults = { ...proxy.faults, fail500Before: 0.15, fail500After: 0.15, corruptJson: 0.05, slowFraction: 0.05, slowMs: 800 };
    const { s, metrics, warnings } = sender();
    const nonce0 = await node.client.getTransactionCount({ address: s.address });
    const ids = [30, 31, 32, 33, 34, 35];
    const sent = await Promise.all(ids.map((i) => s.send(`ops:register:${i}`, vault, register(i))));
    expect(sent.every((t) => t.status === "mined")).to.equal(true);
    expect(await node.client.getTransactionCount({ address: s.address }), "one transaction per step").to.equal(nonce0 + ids.length);
    for (const i of ids) {
      expect(await accountId(i)).to.be.greaterThan(0);
      expect(s.status(`ops:register:${i}`)!.hashes).to.have.length(1);
    }
    console.log(`      injected: ${JSON.stringify(proxy.stats.injected)}; retried RPC failures: ${sum(metrics.chainRpcErrors.values)}`);
    expect((proxy.stats.injected["500_before"] ?? 0) + (proxy.stats.injected["500_after"] ?? 0)).to.be.greaterThan(0);
    expect(sum(metrics.chainRpcErrors.values)).to.be.greaterThan(0);
    expect(warnings.filter((w) => w.m === "chain step failed; retrying").length).to.equal(sum(metrics.chainRpcErrors.values));
  });

  it("rides out a five-second outage (connection refused) in the middle of a step", async () => {
    const { s, metrics, warnings } = sender();
    const nonce0 = await node.client.getTransactionCount({ address: s.address });
    let outage: Promise<void> = Promise.resolve();
    const first = s.send("ops:register:40", vault, register(40)).then((t) => {
      outage = proxy.outage(5_000); // the next step starts into a dead endpoint
      return t;
    });
    const rest = [41, 42].map((i) => s.send(`ops:register:${i}`, vault, register(i)));
    const started = Date.now();
    const all = await Promise.all([first, ...rest]);
    await outage;
    expect(Date.now() - started).to.be.greaterThan(4_500);
    expect(all.every((t) => t.status === "mined")).to.equal(true);
    expect(await node.client.getTransactionCount({ address: s.address })).to.equal(nonce0 + 3);
    for (const i of [40, 41, 42]) expect(await accountId(i)).to.be.greaterThan(0);
    expect(sum(metrics.chainRpcErrors.values)).to.be.greaterThan(0);
    expect(warnings.some((w) => w.m === "chain step failed; retrying" && /HTTP request failed|fetch failed/i.test(String(w.o.error)))).to.equal(true);
  });

  it("reports a vault revert at once, with its error name, through a flaky connection", async () => {
    proxy.faults = { ...proxy.faults, fail500Before: 0.15, fail500After: 0.15 };
    const { s } = sender({ rpcRetryMs: 120_000 });
    const started = Date.now();
    try {
      await s.send("session:77:begin", vault, encodeFunctionData({ abi: vaultAbi, functionName: "beginSettlement", args: [77, `0x${"00".repeat(32)}`, 0, `0x${"11".repeat(32)}`] }));
      expect.fail("expected the vault's refusal");
    } catch (err) {
      expect(err).to.be.instanceOf(ChainError);
      expect((err as ChainError).details.errorName).to.equal("WrongPhase");
    }
    expect(Date.now() - started).to.be.lessThan(20_000);
    expect(s.status("session:77:begin")).to.equal(undefined);
  });

  it("gives up on a dead endpoint only at its deadline, as a ChainError the caller can retry", async () => {
    const { s } = sender({ rpcRetryMs: 1_500 });
    const outage = proxy.outage(3_000);
    const started = Date.now();
    try {
      await s.send("ops:register:43", vault, register(43));
      expect.fail("expected the deadline");
    } catch (err) {
      expect(err).to.be.instanceOf(ChainError);
      expect((err as ChainError).details.errorName).to.equal(undefined);
      expect((err as Error).message).to.match(/still failing after \d+ s and \d+ attempts/);
    }
    expect(Date.now() - started).to.be.within(1_400, 2_900);
    await outage;
    expect((await s.send("ops:register:43", vault, register(43))).status).to.equal("mined");
  });

  it("credits each deposit once through 500s and a lagging getLogs backend", async () => {
    const db = openDatabase(":memory:");
    transaction(db, () => setCursor(db, BigInt(record.startBlock) - 1n));
    const k = keeperLike(db);
    const client = createChainClients({ rpcUrl: proxy.url, chainId: 31337, settlerKey: LOCAL_SETTLER_KEY, pollMs: 50, retryCount: 0, timeoutMs: 2_000 }).publicClient;
    const errors: string[] = [];
    const w = new VaultWatcher({ client, vault, confirmations: 0, pollMs: 50, db, cursor: k.cursor, apply: k.apply, onError: (e) => errors.push((e as Error).name) });
    const pollTillHead = async () => {
      const head = await node.client.getBlockNumber({ cacheTime: 0 });
      for (let i = 0; i < 500 && (getCursor(db) ?? 0n) < head; i++) await w.poll().catch((e: Error) => errors.push(e.name));
      expect(getCursor(db)).to.equal(head);
    };
    await pollTillHead();
    proxy.faults = { ...proxy.faults, fail500Before: 0.15, fail500After: 0.15, emptyRangeLogs: true };
    await mintAndDeposit(node.url, record, user(10), { USDC: 4_000_000n });
    await mintAndDeposit(node.url, record, user(11), { USDC: 6_000_000n });
    for (let i = 0; i < 300 && errors.filter((e) => e === "WatcherError").length < 3; i++) await w.poll().catch((e: Error) => errors.push(e.name));
    expect(k.credited.get(`${user(10).address}:${record.tokens[0]!.address}`) ?? 0n, "no deposit skipped behind an empty answer").to.equal(0n);
    expect(errors).to.include("WatcherError");
    proxy.faults = { ...proxy.faults, emptyRangeLogs: false };
    await pollTillHead();
    const usdc = record.tokens.find((t) => t.symbol === "USDC")!.address;
    expect(k.credited.get(`${user(10).address}:${usdc}`)).to.equal(4_000_000n);
    expect(k.credited.get(`${user(11).address}:${usdc}`)).to.equal(6_000_000n);
    expect(proxy.stats.injected.empty_logs).to.be.greaterThan(0);
  });
});
