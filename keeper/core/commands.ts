// The commands the core accepts. A session is exactly the ordered list of these; replaying it
// rebuilds the same state (replay.ts).
//
// Every command carries:
// - `seq`: assigned by the keeper, exactly the previous command's seq + 1 (the first is 1;
//   after Engine.restore, snapshot.lastSeq + 1). Rejected commands consume their seq too.
//   A place command's seq becomes the order's id.
// - `ts`: the keeper's clock in ms, recorded on events; the core never reads a clock.
// A malformed command (wrong field types, seq out of order) throws CoreInputError naming the
// field: that is a keeper bug. A well-formed command the rules refuse returns a rejection.

import type { AccountId, AssetId, OrderId, OrderType, PairId, Side } from "./types.ts";

interface CommandHeader {
  readonly seq: number;
  readonly ts: number;
}

/** Credits an on-chain deposit (also used to load pre-session balances). Any phase but settled. */
export interface DepositCommand extends CommandHeader {
  readonly type: "deposit";
  readonly user: AccountId;
  readonly asset: AssetId;
  /** Vault base units, > 0. */
  readonly amount: bigint;
}

/** Reserves a withdrawal (the keeper then signs the permit). Refused with liabilities or below IM. */
export interface WithdrawCommand extends CommandHeader {
  readonly type: "withdraw";
  readonly user: AccountId;
  readonly asset: AssetId;
  readonly amount: bigint;
}

export interface StartTradingCommand extends CommandHeader {
  readonly type: "start_trading";
}

export interface PlaceCommand extends CommandHeader {
  readonly type: "place";
  readonly user: AccountId;
  readonly pair: PairId;
  readonly side: Side;
  readonly orderType: OrderType;
  /** Ticks. */
  readonly price: number;
  /** Lots. */
  readonly size: number;
}

export interface CancelCommand extends CommandHeader {
  readonly type: "cancel";
  readonly user: AccountId;
  readonly orderId: OrderId;
}

export interface CancelAllCommand extends CommandHeader {
  readonly type: "cancel_all";
  readonly user: AccountId;
  /** Only this pair; all pairs when absent. */
  readonly pair?: PairId;
}

/**
 * Changes a resting order's price and/or open size (`size` is the new remaining size).
 * Same price and a smaller size keeps time priority; anything else re-enters the book as the
 * same order id at the back of its level, and may trade if it crosses.
 */
export interface ReplaceCommand extends CommandHeader {
  readonly type: "replace";
  readonly user: AccountId;
  readonly orderId: OrderId;
  readonly price: number;
  readonly size: number;
}

/** Produced by the core (Engine.liquidationsDue) and journaled by the keeper like any other. */
export interface LiquidateCommand extends CommandHeader {
  readonly type: "liquidate";
  readonly user: AccountId;
}

/** trading -> closing: cancels every order and fixes the closing marks. */
export interface EndTradingCommand extends CommandHeader {
  readonly type: "end_trading";
}

/** closing -> settling: closing cross, bankruptcies, netting, leaderboard (core/phases.ts). */
export interface CloseOutCommand extends CommandHeader {
  readonly type: "close_out";
}

// ------------------------------------------------------------------ requests for quote (rfq.ts)

/** Asks the pit for quotes; the request's id is this command's seq. */
export interface RfqRequestCommand extends CommandHeader {
  readonly type: "rfq_request";
  readonly user: AccountId;
  readonly pair: PairId;
  /** The requester's side: "buy" asks who sells. */
  readonly side: Side;
  /** Lots. */
  readonly size: number;
  /** Ticks: no quote above it (buy) or below it (sell) is taken. Absent: no limit. */
  readonly limit?: number;
  /** Session ms: the request is open while ts < expiresAt. */
  readonly expiresAt: number;
  /** Only these accounts may quote (at most RFQ_MAX_WHITELIST). Absent: anyone but the requester. */
  readonly whitelist?: readonly AccountId[];
  /** Smallest block trade in lots; default the pair's minimum order size. */
  readonly minFill?: number;
  /** After a partial accept: keep the rest open, or drop it. */
  readonly remainder: "keep" | "drop";
}

/** Answers a request (replacing the quoter's previous quote on it); the quote's id is this seq. */
export interface RfqQuoteCommand extends CommandHeader {
  readonly type: "rfq_quote";
  readonly user: AccountId;
  readonly requestId: number;
  /** Ticks. */
  readonly price: number;
  /** Lots, minFill <= size <= the request's open lots. */
  readonly size: number;
  /** Session ms: the quote is live while ts < validUntil. */
  readonly validUntil: number;
}

/** A quoter with a live quote takes the request for itself: only its quote can be accepted. */
export interface RfqLockCommand extends CommandHeader {
  readonly type: "rfq_lock";
  readonly user: AccountId;
  readonly requestId: number;
}

/** The locking quoter lets go. */
export interface RfqUnlockCommand extends CommandHeader {
  readonly type: "rfq_unlock";
  readonly user: AccountId;
  readonly requestId: number;
}

/** The requester trades: one quote by id, or (no quoteId) the best quotes up to size and limit. */
export interface RfqAcceptCommand extends CommandHeader {
  readonly type: "rfq_accept";
  readonly user: AccountId;
  readonly requestId: number;
  readonly quoteId?: number;
  /** Lots to trade at most; default the request's open lots. */
  readonly size?: number;
  /** Ticks; tightens the request's limit for this accept. */
  readonly limit?: number;
}

/** By the requester: cancels the request and its quotes. By a quoter: withdraws its quote on it. */
export interface RfqCancelCommand extends CommandHeader {
  readonly type: "rfq_cancel";
  readonly user: AccountId;
  readonly requestId: number;
}

/** Expires every request and quote whose time has come (ts >= expiry); see Engine.nextRfqExpiry. */
export interface RfqExpireCommand extends CommandHeader {
  readonly type: "rfq_expire";
}

/** Longest whitelist a request may carry. */
export const RFQ_MAX_WHITELIST = 64;

export type Command =
  | DepositCommand
  | WithdrawCommand
  | StartTradingCommand
  | PlaceCommand
  | CancelCommand
  | CancelAllCommand
  | ReplaceCommand
  | LiquidateCommand
  | EndTradingCommand
  | CloseOutCommand
  | RfqRequestCommand
  | RfqQuoteCommand
  | RfqLockCommand
  | RfqUnlockCommand
  | RfqAcceptCommand
  | RfqCancelCommand
  | RfqExpireCommand;

export type CommandType = Command["type"];

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A command before the keeper stamps seq and ts on it. */
export type CommandBody = DistributiveOmit<Command, "seq" | "ts">;

export function stamp(body: CommandBody, seq: number, ts: number): Command {
  return { ...body, seq, ts } as Command;
}

// ------------------------------------------------------------------ journal codec

/** JSON-safe form: bigint amounts as decimal strings (an rfq_request's whitelist is a number array). */
export type CommandJson = { readonly [key: string]: string | number | readonly number[] | undefined } & {
  readonly type: CommandType;
  readonly seq: number;
  readonly ts: number;
};

export function commandToJson(cmd: Command): CommandJson {
  if (cmd.type === "deposit" || cmd.type === "withdraw") {
    return { ...cmd, amount: cmd.amount.toString() } as CommandJson;
  }
  return { ...cmd } as CommandJson;
}

export function commandFromJson(json: CommandJson): Command {
  if (json.type === "deposit" || json.type === "withdraw") {
    const amount = json["amount"];
    if (typeof amount !== "string" || !/^[0-9]+$/.test(amount)) {
      throw new TypeError(`command ${json.seq}: amount must be a decimal string`);
    }
    return { ...json, amount: BigInt(amount) } as unknown as Command;
  }
  return { ...json } as unknown as Command;
}
