// Follows the vault's events a configurable number of confirmations behind the head and hands
// them, in block order, to the keeper together with the last block they cover. The keeper folds
// them into its ledger and journal and moves its cursor in one database transaction, so each
// event is processed exactly once across restarts.
import type { Address, PublicClient } from "viem";
import { vaultAbi } from "./vault-abi.ts";

export type VaultEvent =
  | { kind: "account"; block: number; accountId: number; address: Address }
  | { kind: "deposit"; block: number; id: string; address: Address; token: Address; amount: bigint; balance: bigint }
  | { kind: "withdraw"; block: number; id: string; address: Address; token: Address; amount: bigint; balance: bigint; sessionId: number }
  | { kind: "finalized"; block: number; sessionId: number }
  | { kind: "voided"; block: number; sessionId: number };

export interface WatcherOptions {
  client: PublicClient;
  vault: Address;
  confirmations: number;
  pollMs: number;
  /** Largest block range per getLogs call. */
  maxRange?: number;
  cursor: () => bigint;
  /** Processes the events of (cursor, toBlock] and moves the cursor to toBlock, atomically. */
  apply: (events: VaultEvent[], toBlock: bigint) => void;
  onError?: (err: unknown) => void;
}

const EVENTS = vaultAbi.filter(
  (x) => x.type === "event" && ["AccountRegistered", "Deposited", "Withdrawn", "SessionFinalized", "SessionVoided"].includes(x.name),
);

export class VaultWatcher {
  readonly #o: WatcherOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();
  /** While set, the watcher does not process past this block (the session opening snapshot). */
  #ceiling: bigint | null = null;
  head = 0n;

  constructor(opts: WatcherOptions) {
    this.#o = opts;
  }

  start(): void {
    const loop = () => {
      this.#timer = setTimeout(() => {
        void this.poll()
          .catch((err) => this.#o.onError?.(err))
          .finally(() => {
            if (this.#timer !== undefined) loop();
          });
      }, this.#o.pollMs);
    };
    loop();
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Holds processing at `block` (or at the current cursor) until released with null. */
  hold(block: bigint | null): void {
    this.#ceiling = block;
  }

  /** Processes confirmed events up to `block` (or the confirmed head); one poll at a time. */
  poll(block?: bigint): Promise<void> {
    const run = this.#running.then(() => this.#poll(block));
    this.#running = run.catch(() => {});
    return run;
  }

  /** Resolves once every event up to and including `block` is processed (waiting for confirmations). */
  async syncTo(block: bigint): Promise<void> {
    while (this.#o.cursor() < block) {
      await this.poll(block);
      if (this.#o.cursor() < block) await new Promise((r) => setTimeout(r, this.#o.pollMs));
    }
  }

  async #poll(limit?: bigint): Promise<void> {
    const o = this.#o;
    this.head = await o.client.getBlockNumber({ cacheTime: 0 });
    let target = this.head - BigInt(o.confirmations);
    if (limit !== undefined && limit < target) target = limit;
    if (this.#ceiling !== null && this.#ceiling < target) target = this.#ceiling;
    const range = BigInt(o.maxRange ?? 2_000);
    for (let from = o.cursor() + 1n; from <= target; from = o.cursor() + 1n) {
      const to = from + range - 1n < target ? from + range - 1n : target;
      const logs = await o.client.getLogs({ address: o.vault, events: EVENTS, fromBlock: from, toBlock: to, strict: true });
      logs.sort((a, b) => (a.blockNumber === b.blockNumber ? a.logIndex! - b.logIndex! : Number(a.blockNumber! - b.blockNumber!)));
      const events: VaultEvent[] = [];
      for (const log of logs) {
        const block = Number(log.blockNumber);
        const id = `${log.transactionHash}:${log.logIndex}`;
        const a = log.args as Record<string, unknown>;
        switch (log.eventName) {
          case "AccountRegistered":
            events.push({ kind: "account", block, accountId: Number(a.accountId), address: a.account as Address });
            break;
          case "Deposited":
            events.push({ kind: "deposit", block, id, address: a.account as Address, token: a.token as Address, amount: a.amount as bigint, balance: a.balance as bigint });
            break;
          case "Withdrawn":
            events.push({
              kind: "withdraw",
              block,
              id,
              address: a.account as Address,
              token: a.token as Address,
              amount: a.amount as bigint,
              balance: a.balance as bigint,
              sessionId: Number(a.sessionId),
            });
            break;
          case "SessionFinalized":
            events.push({ kind: "finalized", block, sessionId: Number(a.sessionId) });
            break;
          case "SessionVoided":
            events.push({ kind: "voided", block, sessionId: Number(a.sessionId) });
            break;
        }
      }
      o.apply(events, to);
    }
  }
}
