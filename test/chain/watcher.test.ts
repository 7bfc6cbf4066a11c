// The vault watcher against a real Hardhat node: each event is handed over once and the cursor's
// block hash is kept in the store; an empty getLogs answer is cross-checked against the blocks'
// logsBloom (and refused when the block, asked for by hash, does hold vault events), at no extra
// cost for blocks whose bloom rules the vault out.
import { expect } from "chai";
import type { Address, PublicClient } from "viem";
import { openDatabase, transaction, type Db } from "../../keeper/store/database.ts";
import { getCursor, getCursorHash, setCursor } from "../../keeper/store/ledger.ts";
import { VaultWatcher, WatcherError, bloomMayContain, type WatcherOptions } from "../../keeper/chain/watcher.ts";
import { keeperLike } from "../faults/keeper-like.ts";
import type { DeploymentRecord } from "../../keeper/chain/deploy.ts";
import { deploy, mintAndDeposit, startNode, user, type Node } from "../support/chain.ts";

describe("VaultWatcher", function () {
  this.timeout(180_000);
  let node: Node;
  let record: DeploymentRecord;
  let vault: Address;
  before(async () => {
    node = await startNode();
    record = (await deploy(node.url)).record;
    vault = record.vault as Address;
  });
  after(() => node?.stop());

  const watcher = (db: Db, k: ReturnType<typeof keeperLike>, over: Partial<WatcherOptions> = {}) =>
    new VaultWatcher({ client: node.client, vault, confirmations: 0, pollMs: 50, db, cursor: k.cursor, apply: k.apply, ...over });
  const usdc = () => record.tokens.find((t) => t.symbol === "USDC")!.address as Address;

  it("hands each vault event over once and keeps the cursor's block hash across restarts", async () => {
    const db = openDatabase(":memory:");
    const k = keeperLike(db);
    transaction(db, () => setCursor(db, BigInt(record.startBlock) - 1n));
    await mintAndDeposit(node.url, record, user(4), { USDC: 1_000_000n });
    await mintAndDeposit(node.url, record, user(5), { USDC: 2_000_000n });
    await watcher(db, k).poll();
    const head = await node.client.getBlockNumber({ cacheTime: 0 });
    expect(getCursor(db)).to.equal(head);
    expect(getCursorHash(db)).to.equal((await node.client.getBlock({ blockNumber: head })).hash);
    expect(k.credited.get(`${user(4).address}:${usdc()}`)).to.equal(1_000_000n);
    expect(k.credited.get(`${user(5).address}:${usdc()}`)).to.equal(2_000_000n);
    const seen = k.events.length;
    // A restarted watcher over the same store hands nothing over again, even from an older cursor.
    transaction(db, () => setCursor(db, BigInt(record.startBlock) - 1n));
    await watcher(db, keeperLikeOver(db, k)).poll();
    expect(k.events.length).to.equal(seen);
    expect(k.credited.get(`${user(4).address}:${usdc()}`)).to.equal(1_000_000n);
  });

  it("refuses an empty getLogs answer for a block whose bloom holds vault events, and takes the events once answered", async () => {
    const db = openDatabase(":memory:");
    const k = keeperLike(db);
    const w0 = watcher(db, k);
    await w0.poll(); // catch up first
    let lie = true;
    let byHash = 0;
    const client = new Proxy(node.client, {
      get(target, prop) {
        if (prop === "getLogs") {
          return async (args: { fromBlock?: bigint; blockHash?: string }) => {
            if (args.blockHash !== undefined) byHash++;
            if (lie && args.fromBlock !== undefined) return [];
            return target.getLogs(args as never);
          };
        }
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }) as PublicClient;
    const w = watcher(db, k, { client });
    const cursor = getCursor(db)!;
    await mintAndDeposit(node.url, record, user(6), { USDC: 3_000_000n });
    let caught: unknown;
    try {
      await w.poll();
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(WatcherError);
    expect((caught as WatcherError).details.reason).to.equal("missing_logs");
    expect(getCursor(db)).to.equal(cursor);
    expect(k.credited.get(`${user(6).address}:${usdc()}`)).to.equal(undefined);
    lie = false;
    await w.poll();
    expect(k.credited.get(`${user(6).address}:${usdc()}`)).to.equal(3_000_000n);

    // Blocks whose bloom rules the vault out cost no second query.
    byHash = 0;
    for (let i = 0; i < 3; i++) await node.client.request({ method: "evm_mine" as never });
    lie = true;
    await w.poll();
    expect(byHash).to.equal(0);
    expect(getCursor(db)).to.equal(await node.client.getBlockNumber({ cacheTime: 0 }));
  });

  it("reads the vault and its events in a block's logsBloom", async () => {
    await mintAndDeposit(node.url, record, user(7), { USDC: 1n });
    const withDeposit = await node.client.getBlock();
    const { keccak256, toHex } = await import("viem");
    const deposited = keccak256(toHex("Deposited(address,address,address,uint256,uint256)"));
    expect(bloomMayContain(withDeposit.logsBloom!, vault)).to.equal(true);
    expect(bloomMayContain(withDeposit.logsBloom!, deposited)).to.equal(true);
    await node.client.request({ method: "evm_mine" as never });
    const empty = await node.client.getBlock();
    expect(bloomMayContain(empty.logsBloom!, vault)).to.equal(false);
  });
});

/** Another keeper process over the same store and the same credits (a restart that kept its memory, for counting). */
function keeperLikeOver(db: Db, k: ReturnType<typeof keeperLike>): ReturnType<typeof keeperLike> {
  return { ...k, cursor: () => getCursor(db) ?? 0n };
}
