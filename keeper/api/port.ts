// What the HTTP/WS layer needs from the keeper. The app only translates: reads return ready
// views, actions return either a body or a refusal carrying its HTTP status. Two implementations:
// KeeperService (keeper.ts) on the pit's own thread (tests, app.inject), and MirrorPort
// (mirror-port.ts) in the API thread, which serves the hot reads from snapshots the pit posts and
// forwards the rest; hence the reads that may have to ask the pit's thread are Awaitable.
import type { Address, Hex } from "viem";
import type { KeeperDomain } from "../auth/eip712.ts";
import { ACTION_TYPES } from "../auth/eip712.ts";

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

export interface UserSettingsView {
  account: string;
  accountId: number | null;
  brokerId: string | null;
  prompt: string | null;
  pairs: string[] | null;
  effectiveSession: number;
}

export interface PermitView {
  account: string;
  token: string;
  amount: string;
  sessionId: number;
  nonce: string;
  deadline: number;
  signature: string;
  vault: string;
}

export interface SessionView {
  id: number;
  phase: string;
  phaseStartedAt: number;
  phaseEndsAt: number | null;
  serverTime: number;
  chainId: number;
  vault: string;
  durations: { preSessionSec: number; tradingSec: number; closingSec: number };
  tokens: { symbol: string; address: string; decimals: number; index: number }[];
  pairs: Record<string, unknown>[];
}

export interface StreamClient {
  send(data: string): void;
  readonly bufferedAmount: number;
  close(code?: number, reason?: string): void;
  terminate(): void;
}

export type Awaitable<T> = T | Promise<T>;

/** Set by the API thread on actions whose signature it has already recovered and matched. */
export interface ActionOptions {
  signatureChecked?: boolean;
}

export interface KeeperPort {
  session(): SessionView;
  /** Changes whenever a public read could answer differently (reads cache their JSON on it). */
  readVersion(): string;
  book(pair: string, levels: number): unknown | undefined;
  trades(pair: string, limit: number): unknown[] | undefined;
  outcry(limit: number): unknown[];
  leaderboard(): unknown[];
  topPrompts(): Awaitable<unknown[]>;
  brokers(): Awaitable<unknown[]>;
  account(address: string): Awaitable<unknown>;
  fillLog(sessionId: number): Awaitable<{ body: string; hash: string } | undefined>;
  settlement(sessionId: number): Promise<unknown | undefined>;
  domain(): KeeperDomain;
  health(): Awaitable<{ ok: boolean; [k: string]: unknown }>;
  metrics(): Awaitable<string>;

  setBroker(req: Signed & { brokerId: string }): Promise<ActionOutcome<UserSettingsView>>;
  setPrompt(req: Signed & { prompt: string }): Promise<ActionOutcome<UserSettingsView>>;
  setPairs(req: Signed & { pairs: string[] }): Promise<ActionOutcome<UserSettingsView>>;
  reprompt(req: Signed & { prompt: string }): Promise<ActionOutcome<UserSettingsView>>;
  withdrawalPermit(req: Signed & { token: Address; amount: string }): Promise<ActionOutcome<PermitView>>;
  adminSettle(req: Omit<Signed, "account"> & { sessionId: number }): Promise<ActionOutcome<unknown>>;

  /** A WebSocket subscriber: gets the hello snapshot now, then the stream; dropped when slow. */
  subscribe(client: StreamClient): () => void;
}

export function eip712View(domain: KeeperDomain) {
  return { domain, types: ACTION_TYPES, primaryTypes: { "/set-broker": "SetBroker", "/set-prompt": "SetPrompt", "/set-pairs": "SetPairs", "/reprompt": "Reprompt", "/withdrawal-permit": "WithdrawalRequest", "/admin/settle": "Admin" } };
}
