// The executor's narrow view of the pit. The session layer adapts the pit to this port
// (session/executor-port.ts: engine read views, and commands through the journal), so the session loop never depends on how the
// book or the margin engine are built, and tests can drive the loop over any pit.
//
// Units: prices are integer ticks and sizes integer lots of one pair; money (inventory, equity,
// margin, PnL, fees) is bigint in the asset's base units, as everywhere in the keeper.

import type { SessionPhase } from "../core/phases.ts";
import type { MarginStatus, OrderType, Side } from "../core/types.ts";
export type { MarginStatus, OrderType, Side };

export interface AssetView {
  asset: number;
  symbol: string;
  decimals: number;
}

export interface PairView {
  pair: number;
  /** e.g. "PEPE/USDC" */
  symbol: string;
  base: AssetView;
  quote: AssetView;
  /** Base-asset base units in one lot. */
  lotSize: bigint;
  /** Quote-asset base units one lot moves per tick of price: a fill's quote amount is price * size * tickValue. */
  tickValue: bigint;
  makerFeeBps: number;
  takerFeeBps: number;
  /** Smallest and largest size one order may carry, in lots. */
  minOrderLots: number;
  maxOrderLots: number;
}

export interface LevelView {
  price: number;
  size: number;
}

export interface TradeView {
  price: number;
  size: number;
  /** The side of the order that took liquidity. */
  takerSide: Side;
  ts: number;
}

export interface MarketView {
  pair: number;
  bids: LevelView[];
  asks: LevelView[];
  /** Null while one side of the book is empty. */
  mid: number | null;
  /** The margin engine's mark (the pit's mid banded around the reference price). */
  mark: number;
  trades: TradeView[];
}

export interface OpenOrderView {
  orderId: string;
  pair: number;
  side: Side;
  price: number;
  /** Remaining lots. */
  size: number;
  type: OrderType;
  ts: number;
}

export interface BalanceView {
  asset: number;
  /** Negative is a liability. */
  amount: bigint;
}

export interface AccountView {
  user: number;
  inventory: BalanceView[];
  openOrders: OpenOrderView[];
  /** Quote-asset base units, valued at the mark. */
  equity: bigint;
  initialMargin: bigint;
  maintenanceMargin: bigint;
  marginStatus: MarginStatus;
  /** Session PnL at the mark, quote-asset base units. */
  pnl: bigint;
}

export interface FillView {
  orderId: string;
  pair: number;
  side: Side;
  price: number;
  size: number;
  liquidity: "maker" | "taker";
  /** Quote-asset base units paid (negative for a rebate). */
  fee: bigint;
  ts: number;
}

export interface PhaseView {
  sessionId: number;
  phase: SessionPhase;
  /** When the current phase ends (the pit's clock, ms). */
  endsAtMs: number;
}

export interface OrderRequest {
  pair: number;
  side: Side;
  price: number;
  size: number;
  type: OrderType;
}

export interface OrderOutcome {
  /** Index into the submitted orders. */
  index: number;
  accepted: boolean;
  orderId?: string;
  /** The engine's reject code when not accepted (e.g. "insufficient_margin", "post_only_would_cross"). */
  reason?: string;
  /** Lots filled on arrival. */
  filled: number;
  /** Lots left resting on the book. */
  resting: number;
}

export interface CancelOutcome {
  orderId: string;
  accepted: boolean;
  reason?: string;
}

export interface SubmitOutcome {
  cancels: CancelOutcome[];
  orders: OrderOutcome[];
}

/** What a liquidation bought back or sold on one pair (the keeper's IOCs, at most mark ± slippage). */
export interface CoveredView {
  pair: number;
  /** The pair's base asset: what was bought back (a short) or sold (a long, to repay borrowed quote). */
  asset: number;
  side: Side;
  lots: number;
  /** Base-asset base units. */
  amount: bigint;
  /** Quote-asset base units paid (buy) or received (sell), before the fee. */
  quote: bigint;
  /** Volume-weighted average price, ticks (not always a whole tick). */
  price: number;
}

export interface LiquidationOutcome {
  /** False when the core refused (the account was not below maintenance margin at its marks). */
  liquidated: boolean;
  cancelledOrders: number;
  covered: CoveredView[];
  /** Quote-asset base units paid to the insurance account. */
  fee: bigint;
  /** Quote-asset base units, at the core's marks. */
  equityBefore: bigint;
  maintenanceBefore: bigint;
  equityAfter: bigint;
  /** No liability left (the book was deep enough within the slippage limit). */
  fullyCovered: boolean;
  /** Human-readable summary for the broker's next context and the log. */
  summary: string;
}

export interface RfqQuoteView {
  quoteId: number;
  quoter: number;
  price: number;
  size: number;
  validUntil: number;
}

/** An open request for quote and its live quotes (ascending id). */
export interface RfqView {
  requestId: number;
  pair: number;
  user: number;
  side: Side;
  /** Lots still open. */
  remaining: number;
  limit: number | null;
  expiresAt: number;
  whitelist: readonly number[] | null;
  minFill: number;
  lockedBy: number | null;
  quotes: RfqQuoteView[];
}

export interface RfqRequestOrder {
  pair: number;
  side: Side;
  size: number;
  limit: number | null;
  /** Pit clock ms. */
  expiresAt: number;
  /** Account ids that may quote; absent: anyone. */
  whitelist?: readonly number[];
  /** Smallest block in lots; absent: the pair's minimum size. */
  minFill?: number;
  /** What a partial accept leaves: kept open (absent: "keep") or dropped. */
  remainder?: "keep" | "drop";
}

export interface RfqQuoteOrder {
  requestId: number;
  price: number;
  size: number;
  /** Pit clock ms. */
  validUntil: number;
}

export interface RfqAcceptOrder {
  requestId: number;
  quoteId: number | null;
  size: number | null;
  limit: number | null;
}

/** The core's answer to one rfq command. */
export interface RfqOutcome {
  accepted: boolean;
  /** The new request's or quote's id. */
  id?: number;
  /** Lots traded (accept). */
  filled?: number;
  reason?: string;
}

export interface PitPort {
  phase(): PhaseView;
  pair(pair: number): PairView | undefined;
  pairBySymbol(symbol: string): PairView | undefined;
  /** Book top `levels` per side and the last `trades` trades (newest last). */
  market(pair: number, levels: number, trades: number): MarketView;
  account(user: number): AccountView;
  /** The user's fills with sequence > `cursor`, oldest first, and the new cursor. */
  fills(user: number, cursor: number): { fills: FillView[]; cursor: number };
  /** Cancels first, then orders in sequence; each gets its own outcome, never an exception. */
  submit(user: number, request: { cancels: string[]; orders: OrderRequest[] }): SubmitOutcome;
  /** Below maintenance margin the keeper itself closes the account out (cancel all, cover at mid). */
  liquidate(user: number): LiquidationOutcome;
  /**
   * Every account of the pit below maintenance margin at the current marks, brokers or not,
   * ascending (the core's `liquidationsDue`).
   */
  liquidationsDue(): number[];
  /** Open requests for quote that `user` may see: those addressed to it and its own. */
  rfqs(user: number): RfqView[];
  rfqRequest(user: number, r: RfqRequestOrder): RfqOutcome;
  rfqQuote(user: number, q: RfqQuoteOrder): RfqOutcome;
  rfqAccept(user: number, a: RfqAcceptOrder): RfqOutcome;
  /** Cancels the user's request, or withdraws its quote on someone else's. */
  rfqCancel(user: number, requestId: number): RfqOutcome;
  /** Locks a request the user holds a live quote on: only that quote can be accepted. */
  rfqLock(user: number, requestId: number): RfqOutcome;
  /** Lets go of a request the user locked. */
  rfqUnlock(user: number, requestId: number): RfqOutcome;
  /** Sweeps the requests and quotes for quote past their expiry at `nowMs`; how many ended. */
  expireRfqs(nowMs: number): number;
}
