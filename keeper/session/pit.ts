// The pit: the exchange core's Engine behind the journal. Every command is stamped with the next
// sequence number and the keeper's clock, appended to the journal, and only then applied;
// replaying the journal rebuilds the same engine (it is deterministic), and the state hashes
// checkpointed in the journal prove it on resume.
//
// Nothing is in memory that is not on disk. Outside a transaction the journal row commits on its
// own before the engine sees the command. Inside one (the runner journals a command together with
// other writes: the session record, a consumed nonce, the chain cursor) the engine applies it at
// once, since the caller needs the result, and if the transaction rolls back (a failing COMMIT
// included) the pit rebuilds itself from the journal, which then holds exactly what was committed;
// the listeners and metrics hear of the command only after COMMIT. node:sqlite is synchronous, so
// no other code can observe the state in between, and the happy path costs nothing extra (a
// snapshot per transaction would cost ~10 ms on a 10,000-order book).
//
// The pit does one job. What others make of its commands they do as listeners, in order, after
// each command: the fill log (settlement/recorder.ts), the executor's port
// (session/executor-port.ts), the stream (api/stream-publisher.ts). Readers get the engine's
// read-only views through `reads`.
import { Engine } from "../core/engine.ts";
import { commandFromJson, commandToJson, stamp, type Command, type CommandBody, type CommandJson } from "../core/commands.ts";
import type { CommandResult, EngineConfig } from "../core/types.ts";
import type { Clock } from "../executor/clock.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Journal } from "../store/journal.ts";
import { StorageError, type TransactionFrame } from "../store/database.ts";

/** What readers may ask the engine: views only, never `apply`. */
export type PitReads = Pick<
  Engine,
  | "phase"
  | "depth"
  | "mid"
  | "mark"
  | "account"
  | "recentTrades"
  | "marginStatus"
  | "liquidationsDue"
  | "closeOut"
  | "stateHash"
  | "rfqRequests"
  | "rfqRequest"
  | "nextRfqExpiry"
  | "reservations"
>;

export type PitListener = (cmd: Command, result: CommandResult) => void;

export interface PitOptions {
  config: EngineConfig;
  sessionId: number;
  /** Null: replay only (tests, audits). */
  journal: Journal | null;
  clock: Clock;
  metrics?: Metrics;
  /** A state hash is checkpointed in the journal every this many commands (and at each phase step). */
  checkpointEvery?: number;
  /** Where a repaired journal is reported (default: process.emitWarning). */
  log?: { warn(o: object, m?: string): void };
}

/** Replay diverged from the state hashes the journal recorded when the commands were first applied. */
export class JournalMismatchError extends Error {
  override name = "JournalMismatchError";
  constructor(readonly sessionId: number, readonly seq: number, readonly expected: string, readonly actual: string) {
    super(
      `session ${sessionId}: replaying the journal gives state hash ${actual} at seq ${seq}, the journal recorded ${expected}; ` +
        "refusing to resume on a state that differs from the one that traded (was the keeper's code or its database changed?)",
    );
  }
}

/**
 * The journal has a hole (written by a keeper that applied commands before they committed) and the
 * commands after it cannot be dropped safely without an operator: they include money movements or
 * phase steps. The message names the repair command.
 */
export class JournalGapError extends Error {
  override name = "JournalGapError";
  constructor(
    readonly sessionId: number,
    readonly details: { before: number; after: number; tail: number; unsafe: { seq: number; type: string }[] },
  ) {
    const kinds = [...new Set(details.unsafe.map((u) => u.type))].join(", ");
    super(
      `session ${sessionId}: the journal jumps from seq ${details.before} to ${details.after} (commands ${details.before + 1}..${details.after - 1} never committed; ` +
        `an older keeper had applied them in memory). The ${details.tail} commands from seq ${details.after} on were applied on top of the lost ones and ` +
        `include ${kinds}, so they are not dropped automatically. Inspect, then repair (drops seq ${details.after} on; the session resumes from seq ${details.before}): ` +
        `node --import tsx keeper/store/journal-repair.ts --db <CME_DB_PATH> --session ${sessionId} [--apply]`,
    );
  }
}

const PHASE_STEPS = new Set(["start_trading", "end_trading", "close_out"]);

/**
 * Commands that only move positions inside the pit: nothing of theirs has left the keeper in a form
 * the chain honours (trades bind only at settlement), so a torn tail made of these alone is dropped.
 */
const IN_PIT = new Set(["place", "cancel", "cancel_all", "replace", "liquidate"]);

export class SessionPit {
  #engine: Engine;
  readonly #o: PitOptions;
  readonly #listeners: PitListener[] = [];
  readonly #every: number;
  #seq = 0;
  /** Bumped on every applied command: views cache on it. */
  #version = 0;
  /** Per pair: commands that touched its book, and its fills. */
  #pairVersions = new Map<number, number>();
  #pairFills = new Map<number, number>();
  #checkpoints: Map<number, string> | null = null;
  /** Transactions whose rollback already rebuilds the pit. */
  readonly #guarded = new WeakSet<TransactionFrame>();
  /** Set when a rollback could not rebuild the pit from the journal: it refuses every command. */
  #broken: StorageError | null = null;

  constructor(opts: PitOptions) {
    this.#o = opts;
    this.#engine = new Engine(opts.config);
    this.#every = opts.checkpointEvery ?? 5_000;
  }

  get sessionId(): number {
    return this.#o.sessionId;
  }

  get config(): EngineConfig {
    return this.#o.config;
  }

  get reads(): PitReads {
    return this.#engine;
  }

  get seq(): number {
    return this.#seq;
  }

  get version(): number {
    return this.#version;
  }

  /** Changes whenever the pair's book may have (orders placed, cancelled, filled). */
  pairVersion(pair: number): number {
    return this.#pairVersions.get(pair) ?? 0;
  }

  /** Fills in the pair so far this session. */
  pairFills(pair: number): number {
    return this.#pairFills.get(pair) ?? 0;
  }

  /** Listeners see every command after it is applied, in order; returns the unsubscribe. */
  subscribe(listener: PitListener): () => void {
    this.#listeners.push(listener);
    return () => {
      const i = this.#listeners.indexOf(listener);
      if (i >= 0) this.#listeners.splice(i, 1);
    };
  }

  /**
   * Journals then applies one command. Outside a transaction the journal row commits first; inside
   * one, a rollback (COMMIT failing included) puts the pit back and listeners hear of the command
   * only after COMMIT. A storage failure throws StorageError and leaves the pit as it was.
   */
  apply(body: CommandBody): CommandResult {
    if (this.#broken !== null) throw this.#broken;
    const cmd = stamp(body, this.#seq + 1, this.#o.clock.now());
    const journal = this.#o.journal;
    if (journal === null) {
      const r = this.#run(cmd);
      this.#effects(cmd, r);
      return r;
    }
    const tx = journal.transaction();
    if (tx === null) {
      journal.append(this.#o.sessionId, cmd.seq, cmd.ts, commandToJson(cmd));
      const r = this.#run(cmd);
      this.#effects(cmd, r);
      if (this.#checkpointDue(cmd)) journal.checkpoint(this.#o.sessionId, cmd.seq, this.stateHash());
      return r;
    }
    if (!this.#guarded.has(tx)) {
      tx.onRollback(() => this.#rebuild());
      this.#guarded.add(tx);
    }
    journal.append(this.#o.sessionId, cmd.seq, cmd.ts, commandToJson(cmd));
    const r = this.#run(cmd);
    if (this.#checkpointDue(cmd)) journal.checkpoint(this.#o.sessionId, cmd.seq, this.stateHash());
    tx.afterCommit(() => this.#effects(cmd, r));
    return r;
  }

  /** Applies a journaled command (restart, audit), checking the journal's state hash where it recorded one. */
  replay(json: unknown): CommandResult {
    const cmd = commandFromJson(json as CommandJson);
    const r = this.#run(cmd);
    this.#effects(cmd, r);
    const expected = this.#checkpoints?.get(cmd.seq);
    if (expected !== undefined) {
      const actual = this.stateHash();
      if (actual !== expected) throw new JournalMismatchError(this.#o.sessionId, cmd.seq, expected, actual);
    }
    return r;
  }

  /**
   * Rebuilds from the journal (resume): every command in order, each checkpoint compared. A gap in
   * the sequence (only an older keeper could leave one) ends the replay at the gap: a tail of
   * in-pit commands alone is dropped with a warning; anything else throws JournalGapError.
   */
  replayJournal(): number {
    const journal = this.#o.journal;
    if (journal === null) return 0;
    const sessionId = this.#o.sessionId;
    this.#checkpoints = journal.checkpoints(sessionId);
    let n = 0;
    try {
      for (const entry of journal.read<unknown>(sessionId)) {
        if (entry.seq !== this.#seq + 1) {
          this.#dropTornTail(journal, this.#seq, entry.seq);
          break;
        }
        this.replay(entry.command);
        n++;
      }
    } finally {
      this.#checkpoints = null;
    }
    return n;
  }

  #dropTornTail(journal: Journal, before: number, after: number): void {
    const sessionId = this.#o.sessionId;
    const tail = [...journal.read<{ type: string }>(sessionId, before)].map((e) => ({ seq: e.seq, type: e.command.type }));
    const unsafe = tail.filter((e) => !IN_PIT.has(e.type));
    if (unsafe.length > 0) throw new JournalGapError(sessionId, { before, after, tail: tail.length, unsafe });
    const dropped = journal.truncateAfter(sessionId, before);
    const info = { sessionId, lastKept: before, gapEndsAt: after, dropped, lastDropped: tail[tail.length - 1]?.seq ?? after };
    const msg =
      `session ${sessionId}: the journal jumped from seq ${before} to ${after} (an older keeper applied commands that never committed); ` +
      `dropped the ${dropped} order commands after the gap, which were built on the lost ones. Resuming from seq ${before}.`;
    if (this.#o.log !== undefined) this.#o.log.warn(info, msg);
    else process.emitWarning(msg, { code: "CME_JOURNAL_REPAIRED" });
  }

  stateHash(): string {
    return String(this.#engine.stateHash());
  }

  #checkpointDue(cmd: Command): boolean {
    return PHASE_STEPS.has(cmd.type) || cmd.seq % this.#every === 0;
  }

  /** The engine and the pit's own counters: what a rollback puts back. */
  #run(cmd: Command): CommandResult {
    const r = this.#engine.apply(cmd);
    this.#seq = cmd.seq;
    this.#version++;
    if (r.ok) {
      const touched = new Set<number>();
      for (const e of r.events) {
        if (e.kind === "fill") this.#pairFills.set(e.pair, (this.#pairFills.get(e.pair) ?? 0) + 1);
        if ("pair" in e && typeof e.pair === "number") touched.add(e.pair);
      }
      for (const pair of touched) this.#pairVersions.set(pair, (this.#pairVersions.get(pair) ?? 0) + 1);
    }
    return r;
  }

  /** What the outside hears of a command: once it is on disk. */
  #effects(cmd: Command, r: CommandResult): void {
    const m = this.#o.metrics;
    if (m !== undefined) {
      m.commands.inc({ type: cmd.type });
      if (r.ok) for (const e of r.events) if (e.kind === "fill") m.fills.inc();
    }
    for (const l of this.#listeners) l(cmd, r);
  }

  /**
   * After a rollback: the engine as the journal has it now (what committed, plus the enclosing
   * transaction's commands when a savepoint rolled back). Never a version number twice, so no view
   * cached at a rolled-back version is served.
   */
  #rebuild(): void {
    const journal = this.#o.journal!;
    const version = this.#version;
    this.#engine = new Engine(this.#o.config);
    this.#seq = 0;
    this.#pairVersions = new Map();
    this.#pairFills = new Map();
    try {
      for (const entry of journal.read<unknown>(this.#o.sessionId)) this.#run(commandFromJson(entry.command as CommandJson));
    } catch (err) {
      this.#broken = new StorageError(
        `session ${this.#o.sessionId}: after a rollback the pit could not be rebuilt from the journal, so it takes no more commands: ${(err as Error).message}`,
        { op: "pit rebuild" },
        { cause: err },
      );
    }
    this.#version = version + 1;
  }
}
