// Used nonces of signed requests. A nonce only needs remembering until its request's expiry:
// after that the signature is refused as expired anyway, so expired rows are pruned.
//
// A nonce is a number, not the string it arrived as: "1796", "01796" and "001796" sign the same
// EIP-712 message (uint256 1796), so they are one nonce. Rows are keyed by the account in lower
// case and the nonce in canonical decimal, and rows written before keys were canonical (leading
// zeros) still count as used: matching ignores leading zeros.
import type { Db } from "./database.ts";

/** The one spelling of a nonce: its value in decimal, no sign, no leading zeros. Throws on anything that is not a number. */
export function canonicalNonce(nonce: string | bigint): string {
  const value = typeof nonce === "bigint" ? nonce : BigInt(nonce);
  if (value < 0n) throw new RangeError(`a nonce is unsigned, got ${value}`);
  return value.toString();
}

/** The key with its leading zeros trimmed, as legacy rows are matched (the nonce 0 trims to ""). */
const trimmed = (canonical: string) => (canonical === "0" ? "" : canonical);

export function isNonceUsed(db: Db, account: string, nonce: string | bigint): boolean {
  return db.prepare("SELECT 1 FROM nonces WHERE account = ? AND ltrim(nonce, '0') = ?").get(account.toLowerCase(), trimmed(canonicalNonce(nonce))) !== undefined;
}

/** Records a nonce; false when it was already used, in any spelling (the caller refuses the request). */
export function useNonce(db: Db, account: string, nonce: string | bigint, expiry: number): boolean {
  const a = account.toLowerCase();
  const n = canonicalNonce(nonce);
  const r = db
    .prepare("INSERT INTO nonces (account, nonce, expiry) SELECT ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM nonces WHERE account = ? AND ltrim(nonce, '0') = ?)")
    .run(a, n, expiry, a, trimmed(n));
  return r.changes === 1;
}

export function pruneNonces(db: Db, nowSec: number): number {
  return Number(db.prepare("DELETE FROM nonces WHERE expiry < ?").run(nowSec).changes);
}
