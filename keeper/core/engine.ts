// The exchange core: one Engine per session. A pure function of its commands: `apply(cmd)`
// returns the command's result (accepted with its events, or rejected with a reason code) and
// nothing else changes the state. No clock, randomness or I/O: time and ids arrive on commands.
//
// Each order goes through three stages (exchange-core's R1 -> match -> R2):
//   R1 pre-trade: phase, pair, price and size rules, open-order limit, margin (margin.ts);
//   match: the pair's book (book.ts), which reports fills and self-trade cancels;
//   R2 post-trade: inventories, fees to the treasury, released reservations, events.
// Events are built after the match, as immutable records, in the order things happened.
//
// Requests for quote (rfq.ts, its rules at the top) run beside the books through the same
// stages: R1 when a request or quote is made and again for both sides of every block trade;
// the trade moves inventories and fees as a fill does, and never the mark.
//
// Session lifecycle, an explicit transition table (anything else is "invalid_transition"):
//   pre_session --start_trading--> trading --end_trading--> closing --close_out--> settling
// (the engine's part of core/phases.ts). Which commands each phase accepts is the ALLOWED table below.

import { OrderBook } from "./book.ts";
import { closingCross, valueAt, type ClosingInput } from "./closing.ts";
import type {
  CancelAllCommand,
  CancelCommand,
  Command,
  CommandBody,
  CommandType,
  DepositCommand,
  LiquidateCommand,
  PlaceCommand,
  ReplaceCommand,
  RfqAcceptCommand,
  RfqCancelCommand,
  RfqExpireCommand,
  RfqLockCommand,
  RfqQuoteCommand,
  RfqRequestCommand,
  RfqUnlockCommand,
  WithdrawCommand,
} from "./commands.ts";
import { RFQ_MAX_WHITELIST } from "./commands.ts";
import { configFromJson, configToJson, resolveConfig, type EngineConfigJson, type ResolvedConfig } from "./config.ts";
import { CoreInputError } from "./errors.ts";
import { bpsDown, bpsUp, floorDiv, toSafeNumber } from "./int-math.ts";
import { leaderboard, top } from "./leaderboard.ts";
import { BUY_LOTS, BUY_NOTIONAL, Ledger, SELL_LOTS, SELL_NOTIONAL } from "./ledger.ts";
import { Margin, markTicks } from "./margin.ts";
import {
  BUY,
  FILL,
  IOC,
  LIMIT,
  OrderInfo,
  POST_ONLY,
  SELF_TRADE,
  SELL,
  type MatchingBook,
  type SideCode,
  type TypeCode,
} from "./matching.ts";
import { NaiveBook } from "./naive-book.ts";
import { netDeltas } from "./netting.ts";
import { RfqDesk, RfqQuote, RfqRequest, UNLOCKED, type RfqQuoteState, type RfqRemainder, type RfqRequestState } from "./rfq.ts";
import { hashSnapshot } from "./state-hash.ts";
import type {
  AccountId,
  AccountView,
  AssetPosition,
  CancelReason,
  CommandResult,
  Depth,
  EngineConfig,
  EngineEvent,
  FillEvent,
  MarginStatus,
  OrderView,
  PairId,
  RejectCode,
  Reservation,
  RfqCancelReason,
  RfqQuoteView,
  RfqRequestView,
  SessionPhase,
  CloseOut,
} from "./types.ts";
import { SESSION_TRANSITIONS, type EngineStep } from "./phases.ts";

export interface EngineOptions {
  /** "naive" runs the reference book (for tests comparing the two). */
  readonly book?: "fast" | "naive";
}

const SIDE_NAME = ["buy", "sell"] as const;
const TYPE_NAME = ["limit", "ioc", "post_only"] as const;

/** Session phase transitions: command -> (from -> to). Orders follow ORDER_TRANSITIONS (types.ts). */
const TRANSITIONS: Readonly<Record<EngineStep, readonly [SessionPhase, SessionPhase]>> = {
  start_trading: SESSION_TRANSITIONS.start_trading,
  end_trading: SESSION_TRANSITIONS.end_trading,
  close_out: SESSION_TRANSITIONS.close_out,
};

/** Phases in which a non-transition command may run, and the code when it may not. */
const ALLOWED: Readonly<Record<Exclude<CommandType, keyof typeof TRANSITIONS>, readonly [readonly SessionPhase[], RejectCode]>> = {
  deposit: [["pre_session", "trading", "closing"], "wrong_phase"],
  // Closing too: a withdrawal lowers the balance and the net deposit together and never below
  // zero, so the closing cross's two facts (gains sum to zero; net deposits >= 0) still hold.
  withdraw: [["pre_session", "trading", "closing"], "wrong_phase"],
  place: [["trading"], "not_trading"],
  cancel: [["trading"], "not_trading"],
  cancel_all: [["trading"], "not_trading"],
  replace: [["trading"], "not_trading"],
  liquidate: [["trading"], "not_trading"],
  rfq_request: [["trading"], "not_trading"],
  rfq_quote: [["trading"], "not_trading"],
  rfq_lock: [["trading"], "not_trading"],
  rfq_unlock: [["trading"], "not_trading"],
  rfq_accept: [["trading"], "not_trading"],
  rfq_cancel: [["trading"], "not_trading"],
  rfq_expire: [["trading"], "not_trading"],
};

/** Liquidation orders get negative ids: -(seq * LIQ_IDS + k), never colliding with user orders. */
const LIQ_IDS = 1024;

// ------------------------------------------------------------------ snapshot format

export interface SnapshotAccount {
  readonly user: AccountId;
  readonly inv: readonly number[];
  readonly dust: readonly string[];
  readonly net: readonly string[];
  readonly feesPaid: number;
  readonly volume: number;
  readonly fills: number;
}

/** [orderId, user, side, orderType, price, remaining, size] in priority order. */
export type SnapshotOrder = readonly [number, AccountId, "buy" | "sell", "limit" | "ioc" | "post_only", number, number, number];

/** An open request; `lockedBy` is the locking quoter's account. */
export interface SnapshotRfqRequest {
  readonly id: number;
  readonly user: AccountId;
  readonly pair: PairId;
  readonly side: "buy" | "sell";
  readonly size: number;
  readonly remaining: number;
  readonly limit: number | null;
  readonly reservePrice: number;
  readonly expiresAt: number;
  readonly whitelist: readonly AccountId[] | null;
  readonly minFill: number;
  readonly remainder: RfqRemainder;
  readonly lockedBy: AccountId | null;
}

/** A live quote. */
export interface SnapshotRfqQuote {
  readonly id: number;
  readonly requestId: number;
  readonly user: AccountId;
  readonly price: number;
  readonly size: number;
  readonly validUntil: number;
}

export interface EngineSnapshot {
  readonly version: 1;
  readonly config: EngineConfigJson;
  readonly phase: SessionPhase;
  readonly lastSeq: number;
  readonly lastTs: number;
  readonly nextTradeId: number;
  readonly lastTrade: readonly number[];
  readonly closingMarks: readonly number[] | null;
  readonly accounts: readonly SnapshotAccount[];
  readonly books: readonly { readonly pair: PairId; readonly orders: readonly SnapshotOrder[] }[];
  readonly recentTrades: readonly { readonly pair: PairId; readonly trades: readonly FillEvent[] }[];
  readonly closeOut: unknown;
  /** Open requests and live quotes, ascending id; absent when there are none (so a session
   * that never used RFQs hashes as before). */
  readonly rfq?: { readonly requests: readonly SnapshotRfqRequest[]; readonly quotes: readonly SnapshotRfqQuote[] };
}

// ------------------------------------------------------------------ engine

export class Engine {
  readonly config: EngineConfig;
  private readonly rc: ResolvedConfig;
  private readonly books: MatchingBook[];
  private readonly ledger: Ledger;
  private readonly margin: Margin;
  private readonly lotValue: Float64Array;
  private readonly lastTrade: Float64Array;
  private readonly trades: FillEvent[][];
  private readonly info = new OrderInfo();
  private readonly desk = new RfqDesk();
  /** The margin code of the last failed block trade (blockTrade). */
  private rfqFailure: RejectCode = "insufficient_margin";
  private readonly nA: number;
  private readonly nP: number;
  private readonly quoteIndex: number;
  private readonly baseIdx: Int32Array;
  private readonly qptl: Float64Array;
  private readonly makerBps: number;
  private readonly takerBps: number;
  private readonly treasuryIdx: number;
  /** Dense pair index by PairId (-1: none). */
  private readonly pairLookup: Int32Array;
  private readonly insuranceIdx: number;
  private phaseValue: SessionPhase = "pre_session";
  private lastSeqValue = 0;
  private lastTsValue = 0;
  private nextTradeId = 1;
  private closingMarks: number[] | null = null;
  private closeOutValue: CloseOut | null = null;

  constructor(given: EngineConfig, options: EngineOptions = {}) {
    // validate what was given, then keep a private copy: a caller mutating its object cannot
    // change a running session
    resolveConfig(given);
    const config = configFromJson(configToJson(given));
    this.rc = resolveConfig(config);
    this.config = config;
    this.nA = config.assets.length;
    this.nP = config.pairs.length;
    this.quoteIndex = this.rc.quoteIndex;
    this.baseIdx = Int32Array.from(this.rc.pairs.map((p) => p.baseIndex));
    this.qptl = Float64Array.from(config.pairs.map((p) => p.quotePerTickLot));
    this.makerBps = config.fees.makerBps;
    this.takerBps = config.fees.takerBps;
    this.books = this.rc.pairs.map((p) => {
      const limits = { minPrice: p.minPrice, maxPrice: p.maxPrice, minSize: p.config.minSizeLots, maxSize: p.config.maxSizeLots };
      return options.book === "naive" ? new NaiveBook(limits) : new OrderBook(limits);
    });
    this.ledger = new Ledger(this.rc.units, this.nP);
    this.margin = new Margin(this.rc, this.ledger);
    this.lotValue = new Float64Array(this.nP);
    this.lastTrade = new Float64Array(this.nP);
    this.trades = config.pairs.map(() => []);
    this.pairLookup = new Int32Array(Math.max(...config.pairs.map((p) => p.id)) + 1).fill(-1);
    config.pairs.forEach((p, i) => (this.pairLookup[p.id] = i));
    this.refreshMarks();
    this.treasuryIdx = this.ledger.ensure(config.treasury);
    this.insuranceIdx = this.ledger.ensure(config.insurance);
  }

  get phase(): SessionPhase {
    return this.phaseValue;
  }

  get lastSeq(): number {
    return this.lastSeqValue;
  }

  /** The seq the next command must carry. */
  get nextSeq(): number {
    return this.lastSeqValue + 1;
  }

  // ---------------------------------------------------------------- commands

  apply(cmd: Command): CommandResult {
    if (typeof cmd !== "object" || cmd === null) throw new CoreInputError("command", "must be an object");
    if (cmd.seq !== this.lastSeqValue + 1) {
      throw new CoreInputError("seq", `expected ${this.lastSeqValue + 1}, got ${String(cmd.seq)}`);
    }
    if (typeof cmd.ts !== "number" || !Number.isSafeInteger(cmd.ts) || cmd.ts < 0) {
      throw new CoreInputError("ts", "must be a non-negative safe integer (ms)");
    }
    let result: CommandResult;
    switch (cmd.type) {
      case "place":
        result = this.place(cmd);
        break;
      case "cancel":
        result = this.cancel(cmd);
        break;
      case "replace":
        result = this.replace(cmd);
        break;
      case "cancel_all":
        result = this.cancelAll(cmd);
        break;
      case "deposit":
        result = this.deposit(cmd);
        break;
      case "withdraw":
        result = this.withdraw(cmd);
        break;
      case "liquidate":
        result = this.liquidate(cmd);
        break;
      case "rfq_request":
        result = this.rfqOpen(cmd);
        break;
      case "rfq_quote":
        result = this.rfqQuote(cmd);
        break;
      case "rfq_lock":
        result = this.rfqLock(cmd);
        break;
      case "rfq_unlock":
        result = this.rfqUnlock(cmd);
        break;
      case "rfq_accept":
        result = this.rfqAccept(cmd);
        break;
      case "rfq_cancel":
        result = this.rfqCancel(cmd);
        break;
      case "rfq_expire":
        result = this.rfqExpire(cmd);
        break;
      case "start_trading":
      case "end_trading":
      case "close_out":
        result = this.transition(cmd);
        break;
      default:
        throw new CoreInputError("type", `unknown command type ${JSON.stringify((cmd as { type: unknown }).type)}`);
    }
    this.lastSeqValue = cmd.seq;
    this.lastTsValue = cmd.ts;
    return result;
  }

  private reject(seq: number, reason: RejectCode, message: string): CommandResult {
    return { ok: false, seq, reason, message };
  }

  private phaseRejects(type: keyof typeof ALLOWED, seq: number): CommandResult | null {
    const [phases, code] = ALLOWED[type];
    if (phases.includes(this.phaseValue)) return null;
    return this.reject(seq, code, `${type} is not allowed in phase ${this.phaseValue}`);
  }

  private place(cmd: PlaceCommand): CommandResult {
    const { seq, ts, user, price, size } = cmd;
    checkUint32(user, "user");
    const side = sideCode(cmd.side);
    const type = typeCode(cmd.orderType);
    checkNumber(price, "price");
    checkNumber(size, "size");
    checkNumber(cmd.pair, "pair");
    if (this.phaseValue !== "trading") return this.reject(seq, "not_trading", `orders are refused in phase ${this.phaseValue}`);
    const pi = this.pairOf(cmd.pair);
    if (pi < 0) return this.reject(seq, "unknown_pair", `no pair ${cmd.pair}`);
    const book = this.books[pi]!;
    const bad = book.check(price, size);
    if (bad !== null) return this.reject(seq, bad, describe(bad, price, size));
    const u = this.ledger.indexOf(user);
    if (u < 0) return this.reject(seq, "insufficient_margin", "the account holds nothing");
    if (this.ledger.openCount[u]! >= this.config.maxOpenOrdersPerUser) {
      return this.reject(seq, "too_many_orders", `at most ${this.config.maxOpenOrdersPerUser} open orders`);
    }
    const r1 = this.preTrade(u, pi, side, price, size);
    if (r1 !== null) return this.reject(seq, r1, r1 === "amount_too_large" ? "the position would be too large" : "the order would take the account below initial margin");
    const code = book.place(seq, u, side, type, price, size);
    if (code !== null) return this.reject(seq, code, describe(code, price, size));
    const events: EngineEvent[] = [
      { kind: "order_accepted", seq, ts, pair: cmd.pair, orderId: seq, user, side: cmd.side, orderType: cmd.orderType, price, size },
    ];
    this.afterMatch(pi, u, side, seq, seq, ts, events, "user");
    this.touch(pi);
    const rep = book.report;
    const remaining = rep.takerRemaining;
    let status: "resting" | "filled" | "cancelled" = "filled";
    if (rep.rested) {
      this.reserve(u, pi, side, price, remaining, 1);
      status = "resting";
    } else if (remaining > 0) {
      status = "cancelled";
      events.push({ kind: "order_cancelled", seq, ts, pair: cmd.pair, orderId: seq, user, side: cmd.side, price, remaining, reason: "ioc_remainder" });
    }
    return { ok: true, seq, events, order: { orderId: seq, status, filled: rep.takerFilled, remaining } };
  }

  private cancel(cmd: CancelCommand): CommandResult {
    const { seq, ts, user, orderId } = cmd;
    checkUint32(user, "user");
    checkNumber(orderId, "orderId");
    const denied = this.phaseRejects("cancel", seq);
    if (denied !== null) return denied;
    const u = this.ledger.indexOf(user);
    if (u >= 0) {
      for (let pi = 0; pi < this.nP; pi++) {
        if (this.books[pi]!.cancel(orderId, u)) {
          const events: EngineEvent[] = [];
          this.afterMatch(pi, u, BUY, orderId, seq, ts, events, "user");
          this.touch(pi);
          return { ok: true, seq, events };
        }
      }
    }
    return this.reject(seq, "unknown_order", `no open order ${orderId} of this account`);
  }

  private cancelAll(cmd: CancelAllCommand): CommandResult {
    const { seq, ts, user } = cmd;
    checkUint32(user, "user");
    if (cmd.pair !== undefined) checkNumber(cmd.pair, "pair");
    const denied = this.phaseRejects("cancel_all", seq);
    if (denied !== null) return denied;
    let only = -1;
    if (cmd.pair !== undefined) {
      only = this.pairOf(cmd.pair);
      if (only < 0) return this.reject(seq, "unknown_pair", `no pair ${cmd.pair}`);
    }
    const events: EngineEvent[] = [];
    const u = this.ledger.indexOf(user);
    if (u >= 0) this.cancelEverything(u, only, seq, ts, events, "user");
    return { ok: true, seq, events };
  }

  private replace(cmd: ReplaceCommand): CommandResult {
    const { seq, ts, user, orderId, price, size } = cmd;
    checkUint32(user, "user");
    checkNumber(orderId, "orderId");
    checkNumber(price, "price");
    checkNumber(size, "size");
    const denied = this.phaseRejects("replace", seq);
    if (denied !== null) return denied;
    const u = this.ledger.indexOf(user);
    const info = this.info;
    let pi = -1;
    if (u >= 0) {
      for (let p = 0; p < this.nP; p++) {
        if (this.books[p]!.orderInfo(orderId, info)) {
          if (info.owner === u) pi = p;
          break;
        }
      }
    }
    if (pi < 0) return this.reject(seq, "unknown_order", `no open order ${orderId} of this account`);
    const book = this.books[pi]!;
    const bad = book.check(price, size);
    if (bad !== null) return this.reject(seq, bad, describe(bad, price, size));
    const side = info.side;
    const oldPrice = info.price;
    const oldRemaining = info.remaining;
    // R1 counts the order at its new price and size instead of the old; a pure size reduction
    // in place only lowers what it reserves and is always allowed.
    this.reserve(u, pi, side, oldPrice, oldRemaining, -1);
    if (!(price === oldPrice && size <= oldRemaining)) {
      const r1 = this.preTrade(u, pi, side, price, size);
      if (r1 !== null) {
        this.reserve(u, pi, side, oldPrice, oldRemaining, 1);
        return this.reject(seq, r1, "the new order would take the account below initial margin");
      }
    }
    const code = book.replace(orderId, u, price, size);
    if (code !== null) {
      this.reserve(u, pi, side, oldPrice, oldRemaining, 1);
      return this.reject(seq, code, describe(code, price, size));
    }
    const rep = book.report;
    const events: EngineEvent[] = [
      {
        kind: "order_replaced",
        seq,
        ts,
        pair: this.config.pairs[pi]!.id,
        orderId,
        user,
        side: SIDE_NAME[side],
        oldPrice,
        oldRemaining,
        price,
        size,
        keptPriority: rep.keptPriority,
      },
    ];
    this.afterMatch(pi, u, side, orderId, seq, ts, events, "user");
    this.touch(pi);
    const remaining = rep.takerRemaining;
    if (rep.rested) this.reserve(u, pi, side, price, remaining, 1);
    return {
      ok: true,
      seq,
      events,
      order: { orderId, status: rep.rested ? "resting" : "filled", filled: rep.takerFilled, remaining },
    };
  }

  private deposit(cmd: DepositCommand): CommandResult {
    const { seq, ts, user, asset, amount } = cmd;
    checkUint32(user, "user");
    checkNumber(asset, "asset");
    if (typeof amount !== "bigint") throw new CoreInputError("amount", "must be a bigint (vault base units)");
    const denied = this.phaseRejects("deposit", seq);
    if (denied !== null) return denied;
    const a = this.rc.assetIndex.get(asset);
    if (a === undefined) return this.reject(seq, "unknown_asset", `no asset ${asset}`);
    if (amount <= 0n) return this.reject(seq, "bad_amount", "amount must be positive");
    const L = this.ledger;
    const u0 = L.indexOf(user);
    const after = u0 < 0 ? amount / L.units[a]! : L.unitsAfter(u0, a, amount);
    if (after > BigInt(this.maxUnits(a))) return this.reject(seq, "amount_too_large", "the balance would leave the exact range");
    const u = L.ensure(user);
    L.setBalance(u, a, L.balance(u, a) + amount);
    L.net[u * this.nA + a] = L.net[u * this.nA + a]! + amount;
    L.totalNet[a] = L.totalNet[a]! + amount;
    return { ok: true, seq, events: [{ kind: "deposited", seq, ts, user, asset, amount }] };
  }

  private withdraw(cmd: WithdrawCommand): CommandResult {
    const { seq, ts, user, asset, amount } = cmd;
    checkUint32(user, "user");
    checkNumber(asset, "asset");
    if (typeof amount !== "bigint") throw new CoreInputError("amount", "must be a bigint (vault base units)");
    const denied = this.phaseRejects("withdraw", seq);
    if (denied !== null) return denied;
    const a = this.rc.assetIndex.get(asset);
    if (a === undefined) return this.reject(seq, "unknown_asset", `no asset ${asset}`);
    if (amount <= 0n) return this.reject(seq, "bad_amount", "amount must be positive");
    const L = this.ledger;
    const u = L.indexOf(user);
    if (u < 0 || L.balance(u, a) < amount) return this.reject(seq, "insufficient_balance", "the balance is smaller than the amount");
    if (L.hasLiability(u)) return this.reject(seq, "has_liabilities", "withdrawals wait until no asset is owed");
    // The vault holds the session's net deposits; what users bought from short sellers is only
    // there once the shorts are covered.
    if (L.totalNet[a]! < amount) return this.reject(seq, "insufficient_liquidity", "the vault holds less of the asset net of liabilities");
    const k = u * this.nA + a;
    // At most the session's net deposit (opening balance + deposits - withdrawals): what the
    // session gained is paid at settlement. The vault refuses the same (a permit debits the
    // on-chain balance, which is that net deposit), and the closing cross relies on it: no net
    // deposit is ever negative (closing.ts, F2).
    if (L.net[k]! < amount) {
      return this.reject(seq, "insufficient_balance", "during a session at most the net deposit can be withdrawn; gains are paid at settlement");
    }
    const oldInv = L.inv[k]!;
    const oldDust = L.dust[k]!;
    L.setBalance(u, a, L.balance(u, a) - amount);
    if (this.margin.freeMargin(u, this.lotValue, -1, BUY, 0, 0) < 0) {
      L.inv[k] = oldInv;
      L.dust[k] = oldDust;
      return this.reject(seq, "insufficient_margin", "the withdrawal would leave open orders without margin");
    }
    L.net[k] = L.net[k]! - amount;
    L.totalNet[a] = L.totalNet[a]! - amount;
    return { ok: true, seq, events: [{ kind: "withdrawn", seq, ts, user, asset, amount }] };
  }

  private transition(cmd: Command & { type: keyof typeof TRANSITIONS }): CommandResult {
    const { seq, ts } = cmd;
    const [from, to] = TRANSITIONS[cmd.type];
    if (this.phaseValue !== from) {
      return this.reject(seq, "invalid_transition", `${cmd.type} needs phase ${from}, not ${this.phaseValue}`);
    }
    const events: EngineEvent[] = [];
    if (cmd.type === "end_trading") {
      // The closing prices: the marks as the book stands when trading ends, before its orders
      // are cancelled (markOf; closing.ts states the rule).
      const marks: number[] = [];
      for (let pi = 0; pi < this.nP; pi++) marks.push(this.markOf(pi));
      this.closingMarks = marks;
      this.refreshMarks();
      for (const u of this.ledger.sorted()) {
        if (this.ledger.openCount[u]! > 0) this.cancelEverything(u, -1, seq, ts, events, "session_end");
      }
      for (const r of [...this.desk.requests.values()]) this.closeRequest(r, "cancelled", "session_end", "session_end", seq, ts, events);
    }
    events.push({ kind: "phase_changed", seq, ts, from, to });
    if (cmd.type === "close_out") events.push(this.closeOutSession(seq, ts));
    this.phaseValue = to;
    return { ok: true, seq, events };
  }

  private liquidate(cmd: LiquidateCommand): CommandResult {
    const { seq, ts, user } = cmd;
    checkUint32(user, "user");
    const denied = this.phaseRejects("liquidate", seq);
    if (denied !== null) return denied;
    const L = this.ledger;
    const u = L.indexOf(user);
    if (u < 0) return this.reject(seq, "not_liquidatable", "unknown account");
    this.refreshMarks();
    const before = this.margin.figures(u, this.lotValue);
    if (before.status !== "below_mm") return this.reject(seq, "not_liquidatable", "the account is above maintenance margin");
    const events: EngineEvent[] = [];
    this.cancelEverything(u, -1, seq, ts, events, "liquidation");
    this.cancelRfqOf(u, seq, ts, events, "liquidation");
    const slip = this.config.margin.liquidationSlippageBps;
    let k = 0;
    let notional = 0;
    const ioc = (pi: number, side: SideCode, lots: number): boolean => {
      const pr = this.rc.pairs[pi]!;
      const book = this.books[pi]!;
      const mark = this.markOf(pi);
      const limit = side === BUY
        ? Math.min(pr.maxPrice, Math.floor((mark * (10_000 + slip)) / 10_000))
        : Math.max(pr.minPrice, Math.ceil((mark * (10_000 - slip)) / 10_000));
      const chunk = Math.min(lots, pr.config.maxSizeLots);
      if (chunk < pr.config.minSizeLots || k >= LIQ_IDS) return false;
      const id = -(seq * LIQ_IDS + k++);
      if (book.place(id, u, side, IOC, limit, chunk) !== null) return false;
      const rep = book.report;
      for (let i = 0; i < rep.count; i++) if (rep.kind[i] === FILL) notional += rep.price[i]! * rep.size[i]! * this.qptl[pi]!;
      this.afterMatch(pi, u, side, id, seq, ts, events, "liquidation");
      this.touch(pi);
      return rep.takerRemaining === 0;
    };
    // Buy back every short first (that is what others are owed), then sell longs only as far
    // as needed to bring borrowed quote back to zero.
    for (let pi = 0; pi < this.nP; pi++) {
      const b = u * this.nA + this.baseIdx[pi]!;
      while (L.inv[b]! < 0 && ioc(pi, BUY, -L.inv[b]!));
    }
    const q = u * this.nA + this.quoteIndex;
    for (let pi = 0; pi < this.nP; pi++) {
      const b = u * this.nA + this.baseIdx[pi]!;
      while (L.inv[q]! < 0 && L.inv[b]! > 0) {
        const lotValue = this.markOf(pi) * this.qptl[pi]!;
        const need = Math.min(L.inv[b]!, Math.ceil(-L.inv[q]! / lotValue));
        if (!ioc(pi, SELL, need)) break;
      }
    }
    // The fee is owed on what was covered, out of what equity is left: when the cover left too
    // little quote to pay it, sell more of the longs for it (else insurance would get nothing
    // from exactly the accounts that cost it the most).
    this.refreshMarks();
    const feeDue = Math.max(0, Math.min(bpsUp(notional, this.config.margin.liquidationFeeBps), this.margin.figures(u, this.lotValue).equity));
    for (let pi = 0; pi < this.nP; pi++) {
      const b = u * this.nA + this.baseIdx[pi]!;
      while (L.inv[q]! < feeDue && L.inv[b]! > 0) {
        const lotValue = this.markOf(pi) * this.qptl[pi]!;
        const need = Math.min(L.inv[b]!, Math.ceil((feeDue - L.inv[q]!) / lotValue));
        if (!ioc(pi, SELL, need)) break;
      }
    }
    this.refreshMarks();
    const mid = this.margin.figures(u, this.lotValue);
    let fee = Math.min(feeDue, L.inv[q]!, mid.equity);
    if (fee < 0) fee = 0;
    if (fee > 0) {
      L.inv[q] = L.inv[q]! - fee;
      L.inv[this.insuranceIdx * this.nA + this.quoteIndex] = L.inv[this.insuranceIdx * this.nA + this.quoteIndex]! + fee;
      L.feesPaid[u] = L.feesPaid[u]! + fee;
    }
    events.push({
      kind: "liquidated",
      seq,
      ts,
      user,
      equityBefore: before.equity,
      maintenanceBefore: before.maintenanceMargin,
      equityAfter: mid.equity - fee,
      fee,
      covered: !L.hasLiability(u),
    });
    return { ok: true, seq, events };
  }

  // ---------------------------------------------------------------- requests for quote (rfq.ts)

  private rfqOpen(cmd: RfqRequestCommand): CommandResult {
    const { seq, ts, user, size, limit, expiresAt } = cmd;
    checkUint32(user, "user");
    const side = sideCode(cmd.side);
    checkNumber(cmd.pair, "pair");
    checkNumber(size, "size");
    if (limit !== undefined) checkNumber(limit, "limit");
    if (cmd.minFill !== undefined) checkNumber(cmd.minFill, "minFill");
    checkTime(expiresAt, "expiresAt");
    const remainder = remainderOf(cmd.remainder);
    const whitelist = whitelistOf(cmd.whitelist);
    const denied = this.phaseRejects("rfq_request", seq);
    if (denied !== null) return denied;
    const pi = this.pairOf(cmd.pair);
    if (pi < 0) return this.reject(seq, "unknown_pair", `no pair ${cmd.pair}`);
    const book = this.books[pi]!;
    const reservePrice = limit ?? this.markOf(pi);
    const bad = book.check(reservePrice, size);
    if (bad !== null) return this.reject(seq, bad, describe(bad, reservePrice, size));
    const minFill = cmd.minFill ?? book.limits.minSize;
    if (book.check(reservePrice, minFill) !== null || minFill > size) {
      return this.reject(seq, "bad_size", `minFill ${minFill} is not a whole number of lots between the pair's minimum size and the request's size`);
    }
    if (expiresAt <= ts) return this.reject(seq, "rfq_expired", "expiresAt must be after the command's ts");
    const u = this.ledger.indexOf(user);
    if (u < 0) return this.reject(seq, "insufficient_margin", "the account holds nothing");
    if (this.desk.countOf(u) >= this.config.maxOpenOrdersPerUser) {
      return this.reject(seq, "too_many_orders", `at most ${this.config.maxOpenOrdersPerUser} open requests and quotes`);
    }
    const r1 = this.preTrade(u, pi, side, reservePrice, size);
    if (r1 !== null) return this.reject(seq, r1, r1 === "amount_too_large" ? "the position would be too large" : "the request would take the account below initial margin");
    this.reserveRfq(u, pi, side, reservePrice, size, 1);
    this.desk.addRequest(new RfqRequest(seq, u, user, pi, cmd.pair, side, size, limit ?? 0, reservePrice, expiresAt, whitelist, minFill, remainder));
    return {
      ok: true,
      seq,
      events: [
        { kind: "rfq_requested", seq, ts, requestId: seq, pair: cmd.pair, user, side: cmd.side, size, limit: limit ?? null, reservePrice, expiresAt, whitelist, minFill, remainder },
      ],
    };
  }

  private rfqQuote(cmd: RfqQuoteCommand): CommandResult {
    const { seq, ts, user, requestId, price, size, validUntil } = cmd;
    checkUint32(user, "user");
    checkNumber(requestId, "requestId");
    checkNumber(price, "price");
    checkNumber(size, "size");
    checkTime(validUntil, "validUntil");
    const denied = this.phaseRejects("rfq_quote", seq);
    if (denied !== null) return denied;
    const r = this.desk.requests.get(requestId);
    if (r === undefined) return this.reject(seq, "unknown_request", `no open request ${requestId}`);
    if (ts >= r.expiresAt) return this.reject(seq, "rfq_expired", "the request has expired");
    if (!r.invites(user)) return this.reject(seq, "rfq_not_invited", "this account may not quote this request");
    const u = this.ledger.indexOf(user);
    if (r.lockedBy !== UNLOCKED && r.lockedBy !== u) return this.reject(seq, "rfq_locked", "another quoter holds the request locked");
    const bad = this.books[r.pi]!.check(price, size);
    if (bad !== null) return this.reject(seq, bad, describe(bad, price, size));
    if (size > r.remaining) return this.reject(seq, "bad_size", `a quote is for at most the request's ${r.remaining} open lots`);
    if (size < r.minFill) return this.reject(seq, "rfq_below_min_fill", `the request trades at least ${r.minFill} lots`);
    if (!r.within(price, r.limit)) return this.reject(seq, "rfq_beyond_limit", `price ${price} is beyond the request's limit ${r.limit}`);
    if (validUntil <= ts) return this.reject(seq, "rfq_expired", "validUntil must be after the command's ts");
    if (u < 0) return this.reject(seq, "insufficient_margin", "the account holds nothing");
    const old = this.desk.quoteOf(r, u);
    if (old === undefined && this.desk.countOf(u) >= this.config.maxOpenOrdersPerUser) {
      return this.reject(seq, "too_many_orders", `at most ${this.config.maxOpenOrdersPerUser} open requests and quotes`);
    }
    const side = (1 - r.side) as SideCode;
    // R1 counts the new quote instead of the one it replaces
    if (old !== undefined) this.reserveRfq(u, r.pi, side, old.price, old.size, -1);
    const r1 = this.preTrade(u, r.pi, side, price, size);
    if (r1 !== null) {
      if (old !== undefined) this.reserveRfq(u, r.pi, side, old.price, old.size, 1);
      return this.reject(seq, r1, r1 === "amount_too_large" ? "the position would be too large" : "the quote would take the account below initial margin");
    }
    const events: EngineEvent[] = [];
    if (old !== undefined) {
      // released above; the lock (held by the account) stays with the new quote
      this.desk.endQuote(old, "withdrawn");
      events.push(this.rfqEnded(old.request, old, old.size, "replaced", seq, ts));
    }
    this.reserveRfq(u, r.pi, side, price, size, 1);
    this.desk.addQuote(new RfqQuote(seq, r, u, user, side, price, size, validUntil));
    events.push({ kind: "rfq_quoted", seq, ts, quoteId: seq, requestId, pair: r.pair, quoter: user, side: SIDE_NAME[side], price, size, validUntil });
    return { ok: true, seq, events };
  }

  private rfqLock(cmd: RfqLockCommand): CommandResult {
    const { seq, ts, user, requestId } = cmd;
    checkUint32(user, "user");
    checkNumber(requestId, "requestId");
    const denied = this.phaseRejects("rfq_lock", seq);
    if (denied !== null) return denied;
    const r = this.desk.requests.get(requestId);
    if (r === undefined) return this.reject(seq, "unknown_request", `no open request ${requestId}`);
    if (ts >= r.expiresAt) return this.reject(seq, "rfq_expired", "the request has expired");
    const u = this.ledger.indexOf(user);
    const q = u < 0 ? undefined : this.desk.quoteOf(r, u);
    if (q === undefined) return this.reject(seq, "unknown_quote", "only a quoter with a live quote on the request may lock it");
    if (ts >= q.validUntil) return this.reject(seq, "rfq_expired", "the quote has expired");
    if (r.lockedBy !== UNLOCKED) return this.reject(seq, "rfq_locked", r.lockedBy === u ? "the request is already locked by this account" : "another quoter holds the request locked");
    r.move("locked");
    r.lockedBy = u;
    return { ok: true, seq, events: [{ kind: "rfq_locked", seq, ts, requestId, pair: r.pair, quoter: user, quoteId: q.id }] };
  }

  private rfqUnlock(cmd: RfqUnlockCommand): CommandResult {
    const { seq, ts, user, requestId } = cmd;
    checkUint32(user, "user");
    checkNumber(requestId, "requestId");
    const denied = this.phaseRejects("rfq_unlock", seq);
    if (denied !== null) return denied;
    const r = this.desk.requests.get(requestId);
    if (r === undefined) return this.reject(seq, "unknown_request", `no open request ${requestId}`);
    const u = this.ledger.indexOf(user);
    if (u < 0 || r.lockedBy !== u) return this.reject(seq, "rfq_not_locked", "this account does not hold the request's lock");
    r.move("open");
    r.lockedBy = UNLOCKED;
    return { ok: true, seq, events: [{ kind: "rfq_unlocked", seq, ts, requestId, pair: r.pair, quoter: user, reason: "user" }] };
  }

  private rfqCancel(cmd: RfqCancelCommand): CommandResult {
    const { seq, ts, user, requestId } = cmd;
    checkUint32(user, "user");
    checkNumber(requestId, "requestId");
    const denied = this.phaseRejects("rfq_cancel", seq);
    if (denied !== null) return denied;
    const r = this.desk.requests.get(requestId);
    if (r === undefined) return this.reject(seq, "unknown_request", `no open request ${requestId}`);
    const u = this.ledger.indexOf(user);
    const events: EngineEvent[] = [];
    if (u >= 0 && u === r.owner) {
      this.closeRequest(r, "cancelled", "user", "request_ended", seq, ts, events);
      return { ok: true, seq, events };
    }
    const q = u < 0 ? undefined : this.desk.quoteOf(r, u);
    if (q === undefined) return this.reject(seq, "unknown_quote", "no live quote of this account on the request");
    this.closeQuote(q, "withdrawn", "user", seq, ts, events, true);
    return { ok: true, seq, events };
  }

  private rfqAccept(cmd: RfqAcceptCommand): CommandResult {
    const { seq, ts, user, requestId, quoteId } = cmd;
    checkUint32(user, "user");
    checkNumber(requestId, "requestId");
    if (quoteId !== undefined) checkNumber(quoteId, "quoteId");
    if (cmd.size !== undefined) checkNumber(cmd.size, "size");
    if (cmd.limit !== undefined) checkNumber(cmd.limit, "limit");
    const denied = this.phaseRejects("rfq_accept", seq);
    if (denied !== null) return denied;
    const r = this.desk.requests.get(requestId);
    const u = this.ledger.indexOf(user);
    if (r === undefined || u < 0 || r.owner !== u) return this.reject(seq, "unknown_request", `no open request ${requestId} of this account`);
    if (ts >= r.expiresAt) return this.reject(seq, "rfq_expired", "the request has expired");
    const want = cmd.size ?? r.remaining;
    if (!Number.isInteger(want) || want <= 0 || want > r.remaining) {
      return this.reject(seq, "bad_size", `size ${want} is not a whole number of lots up to the request's ${r.remaining} open lots`);
    }
    if (want < r.minFill) return this.reject(seq, "rfq_below_min_fill", `the request trades at least ${r.minFill} lots`);
    let limit = r.limit;
    if (cmd.limit !== undefined) {
      const bad = this.books[r.pi]!.check(cmd.limit, r.minFill);
      if (bad !== null) return this.reject(seq, bad, describe(bad, cmd.limit, r.minFill));
      limit = limit === 0 ? cmd.limit : r.side === BUY ? Math.min(limit, cmd.limit) : Math.max(limit, cmd.limit);
    }
    const trades: EngineEvent[] = [];
    const quoteIds: number[] = [];
    const before = r.remaining;
    if (quoteId !== undefined) {
      const q = this.desk.quotes.get(quoteId);
      if (q === undefined || q.request !== r) return this.reject(seq, "unknown_quote", `no live quote ${quoteId} on request ${requestId}`);
      if (ts >= q.validUntil) return this.reject(seq, "rfq_expired", "the quote has expired");
      if (r.lockedBy !== UNLOCKED && q.owner !== r.lockedBy) return this.reject(seq, "rfq_locked", "another quoter holds the request locked");
      if (!r.within(q.price, limit)) return this.reject(seq, "rfq_beyond_limit", `the quote's price ${q.price} is beyond the limit ${limit}`);
      const who = this.blockTrade(r, q, Math.min(want, q.size), seq, ts, trades);
      if (who !== 0) {
        return this.reject(seq, this.rfqFailure, who === 1 ? "the trade would take the account below initial margin" : "the quoter's margin no longer covers its quote");
      }
      quoteIds.push(quoteId);
    } else {
      for (const q of this.desk.best(r, ts, limit)) {
        const left = want - (before - r.remaining);
        if (left < r.minFill) break;
        const who = this.blockTrade(r, q, Math.min(left, q.size), seq, ts, trades);
        if (who === 1) {
          if (r.remaining === before) return this.reject(seq, this.rfqFailure, "the trade would take the account below initial margin");
          break;
        }
        if (who === 0) quoteIds.push(q.id);
      }
      if (r.remaining === before) return this.reject(seq, "rfq_no_quote", "no live quote to trade within the limit");
    }
    const filled = before - r.remaining;
    const status = r.remaining === 0 ? "filled" : r.remainder === "drop" || r.remaining < r.minFill ? "dropped" : "open";
    const events: EngineEvent[] = [
      {
        kind: "rfq_accepted",
        seq,
        ts,
        requestId,
        pair: r.pair,
        user,
        side: SIDE_NAME[r.side],
        filled,
        quoteIds,
        remaining: status === "open" ? r.remaining : 0,
        status,
      },
      ...trades,
    ];
    if (status !== "open") this.closeRequest(r, status, null, "request_ended", seq, ts, events);
    else if (r.lockedBy !== UNLOCKED && this.desk.quoteOf(r, r.lockedBy) === undefined) this.unlockEnded(r, seq, ts, events);
    return { ok: true, seq, events };
  }

  private rfqExpire(cmd: RfqExpireCommand): CommandResult {
    const { seq, ts } = cmd;
    const denied = this.phaseRejects("rfq_expire", seq);
    if (denied !== null) return denied;
    const events: EngineEvent[] = [];
    const due = this.desk.due(ts);
    for (const q of due.quotes) if (q.state === "live") this.closeQuote(q, "expired", null, seq, ts, events, true);
    for (const r of due.requests) this.closeRequest(r, "expired", null, "request_ended", seq, ts, events);
    return { ok: true, seq, events };
  }

  /**
   * One block trade of `lots` between the request's owner (taker) and the quote's (maker) at the
   * quote's price: R1 for both sides with the reservations it replaces released, then the fill's
   * money moves (as afterMatch), the tape, and the quote ends. 0 when traded; 1 when the
   * requester's margin refuses it, 2 when the quoter's (this.rfqFailure holds the code); then
   * nothing changed.
   */
  private blockTrade(r: RfqRequest, q: RfqQuote, lots: number, seq: number, ts: number, events: EngineEvent[]): 0 | 1 | 2 {
    const pi = r.pi;
    const u = r.owner;
    const v = q.owner;
    const price = q.price;
    this.reserveRfq(u, pi, r.side, r.reservePrice, lots, -1);
    this.reserveRfq(v, pi, q.side, price, q.size, -1);
    let who: 1 | 2 = 1;
    let code = this.preTrade(u, pi, r.side, price, lots);
    if (code === null) {
      who = 2;
      code = this.preTrade(v, pi, q.side, price, lots);
    }
    if (code !== null) {
      this.reserveRfq(u, pi, r.side, r.reservePrice, lots, 1);
      this.reserveRfq(v, pi, q.side, price, q.size, 1);
      this.rfqFailure = code;
      return who;
    }
    r.remaining -= lots;
    const L = this.ledger;
    const inv = L.inv;
    const nA = this.nA;
    const bi = this.baseIdx[pi]!;
    const qi = this.quoteIndex;
    const quote = price * lots * this.qptl[pi]!;
    const takerFee = bpsUp(quote, this.takerBps);
    const makerFee = this.makerBps >= 0 ? bpsUp(quote, this.makerBps) : -bpsDown(quote, -this.makerBps);
    const buyer = (r.side === BUY ? u : v) * nA;
    const seller = (r.side === BUY ? v : u) * nA;
    inv[buyer + bi] = inv[buyer + bi]! + lots;
    inv[seller + bi] = inv[seller + bi]! - lots;
    inv[buyer + qi] = inv[buyer + qi]! - quote;
    inv[seller + qi] = inv[seller + qi]! + quote;
    inv[u * nA + qi] = inv[u * nA + qi]! - takerFee;
    inv[v * nA + qi] = inv[v * nA + qi]! - makerFee;
    const tq = this.treasuryIdx * nA + qi;
    inv[tq] = inv[tq]! + takerFee + makerFee;
    L.feesPaid[u] = L.feesPaid[u]! + takerFee;
    L.feesPaid[v] = L.feesPaid[v]! + makerFee;
    L.volume[u] = L.volume[u]! + quote;
    L.volume[v] = L.volume[v]! + quote;
    L.fills[u] = L.fills[u]! + 1;
    L.fills[v] = L.fills[v]! + 1;
    const fill: FillEvent = {
      kind: "fill",
      seq,
      ts,
      tradeId: this.nextTradeId++,
      pair: r.pair,
      price,
      size: lots,
      quoteAmount: quote,
      takerSide: SIDE_NAME[r.side],
      maker: q.user,
      makerOrderId: q.id,
      makerFee,
      makerRemaining: 0,
      taker: r.user,
      takerOrderId: r.id,
      takerFee,
      block: true,
    };
    events.push(fill);
    // on the tape, but not the last trade price: block trades do not move marks
    this.pushTrade(pi, fill);
    this.closeQuote(q, "filled", null, seq, ts, events, false);
    return 0;
  }

  /**
   * Ends a live quote: releases its reservation (a filled quote's was released by its trade),
   * emits rfq_expired or rfq_cancelled (nothing when filled), and, with `unlock`, lets go of a
   * lock its quoter held.
   */
  private closeQuote(q: RfqQuote, to: RfqQuoteState, reason: RfqCancelReason | null, seq: number, ts: number, events: EngineEvent[], unlock: boolean): void {
    const r = q.request;
    if (to !== "filled") this.reserveRfq(q.owner, r.pi, q.side, q.price, q.size, -1);
    this.desk.endQuote(q, to);
    if (to === "expired") {
      events.push({ kind: "rfq_expired", seq, ts, requestId: r.id, quoteId: q.id, pair: r.pair, user: q.user, side: SIDE_NAME[q.side], remaining: q.size });
    } else if (to !== "filled") {
      events.push(this.rfqEnded(r, q, q.size, reason ?? "user", seq, ts));
    }
    if (unlock && r.lockedBy === q.owner) this.unlockEnded(r, seq, ts, events);
  }

  /** Ends an open request after its quotes (`quoteReason`), releasing what it reserves. */
  private closeRequest(
    r: RfqRequest,
    to: RfqRequestState,
    reason: RfqCancelReason | null,
    quoteReason: RfqCancelReason,
    seq: number,
    ts: number,
    events: EngineEvent[],
  ): void {
    for (const q of [...r.quotes]) this.closeQuote(q, "cancelled", quoteReason, seq, ts, events, false);
    this.reserveRfq(r.owner, r.pi, r.side, r.reservePrice, r.remaining, -1);
    this.desk.endRequest(r, to);
    if (to === "expired") {
      events.push({ kind: "rfq_expired", seq, ts, requestId: r.id, quoteId: null, pair: r.pair, user: r.user, side: SIDE_NAME[r.side], remaining: r.remaining });
    } else if (to === "cancelled") {
      events.push(this.rfqEnded(r, null, r.remaining, reason ?? "user", seq, ts));
    }
  }

  private unlockEnded(r: RfqRequest, seq: number, ts: number, events: EngineEvent[]): void {
    const quoter = this.ledger.ids[r.lockedBy]!;
    r.move("open");
    r.lockedBy = UNLOCKED;
    events.push({ kind: "rfq_unlocked", seq, ts, requestId: r.id, pair: r.pair, quoter, reason: "quote_ended" });
  }

  private rfqEnded(r: RfqRequest, q: RfqQuote | null, remaining: number, reason: RfqCancelReason, seq: number, ts: number): EngineEvent {
    return {
      kind: "rfq_cancelled",
      seq,
      ts,
      requestId: r.id,
      quoteId: q === null ? null : q.id,
      pair: r.pair,
      user: q === null ? r.user : q.user,
      side: SIDE_NAME[q === null ? r.side : q.side],
      remaining,
      reason,
    };
  }

  /** Cancels every request and quote of account `u` (liquidation). */
  private cancelRfqOf(u: number, seq: number, ts: number, events: EngineEvent[], reason: RfqCancelReason): void {
    if (this.desk.countOf(u) === 0) return;
    for (const r of [...this.desk.requests.values()]) if (r.owner === u) this.closeRequest(r, "cancelled", reason, "request_ended", seq, ts, events);
    for (const q of [...this.desk.quotes.values()]) if (q.owner === u) this.closeQuote(q, "cancelled", reason, seq, ts, events, true);
  }

  /** Adds (sign 1) or releases (sign -1) what an open request or live quote reserves (not an order count). */
  private reserveRfq(u: number, pi: number, side: SideCode, price: number, lots: number, sign: 1 | -1): void {
    const open = this.ledger.open;
    const o = (u * this.nP + pi) * 4 + (side === BUY ? BUY_LOTS : SELL_LOTS);
    open[o] = open[o]! + sign * lots;
    open[o + 1] = open[o + 1]! + sign * lots * price;
  }

  // ---------------------------------------------------------------- stages

  /** R1: the position bound and the margin rule of margin.ts. */
  private preTrade(u: number, pi: number, side: SideCode, price: number, size: number): RejectCode | null {
    const L = this.ledger;
    const x = L.inv[u * this.nA + this.baseIdx[pi]!]!;
    const o = (u * this.nP + pi) * 4;
    const maxPos = this.rc.pairs[pi]!.maxPositionLots;
    if (side === BUY ? x + L.open[o + BUY_LOTS]! + size > maxPos : x - L.open[o + SELL_LOTS]! - size < -maxPos) {
      return "amount_too_large";
    }
    // the cheap half of the rule first; the outcome is the same either way
    if (this.margin.reducesExposure(u, pi, side, size)) return null;
    if (this.margin.freeMargin(u, this.lotValue, pi, side, price, size) >= 0) return null;
    return "insufficient_margin";
  }

  /** R2: applies the book's report (fills and cancels) to the ledger and emits events. */
  private afterMatch(
    pi: number,
    takerU: number,
    takerSide: SideCode,
    takerOrderId: number,
    seq: number,
    ts: number,
    events: EngineEvent[],
    cancelReason: CancelReason,
  ): void {
    const rep = this.books[pi]!.report;
    const n = rep.count;
    if (n === 0) return;
    const L = this.ledger;
    const inv = L.inv;
    const open = L.open;
    const ids = L.ids;
    const nA = this.nA;
    const nP = this.nP;
    const pair = this.config.pairs[pi]!.id;
    const q = this.qptl[pi]!;
    const bi = this.baseIdx[pi]!;
    const qi = this.quoteIndex;
    const takerUser = ids[takerU]!;
    const takerSideName = SIDE_NAME[takerSide];
    for (let i = 0; i < n; i++) {
      const mu = rep.owner[i]!;
      const price = rep.price[i]!;
      const lots = rep.size[i]!;
      if (rep.kind[i] === FILL) {
        const quote = price * lots * q;
        const takerFee = bpsUp(quote, this.takerBps);
        const makerFee = this.makerBps >= 0 ? bpsUp(quote, this.makerBps) : -bpsDown(quote, -this.makerBps);
        const tb = takerU * nA;
        const mb = mu * nA;
        const mo = (mu * nP + pi) * 4;
        if (takerSide === BUY) {
          inv[tb + bi] = inv[tb + bi]! + lots;
          inv[tb + qi] = inv[tb + qi]! - quote - takerFee;
          inv[mb + bi] = inv[mb + bi]! - lots;
          inv[mb + qi] = inv[mb + qi]! + quote - makerFee;
          open[mo + SELL_LOTS] = open[mo + SELL_LOTS]! - lots;
          open[mo + SELL_NOTIONAL] = open[mo + SELL_NOTIONAL]! - lots * price;
        } else {
          inv[tb + bi] = inv[tb + bi]! - lots;
          inv[tb + qi] = inv[tb + qi]! + quote - takerFee;
          inv[mb + bi] = inv[mb + bi]! + lots;
          inv[mb + qi] = inv[mb + qi]! - quote - makerFee;
          open[mo + BUY_LOTS] = open[mo + BUY_LOTS]! - lots;
          open[mo + BUY_NOTIONAL] = open[mo + BUY_NOTIONAL]! - lots * price;
        }
        const tq = this.treasuryIdx * nA + qi;
        inv[tq] = inv[tq]! + takerFee + makerFee;
        const makerRemaining = rep.remaining[i]!;
        if (makerRemaining === 0) L.openCount[mu] = L.openCount[mu]! - 1;
        L.feesPaid[takerU] = L.feesPaid[takerU]! + takerFee;
        L.feesPaid[mu] = L.feesPaid[mu]! + makerFee;
        L.volume[takerU] = L.volume[takerU]! + quote;
        L.volume[mu] = L.volume[mu]! + quote;
        L.fills[takerU] = L.fills[takerU]! + 1;
        L.fills[mu] = L.fills[mu]! + 1;
        const fill: FillEvent = {
          kind: "fill",
          seq,
          ts,
          tradeId: this.nextTradeId++,
          pair,
          price,
          size: lots,
          quoteAmount: quote,
          takerSide: takerSideName,
          maker: ids[mu]!,
          makerOrderId: rep.orderId[i]!,
          makerFee,
          makerRemaining,
          taker: takerUser,
          takerOrderId,
          takerFee,
        };
        events.push(fill);
        this.pushTrade(pi, fill);
        this.lastTrade[pi] = price;
      } else {
        const side = rep.side[i]! as SideCode;
        this.reserve(mu, pi, side, price, lots, -1);
        events.push({
          kind: "order_cancelled",
          seq,
          ts,
          pair,
          orderId: rep.orderId[i]!,
          user: ids[mu]!,
          side: SIDE_NAME[side],
          price,
          remaining: lots,
          reason: rep.kind[i] === SELF_TRADE ? "self_trade" : cancelReason,
        });
      }
    }
  }

  /** Adds (sign 1) or releases (sign -1) what a resting order reserves. */
  private reserve(u: number, pi: number, side: SideCode, price: number, lots: number, sign: 1 | -1): void {
    const open = this.ledger.open;
    const o = (u * this.nP + pi) * 4 + (side === BUY ? BUY_LOTS : SELL_LOTS);
    open[o] = open[o]! + sign * lots;
    open[o + 1] = open[o + 1]! + sign * lots * price;
    this.ledger.openCount[u] = this.ledger.openCount[u]! + sign;
  }

  private cancelEverything(u: number, only: number, seq: number, ts: number, events: EngineEvent[], reason: CancelReason): void {
    for (let pi = 0; pi < this.nP; pi++) {
      if (only >= 0 && pi !== only) continue;
      if (this.books[pi]!.cancelAll(u) > 0) {
        this.afterMatch(pi, u, BUY, 0, seq, ts, events, reason);
        this.touch(pi);
      }
    }
  }

  private pushTrade(pi: number, fill: FillEvent): void {
    const keep = this.config.recentTradesKept;
    if (keep === 0) return;
    let list = this.trades[pi]!;
    if (list.length >= 2 * keep) {
      list = list.slice(-keep);
      this.trades[pi] = list;
    }
    list.push(fill);
  }

  private closeOutSession(seq: number, ts: number): EngineEvent {
    const L = this.ledger;
    const marks = this.closingMarks!;
    const quoteUnit = this.rc.units[this.quoteIndex]!;
    const pairs = this.rc.pairs.map((p, pi) => ({
      id: p.config.id,
      baseIndex: p.baseIndex,
      priceNum: BigInt(marks[pi]!) * BigInt(p.config.quotePerTickLot) * quoteUnit,
      priceDen: this.rc.units[p.baseIndex]!,
    }));
    const order = L.sorted();
    const assetIds = this.config.assets.map((a) => a.id);
    const row = (u: number, f: (u: number, a: number) => bigint): bigint[] => assetIds.map((_, a) => f(u, a));
    const input: ClosingInput = {
      assetIds,
      quoteIndex: this.quoteIndex,
      pairs,
      accounts: order.map((u) => ({
        user: L.ids[u]!,
        balances: row(u, (v, a) => L.balance(v, a)),
        net: row(u, (v, a) => L.net[v * this.nA + a]!),
      })),
      treasury: this.config.treasury,
      insurance: this.config.insurance,
    };
    const closing = closingCross(input);
    const deltas = netDeltas(
      assetIds,
      order.map((u, i) => ({ user: L.ids[u]!, final: closing.balances[i]!, net: input.accounts[i]!.net })),
    );
    order.forEach((u, i) => closing.balances[i]!.forEach((b, a) => L.setBalance(u, a, b)));
    const stakes = new Map(input.accounts.map((acc) => [acc.user, valueAt(input, acc.net)] as const));
    const priceOf = (assetId: number): { num: bigint; den: bigint } => {
      const a = this.rc.assetIndex.get(assetId)!;
      const p = pairs.find((x) => x.baseIndex === a);
      return p === undefined ? { num: 1n, den: 1n } : { num: p.priceNum, den: p.priceDen };
    };
    const board = leaderboard({ deltas, stakes, price: priceOf, exclude: [this.config.treasury, this.config.insurance] });
    const closingPrices = pairs.map((p, pi) => ({ pair: p.id, priceTicks: marks[pi]! }));
    this.closeOutValue = {
      sessionId: this.config.sessionId,
      closingPrices,
      adjustments: closing.adjustments,
      bankruptUsers: closing.bankruptUsers,
      balances: order.flatMap((u, i) => assetIds.map((asset, a) => ({ user: L.ids[u]!, asset, amount: closing.balances[i]![a]! }))),
      deltas,
      leaderboard: board,
      top10: top(board, 10),
    };
    return { kind: "closed_out", seq, ts, closingPrices, bankruptUsers: closing.bankruptUsers };
  }

  // ---------------------------------------------------------------- marks

  private pairOf(pair: number): number {
    const i = this.pairLookup[pair];
    return i === undefined ? -1 : i;
  }

  /**
   * The mark of pair `pi` in ticks (margin.ts m_p, computed by markTicks): the mid
   * floor((best bid + best ask) / 2) while both sides of the book hold orders, else the last
   * trade price, else the reference price, clamped to the mark band. The mark band of a pair is
   *   [markLow, markHigh] = [max(1, ceil(ref * (10^4 - markBandBps) / 10^4)),
   *                          floor(ref * (10^4 + markBandBps) / 10^4)]
   * around its session reference price `ref` (config.ts bandLow / bandHigh, inside the wider
   * price band orders must respect). Every mark the engine uses is banded this way: margin,
   * liquidation limits, and the closing price, which is this mark as end_trading finds the book
   * (closingMarks) and stays fixed for the rest of the session.
   */
  private markOf(pi: number): number {
    if (this.closingMarks !== null) return this.closingMarks[pi]!;
    const p = this.rc.pairs[pi]!;
    const book = this.books[pi]!;
    return markTicks(book.bestBid(), book.bestAsk(), this.lastTrade[pi]!, p.config.referencePriceTicks, p.markLow, p.markHigh);
  }

  /**
   * lotValue[p] (v_p of margin.ts) is kept current: every change to a book or its last trade
   * is followed by touch(p), so the pre-trade check reads it without recomputing four marks.
   */
  private touch(pi: number): void {
    this.lotValue[pi] = this.markOf(pi) * this.qptl[pi]!;
  }

  private refreshMarks(): void {
    for (let pi = 0; pi < this.nP; pi++) this.lotValue[pi] = this.markOf(pi) * this.qptl[pi]!;
  }

  private maxUnits(a: number): number {
    const p = this.rc.pairs.find((x) => x.baseIndex === a);
    return p === undefined ? 2 ** 50 : p.maxPositionLots;
  }

  // ---------------------------------------------------------------- read views

  /** Aggregated book levels, best first. */
  depth(pair: PairId, levels: number): Depth {
    const pi = this.requirePair(pair);
    const book = this.books[pi]!;
    return { pair, bids: book.depth(BUY, levels), asks: book.depth(SELL, levels) };
  }

  /** (best bid + best ask) / 2 in ticks (may be a half tick), or null while a side is empty. */
  mid(pair: PairId): number | null {
    const book = this.books[this.requirePair(pair)]!;
    const bid = book.bestBid();
    const ask = book.bestAsk();
    return bid >= 0 && ask >= 0 ? (bid + ask) / 2 : null;
  }

  /** The margin engine's mark in ticks (margin.ts); after end_trading, the closing mark. */
  mark(pair: PairId): number {
    return this.markOf(this.requirePair(pair));
  }

  bestBid(pair: PairId): number | null {
    const b = this.books[this.requirePair(pair)]!.bestBid();
    return b >= 0 ? b : null;
  }

  bestAsk(pair: PairId): number | null {
    const a = this.books[this.requirePair(pair)]!.bestAsk();
    return a >= 0 ? a : null;
  }

  /** The last `n` trades of the pair, newest first (at most config.recentTradesKept). */
  recentTrades(pair: PairId, n: number): FillEvent[] {
    const list = this.trades[this.requirePair(pair)]!;
    const take = Math.min(n, this.config.recentTradesKept, list.length);
    const out: FillEvent[] = [];
    for (let i = list.length - 1; out.length < take; i--) out.push(list[i]!);
    return out;
  }

  order(orderId: number): OrderView | null {
    for (let pi = 0; pi < this.nP; pi++) {
      if (this.books[pi]!.orderInfo(orderId, this.info)) {
        const o = this.info;
        return {
          orderId,
          pair: this.config.pairs[pi]!.id,
          user: this.ledger.ids[o.owner]!,
          side: SIDE_NAME[o.side],
          orderType: TYPE_NAME[o.type],
          price: o.price,
          size: o.size,
          remaining: o.remaining,
        };
      }
    }
    return null;
  }

  openOrders(user: AccountId): OrderView[] {
    const u = this.ledger.indexOf(user);
    if (u < 0) return [];
    const out: OrderView[] = [];
    for (let pi = 0; pi < this.nP; pi++) {
      const pair = this.config.pairs[pi]!.id;
      for (const o of this.books[pi]!.ordersOf(u)) {
        out.push({ orderId: o.orderId, pair, user, side: SIDE_NAME[o.side], orderType: TYPE_NAME[o.type], price: o.price, size: o.size, remaining: o.remaining });
      }
    }
    return out;
  }

  /** Every account known to the session, ascending. */
  accounts(): AccountId[] {
    return this.ledger.sorted().map((u) => this.ledger.ids[u]!);
  }

  account(user: AccountId): AccountView {
    const L = this.ledger;
    const u = L.indexOf(user);
    this.refreshMarks();
    const positions: AssetPosition[] = [];
    let pnl = 0n;
    this.config.assets.forEach((asset, a) => {
      const units = u < 0 ? 0 : L.inv[u * this.nA + a]!;
      const baseUnits = u < 0 ? 0n : L.balance(u, a);
      const net = u < 0 ? 0n : L.net[u * this.nA + a]!;
      const pi = this.rc.pairs.findIndex((p) => p.baseIndex === a);
      let reserved = 0;
      let value = units;
      if (u >= 0) {
        reserved = pi < 0 ? this.margin.reservedQuote(u) : L.open[(u * this.nP + pi) * 4 + SELL_LOTS]!;
      }
      if (pi >= 0) {
        value = units * this.lotValue[pi]!;
        pnl += floorDiv((baseUnits - net) * BigInt(this.lotValue[pi]!), L.units[a]!);
      } else pnl += floorDiv(baseUnits - net, L.units[a]!);
      positions.push({ asset: asset.id, units, baseUnits, reserved, value });
    });
    if (u < 0) {
      return {
        user, positions, openOrders: [], equity: 0, exposure: 0, initialMargin: 0, maintenanceMargin: 0,
        freeMargin: 0, marginStatus: "ok", pnl: 0, feesPaid: 0, volume: 0, fills: 0,
      };
    }
    const f = this.margin.figures(u, this.lotValue);
    return {
      user,
      positions,
      openOrders: this.openOrders(user),
      equity: f.equity,
      exposure: f.exposure,
      initialMargin: f.initialMargin,
      maintenanceMargin: f.maintenanceMargin,
      freeMargin: this.margin.freeMargin(u, this.lotValue, -1, BUY, 0, 0),
      marginStatus: f.status,
      pnl: toSafeNumber(pnl, "pnl"),
      feesPaid: L.feesPaid[u]!,
      volume: L.volume[u]!,
      fills: L.fills[u]!,
    };
  }

  marginStatus(user: AccountId): MarginStatus {
    const u = this.ledger.indexOf(user);
    if (u < 0) return "ok";
    this.refreshMarks();
    return this.margin.figures(u, this.lotValue).status;
  }

  /**
   * The liquidations the core asks for now: one liquidate command per account below
   * maintenance margin, ascending by account. The keeper stamps seq and ts and applies them
   * like any other command, so they are journaled and replay identically.
   */
  liquidationsDue(): CommandBody[] {
    if (this.phaseValue !== "trading") return [];
    this.refreshMarks();
    const out: CommandBody[] = [];
    for (const u of this.ledger.sorted()) {
      if (this.ledger.hasLiability(u) && this.margin.belowMaintenance(u, this.lotValue)) {
        out.push({ type: "liquidate", user: this.ledger.ids[u]! });
      }
    }
    return out;
  }

  /** The closing cross, deltas and leaderboard, once closed out. */
  closeOut(): CloseOut | null {
    return this.closeOutValue;
  }

  /** Number of resting orders per pair (monitoring). */
  restingOrders(pair: PairId): number {
    return this.books[this.requirePair(pair)]!.size;
  }

  /** Open requests for quote with their live quotes, ascending id (of one pair, or all). */
  rfqRequests(pair?: PairId): RfqRequestView[] {
    const pi = pair === undefined ? -1 : this.requirePair(pair);
    const out: RfqRequestView[] = [];
    for (const r of this.desk.requests.values()) if (pi < 0 || r.pi === pi) out.push(this.rfqView(r));
    return out;
  }

  /** An open request for quote, or null. */
  rfqRequest(requestId: number): RfqRequestView | null {
    const r = this.desk.requests.get(requestId);
    return r === undefined ? null : this.rfqView(r);
  }

  /**
   * The earliest expiry (ms) among open requests and live quotes, or null. Once a command's ts
   * reaches it the keeper sends { type: "rfq_expire" }, which is journaled like any command.
   */
  nextRfqExpiry(): number | null {
    return this.phaseValue === "trading" ? this.desk.nextExpiry() : null;
  }

  /** What the account's resting orders, open requests and live quotes reserve, per pair. */
  reservations(user: AccountId): Reservation[] {
    const u = this.ledger.indexOf(user);
    const open = this.ledger.open;
    return this.config.pairs.map((p, pi) => {
      const o = (u * this.nP + pi) * 4;
      return u < 0
        ? { pair: p.id, buyLots: 0, buyNotional: 0, sellLots: 0, sellNotional: 0 }
        : { pair: p.id, buyLots: open[o + BUY_LOTS]!, buyNotional: open[o + BUY_NOTIONAL]!, sellLots: open[o + SELL_LOTS]!, sellNotional: open[o + SELL_NOTIONAL]! };
    });
  }

  private rfqView(r: RfqRequest): RfqRequestView {
    return {
      requestId: r.id,
      pair: r.pair,
      user: r.user,
      side: SIDE_NAME[r.side],
      size: r.size,
      remaining: r.remaining,
      limit: r.limit === 0 ? null : r.limit,
      reservePrice: r.reservePrice,
      expiresAt: r.expiresAt,
      whitelist: r.whitelist === null ? null : [...r.whitelist],
      minFill: r.minFill,
      remainder: r.remainder,
      lockedBy: r.lockedBy === UNLOCKED ? null : this.ledger.ids[r.lockedBy]!,
      quotes: r.quotes.map(
        (q): RfqQuoteView => ({ quoteId: q.id, requestId: r.id, pair: r.pair, quoter: q.user, side: SIDE_NAME[q.side], price: q.price, size: q.size, validUntil: q.validUntil }),
      ),
    };
  }

  private requirePair(pair: PairId): number {
    const pi = this.pairOf(pair);
    if (pi < 0) throw new CoreInputError("pair", `no pair ${pair}`);
    return pi;
  }

  // ---------------------------------------------------------------- snapshot, replay

  /** The whole state as a plain JSON-able object; Engine.restore(snapshot) continues from it. */
  snapshot(): EngineSnapshot {
    const L = this.ledger;
    const keep = this.config.recentTradesKept;
    return {
      version: 1,
      config: configToJson(this.config),
      phase: this.phaseValue,
      lastSeq: this.lastSeqValue,
      lastTs: this.lastTsValue,
      nextTradeId: this.nextTradeId,
      lastTrade: Array.from(this.lastTrade),
      closingMarks: this.closingMarks === null ? null : [...this.closingMarks],
      accounts: L.sorted().map((u) => ({
        user: L.ids[u]!,
        inv: Array.from(L.inv.subarray(u * this.nA, (u + 1) * this.nA)),
        dust: L.dust.slice(u * this.nA, (u + 1) * this.nA).map(String),
        net: L.net.slice(u * this.nA, (u + 1) * this.nA).map(String),
        feesPaid: L.feesPaid[u]!,
        volume: L.volume[u]!,
        fills: L.fills[u]!,
      })),
      books: this.books.map((book, pi) => ({
        pair: this.config.pairs[pi]!.id,
        orders: book.orders().map((o): SnapshotOrder => [o.orderId, L.ids[o.owner]!, SIDE_NAME[o.side], TYPE_NAME[o.type], o.price, o.remaining, o.size]),
      })),
      recentTrades: this.trades.map((list, pi) => ({ pair: this.config.pairs[pi]!.id, trades: list.slice(-keep).map((f) => ({ ...f })) })),
      closeOut: this.closeOutValue === null ? null : closeOutToJson(this.closeOutValue),
      ...(this.desk.size === 0 ? {} : { rfq: this.rfqSnapshot() }),
    };
  }

  private rfqSnapshot(): NonNullable<EngineSnapshot["rfq"]> {
    const ids = this.ledger.ids;
    return {
      requests: [...this.desk.requests.values()].map((r) => ({
        id: r.id,
        user: r.user,
        pair: r.pair,
        side: SIDE_NAME[r.side],
        size: r.size,
        remaining: r.remaining,
        limit: r.limit === 0 ? null : r.limit,
        reservePrice: r.reservePrice,
        expiresAt: r.expiresAt,
        whitelist: r.whitelist === null ? null : [...r.whitelist],
        minFill: r.minFill,
        remainder: r.remainder,
        lockedBy: r.lockedBy === UNLOCKED ? null : ids[r.lockedBy]!,
      })),
      quotes: [...this.desk.quotes.values()].map((q) => ({ id: q.id, requestId: q.request.id, user: q.user, price: q.price, size: q.size, validUntil: q.validUntil })),
    };
  }

  static restore(snapshot: EngineSnapshot, options: EngineOptions = {}): Engine {
    if (snapshot.version !== 1) throw new CoreInputError("snapshot.version", `unsupported version ${String(snapshot.version)}`);
    const engine = new Engine(configFromJson(snapshot.config), options);
    engine.load(snapshot);
    return engine;
  }

  private load(s: EngineSnapshot): void {
    const L = this.ledger;
    this.phaseValue = s.phase;
    this.lastSeqValue = s.lastSeq;
    this.lastTsValue = s.lastTs;
    this.nextTradeId = s.nextTradeId;
    s.lastTrade.forEach((p, i) => (this.lastTrade[i] = p));
    this.closingMarks = s.closingMarks === null ? null : [...s.closingMarks];
    for (const acc of s.accounts) {
      const u = L.ensure(acc.user);
      for (let a = 0; a < this.nA; a++) {
        const k = u * this.nA + a;
        L.inv[k] = acc.inv[a]!;
        L.dust[k] = BigInt(acc.dust[a]!);
        L.net[k] = BigInt(acc.net[a]!);
        L.totalNet[a] = L.totalNet[a]! + L.net[k]!;
      }
      L.feesPaid[u] = acc.feesPaid;
      L.volume[u] = acc.volume;
      L.fills[u] = acc.fills;
    }
    s.books.forEach((b, pi) => {
      for (const [orderId, user, side, type, price, remaining, size] of b.orders) {
        const u = L.ensure(user);
        const sc = sideCode(side);
        this.books[pi]!.rest({ orderId, owner: u, side: sc, type: typeCode(type), price, remaining, size });
        this.reserve(u, pi, sc, price, remaining, 1);
      }
    });
    s.recentTrades.forEach((t, pi) => (this.trades[pi] = t.trades.map((f) => ({ ...f }))));
    this.closeOutValue = s.closeOut === null ? null : closeOutFromJson(s.closeOut as CloseOutJson);
    for (const j of s.rfq?.requests ?? []) {
      const u = L.ensure(j.user);
      const pi = this.requirePair(j.pair);
      const side = sideCode(j.side);
      const r = new RfqRequest(j.id, u, j.user, pi, j.pair, side, j.size, j.limit ?? 0, j.reservePrice, j.expiresAt, j.whitelist === null ? null : [...j.whitelist], j.minFill, j.remainder);
      r.remaining = j.remaining;
      if (j.lockedBy !== null) {
        r.move("locked");
        r.lockedBy = L.ensure(j.lockedBy);
      }
      this.desk.addRequest(r);
      this.reserveRfq(u, pi, side, j.reservePrice, j.remaining, 1);
    }
    for (const j of s.rfq?.quotes ?? []) {
      const r = this.desk.requests.get(j.requestId);
      if (r === undefined) throw new CoreInputError("snapshot.rfq.quotes", `quote ${j.id} of no open request ${j.requestId}`);
      const u = L.ensure(j.user);
      const side = (1 - r.side) as SideCode;
      this.desk.addQuote(new RfqQuote(j.id, r, u, j.user, side, j.price, j.size, j.validUntil));
      this.reserveRfq(u, r.pi, side, j.price, j.size, 1);
    }
    this.refreshMarks();
  }

  /** sha-256 of the canonical serialization of the snapshot (state-hash.ts). */
  stateHash(): string {
    return hashSnapshot(this.snapshot());
  }
}

// ------------------------------------------------------------------ helpers

function checkUint32(x: unknown, field: string): void {
  if (typeof x !== "number" || x >>> 0 !== x) throw new CoreInputError(field, "must be a uint32 account id");
}

function checkNumber(x: unknown, field: string): void {
  if (typeof x !== "number") throw new CoreInputError(field, "must be a number");
}

function checkTime(x: unknown, field: string): void {
  if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0) throw new CoreInputError(field, "must be a non-negative safe integer (ms)");
}

function remainderOf(x: unknown): RfqRemainder {
  if (x === "keep" || x === "drop") return x;
  throw new CoreInputError("remainder", `must be "keep" or "drop", got ${JSON.stringify(x)}`);
}

/** A sorted copy without repeats, or null when absent. */
function whitelistOf(x: unknown): readonly AccountId[] | null {
  if (x === undefined) return null;
  if (!Array.isArray(x) || x.length === 0 || x.length > RFQ_MAX_WHITELIST) {
    throw new CoreInputError("whitelist", `must be an array of 1 to ${RFQ_MAX_WHITELIST} account ids`);
  }
  for (const id of x) checkUint32(id, "whitelist");
  return [...new Set(x as number[])].sort((a, b) => a - b);
}

function sideCode(side: unknown): SideCode {
  if (side === "buy") return BUY;
  if (side === "sell") return SELL;
  throw new CoreInputError("side", `must be "buy" or "sell", got ${JSON.stringify(side)}`);
}

function typeCode(type: unknown): TypeCode {
  if (type === "limit") return LIMIT;
  if (type === "ioc") return IOC;
  if (type === "post_only") return POST_ONLY;
  throw new CoreInputError("orderType", `must be "limit", "ioc" or "post_only", got ${JSON.stringify(type)}`);
}

function describe(code: RejectCode, price: number, size: number): string {
  switch (code) {
    case "off_tick":
      return `price ${price} is not a whole number of ticks`;
    case "price_out_of_band":
      return `price ${price} is outside the pair's price band`;
    case "bad_size":
      return `size ${size} is not a whole number of lots within the pair's limits`;
    case "duplicate_order_id":
      return "an order with this id is open";
    case "post_only_would_cross":
      return "a post-only order would take liquidity";
    case "unknown_order":
      return "no such open order of this account";
    default:
      return code;
  }
}

type CloseOutJson = ReturnType<typeof closeOutToJson>;

function closeOutToJson(s: CloseOut) {
  return {
    sessionId: s.sessionId,
    closingPrices: s.closingPrices.map((p) => ({ ...p })),
    adjustments: s.adjustments.map((x) => ({ ...x, amount: x.amount.toString() })),
    bankruptUsers: [...s.bankruptUsers],
    balances: s.balances.map((b) => ({ ...b, amount: b.amount.toString() })),
    deltas: s.deltas.map((d) => ({ ...d, delta: d.delta.toString() })),
    leaderboard: s.leaderboard.map((e) => ({ ...e, pnl: e.pnl.toString() })),
  };
}

function closeOutFromJson(j: CloseOutJson): CloseOut {
  const board = j.leaderboard.map((e) => ({ ...e, pnl: BigInt(e.pnl) }));
  return {
    sessionId: j.sessionId,
    closingPrices: j.closingPrices,
    adjustments: j.adjustments.map((x) => ({ ...x, amount: BigInt(x.amount) })),
    bankruptUsers: j.bankruptUsers,
    balances: j.balances.map((b) => ({ ...b, amount: BigInt(b.amount) })),
    deltas: j.deltas.map((d) => ({ ...d, delta: BigInt(d.delta) })),
    leaderboard: board,
    top10: top(board, 10),
  };
}
