// Settlement batches as the vault reads them (contracts/interfaces/ICMEVault.sol):
// - an entry is 21 bytes, uint32 accountId | uint8 tokenIndex | int128 delta, big-endian, the delta
//   in two's complement and within int112 (the vault's balance slot holds int112 pending deltas);
// - the batches form a hash onion committed by its root at beginSettlement:
//   h_i = keccak256(abi.encode(uint32 sessionId, uint32 i, keccak256(entries_i), bytes32 h_{i+1})),
//   h_n = 0x00…00, root = h_0. Batch i is posted with next = h_{i+1}.
// Pure functions of their input (viem utilities only), so the keeper can rebuild the same chain
// after a restart and post the batches it had not posted yet.
import { encodeAbiParameters, keccak256, type Hex } from "viem";

export interface SettlementEntry {
  /** The vault's uint32 account id (the pit's user id). */
  accountId: number;
  /** The vault's uint8 token index. */
  tokenIndex: number;
  /** Signed change of the settled balance, in the token's base units. */
  delta: bigint;
}

export interface BatchLink {
  index: number;
  /** The packed entries, the `entries` argument of postBatch. */
  entries: Hex;
  /** h_{index+1}, the `next` argument of postBatch (zero for the last batch). */
  next: Hex;
  entryCount: number;
}

export interface BatchChain {
  /** h_0, the `batchRoot` argument of beginSettlement (zero when there are no batches). */
  root: Hex;
  links: BatchLink[];
}

export const ENTRY_BYTES = 21;
export const MAX_DELTA = 2n ** 111n - 1n;
export const MIN_DELTA = -(2n ** 111n);
export const ZERO_HASH: Hex = `0x${"00".repeat(32)}`;

/** EIP-7825's cap on one transaction's gas. */
export const TX_GAS_CAP = 16_777_216;

/**
 * Worst-case gas of a postBatch transaction, term by term, so a batch's gas is bounded by its
 * entries alone: the vault writes no storage slot for the first time in a batch except an entry's
 * own balance slot (the per-token nets are initialised at listToken). Measured with 255 tokens
 * listed (npm run bench:settle checks every batch it sends against the bound):
 * - perBatch: 21,000 base, session and chain checks, the event, the loops over 255 listed tokens,
 *   the last batch's challenge-window write, and the 4,800 gas refund of the last batch's head
 *   (a gas limit must cover gas before refunds): ~81,000 measured;
 * - perEntry: an entry writing a fresh slot (cold SLOAD 2,100 + zero-to-non-zero SSTORE 20,000),
 *   with 19 non-zero calldata bytes and its 21 log bytes: ~22,950 measured. A returning slot,
 *   even one whose pending session is read cold, costs under 8,000;
 * - perToken: each token the batch touches (cold read and rewrite of its net word): ~5,500;
 * plus memory expansion, quadratic in the batch's size (entryMemoryGas).
 */
export const BATCH_GAS = { perBatch: 90_000, perEntry: 23_500, perToken: 6_000 } as const;

/**
 * Default gas budget of one batch: well under TX_GAS_CAP, with room for the keeper's tx sender,
 * which sets a gas limit of 1.2 x its estimate + 10,000 (at most 14.4 M here).
 */
export const DEFAULT_MAX_GAS_PER_BATCH = 12_000_000;

/**
 * Default cap on a batch's entry count. The gas budget binds first (about 500 entries over a
 * couple of tokens, 455 over 200): it prices every entry as a fresh slot, because the keeper
 * cannot know which slots are fresh, so a batch fits whatever the slots hold. Returning
 * participants cost ~6,000 gas each, a quarter of that.
 */
export const DEFAULT_MAX_ENTRIES_PER_BATCH = 600;

const MAX_UINT32 = 2 ** 32 - 1;
const MASK_128 = (1n << 128n) - 1n;

export class SettlementEncodingError extends Error {
  override name = "SettlementEncodingError";
  constructor(
    message: string,
    readonly details: { field: string; index?: number; value?: unknown },
  ) {
    super(message);
  }
}

/** Packs entries, 21 bytes each, in the given order. */
export function encodeEntries(entries: readonly SettlementEntry[]): Hex {
  const parts = new Array<string>(entries.length);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    checkEntry(e, i);
    parts[i] =
      e.accountId.toString(16).padStart(8, "0") +
      e.tokenIndex.toString(16).padStart(2, "0") +
      (e.delta & MASK_128).toString(16).padStart(32, "0");
  }
  return `0x${parts.join("")}`;
}

/** Unpacks what encodeEntries packed (and what BatchPosted carries). */
export function decodeEntries(data: Hex): SettlementEntry[] {
  const hex = data.slice(2);
  if (hex.length % (ENTRY_BYTES * 2) !== 0) {
    throw new SettlementEncodingError(`entries: ${hex.length / 2} bytes is not a multiple of ${ENTRY_BYTES}`, {
      field: "entries",
      value: hex.length / 2,
    });
  }
  const out: SettlementEntry[] = [];
  for (let p = 0; p < hex.length; p += ENTRY_BYTES * 2) {
    const raw = BigInt(`0x${hex.slice(p + 10, p + 42)}`);
    out.push({
      accountId: Number.parseInt(hex.slice(p, p + 8), 16),
      tokenIndex: Number.parseInt(hex.slice(p + 8, p + 10), 16),
      delta: raw >= 1n << 127n ? raw - (1n << 128n) : raw,
    });
  }
  return out;
}

/** Memory expansion of postBatch for `entries` entries (3 gas per word plus words^2 / 512). */
function entryMemoryGas(entries: number): number {
  const words = Math.ceil((ENTRY_BYTES * entries) / 32) + 300; // the log copy, plus nets and ABI scratch
  return 3 * words + Math.floor((words * words) / 512);
}

/** Upper bound on the gas of posting `batch` (see BATCH_GAS). */
export function batchGasBound(batch: readonly SettlementEntry[]): number {
  const tokens = new Set(batch.map((e) => e.tokenIndex)).size;
  return BATCH_GAS.perBatch + batch.length * BATCH_GAS.perEntry + tokens * BATCH_GAS.perToken + entryMemoryGas(batch.length);
}

/**
 * Cuts entries into consecutive batches, keeping their order, each of at most
 * `maxEntriesPerBatch` entries and at most `maxGasPerBatch` by batchGasBound.
 */
export function splitIntoBatches(
  entries: readonly SettlementEntry[],
  maxEntriesPerBatch: number = DEFAULT_MAX_ENTRIES_PER_BATCH,
  maxGasPerBatch: number = DEFAULT_MAX_GAS_PER_BATCH,
): SettlementEntry[][] {
  if (!Number.isSafeInteger(maxEntriesPerBatch) || maxEntriesPerBatch < 1) {
    throw new SettlementEncodingError(`maxEntriesPerBatch must be a positive integer, got ${maxEntriesPerBatch}`, {
      field: "maxEntriesPerBatch",
      value: maxEntriesPerBatch,
    });
  }
  const oneEntry = BATCH_GAS.perBatch + BATCH_GAS.perEntry + BATCH_GAS.perToken + entryMemoryGas(1);
  if (!Number.isSafeInteger(maxGasPerBatch) || maxGasPerBatch < oneEntry || maxGasPerBatch > TX_GAS_CAP) {
    throw new SettlementEncodingError(`maxGasPerBatch must be an integer from ${oneEntry} to ${TX_GAS_CAP}, got ${maxGasPerBatch}`, {
      field: "maxGasPerBatch",
      value: maxGasPerBatch,
    });
  }
  const batches: SettlementEntry[][] = [];
  let batch: SettlementEntry[] = [];
  let tokens = new Set<number>();
  for (const e of entries) {
    const newToken = !tokens.has(e.tokenIndex);
    const gas =
      BATCH_GAS.perBatch +
      (batch.length + 1) * BATCH_GAS.perEntry +
      (tokens.size + (newToken ? 1 : 0)) * BATCH_GAS.perToken +
      entryMemoryGas(batch.length + 1);
    if (batch.length > 0 && (batch.length === maxEntriesPerBatch || gas > maxGasPerBatch)) {
      batches.push(batch);
      batch = [];
      tokens = new Set();
    }
    batch.push(e);
    tokens.add(e.tokenIndex);
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}

/** h_i for batch `index` given its packed entries and h_{index+1}. */
export function batchLinkHash(sessionId: number, index: number, entries: Hex, next: Hex): Hex {
  return keccak256(
    encodeAbiParameters(
      [{ type: "uint32" }, { type: "uint32" }, { type: "bytes32" }, { type: "bytes32" }],
      [sessionId, index, keccak256(entries), next],
    ),
  );
}

/**
 * Builds the hash onion over `batches` for `sessionId`. Refuses what the vault would refuse at
 * postBatch for the chain as a whole: empty batches and a second entry for the same
 * (account, token) anywhere in the session.
 */
export function buildBatchChain(sessionId: number, batches: readonly (readonly SettlementEntry[])[]): BatchChain {
  if (!Number.isInteger(sessionId) || sessionId < 1 || sessionId > MAX_UINT32) {
    throw new SettlementEncodingError(`sessionId must be a uint32 >= 1, got ${sessionId}`, {
      field: "sessionId",
      value: sessionId,
    });
  }
  const seen = new Set<number>();
  const encoded = batches.map((batch, b) => {
    if (batch.length === 0) {
      throw new SettlementEncodingError(`batch ${b} is empty`, { field: "batches", index: b });
    }
    for (const e of batch) {
      const key = e.accountId * 256 + e.tokenIndex;
      if (seen.has(key)) {
        throw new SettlementEncodingError(
          `batch ${b}: second entry for account ${e.accountId} token ${e.tokenIndex} (one delta per pair per session)`,
          { field: "batches", index: b, value: { accountId: e.accountId, tokenIndex: e.tokenIndex } },
        );
      }
      seen.add(key);
    }
    return encodeEntries(batch);
  });

  const links = new Array<BatchLink>(encoded.length);
  let next = ZERO_HASH;
  for (let i = encoded.length - 1; i >= 0; i--) {
    const entries = encoded[i]!;
    links[i] = { index: i, entries, next, entryCount: batches[i]!.length };
    next = batchLinkHash(sessionId, i, entries, next);
  }
  return { root: next, links };
}

/** Sum of deltas per token index; finalize requires every one to be zero. */
export function netByToken(entries: Iterable<SettlementEntry>): Map<number, bigint> {
  const nets = new Map<number, bigint>();
  for (const e of entries) nets.set(e.tokenIndex, (nets.get(e.tokenIndex) ?? 0n) + e.delta);
  return nets;
}

function checkEntry(e: SettlementEntry, index: number): void {
  if (!Number.isInteger(e.accountId) || e.accountId < 1 || e.accountId > MAX_UINT32) {
    throw new SettlementEncodingError(`entries[${index}].accountId must be a uint32 >= 1, got ${e.accountId}`, {
      field: "accountId",
      index,
      value: e.accountId,
    });
  }
  if (!Number.isInteger(e.tokenIndex) || e.tokenIndex < 0 || e.tokenIndex > 254) {
    throw new SettlementEncodingError(`entries[${index}].tokenIndex must be in 0..254, got ${e.tokenIndex}`, {
      field: "tokenIndex",
      index,
      value: e.tokenIndex,
    });
  }
  if (typeof e.delta !== "bigint" || e.delta < MIN_DELTA || e.delta > MAX_DELTA) {
    throw new SettlementEncodingError(`entries[${index}].delta must be a bigint within int112, got ${String(e.delta)}`, {
      field: "delta",
      index,
      value: e.delta,
    });
  }
}
