// The page's model of the pit, fed by the keeper's wire messages (translated by wire.js). Each
// `apply*` mutates the state and returns the names of the panels that need redrawing; the app
// batches those into one render per animation frame, so a burst of fills costs one paint.
import { pairUnits, toBig } from "./format.js";
import { normBook, normLiquidation, normOutcry, normRow, normSession, normSettlement, normTrade } from "./wire.js";

/** Trades kept per pair: enough for a whole accelerated session's chart. */
const MAX_TRADES = 6000;
const MAX_OUTCRY = 150;

export function createState() {
  return {
    session: null,
    /** serverTime - Date.now(), so the phase clock follows the keeper, not this machine. */
    clockOffset: 0,
    tokens: new Map(),
    pairs: new Map(),
    /** symbol -> pair id: the wire names pairs by symbol. */
    pairIds: new Map(),
    selected: null,
    outcry: [],
    leaderboard: [],
    /** account -> rank at the previous PnL update, for the movement arrows. */
    prevRanks: new Map(),
    topPrompts: [],
    brokers: new Map(),
    settlement: null,
    conn: { status: "connecting", retryAt: 0 },
    helloSeen: false,
    wallet: null,
  };
}

function newPairState(pair, tokens) {
  const base = tokens.get(pair.base) ?? { symbol: pair.symbol.split("/")[0], decimals: 18 };
  const quote = tokens.get(pair.quote) ?? { symbol: pair.symbol.split("/")[1] ?? "USDC", decimals: 6 };
  return {
    pair,
    base,
    quote,
    units: pairUnits(pair, base.decimals, quote.decimals),
    book: { bids: [], asks: [], ts: 0 },
    trades: [],
    tradeKeys: new Set(),
    last: null,
    lastDir: 0,
    high: null,
    low: null,
    volumeLots: 0n,
    notional: 0n,
  };
}

function resetTrades(ps) {
  Object.assign(ps, { trades: [], tradeKeys: new Set(), last: null, lastDir: 0, high: null, low: null, volumeLots: 0n, notional: 0n });
}

/**
 * Installs a session description (wire shape). Pair state survives while the session id stays
 * the same; a new session (or `reset`, for a hello snapshot) starts the trades afresh.
 */
export function applySession(state, raw, { reset = false } = {}) {
  const session = normSession(raw);
  const changed = !state.session || state.session.id !== session.id;
  state.session = session;
  if (typeof session.serverTime === "number") state.clockOffset = session.serverTime - Date.now();
  for (const t of session.tokens) state.tokens.set(t.index, t);
  const next = new Map();
  for (const p of session.pairs) {
    const old = state.pairs.get(p.id);
    const ps = old && old.pair.symbol === p.symbol ? old : newPairState(p, state.tokens);
    ps.pair = p;
    if (changed || reset) resetTrades(ps);
    if (changed) ps.book = { bids: [], asks: [], ts: 0 };
    next.set(p.id, ps);
  }
  state.pairs = next;
  state.pairIds = new Map(session.pairs.map((p) => [p.symbol.toUpperCase(), p.id]));
  if (state.selected === null || !state.pairs.has(state.selected)) {
    const fromHash = decodeURIComponent(location.hash.slice(1));
    const match = session.pairs.find((p) => p.symbol.replace("/", "-") === fromHash);
    state.selected = match ? match.id : (session.pairs[0]?.id ?? null);
  }
  if (changed) {
    state.leaderboard = [];
    state.prevRanks = new Map();
    if (state.settlement && state.settlement.sessionId !== session.id && session.phase === "pre_session") state.settlement = null;
  }
  return ["header", "tickers", "book", "chart", "tape", "board", "account"];
}

const byTime = (a, b) => a.ts - b.ts || Number(a.id) - Number(b.id);

/** Wire collections come as arrays or as objects keyed by pair symbol. */
function flatten(v) {
  if (Array.isArray(v)) return v;
  if (v && typeof v === "object") return Object.values(v).flat();
  return [];
}

export function applyHello(state, msg) {
  state.helloSeen = true;
  if (typeof msg.serverTime === "number") state.clockOffset = msg.serverTime - Date.now();
  if (msg.session) applySession(state, msg.session, { reset: true });
  for (const b of flatten(msg.books)) applyBook(state, b);
  const trades = flatten(msg.trades)
    .map((t) => normTrade(state, t))
    .filter(Boolean)
    .sort(byTime);
  for (const t of trades) addTrade(state, t);
  if (msg.outcry !== undefined) {
    state.outcry = flatten(msg.outcry)
      .map(normOutcry)
      .sort((a, b) => b.ts - a.ts)
      .slice(0, MAX_OUTCRY);
  }
  const rows = Array.isArray(msg.leaderboard) ? msg.leaderboard : msg.leaderboard?.rows;
  if (Array.isArray(rows)) setLeaderboard(state, rows);
  if (msg.settlement) state.settlement = normSettlement(msg.settlement);
  return ["header", "tickers", "book", "chart", "tape", "outcry", "board", "account"];
}

/** A phase message carries the whole session; returns whether it is a new session. */
export function applyPhase(state, msg) {
  const newSession = state.session !== null && msg.session.id !== state.session.id;
  applySession(state, msg.session);
  return { dirty: ["header", "chart", "book", "tickers", "tape", "board", "account"], newSession };
}

export function applyBook(state, raw) {
  if (Array.isArray(raw.books)) {
    for (const b of raw.books) applyBook(state, b);
    return ["book", "tickers"];
  }
  const b = normBook(state, raw);
  if (!b) return [];
  const ps = state.pairs.get(b.pair);
  ps.book = b;
  return b.pair === state.selected ? ["book", "tickers"] : ["tickers"];
}

function addTrade(state, t) {
  const ps = state.pairs.get(t.pair);
  if (!ps || ps.tradeKeys.has(t.key)) return false;
  ps.tradeKeys.add(t.key);
  ps.trades.push(t);
  if (ps.trades.length > MAX_TRADES) {
    const gone = ps.trades.splice(0, ps.trades.length - MAX_TRADES);
    for (const g of gone) ps.tradeKeys.delete(g.key);
  }
  ps.lastDir = ps.last === null ? 0 : Math.sign(t.price - ps.last);
  ps.last = t.price;
  ps.high = ps.high === null ? t.price : Math.max(ps.high, t.price);
  ps.low = ps.low === null ? t.price : Math.min(ps.low, t.price);
  const size = toBig(t.size) ?? 0n;
  ps.volumeLots += size;
  ps.notional += ps.units.notional(t.price, size);
  return true;
}

export function applyFill(state, raw) {
  const t = normTrade(state, raw);
  if (!t || !addTrade(state, t)) return [];
  return t.pair === state.selected ? ["tape", "chart", "tickers"] : ["tickers"];
}

/**
 * Merges a batch of trades (an HTTP page of history, possibly older than what the stream already
 * delivered): unseen ones are merged in time order and the pair's statistics recomputed.
 */
export function applyTrades(state, rawTrades) {
  const fresh = new Map();
  for (const raw of rawTrades) {
    const t = normTrade(state, raw);
    const ps = t && state.pairs.get(t.pair);
    if (!ps || ps.tradeKeys.has(t.key)) continue;
    if (!fresh.has(ps)) fresh.set(ps, []);
    fresh.get(ps).push(t);
  }
  for (const [ps, add] of fresh) {
    const all = [...ps.trades, ...add].sort(byTime).slice(-MAX_TRADES);
    resetTrades(ps);
    for (const t of all) addTrade(state, t);
  }
  return fresh.size > 0 ? ["tape", "chart", "tickers"] : [];
}

export function applyOutcry(state, raw) {
  state.outcry.unshift(normOutcry(raw));
  if (state.outcry.length > MAX_OUTCRY) state.outcry.length = MAX_OUTCRY;
  return ["outcry"];
}

/** A liquidation joins the feed as the keeper's own line. */
export function applyLiquidation(state, raw) {
  state.outcry.unshift(normLiquidation(raw));
  if (state.outcry.length > MAX_OUTCRY) state.outcry.length = MAX_OUTCRY;
  return ["outcry"];
}

export function applyOutcryList(state, list) {
  state.outcry = list.map(normOutcry).sort((a, b) => b.ts - a.ts).slice(0, MAX_OUTCRY);
  return ["outcry"];
}

function setLeaderboard(state, rows) {
  const prev = new Map();
  for (const r of state.leaderboard) prev.set(r.accountId ?? r.address, r.rank);
  state.prevRanks = prev;
  state.leaderboard = rows.map(normRow);
}

export function applyPnl(state, msg) {
  if (state.session && msg.sessionId !== undefined && msg.sessionId !== state.session.id) return [];
  setLeaderboard(state, Array.isArray(msg) ? msg : (msg.rows ?? []));
  return ["board", "tickers"];
}

export function applySettlement(state, msg) {
  state.settlement = normSettlement(msg);
  return ["header"];
}

/** Phase clock: milliseconds left, or NaN when the phase has no scheduled end. */
export function timeLeft(state) {
  const end = state.session?.phaseEndsAt;
  if (typeof end !== "number") return NaN;
  return end - (Date.now() + state.clockOffset);
}

export function serverNow(state) {
  return Date.now() + state.clockOffset;
}

/** Start and end of the trading window, when known: the chart's time axis. */
export function tradingWindow(state) {
  const s = state.session;
  if (!s || s.phase !== "trading" || typeof s.phaseEndsAt !== "number") return null;
  const start = typeof s.phaseStartedAt === "number" ? s.phaseStartedAt : typeof s.durations.tradingMs === "number" ? s.phaseEndsAt - s.durations.tradingMs : null;
  return start === null ? null : { start, end: s.phaseEndsAt };
}
