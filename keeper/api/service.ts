// The keeper service behind the HTTP/WS surface: signed user actions (verify, check the phase,
// apply and consume the nonce in one database transaction), public reads served from views the
// pit caches between commands, and the stream hub. The session itself runs in SessionRunner.
import type { Address } from "viem";
import { getAddress, isAddress } from "viem";
import type { KeeperConfig } from "../config.ts";
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
import type { ActionOptions, ActionOutcome, KeeperPort, PermitView, Refusal, Signed, StreamClient, UserSettingsView } from "./port.ts";
import type { Deployment } from "../chain/deployment.ts";
import { readOnChainSession, progressOf, type SettlementProgress } from "../settlement/submit.ts";
import type { SessionRunner } from "../session/runner.ts";
import type { StreamHub } from "../stream/hub.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { CatalogueEntry } from "../brokers/catalogue.ts";
import { publicEntry } from "../brokers/catalogue.ts";
import type { Clock } from "../executor/clock.ts";
import type { ChainPorts } from "../session/runner.ts";

export interface KeeperServiceDeps {
  config: KeeperConfig;
  db: Db;
  deployment: Deployment;
  runner: SessionRunner;
  hub: StreamHub;
  metrics: Metrics;
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
  #outcry: { account: string; accountId: number; broker: string; line: string; ts: number }[] = [];
  #lastPrune = 0;

  constructor(deps: KeeperServiceDeps) {
    this.#d = deps;
    this.#domain = keeperDomain(deps.config.chainId, deps.deployment.vault);
  }

  // ---------------------------------------------------------------- reads

  session() {
    return this.#d.runner.sessionView();
  }

  #outcryCount = 0;

  readVersion(): string {
    const r = this.#d.runner;
    return `${r.current?.id}:${r.current?.phase}:${r.pit?.version ?? 0}:${this.#outcryCount}`;
  }

  #pair(symbol: string) {
    return this.#d.runner.market.pairs.find((p) => p.symbol === symbol);
  }

  book(pair: string, levels: number) {
    const meta = this.#pair(pair);
    if (meta === undefined) return undefined;
    const pit = this.#d.runner.pit;
    if (pit === null) return { pair, bids: [], asks: [], mid: null, mark: null, midDisplay: null, ts: this.#d.clock.now() };
    return pit.bookView(meta.id, levels);
  }

  trades(pair: string, limit: number) {
    const meta = this.#pair(pair);
    if (meta === undefined) return undefined;
    return this.#d.runner.pit?.tradesView(meta.id, limit) ?? [];
  }

  outcry(limit: number) {
    return this.#outcry.slice(-limit).reverse();
  }

  /** Outcry lines recorded since the keeper started (the API thread's feed follows it). */
  get outcryCount(): number {
    return this.#outcryCount;
  }

  /** Called by the executor for each broker reply's shouted line. */
  recordOutcry(accountId: number, broker: string, line: string): void {
    if (line.trim() === "") return;
    const p = this.#d.runner.participants.find((x) => x.accountId === accountId);
    const entry = { account: p?.address ?? "", accountId, broker, line: line.slice(0, 280), ts: this.#d.clock.now() };
    this.#outcry.push(entry);
    this.#outcryCount++;
    if (this.#outcry.length > 1_000) this.#outcry = this.#outcry.slice(-500);
    this.#d.hub.publish("outcry", entry);
  }

  leaderboard() {
    const pit = this.#d.runner.pit;
    return pit === null ? [] : pit.leaderboardView(this.#d.runner.participants);
  }

  topPrompts() {
    return listTopPrompts(this.#d.db, 5).map((t) => ({ sessionId: t.sessionId, rank: t.rank, account: t.address, brokerId: t.brokerId, prompt: t.prompt, pnl: t.pnl }));
  }

  brokers() {
    return this.#d.catalogue.map((e) => ({ ...publicEntry(e), name: e.displayName }));
  }

  account(address: string) {
    const db = this.#d.db;
    const runner = this.#d.runner;
    const accountId = accountIdOf(db, address) ?? null;
    const user = getUser(db, address);
    const pit = runner.pit;
    const view = accountId === null || pit === null ? null : pit.accountView(accountId);
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

  async settlement(sessionId: number): Promise<SettlementProgress | undefined> {
    if (getSession(this.#d.db, sessionId) === undefined) return undefined;
    const chain = this.#d.chain;
    const onChain = chain === null ? null : await readOnChainSession(chain.clients.publicClient, this.#d.deployment.vault, sessionId);
    return progressOf(this.#d.db, sessionId, onChain);
  }

  domain() {
    return this.#domain;
  }

  health() {
    const runner = this.#d.runner;
    return {
      ok: runner.current !== undefined,
      phase: runner.current?.phase ?? "starting",
      sessionId: runner.current?.id ?? 0,
      chainBlock: (() => {
        const c = getCursor(this.#d.db);
        return c === undefined ? null : Number(c);
      })(),
      journalSeq: runner.pit?.seq ?? 0,
      wsClients: this.#d.hub.size,
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
    return this.#d.hub.add(client);
  }

  /** The hello snapshot a new subscriber gets first. */
  hello() {
    const runner = this.#d.runner;
    if (runner.current === undefined) return { serverTime: this.#d.clock.now() };
    const books: Record<string, unknown> = {};
    const trades: Record<string, unknown> = {};
    for (const p of runner.market.pairs) {
      books[p.symbol] = this.book(p.symbol, 10);
      trades[p.symbol] = this.trades(p.symbol, 50);
    }
    return { session: this.session(), books, trades, outcry: this.outcry(50), leaderboard: this.leaderboard(), serverTime: this.#d.clock.now() };
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

  async #userAction(
    type: ActionType,
    req: Signed,
    opts: ActionOptions,
    message: Record<string, unknown>,
    apply: (accountId: number) => Refusal | UserSettingsView,
  ): Promise<ActionOutcome<UserSettingsView>> {
    const auth = await this.#authorize(type, { account: req.account, ...message }, req, opts);
    if (auth !== null) return { ok: false, refusal: auth };
    const id = this.#registered(req.account);
    if (typeof id !== "number") return { ok: false, refusal: id };
    const db = this.#d.db;
    let out: Refusal | UserSettingsView;
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
      const cur = runner.current;
      if (cur.phase !== "trading") {
        return { status: 409, error: "wrong_phase", message: `re-prompts are only taken while trading (now ${cur.phase})`, field: "prompt" };
      }
      if (!runner.participants.some((p) => p.accountId === id)) {
        return { status: 409, error: "not_participating", message: `${req.account} has no broker in session ${cur.id}`, field: "account" };
      }
      if (!recordReprompt(this.#d.db, cur.id, req.account, req.prompt, this.#d.clock.now())) {
        return { status: 409, error: "reprompt_used", message: `the one re-prompt of session ${cur.id} was already used`, field: "prompt" };
      }
      runner.reprompt(id, req.prompt);
      const u = getUser(this.#d.db, req.account) ?? { address: req.account.toLowerCase(), brokerId: null, prompt: null, pairs: null, updatedAt: 0 };
      return this.#view({ ...u, prompt: req.prompt }, id, cur.id);
    });
  }

  async withdrawalPermit(req: Signed & { token: Address; amount: string }, opts: ActionOptions = {}): Promise<ActionOutcome<PermitView>> {
    const auth = await this.#authorize("WithdrawalRequest", { account: req.account, token: req.token, amount: BigInt(req.amount) }, req, opts);
    if (auth !== null) return { ok: false, refusal: auth };
    const id = this.#registered(req.account);
    if (typeof id !== "number") return { ok: false, refusal: id };
    const runner = this.#d.runner;
    const cur = runner.current;
    const count = (status: number) => this.#d.metrics.actions.inc({ action: "WithdrawalRequest", status: String(status) });
    if (cur.phase !== "trading") {
      count(409);
      const hint = cur.phase === "pre_session" || cur.phase === "settled" ? ": no session is running, withdraw directly from the vault" : "";
      return refusal(409, "wrong_phase", `withdrawal permits are only signed while trading (now ${cur.phase})${hint}`, "token");
    }
    const token = runner.tokensByAddress.get(req.token.toLowerCase());
    if (token === undefined || !runner.market.engine.assets.some((a) => a.id === token.index)) {
      count(400);
      return refusal(400, "unknown_token", `${req.token} is not a token traded in this session`, "token");
    }
    const chain = this.#d.chain;
    const pit = runner.pit;
    if (chain === null || pit === null) {
      count(503);
      return refusal(503, "unavailable", "the keeper has no chain connection to sign permits", "token");
    }
    const amount = BigInt(req.amount);
    const deadline = Math.floor(this.#d.clock.now() / 1000) + 3600;
    const nonce = (BigInt(cur.id) << 64n) | BigInt(pit.seq + 1);
    // Liabilities are checked on the read view first, so a refusal leaves no trace at all.
    if (pit.engine.account(id).positions.some((p) => p.units < 0)) {
      count(409);
      return refusal(409, "has_liabilities", `${req.account} owes the pit (a negative balance): no withdrawal until it is covered`, "account");
    }
    // Reserve in the pit (journaled) before signing, so a signed permit always has its amount set
    // aside. The command is journaled even if the engine refuses it (the journal holds refusals too).
    const db = this.#d.db;
    let result: ReturnType<typeof pit.apply>;
    try {
      result = transaction(db, () => {
        if (!useNonce(db, req.account, req.nonce, Number(req.expiry))) {
          throw { status: 401, error: "replayed_nonce", message: `nonce ${req.nonce} was already used by ${req.account}`, field: "nonce" } satisfies Refusal;
        }
        return pit.apply({ type: "withdraw", user: id, asset: token.index, amount });
      });
    } catch (err) {
      if (typeof err === "object" && err !== null && "status" in err) {
        count(401);
        return { ok: false, refusal: err as Refusal };
      }
      throw err;
    }
    if (!result.ok) {
      const status = result.reason === "bad_amount" || result.reason === "amount_too_large" ? 400 : 409;
      count(status);
      return refusal(status, result.reason, result.message, result.reason === "has_liabilities" ? "account" : "amount");
    }
    const signature = await chain.permits.sign({ account: getAddress(req.account), token: token.address, amount, sessionId: cur.id, nonce, deadline: BigInt(deadline) });
    durable(db, () =>
      putPermit(db, { address: req.account, nonce: nonce.toString(), sessionId: cur.id, tokenIndex: token.index, amount, deadline, signature, status: "open" }),
    );
    count(200);
    return {
      ok: true,
      value: {
        account: getAddress(req.account),
        token: token.address,
        amount: amount.toString(),
        sessionId: cur.id,
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

  async adminSettle(req: Omit<Signed, "account"> & { sessionId: number }, opts: ActionOptions = {}): Promise<ActionOutcome<unknown>> {
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

export function isHexAddress(a: string): a is Address {
  return isAddress(a);
}
