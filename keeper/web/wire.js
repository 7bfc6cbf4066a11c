// The keeper's wire (the JSON schemas of keeper/api/schemas.ts: its routes and its /ws stream)
// translated into the page's model in one place: pairs by numeric id, trades with a unique key and
// the taker's side, addresses and account ids under one name. Everything else in the page reads
// only these shapes.

/** The session phases in order: SESSION_PHASES of keeper/core/phases.ts (no build step here to import it). */
export const PHASES = ["pre_session", "trading", "closing", "settling", "settled"];

/** Pair config: `tickSize` quote base units per lot per tick, `lotSize` base units per lot, prices in ticks. */
export function normPair(p) {
  return {
    id: p.id,
    symbol: p.symbol,
    base: p.baseIndex,
    quote: p.quoteIndex,
    tickSize: String(p.quotePerTickLot),
    lotSize: p.lotSize,
    referencePrice: p.referencePriceTicks,
    takerFeeBps: p.takerFeeBps,
    makerFeeBps: p.makerFeeBps,
  };
}

export function normSession(s) {
  const d = s.durations;
  return {
    id: s.id,
    phase: s.phase,
    phaseStartedAt: s.phaseStartedAt,
    phaseEndsAt: s.phaseEndsAt,
    serverTime: s.serverTime,
    chainId: s.chainId,
    vault: s.vault,
    durations: { preSessionMs: d.preSessionSec * 1000, tradingMs: d.tradingSec * 1000, closingMs: d.closingSec * 1000 },
    tokens: s.tokens.map((t) => ({ index: t.index, symbol: t.symbol, address: t.address, decimals: t.decimals })),
    pairs: s.pairs.map(normPair),
  };
}

/** The pair id of a wire symbol ("PEPE/USDC"), or null for a pair this session does not list. */
export function pairIdOf(state, symbol) {
  return state.pairIds.get(symbol) ?? null;
}

const level = (l) => ({ price: l.price, size: l.size, orders: l.orders });

export function normBook(state, b) {
  const pair = pairIdOf(state, b.pair);
  if (pair === null) return null;
  return { pair, bids: b.bids.map(level), asks: b.asks.map(level), ts: b.ts };
}

/** A trade; `block` marks a request for quote's block trade (off the book: the requester is the taker, the quoter the maker). */
export function normTrade(state, t) {
  const pair = pairIdOf(state, t.pair);
  if (pair === null) return null;
  return { key: `${pair}:${t.seq}`, id: t.seq, pair, price: t.price, size: t.size, side: t.takerSide, maker: t.maker, taker: t.taker, ts: t.ts, block: t.block === true };
}

export function normOutcry(o) {
  return { address: o.account, accountId: o.accountId, broker: o.broker, line: o.line, ts: o.ts };
}

/**
 * A `liquidation` message: the keeper closed an account out below maintenance margin. It joins the
 * outcry feed as the keeper's line (kind "liquidation"), never as the broker's. Amounts are decimal
 * strings of base units, prices ticks (an average, so not always whole).
 */
export function normLiquidation(l) {
  return {
    kind: "liquidation",
    address: l.account,
    accountId: l.accountId,
    broker: l.broker ?? null,
    covered: (l.covered ?? []).map((c) => ({ pair: c.pair, asset: c.asset, side: c.side, lots: c.lots, price: c.price })),
    fee: l.fee,
    fullyCovered: l.fullyCovered !== false,
    line: l.line ?? "",
    ts: l.ts,
  };
}

// Requests for quote (keeper/core/rfq.ts). Sides are the requester's for a request and the
// quoter's (the other one) for a quote; sizes are lots, prices ticks; `limit` null is no limit.
// The stream never says when a request is locked or unlocked: only GET /api/quotes does.

export function normQuote(q) {
  return { id: q.quoteId, requestId: q.requestId, quoter: q.quoter, side: q.side, price: q.price, size: q.size, validUntil: q.validUntil };
}

/** GET /api/quotes' request, or (without `remaining`, `lockedBy`, `quotes`) a `trade_request` message. */
export function normRequest(state, r) {
  const pair = pairIdOf(state, r.pair);
  if (pair === null) return null;
  return {
    id: r.requestId,
    pair,
    accountId: r.accountId,
    side: r.side,
    size: r.size,
    remaining: r.remaining ?? r.size,
    limit: r.limit ?? null,
    expiresAt: r.expiresAt,
    whitelisted: r.whitelisted === true,
    minFill: r.minFill,
    remainder: r.remainder,
    lockedBy: r.lockedBy ?? null,
    quotes: (r.quotes ?? []).map(normQuote),
    ts: r.ts ?? null,
  };
}

/** `quote_accepted`: `status` "filled" or "dropped" ends the request, "open" keeps `remaining` open. */
export function normAccepted(state, a) {
  return { requestId: a.requestId, pair: pairIdOf(state, a.pair), accountId: a.accountId, side: a.side, filled: a.filled, quoteIds: a.quoteIds, remaining: a.remaining, status: a.status, ts: a.ts };
}

/** `request_expired` / `request_cancelled`: the request itself when `quoteId` is null, else one quote of it. */
export function normRfqEnd(state, e, how) {
  return { how, requestId: e.requestId, quoteId: e.quoteId ?? null, pair: pairIdOf(state, e.pair), accountId: e.accountId, side: e.side, remaining: e.remaining, reason: e.reason ?? null, ts: e.ts };
}

/** A leaderboard row: PnL and equity in quote base units, as decimal strings. */
export function normRow(r) {
  return { address: r.account, accountId: r.accountId, rank: r.rank, broker: r.broker, pnl: r.pnl, equity: r.equity };
}

/** Top prompts arrive as a flat list, newest session first; the page shows them per session. */
export function normTopPrompts(list) {
  const bySession = new Map();
  for (const p of list) {
    if (!bySession.has(p.sessionId)) bySession.set(p.sessionId, []);
    bySession.get(p.sessionId).push({ address: p.account, rank: p.rank, broker: p.brokerId, pnl: p.pnl, prompt: p.prompt });
  }
  return [...bySession.entries()]
    .sort((a, b) => b[0] - a[0])
    .map(([sessionId, prompts]) => ({ sessionId, prompts: prompts.sort((a, b) => a.rank - b.rank) }));
}

export function normBrokers(list) {
  return list.map((b) => ({ id: b.id, name: b.name, kind: b.kind, available: b.available, reason: b.reason, description: b.description ?? "" }));
}

/** GET /api/accounts/:address: balances per token as {vault (on-chain), pit (inventory, signed), reserved}. */
export function normAccount(state, a) {
  const balances = new Map(a.inventory.map((b) => [b.index, { vault: b.onChain, pit: b.amount, reserved: b.reserved }]));
  return {
    address: a.account,
    accountId: a.accountId,
    broker: a.brokerId,
    pairs: a.pairs ?? [],
    repromptUsed: a.repromptUsed,
    balances,
    openOrders: a.openOrders.map((o) => ({ ...o, pair: pairIdOf(state, o.pair) })),
    margin:
      a.marginStatus === null ? null : { status: a.marginStatus, equity: a.equity, initialMargin: a.initialMargin, maintenanceMargin: a.maintenanceMargin },
    pnl: a.pnl,
  };
}

/**
 * GET /api/accounts/:address/withdrawal: how the wallet can withdraw a token now. `route` is
 * "direct" (vault.withdraw), "permit" (the keeper's permit, then vault.withdrawWithPermit) or
 * "wait"; `available` base units now; `reason` follows "up to <available> now:".
 */
export function normWithdrawal(w) {
  return {
    token: w.token,
    tokenAddress: w.tokenAddress,
    decimals: w.decimals,
    sessionId: w.sessionId,
    phase: w.phase,
    vaultPhase: w.vaultPhase,
    route: w.route,
    code: w.code,
    available: BigInt(w.available),
    balance: BigInt(w.balance),
    reason: w.reason,
  };
}

/** Settlement progress: committing the root, posting batches, finalized or voided. */
export function normSettlement(s) {
  const posted = s.onChain?.batchesPosted ?? s.batchesConfirmed;
  const stage =
    s.status === "finalized" || s.status === "voided"
      ? s.status
      : s.status === "begun"
        ? posted >= s.batchCount && s.batchCount > 0
          ? "finalizing"
          : "posting"
        : "preparing";
  return { sessionId: s.sessionId, stage, batchesPosted: posted, batchCount: s.batchCount };
}
