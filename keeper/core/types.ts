// Shared vocabulary of the exchange core: ids, units, configuration, reject codes, events,
// results and read views. Pure types plus a few constant tables; no logic.
//
// Units (exact integers everywhere; floats never carry money):
// - Every asset has a core unit of `unitBaseUnits` vault base units. Inventories in the core are
//   safe-integer counts of core units; whatever a deposit brings below one unit is kept per
//   (user, asset) as bigint "dust" that never trades but is part of the final balance.
//   USDC: unitBaseUnits = 1n, so quote amounts are plain micro-USDC.
// - A pair trades its base asset in lots: one lot is exactly one core unit of the base asset
//   (so the base asset's `unitBaseUnits` IS the pair's lot size in base units).
// - Prices are integer ticks. A fill of `size` lots at `price` ticks moves exactly
//   `price * size * quotePerTickLot` core units of the quote asset. So the tick size is
//   `quotePerTickLot` quote units per lot, and one lot at price p costs p * quotePerTickLot.
//   Decimal price of one whole base token in whole quote tokens:
//     p * quotePerTickLot * quote.unitBaseUnits / 10^quote.decimals
//       / (base.unitBaseUnits / 10^base.decimals)
// - Orders are accepted only inside the pair's price band around its session reference price
//   (so the fast book can index its price levels by tick offset); marks are clamped to the
//   (narrower) mark band.
// - Quote values used by margin are capped at MAX_VALUE (2^50 quote units) per position so that
//   sums over a few pairs stay exact in doubles; commands that would exceed it are rejected.

export type AccountId = number; // the vault's uint32 accountId
export type AssetId = number; // the vault's uint8 tokenIndex
export type PairId = number;
/** An order's id is the `seq` of the place command that created it (replace keeps it). */
export type OrderId = number;

export type Side = "buy" | "sell";
export type OrderType = "limit" | "ioc" | "post_only";
export type { SessionPhase } from "./phases.ts";
import type { SessionPhase } from "./phases.ts";
export type MarginStatus = "ok" | "below_im" | "below_mm";

/** Largest quote value (in quote core units) of one position the margin engine works with. */
export const MAX_VALUE = 2 ** 50;
/** Price levels per book are bounded so a book stays a few MB. */
export const MAX_LEVELS = 1 << 20;

/**
 * Order lifecycle: an order only moves along these edges; filled and cancelled are final.
 * new: accepted, matching on arrival. resting: in the book (after partial fills or a replace
 * too). cancelled: by its user, self-trade prevention, an IOC remainder, liquidation or the end
 * of trading.
 */
export type OrderState = "new" | "resting" | "filled" | "cancelled";
export const ORDER_TRANSITIONS: Readonly<Record<OrderState, readonly OrderState[]>> = {
  new: ["resting", "filled", "cancelled"],
  resting: ["resting", "filled", "cancelled"],
  filled: [],
  cancelled: [],
};

// ------------------------------------------------------------------ configuration

export interface AssetConfig {
  readonly id: AssetId;
  readonly symbol: string;
  readonly decimals: number;
  /** Vault base units per core unit (per lot for a base asset). */
  readonly unitBaseUnits: bigint;
}

export interface PairConfig {
  readonly id: PairId;
  /** e.g. "PEPE/USDC" */
  readonly symbol: string;
  readonly base: AssetId;
  readonly quote: AssetId;
  /** Quote core units per tick per lot; a fill's quote amount is price * size * quotePerTickLot. */
  readonly quotePerTickLot: number;
  readonly minSizeLots: number;
  readonly maxSizeLots: number;
  /** The session's reference price (from the price source) in ticks. */
  readonly referencePriceTicks: number;
  /** Orders must be priced within reference ± this many basis points. */
  readonly priceBandBps: number;
  /** Marks are clamped to reference ± this many basis points (one wild print cannot liquidate everyone). */
  readonly markBandBps: number;
}

export interface FeeConfig {
  /** Maker fee in bps; negative is a rebate (floored), never larger than the taker fee. */
  readonly makerBps: number;
  /** Taker fee in bps, rounded up (in the exchange's favour). */
  readonly takerBps: number;
}

export interface MarginConfig {
  /** Initial margin: equity must stay >= initialBps of gross exposure at mark (see margin.ts). */
  readonly initialBps: number;
  /** Maintenance margin: below maintenanceBps of gross exposure the account is liquidated. */
  readonly maintenanceBps: number;
  /** Fee on the quote notional of liquidation fills, paid to the insurance account. */
  readonly liquidationFeeBps: number;
  /** Liquidation orders are IOC limited to mark ± this many bps. */
  readonly liquidationSlippageBps: number;
}

export interface EngineConfig {
  readonly sessionId: number;
  readonly assets: readonly AssetConfig[];
  /** All pairs share one quote asset (USDC); each base asset belongs to exactly one pair. */
  readonly pairs: readonly PairConfig[];
  readonly fees: FeeConfig;
  readonly margin: MarginConfig;
  /** Account receiving trading fees. */
  readonly treasury: AccountId;
  /** Account receiving liquidation fees and covering bankrupt accounts first. */
  readonly insurance: AccountId;
  readonly maxOpenOrdersPerUser: number;
  /** How many recent trades per pair the engine keeps for `recentTrades`. */
  readonly recentTradesKept: number;
}

// ------------------------------------------------------------------ rejections

export const REJECT_CODES = [
  "not_trading", // orders, cancels and liquidations outside the trading phase
  "wrong_phase", // deposits, withdrawals or settlement in a phase that does not allow them
  "invalid_transition", // a phase command not allowed from the current phase
  "unknown_pair",
  "unknown_asset",
  "unknown_order", // also when the order belongs to another user
  "off_tick", // price not an integer number of ticks
  "price_out_of_band",
  "bad_size", // not an integer number of lots, or outside [minSizeLots, maxSizeLots]
  "bad_amount", // deposit/withdraw amount not a positive integer
  "amount_too_large", // would leave the exact-integer range (see MAX_VALUE)
  "duplicate_order_id",
  "post_only_would_cross",
  "too_many_orders",
  "insufficient_margin",
  "insufficient_balance",
  "insufficient_liquidity", // the vault does not hold enough of the asset net of liabilities
  "has_liabilities",
  "not_liquidatable",
  // requests for quote (rfq.ts states when each applies)
  "unknown_request", // no open request with this id (for cancel, lock, unlock, accept: of this account or quoted by it)
  "unknown_quote", // no live quote with this id on the request (or, for rfq_lock, none of this quoter)
  "rfq_expired", // the request or quote is past its expiry, or the expiry given is not after ts
  "rfq_not_invited", // the quoter is the requester or not on the request's whitelist
  "rfq_beyond_limit", // the price is worse than the request's (or the accept's) limit
  "rfq_locked", // the request is locked (by another quoter, or already)
  "rfq_not_locked", // unlock of a lock this account does not hold
  "rfq_below_min_fill", // a quote or accept smaller than the request's minimum fill
  "rfq_no_quote", // accept of the best quotes found none to trade
] as const;
export type RejectCode = (typeof REJECT_CODES)[number];

// ------------------------------------------------------------------ events (immutable records)

export type CancelReason = "user" | "self_trade" | "ioc_remainder" | "liquidation" | "session_end";

interface EventHeader {
  readonly seq: number;
  readonly ts: number;
}

export interface OrderAcceptedEvent extends EventHeader {
  readonly kind: "order_accepted";
  readonly pair: PairId;
  readonly orderId: OrderId;
  readonly user: AccountId;
  readonly side: Side;
  readonly orderType: OrderType;
  readonly price: number;
  readonly size: number;
}

export interface FillEvent extends EventHeader {
  readonly kind: "fill";
  readonly tradeId: number;
  readonly pair: PairId;
  readonly price: number;
  readonly size: number;
  /** price * size * quotePerTickLot, in quote core units. */
  readonly quoteAmount: number;
  readonly takerSide: Side;
  readonly maker: AccountId;
  readonly makerOrderId: OrderId;
  /** Quote units paid by the maker (negative: rebate received). */
  readonly makerFee: number;
  /** Lots of the maker order still resting after this fill. */
  readonly makerRemaining: number;
  readonly taker: AccountId;
  readonly takerOrderId: OrderId;
  readonly takerFee: number;
  /**
   * A block trade of a request for quote (rfq.ts): the taker is the requester (takerOrderId is
   * the request's id), the maker the quoter (makerOrderId is the quote's id; makerRemaining 0).
   * It does not move the mark. Absent on book fills.
   */
  readonly block?: true;
}

export interface OrderCancelledEvent extends EventHeader {
  readonly kind: "order_cancelled";
  readonly pair: PairId;
  readonly orderId: OrderId;
  readonly user: AccountId;
  readonly side: Side;
  readonly price: number;
  /** Lots that were still open. */
  readonly remaining: number;
  readonly reason: CancelReason;
}

export interface OrderReplacedEvent extends EventHeader {
  readonly kind: "order_replaced";
  readonly pair: PairId;
  readonly orderId: OrderId;
  readonly user: AccountId;
  readonly side: Side;
  readonly oldPrice: number;
  readonly oldRemaining: number;
  readonly price: number;
  readonly size: number;
  /** True when only the size went down at the same price: time priority kept. */
  readonly keptPriority: boolean;
}

export interface DepositedEvent extends EventHeader {
  readonly kind: "deposited";
  readonly user: AccountId;
  readonly asset: AssetId;
  readonly amount: bigint;
}

export interface WithdrawnEvent extends EventHeader {
  readonly kind: "withdrawn";
  readonly user: AccountId;
  readonly asset: AssetId;
  readonly amount: bigint;
}

export interface PhaseChangedEvent extends EventHeader {
  readonly kind: "phase_changed";
  readonly from: SessionPhase;
  readonly to: SessionPhase;
}

export interface LiquidatedEvent extends EventHeader {
  readonly kind: "liquidated";
  readonly user: AccountId;
  /** Equity and maintenance requirement (quote units) that triggered it. */
  readonly equityBefore: number;
  readonly maintenanceBefore: number;
  readonly equityAfter: number;
  /** Liquidation fee paid to the insurance account (quote units). */
  readonly fee: number;
  /** True when no liability is left (the book was deep enough). */
  readonly covered: boolean;
}

export interface ClosedOutEvent extends EventHeader {
  readonly kind: "closed_out";
  readonly closingPrices: readonly { readonly pair: PairId; readonly priceTicks: number }[];
  readonly bankruptUsers: readonly AccountId[];
}

// ------------------------------------------------------------------ rfq events (rfq.ts)

/** Why a request or quote ended other than by trading or expiry. */
export type RfqCancelReason = "user" | "replaced" | "request_ended" | "liquidation" | "session_end";

export interface RfqRequestedEvent extends EventHeader {
  readonly kind: "rfq_requested";
  readonly requestId: number;
  readonly pair: PairId;
  readonly user: AccountId;
  readonly side: Side;
  readonly size: number;
  /** Ticks, or null: no limit. */
  readonly limit: number | null;
  /** The price its margin reservation counts (the limit, else the mark now). */
  readonly reservePrice: number;
  readonly expiresAt: number;
  readonly whitelist: readonly AccountId[] | null;
  readonly minFill: number;
  readonly remainder: "keep" | "drop";
}

export interface RfqQuotedEvent extends EventHeader {
  readonly kind: "rfq_quoted";
  readonly quoteId: number;
  readonly requestId: number;
  readonly pair: PairId;
  readonly quoter: AccountId;
  /** The quoter's side (the other side of the request). */
  readonly side: Side;
  readonly price: number;
  readonly size: number;
  readonly validUntil: number;
}

export interface RfqLockedEvent extends EventHeader {
  readonly kind: "rfq_locked";
  readonly requestId: number;
  readonly pair: PairId;
  readonly quoter: AccountId;
  readonly quoteId: number;
}

export interface RfqUnlockedEvent extends EventHeader {
  readonly kind: "rfq_unlocked";
  readonly requestId: number;
  readonly pair: PairId;
  readonly quoter: AccountId;
  /** user: rfq_unlock; quote_ended: the locker's quote traded, was withdrawn, expired or cancelled. */
  readonly reason: "user" | "quote_ended";
}

/** One accept: its block trades are the fill events (block: true) that follow it. */
export interface RfqAcceptedEvent extends EventHeader {
  readonly kind: "rfq_accepted";
  readonly requestId: number;
  readonly pair: PairId;
  readonly user: AccountId;
  readonly side: Side;
  /** Lots traded by this accept, and the quotes it traded with, in trade order. */
  readonly filled: number;
  readonly quoteIds: readonly number[];
  /** Lots still open after it (0 unless status is "open"). */
  readonly remaining: number;
  /** open: the rest stays open (remainder "keep"); filled: nothing left; dropped: the rest ended. */
  readonly status: "open" | "filled" | "dropped";
}

/** A request (quoteId null) or a quote ended; its reservation of `remaining` lots is released. */
export interface RfqCancelledEvent extends EventHeader {
  readonly kind: "rfq_cancelled";
  readonly requestId: number;
  readonly quoteId: number | null;
  readonly pair: PairId;
  /** The requester, or the quoter. */
  readonly user: AccountId;
  readonly side: Side;
  readonly remaining: number;
  readonly reason: RfqCancelReason;
}

/** A request (quoteId null) or a quote expired (rfq_expire); its reservation is released. */
export interface RfqExpiredEvent extends EventHeader {
  readonly kind: "rfq_expired";
  readonly requestId: number;
  readonly quoteId: number | null;
  readonly pair: PairId;
  readonly user: AccountId;
  readonly side: Side;
  readonly remaining: number;
}

export type EngineEvent =
  | OrderAcceptedEvent
  | FillEvent
  | OrderCancelledEvent
  | OrderReplacedEvent
  | DepositedEvent
  | WithdrawnEvent
  | PhaseChangedEvent
  | LiquidatedEvent
  | ClosedOutEvent
  | RfqRequestedEvent
  | RfqQuotedEvent
  | RfqLockedEvent
  | RfqUnlockedEvent
  | RfqAcceptedEvent
  | RfqCancelledEvent
  | RfqExpiredEvent;

// ------------------------------------------------------------------ results

export interface OrderOutcome {
  readonly orderId: OrderId;
  /** resting: (part) rests in the book; filled: completely filled; cancelled: IOC remainder dropped. */
  readonly status: "resting" | "filled" | "cancelled";
  readonly filled: number;
  readonly remaining: number;
}

export interface AcceptedResult {
  readonly ok: true;
  readonly seq: number;
  readonly events: readonly EngineEvent[];
  /** For place and replace. */
  readonly order?: OrderOutcome;
}

export interface RejectedResult {
  readonly ok: false;
  readonly seq: number;
  readonly reason: RejectCode;
  readonly message: string;
}

export type CommandResult = AcceptedResult | RejectedResult;

// ------------------------------------------------------------------ read views

export interface DepthLevel {
  readonly price: number;
  readonly size: number;
  readonly orders: number;
}

export interface Depth {
  readonly pair: PairId;
  /** Best first. */
  readonly bids: readonly DepthLevel[];
  readonly asks: readonly DepthLevel[];
}

export interface OrderView {
  readonly orderId: OrderId;
  readonly pair: PairId;
  readonly user: AccountId;
  readonly side: Side;
  readonly orderType: OrderType;
  readonly price: number;
  readonly size: number;
  readonly remaining: number;
}

export interface RfqQuoteView {
  readonly quoteId: number;
  readonly requestId: number;
  readonly pair: PairId;
  readonly quoter: AccountId;
  readonly side: Side;
  readonly price: number;
  readonly size: number;
  readonly validUntil: number;
}

/** An open request with its live quotes (ascending id). */
export interface RfqRequestView {
  readonly requestId: number;
  readonly pair: PairId;
  readonly user: AccountId;
  readonly side: Side;
  readonly size: number;
  /** Lots still open. */
  readonly remaining: number;
  readonly limit: number | null;
  readonly reservePrice: number;
  readonly expiresAt: number;
  readonly whitelist: readonly AccountId[] | null;
  readonly minFill: number;
  readonly remainder: "keep" | "drop";
  /** The quoter holding the lock, or null. */
  readonly lockedBy: AccountId | null;
  readonly quotes: readonly RfqQuoteView[];
}

/** What an account's resting orders, open requests and live quotes reserve on one pair. */
export interface Reservation {
  readonly pair: PairId;
  readonly buyLots: number;
  /** Sum of price * lots (ticks * lots). */
  readonly buyNotional: number;
  readonly sellLots: number;
  readonly sellNotional: number;
}

export interface AssetPosition {
  readonly asset: AssetId;
  /** Core units (lots for a base asset); negative is a liability. */
  readonly units: number;
  /** units * unitBaseUnits + dust, in vault base units. */
  readonly baseUnits: bigint;
  /** Core units open orders, requests and quotes could consume (sell lots, or buy cost plus fee in quote). */
  readonly reserved: number;
  /** Value at mark in quote units (the quote asset at face value). */
  readonly value: number;
}

export interface AccountView {
  readonly user: AccountId;
  readonly positions: readonly AssetPosition[];
  readonly openOrders: readonly OrderView[];
  /** All quote units, valued at marks. */
  readonly equity: number;
  /** Gross exposure of non-quote positions at mark. */
  readonly exposure: number;
  readonly initialMargin: number;
  readonly maintenanceMargin: number;
  /** Equity minus initial margin counting the worst case of open orders; orders need >= 0. */
  readonly freeMargin: number;
  readonly marginStatus: MarginStatus;
  /** Equity now minus the value of net deposits at current marks. */
  readonly pnl: number;
  readonly feesPaid: number;
  /** Quote notional traded. */
  readonly volume: number;
  readonly fills: number;
}

/** One account's change in one asset made by the closing cross (signed, vault base units). */
export interface ClosingAdjustment {
  /**
   * The steps of closing.ts (its rules state them exactly):
   * cover_short: base liabilities bought back from the accounts that gained the base in the
   * session, pro rata to that gain and at most it, at the closing price;
   * cover_quote: quote liabilities covered by selling the user's base to the accounts that gained
   * quote, pro rata to that gain and at most it, at the closing price;
   * insurance: a bankrupt account's deficit paid by the insurance account;
   * socialized: the rest of it paid by the session's winners pro rata to PnL, each at most its
   * PnL (with `pair` set: a winner selling base to quote gainers at the closing price to raise
   * its share), then any rounding remainder by the accounts that gained quote.
   * An account that gained nothing in the session is never in any of them.
   */
  readonly step: "cover_short" | "cover_quote" | "insurance" | "socialized";
  readonly pair: PairId | null;
  readonly user: AccountId;
  readonly asset: AssetId;
  readonly amount: bigint;
}

export interface NetDelta {
  readonly user: AccountId;
  readonly asset: AssetId;
  /** Vault base units, final minus net deposits of the session. */
  readonly delta: bigint;
}

export interface LeaderboardEntry {
  readonly rank: number;
  readonly user: AccountId;
  /** Quote base units at the closing mark. */
  readonly pnl: bigint;
  /** PnL over the starting value at the closing mark, in bps (0 when nothing was deposited). */
  readonly returnBps: number;
}

/** The session's result off-chain: what the close-out step produced, for settlement on-chain. */
export interface CloseOut {
  readonly sessionId: number;
  readonly closingPrices: readonly { readonly pair: PairId; readonly priceTicks: number }[];
  readonly adjustments: readonly ClosingAdjustment[];
  readonly bankruptUsers: readonly AccountId[];
  /** Final balances per user and asset in vault base units (all >= 0). */
  readonly balances: readonly { readonly user: AccountId; readonly asset: AssetId; readonly amount: bigint }[];
  /** Non-zero deltas sorted by (user, asset); every asset's deltas sum to zero. */
  readonly deltas: readonly NetDelta[];
  /** Every participant except treasury and insurance, best first. */
  readonly leaderboard: readonly LeaderboardEntry[];
  readonly top10: readonly LeaderboardEntry[];
}
