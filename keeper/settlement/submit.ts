// Drives a session's settlement on-chain from its stored plan: beginSettlement, every batch in
// order, the vault's challenge window, finalize. The chain is the source of truth for what is
// done: each run reads the vault's session record and sends only what is missing, so running it
// again after a crash (or by hand, `npm run settle`) resumes where the vault stands. The plan
// itself never changes once stored: its root is what the vault committed.
//
// The vault's clock rules (ICMEVault): finalize waits `challengeWindow` after the last batch, and
// startSession waits `sessionGap` after a finalize or void. On a local chain (31337) the keeper
// moves the chain's clock past them (evm_increaseTime) instead of waiting; elsewhere it waits.
import { encodeFunctionData, type Address } from "viem";
import type { PublicClient } from "viem";
import type { Db } from "../store/database.ts";
import { durable } from "../store/database.ts";
import { getSettlement, markSettlement, type SettlementRecord } from "./store.ts";
import { listOutbox } from "../store/outbox.ts";
import { ChainError, type TxSender } from "../chain/tx-sender.ts";
import { VAULT_PHASES, vaultAbi, type VaultPhase } from "../chain/vault-abi.ts";

export interface OnChainSession {
  phase: VaultPhase;
  batchesPosted: number;
  batchCount: number;
  batchRoot: `0x${string}`;
  fillLogHash: `0x${string}`;
  deadline: number;
  /** When finalize opens (unix seconds): 0 until the last batch is posted. */
  finalizableAt: number;
}

export async function readOnChainSession(client: PublicClient, vault: Address, sessionId: number): Promise<OnChainSession> {
  const s = await client.readContract({ address: vault, abi: vaultAbi, functionName: "session", args: [sessionId] });
  return {
    phase: VAULT_PHASES[s.phase] ?? "none",
    batchesPosted: s.batchesPosted,
    batchCount: s.batchCount,
    batchRoot: s.batchRoot,
    fillLogHash: s.fillLogHash,
    deadline: Number(s.deadline),
    finalizableAt: Number(s.finalizableAt),
  };
}

/** Hardhat's and anvil's chain id: the one chain whose clock the keeper may move. */
export const LOCAL_CHAIN_ID = 31337;

/** The chain's clock: the latest block's timestamp (unix seconds). */
export async function chainTime(client: PublicClient): Promise<number> {
  return Number((await client.getBlock({ blockTag: "latest" })).timestamp);
}

/**
 * Moves a local chain's clock to at least `target` (unix seconds) with evm_increaseTime and
 * evm_mine, so the vault's windows pass at once in the demo and tests. Returns the seconds it
 * moved (0 if already there). Never call it on a real chain: the node refuses, as it should.
 */
export async function fastForwardTo(client: PublicClient, target: number): Promise<number> {
  const rpc = client as unknown as { request(args: { method: string; params: unknown[] }): Promise<unknown> };
  let moved = 0;
  for (let now = await chainTime(client); now < target; now = await chainTime(client)) {
    await rpc.request({ method: "evm_increaseTime", params: [target - now] });
    await rpc.request({ method: "evm_mine", params: [] });
    moved += target - now;
  }
  return moved;
}

export interface SettleDeps {
  db: Db;
  client: PublicClient;
  vault: Address;
  sender: TxSender;
  /** Progress for the stream and logs. */
  onProgress?: (rec: SettlementProgress) => void;
  log?: { info: (o: object, m: string) => void; warn: (o: object, m: string) => void };
  /** Move the chain's clock past the challenge window instead of waiting (default: on chain 31337). */
  fastForward?: boolean;
  /** How often to re-read the vault while the challenge window runs (default 5 s). */
  waitPollMs?: number;
  /** Stops a settlement that is waiting (the keeper is shutting down). */
  signal?: AbortSignal;
}

export interface SettlementProgress {
  sessionId: number;
  status: "not_started" | "planned" | "begun" | "finalized" | "voided";
  batchCount: number;
  batchesConfirmed: number;
  batchRoot: string | null;
  fillLogHash: string | null;
  deltaCount: number;
  onChain: { phase: string; batchesPosted: number; batchCount: number } | null;
  transactions: { step: string; nonce: number; hash: string; status: string; block: number | null }[];
}

export function progressOf(db: Db, sessionId: number, onChain: OnChainSession | null): SettlementProgress {
  const rec = getSettlement(db, sessionId);
  return {
    sessionId,
    status: rec?.status ?? "not_started",
    batchCount: rec?.plan.batches.length ?? 0,
    batchesConfirmed: rec?.batchesConfirmed ?? 0,
    batchRoot: rec?.plan.batchRoot ?? null,
    fillLogHash: rec?.plan.fillLogHash ?? null,
    deltaCount: rec?.plan.deltas.length ?? 0,
    onChain: onChain === null ? null : { phase: onChain.phase, batchesPosted: onChain.batchesPosted, batchCount: onChain.batchCount },
    transactions: listOutbox(db, `session:${sessionId}:`).map((r) => ({
      step: r.step,
      nonce: r.nonce,
      hash: r.hashes[r.hashes.length - 1]!,
      status: r.status,
      block: r.block,
    })),
  };
}

export class SettlementError extends Error {
  override name = "SettlementError";
}

/**
 * Runs or resumes settlement of `sessionId` until the vault reports it finalized or voided (by
 * its deadline, or by the guardian's veto during the challenge window).
 */
export async function runSettlement(deps: SettleDeps, sessionId: number): Promise<SettlementProgress> {
  const { db, client, vault, sender } = deps;
  const fastForward = deps.fastForward ?? (await client.getChainId()) === LOCAL_CHAIN_ID;
  const rec: SettlementRecord | undefined = getSettlement(db, sessionId);
  if (rec === undefined) throw new SettlementError(`session ${sessionId} has no settlement plan (has it closed?)`);
  const plan = rec.plan;
  const count = plan.batches.length;
  const report = (s: OnChainSession | null) => {
    const p = progressOf(db, sessionId, s);
    deps.onProgress?.(p);
    return p;
  };

  let announced = false;
  // Only refusals count toward giving up: waiting for the challenge window is progress.
  for (let refusals = 0; refusals < 20; ) {
    if (deps.signal?.aborted) throw new SettlementError(`session ${sessionId}: settlement stopped while waiting`);
    const chain = await readOnChainSession(client, vault, sessionId);
    if (chain.phase === "finalized") {
      await sender.reconcile();
      if (rec.status !== "finalized") durable(db, () => markSettlement(db, sessionId, "finalized", count, Date.now()));
      return report(chain);
    }
    if (chain.phase === "voided") {
      durable(db, () => markSettlement(db, sessionId, "voided", chain.batchesPosted, Date.now()));
      deps.log?.warn({ sessionId }, "session was voided on-chain: every account keeps its pre-session balance");
      return report(chain);
    }
    if (chain.phase === "none") throw new SettlementError(`session ${sessionId} was never started on-chain`);
    try {
      if (chain.phase === "trading") {
        await sender.send(
          `session:${sessionId}:begin`,
          vault,
          encodeFunctionData({ abi: vaultAbi, functionName: "beginSettlement", args: [sessionId, plan.batchRoot, count, plan.fillLogHash] }),
        );
        durable(db, () => markSettlement(db, sessionId, "begun", 0, Date.now()));
        deps.log?.info({ sessionId, batches: count, root: plan.batchRoot }, "settlement begun");
        report(null);
        continue;
      }
      // settling: the vault's own counter says which batch is next.
      if (chain.batchRoot !== plan.batchRoot) {
        throw new SettlementError(`session ${sessionId}: the vault committed root ${chain.batchRoot}, the stored plan has ${plan.batchRoot}`);
      }
      for (let i = chain.batchesPosted; i < count; i++) {
        const b = plan.batches[i]!;
        await sender.send(
          `session:${sessionId}:batch:${i}`,
          vault,
          encodeFunctionData({ abi: vaultAbi, functionName: "postBatch", args: [sessionId, i, b.entries, b.next] }),
        );
        durable(db, () => markSettlement(db, sessionId, "begun", i + 1, Date.now()));
        deps.log?.info({ sessionId, batch: i, entries: b.entryCount }, "settlement batch posted");
        report(null);
      }
      // The challenge window: the guardian may veto until finalizableAt (then the next read says voided).
      const posted = chain.batchesPosted === count ? chain : await readOnChainSession(client, vault, sessionId);
      const now = await chainTime(client);
      if (posted.phase === "settling" && now < posted.finalizableAt) {
        if (fastForward) {
          const moved = await fastForwardTo(client, posted.finalizableAt);
          deps.log?.info({ sessionId, finalizableAt: posted.finalizableAt, movedSec: moved }, "local chain: moved the clock past the challenge window");
        } else {
          if (!announced) deps.log?.info({ sessionId, finalizableAt: posted.finalizableAt }, "challenge window open: finalizing when it closes");
          announced = true;
          await sleep(Math.min((posted.finalizableAt - now) * 1000 + 1_000, deps.waitPollMs ?? 5_000), deps.signal);
        }
        continue;
      }
      await sender.send(`session:${sessionId}:finalize`, vault, encodeFunctionData({ abi: vaultAbi, functionName: "finalize", args: [sessionId] }));
      durable(db, () => markSettlement(db, sessionId, "finalized", count, Date.now()));
      deps.log?.info({ sessionId }, "session finalized");
      continue;
    } catch (err) {
      // A refusal from the vault means our view was stale (a step already landed, e.g. sent
      // before a crash): re-read the vault and carry on from what it says.
      if (err instanceof ChainError) {
        refusals++;
        deps.log?.warn({ sessionId, step: err.details.step, error: err.details.errorName ?? err.message }, "settlement step refused; re-reading the vault");
        await sleep(200, deps.signal);
        continue;
      }
      throw err;
    }
  }
  throw new SettlementError(`session ${sessionId}: settlement did not converge after 20 refused steps`);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
