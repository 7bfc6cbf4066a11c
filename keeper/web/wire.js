// The keeper's wire (keeper/app.ts, keeper/keeper.ts, keeper/stream/hub.ts) translated into the
// page's model in one place: pairs by numeric id, trades with a unique key and the taker's side,
// phases as the keeper names them. Everything else in the page reads only these shapes.

export const PHASES = ["pre_session", "trading", "closing", "settling", "settled"];

export function normPhase(p) {
  return typeof p === "string" ? p.replace(/-/g, "_") : p;
}

/** Pair config: `tickSize` quote base units per lot per tick, `lotSize` base units per lot. */
export function normPair(p) {
  return {
    id: p.id,
    symbol: p.symbol,
    base: p.baseIndex ?? p.base,
    quote: p.quoteIndex ?? p.quote,
    tickSize: String(p.quotePerTickLot ?? p.tickSize ?? 1),
    lotSize: String(p.lotSize ?? 1),
    referencePrice: p.referencePriceTicks ?? p.referencePrice,
    referenceDisplay: typeof p.referencePrice === "string" ? p.referencePrice : undefined,
    takerFeeBps: p.takerFeeBps,
    makerFeeBps: p.makerFeeBps,
  };
}

export function normSession(s) {
  if (!s || typeof s !== "object" || s.id === undefined) return null;
  const d = s.durations ?? {};
  const ms = (sec, msv) => (typeof msv === "number" ? msv : typeof sec === "number" ? sec * 1000 : undefined);
  return {
    id: s.id,
    phase: normPhase(s.phase),
    phaseStartedAt: s.phaseStartedAt ?? null,
    phaseEndsAt: s.phaseEndsAt ?? null,
    serverTime: s.serverTime,
    chainId: s.chainId,
    vault: s.vault,
    durations: { preSessionMs: ms(d.preSessionSec, d.preSessionMs), tradingMs: ms(d.tradingSec, d.tradingMs), closingMs: ms(d.closingSec, d.closingMs) },
    tokens: (s.tokens ?? []).map((t) => ({ index: t.index, symbol: t.symbol, address: t.address, decimals: t.decimals })),
    pairs: (s.pairs ?? []).map(normPair),
  };
}

/** The pair id a wire message names, by symbol ("PEPE/USDC") or id. */
export function pairIdOf(state, pair) {
  if (typeof pair === "number") return state.pairs.has(pair) ? pair : null;
  if (typeof pair !== "string") return null;
  return state.pairIds.get(pair.toUpperCase().replace(/[-_]/, "/")) ?? null;
}

const level = (l) => ({ price: l.price, size: l.size, orders: l.orders });

export function normBook(state, b) {
  const pair = pairIdOf(state, b.pair);
  if (pair === null) return null;
  return { pair, bids: (b.bids ?? []).map(level), asks: (b.asks ?? []).map(level), ts: b.ts ?? 0 };
}

export function normTrade(state, t) {
  const pair = pairIdOf(state, t.pair);
  if (pair === null) return null;
  const seq = t.seq ?? t.id;
  return {
    key: `${pair}:${seq ?? `${t.ts}:${t.price}:${t.size}:${t.maker}:${t.taker}`}`,
    id: seq,
    pair,
    price: t.price,
    size: t.size,
    side: t.takerSide ?? t.side,
    maker: t.maker,
    taker: t.taker,
    ts: t.ts,
  };
}

/** Outcry, leaderboard and prompt rows: the address and the numeric account id, whichever the wire calls them. */
function who(r) {
  const address = typeof r.account === "string" && r.account.startsWith("0x") ? r.account : typeof r.address === "string" ? r.address : undefined;
  const accountId = typeof r.accountId === "number" ? r.accountId : typeof r.account === "number" ? r.account : undefined;
  return { address, accountId };
}

export function normOutcry(o) {
  return { ...who(o), broker: o.broker ?? o.brokerId ?? "", brokerName: o.brokerName, line: String(o.line ?? ""), ts: o.ts };
}

export function normRow(r, i) {
  return { ...who(r), rank: r.rank ?? i + 1, broker: r.broker ?? r.brokerId ?? "", brokerName: r.brokerName, pnl: String(r.pnl ?? "0"), equity: r.equity, trades: r.trades };
}

/** Top prompts arrive as a flat list, newest session first; the page shows them per session. */
export function normTopPrompts(raw) {
  const list = Array.isArray(raw) ? raw : (raw?.sessions ?? raw?.prompts ?? []);
  if (list.length > 0 && Array.isArray(list[0]?.prompts)) {
    return list.map((s) => ({ sessionId: s.sessionId, prompts: s.prompts.map((p, i) => ({ ...normRow(p, i), prompt: String(p.prompt ?? "") })) }));
  }
  const bySession = new Map();
  for (const p of list) {
    if (!bySession.has(p.sessionId)) bySession.set(p.sessionId, []);
    bySession.get(p.sessionId).push({ ...normRow(p, bySession.get(p.sessionId).length), prompt: String(p.prompt ?? "") });
  }
  return [...bySession.entries()]
    .sort((a, b) => b[0] - a[0])
    .map(([sessionId, prompts]) => ({ sessionId, prompts: prompts.sort((a, b) => a.rank - b.rank) }));
}

export function normBrokers(raw) {
  const list = Array.isArray(raw) ? raw : (raw?.brokers ?? []);
  return list.map((b) => ({
    id: b.id,
    name: b.name ?? b.displayName ?? b.id,
    kind: b.kind === "ai" ? "ai" : "rule",
    available: b.available !== false,
    reason: b.reason ?? b.unavailableReason,
    description: b.description ?? b.label ?? "",
  }));
}

/** GET /api/accounts/:address: balances per token as {vault (on-chain), pit (inventory, signed), reserved}. */
export function normAccount(state, a) {
  if (!a) return null;
  const balances = new Map();
  for (const b of a.inventory ?? []) {
    balances.set(b.index, { vault: String(b.onChain ?? "0"), pit: String(b.amount ?? "0"), reserved: String(b.reserved ?? "0") });
  }
  return {
    address: a.account ?? a.address,
    accountId: a.accountId ?? null,
    broker: a.brokerId ?? a.broker ?? null,
    pairs: a.pairs ?? [],
    repromptUsed: a.repromptUsed === true,
    balances,
    openOrders: (a.openOrders ?? []).map((o) => ({ ...o, pair: pairIdOf(state, o.pair) })),
    margin:
      a.marginStatus === null || a.marginStatus === undefined
        ? null
        : { status: a.marginStatus, equity: a.equity, initialMargin: a.initialMargin, maintenanceMargin: a.maintenanceMargin },
    pnl: a.pnl ?? null,
  };
}

/** Settlement progress: committing the root, posting batches, finalized or voided. */
export function normSettlement(s) {
  const posted = s.onChain?.batchesPosted ?? s.batchesConfirmed ?? 0;
  const stage =
    s.status === "finalized" || s.status === "voided"
      ? s.status
      : s.status === "begun"
        ? posted >= (s.batchCount ?? 0) && (s.batchCount ?? 0) > 0
          ? "finalizing"
          : "posting"
        : "preparing";
  return { sessionId: s.sessionId, stage, batchesPosted: posted, batchCount: s.batchCount ?? 0 };
}
