// The keeper's mirror of the vault: registered accounts and each (account, token) balance as the
// vault reports it, folded from events in block order, plus the block the watcher has processed.
import type { Db } from "./database.ts";
import { getSetting, setSetting } from "./database.ts";

export function putAccount(db: Db, accountId: number, address: string, block: number): void {
  db.prepare("INSERT OR IGNORE INTO accounts (account_id, address, block) VALUES (?, ?, ?)").run(accountId, address.toLowerCase(), block);
}

export function accountIdOf(db: Db, address: string): number | undefined {
  const r = db.prepare("SELECT account_id FROM accounts WHERE address = ?").get(address.toLowerCase()) as { account_id: number } | undefined;
  return r?.account_id;
}

export function addressOf(db: Db, accountId: number): string | undefined {
  const r = db.prepare("SELECT address FROM accounts WHERE account_id = ?").get(accountId) as { address: string } | undefined;
  return r?.address;
}

export function setBalance(db: Db, accountId: number, tokenIndex: number, balance: bigint): void {
  db.prepare(
    "INSERT INTO ledger (account_id, token_index, balance) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET balance = excluded.balance",
  ).run(accountId, tokenIndex, balance.toString());
}

export function getBalance(db: Db, accountId: number, tokenIndex: number): bigint {
  const r = db.prepare("SELECT balance FROM ledger WHERE account_id = ? AND token_index = ?").get(accountId, tokenIndex) as { balance: string } | undefined;
  return r === undefined ? 0n : BigInt(r.balance);
}

/** Every non-zero balance: the opening inventories of a session. */
export function listBalances(db: Db): { accountId: number; tokenIndex: number; balance: bigint }[] {
  return (db.prepare("SELECT account_id, token_index, balance FROM ledger WHERE balance != '0' ORDER BY account_id, token_index").all() as unknown as {
    account_id: number;
    token_index: number;
    balance: string;
  }[]).map((r) => ({ accountId: r.account_id, tokenIndex: r.token_index, balance: BigInt(r.balance) }));
}

export function getCursor(db: Db): bigint | undefined {
  const v = getSetting(db, "chain_cursor");
  return v === undefined ? undefined : BigInt(v);
}

export function setCursor(db: Db, block: bigint): void {
  setSetting(db, "chain_cursor", block.toString());
}

// ---------------------------------------------------------------- the watcher's view of the chain
// The hashes of the blocks the watcher processed (the cursor's among them) let it see a reorg that
// reaches below its cursor and find where the chains fork; the keys of the events it handed over
// make handing the same log over twice a no-op (a re-mined deposit is credited once).

export function getCursorHash(db: Db): `0x${string}` | undefined {
  const c = getCursor(db);
  return c === undefined ? undefined : blockHashAt(db, c);
}

export function blockHashAt(db: Db, block: bigint): `0x${string}` | undefined {
  const r = db.prepare("SELECT hash FROM chain_blocks WHERE number = ?").get(Number(block)) as { hash: string } | undefined;
  return r?.hash as `0x${string}` | undefined;
}

/** Records processed blocks' hashes and forgets all but the newest `keep`. */
export function putBlockHashes(db: Db, blocks: { number: bigint; hash: `0x${string}` }[], keep: number): void {
  const put = db.prepare("INSERT INTO chain_blocks (number, hash) VALUES (?, ?) ON CONFLICT(number) DO UPDATE SET hash = excluded.hash");
  let top = -1;
  for (const b of blocks) {
    put.run(Number(b.number), b.hash);
    top = Math.max(top, Number(b.number));
  }
  if (top >= 0) db.prepare("DELETE FROM chain_blocks WHERE number <= ?").run(top - keep);
}

/** Stored block hashes at or below `block`, newest first. */
export function blockHashesBelow(db: Db, block: bigint, limit: number): { number: bigint; hash: `0x${string}` }[] {
  return (db.prepare("SELECT number, hash FROM chain_blocks WHERE number <= ? ORDER BY number DESC LIMIT ?").all(Number(block), limit) as {
    number: number;
    hash: string;
  }[]).map((r) => ({ number: BigInt(r.number), hash: r.hash as `0x${string}` }));
}

/** A reorg: forget the hashes of the blocks above the fork. */
export function forgetBlocksAbove(db: Db, block: bigint): void {
  db.prepare("DELETE FROM chain_blocks WHERE number > ?").run(Number(block));
}

export interface ClaimedEvent {
  /** `${txHash}:${n}`: the n-th vault event of the transaction (stable when the transaction is re-mined). */
  key: string;
  kind: string;
  block: number;
  blockHash: `0x${string}`;
  /** Deposits and withdrawals: whose balance of which token it moved (to re-read after a reorg). */
  account?: string;
  token?: string;
}

/**
 * Claims a chain event for processing: true the first time its key is seen; false after that (it
 * was handed over before, in this block or in one a reorg replaced), and then its block is updated.
 */
export function claimEvent(db: Db, e: ClaimedEvent): boolean {
  const r = db
    .prepare("INSERT OR IGNORE INTO chain_events (key, kind, block, block_hash, account, token) VALUES (?, ?, ?, ?, ?, ?)")
    .run(e.key, e.kind, e.block, e.blockHash, e.account ?? null, e.token ?? null);
  if (r.changes === 1) return true;
  db.prepare("UPDATE chain_events SET block = ?, block_hash = ? WHERE key = ?").run(e.block, e.blockHash, e.key);
  return false;
}

/** Events handed over from blocks above `block` (after a reorg: those whose blocks are gone). */
export function claimedAbove(db: Db, block: bigint): ClaimedEvent[] {
  return (db.prepare("SELECT key, kind, block, block_hash, account, token FROM chain_events WHERE block > ? ORDER BY block, key").all(Number(block)) as {
    key: string;
    kind: string;
    block: number;
    block_hash: string;
    account: string | null;
    token: string | null;
  }[]).map((r) => ({
    key: r.key,
    kind: r.kind,
    block: r.block,
    blockHash: r.block_hash as `0x${string}`,
    ...(r.account === null ? {} : { account: r.account }),
    ...(r.token === null ? {} : { token: r.token }),
  }));
}
