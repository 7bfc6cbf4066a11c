// Builds the executor's session loop for a session: one broker binding per participant from the
// catalogue (built-in rule brokers, or AI brokers through the openai SDK), its events routed to
// the outcry feed, the metrics and the logs. Lessons learned are kept per user for next session.
import { SessionExecutor, type BrokerBinding, type ExecutorEvent } from "../executor/session-executor.ts";
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
    const loop: SessionLoop = {
      start: () => exec.start(),
      stop: async () => {
        try {
          // Bounded: a slow model must not hold the session's close.
          const results = await Promise.race([exec.finish(), new Promise<undefined>((r) => setTimeout(r, 5_000))]);
          exec.stop();
          for (const r of results?.values() ?? []) {
            const p = participants.find((x) => x.accountId === r.user);
            if (p !== undefined) setSetting(deps.db, `lessons:${p.address}`, JSON.stringify(r.lessons.slice(0, 8)));
          }
        } catch (err) {
          deps.log.warn({ err }, "broker lessons failed");
        }
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
      deps.log.warn({ user: e.user, summary: e.summary }, "liquidated");
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
