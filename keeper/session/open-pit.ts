// A session's pit with its two standing listeners: the fill-log recorder (settlement) and the
// executor's port. The runner opens one per session; tests, benchmarks and the audit's replay
// open the same, so they see the pit exactly as the keeper does.
import type { EngineConfig } from "../core/types.ts";
import type { Clock } from "../executor/clock.ts";
import type { PhaseView } from "../executor/pit-port.ts";
import type { Metrics } from "../ops/metrics.ts";
import { FillLogRecorder } from "../settlement/recorder.ts";
import type { Journal } from "../store/journal.ts";
import { ExecutorPort } from "./executor-port.ts";
import type { PairMeta } from "./pairs.ts";
import { SessionPit } from "./pit.ts";

export interface OpenPit {
  pit: SessionPit;
  recorder: FillLogRecorder;
  port: ExecutorPort;
}

export function openPit(opts: {
  market: { engine: EngineConfig; pairs: PairMeta[] };
  sessionId: number;
  /** Null: nothing is journaled (replays, tests). */
  journal: Journal | null;
  clock: Clock;
  metrics?: Metrics;
  log?: { warn(o: object, m?: string): void };
  phase: () => PhaseView;
}): OpenPit {
  const pit = new SessionPit({
    config: opts.market.engine,
    sessionId: opts.sessionId,
    journal: opts.journal,
    clock: opts.clock,
    ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }),
    ...(opts.log === undefined ? {} : { log: opts.log }),
  });
  const recorder = new FillLogRecorder(opts.market.engine, () => pit.reads.closeOut());
  const port = new ExecutorPort({ pit, pairs: opts.market.pairs, phase: opts.phase, ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }) });
  pit.subscribe(recorder.listener);
  pit.subscribe(port.listener);
  return { pit, recorder, port };
}
