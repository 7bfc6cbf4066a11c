// The session's command journal: append-only, written before a command is applied, so replaying
// it into a fresh engine rebuilds the book and inventories exactly (the engine is deterministic).
// Beside it, state-hash checkpoints taken as the commands were first applied: a replay that does
// not reach the same hash at the same seq is refused (session/pit.ts).
//
// Sequence numbers have no gaps: the pit changes memory only once a command's row has committed,
// so a command that failed to commit is never followed by one that did. Journals written by older
// keepers (which applied first) can hold a gap; `truncateAfter` is the repair (store/journal-repair.ts).
import type { StatementSync } from "node:sqlite";
import type { Db, TransactionFrame } from "./database.ts";
import { durable, openTransaction, storageError } from "./database.ts";
import { fromJson, toJson } from "./json.ts";

export interface JournalEntry<C = unknown> {
  sessionId: number;
  seq: number;
  ts: number;
  command: C;
}

export class Journal {
  readonly #append: StatementSync;
  readonly #checkpoint: StatementSync;
  readonly #db: Db;

  constructor(db: Db) {
    this.#db = db;
    this.#append = db.prepare("INSERT INTO journal (session_id, seq, ts, body) VALUES (?, ?, ?, ?)");
    this.#checkpoint = db.prepare("INSERT OR REPLACE INTO journal_checkpoints (session_id, seq, state_hash) VALUES (?, ?, ?)");
  }

  /** The transaction the journal's writes are part of right now, or null (each write commits alone). */
  transaction(): TransactionFrame | null {
    return openTransaction(this.#db);
  }

  /** Records the engine's state hash after command `seq`. */
  checkpoint(sessionId: number, seq: number, stateHash: string): void {
    try {
      this.#checkpoint.run(sessionId, seq, stateHash);
    } catch (err) {
      throw storageError(this.#db, "journal checkpoint", err);
    }
  }

  /** seq -> state hash of every checkpoint of the session. */
  checkpoints(sessionId: number): Map<number, string> {
    const rows = this.#db.prepare("SELECT seq, state_hash FROM journal_checkpoints WHERE session_id = ?").all(sessionId) as { seq: number; state_hash: string }[];
    return new Map(rows.map((r) => [r.seq, r.state_hash]));
  }

  /** Appends one command; throws if (session, seq) already exists, which would mean a replay bug. */
  append(sessionId: number, seq: number, ts: number, command: unknown): void {
    const body = toJson(command);
    try {
      this.#append.run(sessionId, seq, ts, body);
    } catch (err) {
      throw storageError(this.#db, `journal append (session ${sessionId}, seq ${seq})`, err);
    }
  }

  /** Deletes the session's commands and checkpoints after `seq` (the repair of a torn journal). Returns how many commands went. */
  truncateAfter(sessionId: number, seq: number): number {
    return durable(this.#db, () => {
      this.#db.prepare("DELETE FROM journal_checkpoints WHERE session_id = ? AND seq > ?").run(sessionId, seq);
      return Number(this.#db.prepare("DELETE FROM journal WHERE session_id = ? AND seq > ?").run(sessionId, seq).changes);
    });
  }

  /** The first break in the session's sequence: the last seq before it and the seq found after it. */
  firstGap(sessionId: number): { before: number; after: number } | null {
    const r = this.#db
      .prepare(
        `SELECT prev AS before, seq AS after FROM (SELECT seq, LAG(seq, 1, 0) OVER (ORDER BY seq) AS prev FROM journal WHERE session_id = ?)
         WHERE seq != prev + 1 ORDER BY seq LIMIT 1`,
      )
      .get(sessionId) as { before: number; after: number } | undefined;
    return r === undefined ? null : { before: r.before, after: r.after };
  }

  lastSeq(sessionId: number): number {
    const r = this.#db.prepare("SELECT MAX(seq) AS s FROM journal WHERE session_id = ?").get(sessionId) as { s: number | null };
    return r.s ?? 0;
  }

  count(sessionId: number): number {
    return (this.#db.prepare("SELECT COUNT(*) AS n FROM journal WHERE session_id = ?").get(sessionId) as { n: number }).n;
  }

  /** Every command of the session in sequence order. */
  *read<C>(sessionId: number, afterSeq = 0): Generator<JournalEntry<C>> {
    const it = this.#db
      .prepare("SELECT seq, ts, body FROM journal WHERE session_id = ? AND seq > ? ORDER BY seq")
      .iterate(sessionId, afterSeq) as Iterable<{ seq: number; ts: number; body: string }>;
    for (const row of it) yield { sessionId, seq: row.seq, ts: row.ts, command: fromJson<C>(row.body) };
  }
}
