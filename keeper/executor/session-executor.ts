// The session loop. Every tick (1 s by default) it first does the keeper's own duty: at the tick's
// marks it liquidates every account of the pit below maintenance margin, whatever its broker is
// doing (a call in flight, paused, backing off, at its spend cap, or no broker at all). Then it
// visits every broker: reads the user's account and orders, applies the session rules, builds the
// request and asks the broker, never waiting for the answer. Each broker has at most one call in
// flight; a reply is checked against the state at the moment it arrives and only then reaches the
// book.
//
// Failures are values: a failed call means no action, its reason is shown to the broker next
// time, repeated failures pause the broker (its orders stay), a 429 backs it off for as long as
// the provider asked. A broker whose first reply gives no orders for one of its pairs gets the
// system default strategy's orders for that pair; at its spend cap, an AI broker is served by the
// built-in default strategy and says so. A broker that twice replies without the crossing order
// the no-fill rule asks for on a pair gets the minimum crossing IOC from the keeper, which is
// logged, streamed and shown to the broker as the keeper's.
import type { DecisionOutcome, DecisionRecord, DecisionSink, DecisionSource, Refusal } from "../brokers/decision-log.ts";
import { addRecord, emptySummary, lessonsFromSummary, summaryText, type LogSummary } from "../brokers/lessons.ts";
import { mixSeed } from "../core/prng.ts";
import { RuleBroker, SYSTEM_DEFAULT_STRATEGY, systemDefaultDecision } from "../brokers/rule/rule-broker.ts";
import { clipOutcry } from "../brokers/rule/book-math.ts";
import { formatUsd, type SpendLedger } from "../brokers/spend-ledger.ts";
import type { Broker, BrokerContext, BrokerFailure, BrokerResult, CallInfo, Decision, Directive, Purpose, Side } from "../brokers/types.ts";
import { PLAN_MAX_CHARS } from "../brokers/decision-schema.ts";
import { checkPrompt } from "../brokers/prompt-rules.ts";
import type { Clock, TimerHandle } from "./clock.ts";
import { buildContext, type BrokerSettings } from "./context-builder.ts";
import type { CoveredView, MarketView, PairView, PhaseView, PitPort, RfqOutcome } from "./pit-port.ts";
import { assess, DEFAULT_RULES, directivesForReply, enforce, enforceRfq, minimumCross, type EnforcedRfq, type Enforcement, type RecentOrder, type RuleConfig } from "./rules.ts";
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

/** What an account's broker was doing when the keeper liquidated it ("none": the account has no broker). */
export type BrokerState = "none" | "idle" | "in_flight" | "paused" | "backing_off" | "spend_cap";

/** The keeper liquidated an account below maintenance margin (amounts in base units of their asset). */
export interface LiquidationEvent {
  type: "liquidation";
  user: number;
  brokerId: string | null;
  brokerState: BrokerState;
  tick: number;
  cancelledOrders: number;
  covered: CoveredView[];
  /** Quote base units to the insurance account. */
  fee: bigint;
  equityBefore: bigint;
  maintenanceBefore: bigint;
  equityAfter: bigint;
  fullyCovered: boolean;
  summary: string;
  ts: number;
}

/** An order the keeper itself sent for a broker (the minimum crossing IOC): the keeper's, never the broker's. */
export interface KeeperOrderEvent {
  type: "keeper_order";
  user: number;
  brokerId: string;
  pair: string;
  side: Side;
  price: number;
  size: number;
  accepted: boolean;
  filled: number;
  reason: string;
  ts: number;
}

export type ExecutorEvent =
  | { type: "outcry"; user: number; brokerId: string; text: string; source: DecisionSource; ts: number }
  | LiquidationEvent
  | KeeperOrderEvent
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

/** Fills counted toward one decision's outcome as they are polled. */
interface FillTally {
  fills: number;
  filledLots: number;
  fees: bigint;
}

interface OpenOutcome extends FillTally {
  record: DecisionRecord;
  pnlAtOpen: bigint;
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
  /** The first reply has come (pairs it gave nothing for got the system default's orders). */
  started: boolean;
  capped: boolean;
  fillCursor: number;
  /** Net lots traded this session, per pair. */
  netLots: Map<number, number>;
  /** Accepted orders per pair id, for the no-fill window. */
  recentOrders: Map<number, RecentOrder[]>;
  /** Replies in a row without the crossing order the rules asked for, per pair id. */
  crossMisses: Map<number, number>;
  /** What the keeper did on the account since the last request, for the next context. */
  keeperActions: string[];
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
  private quoteDecimals = 6;

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
      started: false,
      capped: false,
      fillCursor: 0,
      netLots: new Map(),
      recentOrders: new Map(),
      crossMisses: new Map(),
      keeperActions: [],
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
      // The keeper's own duties come first, whatever the brokers are doing.
      this.liquidateDue(report);
      try {
        this.port.expireRfqs(this.clock.now());
      } catch (err) {
        this.internalError(err);
      }
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

  // ---- the keeper's own duty: liquidation ------------------------------------------------

  /**
   * Every account below maintenance margin at the tick's marks is liquidated now: orders
   * cancelled, liabilities covered at the banded mid, the fee to insurance (the core's liquidate
   * command, journaled). Broker state plays no part: not a call in flight, a pause, a back-off,
   * the spend cap, or having no broker at all.
   */
  private liquidateDue(report: TickReport): void {
    let due: number[];
    try {
      due = this.port.liquidationsDue();
    } catch (err) {
      return this.internalError(err);
    }
    for (const user of due) {
      try {
        if (this.liquidate(user)) report.liquidations += 1;
      } catch (err) {
        this.internalError(err, user);
      }
    }
  }

  private brokerState(slot: Slot | undefined): BrokerState {
    if (slot === undefined) return "none";
    const now = this.clock.now();
    if (slot.inFlight) return "in_flight";
    if (now < slot.pausedUntil) return "paused";
    if (now < slot.notBefore) return "backing_off";
    if (slot.capped) return "spend_cap";
    return "idle";
  }

  /** Liquidates one account; false when the core found it above maintenance margin after all. */
  private liquidate(user: number): boolean {
    const slot = this.slots.get(user);
    const brokerState = this.brokerState(slot);
    // Fills so far belong to the broker's decisions; the liquidation's own fills to none of them.
    if (slot !== undefined) this.pollFills(slot);
    const out = this.port.liquidate(user);
    if (!out.liquidated) return false;
    this.stats.liquidations += 1;
    if (slot !== undefined) {
      this.pollFills(slot, null);
      slot.keeperActions.push(`the keeper ${out.summary}`);
      slot.summary.liquidations += 1;
    }
    const { liquidated: _, ...detail } = out;
    this.emit({ type: "liquidation", user, brokerId: slot?.settings.brokerId ?? null, brokerState, tick: this.tickNo, ...detail, ts: this.clock.now() });
    return true;
  }

  // ---- asking the brokers -------------------------------------------------------------------

  private dispatch(slot: Slot, phase: PhaseView, report: TickReport): void {
    const now = this.clock.now();
    const user = slot.settings.user;
    if (slot.inFlight) return void (report.skippedInFlight += 1);
    if (now < slot.pausedUntil) return void (report.paused += 1);
    if (now < slot.notBefore) return void (report.backingOff += 1);

    const account = this.port.account(user);
    // Still below MM after this tick's liquidation (the book could not cover it all): the keeper
    // liquidates again next tick; the broker is not asked.
    if (account.marginStatus === "below_mm") return;
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
      { phase, nowMs: now, pairs, markets, account, rfqs: this.port.rfqs(user) },
      {
        positions: slot.netLots,
        tick: this.tickNo,
        purpose,
        plan: slot.plan,
        reprompt: slot.reprompt,
        refusals: slot.refusals.map((r) => r.text),
        keeperActions: slot.keeperActions,
        directives,
        seed: mixSeed(phase.sessionId, user, this.tickNo),
      },
    );
    slot.refusals = [];
    slot.keeperActions = [];
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

  /** Fills since the last poll: attributed to a decision (by default the open one) and to the no-fill window. */
  private pollFills(slot: Slot, into: FillTally | null = slot.open): void {
    const { fills, cursor } = this.port.fills(slot.settings.user, slot.fillCursor);
    slot.fillCursor = cursor;
    if (fills.length === 0) return;
    const filledIds = new Set<string>();
    for (const f of fills) {
      filledIds.add(f.orderId);
      slot.netLots.set(f.pair, (slot.netLots.get(f.pair) ?? 0) + (f.side === "buy" ? f.size : -f.size));
      if (into !== null) {
        into.fills += 1;
        into.filledLots += f.size;
        into.fees += f.fee;
      }
    }
    for (const list of slot.recentOrders.values()) for (const o of list) if (filledIds.has(o.orderId)) o.filled = true;
  }

  private noteOrder(slot: Slot, o: RecentOrder): void {
    let list = slot.recentOrders.get(o.pair);
    if (list === undefined) slot.recentOrders.set(o.pair, (list = []));
    list.push(o);
    // Only the window matters; a little more is kept so late fills of older orders find them.
    const keep = this.config.rules.noFillWindow * 2;
    if (list.length > keep) list.splice(0, list.length - keep);
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
      if (!slot.started && result.failure.code !== "aborted") {
        // A first reply that failed gave nothing for any pair: the system default trades them.
        slot.started = true;
        const ctx = this.freshContext(slot, askedCtx.purpose);
        if (ctx !== null) {
          record.source = "system_default";
          record.defaulted = ctx.markets.map((m) => m.symbol);
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
    if (!slot.started) {
      slot.started = true;
      decision = this.withStartDefault(slot, record, decision, askedCtx.purpose);
    }
    this.apply(slot, record, decision, askedCtx.directives);
  }

  /**
   * The first reply: every one of the user's pairs it gives no orders for gets the system default
   * strategy's orders for that pair, in the same action (the record names those pairs).
   */
  private withStartDefault(slot: Slot, record: DecisionRecord, decision: Decision, purpose: Purpose): Decision {
    const given = new Set(decision.orders.map((o) => o.pair));
    const pairs = this.userPairs(slot);
    const missing = pairs.filter((p) => !given.has(p.symbol));
    if (missing.length === 0) return decision;
    const ctx = this.freshContext(slot, purpose, missing);
    if (ctx === null) return decision;
    const label = missing.length === pairs.length ? "system default" : `system default on ${missing.map((p) => p.symbol).join(", ")}`;
    const d = systemDefaultDecision(ctx, label);
    record.defaulted = missing.map((p) => p.symbol);
    if (decision.orders.length === 0) record.source = "system_default";
    return {
      ...decision,
      orders: [...decision.orders, ...d.orders],
      cancels: [...decision.cancels, ...d.cancels],
      outcry: decision.outcry !== "" ? clipOutcry(`${decision.outcry} ${d.outcry}`) : d.outcry,
    };
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

  /** A context from the state now (for actions decided on the keeper's side after a reply), optionally of some pairs only. */
  private freshContext(slot: Slot, purpose: Purpose, only?: readonly PairView[]): BrokerContext | null {
    const phase = this.port.phase();
    const account = this.port.account(slot.settings.user);
    if (account.marginStatus === "below_mm") return null;
    this.pollFills(slot);
    const pairs = only ?? this.userPairs(slot);
    const markets = new Map<number, MarketView>();
    for (const p of pairs) markets.set(p.pair, this.port.market(p.pair, this.config.bookLevels, this.config.tradesInContext));
    const { directives } = assess(account, pairs, markets, slot.recentOrders, this.config.rules);
    return buildContext(
      slot.settings,
      { phase, nowMs: this.clock.now(), pairs, markets, account, rfqs: this.port.rfqs(slot.settings.user) },
      {
        positions: slot.netLots,
        tick: this.tickNo,
        purpose,
        plan: slot.plan,
        reprompt: slot.reprompt,
        refusals: [],
        keeperActions: [],
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
      this.liquidate(user);
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
        this.noteOrder(slot, { orderId: o.orderId, pair: sent.request.pair, filled: o.filled > 0 });
      } else {
        const src = decision.orders[sent.index]!;
        record.refusals.push({
          code: "engine",
          text: `order ${sent.index + 1} (${src.side} ${src.size}@${src.price} ${src.type} ${src.pair}): refused by the book: ${o.reason ?? "rejected"}`,
        });
      }
    });
    if (decision.rfq != null && decision.rfq.length > 0) this.applyRfq(slot, record, decision, pairs, markets, directives);
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
    this.countCrossMisses(slot, record, directives, checked, pairs);
  }

  /**
   * A reply's requests for quote, after its orders: checked like orders (rules.ts enforceRfq),
   * sent one by one through the port; what the rules or the core refuse goes back to the broker.
   */
  private applyRfq(slot: Slot, record: DecisionRecord, decision: Decision, pairs: readonly PairView[], markets: ReadonlyMap<number, MarketView>, directives: readonly Directive[]): void {
    const user = slot.settings.user;
    const now = this.clock.now();
    const checked = enforceRfq({
      actions: decision.rfq ?? [],
      userPairs: pairs,
      pairBySymbol: (s) => this.port.pairBySymbol(s),
      markets,
      account: this.port.account(user),
      rfqs: this.port.rfqs(user),
      directives,
      nowMs: now,
      cfg: this.config.rules,
    });
    record.refusals.push(...checked.refusals);
    for (const x of checked.actions) {
      const out = this.sendRfq(user, x);
      if (!out.accepted) record.refusals.push({ code: "engine", text: `${x.label}: refused by the pit: ${out.reason ?? "rejected"}` });
    }
  }

  private sendRfq(user: number, x: EnforcedRfq): RfqOutcome {
    switch (x.action) {
      case "request":
        return this.port.rfqRequest(user, x.request);
      case "quote":
        return this.port.rfqQuote(user, x.quote);
      case "accept":
        return this.port.rfqAccept(user, x.accept);
      case "cancel":
        return this.port.rfqCancel(user, x.requestId);
      case "lock":
        return this.port.rfqLock(user, x.requestId);
      case "unlock":
        return this.port.rfqUnlock(user, x.requestId);
    }
  }

  /**
   * The no-fill rule per pair: a reply that meets a cross directive clears its count; one that
   * does not was refused (the reason goes back to the broker), and the second in a row has the
   * keeper send the minimum crossing IOC itself.
   */
  private countCrossMisses(slot: Slot, record: DecisionRecord, directives: readonly Directive[], checked: Enforcement, pairs: readonly PairView[]): void {
    for (const d of directives) {
      if (d.code !== "cross") continue;
      const p = pairs.find((x) => x.symbol === d.pair);
      if (p !== undefined && !checked.missedCross.includes(p.symbol)) slot.crossMisses.delete(p.pair);
    }
    for (const symbol of checked.missedCross) {
      const p = pairs.find((x) => x.symbol === symbol);
      if (p === undefined) continue;
      const misses = (slot.crossMisses.get(p.pair) ?? 0) + 1;
      if (misses < 2) {
        slot.crossMisses.set(p.pair, misses);
        continue;
      }
      slot.crossMisses.delete(p.pair);
      this.keeperCross(slot, p, record);
    }
  }

  /** The keeper's own minimum crossing IOC on `pair`, recorded, streamed and shown as the keeper's. */
  private keeperCross(slot: Slot, pair: PairView, after: DecisionRecord): void {
    const user = slot.settings.user;
    const account = this.port.account(user);
    const order = minimumCross(account, pair, this.port.market(pair.pair, this.config.bookLevels + account.openOrders.length, 0));
    if (order === null) return;
    // Fills so far are the broker's; what this IOC fills is the keeper's.
    this.pollFills(slot);
    const now = this.clock.now();
    const reason = `two replies in a row without the crossing order on ${pair.symbol} that the no-fill rule asked for`;
    const record: DecisionRecord = {
      sessionId: after.sessionId,
      user,
      brokerId: slot.settings.brokerId,
      tick: this.tickNo,
      askedAtMs: now,
      answeredAtMs: now,
      purpose: "tick",
      source: "keeper",
      late: false,
      decision: { orders: [{ pair: pair.symbol, side: order.side, price: order.price, size: order.size, type: "ioc" }], cancels: [], outcry: "", plan: null },
      accepted: { orders: 0, cancels: 0, crossing: 0 },
      refusals: [],
      outcome: null,
    };
    const out = this.port.submit(user, { cancels: [], orders: [order] }).orders[0];
    const what = `${order.side} ${order.size} ${pair.symbol} @${order.price} IOC`;
    const tally: FillTally = { fills: 0, filledLots: 0, fees: 0n };
    let filled = 0;
    if (out?.accepted === true && out.orderId !== undefined) {
      filled = out.filled;
      record.accepted = { orders: 1, cancels: 0, crossing: 1 };
      this.noteOrder(slot, { orderId: out.orderId, pair: pair.pair, filled: filled > 0 });
      this.pollFills(slot, tally);
      slot.keeperActions.push(`the keeper crossed for you: ${what}, ${filled} filled (${reason}); this order was the keeper's, not yours`);
      this.stats.keeperOrders += 1;
    } else {
      record.refusals.push({ code: "engine", text: `the keeper's ${what}: refused by the book: ${out?.reason ?? "rejected"}` });
      slot.keeperActions.push(`the keeper tried to cross for you (${what}) but the book refused it: ${out?.reason ?? "rejected"}`);
    }
    const outcome: DecisionOutcome = { ...tally, pnlChange: this.port.account(user).pnl - account.pnl };
    record.outcome = outcome;
    this.emit({ type: "keeper_order", user, brokerId: slot.settings.brokerId, pair: pair.symbol, side: order.side, price: order.price, size: order.size, accepted: record.accepted.orders === 1, filled, reason, ts: now });
    this.publish(slot, record);
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
   * open decision's outcome and returns each broker's deterministic lessons, at once (a broker
   * that ignores its abort signal is not waited for beyond a second).
   */
  async close(opts: { quoteDecimals?: number; quoteSymbol?: string } = {}): Promise<Map<number, BrokerSessionResult>> {
    this.stop();
    this.finished = true;
    for (const s of this.slots.values()) s.abort?.abort();
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([this.idle(), new Promise<void>((resolve) => (bound = setTimeout(resolve, 1_000)))]);
    clearTimeout(bound);
    this.quoteDecimals = opts.quoteDecimals ?? 6;
    const symbol = opts.quoteSymbol ?? "USDC";
    const results = new Map<number, BrokerSessionResult>();
    for (const s of this.slots.values()) {
      const user = s.settings.user;
      this.pollFills(s);
      this.closeOpen(s, this.port.account(user).pnl);
      results.set(user, {
        user,
        brokerId: s.settings.brokerId,
        lessons: lessonsFromSummary(s.summary, this.quoteDecimals, symbol),
        lessonsBy: "rules",
        summary: s.summary,
        spend: s.binding.ledger?.summary() ?? null,
      });
    }
    return results;
  }

  /**
   * Asks each AI broker's model for lessons to replace the deterministic ones in `results` (from
   * `close`); `onLessons` runs as each answers, so a slow model holds nobody else's.
   */
  async modelLessons(
    results: Map<number, BrokerSessionResult>,
    opts: { lessonsConcurrency?: number; onLessons?: (r: BrokerSessionResult) => void } = {},
  ): Promise<void> {
    const pending: (() => Promise<void>)[] = [];
    for (const r of results.values()) {
      const s = this.slots.get(r.user);
      const ask = s?.binding.lessons;
      if (s === undefined || ask === undefined || s.summary.decisions === 0) continue;
      pending.push(async () => {
        const got = await ask(s.settings.prompt, summaryText(s.summary, this.quoteDecimals)).catch(() => null);
        r.spend = s.binding.ledger?.summary() ?? null;
        if (got === null || got.lessons.length === 0) return;
        r.lessons = got.lessons;
        r.lessonsBy = "model";
        try {
          opts.onLessons?.(r);
        } catch (err) {
          this.internalError(err, r.user);
        }
      });
    }
    const width = Math.max(1, opts.lessonsConcurrency ?? 64);
    for (let i = 0; i < pending.length; i += width) await Promise.all(pending.slice(i, i + width).map((f) => f()));
  }

  /** `close`, then (unless `aiLessons` is false) waits for every model's lessons. */
  async finish(opts: { aiLessons?: boolean; quoteDecimals?: number; quoteSymbol?: string; lessonsConcurrency?: number } = {}): Promise<Map<number, BrokerSessionResult>> {
    const results = await this.close(opts);
    if (opts.aiLessons !== false) await this.modelLessons(results, opts.lessonsConcurrency === undefined ? {} : { lessonsConcurrency: opts.lessonsConcurrency });
    return results;
  }
}
