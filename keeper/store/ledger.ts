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
