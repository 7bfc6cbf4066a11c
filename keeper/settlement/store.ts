// Settlement progress per session. The plan (deltas, batches and their hash chain) is stored
// before the first settlement transaction is sent, so a resumed settlement posts exactly the
// batches whose root the vault already holds.
import type { Db } from "../store/database.ts";
import { fromJson, toJson } from "../store/json.ts";

export type SettlementStatus = "planned" | "begun" | "finalized" | "voided";

export interface SettlementBatch {
  index: number;
  /** Packed 21-byte entries, 0x-hex. */
  entries: `0x${string}`;
  entryCount: number;
  next: `0x${string}`;
}

export interface SettlementPlan {
  sessionId: number;
  batchRoot: `0x${string}`;
  fillLogHash: `0x${string}`;
  batches: SettlementBatch[];
  deltas: { accountId: number; tokenIndex: number; delta: bigint }[];
}

export interface SettlementRecord {
  sessionId: number;
  plan: SettlementPlan;
  status: SettlementStatus;
  batchesConfirmed: number;
  updatedAt: number;
}

interface Row { session_id: number; plan: string; status: SettlementStatus; batches_confirmed: number; updated_at: number }

export function getSettlement(db: Db, sessionId: number): SettlementRecord | undefined {
  const r = db.prepare("SELECT * FROM settlements WHERE session_id = ?").get(sessionId) as Row | undefined;
  if (r === undefined) return undefined;
  return {
    sessionId: r.session_id,
    plan: fromJson<SettlementPlan>(r.plan),
    status: r.status,
    batchesConfirmed: r.batches_confirmed,
    updatedAt: r.updated_at,
  };
}

/** Stores the plan once; a second call for the same session keeps the first (it is committed on-chain). */
export function putPlan(db: Db, plan: SettlementPlan, now: number): void {
  db.prepare("INSERT OR IGNORE INTO settlements (session_id, plan, status, updated_at) VALUES (?, ?, 'planned', ?)").run(
    plan.sessionId,
    toJson(plan),
    now,
  );
}

export function markSettlement(db: Db, sessionId: number, status: SettlementStatus, batchesConfirmed: number, now: number): void {
  db.prepare("UPDATE settlements SET status = ?, batches_confirmed = ?, updated_at = ? WHERE session_id = ?").run(
    status,
    batchesConfirmed,
    now,
    sessionId,
  );
}
