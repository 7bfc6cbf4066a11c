// The keeper's embedded database (node:sqlite, no dependency). WAL with synchronous=NORMAL makes
// every commit survive a process crash (the tests SIGKILL the keeper) at ~12 µs per journal append;
// writes that commit to the chain (settlement plan, outbox) go through `durable`, which switches to
// synchronous=FULL so they also survive a power loss before the transaction they describe is sent.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";

const SCHEMA_VERSION = 1;

const DDL = `
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nonces (
  account TEXT NOT NULL, nonce TEXT NOT NULL, expiry INTEGER NOT NULL,
  PRIMARY KEY (account, nonce)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nonces_expiry ON nonces (expiry);
CREATE TABLE IF NOT EXISTS accounts (
  account_id INTEGER PRIMARY KEY, address TEXT NOT NULL UNIQUE, block INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (
  account_id INTEGER NOT NULL, token_index INTEGER NOT NULL, balance TEXT NOT NULL,
  PRIMARY KEY (account_id, token_index)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
  address TEXT PRIMARY KEY, broker_id TEXT, prompt TEXT, pairs TEXT, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
  id INTEGER PRIMARY KEY, phase TEXT NOT NULL, phase_started_at INTEGER NOT NULL,
  phase_ends_at INTEGER, start_block INTEGER, info TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS journal (
  session_id INTEGER NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (session_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journal_checkpoints (
  session_id INTEGER NOT NULL, seq INTEGER NOT NULL, state_hash TEXT NOT NULL,
  PRIMARY KEY (session_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reprompts (
  session_id INTEGER NOT NULL, address TEXT NOT NULL, prompt TEXT NOT NULL, at INTEGER NOT NULL,
  PRIMARY KEY (session_id, address)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settlements (
  session_id INTEGER PRIMARY KEY, plan TEXT NOT NULL, status TEXT NOT NULL,
  batches_confirmed INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, step TEXT NOT NULL UNIQUE, nonce INTEGER NOT NULL,
  hashes TEXT NOT NULL, raw TEXT NOT NULL, status TEXT NOT NULL, block INTEGER,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS fill_logs (session_id INTEGER PRIMARY KEY, body TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS top_prompts (
  session_id INTEGER NOT NULL, rank INTEGER NOT NULL, address TEXT NOT NULL, broker_id TEXT,
  prompt TEXT NOT NULL, pnl TEXT NOT NULL, PRIMARY KEY (session_id, rank)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS permits (
  address TEXT NOT NULL, nonce TEXT NOT NULL, session_id INTEGER NOT NULL, token_index INTEGER NOT NULL,
  amount TEXT NOT NULL, deadline INTEGER NOT NULL, signature TEXT NOT NULL, status TEXT NOT NULL,
  PRIMARY KEY (address, nonce)) WITHOUT ROWID;
`;

export type Db = DatabaseSync;

/** Opens (creating if needed) the keeper database at `path`; ":memory:" for tests. */
export function openDatabase(path: string): Db {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;");
  db.exec(DDL);
  const row = db.prepare("SELECT value FROM settings WHERE key = 'schema_version'").get() as { value: string } | undefined;
  if (row === undefined) {
    db.prepare("INSERT INTO settings (key, value) VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION));
  } else if (Number(row.value) !== SCHEMA_VERSION) {
    throw new Error(`database ${path} has schema ${row.value}, this keeper expects ${SCHEMA_VERSION}`);
  }
  return db;
}

/** Runs `fn` in one transaction (all or nothing). Not re-entrant: callers compose plain functions. */
export function transaction<T>(db: Db, fn: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const out = fn();
    db.exec("COMMIT");
    return out;
  } catch (err) {
    db.exec("ROLLBACK");
    throw err;
  }
}

/** As `transaction`, fsync'd before returning (synchronous=FULL for this commit). */
export function durable<T>(db: Db, fn: () => T): T {
  db.exec("PRAGMA synchronous=FULL");
  try {
    return transaction(db, fn);
  } finally {
    db.exec("PRAGMA synchronous=NORMAL");
  }
}

export function getSetting(db: Db, key: string): string | undefined {
  const row = db.prepare("SELECT value FROM settings WHERE key = ?").get(key) as { value: string } | undefined;
  return row?.value;
}

export function setSetting(db: Db, key: string, value: string): void {
  db.prepare("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(key, value);
}
