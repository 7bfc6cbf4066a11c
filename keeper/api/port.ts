// What the HTTP/WS layer needs from the keeper. The app only translates: reads return ready
// views, actions return either a body or a refusal carrying its HTTP status. Two implementations:
// KeeperService (keeper.ts) on the pit's own thread (tests, app.inject), and MirrorPort
// (mirror-port.ts) in the API thread, which serves the hot reads from snapshots the pit posts and
// forwards the rest; hence the reads that may have to ask the pit's thread are Awaitable.
import type { Address, Hex } from "viem";
import type { KeeperDomain } from "../auth/eip712.ts";
import { ACTION_ROUTES, ACTION_TYPES } from "../auth/eip712.ts";
import type { StreamClient } from "../stream/fanout.ts";
import type {
  AccountWire,
  BookWire,
  BrokerWire,
  HealthWire,
  LeaderboardRowWire,
  OutcryWire,
  PermitWire,
  SessionWire,
  SettlementWire,
  TopPromptWire,
  TradeWire,
  UserSettingsWire,
  WithdrawalWire, QuotesWire } from "./wire.ts";

export type { StreamClient };

export interface Refusal {
  status: 400 | 401 | 403 | 404 | 409 | 503;
  error: string;
  message: string;
  field?: string;
}

export type ActionOutcome<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

export interface Signed {
  account: Address;
  nonce: string;
  expiry: number;
  signature: Hex;
  chainId?: number;
}

export type UserSettingsView = UserSettingsWire;
export type PermitView = PermitWire;
export type SessionView = SessionWire;

export type Awaitable<T> = T | Promise<T>;

/** Set by the API thread on actions whose signature it has already recovered and matched. */
export interface ActionOptions {
  signatureChecked?: boolean;
}

export interface KeeperPort {
  session(): SessionWire;
  /** Changes whenever a public read could answer differently (reads cache their JSON on it). */
  readVersion(): string;
  book(pair: string, levels: number): BookWire | undefined;
  trades(pair: string, limit: number): TradeWire[] | undefined;
  outcry(limit: number): OutcryWire[];
  /**
   * Open requests for quote with their live quotes; a whitelist shows only as `whitelisted`. With
   * `account` (an address), as that account sees the pit: only the requests it may quote (open to
   * all, or whitelisting it) and its own, as a broker is shown them.
   */
  quotes(account?: string): Awaitable<QuotesWire>;
  leaderboard(): LeaderboardRowWire[];
  topPrompts(): Awaitable<TopPromptWire[]>;
  brokers(): Awaitable<BrokerWire[]>;
  account(address: string): Awaitable<AccountWire>;
  fillLog(sessionId: number): Awaitable<{ body: string; hash: string } | undefined>;
  settlement(sessionId: number): Promise<SettlementWire | undefined>;
  /** How `address` can withdraw `token` (symbol or address) now, how much and why; refuses an unlisted token. */
  withdrawal(address: string, token: string): Promise<ActionOutcome<WithdrawalWire>>;
  domain(): KeeperDomain;
  health(): Awaitable<HealthWire>;
  metrics(): Awaitable<string>;

  setBroker(req: Signed & { brokerId: string }): Promise<ActionOutcome<UserSettingsView>>;
  setPrompt(req: Signed & { prompt: string }): Promise<ActionOutcome<UserSettingsView>>;
  setPairs(req: Signed & { pairs: string[] }): Promise<ActionOutcome<UserSettingsView>>;
  reprompt(req: Signed & { prompt: string }): Promise<ActionOutcome<UserSettingsView>>;
  withdrawalPermit(req: Signed & { token: Address; amount: string }): Promise<ActionOutcome<PermitView>>;
  adminSettle(req: Omit<Signed, "account"> & { sessionId: number }): Promise<ActionOutcome<SettlementWire>>;
  /** The user's own request-for-quote action, applied to the pit (journaled) as the user. */
  tradeAction(req: Signed & TradeActionBody): Promise<ActionOutcome<TradeActionResult>>;

  /** A WebSocket subscriber: gets the hello snapshot now, then the stream; dropped when slow. */
  subscribe(client: StreamClient): () => void;
}

/** The signed fields of a trade action (EIP-712 TradeAction); unused ones are 0, "" or []. */
export interface TradeActionBody {
  action: "request" | "quote" | "accept" | "cancel" | "lock" | "unlock";
  pair: string;
  side: string;
  size: number;
  price: number;
  requestId: number;
  quoteId: number;
  ttlSec: number;
  /** request: the addresses that may quote; []: anyone. */
  whitelist: string[];
  /** request: the smallest block in lots; 0: the pair's minimum size. */
  minFill: number;
  /** request: "keep" | "drop" what a partial accept leaves; "" for other actions. */
  remainder: string;
}

/** The TradeAction struct's values (without account, nonce, expiry) as signed: integers as uint256. */
export function tradeActionMessage(b: TradeActionBody): Record<string, unknown> {
  return {
    action: b.action,
    pair: b.pair,
    side: b.side,
    size: BigInt(b.size),
    price: BigInt(b.price),
    requestId: BigInt(b.requestId),
    quoteId: BigInt(b.quoteId),
    ttlSec: BigInt(b.ttlSec),
    whitelist: b.whitelist,
    minFill: BigInt(b.minFill),
    remainder: b.remainder,
  };
}

/** What a trade action did: the command's seq (a new request's or quote's id) and its event kinds. */
export interface TradeActionResult {
  seq: number;
  events: string[];
}

export function eip712View(domain: KeeperDomain) {
  return { domain, types: ACTION_TYPES, primaryTypes: ACTION_ROUTES };
}
