// /healthz's registry: a component that should be progressing and has made no progress for the
// configured time makes the keeper unhealthy, and the report names it, how long, and its last
// error; a component with nothing to do never stalls; a stated problem (fee cap, no funds, a
// reorg, storage) is unhealthy at once. The watcher and retryUntil report into it.
import { expect } from "chai";
import type { PublicClient } from "viem";
import { HealthRegistry } from "../../keeper/ops/health.ts";
import { VaultWatcher } from "../../keeper/chain/watcher.ts";
import { retryUntil, RetryDeadlineError, classifyChainError } from "../../keeper/chain/retry.ts";
import { ChainError } from "../../keeper/chain/tx-sender.ts";
import { StorageError } from "../../keeper/store/database.ts";
import { Metrics } from "../../keeper/ops/metrics.ts";

describe("health and retries", () => {
  let now = 1_000_000;
  const clock = () => now;

  it("names the component that stalls, for how long, and its last error", () => {
    const h = new HealthRegistry({ stallMs: 60_000, now: clock });
    const settlement = h.component("settlement");
    const watcher = h.component("watcher", { expecting: true });
    h.component("journal");
    expect(h.report().ok).to.equal(true);
    now += 120_000;
    // settlement has nothing to do: it cannot stall
    let r = h.report();
    expect(r.ok).to.equal(false);
    expect(r.components.settlement!.ok).to.equal(true);
    expect(r.components.watcher!.reason).to.equal("no progress for 120 s (limit 60 s)");
    watcher.progress();
    settlement.expect(true);
    now += 30_000;
    settlement.error(new Error("HTTP request failed.\nStatus: 500"));
    now += 31_000;
    r = h.report();
    expect(r.components.watcher!.ok).to.equal(false);
    expect(r.components.settlement!.reason).to.equal("no progress for 61 s (limit 60 s); last error: HTTP request failed.");
    expect(r.components.watcher!.lastProgressAt).to.equal(now - 61_000);
    settlement.progress();
    watcher.progress();
    expect(h.report().ok).to.equal(true);
    h.component("tx-sender").problem("fee 300 gwei per gas is above the cap of 100 gwei");
    r = h.report();
    expect(r.ok).to.equal(false);
    expect(r.components["tx-sender"]).to.deep.include({ ok: false, reason: "fee 300 gwei per gas is above the cap of 100 gwei" });
    h.component("tx-sender").problem(null);
    expect(h.report().ok).to.equal(true);
  });

  it("a watcher whose node is down stops reporting progress, and says why once it stalls", async () => {
    const h = new HealthRegistry({ stallMs: 200 });
    const down = { getBlockNumber: async () => Promise.reject(new Error("fetch failed")) } as unknown as PublicClient;
    const w = new VaultWatcher({
      client: down,
      vault: "0x0000000000000000000000000000000000000001",
      confirmations: 0,
      pollMs: 20,
      cursor: () => 0n,
      apply: () => {},
      health: h.component("watcher"),
    });
    w.start();
    try {
      await new Promise((r) => setTimeout(r, 400));
      const c = h.report().components.watcher!;
      expect(c.ok).to.equal(false);
      expect(c.reason).to.match(/^no progress for \d s \(limit 0 s\); last error: fetch failed$/);
      expect(w.lastProgressAt).to.equal(null);
    } finally {
      w.stop();
    }
    expect(h.report().components.watcher!.ok, "a stopped watcher is not expected to progress").to.equal(true);
  });

  it("retryUntil retries the road, not the destination, and gives up at a time limit", async () => {
    const metrics = new Metrics();
    const warned: object[] = [];
    let t = 0;
    const opts = { deadlineMs: 10_000, metrics, log: { warn: (o: object) => warned.push(o) }, sleep: async (ms: number) => void (t += ms), now: () => t };
    let calls = 0;
    const out = await retryUntil(
      "session:3:finalize",
      async () => {
        if (++calls < 4) throw new Error("fetch failed");
        return "done";
      },
      opts,
    );
    expect(out).to.equal("done");
    expect(warned).to.have.length(3);
    expect(metrics.chainRetries.values.get('step="finalize"')).to.equal(3);

    const revert = new ChainError("would revert WrongPhase", { step: "session:3:finalize", errorName: "WrongPhase" });
    calls = 0;
    try {
      await retryUntil("session:3:finalize", async () => { calls++; throw revert; }, opts);
    } catch (err) {
      expect(err).to.equal(revert);
    }
    expect(calls).to.equal(1);
    try {
      await retryUntil("session:3:finalize", async () => { throw new StorageError("storage failed (COMMIT): disk I/O error", { op: "COMMIT" }); }, opts);
    } catch (err) {
      expect(err).to.be.instanceOf(StorageError);
    }

    t = 0;
    calls = 0;
    try {
      await retryUntil("session:3:finalize", async () => { calls++; throw new ChainError("step session:3:finalize: nonce 7 was used by another transaction", { step: "x" }); }, opts);
      expect.fail("expected the deadline");
    } catch (err) {
      expect(err).to.be.instanceOf(RetryDeadlineError);
      expect((err as RetryDeadlineError).details.elapsedMs).to.be.at.least(10_000);
      expect((err as Error).message).to.match(/still failing after 10 s and \d+ attempts: step session:3:finalize: nonce 7/);
    }
    expect(calls).to.be.greaterThan(3);
  });

  it("classifies chain errors: reverts final, the road transient, fee and funds refusals apart", () => {
    expect(classifyChainError(new Error("fetch failed"))).to.equal("transient");
    expect(classifyChainError(new SyntaxError("Unexpected end of JSON input"))).to.equal("transient");
    expect(classifyChainError(new Error("VM Exception while processing transaction: reverted with custom error 'WrongPhase(1, 2, 1)'"))).to.equal("revert");
    expect(classifyChainError(new Error("insufficient funds for gas * price + value"))).to.equal("funds");
    expect(classifyChainError(new Error("Transaction maxFeePerGas (1000) is too low for the next block, which has a baseFeePerGas of 2000"))).to.equal("underpriced");
    expect(classifyChainError(new Error("nonce too low"))).to.equal("known");
  });

  it("renders the fault metrics for /metrics", () => {
    const m = new Metrics();
    m.txWaiting.set(1, { reason: "fee_cap" });
    m.chainRpcErrors.inc({ op: "sendRawTransaction" });
    const text = m.render();
    for (const name of ["cme_tx_waiting", "cme_chain_rpc_errors_total", "cme_chain_retries_total", "cme_chain_reorgs_total", "cme_chain_tx_dropped_total", "cme_tx_fee_cap_gwei"]) {
      expect(text).to.include(`# TYPE ${name}`);
    }
    expect(text).to.include('cme_tx_waiting{reason="fee_cap"} 1');
  });
});
