// How well the loop keeps its 1 Hz promise: per-tick lateness, on-time share, and the model
// traffic it generated (calls, tokens, failures).
import type { FailureCode } from "../brokers/types.ts";

export interface TickReport {
  tick: number;
  scheduledAtMs: number;
  /** When the pass started, relative to its schedule. */
  startLateMs: number;
  /** When every due broker had been asked, relative to the schedule. */
  doneLateMs: number;
  onTime: boolean;
  phase: string;
  asked: number;
  aiCalls: number;
  ruleDecisions: number;
  skippedInFlight: number;
  paused: number;
  backingOff: number;
  liquidations: number;
}

export interface ExecutorStats {
  ticks: number;
  /** Ticks the loop never ran because it had fallen a whole period behind. */
  missedTicks: number;
  onTimeTicks: number;
  onTimePct: number;
  doneLateP50Ms: number;
  doneLateP99Ms: number;
  doneLateMaxMs: number;
  aiCallsStarted: number;
  aiCallsAnswered: number;
  aiCallsFailed: number;
  ruleDecisions: number;
  /** Broker turns skipped because the previous call was still in flight. */
  skippedInFlight: number;
  lateReplies: number;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** All model tokens divided by ticks run. */
  tokensPerTick: number;
  /** Tokens per answered AI call: the per-broker-tick cost. */
  tokensPerAiCall: number;
  failures: Partial<Record<FailureCode, number>>;
  actionsApplied: number;
  ordersAccepted: number;
  ordersRefused: number;
  /** Accounts the keeper liquidated. */
  liquidations: number;
  /** Minimum crossing IOCs the keeper sent for brokers that twice gave none when asked. */
  keeperOrders: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export class TickStats {
  private late: number[] = [];
  ticks = 0;
  missed = 0;
  onTime = 0;
  aiCallsStarted = 0;
  aiCallsAnswered = 0;
  aiCallsFailed = 0;
  ruleDecisions = 0;
  skippedInFlight = 0;
  lateReplies = 0;
  promptTokens = 0;
  completionTokens = 0;
  cachedTokens = 0;
  failures: Partial<Record<FailureCode, number>> = {};
  actionsApplied = 0;
  ordersAccepted = 0;
  ordersRefused = 0;
  liquidations = 0;
  keeperOrders = 0;

  recordTick(r: TickReport): void {
    this.ticks += 1;
    if (r.onTime) this.onTime += 1;
    this.late.push(r.doneLateMs);
    this.aiCallsStarted += r.aiCalls;
    this.ruleDecisions += r.ruleDecisions;
    this.skippedInFlight += r.skippedInFlight;
  }

  recordFailure(code: FailureCode): void {
    this.failures[code] = (this.failures[code] ?? 0) + 1;
  }

  /** Forget everything (the benchmark discards its warm-up). */
  reset(): void {
    Object.assign(this, new TickStats());
  }

  snapshot(): ExecutorStats {
    const sorted = [...this.late].sort((a, b) => a - b);
    const total = this.ticks + this.missed;
    const tokens = this.promptTokens + this.completionTokens;
    return {
      ticks: this.ticks,
      missedTicks: this.missed,
      onTimeTicks: this.onTime,
      onTimePct: total === 0 ? 100 : (this.onTime / total) * 100,
      doneLateP50Ms: percentile(sorted, 50),
      doneLateP99Ms: percentile(sorted, 99),
      doneLateMaxMs: sorted[sorted.length - 1] ?? 0,
      aiCallsStarted: this.aiCallsStarted,
      aiCallsAnswered: this.aiCallsAnswered,
      aiCallsFailed: this.aiCallsFailed,
      ruleDecisions: this.ruleDecisions,
      skippedInFlight: this.skippedInFlight,
      lateReplies: this.lateReplies,
      promptTokens: this.promptTokens,
      completionTokens: this.completionTokens,
      cachedTokens: this.cachedTokens,
      tokensPerTick: this.ticks === 0 ? 0 : tokens / this.ticks,
      tokensPerAiCall: this.aiCallsAnswered === 0 ? 0 : tokens / this.aiCallsAnswered,
      failures: { ...this.failures },
      actionsApplied: this.actionsApplied,
      ordersAccepted: this.ordersAccepted,
      ordersRefused: this.ordersRefused,
      liquidations: this.liquidations,
      keeperOrders: this.keeperOrders,
    };
  }
}
