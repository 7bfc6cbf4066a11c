// Builds one broker's context from the pit. It takes exactly one user's settings and that user's
// own account: there is no parameter through which another user's prompt, lessons or orders could
// reach the request.
import type {
  AccountContext,
  BrokerContext,
  Directive,
  MarketContext,
  OrderContext,
  Purpose,
  RfqContext,
  RfqQuoteContext,
} from "../brokers/types.ts";
import type { AccountView, AssetView, MarketView, PairView, PhaseView, RfqQuoteView, RfqView } from "./pit-port.ts";

/** What one user chose before the session: broker, prompt, pairs, and lessons from before. */
export interface BrokerSettings {
  user: number;
  brokerId: string;
  prompt: string;
  /** Pair symbols, e.g. ["PEPE/USDC"]. */
  pairs: readonly string[];
  lessons: readonly string[];
}

export interface PitSnapshot {
  phase: PhaseView;
  nowMs: number;
  /** The user's pairs, resolved. */
  pairs: readonly PairView[];
  markets: ReadonlyMap<number, MarketView>;
  /** The user's own account. */
  account: AccountView;
  /** Open requests for quote the user may see (port.rfqs): addressed to it, and its own. */
  rfqs?: readonly RfqView[];
}

export interface SlotView {
  /** Net lots traded this session per pair (from the user's fills). */
  positions: ReadonlyMap<number, number>;
  tick: number;
  purpose: Purpose;
  plan: string | null;
  reprompt: string | null;
  refusals: readonly string[];
  /** What the keeper did on the account itself since the last request (its actions, not the broker's). */
  keeperActions: readonly string[];
  directives: readonly Directive[];
  seed: number;
}

/** Base units to display units; display only (floats never feed back into money). */
export function display(amount: bigint, decimals: number): number {
  return Number(amount) / 10 ** decimals;
}

export function positionLots(account: AccountView, pair: PairView): number {
  const b = account.inventory.find((x) => x.asset === pair.base.asset);
  return b === undefined ? 0 : Number(b.amount) / Number(pair.lotSize);
}

function marketContext(pair: PairView, m: MarketView, account: AccountView, position: number, nowMs: number): MarketContext {
  return {
    symbol: pair.symbol,
    baseSymbol: pair.base.symbol,
    quoteSymbol: pair.quote.symbol,
    makerFeeBps: pair.makerFeeBps,
    takerFeeBps: pair.takerFeeBps,
    maxOrderLots: pair.maxOrderLots,
    tickValue: display(pair.tickValue, pair.quote.decimals),
    bids: m.bids.map((l) => ({ price: l.price, size: l.size })),
    asks: m.asks.map((l) => ({ price: l.price, size: l.size })),
    mid: m.mid,
    mark: m.mark,
    trades: m.trades.map((t) => ({ price: t.price, size: t.size, takerSide: t.takerSide, ageMs: Math.max(0, nowMs - t.ts) })),
    position,
    holding: positionLots(account, pair),
  };
}

function accountContext(account: AccountView, pairs: readonly PairView[]): AccountContext {
  const assets = new Map<number, AssetView>();
  for (const p of pairs) {
    assets.set(p.base.asset, p.base);
    assets.set(p.quote.asset, p.quote);
  }
  const quote = pairs[0]?.quote ?? { asset: -1, symbol: "USDC", decimals: 6 };
  return {
    quoteSymbol: quote.symbol,
    balances: account.inventory
      .filter((b) => assets.has(b.asset))
      .map((b) => {
        const a = assets.get(b.asset)!;
        return { symbol: a.symbol, amount: display(b.amount, a.decimals) };
      }),
    equity: display(account.equity, quote.decimals),
    initialMargin: display(account.initialMargin, quote.decimals),
    maintenanceMargin: display(account.maintenanceMargin, quote.decimals),
    marginStatus: account.marginStatus,
    pnl: display(account.pnl, quote.decimals),
  };
}

function quoteContext(q: RfqQuoteView, nowMs: number): RfqQuoteContext {
  return { quoteId: q.quoteId, quoter: q.quoter, price: q.price, size: q.size, validMs: Math.max(0, q.validUntil - nowMs) };
}

/**
 * The requests for quote in the context: open ones (not yet past expiry) addressed to the user on
 * its pairs, never its own nor one whose whitelist leaves it out, each with its own live quote;
 * and its own, with the live quotes received, best price first.
 */
export function rfqContexts(user: number, rfqs: readonly RfqView[], pairs: readonly PairView[], nowMs: number): { incoming: RfqContext[]; mine: RfqContext[] } {
  const symbols = new Map(pairs.map((p) => [p.pair, p.symbol] as const));
  const incoming: RfqContext[] = [];
  const mine: RfqContext[] = [];
  for (const r of rfqs) {
    if (r.expiresAt <= nowMs) continue;
    const live = r.quotes.filter((q) => q.validUntil > nowMs);
    // Never the whitelist itself: a broker learns only whether a request is addressed to it.
    const base = { requestId: r.requestId, pair: symbols.get(r.pair) ?? String(r.pair), side: r.side, size: r.remaining, limit: r.limit, expiresMs: r.expiresAt - nowMs, minFill: r.minFill };
    if (r.user === user) {
      const sorted = [...live].sort((a, b) => (r.side === "buy" ? a.price - b.price : b.price - a.price) || a.quoteId - b.quoteId);
      mine.push({ ...base, quotes: sorted.map((q) => quoteContext(q, nowMs)), lockedBy: r.lockedBy });
      continue;
    }
    if (!symbols.has(r.pair)) continue;
    if (r.whitelist !== null && !r.whitelist.includes(user)) continue;
    const own = live.find((q) => q.quoter === user);
    // Who else holds a lock is not the broker's business; that someone does is.
    const lock = r.lockedBy === null ? null : r.lockedBy === user ? "you" : "other";
    incoming.push({ ...base, myQuote: own === undefined ? null : quoteContext(own, nowMs), lock });
  }
  return { incoming, mine };
}

export function buildContext(settings: BrokerSettings, snap: PitSnapshot, slot: SlotView): BrokerContext {
  if (snap.account.user !== settings.user) {
    throw new Error(`context for user ${settings.user} built from account ${snap.account.user}`);
  }
  const bySymbol = new Map(snap.pairs.map((p) => [p.pair, p] as const));
  const markets: MarketContext[] = [];
  for (const p of snap.pairs) {
    const m = snap.markets.get(p.pair);
    if (m !== undefined) markets.push(marketContext(p, m, snap.account, slot.positions.get(p.pair) ?? 0, snap.nowMs));
  }
  const openOrders: OrderContext[] = snap.account.openOrders.map((o) => ({
    orderId: o.orderId,
    pair: bySymbol.get(o.pair)?.symbol ?? String(o.pair),
    side: o.side,
    price: o.price,
    size: o.size,
    type: o.type,
    ageMs: Math.max(0, snap.nowMs - o.ts),
  }));
  return {
    user: settings.user,
    brokerId: settings.brokerId,
    sessionId: snap.phase.sessionId,
    tick: slot.tick,
    nowMs: snap.nowMs,
    timeLeftMs: Math.max(0, snap.phase.endsAtMs - snap.nowMs),
    phase: snap.phase.phase,
    purpose: slot.purpose,
    strategy: settings.prompt,
    reprompt: slot.reprompt,
    lessons: [...settings.lessons],
    plan: slot.plan,
    markets,
    account: accountContext(snap.account, snap.pairs),
    openOrders,
    refusals: [...slot.refusals],
    keeperActions: [...slot.keeperActions],
    directives: slot.directives.map((d) => ({ ...d })),
    ...rfqFields(settings.user, snap),
    seed: slot.seed,
  };
}

function rfqFields(user: number, snap: PitSnapshot): Pick<BrokerContext, "rfqIn" | "rfqMine"> {
  if (snap.rfqs === undefined || snap.rfqs.length === 0) return {};
  const { incoming, mine } = rfqContexts(user, snap.rfqs, snap.pairs, snap.nowMs);
  return { ...(incoming.length > 0 ? { rfqIn: incoming } : {}), ...(mine.length > 0 ? { rfqMine: mine } : {}) };
}
