// End-of-session lessons: a few lines per broker, carried into its next session's context. The
// deterministic version below always works; AI brokers may ask their expensive model instead
// (AiBroker.lessons) and fall back to this.
import type { DecisionRecord } from "./decision-log.ts";
import type { FailureCode } from "./types.ts";

export interface LogSummary {
  /** The broker's own decisions (the keeper's orders are counted apart). */
  decisions: number;
  actions: number;
  failures: Partial<Record<FailureCode, number>>;
  refusals: Map<string, { count: number; example: string }>;
  ordersAccepted: number;
  crossingAccepted: number;
  fills: number;
  filledLots: number;
  fees: bigint;
  pnl: bigint;
  pnlBySource: Map<string, bigint>;
  /** Worst closed decision: its PnL change and tick. */
  worst: { pnl: bigint; tick: number; what: string } | null;
  best: { pnl: bigint; tick: number; what: string } | null;
  tokens: number;
  costPicoUsd: bigint;
  models: Map<string, number>;
  /** Minimum crossing IOCs the keeper sent because the broker twice gave none when asked. */
  keeperOrders: number;
  /** Times the keeper liquidated the account below maintenance margin. */
  liquidations: number;
}

export function emptySummary(): LogSummary {
  return {
    decisions: 0,
    actions: 0,
    failures: {},
    refusals: new Map(),
    ordersAccepted: 0,
    crossingAccepted: 0,
    fills: 0,
    filledLots: 0,
    fees: 0n,
    pnl: 0n,
    pnlBySource: new Map(),
    worst: null,
    best: null,
    tokens: 0,
    costPicoUsd: 0n,
    models: new Map(),
    keeperOrders: 0,
    liquidations: 0,
  };
}

function describe(r: DecisionRecord): string {
  const os = r.decision?.orders ?? [];
  if (os.length === 0) return "no new orders";
  return os
    .slice(0, 3)
    .map((o) => `${o.side} ${o.size}@${o.price} ${o.type}`)
    .join(", ");
}

/** Folds one record in; the executor keeps a running summary instead of every record. */
export function addRecord(s: LogSummary, r: DecisionRecord): void {
  if (r.source === "keeper") {
    // The keeper's own order: its outcome is not the broker's doing.
    s.keeperOrders += 1;
    return;
  }
  s.decisions += 1;
  if (r.failure !== undefined) s.failures[r.failure.code] = (s.failures[r.failure.code] ?? 0) + 1;
  if (r.decision !== undefined) s.actions += 1;
  for (const x of r.refusals) {
    const e = s.refusals.get(x.code);
    if (e === undefined) s.refusals.set(x.code, { count: 1, example: x.text });
    else e.count += 1;
  }
  s.ordersAccepted += r.accepted.orders;
  s.crossingAccepted += r.accepted.crossing;
  if (r.call !== undefined) {
    s.tokens += r.call.promptTokens + r.call.completionTokens;
    s.costPicoUsd += r.call.costPicoUsd;
    s.models.set(r.call.model, (s.models.get(r.call.model) ?? 0) + 1);
  }
  const o = r.outcome;
  if (o !== null) {
    s.fills += o.fills;
    s.filledLots += o.filledLots;
    s.fees += o.fees;
    s.pnl += o.pnlChange;
    s.pnlBySource.set(r.source, (s.pnlBySource.get(r.source) ?? 0n) + o.pnlChange);
    if (r.decision !== undefined && r.decision.orders.length > 0) {
      if (s.worst === null || o.pnlChange < s.worst.pnl) s.worst = { pnl: o.pnlChange, tick: r.tick, what: describe(r) };
      if (s.best === null || o.pnlChange > s.best.pnl) s.best = { pnl: o.pnlChange, tick: r.tick, what: describe(r) };
    }
  }
}

export function summarizeLog(records: readonly DecisionRecord[]): LogSummary {
  const s = emptySummary();
  for (const r of records) addRecord(s, r);
  return s;
}

/** Quote base units to a display string. */
export function money(x: bigint, decimals: number): string {
  const neg = x < 0n;
  const a = neg ? -x : x;
  const unit = 10n ** BigInt(decimals);
  const whole = a / unit;
  const cents = decimals >= 2 ? (a % unit) / 10n ** BigInt(decimals - 2) : (a % unit) * 10n ** BigInt(2 - decimals);
  return `${neg ? "-" : x > 0n ? "+" : ""}${whole}.${cents.toString().padStart(2, "0")}`;
}

const FAILURE_ADVICE: Partial<Record<FailureCode, string>> = {
  malformed_json: "answer with the JSON action only",
  schema_violation: "use integer ticks and lots, at most 10 orders, outcry under 140 characters",
  truncated: "keep the reply short",
  timeout: "keep the reply short so it arrives in time",
  refusal: "stick to placing orders",
  rate_limited: "the provider rate-limited you; fewer, larger decisions",
};

const REFUSAL_ADVICE: Record<string, string> = {
  reduce_only: "keep margin above the initial requirement so you are not limited to reducing orders",
  cross: "when your orders on a pair stop filling, cross the spread there once instead of waiting or saying nothing",
  quote_mid: "keep a bid and an ask near the mid",
  price_band: "price orders near the mark",
  not_your_pair: "trade only your own pairs",
  unknown_pair: "use the pair symbols exactly as shown",
  max_size: "respect the pair's max order size",
  open_orders: "cancel stale orders before adding new ones",
  unknown_order: "cancel only ids listed under open",
  engine: "the book refused some orders; check margin and post-only prices",
};

export function lessonsFromSummary(s: LogSummary, quoteDecimals = 6, quoteSymbol = "USDC"): string[] {
  const out: string[] = [];
  const liquidated =
    s.liquidations > 0
      ? `Liquidated ${s.liquidations}x below maintenance margin: size positions so a 10% move against you leaves equity above maintenance margin.`
      : null;
  if (s.decisions === 0) return ["No decisions last session: answer every request with at least a cancel or an order.", ...(liquidated === null ? [] : [liquidated])];
  out.push(
    `Last session: PnL ${money(s.pnl, quoteDecimals)} ${quoteSymbol} over ${s.decisions} decisions; ${s.fills} fills (${s.filledLots} lots), fees ${money(s.fees, quoteDecimals).replace("+", "")}.`,
  );
  const failed = Object.entries(s.failures).filter(([c]) => c !== "spend_cap") as [FailureCode, number][];
  const failedCount = failed.reduce((a, [, n]) => a + n, 0);
  if (failedCount * 10 >= s.decisions && failedCount > 0) {
    failed.sort((a, b) => b[1] - a[1]);
    const [code] = failed[0]!;
    out.push(`${Math.round((failedCount / s.decisions) * 100)}% of replies failed (mostly ${code}): ${FAILURE_ADVICE[code] ?? "answer simply and quickly"}.`);
  }
  if (liquidated !== null) out.push(liquidated);
  if (s.keeperOrders > 0) {
    out.push(`The keeper had to cross for you ${s.keeperOrders}x: when told there was no fill in your last 5 orders on a pair, include a crossing order there yourself.`);
  }
  const topRefusal = [...s.refusals.entries()].sort((a, b) => b[1].count - a[1].count)[0];
  if (topRefusal !== undefined && topRefusal[1].count >= 3) {
    out.push(`Refused ${topRefusal[1].count}x for ${topRefusal[0].replace("_", " ")}: ${REFUSAL_ADVICE[topRefusal[0]] ?? topRefusal[1].example}.`);
  }
  if (s.ordersAccepted >= 10 && s.fills * 5 < s.ordersAccepted) {
    out.push(`Only ${s.fills} fills from ${s.ordersAccepted} orders: quote closer to the mid or take liquidity when the book is thin.`);
  }
  if (s.worst !== null && s.worst.pnl < 0n) {
    out.push(`Worst decision (tick ${s.worst.tick}, ${money(s.worst.pnl, quoteDecimals)}): ${s.worst.what}; avoid repeating it.`);
  } else if (s.best !== null && s.best.pnl > 0n) {
    out.push(`Best decision (tick ${s.best.tick}, ${money(s.best.pnl, quoteDecimals)}): ${s.best.what}; look for that setup again.`);
  }
  return out.slice(0, 5).map((l) => (l.length > 200 ? l.slice(0, 199) + "…" : l));
}

export function lessonsFromLog(records: readonly DecisionRecord[], quoteDecimals = 6, quoteSymbol = "USDC"): string[] {
  return lessonsFromSummary(summarizeLog(records), quoteDecimals, quoteSymbol);
}

/** A compact text summary for the AI lessons call. */
export function summaryText(s: LogSummary, quoteDecimals = 6): string {
  const lines = [
    `decisions ${s.decisions}, actions ${s.actions}, orders accepted ${s.ordersAccepted} (crossing ${s.crossingAccepted})`,
    `fills ${s.fills} (${s.filledLots} lots), fees ${money(s.fees, quoteDecimals)}, pnl ${money(s.pnl, quoteDecimals)}`,
    `pnl by source: ${[...s.pnlBySource.entries()].map(([k, v]) => `${k} ${money(v, quoteDecimals)}`).join(", ") || "-"}`,
    `failed calls: ${Object.entries(s.failures).map(([k, v]) => `${k} ${v}`).join(", ") || "none"}`,
    `refusals: ${[...s.refusals.entries()].map(([k, v]) => `${k} ${v.count} (e.g. ${v.example})`).join("; ") || "none"}`,
    `keeper actions: ${s.liquidations} liquidations, ${s.keeperOrders} crossing orders sent for you`,
  ];
  if (s.worst !== null) lines.push(`worst decision: tick ${s.worst.tick} ${money(s.worst.pnl, quoteDecimals)}: ${s.worst.what}`);
  if (s.best !== null) lines.push(`best decision: tick ${s.best.tick} ${money(s.best.pnl, quoteDecimals)}: ${s.best.what}`);
  return lines.join("\n");
}
