// The keeper's embedded database (node:sqlite, no dependency). WAL with synchronous=NORMAL makes
// every commit survive a process crash (the tests SIGKILL the keeper) at ~12 µs per journal append;
// writes that commit to the chain (settlement plan, outbox) go through `durable`, which switches to
// synchronous=FULL so they also survive a power loss before the transaction they describe is sent.
//
// A storage failure is never papered over: every SQLite error that reaches `transaction` (BEGIN,
// a statement, COMMIT) surfaces as a StorageError carrying SQLite's own message, the transaction is
// rolled back only if SQLite has not already done so, and memory that was changed inside it is put
// back by the rollback hooks its writers registered (`openTransaction`). The composition root
// registers `onStorageFailure` to stop the keeper: a keeper whose disk refuses writes must not trade.
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
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, block_hash TEXT, fee_wei TEXT);
CREATE TABLE IF NOT EXISTS fill_logs (session_id INTEGER PRIMARY KEY, body TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS top_prompts (
  session_id INTEGER NOT NULL, rank INTEGER NOT NULL, address TEXT NOT NULL, broker_id TEXT,
  prompt TEXT NOT NULL, pnl TEXT NOT NULL, PRIMARY KEY (session_id, rank)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chain_blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chain_events (
  key TEXT PRIMARY KEY, kind TEXT NOT NULL, block INTEGER NOT NULL, block_hash TEXT NOT NULL,
  account TEXT, token TEXT) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chain_events_block ON chain_events (block);
CREATE TABLE IF NOT EXISTS permits (
  address TEXT NOT NULL, nonce TEXT NOT NULL, session_id INTEGER NOT NULL, token_index INTEGER NOT NULL,
  amount TEXT NOT NULL, deadline INTEGER NOT NULL, signature TEXT NOT NULL, status TEXT NOT NULL,
  PRIMARY KEY (address, nonce)) WITHOUT ROWID;
`;

export type Db = DatabaseSync;

/** Columns added after schema 1 shipped: added in place when missing (additive, so no version bump). */
const ADDED_COLUMNS: [table: string, column: string, type: string][] = [
  ["outbox", "block_hash", "TEXT"],
  ["outbox", "fee_wei", "TEXT"],
];

/** Opens (creating if needed) the keeper database at `path`; ":memory:" for tests. */
export function openDatabase(path: string): Db {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path);
  db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;");
  db.exec(DDL);
  for (const [table, column, type] of ADDED_COLUMNS) {
    const cols = db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[];
    if (!cols.some((c) => c.name === column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
  }
  const row = db.prepare("SELECT value FROM settings WHERE key = 'schema_version'").get() as { value: string } | undefined;
  if (row === undefined) {
    db.prepare("INSERT INTO settings (key, value) VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION));
  } else if (Number(row.value) !== SCHEMA_VERSION) {
    throw new Error(`database ${path} has schema ${row.value}, this keeper expects ${SCHEMA_VERSION}`);
  }
  return db;
}

// ---------------------------------------------------------------- storage errors

/** The database refused a read or a write (disk full, I/O error, read-only, corrupt, locked): the keeper must stop. */
export class StorageError extends Error {
  override name = "StorageError";
  constructor(
    message: string,
    readonly details: { op: string; errcode?: number; errstr?: string },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True for an error raised by SQLite (node:sqlite tags them ERR_SQLITE_ERROR, with SQLite's result code). */
export function isSqliteError(err: unknown): err is Error & { code: "ERR_SQLITE_ERROR"; errcode: number; errstr: string } {
  return err instanceof Error && (err as { code?: unknown }).code === "ERR_SQLITE_ERROR";
}

const failureHandlers = new WeakMap<Db, (err: StorageError) => void>();

/**
 * Calls `handler` with every StorageError raised for `db`, even one a caller then swallows: the
 * composition root stops the keeper there (log the error, exit non-zero).
 */
export function onStorageFailure(db: Db, handler: (err: StorageError) => void): void {
  failureHandlers.set(db, handler);
}

/** `err` as a StorageError of `op` (SQLite's message kept), reported to the failure handler once. */
export function storageError(db: Db, op: string, err: unknown): StorageError {
  if (err instanceof StorageError) return err;
  const sqlite = isSqliteError(err) ? err : undefined;
  const message = err instanceof Error ? err.message : String(err);
  const out = new StorageError(
    `storage failed (${op}): ${message}`,
    { op, ...(sqlite === undefined ? {} : { errcode: sqlite.errcode, errstr: sqlite.errstr }) },
    { cause: err },
  );
  try {
    failureHandlers.get(db)?.(out);
  } catch {
    /* the handler's own failure must not hide this one */
  }
  return out;
}

// ---------------------------------------------------------------- transactions

/** What code running inside `transaction` may attach to it. */
export interface TransactionFrame {
  /** Runs after the outermost COMMIT succeeds, in registration order (a released savepoint passes its hooks up). */
  afterCommit(fn: () => void): void;
  /** Runs when this transaction (or savepoint) is rolled back, newest first: put memory back. Must not throw. */
  onRollback(fn: () => void): void;
}

interface Frame extends TransactionFrame {
  commit: (() => void)[];
  rollback: (() => void)[];
  /** A nested `durable` asked for an fsync'd commit. */
  durable: boolean;
}

const stacks = new WeakMap<Db, Frame[]>();

const newFrame = (): Frame => {
  const f: Frame = {
    commit: [],
    rollback: [],
    durable: false,
    afterCommit: (fn) => void f.commit.push(fn),
    onRollback: (fn) => void f.rollback.push(fn),
  };
  return f;
};

/** The innermost transaction `transaction`/`durable` has open on `db`, or null outside one. */
export function openTransaction(db: Db): TransactionFrame | null {
  const stack = stacks.get(db);
  if (stack !== undefined && stack.length > 0) return stack[stack.length - 1]!;
  if (db.isTransaction) throw new Error("a transaction is open on the keeper database that store/database.ts did not begin (use transaction())");
  return null;
}

/** SQLite may have rolled the transaction back itself (SQLITE_FULL, SQLITE_IOERR, ...): roll back only what is still open. */
function abandon(db: Db, frame: Frame, savepoint: string | null): void {
  if (db.isTransaction) {
    try {
      if (savepoint === null) db.exec("ROLLBACK");
      else db.exec(`ROLLBACK TO ${savepoint}; RELEASE ${savepoint}`);
    } catch {
      /* the error that got us here is the one to report */
    }
  }
  for (const fn of frame.rollback.reverse()) {
    try {
      fn();
    } catch {
      /* documented: rollback hooks do not throw */
    }
  }
}

function runHooks(hooks: (() => void)[]): void {
  let first: unknown;
  let failed = false;
  for (const fn of hooks) {
    try {
      fn();
    } catch (err) {
      if (!failed) first = err;
      failed = true;
    }
  }
  if (failed) throw first;
}

function run<T>(db: Db, fn: () => T, durableCommit: boolean): T {
  let stack = stacks.get(db);
  if (stack === undefined) stacks.set(db, (stack = []));
  const parent = stack[stack.length - 1];
  if (parent === undefined && db.isTransaction) {
    throw new Error("a transaction is open on the keeper database that store/database.ts did not begin");
  }
  const savepoint = parent === undefined ? null : `cme_sp${stack.length}`;
  const frame = newFrame();
  frame.durable = durableCommit;
  if (savepoint === null && durableCommit) {
    try {
      db.exec("PRAGMA synchronous=FULL");
    } catch (err) {
      throw storageError(db, "PRAGMA synchronous=FULL", err);
    }
  }
  try {
    try {
      db.exec(savepoint === null ? "BEGIN IMMEDIATE" : `SAVEPOINT ${savepoint}`);
    } catch (err) {
      throw storageError(db, savepoint === null ? "BEGIN" : "SAVEPOINT", err);
    }
    stack.push(frame);
    let out: T;
    try {
      out = fn();
    } catch (err) {
      stack.pop();
      abandon(db, frame, savepoint);
      throw isSqliteError(err) ? storageError(db, "write", err) : err;
    }
    try {
      if (!db.isTransaction) throw new Error("SQLite ended the transaction before COMMIT (a statement error was swallowed)");
      db.exec(savepoint === null ? "COMMIT" : `RELEASE ${savepoint}`);
    } catch (err) {
      stack.pop();
      abandon(db, frame, savepoint);
      throw storageError(db, savepoint === null ? "COMMIT" : "RELEASE", err);
    }
    stack.pop();
    if (parent !== undefined) {
      parent.commit.push(...frame.commit);
      parent.rollback.push(...frame.rollback);
      parent.durable ||= frame.durable;
      return out;
    }
    if (frame.durable && !durableCommit) {
      // A nested `durable` inside a plain transaction: synchronous cannot change mid-transaction,
      // so sync now (in WAL mode a checkpoint fsyncs the WAL first).
      try {
        db.exec("PRAGMA wal_checkpoint(PASSIVE)");
      } catch (err) {
        throw storageError(db, "checkpoint", err);
      }
    }
    runHooks(frame.commit);
    return out;
  } finally {
    if (savepoint === null && durableCommit) {
      try {
        db.exec("PRAGMA synchronous=NORMAL");
      } catch {
        /* outside a transaction this cannot fail; if it did, FULL is the safe side */
      }
    }
  }
}

/**
 * Runs `fn` in one transaction (all or nothing). Nested calls become savepoints of the enclosing
 * transaction. Errors from SQLite (BEGIN, a statement, COMMIT) throw StorageError with SQLite's
 * message; other errors from `fn` roll back and are rethrown as they are.
 */
export function transaction<T>(db: Db, fn: () => T): T {
  return run(db, fn, false);
}

/** As `transaction`, fsync'd before returning (synchronous=FULL for this commit). */
export function durable<T>(db: Db, fn: () => T): T {
  return run(db, fn, true);
}

export function getSetting(db: Db, key: string): string | undefined {
  const row = db.prepare("SELECT value FROM settings WHERE key = ?").get(key) as { value: string } | undefined;
  return row?.value;
}

export function setSetting(db: Db, key: string, value: string): void {
  db.prepare("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(key, value);
}
