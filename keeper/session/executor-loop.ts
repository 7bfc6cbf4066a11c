// Builds the executor's session loop for a session: one broker binding per participant from the
// catalogue (built-in rule brokers, or AI brokers through the openai SDK), its events routed to
// the outcry feed, the metrics and the logs (liquidations reach the stream from the pit itself:
// api/stream-publisher.ts reads the same liquidate command). Lessons learned are kept per user for
// next session: the deterministic ones are stored before the session's close returns, and an AI
// broker's model lessons replace them whenever the expensive model answers (it may take its whole
// timeout, far longer than a close should wait).
import { SessionExecutor, type BrokerBinding, type BrokerSessionResult, type ExecutorEvent } from "../executor/session-executor.ts";
import { BrokerFactory } from "../brokers/factory.ts";
import type { CatalogueEntry } from "../brokers/catalogue.ts";
import type { Clock } from "../executor/clock.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { LoopContext, LoopFactory, Logger, SessionLoop } from "./runner.ts";
import type { Db } from "../store/database.ts";
import { getSetting, setSetting } from "../store/database.ts";

export interface LoopDeps {
  catalogue: CatalogueEntry[];
  clock: Clock;
  tickMs: number;
  metrics: Metrics;
  log: Logger;
  db: Db;
}

export function executorLoopFactory(deps: LoopDeps): LoopFactory {
  // One factory for the keeper's life: AI brokers of one catalogue entry share its connections.
  const factory = new BrokerFactory(deps.catalogue);
  return ({ port, participants, sessionId, onOutcry }) => {
    const exec = new SessionExecutor({
      port,
      clock: deps.clock,
      config: { tickMs: deps.tickMs },
      sink: {
        event: (e: ExecutorEvent) => onEvent(deps, e, onOutcry),
        decision: (r) => {
          deps.log.debug(
            { user: r.user, tick: r.tick, source: r.source, accepted: r.accepted, refusals: r.refusals.map((x) => x.text), orders: r.decision?.orders?.length ?? 0 },
            "broker decision",
          );
          if (r.call !== undefined || r.failure !== undefined) {
            deps.metrics.modelCalls.inc({ broker: r.brokerId, outcome: r.failure?.code ?? "ok" });
          }
        },
      },
    });
    for (const p of participants) {
      // An unknown or unavailable choice (key removed since) is served by the system default
      // strategy, which says so in its outcry.
      const bound = factory.bind(p.accountId, p.brokerId);
      if (bound.substitutedBecause !== undefined) deps.log.warn({ user: p.accountId, reason: bound.substitutedBecause }, "broker substituted");
      const binding: BrokerBinding = { broker: bound.broker };
      if (bound.ledger !== undefined) binding.ledger = bound.ledger;
      if (bound.lessons !== undefined) binding.lessons = bound.lessons;
      const lessons = JSON.parse(getSetting(deps.db, `lessons:${p.address}`) ?? "[]") as string[];
      exec.addBroker({ user: p.accountId, brokerId: p.brokerId, prompt: p.prompt, pairs: p.pairs, lessons }, binding);
    }
    deps.log.info({ sessionId, brokers: participants.length }, "executor ready");
    /** What this session stored per address, so a late model answer never overwrites a later session's lessons. */
    const stored = new Map<string, string>();
    const store = (r: BrokerSessionResult, onlyOver?: string): void => {
      const p = participants.find((x) => x.accountId === r.user);
      if (p === undefined) return;
      const key = `lessons:${p.address}`;
      if (onlyOver !== undefined && getSetting(deps.db, key) !== onlyOver) return;
      const value = JSON.stringify(r.lessons.slice(0, 8));
      setSetting(deps.db, key, value);
      stored.set(p.address, value);
    };
    const loop: SessionLoop = {
      start: () => exec.start(),
      stop: async () => {
        let results: Map<number, BrokerSessionResult>;
        try {
          // Prompt: calls in flight are aborted, nothing waits on a model.
          results = await exec.close();
          for (const r of results.values()) store(r);
        } catch (err) {
          deps.log.warn({ err }, "broker lessons failed");
          return;
        }
        // The model's lessons replace the stored ones as each answers, after the close if need be.
        void exec
          .modelLessons(results, {
            onLessons: (r) => {
              const p = participants.find((x) => x.accountId === r.user);
              const before = p === undefined ? undefined : stored.get(p.address);
              if (before !== undefined) store(r, before);
            },
          })
          .catch((err: unknown) => deps.log.warn({ err }, "broker model lessons failed"));
      },
      reprompt: (user, prompt) => {
        const r = exec.reprompt(user, prompt);
        if (!r.ok) deps.log.warn({ user, reason: r.reason }, "re-prompt not taken by the executor");
      },
    };
    return loop;
  };
}

function onEvent(deps: LoopDeps, e: ExecutorEvent, onOutcry: LoopContext["onOutcry"]): void {
  switch (e.type) {
    case "outcry":
      onOutcry(e.user, e.brokerId, e.text);
      return;
    case "tick":
      deps.metrics.tickLagMs.observe(Math.max(0, e.report.startLateMs));
      return;
    case "liquidation":
      deps.log.warn(
        {
          user: e.user,
          broker: e.brokerId,
          brokerState: e.brokerState,
          covered: e.covered.map((c) => ({ pair: c.pair, side: c.side, lots: c.lots, price: c.price })),
          fee: String(e.fee),
          fullyCovered: e.fullyCovered,
        },
        e.summary,
      );
      return;
    case "keeper_order":
      deps.log.info({ user: e.user, broker: e.brokerId, pair: e.pair, side: e.side, price: e.price, size: e.size, filled: e.filled, accepted: e.accepted }, `keeper crossed for the broker: ${e.reason}`);
      return;
    case "paused":
      deps.log.warn({ user: e.user, broker: e.brokerId, reason: e.reason }, "broker paused");
      return;
    case "internal_error":
      deps.metrics.errors.inc({ where: "executor" });
      deps.log.error({ user: e.user, message: e.message }, "executor error");
      return;
    default:
      return;
  }
}
