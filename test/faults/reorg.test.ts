// Reorgs on a real Hardhat node: evm_snapshot / evm_revert, then other blocks mined in the
// reverted blocks' place. The watcher must never credit a re-mined deposit twice, must rewind to
// the fork and signal a reorg that reaches its cursor (also after a restart: the cursor's hash is
// in the store), and the tx sender must count its transaction only once it has its confirmations,
// re-broadcasting the same bytes when a reorg drops it.
import { expect } from "chai";
import { createWalletClient, encodeFunctionData, http, type Address, type Hex } from "viem";
import { hardhat } from "viem/chains";
import { openDatabase, transaction } from "../../keeper/store/database.ts";
import { getCursor, getCursorHash, setCursor } from "../../keeper/store/ledger.ts";
import { getOutbox } from "../../keeper/store/outbox.ts";
import { VaultWatcher, type ReorgInfo } from "../../keeper/chain/watcher.ts";
import { TxSender } from "../../keeper/chain/tx-sender.ts";
import { createChainClients } from "../../keeper/chain/client.ts";
import { erc20Abi, vaultAbi } from "../../keeper/chain/vault-abi.ts";
import type { DeploymentRecord } from "../../keeper/chain/deploy.ts";
import { LOCAL_SETTLER_KEY } from "../../keeper/config.ts";
import { Metrics } from "../../keeper/ops/metrics.ts";
import { deploy, startNode, user, type Node } from "../support/chain.ts";
import { keeperLike } from "./keeper-like.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("faults: chain reorgs", function () {
  this.timeout(240_000);
  let node: Node;
  let record: DeploymentRecord;
  let vault: Address;
  before(async () => {
    node = await startNode();
    record = (await deploy(node.url)).record;
    vault = record.vault as Address;
  });
  after(() => node?.stop());

  const rpc = <T = unknown>(method: string, params: unknown[] = []) => node.client.request({ method: method as never, params: params as never }) as Promise<T>;
  /** Mines a block that cannot equal the one it replaces (a later timestamp). */
  const mineOther = async (seconds = 7) => {
    await rpc("evm_increaseTime", [seconds]);
    await rpc("evm_mine");
  };
  const usdc = () => record.tokens.find((t) => t.symbol === "USDC")!.address as Address;

  /** Mints and approves (mined now); returns the signed deposit, to be broadcast (and re-broadcast) at will. */
  async function signedDeposit(index: number, amount: bigint): Promise<Hex> {
    const who = user(index);
    const w = createWalletClient({ chain: hardhat, transport: http(node.url), account: who });
    for (const [address, fn, args] of [
      [usdc(), "mint", [who.address, amount]],
      [usdc(), "approve", [vault, amount]],
    ] as const) {
      const hash = await w.writeContract({ address, abi: erc20Abi, functionName: fn, args: args as never });
      await node.client.waitForTransactionReceipt({ hash });
    }
    const req = await w.prepareTransactionRequest({ to: vault, data: encodeFunctionData({ abi: vaultAbi, functionName: "deposit", args: [usdc(), amount] }) });
    return w.signTransaction(req as never);
  }

  const watcherOn = (db: ReturnType<typeof openDatabase>, k: ReturnType<typeof keeperLike>, reorgs: ReorgInfo[], keepBlocks = 256) =>
    new VaultWatcher({ client: node.client, vault, confirmations: 0, pollMs: 50, db, keepBlocks, cursor: k.cursor, apply: k.apply, onReorg: (r) => reorgs.push(r) });

  it("credits a re-mined deposit once, rewinding to the fork block and signalling the reorg", async () => {
    const db = openDatabase(":memory:");
    transaction(db, () => setCursor(db, BigInt(record.startBlock) - 1n));
    const k = keeperLike(db);
    const reorgs: ReorgInfo[] = [];
    const w = watcherOn(db, k, reorgs);
    const raw = await signedDeposit(8, 5_000_000n);
    await w.poll();
    const fork = await node.client.getBlockNumber({ cacheTime: 0 });
    const snap = await rpc<string>("evm_snapshot");
    const hash = await rpc<Hex>("eth_sendRawTransaction", [raw]);
    const first = await node.client.waitForTransactionReceipt({ hash });
    await w.poll();
    const key = `${user(8).address}:${usdc()}`;
    expect(k.credited.get(key)).to.equal(5_000_000n);

    // The deposit's block is replaced; the same transaction is mined again, one block later.
    expect(await rpc("evm_revert", [snap])).to.equal(true);
    await mineOther();
    expect(await rpc<Hex>("eth_sendRawTransaction", [raw])).to.equal(hash);
    const again = await node.client.waitForTransactionReceipt({ hash });
    expect(again.blockNumber).to.equal(first.blockNumber + 1n);
    await w.poll();

    expect(reorgs).to.have.length(1);
    expect(reorgs[0]!.forkBlock).to.equal(fork);
    expect(reorgs[0]!.exact).to.equal(true);
    const deposits = reorgs[0]!.reverted.filter((e) => e.kind === "deposit");
    expect(deposits).to.have.length(1);
    expect(deposits[0]!.key.startsWith(hash)).to.equal(true);
    expect(k.credited.get(key), "credited once").to.equal(5_000_000n);
    expect(k.events.filter((e) => e.kind === "deposit" && e.address === user(8).address)).to.have.length(1);
    const head = await node.client.getBlockNumber({ cacheTime: 0 });
    expect(getCursor(db)).to.equal(head);
    expect(getCursorHash(db)).to.equal((await node.client.getBlock({ blockNumber: head })).hash);
  });

  it("signals a deposit reorged away, also to a watcher restarted after the reorg", async () => {
    const db = openDatabase(":memory:");
    transaction(db, () => setCursor(db, BigInt(record.startBlock) - 1n));
    const k = keeperLike(db);
    const raw = await signedDeposit(9, 7_000_000n);
    await watcherOn(db, k, []).poll();
    const fork = await node.client.getBlockNumber({ cacheTime: 0 });
    const snap = await rpc<string>("evm_snapshot");
    await node.client.waitForTransactionReceipt({ hash: await rpc<Hex>("eth_sendRawTransaction", [raw]) });
    await watcherOn(db, k, []).poll();
    const cursorBefore = getCursor(db)!;
    expect(k.credited.get(`${user(9).address}:${usdc()}`)).to.equal(7_000_000n);

    // Keeper down; the chain drops the deposit's block and grows past it without it.
    await rpc("evm_revert", [snap]);
    for (let i = 0; i < 3; i++) await mineOther();
    const reorgs: ReorgInfo[] = [];
    await watcherOn(db, k, reorgs).poll();
    expect(reorgs).to.have.length(1);
    expect(reorgs[0]!.forkBlock).to.equal(fork);
    expect(reorgs[0]!.cursor).to.equal(cursorBefore);
    expect(reorgs[0]!.reverted.filter((e) => e.kind === "deposit").map((e) => [e.account, e.token])).to.deep.equal([[user(9).address, usdc()]]);
    expect(getCursor(db)).to.equal(await node.client.getBlockNumber({ cacheTime: 0 }));
    expect(k.credited.get(`${user(9).address}:${usdc()}`)).to.equal(7_000_000n); // the keeper's to undo, on the signal
  });

  it("says so when a reorg is deeper than the blocks it remembers", async () => {
    const db = openDatabase(":memory:");
    const k = keeperLike(db);
    const start = await node.client.getBlockNumber({ cacheTime: 0 });
    transaction(db, () => setCursor(db, start));
    const reorgs: ReorgInfo[] = [];
    const snap = await rpc<string>("evm_snapshot");
    for (let i = 0; i < 5; i++) {
      await mineOther();
      await watcherOn(db, k, reorgs, 2).poll();
    }
    await rpc("evm_revert", [snap]);
    for (let i = 0; i < 6; i++) await mineOther(11);
    await watcherOn(db, k, reorgs, 2).poll();
    expect(reorgs).to.have.length(1);
    expect(reorgs[0]!.exact).to.equal(false);
    expect(getCursor(db)).to.equal(await node.client.getBlockNumber({ cacheTime: 0 }));
  });

  it("re-broadcasts its own transaction when a reorg drops it, and counts it only after its confirmations", async () => {
    const db = openDatabase(":memory:");
    const metrics = new Metrics();
    const sender = new TxSender({
      clients: createChainClients({ rpcUrl: node.url, chainId: 31337, settlerKey: LOCAL_SETTLER_KEY, pollMs: 50 }),
      db,
      abi: vaultAbi,
      timeoutMs: 60_000,
      bumpPercent: 20,
      pollMs: 50,
      confirmations: 2,
      metrics,
    });
    const settler = sender.address;
    const nonce0 = await node.client.getTransactionCount({ address: settler });
    const target = user(15).address;
    const snap = await rpc<string>("evm_snapshot");
    let settled = false;
    const sent = sender.send("ops:register:15", vault, encodeFunctionData({ abi: vaultAbi, functionName: "register", args: [target] })).finally(() => (settled = true));
    // Mined (automine) but not confirmed: nobody mines the two blocks on top.
    let receiptBlock = 0n;
    for (let i = 0; i < 200 && receiptBlock === 0n; i++) {
      const row = getOutbox(db, "ops:register:15");
      if (row !== undefined) receiptBlock = (await node.client.getTransactionReceipt({ hash: row.hashes[0]! }).catch(() => undefined))?.blockNumber ?? 0n;
      await sleep(25);
    }
    expect(receiptBlock > 0n).to.equal(true);
    await sleep(300);
    expect(settled, "not counted before its confirmations").to.equal(false);
    expect(getOutbox(db, "ops:register:15")!.status).to.equal("sent");

    await rpc("evm_revert", [snap]);
    await mineOther(); // the height it was mined at now holds another block
    const miner = setInterval(() => void mineOther().catch(() => {}), 300);
    try {
      const tx = await sent;
      const row = getOutbox(db, "ops:register:15")!;
      expect(row.status).to.equal("mined");
      expect(row.hashes, "the same bytes went out again").to.have.length(1);
      expect(tx.hash).to.equal(row.hashes[0]);
      // Re-mined at the same height (re-broadcast before the other block) or above it; either way
      // in the canonical chain, which the block hash below checks.
      expect(BigInt(tx.block) >= receiptBlock).to.equal(true);
      expect(row.blockHash).to.equal((await node.client.getBlock({ blockNumber: BigInt(tx.block) })).hash);
      expect(metrics.chainTxDropped.values.get("")).to.equal(1);
    } finally {
      clearInterval(miner);
    }
    expect(await node.client.getTransactionCount({ address: settler })).to.equal(nonce0 + 1);
    expect(await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "accountIdOf", args: [target] })).to.be.greaterThan(0);
  });
});
