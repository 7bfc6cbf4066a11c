// The pit: the exchange core's Engine behind the journal. Every command is stamped with the next
// sequence number and the keeper's clock, appended to the journal, and only then applied;
// replaying the journal rebuilds the same engine (it is deterministic), and the state hashes
// checkpointed in the journal prove it on resume.
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

/** What readers may ask the engine: views only, never `apply`. */
export type PitReads = Pick<
  Engine,
  "phase" | "depth" | "mid" | "mark" | "account" | "recentTrades" | "marginStatus" | "liquidationsDue" | "closeOut" | "stateHash"
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

const PHASE_STEPS = new Set(["start_trading", "end_trading", "close_out"]);

export class SessionPit {
  readonly #engine: Engine;
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

  /** Journals then applies one command. */
  apply(body: CommandBody): CommandResult {
    const cmd = stamp(body, this.#seq + 1, this.#o.clock.now());
    this.#o.journal?.append(this.#o.sessionId, cmd.seq, cmd.ts, commandToJson(cmd));
    const r = this.#run(cmd);
    if (this.#o.journal !== null && this.#o.journal !== undefined && this.#checkpointDue(cmd)) {
      this.#o.journal.checkpoint(this.#o.sessionId, cmd.seq, this.stateHash());
    }
    return r;
  }

  /** Applies a journaled command (restart, audit), checking the journal's state hash where it recorded one. */
  replay(json: unknown): CommandResult {
    const cmd = commandFromJson(json as CommandJson);
    const r = this.#run(cmd);
    const expected = this.#checkpoints?.get(cmd.seq);
    if (expected !== undefined) {
      const actual = this.stateHash();
      if (actual !== expected) throw new JournalMismatchError(this.#o.sessionId, cmd.seq, expected, actual);
    }
    return r;
  }

  /** Rebuilds from the journal (resume): every command in order, each checkpoint compared. */
  replayJournal(): number {
    const journal = this.#o.journal;
    if (journal === null) return 0;
    this.#checkpoints = journal.checkpoints(this.#o.sessionId);
    let n = 0;
    try {
      for (const entry of journal.read<unknown>(this.#o.sessionId)) {
        this.replay(entry.command);
        n++;
      }
    } finally {
      this.#checkpoints = null;
    }
    return n;
  }

  stateHash(): string {
    return String(this.#engine.stateHash());
  }

  #checkpointDue(cmd: Command): boolean {
    return PHASE_STEPS.has(cmd.type) || cmd.seq % this.#every === 0;
  }

  #run(cmd: Command): CommandResult {
    const r = this.#engine.apply(cmd);
    this.#seq = cmd.seq;
    this.#version++;
    this.#o.metrics?.commands.inc({ type: cmd.type });
    if (r.ok) {
      const touched = new Set<number>();
      for (const e of r.events) {
        if (e.kind === "fill") {
          this.#o.metrics?.fills.inc();
          this.#pairFills.set(e.pair, (this.#pairFills.get(e.pair) ?? 0) + 1);
        }
        if ("pair" in e && typeof e.pair === "number") touched.add(e.pair);
      }
      for (const pair of touched) this.#pairVersions.set(pair, (this.#pairVersions.get(pair) ?? 0) + 1);
    }
    for (const l of this.#listeners) l(cmd, r);
    return r;
  }
}
