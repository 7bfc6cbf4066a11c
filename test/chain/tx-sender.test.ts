// The settler's transaction sender against a real Hardhat node: a transaction stuck in the pool
// (mining off) is replaced with higher fees under the same nonce, the outbox keeps every hash, and
// sending the same step again after "a restart" (a new sender) waits for what was sent. A receipt
// counts once it has the configured confirmations (reorgs, fee caps and RPC faults: test/faults/).
import { expect } from "chai";
import { encodeFunctionData, parseTransaction, type Address } from "viem";
import { openDatabase } from "../../keeper/store/database.ts";
import { getOutbox } from "../../keeper/store/outbox.ts";
import { createChainClients } from "../../keeper/chain/client.ts";
import { TxSender, ChainError } from "../../keeper/chain/tx-sender.ts";
import { vaultAbi } from "../../keeper/chain/vault-abi.ts";
import { LOCAL_SETTLER_KEY } from "../../keeper/config.ts";
import { deploy, startNode, type Node } from "../support/chain.ts";

describe("TxSender", function () {
  this.timeout(180_000);
  let node: Node;
  let vault: Address;
  before(async () => {
    node = await startNode();
    vault = (await deploy(node.url)).record.vault as Address;
  });
  after(() => node?.stop());

  const sender = (db = openDatabase(":memory:"), timeoutMs = 300, confirmations = 0) =>
    new TxSender({
      clients: createChainClients({ rpcUrl: node.url, chainId: 31337, settlerKey: LOCAL_SETTLER_KEY, pollMs: 50 }),
      db,
      abi: vaultAbi,
      timeoutMs,
      bumpPercent: 20,
      pollMs: 50,
      confirmations,
    });
  const rpc = (method: string, params: unknown[] = []) => node.client.request({ method: method as never, params: params as never });

  it("bumps the fee of a stuck transaction and takes whichever version is mined", async () => {
    const db = openDatabase(":memory:");
    const s = sender(db);
    await rpc("evm_setAutomine", [false]);
    const data = encodeFunctionData({ abi: vaultAbi, functionName: "startSession", args: [1, BigInt(Math.floor(Date.now() / 1000) + 3600)] });
    const sent = s.send("session:1:start", vault, data);
    // Wait until at least one replacement went out, then mine.
    for (let i = 0; i < 100 && (getOutbox(db, "session:1:start")?.hashes.length ?? 0) < 2; i++) await new Promise((r) => setTimeout(r, 50));
    await rpc("evm_setAutomine", [true]);
    await rpc("evm_mine");
    const tx = await sent;
    const row = getOutbox(db, "session:1:start")!;
    expect(row.hashes.length).to.be.greaterThan(1);
    expect(row.status).to.equal("mined");
    const first = parseTransaction(row.raw);
    expect(row.hashes).to.include(tx.hash);
    expect(first.nonce).to.equal(row.nonce);
    expect((await node.client.readContract({ address: vault, abi: vaultAbi, functionName: "currentSessionId" }))).to.equal(1);
  });

  it("resumes a step from the outbox instead of sending it twice, and reports a vault refusal", async () => {
    const db = openDatabase(":memory:");
    const data = encodeFunctionData({ abi: vaultAbi, functionName: "beginSettlement", args: [1, `0x${"00".repeat(32)}`, 0, `0x${"11".repeat(32)}`] });
    const a = await sender(db).send("session:1:begin", vault, data);
    const countAfterFirst = await node.client.getTransactionCount({ address: a.hash ? (await node.client.getTransaction({ hash: a.hash })).from : vault });
    const b = await sender(db).send("session:1:begin", vault, data); // a "restarted" keeper
    expect(b.hash).to.equal(a.hash);
    expect(await node.client.getTransactionCount({ address: (await node.client.getTransaction({ hash: a.hash })).from })).to.equal(countAfterFirst);
    // A different step that the vault refuses never leaves the keeper.
    try {
      await sender(db).send("session:1:begin-again", vault, data);
      expect.fail("expected a refusal");
    } catch (err) {
      expect(err).to.be.instanceOf(ChainError);
      expect((err as ChainError).details.errorName).to.equal("WrongPhase");
    }
    expect(getOutbox(db, "session:1:begin-again")).to.equal(undefined);
  });

  it("counts a receipt only once it has its confirmations, and records what it cost", async () => {
    const db = openDatabase(":memory:");
    const s = sender(db, 60_000, 2);
    let done = false;
    const data = encodeFunctionData({ abi: vaultAbi, functionName: "register", args: ["0x00000000000000000000000000000000000c0ffe"] });
    const sent = s.send("ops:register:coffee", vault, data).finally(() => (done = true));
    for (let i = 0; i < 100 && getOutbox(db, "ops:register:coffee") === undefined; i++) await new Promise((r) => setTimeout(r, 25));
    const hash = getOutbox(db, "ops:register:coffee")!.hashes[0]!;
    const mined = await node.client.waitForTransactionReceipt({ hash });
    await rpc("evm_mine");
    await new Promise((r) => setTimeout(r, 400));
    expect(done, "one block on top is not two").to.equal(false);
    expect(getOutbox(db, "ops:register:coffee")!.status).to.equal("sent");
    expect(await s.reconcile(), "reconcile does not settle it either").to.equal(0);
    await rpc("evm_mine");
    const tx = await sent;
    expect(tx.block).to.equal(Number(mined.blockNumber));
    const row = getOutbox(db, "ops:register:coffee")!;
    expect(row.status).to.equal("mined");
    expect(row.blockHash).to.equal(mined.blockHash);
    expect(row.feeWei).to.equal(mined.gasUsed * mined.effectiveGasPrice);
  });
});
