// Indexer benchmark: how long after a settlement's finalize receipt the indexer serves the new
// balances, and how many vault events per second it indexes.
//
//   npm run bench:index     (BENCH_PARTICIPANTS=1000 BENCH_SESSIONS=4 by default; BENCH_LOG=1 also
//                            prints the indexers' own per-block timings)
//
// A Hardhat network in this process, the vault deployed by keeper/chain/deploy.ts, and the Ponder
// app (`ponder start`, embedded database) as a child process indexing it live. 1,000 participants
// deposit (half USDC, half PEPE); each session the USDC holders buy PEPE from the PEPE holders
// (then sell it back), so every participant gets one USDC and one PEPE delta: 2,000 deltas,
// posted in batches of DEFAULT_MAX_ENTRIES_PER_BATCH, then finalize.
//   finalize→served: from the finalize receipt until GraphQL reports the session finalized (its
//     deltas are folded into balances in the same block's handler); the served balances are then
//     checked against the vault's balanceOf for every participant. Odd sessions finalize right
//     after the last batch, as the keeper does (the indexer may still be on the batches: this is
//     the reported figure); even sessions finalize once the indexer has caught up with the
//     batches, which isolates the finalize block itself.
//   events/s: a second indexer with a fresh database re-indexes the whole chain; vault events
//     divided by the time from Ponder's "Started backfill indexing" to reaching the chain head.
import { availableParallelism, loadavg } from "node:os";
import { getAddress, keccak256, toHex, type Address, type Hex } from "viem";
import { DEFAULT_MAX_ENTRIES_PER_BATCH } from "../keeper/settlement/batches.ts";
import type { FillLogFill } from "../keeper/settlement/fill-log.ts";
import { deployCME } from "../keeper/chain/deploy.ts";
import { graphql, startChain, startIndexer, waitForBlock, type Indexer, type LocalChain } from "../test/support/indexer.ts";
import { createDriver, fillLogOf } from "../test/support/session-driver.ts";

const PARTICIPANTS = Number(process.env.BENCH_PARTICIPANTS ?? 1_000);
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 4);
if (!Number.isSafeInteger(PARTICIPANTS) || PARTICIPANTS < 2 || PARTICIPANTS % 2 !== 0) throw new Error("BENCH_PARTICIPANTS must be an even integer >= 2");
if (!Number.isSafeInteger(SESSIONS) || SESSIONS < 1) throw new Error("BENCH_SESSIONS must be a positive integer");

const USDC = 10n ** 6n;
const PEPE = 10n ** 18n;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const loadAtStart = loadavg()[0]!;
  let chain: LocalChain | undefined;
  let live: Indexer | undefined;
  let replay: Indexer | undefined;
  try {
    chain = await startChain();
    const wallets = await chain.viem.getWalletClients();
    const deployment = await deployCME(chain.viem, {
      settler: wallets[1]!.account.address,
      treasury: wallets[2]!.account.address,
      insurance: wallets[3]!.account.address,
      gracePeriod: 300n,
      mocks: true,
    });
    const d = await createDriver(chain.viem, deployment);
    const treasury = await d.accountId(deployment.treasury);
    live = await startIndexer(chain.url, deployment);

    // Participants: deterministic addresses credited by one funder through depositFor.
    const funder = wallets[4]!;
    const participants: Address[] = Array.from({ length: PARTICIPANTS }, (_, i) => getAddress(`0x${keccak256(toHex(`cme-bench-${i}`)).slice(-40)}`));
    const half = PARTICIPANTS / 2;
    const buyers = participants.slice(0, half);
    const sellers = participants.slice(half);
    const usdc = d.token("USDC");
    const pepe = d.token("PEPE");
    const perBuyer = 1_000_000n * USDC;
    const perSeller = 1_000_000n * PEPE;
    const setupStarted = performance.now();
    for (const [t, amount] of [[usdc, perBuyer * BigInt(half)], [pepe, perSeller * BigInt(half)]] as const) {
      const erc20 = await chain.viem.getContractAt("MockUSDC", t.address, { client: { wallet: funder } });
      await d.mined(await erc20.write.mint([funder.account.address, amount]));
      await d.mined(await erc20.write.approve([deployment.vault, amount]));
    }
    const vaultAsFunder = await d.vaultAs(funder);
    const hashes: Hex[] = [];
    for (const p of buyers) hashes.push(await vaultAsFunder.write.depositFor([p, usdc.address, perBuyer]));
    for (const p of sellers) hashes.push(await vaultAsFunder.write.depositFor([p, pepe.address, perSeller]));
    const receipts = await Promise.all(hashes.map((hash) => d.publicClient.waitForTransactionReceipt({ hash })));
    if (receipts.some((r) => r.status !== "success")) throw new Error("a deposit reverted");
    const ids = new Map<Address, number>();
    for (const p of participants) ids.set(p, await d.accountId(p));
    const setupMs = performance.now() - setupStarted;
    const head = await d.publicClient.getBlockNumber();
    const catchUpMs = await waitForBlock(live.url, head, 600_000);
    console.log(`setup: ${PARTICIPANTS} participants deposited in ${(setupMs / 1000).toFixed(1)} s; live indexer caught up ${catchUpMs.toFixed(0)} ms after`);

    type Row = { sessionId: number; batches: number; deltas: number; caughtUp: boolean; finalizeToServedMs: number };
    const rows: Row[] = [];
    for (let sessionId = 1; sessionId <= SESSIONS; sessionId++) {
      // Odd sessions: buyers lift sellers' offers; even sessions: they sell it all back.
      const forward = sessionId % 2 === 1;
      const fills: Omit<FillLogFill, "type" | "seq" | "ts">[] = buyers.map((b, i) => ({
        pairId: 1,
        maker: ids.get(sellers[i]!)!,
        taker: ids.get(b)!,
        takerSide: forward ? "buy" : "sell",
        priceTicks: 1_000n,
        sizeLots: BigInt((i % 100) + 1) * 1_000n,
        makerFee: 0n,
        takerFee: 0n,
      }));
      await d.startSession(sessionId, 3_600n);
      const run = await d.settle(fillLogOf(deployment, treasury, sessionId, fills), { batchSize: DEFAULT_MAX_ENTRIES_PER_BATCH, finalize: false });
      const caughtUp = sessionId % 2 === 0;
      if (caughtUp) await waitForBlock(live.url, run.batches.at(-1)!.blockNumber, 120_000);
      await d.openFinalize(sessionId);
      const finalizeHash = await d.vault.write.finalize([sessionId]);
      await d.publicClient.waitForTransactionReceipt({ hash: finalizeHash, pollingInterval: 5 });
      const t0 = performance.now();
      for (;;) {
        const data = await graphql<{ session: { phase: string } | null }>(live.graphqlUrl, `query ($s: Int!) { session(sessionId: $s) { phase } }`, { s: sessionId });
        if (data.session?.phase === "finalized") break;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const finalizeToServedMs = performance.now() - t0;
      rows.push({ sessionId, batches: run.chain.links.length, deltas: run.entries.length, caughtUp, finalizeToServedMs });
    }

    // The served balances are the vault's, for every participant and both tokens.
    const served = new Map<string, bigint>();
    let after: string | null = null;
    for (;;) {
      const page: { balances: { items: { account: string; token: string; amount: string }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } =
        await graphql(live.graphqlUrl, `query ($after: String) { balances(limit: 1000, after: $after) { items { account token amount } pageInfo { hasNextPage endCursor } } }`, { after });
      for (const r of page.balances.items) served.set(`${r.account}/${r.token}`, BigInt(r.amount));
      if (!page.balances.pageInfo.hasNextPage) break;
      after = page.balances.pageInfo.endCursor;
    }
    let mismatches = 0;
    for (const p of participants) {
      for (const t of [usdc, pepe]) {
        const onChain = await d.vault.read.balanceOf([p, t.address]);
        if ((served.get(`${p.toLowerCase()}/${t.address.toLowerCase()}`) ?? 0n) !== onChain) mismatches++;
      }
    }
    if (mismatches > 0) throw new Error(`${mismatches} served balances differ from the vault`);

    // Re-index everything with a fresh database: the indexer's throughput.
    const endBlock = await d.publicClient.getBlockNumber();
    const logs = await d.publicClient.getLogs({ address: deployment.vault, fromBlock: BigInt(deployment.startBlock), toBlock: endBlock });
    replay = await startIndexer(chain.url, deployment);
    await waitForBlock(replay.url, endBlock, 600_000);
    const reachedAt = Date.now();
    const started = replay
      .output()
      .split("\n")
      .map((line) => {
        try {
          return JSON.parse(line) as { msg?: string; time?: number };
        } catch {
          return {};
        }
      })
      .find((l) => l.msg === "Started backfill indexing")?.time;
    if (started === undefined) throw new Error("replay indexer did not log its backfill start");
    const replayMs = reachedAt - started;
    if (process.env.BENCH_LOG) {
      for (const line of [...live.output().split("\n").slice(-60), ...replay.output().split("\n")]) {
        try {
          const j = JSON.parse(line) as { time: number; msg: string; level: number; [k: string]: unknown };
          if (j.level >= 30) console.log(j.time - started, j.msg, j.block_range ?? j.number ?? "", j.event_count ?? "", j.duration ?? "");
        } catch {}
      }
    }
    const deltasIndexed = rows.reduce((n, r) => n + r.deltas, 0);
    const eventsPerSec = (logs.length / replayMs) * 1000;

    console.log("");
    console.log(`indexer: ${PARTICIPANTS} participants, ${rows[0]!.deltas} deltas per session in ${rows[0]!.batches} batches, polling ${process.env.CME_POLLING_MS ?? 100} ms`);
    console.log(`machine: ${availableParallelism()} cores, 1-minute load average ${loadAtStart.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end (chain, bench and indexer share them)`);
    console.log("");
    console.log("session  batches  deltas  finalize sent                 finalize→served (ms)");
    for (const r of rows) {
      const when = r.caughtUp ? "after the indexer caught up" : "right after the last batch";
      console.log(`${String(r.sessionId).padStart(7)}  ${String(r.batches).padStart(7)}  ${String(r.deltas).padStart(6)}  ${when.padEnd(28)}  ${r.finalizeToServedMs.toFixed(1).padStart(20)}`);
    }
    const backToBack = rows.filter((r) => !r.caughtUp).map((r) => r.finalizeToServedMs);
    const isolated = rows.filter((r) => r.caughtUp).map((r) => r.finalizeToServedMs);
    console.log(
      `median finalize→served: ${median(backToBack).toFixed(1)} ms right after the batches` +
        (isolated.length > 0 ? `, ${median(isolated).toFixed(1)} ms with the indexer caught up` : "") +
        `; served balances equal the vault's for all ${PARTICIPANTS * 2} (participant, token) pairs`,
    );
    console.log(
      `re-index from scratch: ${logs.length} vault events (${deltasIndexed} deltas) over ${endBlock - BigInt(deployment.startBlock) + 1n} blocks in ${replayMs} ms: ` +
        `${eventsPerSec.toFixed(0)} events/s, ${((deltasIndexed / replayMs) * 1000).toFixed(0)} deltas/s`,
    );
    console.log(
      JSON.stringify({
        bench: "index",
        finalizeToServedMs: Number(median(backToBack).toFixed(1)),
        eventsPerSec: Math.round(eventsPerSec),
      }),
    );
  } finally {
    await replay?.stop();
    await live?.stop();
    await chain?.stop();
  }
}

await main();
