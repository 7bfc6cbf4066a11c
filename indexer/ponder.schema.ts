// The vault's on-chain record. Append-only event tables (deposit, withdrawal, settlementBatch,
// delta) are keyed by the event id and never updated; beside them, aggregates (account, token,
// balance, session, sessionTokenNet, vault) are what the UI reads.
//
// Ids: the vault's uint32 account ids and session ids and uint8 token indexes are `integer`
// columns (GraphQL Int). Amounts are `bigint` (numeric(78), GraphQL BigInt as a decimal string).
import { index, onchainEnum, onchainTable, primaryKey, relations } from "ponder";

export const sessionPhase = onchainEnum("session_phase", ["trading", "settling", "finalized", "voided"]);

/** One row per vault: settings and counters from its events. */
export const vault = onchainTable("vault", (t) => ({
  address: t.hex().primaryKey(),
  chainId: t.integer().notNull(),
  gracePeriod: t.bigint(),
  tokenCount: t.integer().notNull(),
  accountCount: t.integer().notNull(),
  /** the latest session started (0 before the first) */
  currentSessionId: t.integer().notNull(),
}));

export const token = onchainTable(
  "token",
  (t) => ({
    address: t.hex().primaryKey(),
    tokenIndex: t.integer().notNull(),
    decimals: t.integer().notNull(),
    /** read from the token when listed; null if it has no symbol() */
    symbol: t.text(),
    listedBlock: t.bigint().notNull(),
    listedAt: t.bigint().notNull(),
    listedTx: t.hex().notNull(),
  }),
  (table) => ({ tokenIndexIdx: index().on(table.tokenIndex) }),
);

export const account = onchainTable(
  "account",
  (t) => ({
    address: t.hex().primaryKey(),
    accountId: t.integer().notNull(),
    registeredBlock: t.bigint().notNull(),
    registeredAt: t.bigint().notNull(),
    registeredTx: t.hex().notNull(),
  }),
  (table) => ({ accountIdIdx: index().on(table.accountId) }),
);

/**
 * What each account owns of each token: deposits minus withdrawals plus the deltas of every
 * finalized session. Equals the vault's `balanceOf(account, token)`.
 */
export const balance = onchainTable(
  "balance",
  (t) => ({
    account: t.hex().notNull(),
    token: t.hex().notNull(),
    accountId: t.integer().notNull(),
    tokenIndex: t.integer().notNull(),
    amount: t.bigint().notNull(),
    /** the last finalized session that changed this balance */
    lastSessionId: t.integer(),
    updatedBlock: t.bigint().notNull(),
    updatedAt: t.bigint().notNull(),
  }),
  (table) => ({
    pk: primaryKey({ columns: [table.account, table.token] }),
    accountIdIdx: index().on(table.accountId),
    tokenIdx: index().on(table.token),
  }),
);

export const deposit = onchainTable(
  "deposit",
  (t) => ({
    id: t.text().primaryKey(),
    account: t.hex().notNull(),
    accountId: t.integer().notNull(),
    token: t.hex().notNull(),
    tokenIndex: t.integer().notNull(),
    /** who paid (differs from `account` for depositFor) */
    from: t.hex().notNull(),
    /** what the vault credited (what it received) */
    amount: t.bigint().notNull(),
    /** the account's balance after the deposit, as the vault reported it */
    balanceAfter: t.bigint().notNull(),
    block: t.bigint().notNull(),
    timestamp: t.bigint().notNull(),
    tx: t.hex().notNull(),
    logIndex: t.integer().notNull(),
  }),
  (table) => ({ accountIdx: index().on(table.account), tokenIdx: index().on(table.token) }),
);

export const withdrawal = onchainTable(
  "withdrawal",
  (t) => ({
    id: t.text().primaryKey(),
    account: t.hex().notNull(),
    accountId: t.integer().notNull(),
    token: t.hex().notNull(),
    tokenIndex: t.integer().notNull(),
    to: t.hex().notNull(),
    amount: t.bigint().notNull(),
    balanceAfter: t.bigint().notNull(),
    /** the trading session a permit was signed for; 0 for a withdrawal outside sessions */
    sessionId: t.integer().notNull(),
    block: t.bigint().notNull(),
    timestamp: t.bigint().notNull(),
    tx: t.hex().notNull(),
    logIndex: t.integer().notNull(),
  }),
  (table) => ({ accountIdx: index().on(table.account), tokenIdx: index().on(table.token) }),
);

export const session = onchainTable("session", (t) => ({
  sessionId: t.integer().primaryKey(),
  phase: sessionPhase("phase").notNull(),
  startedAt: t.bigint().notNull(),
  deadline: t.bigint().notNull(),
  startedBlock: t.bigint().notNull(),
  startedTx: t.hex().notNull(),
  /** head of the batch hash onion committed at beginSettlement */
  batchRoot: t.hex(),
  /** keccak256 of the keeper's published fill log */
  fillLogHash: t.hex(),
  batchCount: t.integer(),
  batchesPosted: t.integer().notNull(),
  entryCount: t.integer().notNull(),
  settlementBegunAt: t.bigint(),
  settlementBegunBlock: t.bigint(),
  settlementBegunTx: t.hex(),
  finalizedAt: t.bigint(),
  finalizedBlock: t.bigint(),
  finalizedTx: t.hex(),
  voidedAt: t.bigint(),
  voidedBlock: t.bigint(),
  voidedTx: t.hex(),
  voidedBy: t.hex(),
}));

/** Every posted batch, with its packed entries as posted (auditors rebuild the batch chain from these). */
export const settlementBatch = onchainTable(
  "settlement_batch",
  (t) => ({
    id: t.text().primaryKey(),
    sessionId: t.integer().notNull(),
    batchIndex: t.integer().notNull(),
    entryCount: t.integer().notNull(),
    entries: t.hex().notNull(),
    entriesHash: t.hex().notNull(),
    block: t.bigint().notNull(),
    timestamp: t.bigint().notNull(),
    tx: t.hex().notNull(),
    logIndex: t.integer().notNull(),
  }),
  (table) => ({ sessionIdx: index().on(table.sessionId, table.batchIndex) }),
);

/** Every posted (account, token, delta) entry. Applied to balances only if its session is finalized. */
export const delta = onchainTable(
  "delta",
  (t) => ({
    /** `<BatchPosted event id>-<entry index>` */
    id: t.text().primaryKey(),
    sessionId: t.integer().notNull(),
    batchIndex: t.integer().notNull(),
    entryIndex: t.integer().notNull(),
    account: t.hex().notNull(),
    accountId: t.integer().notNull(),
    token: t.hex().notNull(),
    tokenIndex: t.integer().notNull(),
    delta: t.bigint().notNull(),
    block: t.bigint().notNull(),
    timestamp: t.bigint().notNull(),
    tx: t.hex().notNull(),
  }),
  (table) => ({
    sessionIdx: index().on(table.sessionId, table.tokenIndex),
    accountIdx: index().on(table.account),
  }),
);

/**
 * Deltas posted for a session that is neither finalized nor voided yet: the working set that
 * finalize folds into `balance` and void discards. Empty for closed sessions.
 */
export const pendingDelta = onchainTable(
  "pending_delta",
  (t) => ({
    sessionId: t.integer().notNull(),
    accountId: t.integer().notNull(),
    tokenIndex: t.integer().notNull(),
    account: t.hex().notNull(),
    token: t.hex().notNull(),
    delta: t.bigint().notNull(),
  }),
  (table) => ({
    pk: primaryKey({ columns: [table.sessionId, table.accountId, table.tokenIndex] }),
    accountIdx: index().on(table.account),
  }),
);

/** Per session and token: the sum of posted deltas. `net` must be zero for a session to finalize. */
export const sessionTokenNet = onchainTable(
  "session_token_net",
  (t) => ({
    sessionId: t.integer().notNull(),
    tokenIndex: t.integer().notNull(),
    token: t.hex().notNull(),
    net: t.bigint().notNull(),
    /** sum of positive deltas */
    credits: t.bigint().notNull(),
    /** sum of the magnitudes of negative deltas */
    debits: t.bigint().notNull(),
    entryCount: t.integer().notNull(),
  }),
  (table) => ({ pk: primaryKey({ columns: [table.sessionId, table.tokenIndex] }) }),
);

// ------------------------------------------------------------------ relations (GraphQL joins)

export const accountRelations = relations(account, ({ many }) => ({
  balances: many(balance),
  deposits: many(deposit),
  withdrawals: many(withdrawal),
  deltas: many(delta),
  pendingDeltas: many(pendingDelta),
}));

export const tokenRelations = relations(token, ({ many }) => ({
  balances: many(balance),
}));

export const balanceRelations = relations(balance, ({ one }) => ({
  accountInfo: one(account, { fields: [balance.account], references: [account.address] }),
  tokenInfo: one(token, { fields: [balance.token], references: [token.address] }),
}));

export const depositRelations = relations(deposit, ({ one }) => ({
  accountInfo: one(account, { fields: [deposit.account], references: [account.address] }),
  tokenInfo: one(token, { fields: [deposit.token], references: [token.address] }),
}));

export const withdrawalRelations = relations(withdrawal, ({ one }) => ({
  accountInfo: one(account, { fields: [withdrawal.account], references: [account.address] }),
  tokenInfo: one(token, { fields: [withdrawal.token], references: [token.address] }),
}));

export const sessionRelations = relations(session, ({ many }) => ({
  batches: many(settlementBatch),
  deltas: many(delta),
  tokenNets: many(sessionTokenNet),
  pendingDeltas: many(pendingDelta),
}));

export const settlementBatchRelations = relations(settlementBatch, ({ one }) => ({
  session: one(session, { fields: [settlementBatch.sessionId], references: [session.sessionId] }),
}));

export const deltaRelations = relations(delta, ({ one }) => ({
  session: one(session, { fields: [delta.sessionId], references: [session.sessionId] }),
  accountInfo: one(account, { fields: [delta.account], references: [account.address] }),
  tokenInfo: one(token, { fields: [delta.token], references: [token.address] }),
}));

export const pendingDeltaRelations = relations(pendingDelta, ({ one }) => ({
  session: one(session, { fields: [pendingDelta.sessionId], references: [session.sessionId] }),
  accountInfo: one(account, { fields: [pendingDelta.account], references: [account.address] }),
}));

export const sessionTokenNetRelations = relations(sessionTokenNet, ({ one }) => ({
  session: one(session, { fields: [sessionTokenNet.sessionId], references: [session.sessionId] }),
  tokenInfo: one(token, { fields: [sessionTokenNet.token], references: [token.address] }),
}));
