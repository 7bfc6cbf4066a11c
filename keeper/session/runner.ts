// The session runner: pre_session -> trading -> closing -> settling -> (next session), on the
// configured clock, with the on-chain steps (startSession, beginSettlement, batches, finalize) in
// between. Every phase change is stored before it takes effect and every engine command is
// journaled before it is applied, so `start()` after a crash resumes from the store: it replays
// the journal to rebuild the book and inventories, then carries on with the phase it was in.
import type { Address } from "viem";
import { encodeFunctionData, getAddress } from "viem";
import type { KeeperConfig } from "../config.ts";
import type { Db } from "../store/database.ts";
import { durable, transaction } from "../store/database.ts";
import { Journal } from "../store/journal.ts";
import { getSession, latestSession, putSession, type Phase, type SessionRecord } from "../store/sessions.ts";
import { accountIdOf, addressOf, getBalance, getCursor, listBalances, putAccount, setBalance, setCursor } from "../store/ledger.ts";
import { getSettlement, putPlan } from "../settlement/store.ts";
import { listReprompts, listUsers, getReprompt } from "../store/users.ts";
import { markPermit, openPermits } from "../store/permits.ts";
import { putFillLog, putTopPrompts } from "../store/published.ts";
import type { Deployment, TokenInfo } from "../chain/deployment.ts";
import type { ChainClients } from "../chain/client.ts";
import type { TxSender } from "../chain/tx-sender.ts";
import type { VaultEvent, VaultWatcher } from "../chain/watcher.ts";
import type { PermitSigner } from "../chain/permit-signer.ts";
import { vaultAbi } from "../chain/vault-abi.ts";
import type { Clock, TimerHandle } from "../executor/clock.ts";
import type { StreamHub } from "../stream/hub.ts";
import type { Metrics } from "../ops/metrics.ts";
import { buildMarket, type PairMeta } from "./pairs.ts";
import { buildPlan } from "../settlement/plan.ts";
import { progressOf, readOnChainSession, runSettlement, type SettlementProgress } from "../settlement/submit.ts";
import { SessionPit } from "./pit.ts";
import type { EngineConfig } from "../core/types.ts";

export interface Logger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  error(o: object, m?: string): void;
  debug(o: object, m?: string): void;
}

export interface ChainPorts {
  clients: ChainClients;
  sender: TxSender;
  watcher: VaultWatcher;
  permits: PermitSigner;
}

/** A user taking part in a session: fixed when trading starts (changes apply to the next session). */
export interface Participant {
  accountId: number;
  address: string;
  brokerId: string;
  prompt: string;
  pairs: string[];
}

/** The executor's session loop, as the runner drives it. */
export interface SessionLoop {
  start(): void;
  stop(): Promise<void>;
  reprompt(user: number, prompt: string): void;
}

export type LoopFactory = (ctx: { pit: SessionPit; participants: Participant[]; sessionId: number; endsAt: number }) => SessionLoop;

export interface RunnerDeps {
  config: KeeperConfig;
  db: Db;
  deployment: Deployment;
  chain: ChainPorts | null;
  hub: StreamHub;
  metrics: Metrics;
  log: Logger;
  clock: Clock;
  createLoop?: LoopFactory;
  /** Test hook (CME_CRASH_AT): kills the process at a named point. */
  crash: (point: string) => void;
}

export class SessionRunner {
  readonly journal: Journal;
  current!: SessionRecord;
  pit: SessionPit | null = null;
  market!: { engine: EngineConfig; pairs: PairMeta[] };
  participants: Participant[] = [];
  treasuryId = 0;
  insuranceId = 0;
  readonly #d: RunnerDeps;
  #timer: TimerHandle | undefined;
  #pnlTimer: NodeJS.Timeout | undefined;
  #loop: SessionLoop | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #settling: Promise<SettlementProgress> | null = null;
  #stopped = false;
  readonly tokensByAddress: Map<string, TokenInfo>;
  readonly tokensByIndex: Map<number, TokenInfo>;

  constructor(deps: RunnerDeps) {
    this.#d = deps;
    this.journal = new Journal(deps.db);
    this.tokensByAddress = new Map(deps.deployment.tokens.map((t) => [t.address.toLowerCase(), t]));
    this.tokensByIndex = new Map(deps.deployment.tokens.map((t) => [t.index, t]));
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    const { chain, db, deployment } = this.#d;
    if (chain !== null) {
      if (getCursor(db) === undefined) setCursor(db, BigInt(deployment.startBlock) - 1n);
      await chain.sender.reconcile();
      await chain.watcher.poll();
      chain.watcher.start();
    }
    this.treasuryId = await this.#accountId(deployment.treasury);
    this.insuranceId = await this.#accountId(deployment.insurance);
    await this.#enqueue(() => this.#resume());
    this.#pnlTimer = setInterval(() => this.#publishPnl(), 1_000);
    this.#pnlTimer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    if (this.#pnlTimer !== undefined) clearInterval(this.#pnlTimer);
    this.#d.chain?.watcher.stop();
    await this.#loop?.stop();
    this.#loop = null;
    await this.#queue.catch(() => {});
  }

  /** Phase transitions run one at a time, in order. */
  #enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch((err) => {
      this.#d.metrics.errors.inc({ where: "runner" });
      this.#d.log.error({ err }, "session runner step failed");
      // Retry the step later rather than leave the session stuck.
      if (!this.#stopped) this.#schedule(5_000);
    });
    return run;
  }

  async #accountId(address: Address): Promise<number> {
    const known = accountIdOf(this.#d.db, address);
    if (known !== undefined) return known;
    if (this.#d.chain === null) throw new Error(`account ${address} is not registered`);
    const id = await this.#d.chain.clients.publicClient.readContract({
      address: this.#d.deployment.vault,
      abi: vaultAbi,
      functionName: "accountIdOf",
      args: [address],
    });
    if (id === 0) throw new Error(`account ${address} is not registered in the vault`);
    return id;
  }

  async #resume(): Promise<void> {
    const rec = latestSession(this.#d.db);
    if (rec === undefined || rec.phase === "settled") {
      await this.#newSession(rec === undefined ? undefined : rec.id);
      return;
    }
    this.current = rec;
    this.market = buildMarket(this.#d.deployment, this.#d.config.referencePrices, { treasury: this.treasuryId, insurance: this.insuranceId }, rec.id);
    if (rec.phase !== "pre_session") {
      this.participants = (rec.info.participants as Participant[] | undefined) ?? [];
      this.#rebuildPit();
    }
    this.#d.log.info({ sessionId: rec.id, phase: rec.phase, journal: this.journal.count(rec.id) }, "resuming session");
    this.#announce();
    if (rec.phase === "trading") this.#startLoop();
    if (rec.phase === "settling") {
      void this.settle(rec.id).catch(() => {});
      return;
    }
    this.#schedule();
  }

  async #newSession(previous: number | undefined): Promise<void> {
    let id = (previous ?? 0) + 1;
    if (this.#d.chain !== null) {
      const onChain = await this.#d.chain.clients.publicClient.readContract({
        address: this.#d.deployment.vault,
        abi: vaultAbi,
        functionName: "currentSessionId",
      });
      id = Math.max(id, onChain + 1);
    }
    const now = this.#d.clock.now();
    this.current = { id, phase: "pre_session", phaseStartedAt: now, phaseEndsAt: now + this.#d.config.preSessionSec * 1000, startBlock: null, info: {} };
    durable(this.#d.db, () => putSession(this.#d.db, this.current));
    this.market = buildMarket(this.#d.deployment, this.#d.config.referencePrices, { treasury: this.treasuryId, insurance: this.insuranceId }, id);
    this.pit = null;
    this.participants = [];
    this.#d.log.info({ sessionId: id, endsAt: new Date(this.current.phaseEndsAt!).toISOString() }, "pre-session open");
    this.#announce();
    this.#schedule();
  }

  #schedule(delayMs?: number): void {
    this.#timer?.cancel();
    if (this.#stopped) return;
    const ends = this.current?.phaseEndsAt;
    if (delayMs === undefined) {
      if (ends === null || ends === undefined) return;
      delayMs = ends - this.#d.clock.now();
    }
    this.#timer = this.#d.clock.setTimer(() => void this.#enqueue(() => this.#advance()).catch(() => {}), Math.max(0, delayMs));
  }

  async #advance(): Promise<void> {
    if (this.#stopped) return;
    switch (this.current.phase) {
      case "pre_session":
        if (!this.#d.config.autoSessions && this.current.info.manualStart !== true) {
          // Held: an operator starts trading by hand (not used by the demo).
          this.#schedule(1_000);
          return;
        }
        return this.#startTrading();
      case "trading":
        return this.#endTrading();
      case "closing":
        return this.#close();
      case "settling":
        await this.settle(this.current.id);
        return;
      case "settled":
        return this.#newSession(this.current.id);
    }
  }

  // ---------------------------------------------------------------- phases

  async #startTrading(): Promise<void> {
    const { chain, config, db, deployment } = this.#d;
    const id = this.current.id;
    let startBlock = 0;
    if (chain !== null) {
      chain.watcher.hold(getCursor(db) ?? 0n);
      const onChain = await readOnChainSession(chain.clients.publicClient, deployment.vault, id);
      if (onChain.phase === "none") {
        const deadline = BigInt(Math.floor(this.#d.clock.now() / 1000) + config.tradingSec + config.closingSec + config.settlementWindowSec);
        const tx = await chain.sender.send(
          `session:${id}:start`,
          deployment.vault,
          encodeFunctionData({ abi: vaultAbi, functionName: "startSession", args: [id, deadline] }),
        );
        startBlock = tx.block;
      } else {
        const row = chain.sender.status(`session:${id}:start`);
        startBlock = row?.block ?? Number(await chain.clients.publicClient.getBlockNumber());
      }
      // Balances up to the start block are the opening snapshot; later deposits are in-session credits.
      chain.watcher.hold(BigInt(startBlock));
      await chain.watcher.syncTo(BigInt(startBlock));
    }
    const users = listUsers(db);
    const participants: Participant[] = [];
    const allPairs = this.market.pairs.map((p) => p.symbol);
    for (const u of users) {
      if (u.brokerId === null) continue;
      const accountId = accountIdOf(db, u.address);
      if (accountId === undefined) continue;
      participants.push({
        accountId,
        address: u.address,
        brokerId: u.brokerId,
        prompt: u.prompt ?? "",
        pairs: (u.pairs ?? allPairs).filter((p) => allPairs.includes(p)),
      });
    }
    const now = this.#d.clock.now();
    const opening = listBalances(db).filter((b) => this.market.engine.assets.some((a) => a.id === b.tokenIndex));
    const pit = this.#newPit();
    transaction(db, () => {
      for (const b of opening) pit.apply({ type: "deposit", user: b.accountId, asset: b.tokenIndex, amount: b.balance });
      pit.apply({ type: "start_trading" });
      this.current = {
        id,
        phase: "trading",
        phaseStartedAt: now,
        phaseEndsAt: now + config.tradingSec * 1000,
        startBlock,
        info: { participants, opening: opening.map((b) => ({ accountId: b.accountId, tokenIndex: b.tokenIndex, amount: b.balance })) },
      };
      putSession(db, this.current);
    });
    this.pit = pit;
    this.participants = participants;
    chain?.watcher.hold(null);
    this.#d.log.info({ sessionId: id, participants: participants.length, startBlock }, "trading started");
    this.#announce();
    this.#startLoop();
    this.#schedule();
  }

  async #endTrading(): Promise<void> {
    await this.#loop?.stop();
    this.#loop = null;
    const now = this.#d.clock.now();
    const pit = this.#requirePit();
    transaction(this.#d.db, () => {
      pit.apply({ type: "end_trading" });
      this.current = { ...this.current, phase: "closing", phaseStartedAt: now, phaseEndsAt: now + this.#d.config.closingSec * 1000 };
      putSession(this.#d.db, this.current);
    });
    this.#d.log.info({ sessionId: this.current.id }, "trading ended: orders cancelled, closing");
    this.#announce();
    this.#schedule();
  }

  async #close(): Promise<void> {
    const { db, config, deployment } = this.#d;
    const pit = this.#requirePit();
    const id = this.current.id;
    let settlement = pit.settlement();
    if (settlement === undefined) {
      pit.apply({ type: "settle" });
      settlement = pit.settlement();
    }
    if (settlement === undefined) throw new Error(`session ${id}: the engine produced no settlement`);
    const opening = (this.current.info.opening as { accountId: number; tokenIndex: number; amount: bigint }[] | undefined) ?? [];
    const { plan, fillLog, fillLogHash } = buildPlan({
      chainId: config.chainId,
      vault: deployment.vault,
      sessionId: id,
      treasury: this.treasuryId,
      pairs: this.market.pairs,
      openingBalances: opening,
      events: pit.fillLogEvents(),
      deltas: settlement.deltas,
      maxEntriesPerBatch: config.batchEntries,
    });
    const now = this.#d.clock.now();
    durable(db, () => {
      putPlan(db, plan, now);
      putFillLog(db, id, fillLog, fillLogHash);
      this.current = { ...this.current, phase: "settling", phaseStartedAt: now, phaseEndsAt: null };
      putSession(db, this.current);
    });
    this.#d.log.info({ sessionId: id, deltas: plan.deltas.length, batches: plan.batches.length, fillLogHash }, "session closed: settlement planned");
    this.#announce();
    void this.settle(id).catch(() => {});
  }

  /** Runs or resumes settlement of `sessionId` (also the operator's and the admin route's entry). */
  settle(sessionId: number): Promise<SettlementProgress> {
    if (this.#settling !== null) return this.#settling;
    const run = (async () => {
      const rec = getSession(this.#d.db, sessionId);
      if (rec === undefined) throw new Error(`no session ${sessionId}`);
      if (rec.phase !== "settling" && rec.phase !== "settled") throw new Error(`session ${sessionId} is ${rec.phase}, not settling`);
      const chain = this.#d.chain;
      let progress: SettlementProgress;
      if (chain === null) {
        progress = { ...progressOf(this.#d.db, sessionId, null), status: "finalized" };
      } else {
        progress = await runSettlement(
          {
            db: this.#d.db,
            client: chain.clients.publicClient,
            vault: this.#d.deployment.vault,
            sender: chain.sender,
            onProgress: (p) => this.#d.hub.publish("settlement", p),
            crash: this.#d.crash,
            log: this.#d.log,
          },
          sessionId,
        );
        // The ledger learns the new balances from the vault's SessionFinalized event.
        await chain.watcher.poll();
      }
      if (rec.phase === "settling") await this.#enqueue(async () => this.#finishSession(sessionId));
      return progress;
    })();
    this.#settling = run;
    return run.finally(() => {
      this.#settling = null;
    });
  }

  async #finishSession(sessionId: number): Promise<void> {
    if (this.current.id !== sessionId || this.current.phase !== "settling") return;
    const pit = this.pit;
    const settlement = pit?.settlement();
    if (settlement !== undefined) {
      const byUser = new Map(this.participants.map((p) => [p.accountId, p]));
      const rows = settlement.top10
        .map((e) => ({ e, p: byUser.get(e.user) }))
        .filter((x): x is { e: (typeof settlement.top10)[number]; p: Participant } => x.p !== undefined)
        .map(({ e, p }, i) => {
          const re = getReprompt(this.#d.db, sessionId, p.address);
          return {
            rank: i + 1,
            address: p.address,
            brokerId: p.brokerId,
            prompt: re === undefined ? p.prompt : `${p.prompt}\n\nRe-prompt: ${re.prompt}`,
            pnl: e.pnl.toString(),
          };
        });
      durable(this.#d.db, () => putTopPrompts(this.#d.db, sessionId, rows));
    }
    const now = this.#d.clock.now();
    this.current = { ...this.current, phase: "settled", phaseStartedAt: now, phaseEndsAt: now };
    durable(this.#d.db, () => putSession(this.#d.db, this.current));
    this.#d.log.info({ sessionId }, "session settled");
    this.#announce();
    if (this.#d.config.autoSessions) this.#schedule(0);
  }

  // ---------------------------------------------------------------- the pit

  #newPit(): SessionPit {
    return new SessionPit({
      config: this.market.engine,
      pairs: this.market.pairs,
      sessionId: this.current.id,
      journal: this.journal,
      clock: this.#d.clock,
      hub: this.#d.hub,
      metrics: this.#d.metrics,
      phase: () => ({
        sessionId: this.current.id,
        phase: this.current.phase === "settled" ? "settling" : this.current.phase,
        endsAtMs: this.current.phaseEndsAt ?? this.#d.clock.now(),
      }),
      addressOf: (id) => addressOf(this.#d.db, id),
      brokerOf: (id) => this.participants.find((p) => p.accountId === id)?.brokerId ?? null,
    });
  }

  #rebuildPit(): void {
    const pit = this.#newPit();
    let n = 0;
    for (const entry of this.journal.read<unknown>(this.current.id)) {
      pit.replay(entry.command);
      n++;
    }
    this.pit = pit;
    this.#d.log.info({ sessionId: this.current.id, commands: n, stateHash: pit.stateHash() }, "pit rebuilt from the journal");
  }

  #requirePit(): SessionPit {
    if (this.pit === null) this.#rebuildPit();
    return this.pit!;
  }

  #startLoop(): void {
    if (this.#d.createLoop === undefined || this.pit === null) return;
    this.#loop = this.#d.createLoop({ pit: this.pit, participants: this.participants, sessionId: this.current.id, endsAt: this.current.phaseEndsAt ?? 0 });
    for (const r of listReprompts(this.#d.db, this.current.id)) {
      const id = accountIdOf(this.#d.db, r.address);
      if (id !== undefined) this.#loop.reprompt(id, r.prompt);
    }
    this.#loop.start();
    if (this.#d.config.crashAt === "mid-trading") {
      this.#d.clock.setTimer(() => this.#d.crash("mid-trading"), (this.#d.config.tradingSec * 1000) / 2);
    }
  }

  /** Hands a re-prompt to the running executor (already stored and limited to one by the caller). */
  reprompt(accountId: number, prompt: string): void {
    this.#loop?.reprompt(accountId, prompt);
  }

  // ---------------------------------------------------------------- chain events

  /** Folds vault events into the ledger and, during a session, into the pit: called by the watcher. */
  applyVaultEvents(events: VaultEvent[], toBlock: bigint): void {
    const db = this.#d.db;
    transaction(db, () => {
      for (const ev of events) this.#applyVaultEvent(ev);
      setCursor(db, toBlock);
    });
    this.#d.metrics.chainBlock.set(Number(toBlock));
  }

  #applyVaultEvent(ev: VaultEvent): void {
    const db = this.#d.db;
    switch (ev.kind) {
      case "account":
        putAccount(db, ev.accountId, ev.address, ev.block);
        return;
      case "deposit": {
        const token = this.tokensByAddress.get(ev.token.toLowerCase());
        const accountId = accountIdOf(db, ev.address);
        if (token === undefined || accountId === undefined) return;
        setBalance(db, accountId, token.index, ev.balance);
        const pit = this.pit;
        const cur = this.current;
        if (
          pit !== null &&
          cur !== undefined &&
          (cur.phase === "trading" || cur.phase === "closing") &&
          cur.startBlock !== null &&
          ev.block > cur.startBlock &&
          pit.settlement() === undefined &&
          this.market.engine.assets.some((a) => a.id === token.index)
        ) {
          pit.apply({ type: "deposit", user: accountId, asset: token.index, amount: ev.amount });
          this.#d.log.info({ accountId, token: token.symbol, amount: ev.amount.toString() }, "in-session deposit credited");
        }
        return;
      }
      case "withdraw": {
        const token = this.tokensByAddress.get(ev.token.toLowerCase());
        const accountId = accountIdOf(db, ev.address);
        if (token === undefined || accountId === undefined) return;
        setBalance(db, accountId, token.index, ev.balance);
        if (ev.sessionId !== 0) {
          // A permit withdrawal: the pit debited the amount when the permit was signed.
          for (const p of openPermits(db, ev.sessionId)) {
            if (p.address === ev.address.toLowerCase() && p.tokenIndex === token.index && p.amount === ev.amount) {
              markPermit(db, p.address, p.nonce, "used");
              break;
            }
          }
        }
        return;
      }
      case "finalized": {
        const rec = getSettlement(db, ev.sessionId);
        if (rec === undefined) {
          this.#d.log.warn({ sessionId: ev.sessionId }, "a session this keeper did not settle was finalized; balances refresh on the next event");
          return;
        }
        for (const d of rec.plan.deltas) setBalance(db, d.accountId, d.tokenIndex, getBalance(db, d.accountId, d.tokenIndex) + d.delta);
        return;
      }
      case "voided":
        this.#d.log.warn({ sessionId: ev.sessionId }, "session voided on-chain");
        return;
    }
  }

  // ---------------------------------------------------------------- stream

  #announce(): void {
    this.#d.metrics.phase.values.clear();
    this.#d.metrics.phase.set(1, { phase: this.current.phase });
    this.#d.hub.publish("phase", { session: this.sessionView() });
  }

  #publishPnl(): void {
    if (this.pit === null || this.#d.hub.size === 0) return;
    this.#d.hub.publish("pnl", { rows: this.pit.leaderboardView(this.participants) });
  }

  sessionView() {
    const c = this.current;
    const cfg = this.#d.config;
    return {
      id: c.id,
      phase: c.phase as Phase,
      phaseStartedAt: c.phaseStartedAt,
      phaseEndsAt: c.phaseEndsAt,
      serverTime: this.#d.clock.now(),
      chainId: cfg.chainId,
      vault: this.#d.deployment.vault,
      durations: { preSessionSec: cfg.preSessionSec, tradingSec: cfg.tradingSec, closingSec: cfg.closingSec },
      tokens: this.#d.deployment.tokens.map((t) => ({ symbol: t.symbol, address: getAddress(t.address), decimals: t.decimals, index: t.index })),
      pairs: this.market.pairs.map((p) => ({
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
        takerFeeBps: this.market.engine.fees.takerBps,
        makerFeeBps: this.market.engine.fees.makerBps,
      })),
    };
  }
}
