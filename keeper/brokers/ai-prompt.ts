// Request layout for prompt caching: the fixed rules (identical for every broker), then the user's
// strategy, re-prompt and lessons (fixed for the session), and last the market state, which
// changes every tick, in a compact line format the rules prompt explains.
import type { ChatCompletionMessageParam } from "openai/resources/chat/completions";
import { RULES_PROMPT } from "./prompt-files.ts";
import type { BrokerContext, MarketContext, Purpose, RfqContext } from "./types.ts";

const PURPOSE_INSTRUCTIONS: Record<Purpose, string> = {
  open: "do opening: write your plan for this session and place your opening orders",
  tick: "do act now; plan null unless it must change",
  review: "do review: judge how your plan is doing (pnl, fills, refusals), write an updated plan, act",
  reprompt: "do your user just re-prompted you: write a new plan that follows the re-prompt, act",
};

/** Display number: at most `dp` decimals, no trailing zeros, no exponent for typical values. */
export function num(x: number, dp = 2): string {
  if (!Number.isFinite(x)) return "0";
  const f = 10 ** dp;
  const r = Math.round(x * f) / f;
  return Object.is(r, -0) ? "0" : String(r);
}

const signedNum = (x: number, dp = 2) => (x > 0 ? `+${num(x, dp)}` : num(x, dp));

/** The part of the request that is the same every tick of the session for this user. */
export function strategyMessage(ctx: BrokerContext): string {
  const parts = [`Your user's strategy:\n${ctx.strategy.trim() || "(none given: trade the built-in market-making style)"}`];
  if (ctx.reprompt !== null) parts.push(`Your user's re-prompt (overrides the strategy where they conflict):\n${ctx.reprompt.trim()}`);
  if (ctx.lessons.length > 0) parts.push(`Lessons from your earlier sessions:\n${ctx.lessons.map((l) => `- ${l}`).join("\n")}`);
  return parts.join("\n\n");
}

function encodeMarket(m: MarketContext): string[] {
  const lines = [
    `mkt ${m.symbol} mid ${m.mid === null ? "-" : num(m.mid, 1)} mark ${num(m.mark, 1)} tv ${num(m.tickValue, 6)} fee ${m.makerFeeBps}/${m.takerFeeBps} max ${m.maxOrderLots}`,
    `bid ${m.bids.map((l) => `${l.price}:${l.size}`).join(" ") || "-"}`,
    `ask ${m.asks.map((l) => `${l.price}:${l.size}`).join(" ") || "-"}`,
    `tape ${m.trades.map((t) => `${t.price}:${t.size}:${t.takerSide === "buy" ? "b" : "s"}`).join(" ") || "-"}`,
    `pos ${signedNum(m.position)} hold ${num(m.holding)}`,
  ];
  return lines;
}

const secs = (ms: number) => `${Math.max(0, Math.round(ms / 1000))}s`;

/**
 * "rfq in ID b|s SIZE PAIR lim L|- 12s min M [locked you|other] [mine QID:PRICE:SIZE]" /
 * "rfq mine ID b|s SIZE PAIR lim L|- 12s min M [locked QUOTER] quotes QID:PRICE:SIZE:QUOTER:8s ...".
 */
function encodeRfq(kind: "in" | "mine", r: RfqContext, multi: boolean): string {
  let line = `rfq ${kind} ${r.requestId} ${r.side === "buy" ? "b" : "s"} ${r.size}${multi ? ` ${r.pair}` : ""} lim ${r.limit ?? "-"} ${secs(r.expiresMs)}`;
  if (r.minFill !== undefined) line += ` min ${r.minFill}`;
  if (kind === "in" && r.lock != null) line += ` locked ${r.lock}`;
  if (kind === "in" && r.myQuote) line += ` mine ${r.myQuote.quoteId}:${r.myQuote.price}:${r.myQuote.size}`;
  if (kind === "mine" && r.lockedBy != null) line += ` locked ${r.lockedBy}`;
  if (kind === "mine") line += ` quotes ${r.quotes?.map((q) => `${q.quoteId}:${q.price}:${q.size}:${q.quoter}:${secs(q.validMs)}`).join(" ") || "-"}`;
  return line;
}

/** The changing part: compact, one item per line. */
export function encodeState(ctx: BrokerContext): string {
  const a = ctx.account;
  const lines: string[] = [`t ${ctx.tick} left ${Math.max(0, Math.round(ctx.timeLeftMs / 1000))}s ${ctx.purpose}`];
  if (ctx.plan !== null) lines.push(`plan ${ctx.plan}`);
  for (const m of ctx.markets) lines.push(...encodeMarket(m));
  lines.push(
    `acct ${a.balances.map((b) => `${b.symbol} ${num(b.amount)}`).join(" ")} eq ${num(a.equity)} im ${num(a.initialMargin)} mm ${num(a.maintenanceMargin)} ${a.marginStatus} pnl ${signedNum(a.pnl)}`,
  );
  lines.push(
    `open ${ctx.openOrders.map((o) => `${o.orderId}:${o.side === "buy" ? "b" : "s"}:${o.price}:${o.size}:${o.type}${ctx.markets.length > 1 ? `:${o.pair}` : ""}`).join(" ") || "-"}`,
  );
  const multi = ctx.markets.length > 1;
  for (const r of ctx.rfqIn ?? []) lines.push(encodeRfq("in", r, multi));
  for (const r of ctx.rfqMine ?? []) lines.push(encodeRfq("mine", r, multi));
  for (const k of ctx.keeperActions) lines.push(`keeper ${k}`);
  for (const r of ctx.refusals) lines.push(`refused ${r}`);
  for (const d of ctx.directives) lines.push(`rule ${d.text}`);
  lines.push(PURPOSE_INSTRUCTIONS[ctx.purpose]);
  return lines.join("\n");
}

export function buildMessages(ctx: BrokerContext): ChatCompletionMessageParam[] {
  return [
    { role: "system", content: RULES_PROMPT },
    { role: "user", content: strategyMessage(ctx) },
    { role: "user", content: encodeState(ctx) },
  ];
}

export function messageChars(messages: ChatCompletionMessageParam[]): number {
  let n = 0;
  for (const m of messages) if (typeof m.content === "string") n += m.content.length;
  return n;
}
