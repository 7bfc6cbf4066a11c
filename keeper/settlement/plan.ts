// Step 3 of settlement: turns a closed-out session into its settlement plan: the engine's netted
// deltas cut into hash-chained batches, each one sized so its gas is bounded by its entries alone
// (batches.ts: batchGasBound), and the fill log whose hash is committed beside them.
// Pure: the same journal gives the same plan, byte for byte, which is what makes a resumed
// settlement safe.
import { buildBatchChain, netByToken, splitIntoBatches } from "./batches.ts";
import {
  deltasFromFillLog,
  encodeFillLog,
  FILL_LOG_VERSION,
  hashFillLog,
  type FillLog,
  type FillLogBalance,
  type FillLogEvent,
} from "./fill-log.ts";
import type { NetDelta } from "../core/types.ts";
import type { SettlementPlan } from "./store.ts";

/** What the fill log's header records of each pair traded. */
export interface PlanPair {
  id: number;
  symbol: string;
  base: number;
  quote: number;
  lotSize: bigint;
  quotePerTickLot: number;
}

export interface PlanInput {
  chainId: number;
  vault: string;
  sessionId: number;
  treasury: number;
  pairs: readonly PlanPair[];
  /** Opening balances (vault base units) of every account the session started with. */
  openingBalances: { accountId: number; tokenIndex: number; amount: bigint }[];
  /** Fills and value transfers in journal order. */
  events: FillLogEvent[];
  /** The engine's netted deltas. */
  deltas: readonly NetDelta[];
  maxEntriesPerBatch: number;
  /** Gas budget of one batch by batchGasBound (default DEFAULT_MAX_GAS_PER_BATCH, 12 M). */
  maxGasPerBatch?: number;
}

export class PlanMismatchError extends Error {
  override name = "PlanMismatchError";
}

export function buildPlan(input: PlanInput): { plan: SettlementPlan; fillLog: string; fillLogHash: `0x${string}` } {
  const balances: FillLogBalance[] = input.openingBalances
    .filter((b) => b.amount > 0n)
    .sort((a, b) => a.accountId - b.accountId || a.tokenIndex - b.tokenIndex)
    .map((b) => ({ type: "balance", accountId: b.accountId, tokenIndex: b.tokenIndex, amount: b.amount }));
  const log: FillLog = {
    header: {
      type: "header",
      version: FILL_LOG_VERSION,
      chainId: input.chainId,
      vault: input.vault.toLowerCase(),
      sessionId: input.sessionId,
      treasury: input.treasury,
      pairs: input.pairs.map((p) => ({ pairId: p.id, symbol: p.symbol, base: p.base, quote: p.quote, lotSize: p.lotSize, tickSize: BigInt(p.quotePerTickLot) })),
    },
    balances,
    events: input.events,
  };
  const fillLog = encodeFillLog(log);
  const fillLogHash = hashFillLog(fillLog);

  const deltas = input.deltas
    .filter((d) => d.delta !== 0n)
    .map((d) => ({ accountId: d.user, tokenIndex: d.asset, delta: d.delta }))
    .sort((a, b) => a.accountId - b.accountId || a.tokenIndex - b.tokenIndex);

  // An auditor recomputes the deltas from the published log: refuse to commit a log that does not.
  const fromLog = deltasFromFillLog(log);
  const key = (d: { accountId: number; tokenIndex: number; delta: bigint }) => `${d.accountId}:${d.tokenIndex}:${d.delta}`;
  const a = fromLog.map(key).join(",");
  const b = deltas.map(key).join(",");
  if (a !== b) {
    throw new PlanMismatchError(`session ${input.sessionId}: the fill log implies different deltas than the engine netted\n  log:    ${a}\n  engine: ${b}`);
  }

  for (const [token, sum] of netByToken(deltas)) {
    if (sum !== 0n) throw new PlanMismatchError(`session ${input.sessionId}: token ${token} deltas sum to ${sum}, not zero`);
  }

  const chain = buildBatchChain(input.sessionId, splitIntoBatches(deltas, input.maxEntriesPerBatch, input.maxGasPerBatch));
  return {
    plan: {
      sessionId: input.sessionId,
      batchRoot: chain.root,
      fillLogHash,
      batches: chain.links.map((l) => ({ index: l.index, entries: l.entries, entryCount: l.entryCount, next: l.next })),
      deltas,
    },
    fillLog,
    fillLogHash,
  };
}
