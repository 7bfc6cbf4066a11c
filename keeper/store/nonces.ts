// Used nonces of signed requests. A nonce only needs remembering until its request's expiry:
// after that the signature is refused as expired anyway, so expired rows are pruned.
import type { Db } from "./database.ts";

export function isNonceUsed(db: Db, account: string, nonce: string): boolean {
  return db.prepare("SELECT 1 FROM nonces WHERE account = ? AND nonce = ?").get(account.toLowerCase(), nonce) !== undefined;
}

/** Records a nonce; false when it was already used (the caller refuses the request). */
export function useNonce(db: Db, account: string, nonce: string, expiry: number): boolean {
  const r = db.prepare("INSERT OR IGNORE INTO nonces (account, nonce, expiry) VALUES (?, ?, ?)").run(account.toLowerCase(), nonce, expiry);
  return r.changes === 1;
}

export function pruneNonces(db: Db, nowSec: number): number {
  return Number(db.prepare("DELETE FROM nonces WHERE expiry < ?").run(nowSec).changes);
}
