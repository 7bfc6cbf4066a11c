// Withdrawal permits the settler signed during a session. The amount stays reserved in the pit
// until the vault reports the withdrawal or the permit's deadline passes unused.
import type { Db } from "./database.ts";

export type PermitStatus = "open" | "used" | "expired";

export interface PermitRecord {
  address: string;
  nonce: string;
  sessionId: number;
  tokenIndex: number;
  amount: bigint;
  deadline: number;
  signature: `0x${string}`;
  status: PermitStatus;
}

interface Row { address: string; nonce: string; session_id: number; token_index: number; amount: string; deadline: number; signature: string; status: PermitStatus }

const toPermit = (r: Row): PermitRecord => ({
  address: r.address,
  nonce: r.nonce,
  sessionId: r.session_id,
  tokenIndex: r.token_index,
  amount: BigInt(r.amount),
  deadline: r.deadline,
  signature: r.signature as `0x${string}`,
  status: r.status,
});

export function putPermit(db: Db, p: PermitRecord): void {
  db.prepare(
    "INSERT INTO permits (address, nonce, session_id, token_index, amount, deadline, signature, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
  ).run(p.address.toLowerCase(), p.nonce, p.sessionId, p.tokenIndex, p.amount.toString(), p.deadline, p.signature, p.status);
}

export function openPermits(db: Db, sessionId: number): PermitRecord[] {
  return (db.prepare("SELECT * FROM permits WHERE session_id = ? AND status = 'open'").all(sessionId) as unknown as Row[]).map(toPermit);
}

export function markPermit(db: Db, address: string, nonce: string, status: PermitStatus): void {
  db.prepare("UPDATE permits SET status = ? WHERE address = ? AND nonce = ?").run(status, address.toLowerCase(), nonce);
}

