// Fee spikes and an empty wallet on a real Hardhat node (hardhat_setNextBlockBaseFeePerGas,
// hardhat_setBalance): the tx sender never signs above the fee cap (new transactions and bumps
// alike) nor past the session's fee budget, waits while it cannot send and says so once (fee
// seen, cap, balance needed), shows the wait in `state`, the metric and /healthz, and carries on
// by itself when fees fall or funds arrive.
import { expect } from "chai";
import { encodeFunctionData, parseGwei, parseTransaction, type Address, type Hex } from "viem";
import { openDatabase, type Db } from "../../keeper/store/database.ts";
import { createChainClients } from "../../keeper/chain/client.ts";
import { ChainError, TxSender, type TxSenderOptions } from "../../keeper/chain/tx-sender.ts";
import { vaultAbi } from "../../keeper/chain/vault-abi.ts";
import { LOCAL_SETTLER_KEY } from "../../keeper/config.ts";
import { Metrics } from "../../keeper/ops/metrics.ts";
import { HealthRegistry } from "../../keeper/ops/health.ts";
import { deploy, startNode, user, type Node } from "../support/chain.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("faults: fees and funds", function () {
  this.timeout(240_000);
  let node: Node;
  let vault: Address;
  before(async () => {
    node = await startNode();
    vault = (await deploy(node.url)).record.vault as Address;
  });
  after(() => node?.stop());

  const rpc = <T = unknown>(method: string, params: unknown[] = []) => node.client.request({ method: method as never, params: params as never }) as Promise<T>;
  const hex = (x: bigint) => `0x${x.toString(16)}`;
  const nextBaseFee = (wei: bigint) => rpc("hardhat_setNextBlockBaseFeePerGas", [hex(wei)]);
  const register = (i: number) => encodeFunctionData({ abi: vaultAbi, functionName: "register", args: [user(i).address] });

  function sender(over: Partial<TxSenderOptions> & { db?: Db } = {}) {
    const logs: { level: string; o: Record<string, unknown>; m: string }[] = [];
    const metrics = new Metrics();
    const health = new HealthRegistry({ stallMs: 60_000 });
    const s = new TxSender({
      clients: createChainClients({ rpcUrl: node.url, chainId: 31337, settlerKey: LOCAL_SETTLER_KEY, pollMs: 50 }),
      db: over.db ?? openDatabase(":memory:"),
      abi: vaultAbi,
      timeoutMs: 60_000,
      bumpPercent: 20,
      pollMs: 50,
      log: { info: (o, m) => logs.push({ level: "info", o: o as Record<string, unknown>, m }), warn: (o, m) => logs.push({ level: "warn", o: o as Record<string, unknown>, m }) },
      metrics,
      health: health.component("tx-sender"),
      ...over,
    });
    return { s, logs, metrics, health };
  }
  const until = async (cond: () => boolean, what: string, ms = 20_000) => {
    for (const end = Date.now() + ms; !cond(); ) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(25);
    }
  };

  it("waits while the base fee is above the cap, says so once, and sends by itself when fees fall", async () => {
    const cap = parseGwei("50");
    const { s, logs, metrics, health } = sender({ maxFeePerGas: cap });
    const nonce0 = await node.client.getTransactionCount({ address: s.address });
    await nextBaseFee(parseGwei("500"));
    await rpc("evm_mine"); // the spike: the next block's base fee is now 437.5 gwei
    const sent = s.send("ops:register:20", vault, register(20));
    await until(() => s.state.status === "waiting", "the fee-cap wait");
    await sleep(500); // many polls
    const st = s.state;
    expect(st.status === "waiting" && st.reason).to.equal("fee_cap");
    if (st.status === "waiting" && st.reason === "fee_cap") {
      expect(st.feePerGas > cap).to.equal(true);
      expect(st.cap).to.equal(cap);
      expect(st.neededWei > 0n).to.equal(true);
    }
    const waits = logs.filter((l) => l.level === "warn" && /waiting/.test(l.m));
    expect(waits, "one warning for the whole wait").to.have.length(1);
    expect(waits[0]!.m).to.match(/fee 43\d\.\d+ gwei per gas is above the cap of 50 gwei/);
    expect(waits[0]!.m).to.match(/needs [\d.e-]+ ETH at this fee, the settler has [\d.e+-]+ ETH/);
    expect(metrics.txWaiting.values.get('reason="fee_cap"')).to.equal(1);
    const h = health.report();
    expect(h.ok).to.equal(false);
    expect(h.components["tx-sender"]!.reason).to.match(/above the cap/);
    expect(s.status("ops:register:20"), "nothing signed while waiting").to.equal(undefined);
    expect(await node.client.getTransactionCount({ address: s.address })).to.equal(nonce0);

    await nextBaseFee(parseGwei("1")); // fees fall
    const tx = await sent;
    const row = s.status("ops:register:20")!;
    expect(parseTransaction(row.raw).maxFeePerGas! <= cap).to.equal(true);
    expect(tx.status).to.equal("mined");
    expect(s.state.status).to.equal("idle");
    expect(metrics.txWaiting.values.get('reason="fee_cap"')).to.equal(0);
    expect(health.report().ok).to.equal(true);
    expect(logs.some((l) => /no longer waiting \(fee_cap\)/.test(l.m))).to.equal(true);
    expect(await node.client.getTransactionCount({ address: s.address })).to.equal(nonce0 + 1);
  });

  it("bumps a stuck transaction up to the cap, never above it, and lands it when fees fall", async () => {
    const cap = parseGwei("20");
    const { s, logs } = sender({ maxFeePerGas: cap, timeoutMs: 150 });
    const nonce0 = await node.client.getTransactionCount({ address: s.address });
    await nextBaseFee(parseGwei("1"));
    await rpc("evm_mine");
    await rpc("evm_setAutomine", [false]);
    try {
      const sent = s.send("ops:register:21", vault, register(21));
      await until(() => s.status("ops:register:21") !== undefined, "the first broadcast");
      await nextBaseFee(parseGwei("100")); // the pending block now asks 100 gwei: far above the cap
      await until(() => s.state.status === "waiting", "the wait at the cap");
      await sleep(600); // several bump timeouts at the cap
      const row = s.status("ops:register:21")!;
      const latest = parseTransaction(row.raw);
      expect(latest.maxFeePerGas).to.equal(cap);
      const bumps = logs.filter((l) => l.m === "settler transaction fee bumped");
      expect(bumps.length).to.be.greaterThan(0);
      for (const b of bumps) expect(b.o.maxFeeGwei as number).to.be.at.most(20);
      for (const hash of row.hashes) {
        const tx = await node.client.getTransaction({ hash }).catch(() => undefined);
        if (tx !== undefined) expect(tx.maxFeePerGas! <= cap).to.equal(true);
      }
      expect(s.state.status === "waiting" && s.state.reason).to.equal("fee_cap");

      await nextBaseFee(parseGwei("2"));
      await rpc("evm_mine");
      const tx = await sent;
      expect(row.hashes).to.include(tx.hash as Hex);
      expect(await node.client.getTransactionCount({ address: s.address })).to.equal(nonce0 + 1);
    } finally {
      await rpc("evm_setAutomine", [true]);
    }
  });

  it("waits for funds, saying how much it needs, and sends once they arrive", async () => {
    const { s, logs, health } = sender();
    const before = await node.client.getBalance({ address: s.address });
    await rpc("hardhat_setBalance", [s.address, hex(1_000n)]);
    try {
      const sent = s.send("ops:register:22", vault, register(22));
      await until(() => s.state.status === "waiting", "the funds wait");
      const st = s.state;
      expect(st.status === "waiting" && st.reason).to.equal("funds");
      if (st.status === "waiting" && st.reason === "funds") {
        expect(st.balance).to.equal(1_000n);
        expect(st.neededWei > 1_000n).to.equal(true);
      }
      expect(logs.filter((l) => l.level === "warn" && /waiting/.test(l.m))[0]!.m).to.match(/has 1e-15 ETH and needs [\d.e-]+ ETH for this step; waiting for funds/);
      expect(health.report().components["tx-sender"]!.reason).to.match(/waiting for funds/);
      await rpc("hardhat_setBalance", [s.address, hex(before)]);
      expect((await sent).status).to.equal("mined");
      expect(health.report().ok).to.equal(true);
    } finally {
      await rpc("hardhat_setBalance", [s.address, hex(before)]);
    }
  });

  it("keeps a session's steps within its fee budget", async () => {
    const db = openDatabase(":memory:");
    await nextBaseFee(parseGwei("1"));
    await rpc("evm_mine");
    // One register costs ~70k gas × ~2 gwei: the budget fits one and not two.
    const { s, logs } = sender({ db, maxSessionFeeWei: 250_000n * parseGwei("1") });
    const first = await s.send("session:99:register:23", vault, register(23));
    expect(first.status).to.equal("mined");
    const spent = s.status("session:99:register:23")!.feeWei!;
    expect(spent > 0n).to.equal(true);
    const second = s.send("session:99:register:24", vault, register(24));
    await until(() => s.state.status === "waiting", "the budget wait");
    expect(s.state.status === "waiting" && s.state.reason).to.equal("budget");
    expect(logs.find((l) => l.level === "warn" && /budget/.test(l.m))!.m).to.match(/spent [\d.e-]+ ETH, this step needs [\d.e-]+ ETH, budget 0\.00025 ETH/);
    expect(s.status("session:99:register:24")).to.equal(undefined);
    s.stop();
    try {
      await second;
      expect.fail("a stopped sender rejects");
    } catch (err) {
      expect(err).to.be.instanceOf(ChainError);
      expect((err as Error).message).to.match(/stopped/);
    }
  });
});
