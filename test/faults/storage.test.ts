// Storage faults: a COMMIT that fails (injected through a thin Db wrapper that does what SQLite
// does on an I/O error: rolls back, then reports), a disk that fills up mid-transaction
// (max_page_count), a database that turns read-only (query_only). In each, the pit's memory stays
// what the disk holds, the error is SQLite's own (never "cannot rollback - no transaction is
// active"), it is a StorageError and the failure handler hears of it. Then torn journals written by
// older keepers: a tail of order commands is dropped with a warning, a tail with money movements
// is refused with the repair command, which then repairs it.
import { expect } from "chai";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase, transaction, durable, onStorageFailure, StorageError, getSetting, setSetting, type Db } from "../../keeper/store/database.ts";
import { Journal } from "../../keeper/store/journal.ts";
import { repairJournal } from "../../keeper/store/journal-repair.ts";
import { getOutbox, spentOn } from "../../keeper/store/outbox.ts";
import { DatabaseSync } from "node:sqlite";
import { SessionPit, JournalGapError } from "../../keeper/session/pit.ts";
import type { CommandBody } from "../../keeper/core/commands.ts";
import type { Clock } from "../../keeper/executor/clock.ts";
import { testConfig, USDC, PEPE, PEPE_LOT, PEPE_USDC } from "../support/engine.ts";

let t = 1_000;
const clock: Clock = { now: () => t++, setTimer: () => ({ cancel() {} }) };
const tmpDb = () => openDatabase(join(mkdtempSync(join(tmpdir(), "cme-faults-")), "keeper.sqlite"));

/**
 * A Db whose COMMIT fails the way SQLite's does on an I/O error: the transaction is already rolled
 * back. With `failReads`, reading the journal fails too (a disk that is gone).
 */
function failingCommit(db: Db): { db: Db; failNext: () => void; failReads: () => void } {
  let fail = false;
  let reads = false;
  const proxy = new Proxy(db, {
    get(target, prop) {
      if (prop === "prepare") {
        return (sql: string) => {
          if (reads && /FROM journal WHERE/.test(sql)) throw Object.assign(new Error("disk I/O error"), { code: "ERR_SQLITE_ERROR", errcode: 10, errstr: "disk I/O error" });
          return target.prepare(sql);
        };
      }
      if (prop === "exec") {
        return (sql: string) => {
          if (fail && sql.trim().toUpperCase() === "COMMIT") {
            fail = false;
            target.exec("ROLLBACK");
            throw Object.assign(new Error("disk I/O error"), { code: "ERR_SQLITE_ERROR", errcode: 10, errstr: "disk I/O error" });
          }
          return target.exec(sql);
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return { db: proxy, failNext: () => (fail = true), failReads: () => (reads = true) };
}

const USERS = [11, 12, 13];

function openPitOn(db: Db, heard: number[] = []) {
  const pit = new SessionPit({ config: testConfig(), sessionId: 7, journal: new Journal(db), clock });
  pit.subscribe((cmd) => heard.push(cmd.seq));
  return pit;
}

/** Funds three users and opens trading; two resting orders. */
function trade(pit: SessionPit): void {
  for (const u of USERS) {
    pit.apply({ type: "deposit", user: u, asset: USDC, amount: 1_000_000_000n });
    pit.apply({ type: "deposit", user: u, asset: PEPE, amount: 1_000n * PEPE_LOT });
  }
  pit.apply({ type: "start_trading" });
  pit.apply({ type: "place", user: 11, pair: PEPE_USDC, side: "sell", orderType: "limit", price: 1_010, size: 5 });
  pit.apply({ type: "place", user: 12, pair: PEPE_USDC, side: "buy", orderType: "limit", price: 990, size: 5 });
}

const cross: CommandBody = { type: "place", user: 13, pair: PEPE_USDC, side: "buy", orderType: "limit", price: 1_010, size: 3 };

function replayed(db: Db): SessionPit {
  const p = new SessionPit({ config: testConfig(), sessionId: 7, journal: new Journal(db), clock });
  p.replayJournal();
  return p;
}

describe("storage faults", () => {
  it("a failing COMMIT leaves the pit as it was, reports COMMIT's own error and leaves no gap", () => {
    const { db, failNext } = failingCommit(tmpDb());
    const failures: StorageError[] = [];
    onStorageFailure(db, (e) => failures.push(e));
    const heard: number[] = [];
    const pit = openPitOn(db, heard);
    trade(pit);
    const before = { hash: pit.stateHash(), seq: pit.seq, heard: heard.length, rows: new Journal(db).count(7) };

    failNext();
    let caught: unknown;
    try {
      transaction(db, () => {
        pit.apply(cross); // a fill, in memory at once
        setSetting(db, "withdrawal_nonce", "1");
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(StorageError);
    expect((caught as Error).message).to.match(/COMMIT.*disk I\/O error/);
    expect((caught as Error).message).not.to.match(/cannot rollback/);
    expect(failures).to.have.length(1);
    expect(pit.stateHash()).to.equal(before.hash);
    expect(pit.seq).to.equal(before.seq);
    expect(heard).to.have.length(before.heard); // listeners never heard of it
    expect(new Journal(db).count(7)).to.equal(before.rows);
    expect(getSetting(db, "withdrawal_nonce")).to.equal(undefined);

    // The next command takes the next seq (no gap) and a restart rebuilds exactly this state.
    const r = pit.apply(cross);
    expect(r.ok).to.equal(true);
    expect(pit.seq).to.equal(before.seq + 1);
    expect(heard[heard.length - 1]).to.equal(before.seq + 1);
    expect(replayed(db).stateHash()).to.equal(pit.stateHash());
  });

  it("a pit that cannot rebuild itself after a failed COMMIT refuses every further command", () => {
    const { db, failNext, failReads } = failingCommit(tmpDb());
    const pit = openPitOn(db);
    trade(pit);
    failNext();
    failReads();
    expect(() => transaction(db, () => pit.apply(cross))).to.throw(StorageError, /COMMIT.*disk I\/O error/);
    expect(() => pit.apply(cross)).to.throw(StorageError, /could not be rebuilt from the journal.*disk I\/O error/);
  });

  it("a disk that fills mid-transaction: SQLite rolls back by itself, the real error surfaces, memory is untouched", () => {
    const db = tmpDb();
    const failures: StorageError[] = [];
    onStorageFailure(db, (e) => failures.push(e));
    const pit = openPitOn(db);
    trade(pit);
    const before = { hash: pit.stateHash(), seq: pit.seq, rows: new Journal(db).count(7) };
    const pages = (db.prepare("PRAGMA page_count").get() as { page_count: number }).page_count;
    db.exec(`PRAGMA max_page_count = ${pages}`);
    let caught: unknown;
    try {
      transaction(db, () => {
        for (let i = 0; i < 2_000; i++) {
          pit.apply({ type: "place", user: 11 + (i % 2), pair: PEPE_USDC, side: i % 2 === 0 ? "sell" : "buy", orderType: "limit", price: i % 2 === 0 ? 1_050 : 950, size: 1 });
          pit.apply({ type: "cancel_all", user: 11 + (i % 2) });
        }
      });
    } catch (err) {
      caught = err;
    }
    expect(caught, "the transaction should have hit the page limit").to.be.instanceOf(StorageError);
    expect((caught as Error).message).to.match(/database or disk is full/);
    expect((caught as Error).message).not.to.match(/no transaction is active/);
    expect(failures.length).to.be.greaterThan(0);
    expect(pit.stateHash()).to.equal(before.hash);
    expect(pit.seq).to.equal(before.seq);
    expect(new Journal(db).count(7)).to.equal(before.rows);
    db.exec("PRAGMA max_page_count = 1073741823");
    pit.apply(cross);
    expect(replayed(db).stateHash()).to.equal(pit.stateHash());
  });

  it("a read-only database: the journal append fails loudly before the engine sees the command", () => {
    const db = tmpDb();
    const failures: StorageError[] = [];
    onStorageFailure(db, (e) => failures.push(e));
    const heard: number[] = [];
    const pit = openPitOn(db, heard);
    trade(pit);
    const before = { hash: pit.stateHash(), seq: pit.seq, heard: heard.length };
    db.exec("PRAGMA query_only = 1");
    expect(() => pit.apply(cross)).to.throw(StorageError, /readonly database/);
    expect(() => durable(db, () => setSetting(db, "x", "1"))).to.throw(StorageError, /readonly database/);
    expect(failures).to.have.length(2);
    expect(pit.stateHash()).to.equal(before.hash);
    expect(pit.seq).to.equal(before.seq);
    expect(heard).to.have.length(before.heard);
    db.exec("PRAGMA query_only = 0");
    pit.apply(cross);
    expect(replayed(db).stateHash()).to.equal(pit.stateHash());
  });

  it("a nested transaction that fails rolls back its savepoint and its commands only", () => {
    const db = tmpDb();
    const pit = openPitOn(db);
    trade(pit);
    const seq0 = pit.seq;
    transaction(db, () => {
      pit.apply({ type: "place", user: 11, pair: PEPE_USDC, side: "sell", orderType: "limit", price: 1_020, size: 1 });
      const mid = pit.stateHash();
      expect(() =>
        transaction(db, () => {
          pit.apply(cross);
          throw new Error("refused");
        }),
      ).to.throw("refused");
      expect(pit.stateHash()).to.equal(mid);
      expect(pit.seq).to.equal(seq0 + 1);
    });
    expect(new Journal(db).lastSeq(7)).to.equal(seq0 + 1);
    expect(replayed(db).stateHash()).to.equal(pit.stateHash());
  });

  it("opens a database written before the outbox recorded block hashes and fees (columns added in place)", () => {
    const path = join(mkdtempSync(join(tmpdir(), "cme-faults-")), "old.sqlite");
    const old = new DatabaseSync(path);
    old.exec(`CREATE TABLE outbox (
      id INTEGER PRIMARY KEY AUTOINCREMENT, step TEXT NOT NULL UNIQUE, nonce INTEGER NOT NULL,
      hashes TEXT NOT NULL, raw TEXT NOT NULL, status TEXT NOT NULL, block INTEGER,
      created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)`);
    old.exec(`INSERT INTO outbox (step, nonce, hashes, raw, status, block, created_at, updated_at) VALUES ('session:1:start', 0, '["0x01"]', '0x02', 'mined', 5, 1, 1)`);
    old.close();
    const db = openDatabase(path);
    const row = getOutbox(db, "session:1:start")!;
    expect(row).to.deep.include({ status: "mined", block: 5, blockHash: null, feeWei: null });
    expect(spentOn(db, "session:1:")).to.equal(0n);
  });

  describe("torn journals (written by keepers that applied before committing)", () => {
    /** A journal with commands 1..n whose rows `lost` (a seq range) never committed. */
    function torn(tail: CommandBody[]): { db: Db; prefixHash: string; gapAt: number } {
      const db = tmpDb();
      const pit = openPitOn(db);
      trade(pit);
      const prefixHash = pit.stateHash();
      const gapAt = pit.seq;
      pit.apply({ type: "place", user: 13, pair: PEPE_USDC, side: "buy", orderType: "limit", price: 985, size: 2 });
      pit.apply({ type: "place", user: 13, pair: PEPE_USDC, side: "buy", orderType: "limit", price: 980, size: 2 });
      for (const c of tail) pit.apply(c);
      db.prepare("DELETE FROM journal WHERE session_id = 7 AND seq IN (?, ?)").run(gapAt + 1, gapAt + 2);
      return { db, prefixHash, gapAt };
    }

    it("drops a tail of order commands after the gap, with a warning, and resumes from the gap", () => {
      const { db, prefixHash, gapAt } = torn([cross, { type: "cancel_all", user: 12 }]);
      const warnings: string[] = [];
      const pit = new SessionPit({ config: testConfig(), sessionId: 7, journal: new Journal(db), clock, log: { warn: (_o, m) => warnings.push(m ?? "") } });
      const n = pit.replayJournal();
      expect(n).to.equal(gapAt);
      expect(pit.stateHash()).to.equal(prefixHash);
      expect(warnings.join("\n")).to.match(new RegExp(`jumped from seq ${gapAt} to ${gapAt + 3}.*dropped the 2 order commands`));
      expect(new Journal(db).lastSeq(7)).to.equal(gapAt);
      // and it carries on without a gap
      pit.apply(cross);
      expect(replayed(db).stateHash()).to.equal(pit.stateHash());
    });

    it("refuses a tail with a withdrawal, naming the repair command, which then repairs it", () => {
      const { db, prefixHash, gapAt } = torn([{ type: "withdraw", user: 11, asset: USDC, amount: 5_000_000n }, cross]);
      const pit = new SessionPit({ config: testConfig(), sessionId: 7, journal: new Journal(db), clock });
      let caught: unknown;
      try {
        pit.replayJournal();
      } catch (err) {
        caught = err;
      }
      expect(caught).to.be.instanceOf(JournalGapError);
      const msg = (caught as Error).message;
      expect(msg).to.include(`jumps from seq ${gapAt} to ${gapAt + 3}`);
      expect(msg).to.include("withdraw");
      expect(msg).to.include("keeper/store/journal-repair.ts --db <CME_DB_PATH> --session 7");
      expect(new Journal(db).lastSeq(7)).to.equal(gapAt + 4); // nothing dropped by the keeper

      const dry = repairJournal(db, 7, false);
      expect(dry.gap).to.deep.equal({ before: gapAt, after: gapAt + 3 });
      expect(dry.dropped).to.deep.equal({ withdraw: 1, place: 1 });
      expect(dry.warnings.join("\n")).to.match(/withdrawal of 5000000/);
      expect(new Journal(db).lastSeq(7)).to.equal(gapAt + 4);
      expect(repairJournal(db, 7, true).applied).to.equal(true);
      expect(replayed(db).stateHash()).to.equal(prefixHash);
      expect(repairJournal(db, 7, false).gap).to.equal(null);
    });
  });
});
