// Indexing functions for the vault. Handlers only write context.db.
//
// Balances follow the vault's lazy accounting: deposits and withdrawals change them at once;
// a session's posted deltas wait in `pending_delta` and are folded into `balance` in one
// set-based statement at SessionFinalized, or dropped at SessionVoided / SessionVetoed.
import { ponder, type Context, type Event } from "ponder:registry";
import {
  account,
  balance,
  delta,
  deposit,
  pendingDelta,
  session,
  sessionTokenNet,
  settlementBatch,
  token,
  vault,
  withdrawal,
} from "ponder:schema";
import { eq, inArray, sql } from "ponder";
import { erc20Abi, keccak256, type Hex } from "viem";
import { decodeEntries } from "./entries.ts";

type AnyContext = Context;
type AnyEvent = Event;

/** Rows per multi-row INSERT: 12 columns each stays far below Postgres' 65,535 parameters. */
const SQL_ROWS_PER_STATEMENT = 1_000;

type VaultRow = typeof vault.$inferSelect;

/** Applies `change` to the vault's row, creating the row on the vault's first event. */
async function updateVault(context: AnyContext, change: (row: VaultRow) => Partial<VaultRow>): Promise<void> {
  const key = { address: context.contracts.CMEVault.address.toLowerCase() as Hex };
  const row =
    (await context.db.find(vault, key)) ??
    (await context.db
      .insert(vault)
      .values({ ...key, chainId: context.chain.id, gracePeriod: null, tokenCount: 0, accountCount: 0, currentSessionId: 0 }));
  await context.db.update(vault, key).set(change(row));
}

function where(event: AnyEvent) {
  return { block: event.block.number, timestamp: event.block.timestamp, tx: event.transaction.hash };
}

async function accountIdOf(context: AnyContext, address: Hex): Promise<number> {
  const row = await context.db.find(account, { address });
  if (row === null) throw new Error(`indexer: event for unregistered account ${address}`);
  return row.accountId;
}

async function tokenIndexOf(context: AnyContext, address: Hex): Promise<number> {
  const row = await context.db.find(token, { address });
  if (row === null) throw new Error(`indexer: event for unlisted token ${address}`);
  return row.tokenIndex;
}

ponder.on("CMEVault:GracePeriodSet", async ({ event, context }) => {
  await updateVault(context, () => ({ gracePeriod: event.args.gracePeriod }));
});

ponder.on("CMEVault:TokenListed", async ({ event, context }) => {
  let symbol: string | null = null;
  try {
    symbol = await context.client.readContract({ abi: erc20Abi, address: event.args.token, functionName: "symbol" });
  } catch {
    // symbol() is optional in ERC-20.
  }
  const at = where(event);
  await context.db.insert(token).values({
    address: event.args.token.toLowerCase() as Hex,
    tokenIndex: event.args.tokenIndex,
    decimals: event.args.decimals,
    symbol,
    listedBlock: at.block,
    listedAt: at.timestamp,
    listedTx: at.tx,
  });
  await updateVault(context, (row) => ({ tokenCount: row.tokenCount + 1 }));
});

ponder.on("CMEVault:AccountRegistered", async ({ event, context }) => {
  const at = where(event);
  await context.db.insert(account).values({
    address: event.args.account.toLowerCase() as Hex,
    accountId: event.args.accountId,
    registeredBlock: at.block,
    registeredAt: at.timestamp,
    registeredTx: at.tx,
  });
  await updateVault(context, (row) => ({ accountCount: row.accountCount + 1 }));
});

ponder.on("CMEVault:Deposited", async ({ event, context }) => {
  const owner = event.args.account.toLowerCase() as Hex;
  const tokenAddress = event.args.token.toLowerCase() as Hex;
  const [accountId, tokenIndex] = await Promise.all([accountIdOf(context, owner), tokenIndexOf(context, tokenAddress)]);
  const at = where(event);
  await context.db.insert(deposit).values({
    id: event.id,
    account: owner,
    accountId,
    token: tokenAddress,
    tokenIndex,
    from: event.args.from.toLowerCase() as Hex,
    amount: event.args.amount,
    balanceAfter: event.args.balance,
    block: at.block,
    timestamp: at.timestamp,
    tx: at.tx,
    logIndex: event.log.logIndex,
  });
  await context.db
    .insert(balance)
    .values({
      account: owner,
      token: tokenAddress,
      accountId,
      tokenIndex,
      amount: event.args.amount,
      lastSessionId: null,
      updatedBlock: at.block,
      updatedAt: at.timestamp,
    })
    .onConflictDoUpdate((row) => ({ amount: row.amount + event.args.amount, updatedBlock: at.block, updatedAt: at.timestamp }));
});

ponder.on("CMEVault:Withdrawn", async ({ event, context }) => {
  const owner = event.args.account.toLowerCase() as Hex;
  const tokenAddress = event.args.token.toLowerCase() as Hex;
  const [accountId, tokenIndex] = await Promise.all([accountIdOf(context, owner), tokenIndexOf(context, tokenAddress)]);
  const at = where(event);
  await context.db.insert(withdrawal).values({
    id: event.id,
    account: owner,
    accountId,
    token: tokenAddress,
    tokenIndex,
    to: event.args.to.toLowerCase() as Hex,
    amount: event.args.amount,
    balanceAfter: event.args.balance,
    sessionId: event.args.sessionId,
    block: at.block,
    timestamp: at.timestamp,
    tx: at.tx,
    logIndex: event.log.logIndex,
  });
  const current = await context.db.find(balance, { account: owner, token: tokenAddress });
  if (current === null) throw new Error(`indexer: withdrawal of ${tokenAddress} by ${owner}, who has no balance row`);
  await context.db
    .update(balance, { account: owner, token: tokenAddress })
    .set({ amount: current.amount - event.args.amount, updatedBlock: at.block, updatedAt: at.timestamp });
});

ponder.on("CMEVault:SessionStarted", async ({ event, context }) => {
  const at = where(event);
  await context.db.insert(session).values({
    sessionId: event.args.sessionId,
    phase: "trading",
    startedAt: event.args.startedAt,
    deadline: event.args.deadline,
    startedBlock: at.block,
    startedTx: at.tx,
    batchesPosted: 0,
    entryCount: 0,
  });
  await updateVault(context, () => ({ currentSessionId: event.args.sessionId }));
});

ponder.on("CMEVault:SettlementBegun", async ({ event, context }) => {
  const at = where(event);
  await context.db.update(session, { sessionId: event.args.sessionId }).set({
    phase: "settling",
    batchRoot: event.args.batchRoot,
    fillLogHash: event.args.fillLogHash,
    batchCount: event.args.batchCount,
    settlementBegunAt: at.timestamp,
    settlementBegunBlock: at.block,
    settlementBegunTx: at.tx,
  });
});

ponder.on("CMEVault:BatchPosted", async ({ event, context }) => {
  const { sessionId, index: batchIndex, entries } = event.args;
  const at = where(event);
  const decoded = decodeEntries(entries);

  // One query resolves every id in the batch to its address (a batch names hundreds of accounts).
  const accountIds = [...new Set(decoded.map((e) => e.accountId))];
  const tokenIndexes = [...new Set(decoded.map((e) => e.tokenIndex))];
  const [accountRows, tokenRows] = await Promise.all([
    context.db.sql.select({ id: account.accountId, address: account.address }).from(account).where(inArray(account.accountId, accountIds)),
    context.db.sql.select({ index: token.tokenIndex, address: token.address }).from(token).where(inArray(token.tokenIndex, tokenIndexes)),
  ]);
  const accountAddress = new Map(accountRows.map((r) => [r.id, r.address]));
  const tokenAddress = new Map(tokenRows.map((r) => [r.index, r.address]));

  const rows = decoded.map((e, entryIndex) => {
    const owner = accountAddress.get(e.accountId);
    const asset = tokenAddress.get(e.tokenIndex);
    if (owner === undefined) throw new Error(`indexer: session ${sessionId} batch ${batchIndex}: unknown account id ${e.accountId}`);
    if (asset === undefined) throw new Error(`indexer: session ${sessionId} batch ${batchIndex}: unknown token index ${e.tokenIndex}`);
    return { ...e, entryIndex, account: owner, token: asset };
  });

  await context.db.insert(settlementBatch).values({
    id: event.id,
    sessionId,
    batchIndex,
    entryCount: rows.length,
    entries,
    entriesHash: keccak256(entries),
    block: at.block,
    timestamp: at.timestamp,
    tx: at.tx,
    logIndex: event.log.logIndex,
  });
  // Hundreds of rows whose keys no earlier event predicts: written as multi-row statements
  // rather than row by row through the store (whose per-row existence checks would each be a
  // database round trip once Ponder indexes live blocks).
  for (let from = 0; from < rows.length; from += SQL_ROWS_PER_STATEMENT) {
    const chunk = rows.slice(from, from + SQL_ROWS_PER_STATEMENT);
    await context.db.sql.insert(delta).values(
      chunk.map((r) => ({
        id: `${event.id}-${r.entryIndex}`,
        sessionId,
        batchIndex,
        entryIndex: r.entryIndex,
        account: r.account,
        accountId: r.accountId,
        token: r.token,
        tokenIndex: r.tokenIndex,
        delta: r.delta,
        block: at.block,
        timestamp: at.timestamp,
        tx: at.tx,
      })),
    );
  }
  // The vault refuses a second entry for the same (account, token) in a session; summing rather
  // than overwriting keeps the pending set equal to what was posted regardless.
  const pending = new Map<string, (typeof rows)[number]>();
  for (const r of rows) {
    const key = `${r.accountId}/${r.tokenIndex}`;
    const seen = pending.get(key);
    pending.set(key, seen === undefined ? r : { ...seen, delta: seen.delta + r.delta });
  }
  const pendingRows = [...pending.values()];
  for (let from = 0; from < pendingRows.length; from += SQL_ROWS_PER_STATEMENT) {
    await context.db.sql
      .insert(pendingDelta)
      .values(
        pendingRows.slice(from, from + SQL_ROWS_PER_STATEMENT).map((r) => ({
          sessionId,
          accountId: r.accountId,
          tokenIndex: r.tokenIndex,
          account: r.account,
          token: r.token,
          delta: r.delta,
        })),
      )
      .onConflictDoUpdate({
        target: [pendingDelta.sessionId, pendingDelta.accountId, pendingDelta.tokenIndex],
        set: { delta: sql`${pendingDelta.delta} + excluded.delta` },
      });
  }

  const perToken = new Map<number, { token: Hex; net: bigint; credits: bigint; debits: bigint; count: number }>();
  for (const r of rows) {
    const agg = perToken.get(r.tokenIndex) ?? { token: r.token, net: 0n, credits: 0n, debits: 0n, count: 0 };
    agg.net += r.delta;
    if (r.delta > 0n) agg.credits += r.delta;
    else agg.debits -= r.delta;
    agg.count += 1;
    perToken.set(r.tokenIndex, agg);
  }
  for (const [tokenIndex, agg] of perToken) {
    await context.db
      .insert(sessionTokenNet)
      .values({ sessionId, tokenIndex, token: agg.token, net: agg.net, credits: agg.credits, debits: agg.debits, entryCount: agg.count })
      .onConflictDoUpdate((row) => ({
        net: row.net + agg.net,
        credits: row.credits + agg.credits,
        debits: row.debits + agg.debits,
        entryCount: row.entryCount + agg.count,
      }));
  }

  await context.db.update(session, { sessionId }).set((row) => ({
    batchesPosted: row.batchesPosted + 1,
    entryCount: row.entryCount + rows.length,
  }));
});

ponder.on("CMEVault:SessionFinalized", async ({ event, context }) => {
  const { sessionId } = event.args;
  const at = where(event);
  // Fold the session's deltas into balances in one statement, then clear the working set.
  await context.db.sql
    .insert(balance)
    .select(
      context.db.sql
        .select({
          account: pendingDelta.account,
          token: pendingDelta.token,
          accountId: pendingDelta.accountId,
          tokenIndex: pendingDelta.tokenIndex,
          amount: pendingDelta.delta,
          lastSessionId: pendingDelta.sessionId,
          updatedBlock: sql<bigint>`${at.block.toString()}::numeric(78,0)`.as("updated_block"),
          updatedAt: sql<bigint>`${at.timestamp.toString()}::numeric(78,0)`.as("updated_at"),
        })
        .from(pendingDelta)
        .where(eq(pendingDelta.sessionId, sessionId)),
    )
    .onConflictDoUpdate({
      target: [balance.account, balance.token],
      set: {
        amount: sql`${balance.amount} + excluded.amount`,
        lastSessionId: sql`excluded.last_session_id`,
        updatedBlock: sql`excluded.updated_block`,
        updatedAt: sql`excluded.updated_at`,
      },
    });
  await context.db.sql.delete(pendingDelta).where(eq(pendingDelta.sessionId, sessionId));
  await context.db.update(session, { sessionId }).set({
    phase: "finalized",
    finalizedAt: at.timestamp,
    finalizedBlock: at.block,
    finalizedTx: at.tx,
  });
});

/** A void drops the session's pending deltas: every balance stays what it was. */
async function voided(context: AnyContext, event: AnyEvent, sessionId: number, by: Hex): Promise<void> {
  const at = where(event);
  await context.db.sql.delete(pendingDelta).where(eq(pendingDelta.sessionId, sessionId));
  await context.db.update(session, { sessionId }).set({
    phase: "voided",
    voidedAt: at.timestamp,
    voidedBlock: at.block,
    voidedTx: at.tx,
    voidedBy: by.toLowerCase() as Hex,
  });
}

ponder.on("CMEVault:SessionVoided", async ({ event, context }) => {
  await voided(context, event, event.args.sessionId, event.args.voidedBy);
});

// The guardian's veto voids the session the same way (voidedBy: the guardian).
ponder.on("CMEVault:SessionVetoed", async ({ event, context }) => {
  await voided(context, event, event.args.sessionId, event.args.guardian);
});
