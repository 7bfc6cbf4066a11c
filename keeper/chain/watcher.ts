// Follows the vault's events a configurable number of confirmations behind the head and hands
// them, in block order, to the keeper together with the last block they cover. The keeper folds
// them into its ledger and journal and moves its cursor in one database transaction, so each
// event is processed exactly once across restarts.
//
// It reads the chain as something that can change under it:
// - Reorgs. It keeps the hashes of the blocks it processed (in the store, beside the cursor). Each
//   poll checks the cursor's block is still the chain's, and each range must hang off it (parent
//   hashes) with its logs from those very blocks. A reorg at or below the cursor rewinds the cursor
//   to the fork block (apply([], fork)) and calls `onReorg` so the keeper can halt trading loudly.
// - Duplicates. Every event handed over is claimed by a key (transaction hash and its place among
//   the transaction's vault events, which survive re-mining) in the same transaction as `apply`;
//   a claimed event is never handed over again, so a re-mined deposit is credited once.
// - Empty answers. A getLogs answer without events for a block whose logsBloom says it may hold
//   vault events is cross-checked by asking for that block's logs by hash (EIP-234: a node that
//   does not have the block must answer with an error, not an empty list); if that finds events,
//   the range answer is refused and the poll retried.
import { BlockNotFoundError, encodeEventTopics, hexToBytes, keccak256, type AbiEvent, type Address, type Block, type Hex, type Log, type PublicClient } from "viem";
import { vaultAbi } from "./vault-abi.ts";
import type { Db } from "../store/database.ts";
import { transaction } from "../store/database.ts";
import { blockHashAt, blockHashesBelow, claimEvent, claimedAbove, forgetBlocksAbove, putBlockHashes, type ClaimedEvent } from "../store/ledger.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { ComponentHealth } from "../ops/health.ts";

export type VaultEvent =
  | { kind: "account"; block: number; accountId: number; address: Address }
  | { kind: "deposit"; block: number; id: string; address: Address; token: Address; amount: bigint; balance: bigint }
  | { kind: "withdraw"; block: number; id: string; address: Address; token: Address; amount: bigint; balance: bigint; sessionId: number }
  | { kind: "finalized"; block: number; sessionId: number }
  | { kind: "voided"; block: number; sessionId: number };

/** A reorg reached blocks the watcher had processed. */
export interface ReorgInfo {
  /** The newest block both chains share: the cursor is back there. */
  forkBlock: bigint;
  /** Where the cursor was. */
  cursor: bigint;
  /** False when no remembered block matched (a reorg deeper than `keepBlocks`): forkBlock is a guess. */
  exact: boolean;
  /**
   * Events handed over from blocks above the fork (deposits and withdrawals name the account and
   * token, to re-read the balance). Those mined again are not handed over again; the rest are gone.
   */
  reverted: ClaimedEvent[];
}

export interface WatcherOptions {
  client: PublicClient;
  vault: Address;
  confirmations: number;
  pollMs: number;
  /** Largest block range per getLogs call. */
  maxRange?: number;
  cursor: () => bigint;
  /**
   * Processes the events of (cursor, toBlock] and moves the cursor to toBlock, atomically. After a
   * reorg it is called with no events and a toBlock below the cursor: move the cursor back.
   */
  apply: (events: VaultEvent[], toBlock: bigint) => void;
  onError?: (err: unknown) => void;
  /**
   * The keeper's database: block hashes and the keys of handed-over events are kept there, written
   * in the same transaction as `apply` (which then runs as a savepoint). Default: in memory.
   */
  db?: Db;
  /** Called after a reorg rewound the cursor; the keeper halts trading and says so. */
  onReorg?: (reorg: ReorgInfo) => void;
  /** Processed block hashes remembered, so the deepest reorg located exactly. Default 256. */
  keepBlocks?: number;
  /** Block headers fetched at once when checking a range. Default 16. */
  headerConcurrency?: number;
  log?: { info(o: object, m?: string): void; warn(o: object, m?: string): void; error(o: object, m?: string): void };
  metrics?: Metrics;
  health?: ComponentHealth;
}

/** The chain answered inconsistently (a reorg in flight, an incomplete getLogs answer): the poll is retried. */
export class WatcherError extends Error {
  override name = "WatcherError";
  constructor(
    message: string,
    readonly details: { block?: bigint; reason: "reorg_in_flight" | "missing_logs" | "foreign_logs" | "missing_block" },
  ) {
    super(message);
  }
}

const EVENT_NAMES = ["AccountRegistered", "Deposited", "Withdrawn", "SessionFinalized", "SessionVoided"];
const EVENTS = vaultAbi.filter((x): x is Extract<(typeof vaultAbi)[number], AbiEvent> => x.type === "event" && EVENT_NAMES.includes(x.name));
const TOPICS: Hex[] = EVENTS.map((e) => encodeEventTopics({ abi: [e], eventName: (e as { name: string }).name } as never)[0] as Hex);

/** Whether a 2048-bit logs bloom may contain `item` (no false negatives). */
export function bloomMayContain(bloom: Hex, item: Hex): boolean {
  const bits = hexToBytes(bloom);
  const h = hexToBytes(keccak256(item));
  for (let i = 0; i < 6; i += 2) {
    const bit = ((h[i]! << 8) | h[i + 1]!) & 2047;
    if ((bits[255 - (bit >> 3)]! & (1 << (bit & 7))) === 0) return false;
  }
  return true;
}

interface Header {
  number: bigint;
  hash: Hex;
  parentHash: Hex;
  logsBloom: Hex | null;
}

/** Where the watcher keeps block hashes and event claims: the keeper's database, or memory. */
interface WatcherStore {
  hashAt(block: bigint): Hex | undefined;
  hashesBelow(block: bigint, limit: number): { number: bigint; hash: Hex }[];
  put(blocks: { number: bigint; hash: Hex }[], keep: number): void;
  forgetAbove(block: bigint): void;
  claim(e: ClaimedEvent): boolean;
  claimedAbove(block: bigint): ClaimedEvent[];
  atomically<T>(fn: () => T): T;
}

function dbStore(db: Db): WatcherStore {
  return {
    hashAt: (b) => blockHashAt(db, b),
    hashesBelow: (b, limit) => blockHashesBelow(db, b, limit),
    put: (blocks, keep) => putBlockHashes(db, blocks, keep),
    forgetAbove: (b) => forgetBlocksAbove(db, b),
    claim: (e) => claimEvent(db, e),
    claimedAbove: (b) => claimedAbove(db, b),
    atomically: (fn) => transaction(db, fn),
  };
}

function memoryStore(): WatcherStore {
  const hashes = new Map<bigint, Hex>();
  const claims = new Map<string, ClaimedEvent>();
  return {
    hashAt: (b) => hashes.get(b),
    hashesBelow: (b, limit) =>
      [...hashes]
        .filter(([n]) => n <= b)
        .sort((x, y) => (x[0] > y[0] ? -1 : 1))
        .slice(0, limit)
        .map(([number, hash]) => ({ number, hash })),
    put: (blocks, keep) => {
      for (const x of blocks) hashes.set(x.number, x.hash);
      const top = blocks.reduce((m, x) => (x.number > m ? x.number : m), -1n);
      for (const n of hashes.keys()) if (n <= top - BigInt(keep)) hashes.delete(n);
    },
    forgetAbove: (b) => {
      for (const n of hashes.keys()) if (n > b) hashes.delete(n);
    },
    claim: (e) => {
      const had = claims.has(e.key);
      claims.set(e.key, e);
      return !had;
    },
    claimedAbove: (b) => [...claims.values()].filter((e) => BigInt(e.block) > b).sort((x, y) => x.block - y.block),
    atomically: (fn) => fn(),
  };
}

export class VaultWatcher {
  readonly #o: WatcherOptions;
  readonly #store: WatcherStore;
  readonly #keep: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> = Promise.resolve();
  /** While set, the watcher does not process past this block (the session opening snapshot). */
  #ceiling: bigint | null = null;
  #lastProgressAt: number | null = null;
  head = 0n;

  constructor(opts: WatcherOptions) {
    this.#o = opts;
    this.#store = opts.db === undefined ? memoryStore() : dbStore(opts.db);
    this.#keep = opts.keepBlocks ?? 256;
  }

  /** When a poll last completed (ms since epoch; null: never): for /healthz. */
  get lastProgressAt(): number | null {
    return this.#lastProgressAt;
  }

  start(): void {
    this.#o.health?.expect(true);
    const loop = () => {
      this.#timer = setTimeout(() => {
        void this.poll()
          .catch((err) => {
            this.#o.health?.error(err);
            this.#o.onError?.(err);
          })
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
    this.#o.health?.expect(false);
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
    await this.#verifyCursor();
    let target = this.head - BigInt(o.confirmations);
    if (limit !== undefined && limit < target) target = limit;
    if (this.#ceiling !== null && this.#ceiling < target) target = this.#ceiling;
    const range = BigInt(o.maxRange ?? 2_000);
    for (let from = o.cursor() + 1n; from <= target; from = o.cursor() + 1n) {
      const to = from + range - 1n < target ? from + range - 1n : target;
      await this.#range(from, to);
    }
    this.#lastProgressAt = Date.now();
    o.health?.progress();
    o.metrics?.chainWatcherProgress.set(Math.floor(this.#lastProgressAt / 1000));
  }

  // ---------------------------------------------------------------- reorgs

  async #header(block: bigint): Promise<Header | undefined> {
    try {
      const b: Block = await this.#o.client.getBlock({ blockNumber: block });
      return { number: block, hash: b.hash!, parentHash: b.parentHash, logsBloom: b.logsBloom };
    } catch (err) {
      if (err instanceof BlockNotFoundError) return undefined;
      throw err;
    }
  }

  /** The cursor's block must still be the chain's; if not, find the fork and rewind to it. */
  async #verifyCursor(): Promise<void> {
    const cursor = this.#o.cursor();
    if (cursor < 0n) return;
    const stored = this.#store.hashAt(cursor);
    const actual = await this.#header(cursor);
    if (stored === undefined) {
      // First poll with this store (or after an upgrade): the cursor's block is the baseline.
      if (actual !== undefined) this.#store.atomically(() => this.#store.put([{ number: actual.number, hash: actual.hash }], this.#keep));
      return;
    }
    if (actual?.hash === stored) return;
    await this.#rewind(cursor);
  }

  async #rewind(cursor: bigint): Promise<void> {
    const o = this.#o;
    const remembered = this.#store.hashesBelow(cursor - 1n, this.#keep);
    let fork: bigint | undefined;
    for (const b of remembered) {
      if ((await this.#header(b.number))?.hash === b.hash) {
        fork = b.number;
        break;
      }
    }
    const exact = fork !== undefined;
    if (fork === undefined) fork = (remembered[remembered.length - 1]?.number ?? cursor) - 1n;
    const forkBlock = fork;
    const reverted = this.#store.claimedAbove(forkBlock);
    this.#store.atomically(() => {
      this.#store.forgetAbove(forkBlock);
      o.apply([], forkBlock);
    });
    o.metrics?.chainReorgs.inc();
    const info: ReorgInfo = { forkBlock, cursor, exact, reverted };
    o.log?.error(
      { forkBlock: Number(forkBlock), cursor: Number(cursor), depth: Number(cursor - forkBlock), exact, reverted: reverted.map((e) => `${e.kind} ${e.key} (block ${e.block})`) },
      exact
        ? "chain reorg below the watcher's cursor: rewound to the fork block"
        : `chain reorg deeper than the ${this.#keep} remembered blocks: rewound below them, fork not located`,
    );
    try {
      o.onReorg?.(info);
    } catch (err) {
      o.onError?.(err);
    }
  }

  // ---------------------------------------------------------------- a range

  async #headers(from: bigint, to: bigint): Promise<Header[]> {
    const out: Header[] = [];
    const n = Number(to - from) + 1;
    const width = this.#o.headerConcurrency ?? 16;
    for (let i = 0; i < n; i += width) {
      const batch = await Promise.all(Array.from({ length: Math.min(width, n - i) }, (_, k) => this.#header(from + BigInt(i + k))));
      for (const [k, h] of batch.entries()) {
        if (h === undefined) {
          const block = from + BigInt(i + k);
          throw new WatcherError(`block ${block} is not on the chain any more (a reorg in flight)`, { block, reason: "missing_block" });
        }
        out.push(h);
      }
    }
    return out;
  }

  async #range(from: bigint, to: bigint): Promise<void> {
    const o = this.#o;
    const headers = await this.#headers(from, to);
    const parent = this.#store.hashAt(from - 1n);
    if (parent !== undefined && headers[0]!.parentHash !== parent) {
      throw new WatcherError(`block ${from} does not build on the processed block ${from - 1n} (a reorg in flight)`, { block: from, reason: "reorg_in_flight" });
    }
    for (let i = 1; i < headers.length; i++) {
      if (headers[i]!.parentHash !== headers[i - 1]!.hash) {
        throw new WatcherError(`blocks ${headers[i - 1]!.number}..${headers[i]!.number} do not link (a reorg in flight)`, { block: headers[i]!.number, reason: "reorg_in_flight" });
      }
    }
    const logs = await o.client.getLogs({ address: o.vault, events: EVENTS, fromBlock: from, toBlock: to, strict: true });
    logs.sort((a, b) => (a.blockNumber === b.blockNumber ? a.logIndex! - b.logIndex! : Number(a.blockNumber! - b.blockNumber!)));
    const withLogs = new Set<bigint>();
    for (const log of logs) {
      const h = headers[Number(log.blockNumber! - from)];
      if (h === undefined || log.blockHash !== h.hash) {
        throw new WatcherError(`getLogs answered with a log of block ${log.blockNumber} from another fork`, { block: log.blockNumber!, reason: "foreign_logs" });
      }
      withLogs.add(h.number);
    }
    for (const h of headers) {
      if (withLogs.has(h.number) || !this.#mayHoldEvents(h)) continue;
      const again = await o.client.getLogs({ address: o.vault, events: EVENTS, blockHash: h.hash, strict: true });
      if (again.length > 0) {
        throw new WatcherError(`getLogs answered no vault events for blocks ${from}..${to}, but block ${h.number} holds ${again.length}: refusing the answer`, {
          block: h.number,
          reason: "missing_logs",
        });
      }
    }
    const events: { ev: VaultEvent; claim: ClaimedEvent }[] = [];
    const perTx = new Map<string, number>();
    for (const log of logs) {
      const n = perTx.get(log.transactionHash!) ?? 0;
      perTx.set(log.transactionHash!, n + 1);
      const ev = decode(log);
      if (ev === null) continue;
      const moved = ev.kind === "deposit" || ev.kind === "withdraw" ? { account: ev.address, token: ev.token } : {};
      events.push({ ev, claim: { key: `${log.transactionHash}:${n}`, kind: ev.kind, block: ev.block, blockHash: log.blockHash!, ...moved } });
    }
    let skipped: ClaimedEvent[] = [];
    this.#store.atomically(() => {
      skipped = [];
      const fresh: VaultEvent[] = [];
      for (const e of events) {
        if (this.#store.claim(e.claim)) fresh.push(e.ev);
        else skipped.push(e.claim);
      }
      o.apply(fresh, to);
      this.#store.put(
        headers.map((h) => ({ number: h.number, hash: h.hash })),
        this.#keep,
      );
    });
    if (skipped.length > 0) {
      o.log?.warn({ events: skipped.map((e) => `${e.kind} ${e.key} (block ${e.block})`) }, "vault events handed over before were skipped (mined again after a reorg)");
    }
  }

  #mayHoldEvents(h: Header): boolean {
    if (h.logsBloom === null) return true;
    return bloomMayContain(h.logsBloom, this.#o.vault) && TOPICS.some((t) => bloomMayContain(h.logsBloom!, t));
  }
}

function decode(log: Log<bigint, number, false>): VaultEvent | null {
  const block = Number(log.blockNumber);
  const id = `${log.transactionHash}:${log.logIndex}`;
  const a = (log as unknown as { args: Record<string, unknown> }).args;
  switch ((log as unknown as { eventName: string }).eventName) {
    case "AccountRegistered":
      return { kind: "account", block, accountId: Number(a.accountId), address: a.account as Address };
    case "Deposited":
      return { kind: "deposit", block, id, address: a.account as Address, token: a.token as Address, amount: a.amount as bigint, balance: a.balance as bigint };
    case "Withdrawn":
      return {
        kind: "withdraw",
        block,
        id,
        address: a.account as Address,
        token: a.token as Address,
        amount: a.amount as bigint,
        balance: a.balance as bigint,
        sessionId: Number(a.sessionId),
      };
    case "SessionFinalized":
      return { kind: "finalized", block, sessionId: Number(a.sessionId) };
    case "SessionVoided":
      return { kind: "voided", block, sessionId: Number(a.sessionId) };
    default:
      return null;
  }
}
