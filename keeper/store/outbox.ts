// The transaction outbox: every settler transaction is recorded (nonce, signed bytes, every hash
// it was broadcast under) before it is broadcast, so after a crash the keeper looks for the
// receipt of what it already sent instead of sending a second transaction blindly.
import type { Db } from "./database.ts";

export type OutboxStatus = "sent" | "mined" | "reverted";

export interface OutboxRow {
  id: number;
  /** What the transaction does, unique: "session:3:start", "session:3:batch:0", ... */
  step: string;
  nonce: number;
  hashes: `0x${string}`[];
  raw: `0x${string}`;
  status: OutboxStatus;
  block: number | null;
  /** Hash of the block the receipt was in (a reorg that replaces it drops the transaction). */
  blockHash: `0x${string}` | null;
  /** What the transaction cost the settler (gasUsed × effectiveGasPrice), once mined. */
  feeWei: bigint | null;
  createdAt: number;
  updatedAt: number;
}

interface Row {
  id: number;
  step: string;
  nonce: number;
  hashes: string;
  raw: string;
  status: OutboxStatus;
  block: number | null;
  block_hash: string | null;
  fee_wei: string | null;
  created_at: number;
  updated_at: number;
}

const toOutbox = (r: Row): OutboxRow => ({
  id: r.id,
  step: r.step,
  nonce: r.nonce,
  hashes: JSON.parse(r.hashes) as `0x${string}`[],
  raw: r.raw as `0x${string}`,
  status: r.status,
  block: r.block,
  blockHash: (r.block_hash ?? null) as `0x${string}` | null,
  feeWei: r.fee_wei === null || r.fee_wei === undefined ? null : BigInt(r.fee_wei),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export function getOutbox(db: Db, step: string): OutboxRow | undefined {
  const r = db.prepare("SELECT * FROM outbox WHERE step = ?").get(step) as Row | undefined;
  return r === undefined ? undefined : toOutbox(r);
}

export function pendingOutbox(db: Db): OutboxRow[] {
  return (db.prepare("SELECT * FROM outbox WHERE status = 'sent' ORDER BY nonce").all() as unknown as Row[]).map(toOutbox);
}

export function listOutbox(db: Db, stepPrefix: string): OutboxRow[] {
  return (db.prepare("SELECT * FROM outbox WHERE step LIKE ? ORDER BY id").all(`${stepPrefix}%`) as unknown as Row[]).map(toOutbox);
}

export function insertOutbox(db: Db, step: string, nonce: number, hash: `0x${string}`, raw: `0x${string}`, now: number): void {
  db.prepare("INSERT INTO outbox (step, nonce, hashes, raw, status, created_at, updated_at) VALUES (?, ?, ?, ?, 'sent', ?, ?)").run(
    step,
    nonce,
    JSON.stringify([hash]),
    raw,
    now,
    now,
  );
}

/** A fee-bumped replacement (same nonce): the old hashes stay, since any of them may be mined. */
export function replaceOutbox(db: Db, step: string, hash: `0x${string}`, raw: `0x${string}`, now: number): void {
  const row = getOutbox(db, step);
  if (row === undefined) throw new Error(`outbox step ${step} missing`);
  db.prepare("UPDATE outbox SET hashes = ?, raw = ?, updated_at = ? WHERE step = ?").run(JSON.stringify([...row.hashes, hash]), raw, now, step);
}

export function settleOutbox(
  db: Db,
  step: string,
  status: OutboxStatus,
  block: number | null,
  now: number,
  mined: { blockHash?: `0x${string}`; feeWei?: bigint } = {},
): void {
  db.prepare("UPDATE outbox SET status = ?, block = ?, block_hash = ?, fee_wei = ?, updated_at = ? WHERE step = ?").run(
    status,
    block,
    mined.blockHash ?? null,
    mined.feeWei === undefined ? null : mined.feeWei.toString(),
    now,
    step,
  );
}

/** What the settler paid for the steps under `stepPrefix` ("session:3:"), mined or reverted. */
export function spentOn(db: Db, stepPrefix: string): bigint {
  const rows = db.prepare("SELECT fee_wei FROM outbox WHERE step LIKE ? AND fee_wei IS NOT NULL").all(`${stepPrefix}%`) as { fee_wei: string }[];
  return rows.reduce((sum, r) => sum + BigInt(r.fee_wei), 0n);
}

/** Forgets a step whose transaction was never mined and whose nonce went to another one. */
export function deleteOutbox(db: Db, step: string): void {
  db.prepare("DELETE FROM outbox WHERE step = ?").run(step);
}
