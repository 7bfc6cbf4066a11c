// The keeper service behind the HTTP/WS surface: signed user actions (verify, check, apply and
// consume the nonce in one database transaction; the rules themselves live with the session and
// the brokers), public reads served from views the pit caches between commands, and the stream.
// The session itself runs in SessionRunner; this layer only reads it and asks it.
import type { Address } from "viem";
import { getAddress } from "viem";
import type { Db } from "../store/database.ts";
import { durable, transaction } from "../store/database.ts";
import { isNonceUsed, pruneNonces, useNonce } from "../store/nonces.ts";
import { getReprompt, getUser, recordReprompt, updateUser, type UserSettings } from "../store/users.ts";
import { accountIdOf, getBalance, getCursor } from "../store/ledger.ts";
import { getFillLog, listTopPrompts } from "../store/published.ts";
import { getSession } from "../store/sessions.ts";
import { putPermit } from "../store/permits.ts";
import { keeperDomain, type ActionType, type KeeperDomain } from "../auth/eip712.ts";
import { verifyAction } from "../auth/verify.ts";
import type { ActionOptions, ActionOutcome, KeeperPort, PermitView, Refusal, Signed, StreamClient, UserSettingsView, TradeActionBody, TradeActionResult } from "./port.ts";
import { tradeActionMessage } from "./port.ts";
import type { Deployment } from "../chain/deployment.ts";
import { readOnChainSession, progressOf } from "../settlement/submit.ts";
import type { ChainPorts, SessionRunner } from "../session/runner.ts";
import type { SessionPit } from "../session/pit.ts";
import type { StreamHub } from "../stream/hub.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { CommandBody } from "../core/commands.ts";
import type { HealthRegistry } from "../ops/health.ts";
import type { CatalogueEntry } from "../brokers/catalogue.ts";
import { publicEntry } from "../brokers/catalogue.ts";
import type { Clock } from "../executor/clock.ts";
import { PitViews } from "./pit-views.ts";
import type { AccountWire, BookWire, BrokerWire, HealthWire, LeaderboardRowWire, OutcryWire, SessionWire, SettlementWire, TopPromptWire, TradeWire, WithdrawalWire, QuotesWire } from "./wire.ts";
import { decideWithdrawal, readVaultWithdrawalView } from "../session/withdrawal.ts";

/** What the service needs of the keeper's configuration. */
export interface ServiceConfig {
  chainId: number;
  maxSignedExpirySec: number;
}

export interface KeeperServiceDeps {
  config: ServiceConfig;
  db: Db;
  deployment: Deployment;
  runner: SessionRunner;
  hub: StreamHub;
  metrics: Metrics;
  /** Progress and stalls of settlement, the watcher, the journal and the tx sender. */
  health?: HealthRegistry;
  catalogue: CatalogueEntry[];
  chain: ChainPorts | null;
  clock: Clock;
}

const refusal = (status: Refusal["status"], error: string, message: string, field?: string): { ok: false; refusal: Refusal } => ({
  ok: false,
  refusal: field === undefined ? { status, error, message } : { status, error, message, field },
});

export class KeeperService implements KeeperPort {
  readonly #d: KeeperServiceDeps;
  readonly #domain: KeeperDomain;
  #lastPrune = 0;

  constructor(deps: KeeperServiceDeps) {
    this.#d = deps;
    this.#domain = keeperDomain(deps.config.chainId, deps.deployment.vault);
  }

  // ---------------------------------------------------------------- reads

  #views: PitViews | null = null;

  /** The views of the runner's current pit (rebuilt when the session gets a new pit). */
  #pitViews(): PitViews | null {
    const pit = this.#d.runner.pit;
    if (pit === null) return null;
    if (this.#views?.pit !== pit) this.#views = new PitViews(pit, this.#d.runner.market.pairs, this.#d.clock);
    return this.#views;
  }

  session(): SessionWire {
    const r = this.#d.runner;
    const c = r.current;
    const fees = r.market.engine.fees;
    return {
      id: c.id,
      phase: c.phase,
      phaseStartedAt: c.phaseStartedAt,
      phaseEndsAt: c.phaseEndsAt,
      serverTime: this.#d.clock.now(),
      chainId: this.#d.config.chainId,
      vault: this.#d.deployment.vault,
      durations: r.durations,
      tokens: r.tokens,
      pairs: r.market.pairs.map((p) => ({
        id: p.id,
        symbol: p.symbol,
        base: p.baseSymbol,
        quote: p.quoteSymbol,
        baseIndex: p.base,
        quoteIndex: p.quote,
        referencePrice: p.referencePrice,
        referencePriceTicks: p.referencePriceTicks,
        lotSize: p.lotSize.toString(),
        quotePerTickLot: p.quotePerTickLot,
        minSizeLots: p.minSizeLots,
        maxSizeLots: p.maxSizeLots,
        priceBandBps: p.priceBandBps,
        baseDecimals: p.baseDecimals,
        quoteDecimals: p.quoteDecimals,
        takerFeeBps: fees.takerBps,
        makerFeeBps: fees.makerBps,
      })),
    };
  }

  readVersion(): string {
    const r = this.#d.runner;
    return `${r.current?.id}:${r.current?.phase}:${r.pit?.version ?? 0}:${r.outcry.count}`;
  }

  #pair(symbol: string) {
    return this.#d.runner.market.pairs.find((p) => p.symbol === symbol);
  }

  book(pair: string, levels: number): BookWire | undefined {
    const meta = this.#pair(pair);
    if (meta === undefined) return undefined;
    const views = this.#pitViews();
    if (views === null) return { pair, bids: [], asks: [], mid: null, mark: null, ts: this.#d.clock.now() };
    return views.book(meta.id, levels);
  }

  trades(pair: string, limit: number): TradeWire[] | undefined {
    const meta = this.#pair(pair);
    if (meta === undefined) return undefined;
    return this.#pitViews()?.trades(meta.id, limit) ?? [];
  }

  outcry(limit: number): OutcryWire[] {
    return this.#d.runner.outcry.newest(limit);
  }

  quotes(account?: string): QuotesWire {
    const pit = this.#d.runner.pit;
    if (pit === null) return { requests: [] };
    const symbol = (id: number) => this.#d.runner.market.pairs.find((p) => p.id === id)?.symbol ?? String(id);
    let requests = pit.reads.rfqRequests();
    if (account !== undefined) {
      // As the wallet sees the pit: what it may quote and its own, never a request whose whitelist
      // leaves it out (a wallet without a vault account may quote only open requests).
      const me = accountIdOf(this.#d.db, account);
      requests = requests.filter((r) => r.user === me || (r.whitelist === null ? true : me !== undefined && r.whitelist.includes(me)));
    }
    return {
      requests: requests.map((r) => ({
        requestId: r.requestId,
        pair: symbol(r.pair),
        accountId: r.user,
        side: r.side,
        size: r.size,
        remaining: r.remaining,
        limit: r.limit,
        expiresAt: r.expiresAt,
        whitelisted: r.whitelist !== null,
        minFill: r.minFill,
        remainder: r.remainder,
        lockedBy: r.lockedBy,
        quotes: r.quotes.map((q) => ({ quoteId: q.quoteId, requestId: q.requestId, pair: symbol(q.pair), quoter: q.quoter, side: q.side, price: q.price, size: q.size, validUntil: q.validUntil })),
      })),
    };
  }

  leaderboard(): LeaderboardRowWire[] {
    return this.#pitViews()?.leaderboard(this.#d.runner.participants) ?? [];
  }

  topPrompts(): TopPromptWire[] {
    return listTopPrompts(this.#d.db, 5).map((t) => ({ sessionId: t.sessionId, rank: t.rank, account: t.address, brokerId: t.brokerId, prompt: t.prompt, pnl: t.pnl }));
  }

  brokers(): BrokerWire[] {
    return this.#d.catalogue.map((e) => ({ ...publicEntry(e), name: e.displayName }) as BrokerWire);
  }

  account(address: string): AccountWire {
    const db = this.#d.db;
    const runner = this.#d.runner;
    const accountId = accountIdOf(db, address) ?? null;
    const user = getUser(db, address);
    const views = this.#pitViews();
    const view = accountId === null || views === null ? null : views.account(accountId);
    const inventory = this.#d.deployment.tokens.map((t) => {
      const pos = view?.positions.find((p) => p.asset === t.index);
      const onChain = accountId === null ? 0n : getBalance(db, accountId, t.index);
      return {
        token: t.symbol,
        index: t.index,
        amount: (pos?.amount ?? onChain).toString(),
        reserved: (pos?.reserved ?? 0n).toString(),
        onChain: onChain.toString(),
      };
    });
    return {
      account: getAddress(address),
      accountId,
      brokerId: user?.brokerId ?? null,
      pairs: user?.pairs ?? null,
      repromptUsed: getReprompt(db, runner.current.id, address) !== undefined,
      inventory,
      openOrders: view?.openOrders ?? [],
      marginStatus: view?.marginStatus ?? null,
      equity: view?.equity ?? null,
      initialMargin: view?.initialMargin ?? null,
      maintenanceMargin: view?.maintenanceMargin ?? null,
      pnl: view?.pnl ?? null,
    };
  }

  fillLog(sessionId: number) {
    return getFillLog(this.#d.db, sessionId);
  }

  async settlement(sessionId: number): Promise<SettlementWire | undefined> {
    if (getSession(this.#d.db, sessionId) === undefined) return undefined;
    const chain = this.#d.chain;
    const onChain = chain === null ? null : await readOnChainSession(chain.clients.publicClient, this.#d.deployment.vault, sessionId);
    return progressOf(this.#d.db, sessionId, onChain);
  }

  /**
   * How `address` can withdraw `token` now, how much and why (session/withdrawal.ts): the vault's
   * view read at one block, then the keeper's phase and, while it trades or closes, what the pit
   * lets a permit reserve.
   */
  async withdrawal(address: string, token: string): Promise<ActionOutcome<WithdrawalWire>> {
    const tokens = this.#d.deployment.tokens;
    const t = tokens.find((x) => x.symbol.toUpperCase() === token.toUpperCase() || x.address.toLowerCase() === token.toLowerCase());
    if (t === undefined) return refusal(400, "unknown_token", `${token} is not listed (listed: ${tokens.map((x) => x.symbol).join(", ")})`, "token");
    const account = getAddress(address);
    const chain = this.#d.chain;
    const vault = chain === null ? null : await readVaultWithdrawalView(chain.clients.publicClient, this.#d.deployment.vault, account, t.address);
    // The keeper's side after the chain read, so it is no older than the vault's.
    const db = this.#d.db;
    const runner = this.#d.runner;
    const cur = runner.current;
    const accountId = accountIdOf(db, account);
    const ledger = accountId === undefined ? 0n : getBalance(db, accountId, t.index);
    const d = decideWithdrawal({
      keeper: { sessionId: cur.id, phase: cur.phase },
      symbol: t.symbol,
      decimals: t.decimals,
      vault,
      pit: runner.permitAllowance(accountId, t.index),
      ledger,
    });
    return {
      ok: true,
      value: {
        account,
        token: t.symbol,
        tokenAddress: getAddress(t.address),
        decimals: t.decimals,
        sessionId: cur.id,
        phase: cur.phase,
        vaultPhase: vault?.phase ?? null,
        route: d.route,
        code: d.code,
        available: d.available.toString(),
        balance: (vault?.balance ?? ledger).toString(),
        reason: d.reason,
      },
    };
  }

  domain() {
    return this.#domain;
  }

  health(): HealthWire {
    const runner = this.#d.runner;
    const c = getCursor(this.#d.db);
    const parts = this.#d.health?.report();
    return {
      ok: runner.current !== undefined && runner.halted === null && (parts?.ok ?? true),
      phase: runner.current?.phase ?? "starting",
      sessionId: runner.current?.id ?? 0,
      chainBlock: c === undefined ? null : Number(c),
      journalSeq: runner.pit?.seq ?? 0,
      wsClients: this.#d.hub.size,
      ...(parts === undefined ? {} : { components: parts.components }),
    };
  }

  metrics() {
    const m = this.#d.metrics;
    m.wsClients.set(this.#d.hub.size);
    m.wsDropped.values.clear();
    m.wsDropped.set(this.#d.hub.stats.dropped);
    return m.render();
  }

  subscribe(client: StreamClient) {
    return this.#d.hub.add(client, this.hello());
  }

  /** The hello snapshot a new subscriber gets first. */
  hello() {
    const runner = this.#d.runner;
    if (runner.current === undefined) return { serverTime: this.#d.clock.now() };
    const books: Record<string, BookWire> = {};
    const trades: Record<string, TradeWire[]> = {};
    for (const p of runner.market.pairs) {
      books[p.symbol] = this.book(p.symbol, 10)!;
      trades[p.symbol] = this.trades(p.symbol, 50)!;
    }
    return { session: this.session(), books, trades, outcry: this.outcry(50), leaderboard: this.leaderboard(), serverTime: this.#d.clock.now() };
  }

  // ---------------------------------------------------------------- what the API thread's feed follows

  /** The runner's current pit (its identity changes with each session). */
  currentPit(): SessionPit | null {
    return this.#d.runner.pit;
  }

  /** The pair symbols of the session's market, in order, with their ids. */
  pairs(): { id: number; symbol: string }[] {
    return this.#d.runner.market.pairs.map((p) => ({ id: p.id, symbol: p.symbol }));
  }

  /** A key that changes whenever the session's phase or clock does (null before the first session). */
  sessionKey(): string | null {
    const cur = this.#d.runner.current as SessionRunner["current"] | undefined;
    return cur === undefined ? null : `${cur.id}:${cur.phase}:${cur.phaseStartedAt}:${cur.phaseEndsAt}`;
  }

  /** Trades the pit keeps per pair (a read never gets more). */
  get tradesKept(): number {
    return this.#d.runner.market.engine.recentTradesKept;
  }

  /** Outcry lines recorded since the keeper started (the API thread's feed follows it). */
  get outcryCount(): number {
    return this.#d.runner.outcry.count;
  }

  // ---------------------------------------------------------------- signed actions

  /** Refusals the API thread answered itself (bad signatures never reach this thread), for /metrics. */
  countRefusals(counts: readonly { action: string; status: number; n: number }[]): void {
    for (const c of counts) this.#d.metrics.actions.inc({ action: c.action, status: String(c.status) }, c.n);
  }

  async #authorize(type: ActionType, message: Record<string, unknown>, req: Signed, action: ActionOptions, signer?: Address): Promise<Refusal | null> {
    const nowSec = Math.floor(this.#d.clock.now() / 1000);
    if (nowSec - this.#lastPrune > 60) {
      this.#lastPrune = nowSec;
      pruneNonces(this.#d.db, nowSec);
    }
    const opts = {
      domain: this.#domain,
      nowSec,
      maxExpirySec: this.#d.config.maxSignedExpirySec,
      isNonceUsed: (a: string, n: string) => isNonceUsed(this.#d.db, a, n),
      ...(signer === undefined ? {} : { signer }),
      ...(action.signatureChecked === true ? { signatureChecked: true } : {}),
    };
    const fail = await verifyAction(type, message, req, opts);
    if (fail !== null) {
      const status = fail.code === "expiry_too_far" ? 400 : 401;
      this.#d.metrics.actions.inc({ action: type, status: String(status) });
      return { status, error: fail.code, message: fail.message, field: fail.field };
    }
    return null;
  }

  #registered(address: string): number | Refusal {
    const id = accountIdOf(this.#d.db, address);
    if (id === undefined) {
      return { status: 403, error: "not_registered", message: `${address} has no vault account yet: deposit first`, field: "account" };
    }
    return id;
  }

  #view(u: UserSettings, accountId: number | null, effectiveSession: number): UserSettingsView {
    return { account: getAddress(u.address), accountId, brokerId: u.brokerId, prompt: u.prompt, pairs: u.pairs, effectiveSession };
  }

  /** Settings apply to the session in pre-session; once it trades, to the next one. */
  #effectiveSession(): number {
    const c = this.#d.runner.current;
    return c.phase === "pre_session" ? c.id : c.id + 1;
  }

  async #userAction<T extends object = UserSettingsView>(
    type: ActionType,
    req: Signed,
    opts: ActionOptions,
    message: Record<string, unknown>,
    apply: (accountId: number) => Refusal | NoInfer<T>,
  ): Promise<ActionOutcome<T>> {
    const auth = await this.#authorize(type, { account: req.account, ...message }, req, opts);
    if (auth !== null) return { ok: false, refusal: auth };
    const id = this.#registered(req.account);
    if (typeof id !== "number") return { ok: false, refusal: id };
    const db = this.#d.db;
    let out: Refusal | T;
    try {
      // The nonce first, so an action's in-memory effects (a re-prompt reaching the executor)
      // only happen once it is certain to commit; a refusal rolls the nonce back.
      out = transaction(db, () => {
        if (!useNonce(db, req.account, req.nonce, Number(req.expiry))) {
          throw { status: 401, error: "replayed_nonce", message: `nonce ${req.nonce} was already used by ${req.account}`, field: "nonce" } satisfies Refusal;
        }
        const r = apply(id);
        if ("status" in r) throw r;
        return r;
      });
    } catch (err) {
      if (typeof err === "object" && err !== null && "status" in err) out = err as Refusal;
      else throw err;
    }
    this.#d.metrics.actions.inc({ action: type, status: "status" in out ? String(out.status) : "200" });
    return "status" in out ? { ok: false, refusal: out } : { ok: true, value: out };
  }

  /**
   * A user's own request-for-quote action, applied to the pit as that user (journaled). What the
   * schemas cannot check of a field (a pair of this session, a whitelisted wallet with a vault
   * account, a minFill within the pair's sizes and the request's size) is a 400 naming it; the
   * pit's own refusals are 409 with its reason code.
   */
  tradeAction(req: Signed & TradeActionBody, opts: ActionOptions = {}): Promise<ActionOutcome<TradeActionResult>> {
    const { action, pair, side, size, price, requestId, quoteId, ttlSec } = req;
    return this.#userAction<TradeActionResult>("TradeAction", req, opts, tradeActionMessage(req), (user) => {
      const runner = this.#d.runner;
      const pit = runner.pit;
      if (pit === null || runner.current.phase !== "trading") {
        return { status: 409, error: "wrong_phase", message: `requests for quote are taken while trading (now ${runner.current.phase})` };
      }
      const now = this.#d.clock.now();
      let cmd: CommandBody;
      switch (action) {
        case "request": {
          const meta = this.#pair(pair);
          if (meta === undefined) return { status: 400, error: "unknown_pair", message: `no pair ${pair} in this session`, field: "pair" };
          const whitelist = this.#whitelist(req.whitelist, user);
          if (!Array.isArray(whitelist)) return whitelist;
          const { minFill } = req;
          if (minFill > 0 && (minFill < meta.minSizeLots || minFill > Math.min(size, meta.maxSizeLots))) {
            const message = `minFill ${minFill} must lie between the pair's minimum size ${meta.minSizeLots} and the request's size ${size} (0: the pair's minimum)`;
            return { status: 400, error: "bad_min_fill", message, field: "minFill" };
          }
          cmd = {
            type: "rfq_request",
            user,
            pair: meta.id,
            side: side as "buy" | "sell",
            size,
            ...(price > 0 ? { limit: price } : {}),
            expiresAt: now + ttlSec * 1000,
            ...(whitelist.length > 0 ? { whitelist } : {}),
            ...(minFill > 0 ? { minFill } : {}),
            remainder: req.remainder as "keep" | "drop",
          };
          break;
        }
        case "quote":
          cmd = { type: "rfq_quote", user, requestId, price, size, validUntil: now + ttlSec * 1000 };
          break;
        case "accept":
          cmd = { type: "rfq_accept", user, requestId, ...(quoteId > 0 ? { quoteId } : {}), ...(size > 0 ? { size } : {}), ...(price > 0 ? { limit: price } : {}) };
          break;
        case "cancel":
          cmd = { type: "rfq_cancel", user, requestId };
          break;
        case "lock":
          cmd = { type: "rfq_lock", user, requestId };
          break;
        case "unlock":
          cmd = { type: "rfq_unlock", user, requestId };
          break;
      }
      const r = pit.apply(cmd);
      if (!r.ok) return { status: 409, error: r.reason, message: `the pit refused the ${action}: ${r.reason}` };
      return { seq: r.seq, events: r.events.map((e) => e.kind) };
    });
  }

  /** A request's whitelist as account ids: every wallet must have a vault account and not be the requester. */
  #whitelist(addresses: readonly string[], requester: number): number[] | Refusal {
    const ids: number[] = [];
    for (const [i, address] of addresses.entries()) {
      const id = accountIdOf(this.#d.db, address);
      if (id === undefined) {
        return { status: 400, error: "unknown_account", message: `whitelist: ${address} has no vault account, so it cannot quote`, field: `whitelist.${i}` };
      }
      if (id === requester) return { status: 400, error: "own_account", message: "whitelist: a requester cannot quote its own request", field: `whitelist.${i}` };
      ids.push(id);
    }
    return ids;
  }

  setBroker(req: Signed & { brokerId: string }, opts: ActionOptions = {}) {
    return this.#userAction("SetBroker", req, opts, { brokerId: req.brokerId }, (id) => {
      const entry = this.#d.catalogue.find((e) => e.id === req.brokerId);
      if (entry === undefined) {
        return { status: 400, error: "unknown_broker", message: `no broker "${req.brokerId}" in the catalogue (GET /api/brokers)`, field: "brokerId" };
      }
      if (!entry.available) {
        return { status: 409, error: "broker_unavailable", message: `broker "${req.brokerId}" is unavailable: ${entry.kind === "ai" ? entry.reason : ""}`, field: "brokerId" };
      }
      const u = updateUser(this.#d.db, req.account, { brokerId: req.brokerId }, this.#d.clock.now());
      return this.#view(u, id, this.#effectiveSession());
    });
  }

  setPrompt(req: Signed & { prompt: string }, opts: ActionOptions = {}) {
    return this.#userAction("SetPrompt", req, opts, { prompt: req.prompt }, (id) => {
      const u = updateUser(this.#d.db, req.account, { prompt: req.prompt }, this.#d.clock.now());
      return this.#view(u, id, this.#effectiveSession());
    });
  }

  setPairs(req: Signed & { pairs: string[] }, opts: ActionOptions = {}) {
    return this.#userAction("SetPairs", req, opts, { pairs: req.pairs }, (id) => {
      const phase = this.#d.runner.current.phase;
      if (phase !== "pre_session") {
        return { status: 409, error: "wrong_phase", message: `pairs can only be set in pre-session (now ${phase})`, field: "pairs" };
      }
      const known = this.#d.runner.market.pairs.map((p) => p.symbol);
      const bad = req.pairs.find((p) => !known.includes(p));
      if (bad !== undefined) {
        return { status: 400, error: "unknown_pair", message: `no pair ${bad} (pairs: ${known.join(", ")})`, field: `pairs.${req.pairs.indexOf(bad)}` };
      }
      const u = updateUser(this.#d.db, req.account, { pairs: req.pairs }, this.#d.clock.now());
      return this.#view(u, id, this.#d.runner.current.id);
    });
  }

  reprompt(req: Signed & { prompt: string }, opts: ActionOptions = {}) {
    return this.#userAction("Reprompt", req, opts, { prompt: req.prompt }, (id) => {
      const runner = this.#d.runner;
      const checked = runner.reprompt(id, req.account, req.prompt);
      if (!checked.ok) {
        const status = checked.code === "empty" || checked.code === "too_long" ? 400 : 409;
        return { status, error: checked.code, message: checked.message, field: checked.code === "not_participating" ? "account" : "prompt" };
      }
      const cur = runner.current;
      if (!recordReprompt(this.#d.db, cur.id, req.account, checked.prompt, this.#d.clock.now())) {
        return { status: 409, error: "reprompt_used", message: `the one re-prompt of session ${cur.id} was already used`, field: "prompt" };
      }
      runner.deliverReprompt(id, checked.prompt);
      const u = getUser(this.#d.db, req.account) ?? { address: req.account.toLowerCase(), brokerId: null, prompt: null, pairs: null, updatedAt: 0 };
      return this.#view({ ...u, prompt: checked.prompt }, id, cur.id);
    });
  }

  async withdrawalPermit(req: Signed & { token: Address; amount: string }, opts: ActionOptions = {}): Promise<ActionOutcome<PermitView>> {
    const auth = await this.#authorize("WithdrawalRequest", { account: req.account, token: req.token, amount: BigInt(req.amount) }, req, opts);
    if (auth !== null) return { ok: false, refusal: auth };
    const id = this.#registered(req.account);
    if (typeof id !== "number") return { ok: false, refusal: id };
    const count = (status: number) => this.#d.metrics.actions.inc({ action: "WithdrawalRequest", status: String(status) });
    const chain = this.#d.chain;
    const amount = BigInt(req.amount);
    const db = this.#d.db;
    let reserved: ReturnType<SessionRunner["reserveWithdrawal"]>;
    try {
      // Reserved in the pit (journaled) before signing, so a signed permit always has its amount
      // set aside; the nonce is consumed in the same transaction.
      reserved = this.#d.runner.reserveWithdrawal(id, req.token, amount, () => {
        if (!useNonce(db, req.account, req.nonce, Number(req.expiry))) {
          throw { status: 401, error: "replayed_nonce", message: `nonce ${req.nonce} was already used by ${req.account}`, field: "nonce" } satisfies Refusal;
        }
      });
    } catch (err) {
      if (typeof err === "object" && err !== null && "status" in err) {
        count(401);
        return { ok: false, refusal: err as Refusal };
      }
      throw err;
    }
    if (!reserved.ok) {
      count(reserved.status);
      return refusal(reserved.status, reserved.code, reserved.message, reserved.field);
    }
    const { sessionId, token, seq } = reserved;
    const nonce = (BigInt(sessionId) << 64n) | BigInt(seq);
    const deadline = Number(await chain!.permits.deadline(Math.floor(this.#d.clock.now() / 1000), 3600));
    const signature = await chain!.permits.sign({ account: getAddress(req.account), token: token.address, amount, sessionId, nonce, deadline: BigInt(deadline) });
    durable(db, () => putPermit(db, { address: req.account, nonce: nonce.toString(), sessionId, tokenIndex: token.index, amount, deadline, signature, status: "open" }));
    count(200);
    return {
      ok: true,
      value: {
        account: getAddress(req.account),
        token: token.address,
        amount: amount.toString(),
        sessionId,
        nonce: nonce.toString(),
        deadline,
        signature,
        vault: this.#d.deployment.vault,
      },
    };
  }

  /** The address that signs admin requests. */
  settler(): Address {
    return this.#d.chain?.clients.settler.address ?? this.#d.deployment.settler;
  }

  async adminSettle(req: Omit<Signed, "account"> & { sessionId: number }, opts: ActionOptions = {}): Promise<ActionOutcome<SettlementWire>> {
    const settler = this.settler();
    const auth = await this.#authorize("Admin", { action: "settle", sessionId: req.sessionId }, { ...req, account: settler }, opts, settler);
    if (auth !== null) return { ok: false, refusal: auth };
    const rec = getSession(this.#d.db, req.sessionId);
    if (rec === undefined) return refusal(404, "unknown_session", `no session ${req.sessionId}`, "sessionId");
    if (rec.phase !== "settling" && rec.phase !== "settled") {
      return refusal(409, "wrong_phase", `session ${req.sessionId} is ${rec.phase}; settlement starts after closing`, "sessionId");
    }
    useNonce(this.#d.db, settler, req.nonce, Number(req.expiry));
    const progress = await this.#d.runner.settle(req.sessionId);
    return { ok: true, value: progress };
  }
}
