// What a broker sees and what it may answer. The context is only the pit (one user's view of it):
// no other user's prompt, outcry or identity ever appears here, so nothing can leak into a request.
import type { SessionPhase as Phase } from "../core/phases.ts";
import type { MarginStatus, OrderType, Side } from "../core/types.ts";

export type { MarginStatus, OrderType, Phase, Side };

/** Why the broker is being asked: the expensive tier serves every purpose except "tick". */
export type Purpose = "open" | "tick" | "reprompt" | "review";

export type Tier = "cheap" | "expensive";

export interface LevelContext {
  price: number;
  size: number;
}

export interface TradeContext {
  price: number;
  size: number;
  takerSide: Side;
  ageMs: number;
}

export interface MarketContext {
  symbol: string;
  baseSymbol: string;
  quoteSymbol: string;
  makerFeeBps: number;
  takerFeeBps: number;
  maxOrderLots: number;
  /** Quote units (display) one lot moves per tick. */
  tickValue: number;
  bids: LevelContext[];
  asks: LevelContext[];
  mid: number | null;
  mark: number;
  /** Oldest first. */
  trades: TradeContext[];
  /** Net lots the user bought (+) or sold (-) in this session: the risk its strategy took on. */
  position: number;
  /** The user's whole inventory of the base coin, deposits included, in lots (negative is a liability). */
  holding: number;
}

export interface OrderContext {
  orderId: string;
  pair: string;
  side: Side;
  price: number;
  size: number;
  type: OrderType;
  ageMs: number;
}

export interface BalanceContext {
  symbol: string;
  /** Display units of the asset (negative is a liability). */
  amount: number;
}

export interface AccountContext {
  quoteSymbol: string;
  balances: BalanceContext[];
  /** Display quote units. */
  equity: number;
  initialMargin: number;
  maintenanceMargin: number;
  marginStatus: MarginStatus;
  pnl: number;
}

export type DirectiveCode = "reduce_only" | "cross" | "quote_mid";

/** A session rule that shapes this request and is enforced on the reply. */
export interface Directive {
  code: DirectiveCode;
  /** Pair symbol the directive is about, when it is about one. */
  pair?: string;
  /** For quote_mid: how far from the mid (ticks) a quote may rest. */
  bandTicks?: number;
  text: string;
}

/** A live quote on a request (ids are the core's; times are ms left from now). */
export interface RfqQuoteContext {
  quoteId: number;
  /** The quoter's account (on the broker's own requests). */
  quoter: number;
  price: number;
  size: number;
  validMs: number;
}

/** An open request for quote: one addressed to the broker (with its own live quote) or its own (with the quotes received). */
export interface RfqContext {
  requestId: number;
  pair: string;
  /** The requester's side: "buy" asks who sells. */
  side: Side;
  /** Lots still open. */
  size: number;
  /** Ticks; null: no limit. */
  limit: number | null;
  expiresMs: number;
  /** The smallest block it trades (a quote must be at least this size), lots. */
  minFill?: number;
  /** Incoming: the broker's own live quote on it, or null. */
  myQuote?: RfqQuoteContext | null;
  /** Incoming: locked by the broker itself ("you"), by another quoter ("other"), or not (null). */
  lock?: "you" | "other" | null;
  /** Own requests: the live quotes received, best first. */
  quotes?: RfqQuoteContext[];
  /** Own requests: the account (as quotes name their quoter) holding the lock, or null. */
  lockedBy?: number | null;
}

export interface BrokerContext {
  user: number;
  brokerId: string;
  sessionId: number;
  tick: number;
  nowMs: number;
  timeLeftMs: number;
  phase: Phase;
  purpose: Purpose;
  /** The user's strategy prompt. */
  strategy: string;
  /** The session's one re-prompt, once given. */
  reprompt: string | null;
  /** Carried over from earlier sessions. */
  lessons: readonly string[];
  /** The broker's own plan from its opening/review call, if any. */
  plan: string | null;
  markets: MarketContext[];
  account: AccountContext;
  openOrders: OrderContext[];
  /** Why its last actions were refused (validation, session rules, engine, or a failed call). */
  refusals: string[];
  /**
   * What the keeper itself did on the account since the last request (a liquidation, a crossing
   * IOC it sent after two replies without one): the keeper's actions, never the broker's.
   */
  keeperActions: string[];
  directives: Directive[];
  /** Open requests for quote addressed to the broker (never its own, never one whose whitelist excludes it). */
  rfqIn?: RfqContext[];
  /** The broker's own open requests for quote, with the quotes received. */
  rfqMine?: RfqContext[];
  /** Deterministic randomness for rule brokers. */
  seed: number;
}

export interface ProposedOrder {
  /** Pair symbol, e.g. "PEPE/USDC". */
  pair: string;
  side: Side;
  /** Integer ticks. */
  price: number;
  /** Integer lots. */
  size: number;
  type: OrderType;
}

/**
 * One request-for-quote action, flat: request {pair, side, size, limit?, ttlSec?, minFill?,
 * remainder? ("keep" | "drop"), whitelist? (account ids, as quotes name their quoter)};
 * quote {requestId, price, size, ttlSec?}; accept {requestId, quoteId? (none: the best quotes), limit?, size?};
 * cancel {requestId} (own request, or withdraws own quote on it); lock / unlock {requestId} (a
 * request the broker holds a live quote on).
 */
export interface RfqAction {
  action: "request" | "quote" | "accept" | "cancel" | "lock" | "unlock";
  pair?: string | null;
  side?: Side | null;
  size?: number | null;
  limit?: number | null;
  ttlSec?: number | null;
  requestId?: number | null;
  quoteId?: number | null;
  price?: number | null;
  minFill?: number | null;
  remainder?: "keep" | "drop" | null;
  whitelist?: number[] | null;
}

export interface Decision {
  orders: ProposedOrder[];
  /** Order ids to cancel; "all" cancels every open order. */
  cancels: string[];
  outcry: string;
  /** A new plan (opening, review, re-prompt); null keeps the current one. */
  plan: string | null;
  /** Requests for quote: request, quote, accept, cancel, lock, unlock (optional). */
  rfq?: RfqAction[] | null;
}

export type FailureCode =
  | "timeout"
  | "rate_limited"
  | "server_error"
  | "http_error"
  | "auth_error"
  | "connection_error"
  | "malformed_json"
  | "schema_violation"
  | "refusal"
  | "truncated"
  | "content_filter"
  | "empty_reply"
  | "spend_cap"
  | "aborted"
  | "broker_error";

/** A call that produced no usable decision: the broker takes no action this tick. */
export interface BrokerFailure {
  code: FailureCode;
  message: string;
  /** Server-requested back-off (429 retry-after). */
  retryAfterMs?: number;
}

/** One model call, as logged: which model answered, what it cost. */
export interface CallInfo {
  tier: Tier;
  requestedModel: string;
  /** The model the endpoint says answered (may differ from the requested alias). */
  model: string;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** Estimated cost in 1e-12 USD. */
  costPicoUsd: bigint;
  /** True when usage was not reported (timeout) and the reservation was charged instead. */
  estimated: boolean;
  latencyMs: number;
}

export type BrokerResult =
  | { ok: true; decision: Decision; call?: CallInfo }
  | { ok: false; failure: BrokerFailure; call?: CallInfo };

export interface Broker {
  readonly brokerId: string;
  readonly kind: "ai" | "rule";
  /** Never throws: every failure is a typed BrokerResult. */
  decide(context: BrokerContext, signal?: AbortSignal): Promise<BrokerResult>;
}
