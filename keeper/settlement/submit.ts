// Drives a session's settlement on-chain from its stored plan: beginSettlement, every batch in
// order, finalize. The chain is the source of truth for what is done: each run reads the vault's
// session record and sends only what is missing, so running it again after a crash (or by hand,
// `npm run settle`) resumes where the vault stands. The plan itself never changes once stored:
// its root is what the vault committed.
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
  };
}

export interface SettleDeps {
  db: Db;
  client: PublicClient;
  vault: Address;
  sender: TxSender;
  /** Progress for the stream and logs. */
  onProgress?: (rec: SettlementProgress) => void;
  log?: { info: (o: object, m: string) => void; warn: (o: object, m: string) => void };
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

/** Runs or resumes settlement of `sessionId` until the vault reports it finalized (or voided). */
export async function runSettlement(deps: SettleDeps, sessionId: number): Promise<SettlementProgress> {
  const { db, client, vault, sender } = deps;
  const rec: SettlementRecord | undefined = getSettlement(db, sessionId);
  if (rec === undefined) throw new SettlementError(`session ${sessionId} has no settlement plan (has it closed?)`);
  const plan = rec.plan;
  const count = plan.batches.length;
  const report = (s: OnChainSession | null) => {
    const p = progressOf(db, sessionId, s);
    deps.onProgress?.(p);
    return p;
  };

  for (let attempt = 0; attempt < 20; attempt++) {
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
      await sender.send(`session:${sessionId}:finalize`, vault, encodeFunctionData({ abi: vaultAbi, functionName: "finalize", args: [sessionId] }));
      durable(db, () => markSettlement(db, sessionId, "finalized", count, Date.now()));
      deps.log?.info({ sessionId }, "session finalized");
      continue;
    } catch (err) {
      // A refusal from the vault means our view was stale (a step already landed, e.g. sent
      // before a crash): re-read the vault and carry on from what it says.
      if (err instanceof ChainError) {
        deps.log?.warn({ sessionId, step: err.details.step, error: err.details.errorName ?? err.message }, "settlement step refused; re-reading the vault");
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      throw err;
    }
  }
  throw new SettlementError(`session ${sessionId}: settlement did not converge after 20 attempts`);
}
