// The settler's transaction sender: its own nonce counter, the outbox written before every
// broadcast, receipts, and fee bumping of a transaction that sits unmined past a timeout.
// Each transaction is named by a unique step ("session:3:batch:0"): sending a step that the
// outbox already holds resumes it (waits for, or re-broadcasts, what was sent) instead of
// sending a second transaction. Where a retry does reach the chain twice, the vault refuses it.
//
// It keeps its word under faults:
// - Fees are capped: no transaction (nor any bump of one) is signed above `maxFeePerGas`, nor so
//   that a session's steps could cost more than `maxSessionFeeWei`. Above a cap, or without the
//   balance to pay, it waits, says so once (fee seen, cap, balance needed), exposes the wait in
//   `state` (for /healthz and cme_tx_waiting) and carries on by itself when it can.
// - Every RPC call is retried on transient failures (connection refused, HTTP 5xx, malformed JSON,
//   timeouts) with backoff until `rpcRetryMs`; a vault revert is final: ChainError with its name.
// - A receipt counts after `confirmations` blocks, re-checked against the block hash at its
//   height; a transaction a reorg dropped is re-broadcast (same bytes, same nonce) and awaited again.
import {
  BaseError,
  BlockNotFoundError,
  ContractFunctionRevertedError,
  TransactionReceiptNotFoundError,
  decodeErrorResult,
  keccak256,
  parseTransaction,
  type Abi,
  type Hex,
  type TransactionReceipt,
} from "viem";
import type { ChainClients } from "./client.ts";
import type { Db } from "../store/database.ts";
import { durable } from "../store/database.ts";
import { deleteOutbox, getOutbox, insertOutbox, pendingOutbox, replaceOutbox, settleOutbox, spentOn, type OutboxRow } from "../store/outbox.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { ComponentHealth } from "../ops/health.ts";
import { RetryDeadlineError, classifyChainError, retryUntil } from "./retry.ts";

export class ChainError extends Error {
  override name = "ChainError";
  constructor(
    message: string,
    readonly details: { step: string; errorName?: string; args?: readonly unknown[] },
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface SentTx {
  step: string;
  hash: Hex;
  block: number;
  status: "mined" | "reverted";
  gasUsed: bigint;
}

/** Why the sender is not sending. */
export type TxWait =
  | { reason: "fee_cap"; feePerGas: bigint; cap: bigint; balance: bigint; neededWei: bigint }
  | { reason: "funds"; balance: bigint; neededWei: bigint }
  | { reason: "budget"; spentWei: bigint; neededWei: bigint; budgetWei: bigint };

export type TxSenderState =
  | { status: "idle" }
  | { status: "sending"; step: string; since: number }
  | ({ status: "waiting"; step: string; since: number; message: string } & TxWait);

export interface TxSenderOptions {
  clients: ChainClients;
  db: Db;
  abi: Abi;
  timeoutMs: number;
  bumpPercent: number;
  pollMs: number;
  log?: { info: (o: object, m: string) => void; warn: (o: object, m: string) => void };
  /** Called right after a step's first broadcast (metrics). */
  afterBroadcast?: (step: string) => void;
  /** Blocks on top of a receipt's before it counts (as the watcher: 0 = its block is the head). Default 0. */
  confirmations?: number;
  /** No transaction or bump is signed with a higher max fee per gas (wei). Default 200 gwei. */
  maxFeePerGas?: bigint;
  /** Most the settler pays in fees for one session's steps ("session:N:…"), wei. Default 0.5 ETH. */
  maxSessionFeeWei?: bigint;
  /** How long one RPC call's transient failures are retried before the step fails. Default 10 min. */
  rpcRetryMs?: number;
  metrics?: Metrics;
  health?: ComponentHealth;
}

export const DEFAULT_MAX_FEE_PER_GAS = 200n * 10n ** 9n;
export const DEFAULT_MAX_SESSION_FEE_WEI = 5n * 10n ** 17n;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const max = (...xs: bigint[]) => xs.reduce((a, b) => (a > b ? a : b));
const min = (...xs: bigint[]) => xs.reduce((a, b) => (a < b ? a : b));
const gwei = (wei: bigint) => Number(wei) / 1e9;
const eth = (wei: bigint) => Number(wei) / 1e18;
/** A replacement must raise both fees by 10% (geth's and Hardhat's rule). */
const replaces = (next: bigint, prev: bigint) => next * 100n >= prev * 110n;

interface Quote {
  /** Base fee of the block the transaction would go into. */
  baseFee: bigint;
  tip: bigint;
  /** The node's suggestion (base × 1.2 + tip). */
  suggested: bigint;
}

export class TxSender {
  readonly #o: TxSenderOptions;
  #nextNonce: number | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #state: TxSenderState = { status: "idle" };
  #stopped = false;

  constructor(opts: TxSenderOptions) {
    this.#o = opts;
    opts.metrics?.txFeeCapGwei.set(gwei(this.#cap));
  }

  get address() {
    return this.#o.clients.settler.address;
  }

  /** What the sender is doing now: idle, sending a step, or waiting (fee cap, funds, session budget) and why. */
  get state(): TxSenderState {
    return this.#state;
  }

  get #cap(): bigint {
    return this.#o.maxFeePerGas ?? DEFAULT_MAX_FEE_PER_GAS;
  }

  /** Ends every wait (fee cap, funds, budget, receipts, retries): pending sends reject with ChainError. For shutdown. */
  stop(): void {
    this.#stopped = true;
  }

  /** Sends (or resumes) `step` and resolves with its receipt. Steps run one at a time. */
  send(step: string, to: `0x${string}`, data: Hex): Promise<SentTx> {
    const run = this.#queue.then(() => this.#send(step, to, data));
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * Settles the outbox rows still marked sent from their confirmed receipts (after a restart, a
   * step may have been mined while the keeper was down). Rows without one are left for `send`.
   */
  async reconcile(): Promise<number> {
    const { db } = this.#o;
    let settled = 0;
    for (const row of pendingOutbox(db)) {
      for (const hash of row.hashes) {
        const receipt = await this.#receipt(row.step, hash);
        if (receipt === undefined) continue;
        if (!(await this.#isConfirmed(row.step, receipt))) break;
        this.#settle(row, receipt);
        settled++;
        break;
      }
    }
    return settled;
  }

  /** What the outbox says about a step, if it was ever sent. */
  status(step: string): OutboxRow | undefined {
    return getOutbox(this.#o.db, step);
  }

  async #send(step: string, to: `0x${string}`, data: Hex): Promise<SentTx> {
    const { db, clients } = this.#o;
    this.#state = { status: "sending", step, since: Date.now() };
    this.#o.health?.expect(true);
    try {
      const existing = getOutbox(db, step);
      if (existing !== undefined) {
        if (existing.status !== "sent") return this.#done(existing);
        return await this.#await(existing, to, data);
      }
      const gas = (await this.#estimateGas(step, to, data)) * 12n / 10n + 10_000n;
      const fees = await this.#feesWithinLimits(step, gas);
      const nonce = await this.#takeNonce(step);
      let raw: Hex;
      try {
        raw = await clients.settler.signTransaction({
          chainId: clients.chain.id,
          type: "eip1559",
          to,
          data,
          nonce,
          gas,
          maxFeePerGas: fees.maxFeePerGas,
          maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
        });
        durable(db, () => insertOutbox(db, step, nonce, keccak256(raw), raw, Date.now()));
      } catch (err) {
        // Nothing went out under this nonce: give it back, or the next step would leave a gap.
        if (this.#nextNonce === nonce + 1) this.#nextNonce = nonce;
        throw err;
      }
      const hash = keccak256(raw);
      await this.#broadcast(step, raw);
      this.#o.log?.info({ step, hash, nonce, maxFeeGwei: gwei(fees.maxFeePerGas) }, "settler transaction sent");
      this.#o.afterBroadcast?.(step);
      this.#o.health?.progress();
      return await this.#await(getOutbox(db, step)!, to, data);
    } finally {
      this.#clearWait(false);
      this.#state = { status: "idle" };
      this.#o.health?.expect(false);
    }
  }

  async #sleep(step: string): Promise<void> {
    if (this.#stopped) throw new ChainError(`step ${step}: the sender was stopped`, { step });
    await pause(this.#o.pollMs);
    if (this.#stopped) throw new ChainError(`step ${step}: the sender was stopped`, { step });
  }

  // ---------------------------------------------------------------- RPC, retried

  /** One RPC call, its transient failures retried until rpcRetryMs; anything else thrown as it is. */
  async #rpc<T>(step: string, op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await retryUntil(`${step} ${op}`, fn, {
        deadlineMs: this.#o.rpcRetryMs ?? 600_000,
        isFinal: (err) => classifyChainError(err) !== "transient",
        baseDelayMs: Math.min(250, this.#o.pollMs),
        maxDelayMs: 5_000,
        ...(this.#o.log === undefined ? {} : { log: this.#o.log }),
        // An answered call is not progress (broadcasts, confirmations and receipts are); a failure is named if it stalls.
        onFailure: (err) => {
          this.#o.metrics?.chainRpcErrors.inc({ op });
          this.#o.health?.error(err);
        },
        stopped: () => this.#stopped,
      });
    } catch (err) {
      if (err instanceof RetryDeadlineError) throw new ChainError(`step ${step}: ${err.message}`, { step }, { cause: err });
      throw err;
    }
  }

  async #receipt(step: string, hash: Hex): Promise<TransactionReceipt | undefined> {
    return this.#rpc(step, "getTransactionReceipt", async () => {
      try {
        return await this.#o.clients.publicClient.getTransactionReceipt({ hash });
      } catch (err) {
        if (err instanceof TransactionReceiptNotFoundError) return undefined;
        throw err;
      }
    });
  }

  async #blockHash(step: string, block: bigint): Promise<Hex | undefined> {
    return this.#rpc(step, "getBlock", async () => {
      try {
        return (await this.#o.clients.publicClient.getBlock({ blockNumber: block })).hash ?? undefined;
      } catch (err) {
        if (err instanceof BlockNotFoundError) return undefined;
        throw err;
      }
    });
  }

  async #estimateGas(step: string, to: `0x${string}`, data: Hex): Promise<bigint> {
    const { clients } = this.#o;
    try {
      return await this.#rpc(step, "estimateGas", () => clients.publicClient.estimateGas({ account: clients.settler.address, to, data }));
    } catch (err) {
      if (err instanceof ChainError) throw err;
      throw this.#revertError(step, err);
    }
  }

  /** The fees the next block asks for: the pending block's base fee (else the latest's + 12.5%) and the node's tip. */
  async #quote(step: string): Promise<Quote> {
    const pc = this.#o.clients.publicClient;
    const fees = await this.#rpc(step, "estimateFeesPerGas", () => pc.estimateFeesPerGas());
    let baseFee: bigint | undefined;
    try {
      baseFee = (await pc.getBlock({ blockTag: "pending" })).baseFeePerGas ?? undefined;
    } catch {
      baseFee = undefined; // not every node serves the pending block
    }
    if (baseFee === undefined) {
      const latest = await this.#rpc(step, "getBlock", () => pc.getBlock());
      baseFee = ((latest.baseFeePerGas ?? 0n) * 1125n) / 1000n;
    }
    const q = { baseFee, tip: fees.maxPriorityFeePerGas, suggested: fees.maxFeePerGas };
    this.#o.metrics?.txFeeSeenGwei.set(gwei(q.baseFee + q.tip));
    return q;
  }

  async #balance(step: string): Promise<bigint> {
    return this.#rpc(step, "getBalance", () => this.#o.clients.publicClient.getBalance({ address: this.address }));
  }

  // ---------------------------------------------------------------- fee limits

  /** What the session's budget still allows, and what it has spent; null for steps outside a session. */
  #budget(step: string): { spent: bigint; room: bigint; cap: bigint } | null {
    const m = /^session:(\d+):/.exec(step);
    if (m === null) return null;
    const cap = this.#o.maxSessionFeeWei ?? DEFAULT_MAX_SESSION_FEE_WEI;
    const spent = spentOn(this.#o.db, `session:${m[1]}:`);
    return { spent, room: cap - spent, cap };
  }

  /**
   * Fees for a new transaction of `gas` that keep within the fee cap, the session budget and the
   * settler's balance; waits (saying why, once) until there are such fees.
   */
  async #feesWithinLimits(step: string, gas: bigint): Promise<{ maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }> {
    for (;;) {
      const q = await this.#quote(step);
      const cap = this.#cap;
      if (q.baseFee >= cap) {
        const balance = await this.#balance(step);
        const seen = q.baseFee + q.tip;
        this.#wait(step, { reason: "fee_cap", feePerGas: seen, cap, balance, neededWei: gas * seen });
        await this.#sleep(step);
        continue;
      }
      // Under the cap the tip gives way first: the base fee is what a block demands.
      const tip = min(q.tip, cap - q.baseFee);
      const need = q.baseFee + tip;
      let maxFee = min(cap, max(q.suggested, 2n * q.baseFee + tip));
      const budget = this.#budget(step);
      if (budget !== null) {
        if (gas * need > budget.room) {
          this.#wait(step, { reason: "budget", spentWei: budget.spent, neededWei: gas * need, budgetWei: budget.cap });
          await this.#sleep(step);
          continue;
        }
        maxFee = min(maxFee, budget.room / gas);
      }
      const balance = await this.#balance(step);
      if (balance < gas * need) {
        this.#wait(step, { reason: "funds", balance, neededWei: gas * maxFee });
        await this.#sleep(step);
        continue;
      }
      maxFee = min(maxFee, balance / gas);
      this.#clearWait();
      return { maxFeePerGas: maxFee, maxPriorityFeePerGas: min(tip, maxFee) };
    }
  }

  #wait(step: string, w: TxWait): void {
    const message =
      w.reason === "fee_cap"
        ? `fee ${gwei(w.feePerGas)} gwei per gas is ${w.feePerGas > w.cap ? "above" : "within 10% of"} the cap of ${gwei(w.cap)} gwei (CME_MAX_FEE_GWEI); ` +
          `waiting for fees to fall (the step needs ${eth(w.neededWei)} ETH at this fee, the settler has ${eth(w.balance)} ETH)`
        : w.reason === "funds"
          ? `the settler ${this.address} has ${eth(w.balance)} ETH and needs ${eth(w.neededWei)} ETH for this step; waiting for funds`
          : `the session's fees would exceed its budget: spent ${eth(w.spentWei)} ETH, this step needs ${eth(w.neededWei)} ETH, ` +
            `budget ${eth(w.budgetWei)} ETH (CME_MAX_SESSION_FEE_ETH); waiting for fees to fall`;
    const prev = this.#state;
    if (prev.status === "waiting" && prev.reason === w.reason && prev.step === step) {
      this.#state = { ...prev, ...w, message };
      return;
    }
    this.#state = { status: "waiting", step, since: Date.now(), message, ...w };
    if (prev.status === "waiting") this.#o.metrics?.txWaiting.set(0, { reason: prev.reason });
    this.#o.metrics?.txWaiting.set(1, { reason: w.reason });
    this.#o.health?.problem(`tx sender waiting on step ${step}: ${message}`);
    const fields = Object.fromEntries(Object.entries(w).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v]));
    this.#o.log?.warn({ step, ...fields }, `settler transaction waiting: ${message}`);
  }

  /** The wait is over: resumed (logged), or the step ended while waiting (stopped, failed). */
  #clearWait(resumed = true): void {
    const prev = this.#state;
    if (prev.status !== "waiting") return;
    this.#state = { status: "sending", step: prev.step, since: Date.now() };
    this.#o.metrics?.txWaiting.set(0, { reason: prev.reason });
    this.#o.health?.problem(null);
    if (resumed) this.#o.log?.info({ step: prev.step, waitedMs: Date.now() - prev.since }, `settler transaction no longer waiting (${prev.reason})`);
  }

  // ---------------------------------------------------------------- nonce, broadcast

  async #takeNonce(step: string): Promise<number> {
    if (this.#nextNonce === undefined) {
      const chainPending = await this.#rpc(step, "getTransactionCount", () =>
        this.#o.clients.publicClient.getTransactionCount({ address: this.address, blockTag: "pending" }),
      );
      const open = pendingOutbox(this.#o.db);
      const outboxNext = open.length === 0 ? 0 : Math.max(...open.map((r) => r.nonce)) + 1;
      this.#nextNonce = Math.max(chainPending, outboxNext);
    }
    return this.#nextNonce++;
  }

  /**
   * Broadcasts signed bytes. Already known (or its nonce used): receipts decide. Refused for its
   * fee or the settler's funds: the await loop re-broadcasts or bumps. Transient failures retried.
   */
  async #broadcast(step: string, raw: Hex): Promise<"sent" | "known" | "refused"> {
    try {
      await this.#rpc(step, "sendRawTransaction", () => this.#o.clients.publicClient.sendRawTransaction({ serializedTransaction: raw }));
      return "sent";
    } catch (err) {
      if (err instanceof ChainError) throw err;
      const kind = classifyChainError(err);
      if (kind === "known") return "known";
      if (kind === "underpriced" || kind === "funds") {
        this.#o.log?.warn({ step, reason: kind, error: (err as BaseError).shortMessage ?? String(err) }, "settler transaction refused by the node; will retry");
        return "refused";
      }
      throw new ChainError(`step ${step}: broadcast failed: ${(err as Error).message.split("\n")[0]}`, { step }, { cause: err });
    }
  }

  // ---------------------------------------------------------------- receipts

  /** Waits for any of the step's hashes to be mined and confirmed; re-broadcasts, bumps (capped) meanwhile. */
  async #await(row: OutboxRow, to: `0x${string}`, data: Hex): Promise<SentTx> {
    const { db, timeoutMs } = this.#o;
    let lastBroadcast = Date.now();
    let rebroadcasted = false;
    let nonceUsedPolls = 0;
    for (;;) {
      let mined: TransactionReceipt | undefined;
      for (const hash of row.hashes) {
        mined = await this.#receipt(row.step, hash);
        if (mined !== undefined) break;
      }
      if (mined !== undefined) {
        const confirmed = await this.#confirm(row.step, mined);
        if (confirmed !== undefined) {
          this.#clearWait();
          this.#settle(row, confirmed);
          const status = confirmed.status === "success" ? "mined" : "reverted";
          if (status === "reverted") throw await this.#revertedOnChain(row.step, to, data, confirmed);
          return { step: row.step, hash: confirmed.transactionHash, block: Number(confirmed.blockNumber), status, gasUsed: confirmed.gasUsed };
        }
        // A reorg took it out of the chain: the same bytes go back to the pool (same nonce, so
        // at most one version can ever land), then the wait starts over.
        this.#o.metrics?.chainTxDropped.inc();
        this.#o.log?.warn({ step: row.step, hash: mined.transactionHash, block: Number(mined.blockNumber), nonce: row.nonce }, "settler transaction dropped by a reorg; re-broadcasting it");
        await this.#broadcast(row.step, row.raw);
        lastBroadcast = Date.now();
        rebroadcasted = true;
        nonceUsedPolls = 0;
        continue;
      }
      const latestCount = await this.#rpc(row.step, "getTransactionCount", () =>
        this.#o.clients.publicClient.getTransactionCount({ address: this.address, blockTag: "latest" }),
      );
      if (latestCount > row.nonce) {
        // The nonce is used but none of our hashes has a receipt (yet): give the node a few polls,
        // then forget this attempt so the caller re-reads the chain and decides.
        if (++nonceUsedPolls > 5) {
          durable(db, () => deleteOutbox(db, row.step));
          throw new ChainError(`step ${row.step}: nonce ${row.nonce} was used by another transaction`, { step: row.step });
        }
      } else if (!rebroadcasted) {
        // After a restart the pool may have lost it: broadcasting the same bytes is harmless.
        await this.#broadcast(row.step, row.raw);
        rebroadcasted = true;
      } else if (Date.now() - lastBroadcast > timeoutMs) {
        row = await this.#bump(row);
        lastBroadcast = Date.now();
      }
      await this.#sleep(row.step);
    }
  }

  /** Whether the receipt's block is `confirmations` deep and still the chain's block at its height. */
  async #isConfirmed(step: string, r: TransactionReceipt): Promise<boolean> {
    const head = await this.#rpc(step, "getBlockNumber", () => this.#o.clients.publicClient.getBlockNumber({ cacheTime: 0 }));
    if (head - BigInt(this.#o.confirmations ?? 0) < r.blockNumber) return false;
    return (await this.#blockHash(step, r.blockNumber)) === r.blockHash;
  }

  /**
   * Waits until the receipt has its confirmations, re-reading it meanwhile: resolves with the
   * receipt as it stands then, or undefined when a reorg dropped the transaction.
   */
  async #confirm(step: string, receipt: TransactionReceipt): Promise<TransactionReceipt | undefined> {
    let r = receipt;
    let seenHead = -1n;
    let mismatches = 0;
    for (;;) {
      const head = await this.#rpc(step, "getBlockNumber", () => this.#o.clients.publicClient.getBlockNumber({ cacheTime: 0 }));
      if (head > seenHead) {
        if (seenHead >= 0n) this.#o.health?.progress();
        seenHead = head;
      }
      const again = await this.#receipt(step, r.transactionHash);
      if (again === undefined) return undefined;
      r = again; // possibly re-mined in another block: confirm that one
      if (head - BigInt(this.#o.confirmations ?? 0) >= r.blockNumber) {
        if ((await this.#blockHash(step, r.blockNumber)) === r.blockHash) return r;
        // The node still serves a receipt from a block that is no longer the chain's at that height.
        if (++mismatches >= 3) return undefined;
      }
      await this.#sleep(step);
    }
  }

  #settle(row: OutboxRow, r: TransactionReceipt): void {
    const { db } = this.#o;
    const status = r.status === "success" ? "mined" : "reverted";
    const feeWei = r.gasUsed * (r.effectiveGasPrice ?? 0n);
    durable(db, () => settleOutbox(db, row.step, status, Number(r.blockNumber), Date.now(), { blockHash: r.blockHash, feeWei }));
    if (this.#nextNonce !== undefined && this.#nextNonce <= row.nonce) this.#nextNonce = row.nonce + 1;
    this.#o.health?.progress();
    const budget = this.#budget(row.step);
    if (budget !== null) this.#o.metrics?.txSpentWei.set(eth(budget.spent));
  }

  /**
   * Replaces a transaction that sits unmined with higher fees (same nonce), never above the fee
   * cap, the session budget or the settler's balance. When no replacement fits, the same bytes
   * are re-broadcast and the sender waits, saying why.
   */
  async #bump(row: OutboxRow): Promise<OutboxRow> {
    const { db, clients, bumpPercent } = this.#o;
    const prev = parseTransaction(row.raw);
    const prevMax = prev.maxFeePerGas ?? 0n;
    const prevTip = prev.maxPriorityFeePerGas ?? 0n;
    const gas = prev.gas!;
    const q = await this.#quote(row.step);
    const bump = (x: bigint) => (x * BigInt(100 + bumpPercent)) / 100n + 1n;
    let ceiling = this.#cap;
    const budget = this.#budget(row.step);
    if (budget !== null) ceiling = min(ceiling, budget.room / gas);
    const balance = await this.#balance(row.step);
    const maxFeePerGas = min(ceiling, balance / gas, max(bump(prevMax), q.suggested, 2n * q.baseFee + q.tip));
    const maxPriorityFeePerGas = min(maxFeePerGas, max(bump(prevTip), q.tip));
    if (!replaces(maxFeePerGas, prevMax) || !replaces(maxPriorityFeePerGas, prevTip)) {
      // No replacement fits under the limits: keep the one in the pool and, if the next block
      // wants more than it offers, say what keeps it from being replaced.
      const need = q.baseFee + q.tip;
      if (need > prevMax) {
        if (balance < gas * need) this.#wait(row.step, { reason: "funds", balance, neededWei: gas * need });
        else if (budget !== null && gas * need > budget.room) this.#wait(row.step, { reason: "budget", spentWei: budget.spent, neededWei: gas * need, budgetWei: budget.cap });
        else this.#wait(row.step, { reason: "fee_cap", feePerGas: need, cap: this.#cap, balance, neededWei: gas * need });
      }
      await this.#broadcast(row.step, row.raw);
      return row;
    }
    const raw = await clients.settler.signTransaction({
      chainId: clients.chain.id,
      type: "eip1559",
      to: prev.to!,
      data: prev.data!,
      nonce: row.nonce,
      gas,
      maxFeePerGas,
      maxPriorityFeePerGas,
    });
    const hash = keccak256(raw);
    durable(db, () => replaceOutbox(db, row.step, hash, raw, Date.now()));
    await this.#broadcast(row.step, raw);
    if (q.baseFee + q.tip <= maxFeePerGas) this.#clearWait();
    this.#o.log?.warn({ step: row.step, hash, nonce: row.nonce, maxFeeGwei: gwei(maxFeePerGas), capGwei: gwei(this.#cap) }, "settler transaction fee bumped");
    return getOutbox(db, row.step)!;
  }

  #done(row: OutboxRow): SentTx {
    if (row.status === "reverted") throw new ChainError(`step ${row.step} reverted earlier`, { step: row.step });
    return { step: row.step, hash: row.hashes[row.hashes.length - 1]!, block: row.block ?? 0, status: "mined", gasUsed: 0n };
  }

  #revertError(step: string, err: unknown): ChainError {
    if (err instanceof BaseError) {
      const reverted = err.walk((e) => e instanceof ContractFunctionRevertedError);
      if (reverted instanceof ContractFunctionRevertedError && reverted.data !== undefined) {
        return new ChainError(`step ${step}: would revert ${reverted.data.errorName}`, { step, errorName: reverted.data.errorName, args: reverted.data.args ?? [] }, { cause: err });
      }
      const raw = err.walk((e) => typeof (e as { data?: unknown }).data === "string") as { data?: Hex } | null;
      if (raw?.data !== undefined) {
        try {
          const d = decodeErrorResult({ abi: this.#o.abi, data: raw.data });
          return new ChainError(`step ${step}: would revert ${d.errorName}`, { step, errorName: d.errorName, args: d.args ?? [] }, { cause: err });
        } catch {
          /* fall through */
        }
      }
      return new ChainError(`step ${step}: ${err.shortMessage}`, { step }, { cause: err });
    }
    return new ChainError(`step ${step}: ${(err as Error).message}`, { step }, { cause: err });
  }

  async #revertedOnChain(step: string, to: `0x${string}`, data: Hex, receipt: TransactionReceipt): Promise<ChainError> {
    // Re-run the call at the receipt's block to learn the custom error.
    try {
      await this.#rpc(step, "call", () => this.#o.clients.publicClient.call({ account: this.address, to, data, blockNumber: receipt.blockNumber }));
    } catch (err) {
      if (err instanceof ChainError) return err;
      return this.#revertError(step, err);
    }
    return new ChainError(`step ${step}: reverted in block ${receipt.blockNumber}`, { step });
  }
}
