// The session runner steps through the session lifecycle (core/phases.ts), one step at a time:
//   pre_session --start_trading--> trading --end_trading--> closing --close_out--> settling --finish--> settled
// with the on-chain steps (startSession, beginSettlement, batches, finalize) where they belong.
// Every phase change is stored before it takes effect and every engine command is journaled
// before it is applied, so `start()` after a crash resumes from the store: it replays the journal
// (checking the state hashes the journal recorded) to rebuild the book and inventories, then
// carries on with the phase it was in.
//
// Data flows one way: user actions reach the pit through the runner; the pit's commands feed the
// fill log and the executor; the close-out feeds settlement; settlement feeds the chain. What the
// outside should see leaves as events (`events`): phase changes, a new pit, outcry lines and
// settlement progress; the API turns them into the stream.
import { EventEmitter } from "node:events";
import type { Address } from "viem";
import { encodeFunctionData, getAddress } from "viem";
import type { Db } from "../store/database.ts";
import { durable, StorageError, transaction } from "../store/database.ts";
import { Journal } from "../store/journal.ts";
import { getSession, latestSession, putSession, type SessionRecord } from "../store/sessions.ts";
import { accountIdOf, addressOf, getBalance, getCursor, listBalances, putAccount, setBalance, setCursor } from "../store/ledger.ts";
import { getSettlement, putPlan } from "../settlement/store.ts";
import { listReprompts, listUsers, getReprompt } from "../store/users.ts";
import { markPermit, openPermits } from "../store/permits.ts";
import { putFillLog, putTopPrompts } from "../store/published.ts";
import type { Deployment, TokenInfo } from "../chain/deployment.ts";
import type { ChainClients } from "../chain/client.ts";
import type { TxSender } from "../chain/tx-sender.ts";
import { VaultWatcher, type ReorgInfo, type VaultEvent } from "../chain/watcher.ts";
import { isFinalError, retryUntil } from "../chain/retry.ts";
import { readVaultBalances } from "../chain/vault-balances.ts";
import type { PermitSigner } from "../chain/permit-signer.ts";
import { vaultAbi } from "../chain/vault-abi.ts";
import type { Clock, TimerHandle } from "../executor/clock.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { HealthRegistry } from "../ops/health.ts";
import { buildMarket, type PairMeta } from "./pairs.ts";
import { buildPlan } from "../settlement/plan.ts";
import type { FillLogRecorder } from "../settlement/recorder.ts";
import { chainTime, fastForwardTo, LOCAL_CHAIN_ID, progressOf, readOnChainSession, runSettlement, SettlementError, type SettlementProgress } from "../settlement/submit.ts";
import { JournalGapError, type SessionPit } from "./pit.ts";
import type { ExecutorPort } from "./executor-port.ts";
import { openPit, type OpenPit } from "./open-pit.ts";
import { OutcryFeed, type OutcryLine } from "./outcry.ts";
import { stepFrom, type SessionPhase, type SessionStep } from "../core/phases.ts";
import type { CommandResult, EngineConfig } from "../core/types.ts";
import { checkPrompt } from "../brokers/prompt-rules.ts";
import type { PitAllowance } from "./withdrawal.ts";

export interface Logger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  error(o: object, m?: string): void;
  debug(o: object, m?: string): void;
}

/** The chain as the runner uses it (null: no chain, for API tests). */
export interface ChainPorts {
  clients: ChainClients;
  sender: TxSender;
  permits: PermitSigner;
}

/** What the runner needs of the keeper's configuration. */
export interface RunnerConfig {
  chainId: number;
  confirmations: number;
  chainPollMs: number;
  preSessionSec: number;
  tradingSec: number;
  closingSec: number;
  /** How long after trading ends the vault waits before anyone may void the session. */
  settlementWindowSec: number;
  batchEntries: number;
  referencePrices: Record<string, string>;
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

export interface LoopContext {
  port: ExecutorPort;
  participants: Participant[];
  sessionId: number;
  endsAt: number;
  /** A broker's shouted line, for the outcry feed. */
  onOutcry(user: number, brokerId: string, line: string): void;
}

export type LoopFactory = (ctx: LoopContext) => SessionLoop;

export interface RunnerEvents {
  /** The session moved to a new phase (or a new session opened). */
  phase: [record: SessionRecord];
  /** A pit was built for the session (trading started, or rebuilt on resume). */
  pit: [pit: SessionPit];
  outcry: [line: OutcryLine];
  settlement: [progress: SettlementProgress];
}

export interface RunnerDeps {
  config: RunnerConfig;
  db: Db;
  deployment: Deployment;
  chain: ChainPorts | null;
  metrics: Metrics;
  /** Where settlement, the watcher and the journal report progress and stalls (/healthz). */
  health?: HealthRegistry;
  log: Logger;
  clock: Clock;
  createLoop?: LoopFactory;
}

export type RepromptOutcome = { ok: true; prompt: string } | { ok: false; code: "wrong_phase" | "not_participating" | "empty" | "too_long" | "reprompt_used"; message: string };

export type ReserveOutcome =
  | { ok: true; sessionId: number; token: TokenInfo; seq: number }
  | { ok: false; code: string; message: string; field: "token" | "amount" | "account"; status: 400 | 409 | 503 };

export class SessionRunner {
  readonly journal: Journal;
  readonly events = new EventEmitter<RunnerEvents>();
  readonly outcry = new OutcryFeed();
  current!: SessionRecord;
  pit: SessionPit | null = null;
  /** The session's fill log as it is recorded (null before trading). */
  fillLog: FillLogRecorder | null = null;
  /** The pit as the executor sees it (null before trading). */
  port: ExecutorPort | null = null;
  market!: { engine: EngineConfig; pairs: PairMeta[] };
  participants: Participant[] = [];
  /** Set when a chain reorg reached the running session: trading stopped, and why. */
  halted: string | null = null;
  treasuryId = 0;
  insuranceId = 0;
  readonly watcher: VaultWatcher | null;
  readonly #d: RunnerDeps;
  #timer: TimerHandle | undefined;
  #loop: SessionLoop | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #settling: Promise<SettlementProgress> | null = null;
  #stopped = false;
  /** Stops a settlement waiting out the vault's challenge window. */
  readonly #abort = new AbortController();
  readonly tokensByAddress: Map<string, TokenInfo>;
  readonly tokensByIndex: Map<number, TokenInfo>;

  constructor(deps: RunnerDeps) {
    this.#d = deps;
    this.journal = new Journal(deps.db);
    this.tokensByAddress = new Map(deps.deployment.tokens.map((t) => [t.address.toLowerCase(), t]));
    this.tokensByIndex = new Map(deps.deployment.tokens.map((t) => [t.index, t]));
    const chain = deps.chain;
    this.watcher =
      chain === null
        ? null
        : new VaultWatcher({
            client: chain.clients.publicClient,
            vault: deps.deployment.vault,
            confirmations: deps.config.confirmations,
            pollMs: deps.config.chainPollMs,
            cursor: () => getCursor(deps.db) ?? 0n,
            apply: (events, toBlock) => this.applyVaultEvents(events, toBlock),
            onError: (err) => {
              deps.metrics.errors.inc({ where: "watcher" });
              deps.log.warn({ err }, "chain watcher poll failed");
            },
            db: deps.db,
            log: deps.log,
            metrics: deps.metrics,
            ...(deps.health === undefined ? {} : { health: deps.health.component("watcher") }),
            onReorg: (r) => this.#onReorg(r),
          });
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    const { chain, db, deployment } = this.#d;
    if (chain !== null) {
      if (getCursor(db) === undefined) setCursor(db, BigInt(deployment.startBlock) - 1n);
      await chain.sender.reconcile();
    }
    this.treasuryId = await this.#accountId(deployment.treasury);
    this.insuranceId = await this.#accountId(deployment.insurance);
    // The pit is rebuilt before the watcher catches up, so a deposit mined while the keeper was
    // down during trading or closing is credited to the session it belongs to, once, in order.
    await this.#enqueue(() => this.#resume());
    if (chain !== null) {
      await this.watcher!.poll();
      this.watcher!.start();
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    this.#timer?.cancel();
    this.watcher?.stop();
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
      // Storage failures and a journal that cannot be replayed need the operator: retrying would
      // only repeat them. Anything else is retried rather than leave the session stuck.
      if (err instanceof StorageError || err instanceof JournalGapError) {
        this.#d.health?.component("journal").problem((err as Error).message);
        return;
      }
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

  #buildMarket(sessionId: number): void {
    this.market = buildMarket(this.#d.deployment, this.#d.config.referencePrices, { treasury: this.treasuryId, insurance: this.insuranceId }, sessionId);
  }

  async #resume(): Promise<void> {
    const rec = latestSession(this.#d.db);
    if (rec === undefined || rec.phase === "settled") {
      await this.#newSession(rec === undefined ? undefined : rec.id);
      return;
    }
    this.current = rec;
    this.#buildMarket(rec.id);
    if (rec.phase !== "pre_session") {
      this.participants = (rec.info.participants as Participant[] | undefined) ?? [];
      this.#rebuildPit();
    }
    this.#d.log.info({ sessionId: rec.id, phase: rec.phase, journal: this.journal.count(rec.id) }, "resuming session");
    this.#announce();
    if (rec.phase === "trading") this.#startLoop();
    if (rec.phase === "settling") {
      this.#settleInBackground(rec.id);
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
    this.#buildMarket(id);
    this.pit = null;
    this.fillLog = null;
    this.port = null;
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

  /** Takes the step that leaves the current phase (settled: the next session opens). */
  async #advance(): Promise<void> {
    if (this.#stopped || this.halted !== null) return;
    const step: SessionStep | null = stepFrom(this.current.phase);
    switch (step) {
      case "start_trading":
        return this.#startTrading();
      case "end_trading":
        return this.#endTrading();
      case "close_out":
        return this.#closeOut();
      case "finish":
        await this.settle(this.current.id);
        return;
      case null:
        return this.#newSession(this.current.id);
    }
  }

  #enter(phase: SessionPhase, now: number, durationSec: number | null, extra: Partial<SessionRecord> = {}): SessionRecord {
    return { ...this.current, ...extra, phase, phaseStartedAt: now, phaseEndsAt: durationSec === null ? null : now + durationSec * 1000 };
  }

  // ---------------------------------------------------------------- steps

  async #startTrading(): Promise<void> {
    const { chain, config, db, deployment } = this.#d;
    const id = this.current.id;
    let startBlock = 0;
    if (chain !== null) {
      const watcher = this.watcher!;
      // -- vault rule: no session starts within the withdrawal window after the last one ended.
      const waitMs = await this.#sessionGapWait(id);
      if (waitMs > 0) {
        this.#schedule(waitMs);
        return;
      }
      // --
      watcher.hold(getCursor(db) ?? 0n);
      const onChain = await readOnChainSession(chain.clients.publicClient, deployment.vault, id);
      if (onChain.phase === "none") {
        // The vault's clock, not ours: a local chain's may run ahead (fast-forwarded windows).
        const nowSec = Math.max(Math.floor(this.#d.clock.now() / 1000), await chainTime(chain.clients.publicClient));
        const deadline = BigInt(nowSec + config.tradingSec + config.closingSec + config.settlementWindowSec);
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
      watcher.hold(BigInt(startBlock));
      await watcher.syncTo(BigInt(startBlock));
    }
    const opening = (chain === null ? listBalances(db) : await this.#openingFromVault(BigInt(startBlock))).filter((b) =>
      this.market.engine.assets.some((a) => a.id === b.tokenIndex),
    );
    const participants = this.#participants();
    const now = this.#d.clock.now();
    const parts = this.#newPit();
    const pit = parts.pit;
    transaction(db, () => {
      for (const b of opening) pit.apply({ type: "deposit", user: b.accountId, asset: b.tokenIndex, amount: b.balance });
      pit.apply({ type: "start_trading" });
      this.current = this.#enter("trading", now, config.tradingSec, {
        startBlock,
        info: { participants, opening: opening.map((b) => ({ accountId: b.accountId, tokenIndex: b.tokenIndex, amount: b.balance })) },
      });
      putSession(db, this.current);
    });
    this.participants = participants;
    this.#install(parts);
    this.watcher?.hold(null);
    this.#d.log.info({ sessionId: id, participants: participants.length, startBlock }, "trading started");
    this.#announce();
    this.#startLoop();
    this.#schedule();
  }

  /**
   * The vault refuses startSession until `nextSessionAt` (ICMEVault: the withdrawal window after a
   * finalize or void). Returns how long to wait in ms (0: open). A local chain is fast-forwarded.
   */
  async #sessionGapWait(sessionId: number): Promise<number> {
    const client = this.#d.chain!.clients.publicClient;
    const vault = this.#d.deployment.vault;
    if ((await readOnChainSession(client, vault, sessionId)).phase !== "none") return 0;
    const opensAt = Number(await client.readContract({ address: vault, abi: vaultAbi, functionName: "nextSessionAt" }));
    const now = await chainTime(client);
    if (now >= opensAt) return 0;
    if (this.#d.config.chainId === LOCAL_CHAIN_ID) {
      const moved = await fastForwardTo(client, opensAt);
      this.#d.log.info({ sessionId, opensAt, movedSec: moved }, "local chain: moved the clock past the vault's withdrawal window");
      return 0;
    }
    this.#d.log.info({ sessionId, opensAt: new Date(opensAt * 1000).toISOString() }, "waiting for the vault's withdrawal window to close before starting the session");
    return (opensAt - now) * 1000 + 1_000;
  }

  /**
   * The vault's balances at the session's start block are the opening snapshot. Where the keeper's
   * own table disagrees (a missed or reorged event), the vault wins, the table is corrected and the
   * difference is logged loudly.
   */
  async #openingFromVault(startBlock: bigint): Promise<{ accountId: number; tokenIndex: number; balance: bigint }[]> {
    const { chain, db, deployment, log } = this.#d;
    const vault = await readVaultBalances(chain!.clients.publicClient, deployment.vault, deployment.tokens, startBlock);
    const mine = new Map(listBalances(db).map((b) => [`${b.accountId}/${b.tokenIndex}`, b.balance]));
    const differences: string[] = [];
    for (const b of vault) {
      const key = `${b.accountId}/${b.tokenIndex}`;
      if (mine.get(key) !== b.balance) differences.push(`${key}: keeper ${mine.get(key) ?? 0n}, vault ${b.balance}`);
      mine.delete(key);
    }
    for (const [key, balance] of mine) differences.push(`${key}: keeper ${balance}, vault 0`);
    if (differences.length > 0) {
      log.error({ startBlock: startBlock.toString(), differences: differences.slice(0, 20), count: differences.length }, "opening snapshot: the keeper's balances disagreed with the vault; using the vault's");
      transaction(db, () => {
        for (const key of mine.keys()) {
          const [accountId, tokenIndex] = key.split("/").map(Number);
          setBalance(db, accountId!, tokenIndex!, 0n);
        }
        for (const b of vault) {
          putAccount(db, b.accountId, b.address, Number(startBlock));
          setBalance(db, b.accountId, b.tokenIndex, b.balance);
        }
      });
    }
    return vault.map(({ accountId, tokenIndex, balance }) => ({ accountId, tokenIndex, balance }));
  }

  /** Everyone with a broker and a vault account; pairs default to all. */
  #participants(): Participant[] {
    const db = this.#d.db;
    const allPairs = this.market.pairs.map((p) => p.symbol);
    const out: Participant[] = [];
    for (const u of listUsers(db)) {
      if (u.brokerId === null) continue;
      const accountId = accountIdOf(db, u.address);
      if (accountId === undefined) continue;
      out.push({ accountId, address: u.address, brokerId: u.brokerId, prompt: u.prompt ?? "", pairs: (u.pairs ?? allPairs).filter((p) => allPairs.includes(p)) });
    }
    return out;
  }

  async #endTrading(): Promise<void> {
    await this.#loop?.stop();
    this.#loop = null;
    const now = this.#d.clock.now();
    const pit = this.#requirePit();
    transaction(this.#d.db, () => {
      pit.apply({ type: "end_trading" });
      this.current = this.#enter("closing", now, this.#d.config.closingSec);
      putSession(this.#d.db, this.current);
    });
    this.#d.log.info({ sessionId: this.current.id }, "trading ended: orders cancelled, closing");
    this.#announce();
    this.#schedule();
  }

  async #closeOut(): Promise<void> {
    const { db, config, deployment } = this.#d;
    const pit = this.#requirePit();
    const id = this.current.id;
    if (pit.reads.closeOut() === null) pit.apply({ type: "close_out" });
    const closeOut = pit.reads.closeOut();
    if (closeOut === null) throw new Error(`session ${id}: the engine produced no close-out`);
    const opening = (this.current.info.opening as { accountId: number; tokenIndex: number; amount: bigint }[] | undefined) ?? [];
    const { plan, fillLog, fillLogHash } = buildPlan({
      chainId: config.chainId,
      vault: deployment.vault,
      sessionId: id,
      treasury: this.treasuryId,
      pairs: this.market.pairs,
      openingBalances: opening,
      events: this.fillLog!.events(),
      deltas: closeOut.deltas,
      maxEntriesPerBatch: config.batchEntries,
    });
    const now = this.#d.clock.now();
    durable(db, () => {
      putPlan(db, plan, now);
      putFillLog(db, id, fillLog, fillLogHash);
      this.current = this.#enter("settling", now, null);
      putSession(db, this.current);
    });
    this.#d.log.info({ sessionId: id, deltas: plan.deltas.length, batches: plan.batches.length, fillLogHash }, "session closed out: settlement planned");
    this.#announce();
    this.#settleInBackground(id);
  }

  /**
   * Settlement is retried, with backoff and a log line per failure, until it is done or provably
   * impossible (a vault refusal, a plan the vault contradicts) or the settlement window is over.
   */
  #settleInBackground(sessionId: number): void {
    const h = this.#d.health?.component("settlement");
    h?.expect(true);
    void retryUntil(`session:${sessionId}:settle`, () => this.settle(sessionId), {
      deadlineMs: this.#d.config.settlementWindowSec * 1000,
      log: this.#d.log,
      metrics: this.#d.metrics,
      stopped: () => this.#stopped,
      ...(h === undefined ? {} : { health: h }),
      isFinal: (e) => isFinalError(e) || (e instanceof SettlementError && !/did not converge/.test(e.message)),
    }).then(
      () => h?.expect(false),
      (err) => {
        if (this.#stopped) return;
        this.#d.metrics.errors.inc({ where: "settlement" });
        this.#d.log.error({ err, sessionId }, "settlement stopped: run `npm run settle -- --session N` once the cause is fixed");
        h?.problem(`settlement of session ${sessionId} stopped: ${(err as Error).message}`);
      },
    );
  }

  /**
   * The chain reorganised below blocks the keeper had processed. The watcher has rewound its
   * cursor and will hand over what the new chain holds; balances touched by the reverted events
   * are re-read from the vault. If the current session's opening or its deposits were among them,
   * trading stops loudly: the pit may hold credits that no longer exist.
   */
  #onReorg(r: ReorgInfo): void {
    this.#d.metrics.errors.inc({ where: "reorg" });
    this.#d.log.error({ forkBlock: r.forkBlock.toString(), cursor: r.cursor.toString(), exact: r.exact, reverted: r.reverted.length }, "chain reorg: the watcher rewound");
    const cur = this.current;
    const live = cur.phase === "trading" || cur.phase === "closing";
    const startBlock = BigInt(cur.startBlock ?? 0);
    const touchesSession = r.forkBlock < startBlock || r.reverted.some((e) => BigInt(e.block) > startBlock);
    if (live && touchesSession && this.halted === null) {
      this.halted = `chain reorg back to block ${r.forkBlock} reached session ${cur.id}: trading halted; the session will be voided at its deadline unless an operator resumes it`;
      this.#timer?.cancel();
      void this.#loop?.stop();
      this.#loop = null;
      this.#d.health?.component("watcher").problem(this.halted);
      this.#d.log.error({ sessionId: cur.id }, this.halted);
    }
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
            onProgress: (p) => this.events.emit("settlement", p),
            log: this.#d.log,
            fastForward: this.#d.config.chainId === LOCAL_CHAIN_ID,
            signal: this.#abort.signal,
          },
          sessionId,
        );
        // The ledger learns the new balances from the vault's SessionFinalized event.
        await this.watcher!.poll();
      }
      if (rec.phase === "settling") await this.#enqueue(async () => this.#finish(sessionId));
      return progress;
    })();
    this.#settling = run;
    return run.finally(() => {
      this.#settling = null;
    });
  }

  async #finish(sessionId: number): Promise<void> {
    if (this.current.id !== sessionId || this.current.phase !== "settling") return;
    const closeOut = this.pit?.reads.closeOut() ?? null;
    if (closeOut !== null) {
      const byUser = new Map(this.participants.map((p) => [p.accountId, p]));
      const rows = closeOut.top10
        .map((e) => ({ e, p: byUser.get(e.user) }))
        .filter((x): x is { e: (typeof closeOut.top10)[number]; p: Participant } => x.p !== undefined)
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
    this.current = this.#enter("settled", now, 0);
    durable(this.#d.db, () => putSession(this.#d.db, this.current));
    this.#d.log.info({ sessionId }, "session settled");
    this.#announce();
    this.#schedule(0);
  }

  // ---------------------------------------------------------------- the pit

  #newPit(): OpenPit {
    return openPit({
      market: this.market,
      sessionId: this.current.id,
      journal: this.journal,
      clock: this.#d.clock,
      metrics: this.#d.metrics,
      log: this.#d.log,
      phase: () => ({
        sessionId: this.current.id,
        phase: this.current.phase === "settled" ? "settling" : this.current.phase,
        endsAtMs: this.current.phaseEndsAt ?? this.#d.clock.now(),
      }),
    });
  }

  #install(parts: OpenPit): void {
    this.pit = parts.pit;
    this.fillLog = parts.recorder;
    this.port = parts.port;
    this.events.emit("pit", parts.pit);
  }

  /** Replays the session's journal into a fresh pit; refuses a replay that misses a recorded state hash. */
  #rebuildPit(): void {
    const parts = this.#newPit();
    const n = parts.pit.replayJournal();
    this.#install(parts);
    const pit = parts.pit;
    this.#d.log.info({ sessionId: this.current.id, commands: n, stateHash: pit.stateHash() }, "pit rebuilt from the journal");
  }

  #requirePit(): SessionPit {
    if (this.pit === null) this.#rebuildPit();
    return this.pit!;
  }

  #startLoop(): void {
    if (this.#d.createLoop === undefined || this.port === null) return;
    this.#loop = this.#d.createLoop({
      port: this.port,
      participants: this.participants,
      sessionId: this.current.id,
      endsAt: this.current.phaseEndsAt ?? 0,
      onOutcry: (user, brokerId, line) => this.recordOutcry(user, brokerId, line),
    });
    for (const r of listReprompts(this.#d.db, this.current.id)) {
      const id = accountIdOf(this.#d.db, r.address);
      if (id !== undefined) this.#loop.reprompt(id, r.prompt);
    }
    this.#loop.start();
  }

  /** A broker's shouted line (the executor reports each reply's). */
  recordOutcry(accountId: number, broker: string, line: string): void {
    const p = this.participants.find((x) => x.accountId === accountId);
    const recorded = this.outcry.record({ account: p?.address ?? "", accountId, broker, line, ts: this.#d.clock.now() });
    if (recorded !== null) this.events.emit("outcry", recorded);
  }

  // ---------------------------------------------------------------- user actions

  /**
   * The user's one re-prompt of the session: checked by the prompt rule the executor applies,
   * recorded (the caller's transaction), then handed to the running executor. A refused re-prompt
   * is not spent.
   */
  reprompt(accountId: number, address: string, prompt: string): RepromptOutcome {
    const cur = this.current;
    if (cur.phase !== "trading") return { ok: false, code: "wrong_phase", message: `re-prompts are only taken while trading (now ${cur.phase})` };
    if (!this.participants.some((p) => p.accountId === accountId)) {
      return { ok: false, code: "not_participating", message: `${address} has no broker in session ${cur.id}` };
    }
    const checked = checkPrompt(prompt);
    if (!checked.ok) return { ok: false, code: checked.reason, message: checked.message };
    if (getReprompt(this.#d.db, cur.id, address) !== undefined) {
      return { ok: false, code: "reprompt_used", message: `the one re-prompt of session ${cur.id} was already used` };
    }
    return { ok: true, prompt: checked.text };
  }

  /** Hands a re-prompt to the running executor (already stored and limited to one by the caller). */
  deliverReprompt(accountId: number, prompt: string): void {
    this.#loop?.reprompt(accountId, prompt);
  }

  /**
   * Reserves `amount` of the token for a withdrawal permit, while trading or closing (both are the
   * vault's Trading phase, where withdrawWithPermit works; the plan built at close-out accounts for
   * every reservation): the user must have no liability, and the pit debits the amount (journaled)
   * so it cannot also trade it. `inTransaction` runs in the same database transaction as the
   * journal write (the caller consumes its nonce there).
   */
  reserveWithdrawal(accountId: number, tokenAddress: string, amount: bigint, inTransaction: () => void): ReserveOutcome {
    const cur = this.current;
    if (this.halted !== null) return { ok: false, status: 503, code: "halted", message: this.halted, field: "token" };
    if (cur.phase !== "trading" && cur.phase !== "closing") {
      const hint =
        cur.phase === "settling"
          ? ": withdraw directly from the vault once your delta is posted (GET /api/accounts/:address/withdrawal)"
          : ": no session is running, withdraw directly from the vault";
      return { ok: false, status: 409, code: "wrong_phase", message: `withdrawal permits are only signed while trading or closing (now ${cur.phase})${hint}`, field: "token" };
    }
    const token = this.tokensByAddress.get(tokenAddress.toLowerCase());
    if (token === undefined || !this.market.engine.assets.some((a) => a.id === token.index)) {
      return { ok: false, status: 400, code: "unknown_token", message: `${tokenAddress} is not a token traded in this session`, field: "token" };
    }
    const pit = this.pit;
    if (this.#d.chain === null || pit === null) {
      return { ok: false, status: 503, code: "unavailable", message: "the keeper has no chain connection to sign permits", field: "token" };
    }
    // Liabilities are checked on the read view first, so a refusal leaves no trace at all.
    if (pit.reads.account(accountId).positions.some((p) => p.units < 0)) {
      return { ok: false, status: 409, code: "has_liabilities", message: "the account owes the pit (a negative balance): no withdrawal until it is covered", field: "account" };
    }
    // The command is journaled even if the engine refuses it (the journal holds refusals too).
    const result: CommandResult = transaction(this.#d.db, () => {
      inTransaction();
      return pit.apply({ type: "withdraw", user: accountId, asset: token.index, amount });
    });
    if (!result.ok) {
      const status = result.reason === "bad_amount" || result.reason === "amount_too_large" ? 400 : 409;
      return { ok: false, status, code: result.reason, message: result.message, field: result.reason === "has_liabilities" ? "account" : "amount" };
    }
    return { ok: true, sessionId: cur.id, token, seq: result.seq };
  }

  /**
   * What a permit could reserve of the token now (null unless trading or closing): the pit's
   * balance, at most the account's net deposit this session (the engine pays gains at settlement),
   * which is the vault balance the ledger follows less the permits signed and not yet used;
   * nothing while the account owes the pit. Open orders may hold part of it as margin: the engine
   * has the last word when the permit is asked for.
   */
  permitAllowance(accountId: number | undefined, tokenIndex: number): PitAllowance | null {
    const cur = this.current;
    if (cur.phase !== "trading" && cur.phase !== "closing") return null;
    if (this.halted !== null) return { ok: false, code: "halted", reason: this.halted };
    const pit = this.pit;
    const db = this.#d.db;
    if (accountId === undefined || pit === null || !this.market.engine.assets.some((a) => a.id === tokenIndex)) return { ok: true, amount: 0n, held: 0n };
    const view = pit.reads.account(accountId);
    if (view.positions.some((p) => p.units < 0)) return { ok: false, code: "has_liabilities" };
    const held = view.positions.find((p) => p.asset === tokenIndex)?.baseUnits ?? 0n;
    const address = addressOf(db, accountId)?.toLowerCase();
    let net = getBalance(db, accountId, tokenIndex);
    for (const p of openPermits(db, cur.id)) if (p.address === address && p.tokenIndex === tokenIndex) net -= p.amount;
    const amount = held < net ? held : net;
    return { ok: true, amount: amount > 0n ? amount : 0n, held };
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
          pit.reads.closeOut() === null &&
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

  // ---------------------------------------------------------------- reads

  #announce(): void {
    this.#d.metrics.phase.values.clear();
    this.#d.metrics.phase.set(1, { phase: this.current.phase });
    this.events.emit("phase", this.current);
  }

  /** The account's address, for readers that get account ids from the pit. */
  addressOf(accountId: number): string | undefined {
    return addressOf(this.#d.db, accountId);
  }

  get durations(): { preSessionSec: number; tradingSec: number; closingSec: number } {
    const c = this.#d.config;
    return { preSessionSec: c.preSessionSec, tradingSec: c.tradingSec, closingSec: c.closingSec };
  }

  /** Checksummed token list of the deployment. */
  get tokens(): { symbol: string; address: string; decimals: number; index: number }[] {
    return this.#d.deployment.tokens.map((t) => ({ symbol: t.symbol, address: getAddress(t.address), decimals: t.decimals, index: t.index }));
  }
}
