// The settler's transaction sender: its own nonce counter, the outbox written before every
// broadcast, receipts, and fee bumping of a transaction that sits unmined past a timeout.
// Each transaction is named by a unique step ("session:3:batch:0"): sending a step that the
// outbox already holds resumes it (waits for, or re-broadcasts, what was sent) instead of
// sending a second transaction. Where a retry does reach the chain twice, the vault refuses it.
import {
  BaseError,
  ContractFunctionRevertedError,
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
import { deleteOutbox, getOutbox, insertOutbox, pendingOutbox, replaceOutbox, settleOutbox, type OutboxRow } from "../store/outbox.ts";

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
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TxSender {
  readonly #o: TxSenderOptions;
  #nextNonce: number | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: TxSenderOptions) {
    this.#o = opts;
  }

  get address() {
    return this.#o.clients.settler.address;
  }

  /** Sends (or resumes) `step` and resolves with its receipt. Steps run one at a time. */
  send(step: string, to: `0x${string}`, data: Hex): Promise<SentTx> {
    const run = this.#queue.then(() => this.#send(step, to, data));
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * Settles the outbox rows still marked sent from their receipts (after a restart, a step may
   * have been mined while the keeper was down). Rows without a receipt are left for `send`.
   */
  async reconcile(): Promise<number> {
    const { db, clients } = this.#o;
    let settled = 0;
    for (const row of pendingOutbox(db)) {
      for (const hash of row.hashes) {
        const receipt = await clients.publicClient.getTransactionReceipt({ hash }).catch(() => undefined);
        if (receipt === undefined) continue;
        durable(db, () => settleOutbox(db, row.step, receipt.status === "success" ? "mined" : "reverted", Number(receipt.blockNumber), Date.now()));
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
    const existing = getOutbox(db, step);
    if (existing !== undefined) {
      if (existing.status !== "sent") return this.#done(existing);
      return this.#await(existing, to, data);
    }
    const pc = clients.publicClient;
    let gas: bigint;
    try {
      gas = await pc.estimateGas({ account: clients.settler, to, data });
    } catch (err) {
      throw this.#revertError(step, err);
    }
    const fees = await pc.estimateFeesPerGas();
    const nonce = await this.#takeNonce();
    const tx = {
      chainId: clients.chain.id,
      type: "eip1559" as const,
      to,
      data,
      nonce,
      gas: (gas * 12n) / 10n + 10_000n,
      maxFeePerGas: fees.maxFeePerGas,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
    };
    const raw = await clients.settler.signTransaction(tx);
    const hash = keccak256(raw);
    durable(db, () => insertOutbox(db, step, nonce, hash, raw, Date.now()));
    await this.#broadcast(raw);
    this.#o.log?.info({ step, hash, nonce }, "settler transaction sent");
    this.#o.afterBroadcast?.(step);
    return this.#await(getOutbox(db, step)!, to, data);
  }

  async #takeNonce(): Promise<number> {
    if (this.#nextNonce === undefined) {
      const chainPending = await this.#o.clients.publicClient.getTransactionCount({ address: this.address, blockTag: "pending" });
      const open = pendingOutbox(this.#o.db);
      const outboxNext = open.length === 0 ? 0 : Math.max(...open.map((r) => r.nonce)) + 1;
      this.#nextNonce = Math.max(chainPending, outboxNext);
    }
    return this.#nextNonce++;
  }

  async #broadcast(raw: Hex): Promise<void> {
    try {
      await this.#o.clients.publicClient.sendRawTransaction({ serializedTransaction: raw });
    } catch (err) {
      const msg = (err as Error).message.toLowerCase();
      // Already in the pool, or its nonce already used: receipts decide what happened.
      if (msg.includes("already") || msg.includes("nonce too low") || msg.includes("known transaction")) return;
      throw err;
    }
  }

  /** Waits for any of the step's hashes to be mined; bumps fees when it sits too long. */
  async #await(row: OutboxRow, to: `0x${string}`, data: Hex): Promise<SentTx> {
    const { db, clients, pollMs, timeoutMs } = this.#o;
    const pc = clients.publicClient;
    let lastBroadcast = Date.now();
    let rebroadcasted = false;
    let nonceUsedPolls = 0;
    for (;;) {
      for (const hash of row.hashes) {
        let receipt: TransactionReceipt | undefined;
        try {
          receipt = await pc.getTransactionReceipt({ hash });
        } catch {
          receipt = undefined; // not mined (viem throws TransactionReceiptNotFoundError)
        }
        if (receipt !== undefined) {
          const status = receipt.status === "success" ? "mined" : "reverted";
          durable(db, () => settleOutbox(db, row.step, status, Number(receipt.blockNumber), Date.now()));
          if (this.#nextNonce !== undefined && this.#nextNonce <= row.nonce) this.#nextNonce = row.nonce + 1;
          const out: SentTx = { step: row.step, hash, block: Number(receipt.blockNumber), status, gasUsed: receipt.gasUsed };
          if (status === "reverted") throw await this.#revertedOnChain(row.step, to, data, receipt);
          return out;
        }
      }
      const latestCount = await pc.getTransactionCount({ address: this.address, blockTag: "latest" });
      if (latestCount > row.nonce) {
        // The nonce is used but none of our hashes has a receipt (yet): give the node a few polls,
        // then forget this attempt so the caller re-reads the chain and decides.
        if (++nonceUsedPolls > 5) {
          durable(db, () => deleteOutbox(db, row.step));
          throw new ChainError(`step ${row.step}: nonce ${row.nonce} was used by another transaction`, { step: row.step });
        }
      } else if (!rebroadcasted) {
        // After a restart the pool may have lost it: broadcasting the same bytes is harmless.
        await this.#broadcast(row.raw);
        rebroadcasted = true;
      } else if (Date.now() - lastBroadcast > timeoutMs) {
        row = await this.#bump(row);
        lastBroadcast = Date.now();
      }
      await sleep(pollMs);
    }
  }

  async #bump(row: OutboxRow): Promise<OutboxRow> {
    const { db, clients, bumpPercent } = this.#o;
    const pc = clients.publicClient;
    const prev = parseTransaction(row.raw);
    const current = await pc.estimateFeesPerGas();
    const bump = (x: bigint | undefined) => ((x ?? 0n) * BigInt(100 + bumpPercent)) / 100n + 1n;
    const maxPriorityFeePerGas = [bump(prev.maxPriorityFeePerGas), current.maxPriorityFeePerGas].reduce((a, b) => (a > b ? a : b));
    const maxFeePerGas = [bump(prev.maxFeePerGas), current.maxFeePerGas, maxPriorityFeePerGas].reduce((a, b) => (a > b ? a : b));
    const raw = await clients.settler.signTransaction({
      chainId: clients.chain.id,
      type: "eip1559",
      to: prev.to!,
      data: prev.data!,
      nonce: row.nonce,
      gas: prev.gas!,
      maxFeePerGas,
      maxPriorityFeePerGas,
    });
    const hash = keccak256(raw);
    durable(db, () => replaceOutbox(db, row.step, hash, raw, Date.now()));
    await this.#broadcast(raw);
    this.#o.log?.warn({ step: row.step, hash, nonce: row.nonce, maxFeePerGas: maxFeePerGas.toString() }, "settler transaction fee bumped");
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
      await this.#o.clients.publicClient.call({ account: this.address, to, data, blockNumber: receipt.blockNumber });
    } catch (err) {
      return this.#revertError(step, err);
    }
    return new ChainError(`step ${step}: reverted in block ${receipt.blockNumber}`, { step });
  }
}
