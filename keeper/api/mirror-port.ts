// The keeper as the API thread sees it: a KeeperPort that answers the hot public reads (session,
// books, trades, outcry, leaderboard, health) and the WebSocket hello from a mirror of the pit's
// views, kept current by the deltas the pit's thread posts (read-feed.ts), and writes the
// stream to its own subscribers. Everything else goes to the pit's thread through PitRpc. Signed
// actions have their signature recovered here first, so a flood of bad signatures costs the pit
// nothing and a good one costs it only the nonce and the action itself.
import type { Address } from "viem";
import type { ActionType, KeeperDomain } from "../auth/eip712.ts";
import { checkEnvelope, checkSignature, type AuthFailure } from "../auth/verify.ts";
import { Fanout, type FanoutStats } from "../stream/fanout.ts";
import type { ActionOutcome, KeeperPort, PermitView, Refusal, SessionView, Signed, StreamClient, UserSettingsView, TradeActionBody, TradeActionResult } from "./port.ts";
import { tradeActionMessage } from "./port.ts";
import type { AccountWire, BookWire, BrokerWire, HealthWire, LeaderboardRowWire, OutcryWire, SettlementWire, TopPromptWire, TradeWire, WithdrawalWire, QuotesWire } from "./wire.ts";
import { READ_LIST_MAX, type ReadDelta } from "./read-feed.ts";
import type { Lane, PitRpc } from "./pit-rpc.ts";

export interface MirrorOptions {
  domain: KeeperDomain;
  /** The address that signs admin requests. */
  settler: Address;
  maxSignedExpirySec: number;
  /** Trades the pit keeps per pair (a read never gets more). */
  tradesKept: number;
  wsMaxBufferedBytes: number;
  rpc: PitRpc;
  initial: ReadDelta;
  /** The pit's thread is reported unhealthy when no delta arrived for this long (it sends one a second). */
  staleMs?: number;
  /** How long answers that rarely change (top prompts, broker catalogue) are reused. */
  slowReadTtlMs?: number;
}

export interface RefusalCount {
  action: string;
  status: number;
  n: number;
}

export class MirrorPort implements KeeperPort {
  readonly #o: MirrorOptions;
  readonly #rpc: PitRpc;
  readonly fanout: Fanout;
  #version = 0;
  #clock = { now: 0, wall: 0 };
  #lastDeltaWall = 0;
  #session: SessionView | undefined;
  #pairs: string[] = [];
  #books = new Map<string, BookWire>();
  #trades = new Map<string, TradeWire[]>();
  #outcry: OutcryWire[] = [];
  #leaderboard: LeaderboardRowWire[] = [];
  #health: HealthWire = { ok: false, phase: "starting", sessionId: 0, chainBlock: null, journalSeq: 0, wsClients: 0 };
  #hello: { version: number; body: string } | undefined;
  #slow = new Map<string, { at: number; value: Promise<unknown> }>();
  #accounts = new Map<string, Promise<AccountWire>>();
  #fillLogs = new Map<number, { body: string; hash: string }>();
  #refused = new Map<string, RefusalCount>();
  #statsDirty = true;

  constructor(opts: MirrorOptions) {
    this.#o = opts;
    this.#rpc = opts.rpc;
    this.fanout = new Fanout({ maxBufferedBytes: opts.wsMaxBufferedBytes, onChange: () => (this.#statsDirty = true) });
    this.apply(opts.initial, []);
  }

  // ---------------------------------------------------------------- the feed

  /** A delta from the pit's thread, then the stream messages flushed with it. */
  apply(d: ReadDelta | null, messages: string[]): void {
    if (d !== null) {
      this.#clock = d.clock;
      this.#lastDeltaWall = Date.now();
      let changed = false;
      if (d.session !== undefined) {
        this.#session = d.session.view;
        this.#pairs = d.session.pairs;
        changed = true;
      }
      for (const [pair, view] of Object.entries(d.books ?? {})) {
        this.#books.set(pair, view);
        changed = true;
      }
      for (const [pair, t] of Object.entries(d.trades ?? {})) {
        const keep = Math.min(READ_LIST_MAX, this.#o.tradesKept);
        this.#trades.set(pair, t.reset ? t.newest.slice(0, keep) : t.newest.concat(this.#trades.get(pair) ?? []).slice(0, keep));
        changed = true;
      }
      if (d.outcry !== undefined) {
        this.#outcry = d.outcry.concat(this.#outcry).slice(0, READ_LIST_MAX);
        changed = true;
      }
      if (d.leaderboard !== undefined) {
        this.#leaderboard = d.leaderboard;
        changed = true;
      }
      if (d.health !== undefined) this.#health = d.health;
      if (changed) this.#version++;
    }
    if (messages.length > 0) {
      this.fanout.write(messages);
      this.#statsDirty = true;
    }
  }

  /** Subscriber counts and refusals answered here, when they changed since the last call. */
  takeStats(): { stats: FanoutStats; refused: RefusalCount[] } | null {
    if (!this.#statsDirty && this.#refused.size === 0) return null;
    this.#statsDirty = false;
    const refused = [...this.#refused.values()];
    this.#refused.clear();
    return { stats: { ...this.fanout.stats }, refused };
  }

  /** The keeper's clock, carried forward from the last delta by the wall clock. */
  #now(): number {
    return this.#clock.now + (Date.now() - this.#clock.wall);
  }

  // ---------------------------------------------------------------- reads from the mirror

  session(): SessionView {
    if (this.#session === undefined) throw Object.assign(new Error("the keeper is starting"), { statusCode: 503, code: "starting" });
    return { ...this.#session, serverTime: this.#now() };
  }

  readVersion(): string {
    return String(this.#version);
  }

  book(pair: string, levels: number): BookWire | undefined {
    const b = this.#books.get(pair);
    if (b === undefined) return undefined;
    return { ...b, bids: b.bids.slice(0, levels), asks: b.asks.slice(0, levels) };
  }

  trades(pair: string, limit: number): TradeWire[] | undefined {
    return this.#trades.get(pair)?.slice(0, limit);
  }

  outcry(limit: number): OutcryWire[] {
    return this.#outcry.slice(0, limit);
  }

  leaderboard(): LeaderboardRowWire[] {
    return this.#leaderboard;
  }

  domain(): KeeperDomain {
    return this.#o.domain;
  }

  health(): HealthWire {
    const staleMs = Date.now() - this.#lastDeltaWall;
    const fresh = staleMs < (this.#o.staleMs ?? 5_000);
    const h = { ...this.#health, ok: this.#health.ok && fresh, wsClients: this.fanout.size };
    // A pit thread that stopped talking is the one thing this thread can see that it cannot.
    return fresh ? h : { ...h, pitSilentMs: staleMs };
  }

  subscribe(client: StreamClient): () => void {
    return this.fanout.add(client, this.#helloMessage());
  }

  #helloMessage(): string {
    const now = this.#now();
    if (this.#session === undefined) return JSON.stringify({ type: "hello", serverTime: now });
    if (this.#hello?.version !== this.#version) {
      const books: Record<string, unknown> = {};
      const trades: Record<string, unknown> = {};
      for (const p of this.#pairs) {
        books[p] = this.book(p, 10);
        trades[p] = this.trades(p, 50);
      }
      // Everything but the clock, serialized once per version: a thousand subscribers joining
      // at once cost one serialization of the snapshot, not a thousand.
      const body = JSON.stringify({ books, trades, outcry: this.outcry(50), leaderboard: this.#leaderboard });
      this.#hello = { version: this.#version, body: body.slice(1, -1) };
    }
    return `{"type":"hello","session":${JSON.stringify({ ...this.#session, serverTime: now })},${this.#hello.body},"serverTime":${now}}`;
  }

  // ---------------------------------------------------------------- reads from the pit's thread

  #call<T>(lane: Lane, method: string, ...args: unknown[]): Promise<T> {
    return this.#rpc.call<T>(lane, method, args);
  }

  /** Rarely changing answers: one call per TTL, shared by every request in it. */
  #slowRead<T>(method: string): Promise<T[]> {
    const now = Date.now();
    const hit = this.#slow.get(method);
    if (hit !== undefined && now - hit.at < (this.#o.slowReadTtlMs ?? 1_000)) return hit.value as Promise<T[]>;
    const value = this.#call<T[]>("read", method);
    value.catch(() => this.#slow.delete(method));
    this.#slow.set(method, { at: now, value });
    return value;
  }

  topPrompts(): Promise<TopPromptWire[]> {
    return this.#slowRead<TopPromptWire>("topPrompts");
  }

  brokers(): Promise<BrokerWire[]> {
    return this.#slowRead<BrokerWire>("brokers");
  }

  account(address: string): Promise<AccountWire> {
    // Concurrent reads of one account share one call.
    const key = address.toLowerCase();
    const inFlight = this.#accounts.get(key);
    if (inFlight !== undefined) return inFlight;
    const p = this.#call<AccountWire>("read", "account", address).finally(() => this.#accounts.delete(key));
    this.#accounts.set(key, p);
    return p;
  }

  async fillLog(sessionId: number): Promise<{ body: string; hash: string } | undefined> {
    // A published fill log never changes (its hash is on-chain).
    const hit = this.#fillLogs.get(sessionId);
    if (hit !== undefined) return hit;
    const log = await this.#call<{ body: string; hash: string } | undefined>("read", "fillLog", sessionId);
    if (log !== undefined) {
      if (this.#fillLogs.size >= 16) this.#fillLogs.delete(this.#fillLogs.keys().next().value!);
      this.#fillLogs.set(sessionId, log);
    }
    return log;
  }

  settlement(sessionId: number): Promise<SettlementWire | undefined> {
    // Reads the chain: the action lane, so it never holds up account reads.
    return this.#call<SettlementWire | undefined>("action", "settlement", sessionId);
  }

  metrics(): Promise<string> {
    return this.#call("read", "metrics");
  }

  quotes(account?: string): Promise<QuotesWire> {
    return account === undefined ? this.#call("read", "quotes") : this.#call("read", "quotes", account);
  }

  withdrawal(address: string, token: string): Promise<ActionOutcome<WithdrawalWire>> {
    // Reads the chain: the action lane, as settlement.
    return this.#call<ActionOutcome<WithdrawalWire>>("action", "withdrawal", address, token);
  }

  // ---------------------------------------------------------------- signed actions

  setBroker(req: Signed & { brokerId: string }): Promise<ActionOutcome<UserSettingsView>> {
    return this.#action("SetBroker", "setBroker", req, { account: req.account, brokerId: req.brokerId });
  }

  setPrompt(req: Signed & { prompt: string }): Promise<ActionOutcome<UserSettingsView>> {
    return this.#action("SetPrompt", "setPrompt", req, { account: req.account, prompt: req.prompt });
  }

  setPairs(req: Signed & { pairs: string[] }): Promise<ActionOutcome<UserSettingsView>> {
    return this.#action("SetPairs", "setPairs", req, { account: req.account, pairs: req.pairs });
  }

  tradeAction(req: Signed & TradeActionBody): Promise<ActionOutcome<TradeActionResult>> {
    return this.#action("TradeAction", "tradeAction", req, { account: req.account, ...tradeActionMessage(req) });
  }

  reprompt(req: Signed & { prompt: string }): Promise<ActionOutcome<UserSettingsView>> {
    return this.#action("Reprompt", "reprompt", req, { account: req.account, prompt: req.prompt });
  }

  withdrawalPermit(req: Signed & { token: Address; amount: string }): Promise<ActionOutcome<PermitView>> {
    return this.#action("WithdrawalRequest", "withdrawalPermit", req, { account: req.account, token: req.token, amount: BigInt(req.amount) });
  }

  adminSettle(req: Omit<Signed, "account"> & { sessionId: number }): Promise<ActionOutcome<SettlementWire>> {
    const settler = this.#o.settler;
    return this.#action("Admin", "adminSettle", { ...req, account: settler }, { action: "settle", sessionId: req.sessionId }, settler, req);
  }

  /**
   * The checks that need no state, then the signature, exactly as the pit's thread would make
   * them (api/service.ts #authorize); what passes is forwarded marked as checked.
   */
  async #action<T>(type: ActionType, method: string, env: Signed, message: Record<string, unknown>, signer: Address = env.account, body: unknown = env): Promise<ActionOutcome<T>> {
    const nowSec = Math.floor(this.#now() / 1000);
    const fail: AuthFailure | null =
      checkEnvelope(env, { domain: this.#o.domain, nowSec, maxExpirySec: this.#o.maxSignedExpirySec }) ??
      (await checkSignature(type, message, env, this.#o.domain, signer));
    if (fail !== null) {
      const status = fail.code === "expiry_too_far" ? 400 : 401;
      const key = `${type}:${status}`;
      const c = this.#refused.get(key);
      if (c === undefined) this.#refused.set(key, { action: type, status, n: 1 });
      else c.n++;
      const refusal: Refusal = { status, error: fail.code, message: fail.message, field: fail.field };
      return { ok: false, refusal };
    }
    return this.#call<ActionOutcome<T>>("action", method, body, { signatureChecked: true });
  }
}
