// The session loop. Every tick (1 s by default) it visits every broker: reads the user's account
// and orders, applies the margin rules (liquidating below MM), builds the request and asks the
// broker, never waiting for the answer. Each broker has at most one call in flight; a reply is
// checked against the state at the moment it arrives and only then reaches the book.
//
// Failures are values: a failed call means no action, its reason is shown to the broker next
// time, repeated failures pause the broker (its orders stay), a 429 backs it off for as long as
// the provider asked. At the start, a broker that gives nothing gets the system default strategy;
// at its spend cap, an AI broker is served by the built-in default strategy and says so.
import type { DecisionRecord, DecisionSink, DecisionSource, Refusal } from "../brokers/decision-log.ts";
import { addRecord, emptySummary, lessonsFromSummary, summaryText, type LogSummary } from "../brokers/lessons.ts";
import { mixSeed } from "../core/prng.ts";
import { RuleBroker, SYSTEM_DEFAULT_STRATEGY, systemDefaultDecision } from "../brokers/rule/rule-broker.ts";
import { clipOutcry } from "../brokers/rule/book-math.ts";
import { formatUsd, type SpendLedger } from "../brokers/spend-ledger.ts";
import type { Broker, BrokerContext, BrokerFailure, BrokerResult, CallInfo, Decision, Directive, Purpose } from "../brokers/types.ts";
import { PLAN_MAX_CHARS } from "../brokers/decision-schema.ts";
import { checkPrompt } from "../brokers/prompt-rules.ts";
import type { Clock, TimerHandle } from "./clock.ts";
import { buildContext, type BrokerSettings } from "./context-builder.ts";
import type { MarketView, PairView, PhaseView, PitPort } from "./pit-port.ts";
import { assess, DEFAULT_RULES, directivesForReply, enforce, type RecentOrder, type RuleConfig } from "./rules.ts";
import { TickStats, type ExecutorStats, type TickReport } from "./tick-stats.ts";

export interface ExecutorConfig {
  tickMs: number;
  bookLevels: number;
  tradesInContext: number;
  /** The expensive tier reviews the plan every this many ticks. */
  reviewEveryTicks: number;
  /** Consecutive failed calls before a broker is paused. */
  maxConsecutiveFailures: number;
  pauseMs: number;
  maxPauseMs: number;
  /** Back-off after a 5xx or connection error without retry-after (doubles per failure). */
  errorBackoffMs: number;
  /** A tick is on time when every due broker was asked within this long of its scheduled instant. */
  onTimeBudgetMs: number;
  /** Brokers visited per event-loop turn, so replies and I/O interleave with a large pass. */
  dispatchChunk: number;
  /** Recent decision records kept per broker for inspection. */
  keepRecords: number;
  rules: RuleConfig;
}

export const DEFAULT_EXECUTOR_CONFIG: ExecutorConfig = {
  tickMs: 1000,
  bookLevels: 5,
  tradesInContext: 20,
  reviewEveryTicks: 300,
  maxConsecutiveFailures: 5,
  pauseMs: 30_000,
  maxPauseMs: 300_000,
  errorBackoffMs: 2_000,
  onTimeBudgetMs: 250,
  dispatchChunk: 200,
  keepRecords: 20,
  rules: DEFAULT_RULES,
};

/** A broker as the executor runs it: the broker, and for AI brokers the session's spend ledger. */
export interface BrokerBinding {
  broker: Broker;
  ledger?: SpendLedger;
  /** Optional AI lessons at session end; the deterministic lessons are the fallback. */
  lessons?: (strategy: string, summary: string) => Promise<{ lessons: string[] } | null>;
}

export type ExecutorEvent =
  | { type: "outcry"; user: number; brokerId: string; text: string; source: DecisionSource; ts: number }
  | { type: "liquidation"; user: number; summary: string; ts: number }
  | { type: "paused"; user: number; brokerId: string; untilMs: number; reason: string; ts: number }
  | { type: "resumed"; user: number; brokerId: string; ts: number }
  | { type: "spend_cap"; user: number; brokerId: string; spentUsd: number; ts: number }
  | { type: "tick"; report: TickReport }
  | { type: "internal_error"; user?: number; message: string; ts: number };

export interface ExecutorSink extends DecisionSink {
  event?(e: ExecutorEvent): void;
}

export type RepromptResult = { ok: true } | { ok: false; reason: "unknown_user" | "not_trading" | "already_used" | "empty" | "too_long" };

export interface BrokerSessionResult {
  user: number;
  brokerId: string;
  lessons: string[];
  lessonsBy: "model" | "rules";
  summary: LogSummary;
  spend: { spentUsd: number; capUsd: number; tokens: number; calls: number } | null;
}

export interface BrokerStatus {
  user: number;
  brokerId: string;
  kind: "ai" | "rule";
  inFlight: boolean;
  paused: boolean;
  pausedUntilMs: number;
  consecutiveFailures: number;
  cappedAtSpend: boolean;
  repromptUsed: boolean;
  plan: string | null;
  lastOutcry: string | null;
  spend: { spentUsd: number; capUsd: number; tokens: number; calls: number } | null;
  recent: readonly DecisionRecord[];
}

interface OpenOutcome {
  record: DecisionRecord;
  pnlAtOpen: bigint;
  fills: number;
  filledLots: number;
  fees: bigint;
}

interface Slot {
  settings: BrokerSettings;
  binding: BrokerBinding;
  inFlight: boolean;
  abort: AbortController | null;
  consecutiveFailures: number;
  pauseCount: number;
  pausedUntil: number;
  notBefore: number;
  refusals: Refusal[];
  plan: string | null;
  reprompt: string | null;
  repromptUsed: boolean;
  repromptPending: boolean;
  opened: boolean;
  lastReviewTick: number;
  purposeFailures: number;
  defaultUsed: boolean;
  everPlaced: boolean;
  capped: boolean;
  fillCursor: number;
  /** Net lots traded this session, per pair. */
  netLots: Map<number, number>;
  recentOrders: RecentOrder[];
  open: OpenOutcome | null;
  summary: LogSummary;
  recent: DecisionRecord[];
  lastOutcry: string | null;
}

const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

const SPEND_CAP_BROKER = new RuleBroker("system-default", SYSTEM_DEFAULT_STRATEGY);

export class SessionExecutor {
  readonly config: ExecutorConfig;
  private readonly port: PitPort;
  private readonly clock: Clock;
  private readonly sink: ExecutorSink;
  private readonly slots = new Map<number, Slot>();
  private readonly stats = new TickStats();
  private tickNo = 0;
  private running = false;
  private finished = false;
  private timer: TimerHandle | null = null;
  private epoch = 0;
  private k = 0;
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];
  private marketCache = new Map<number, MarketView>();

  constructor(opts: { port: PitPort; clock: Clock; config?: Partial<ExecutorConfig>; sink?: ExecutorSink }) {
    this.port = opts.port;
    this.clock = opts.clock;
    this.sink = opts.sink ?? {};
    this.config = { ...DEFAULT_EXECUTOR_CONFIG, ...opts.config, rules: { ...DEFAULT_RULES, ...opts.config?.rules } };
  }

  // ---- setup -------------------------------------------------------------------------------

  /** One broker per user; replaces the user's previous binding (settings are fixed per session). */
  addBroker(settings: BrokerSettings, binding: BrokerBinding): void {
    const copy: BrokerSettings = {
      user: settings.user,
      brokerId: settings.brokerId,
      prompt: settings.prompt,
      pairs: [...settings.pairs],
      lessons: [...settings.lessons],
    };
    this.slots.set(settings.user, {
      settings: copy,
      binding,
      inFlight: false,
      abort: null,
      consecutiveFailures: 0,
      pauseCount: 0,
      pausedUntil: 0,
      notBefore: 0,
      refusals: [],
      plan: null,
      reprompt: null,
      repromptUsed: false,
      repromptPending: false,
      opened: false,
      lastReviewTick: 0,
      purposeFailures: 0,
      defaultUsed: false,
      everPlaced: false,
      capped: false,
      fillCursor: 0,
      netLots: new Map(),
      recentOrders: [],
      open: null,
      summary: emptySummary(),
      recent: [],
      lastOutcry: null,
    });
  }

  /** The user's one re-prompt for this session. */
  reprompt(user: number, text: string): RepromptResult {
    const slot = this.slots.get(user);
    if (slot === undefined) return { ok: false, reason: "unknown_user" };
    if (this.port.phase().phase !== "trading" || this.finished) return { ok: false, reason: "not_trading" };
    if (slot.repromptUsed) return { ok: false, reason: "already_used" };
    const checked = checkPrompt(text);
    if (!checked.ok) return { ok: false, reason: checked.reason };
    slot.reprompt = checked.text;
    slot.repromptUsed = true;
    slot.repromptPending = true;
    return { ok: true };
  }

  // ---- the loop ----------------------------------------------------------------------------

  start(): void {
    if (this.running) return;
    this.running = true;
    this.epoch = this.clock.now();
    this.k = 0;
    this.schedule();
  }

  stop(): void {
    this.running = false;
    this.timer?.cancel();
    this.timer = null;
  }

  private schedule(): void {
    const now = this.clock.now();
    let next = this.epoch + (this.k + 1) * this.config.tickMs;
    // More than a whole period behind: skip the instants already gone; they count as missed.
    while (next + this.config.tickMs <= now) {
      this.k += 1;
      this.stats.missed += 1;
      next += this.config.tickMs;
    }
    this.k += 1;
    this.timer = this.clock.setTimer(() => {
      this.tick(next)
        .catch((err) => this.internalError(err))
        .finally(() => {
          if (this.running) this.schedule();
        });
    }, next - now);
  }

  /** One pass over every broker. The timer calls it; tests may call it directly. */
  async tick(scheduledAtMs: number = this.clock.now()): Promise<TickReport> {
    const phase = this.port.phase();
    this.tickNo += 1;
    const report: TickReport = {
      tick: this.tickNo,
      scheduledAtMs,
      startLateMs: this.clock.now() - scheduledAtMs,
      doneLateMs: 0,
      onTime: false,
      phase: phase.phase,
      asked: 0,
      aiCalls: 0,
      ruleDecisions: 0,
      skippedInFlight: 0,
      paused: 0,
      backingOff: 0,
      liquidations: 0,
    };
    if (phase.phase === "trading" && !this.finished) {
      this.marketCache.clear();
      const slots = [...this.slots.values()];
      // Rotate the starting broker so nobody is always first to the book.
      const start = slots.length === 0 ? 0 : this.tickNo % slots.length;
      for (let i = 0; i < slots.length; i++) {
        const slot = slots[(start + i) % slots.length]!;
        try {
          this.dispatch(slot, phase, report);
        } catch (err) {
          this.internalError(err, slot.settings.user);
        }
        if ((i + 1) % this.config.dispatchChunk === 0 && i + 1 < slots.length) {
          await yieldTurn();
          // Replies applied meanwhile moved the book: read it afresh.
          this.marketCache.clear();
        }
      }
    }
    report.doneLateMs = this.clock.now() - scheduledAtMs;
    report.onTime = report.doneLateMs <= this.config.onTimeBudgetMs;
    this.stats.recordTick(report);
    this.emit({ type: "tick", report });
    return report;
  }

  private market(pair: number): MarketView {
    let m = this.marketCache.get(pair);
    if (m === undefined) {
      m = this.port.market(pair, this.config.bookLevels, this.config.tradesInContext);
      this.marketCache.set(pair, m);
    }
    return m;
  }

  private userPairs(slot: Slot): PairView[] {
    const out: PairView[] = [];
    for (const s of slot.settings.pairs) {
      const p = this.port.pairBySymbol(s);
      if (p !== undefined) out.push(p);
    }
    return out;
  }

  private purposeFor(slot: Slot): Purpose {
    if (!slot.opened) return "open";
    if (slot.repromptPending) return "reprompt";
    if (this.tickNo - slot.lastReviewTick >= this.config.reviewEveryTicks) return "review";
    return "tick";
  }

  private dispatch(slot: Slot, phase: PhaseView, report: TickReport): void {
    const now = this.clock.now();
    const user = slot.settings.user;
    if (slot.inFlight) return void (report.skippedInFlight += 1);
    if (now < slot.pausedUntil) return void (report.paused += 1);
    if (now < slot.notBefore) return void (report.backingOff += 1);

    const account = this.port.account(user);
    if (account.marginStatus === "below_mm") {
      this.liquidate(slot);
      report.liquidations += 1;
      return;
    }
    this.pollFills(slot);
    const pairs = this.userPairs(slot);
    const markets = new Map<number, MarketView>();
    for (const p of pairs) markets.set(p.pair, this.market(p.pair));
    const { directives } = assess(account, pairs, markets, slot.recentOrders, this.config.rules);
    const purpose = this.purposeFor(slot);
    const capped = slot.capped;
    const broker = capped ? SPEND_CAP_BROKER : slot.binding.broker;
    const ctx = buildContext(
      slot.settings,
      { phase, nowMs: now, pairs, markets, account },
      {
        positions: slot.netLots,
        tick: this.tickNo,
        purpose,
        plan: slot.plan,
        reprompt: slot.reprompt,
        refusals: slot.refusals.map((r) => r.text),
        directives,
        seed: mixSeed(phase.sessionId, user, this.tickNo),
      },
    );
    slot.refusals = [];
    slot.inFlight = true;
    this.inFlight += 1;
    report.asked += 1;
    if (broker.kind === "ai") report.aiCalls += 1;
    else report.ruleDecisions += 1;
    const ac = new AbortController();
    slot.abort = ac;
    const askedTick = this.tickNo;
    let result: Promise<BrokerResult>;
    try {
      result = broker.decide(ctx, ac.signal);
    } catch (err) {
      result = Promise.resolve({ ok: false, failure: { code: "broker_error", message: `broker threw: ${String(err).slice(0, 120)}` } });
    }
    result
      .catch((err): BrokerResult => ({ ok: false, failure: { code: "broker_error", message: `broker threw: ${String(err).slice(0, 120)}` } }))
      .then((r) => this.onResult(slot, ctx, r, capped ? "spend_cap_fallback" : "broker", askedTick))
      .catch((err) => this.internalError(err, user))
      .finally(() => {
        slot.inFlight = false;
        slot.abort = null;
        this.inFlight -= 1;
        if (this.inFlight === 0) for (const w of this.idleWaiters.splice(0)) w();
      });
  }

  private liquidate(slot: Slot): void {
    const user = slot.settings.user;
    const out = this.port.liquidate(user);
    slot.refusals.push({ code: "liquidated", text: `you fell below maintenance margin and were liquidated: ${out.summary}` });
    this.emit({ type: "liquidation", user, summary: out.summary, ts: this.clock.now() });
  }

  /** Fills since the last poll: attributed to the open decision and to the no-fill window. */
  private pollFills(slot: Slot): void {
    const { fills, cursor } = this.port.fills(slot.settings.user, slot.fillCursor);
    slot.fillCursor = cursor;
    if (fills.length === 0) return;
    const filledIds = new Set<string>();
    for (const f of fills) {
      filledIds.add(f.orderId);
      slot.netLots.set(f.pair, (slot.netLots.get(f.pair) ?? 0) + (f.side === "buy" ? f.size : -f.size));
      if (slot.open !== null) {
        slot.open.fills += 1;
        slot.open.filledLots += f.size;
        slot.open.fees += f.fee;
      }
    }
    for (const o of slot.recentOrders) if (filledIds.has(o.orderId)) o.filled = true;
  }

  private onResult(slot: Slot, askedCtx: BrokerContext, result: BrokerResult, source: DecisionSource, askedTick: number): void {
    if (this.finished) return;
    const now = this.clock.now();
    const user = slot.settings.user;
    const record: DecisionRecord = {
      sessionId: askedCtx.sessionId,
      user,
      brokerId: slot.settings.brokerId,
      tick: askedTick,
      askedAtMs: askedCtx.nowMs,
      answeredAtMs: now,
      purpose: askedCtx.purpose,
      source,
      late: this.tickNo > askedTick,
      accepted: { orders: 0, cancels: 0, crossing: 0 },
      refusals: [],
      outcome: null,
    };
    if (record.late) this.stats.lateReplies += 1;
    if (result.call !== undefined) this.countCall(result.call, record);

    if (this.port.phase().phase !== "trading") {
      record.refusals.push({ code: "phase", text: "the session is no longer trading" });
      if (!result.ok) record.failure = result.failure;
      else record.decision = result.decision;
      return this.closeNoAction(slot, record);
    }

    if (!result.ok) {
      record.failure = result.failure;
      if (slot.binding.broker.kind === "ai") this.stats.aiCallsFailed += 1;
      this.stats.recordFailure(result.failure.code);
      if (result.failure.code === "spend_cap") {
        slot.capped = true;
        const spent = slot.binding.ledger?.spentPicoUsd ?? 0n;
        this.emit({ type: "spend_cap", user, brokerId: slot.settings.brokerId, spentUsd: Number(spent) / 1e12, ts: now });
        const ctx = this.freshContext(slot, "tick");
        if (ctx === null) return this.closeNoAction(slot, record);
        const d = systemDefaultDecision(ctx, `budget spent (${formatUsd(spent)}): built-in market maker`);
        record.source = "spend_cap_fallback";
        return this.apply(slot, record, d, askedCtx.directives);
      }
      this.onFailure(slot, askedCtx, result.failure, now);
      if (!slot.everPlaced && !slot.defaultUsed) {
        const ctx = this.freshContext(slot, askedCtx.purpose);
        if (ctx !== null) {
          slot.defaultUsed = true;
          record.source = "system_default";
          return this.apply(slot, record, systemDefaultDecision(ctx, "system default"), askedCtx.directives);
        }
      }
      return this.closeNoAction(slot, record);
    }

    if (slot.consecutiveFailures > 0 || slot.pauseCount > 0) {
      if (slot.pauseCount > 0 && slot.consecutiveFailures > 0) this.emit({ type: "resumed", user, brokerId: slot.settings.brokerId, ts: now });
      slot.consecutiveFailures = 0;
      slot.pauseCount = 0;
    }
    slot.purposeFailures = 0;
    this.consumePurpose(slot, askedCtx.purpose);
    let decision = result.decision;
    if (source === "spend_cap_fallback") decision = { ...decision, outcry: clipOutcry(`[budget spent] ${decision.outcry}`) };
    if (decision.plan !== null && decision.plan.trim() !== "") slot.plan = decision.plan.trim().slice(0, PLAN_MAX_CHARS);
    if (decision.orders.length === 0 && !slot.everPlaced && !slot.defaultUsed) {
      // Nothing at the start: the system default strategy trades for it this once.
      const ctx = this.freshContext(slot, askedCtx.purpose);
      if (ctx !== null) {
        slot.defaultUsed = true;
        record.source = "system_default";
        const d = systemDefaultDecision(ctx, "system default");
        decision = { ...d, cancels: [...decision.cancels, ...d.cancels], outcry: decision.outcry !== "" ? clipOutcry(`${decision.outcry} ${d.outcry}`) : d.outcry };
      }
    }
    this.apply(slot, record, decision, askedCtx.directives);
  }

  private consumePurpose(slot: Slot, purpose: Purpose): void {
    if (purpose === "open") {
      slot.opened = true;
      slot.lastReviewTick = this.tickNo;
    } else if (purpose === "reprompt") slot.repromptPending = false;
    else if (purpose === "review") slot.lastReviewTick = this.tickNo;
  }

  private onFailure(slot: Slot, ctx: BrokerContext, failure: BrokerFailure, now: number): void {
    if (failure.code === "aborted") return;
    slot.refusals.push({ code: `call_${failure.code}`, text: `your last reply was not used: ${failure.message}` });
    slot.consecutiveFailures += 1;
    if (ctx.purpose !== "tick") {
      // A planning call that keeps failing must not starve the per-tick calls.
      slot.purposeFailures += 1;
      if (slot.purposeFailures >= 2) {
        this.consumePurpose(slot, ctx.purpose);
        slot.purposeFailures = 0;
      }
    }
    if (failure.retryAfterMs !== undefined) slot.notBefore = Math.max(slot.notBefore, now + failure.retryAfterMs);
    else if (failure.code === "server_error" || failure.code === "connection_error" || failure.code === "rate_limited") {
      const exp = Math.min(4, slot.consecutiveFailures - 1);
      slot.notBefore = Math.max(slot.notBefore, now + this.config.errorBackoffMs * 2 ** exp);
    }
    if (slot.consecutiveFailures >= this.config.maxConsecutiveFailures) {
      const ms = Math.min(this.config.maxPauseMs, this.config.pauseMs * 2 ** slot.pauseCount);
      slot.pauseCount += 1;
      slot.pausedUntil = now + ms;
      // Half-open: one more failure after the pause pauses it again.
      slot.consecutiveFailures = this.config.maxConsecutiveFailures - 1;
      slot.refusals.push({
        code: "paused",
        text: `paused for ${Math.round(ms / 1000)}s after ${this.config.maxConsecutiveFailures} failed replies; your orders were left as they were`,
      });
      this.emit({ type: "paused", user: slot.settings.user, brokerId: slot.settings.brokerId, untilMs: now + ms, reason: failure.message, ts: now });
    }
  }

  private countCall(call: CallInfo, record: DecisionRecord): void {
    record.call = call;
    if (!call.estimated) this.stats.aiCallsAnswered += 1;
    this.stats.promptTokens += call.promptTokens;
    this.stats.completionTokens += call.completionTokens;
    this.stats.cachedTokens += call.cachedTokens;
  }

  /** A context from the state now (for actions decided on the keeper's side after a reply). */
  private freshContext(slot: Slot, purpose: Purpose): BrokerContext | null {
    const phase = this.port.phase();
    const account = this.port.account(slot.settings.user);
    if (account.marginStatus === "below_mm") return null;
    this.pollFills(slot);
    const pairs = this.userPairs(slot);
    const markets = new Map<number, MarketView>();
    for (const p of pairs) markets.set(p.pair, this.port.market(p.pair, this.config.bookLevels, this.config.tradesInContext));
    const { directives } = assess(account, pairs, markets, slot.recentOrders, this.config.rules);
    return buildContext(
      slot.settings,
      { phase, nowMs: this.clock.now(), pairs, markets, account },
      {
        positions: slot.netLots,
        tick: this.tickNo,
        purpose,
        plan: slot.plan,
        reprompt: slot.reprompt,
        refusals: [],
        directives,
        seed: mixSeed(phase.sessionId, slot.settings.user, this.tickNo, 1),
      },
    );
  }

  /** Checks a decision against the state now and sends what passes to the book. */
  private apply(slot: Slot, record: DecisionRecord, decision: Decision, askedDirectives: readonly Directive[]): void {
    const user = slot.settings.user;
    record.decision = decision;
    const account = this.port.account(user);
    if (account.marginStatus === "below_mm") {
      record.refusals.push({ code: "below_mm", text: "below maintenance margin: the keeper liquidates, your action was not applied" });
      this.liquidate(slot);
      return this.closeNoAction(slot, record);
    }
    const pairs = this.userPairs(slot);
    const markets = new Map<number, MarketView>();
    // Deep enough to see past the user's own orders when judging what crosses.
    const depth = this.config.bookLevels + account.openOrders.length;
    for (const p of pairs) markets.set(p.pair, this.port.market(p.pair, depth, 0));
    const now = assess(account, pairs, markets, slot.recentOrders, this.config.rules);
    const directives = directivesForReply(askedDirectives, now);
    const checked = enforce({
      orders: decision.orders,
      cancels: decision.cancels,
      userPairs: pairs,
      pairBySymbol: (s) => this.port.pairBySymbol(s),
      markets,
      account,
      directives,
      cfg: this.config.rules,
    });
    record.refusals.push(...checked.refusals);

    // Close the previous decision's outcome before this one changes the account.
    this.pollFills(slot);
    this.closeOpen(slot, account.pnl);

    let outcome = { cancels: [] as { accepted: boolean }[], orders: [] as { index: number; accepted: boolean; orderId?: string; reason?: string; filled: number }[] };
    if (checked.cancels.length > 0 || checked.orders.length > 0) {
      outcome = this.port.submit(user, { cancels: checked.cancels, orders: checked.orders.map((o) => o.request) });
    }
    record.accepted.cancels = outcome.cancels.filter((c) => c.accepted).length;
    outcome.orders.forEach((o, i) => {
      const sent = checked.orders[i];
      if (sent === undefined) return;
      if (o.accepted && o.orderId !== undefined) {
        record.accepted.orders += 1;
        if (sent.crossing) record.accepted.crossing += 1;
        slot.everPlaced = true;
        slot.recentOrders.push({ orderId: o.orderId, filled: o.filled > 0 });
      } else {
        const src = decision.orders[sent.index]!;
        record.refusals.push({
          code: "engine",
          text: `order ${sent.index + 1} (${src.side} ${src.size}@${src.price} ${src.type} ${src.pair}): refused by the book: ${o.reason ?? "rejected"}`,
        });
      }
    });
    if (slot.recentOrders.length > this.config.rules.noFillWindow * 4) slot.recentOrders.splice(0, slot.recentOrders.length - this.config.rules.noFillWindow);
    this.stats.actionsApplied += 1;
    this.stats.ordersAccepted += record.accepted.orders;
    this.stats.ordersRefused += decision.orders.length - record.accepted.orders;
    slot.refusals.push(...record.refusals);
    slot.open = { record, pnlAtOpen: account.pnl, fills: 0, filledLots: 0, fees: 0n };
    const text = decision.outcry.trim();
    if (text !== "") {
      slot.lastOutcry = text;
      this.emit({ type: "outcry", user, brokerId: slot.settings.brokerId, text, source: record.source, ts: this.clock.now() });
    }
  }

  /** Records that changed nothing have no outcome to wait for. */
  private closeNoAction(slot: Slot, record: DecisionRecord): void {
    slot.refusals.push(...record.refusals.filter((r) => !slot.refusals.some((x) => x.text === r.text)));
    this.publish(slot, record);
  }

  private closeOpen(slot: Slot, pnlNow: bigint): void {
    const o = slot.open;
    if (o === null) return;
    o.record.outcome = { fills: o.fills, filledLots: o.filledLots, fees: o.fees, pnlChange: pnlNow - o.pnlAtOpen };
    slot.open = null;
    this.publish(slot, o.record);
  }

  private publish(slot: Slot, record: DecisionRecord): void {
    addRecord(slot.summary, record);
    slot.recent.push(record);
    if (slot.recent.length > this.config.keepRecords) slot.recent.shift();
    try {
      this.sink.decision?.(record);
    } catch (err) {
      this.internalError(err, slot.settings.user);
    }
  }

  private emit(e: ExecutorEvent): void {
    try {
      this.sink.event?.(e);
    } catch {
      // A faulty sink must not stop the pit.
    }
  }

  private internalError(err: unknown, user?: number): void {
    this.emit({ type: "internal_error", ...(user !== undefined ? { user } : {}), message: String(err), ts: this.clock.now() });
  }

  // ---- reads and the end -------------------------------------------------------------------

  /** Resolves when no broker call is in flight. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  snapshotStats(): ExecutorStats {
    return this.stats.snapshot();
  }

  resetStats(): void {
    this.stats.reset();
  }

  status(user: number): BrokerStatus | undefined {
    const s = this.slots.get(user);
    if (s === undefined) return undefined;
    const now = this.clock.now();
    return {
      user,
      brokerId: s.settings.brokerId,
      kind: s.binding.broker.kind,
      inFlight: s.inFlight,
      paused: now < s.pausedUntil,
      pausedUntilMs: s.pausedUntil,
      consecutiveFailures: s.consecutiveFailures,
      cappedAtSpend: s.capped,
      repromptUsed: s.repromptUsed,
      plan: s.plan,
      lastOutcry: s.lastOutcry,
      spend: s.binding.ledger?.summary() ?? null,
      recent: [...s.recent],
    };
  }

  /**
   * Ends the session for the brokers: stops the loop, cancels calls still in flight, closes every
   * open decision's outcome and returns each broker's lessons for its next session.
   */
  async finish(opts: { aiLessons?: boolean; quoteDecimals?: number; quoteSymbol?: string; lessonsConcurrency?: number } = {}): Promise<Map<number, BrokerSessionResult>> {
    this.stop();
    this.finished = true;
    for (const s of this.slots.values()) s.abort?.abort();
    await this.idle();
    const decimals = opts.quoteDecimals ?? 6;
    const symbol = opts.quoteSymbol ?? "USDC";
    const results = new Map<number, BrokerSessionResult>();
    const pending: (() => Promise<void>)[] = [];
    for (const s of this.slots.values()) {
      const user = s.settings.user;
      this.pollFills(s);
      this.closeOpen(s, this.port.account(user).pnl);
      const r: BrokerSessionResult = {
        user,
        brokerId: s.settings.brokerId,
        lessons: lessonsFromSummary(s.summary, decimals, symbol),
        lessonsBy: "rules",
        summary: s.summary,
        spend: s.binding.ledger?.summary() ?? null,
      };
      results.set(user, r);
      const ask = s.binding.lessons;
      if (opts.aiLessons !== false && ask !== undefined && s.summary.decisions > 0) {
        pending.push(async () => {
          const got = await ask(s.settings.prompt, summaryText(s.summary, decimals)).catch(() => null);
          if (got !== null && got.lessons.length > 0) {
            r.lessons = got.lessons;
            r.lessonsBy = "model";
          }
          r.spend = s.binding.ledger?.summary() ?? null;
        });
      }
    }
    const width = Math.max(1, opts.lessonsConcurrency ?? 64);
    for (let i = 0; i < pending.length; i += width) await Promise.all(pending.slice(i, i + width).map((f) => f()));
    return results;
  }
}
