// The page's model of the pit, fed by the keeper's wire messages (translated by wire.js). Each
// `apply*` mutates the state and returns the names of the panels that need redrawing; the app
// batches those into one render per animation frame, so a burst of fills costs one paint.
import { pairUnits, toBig } from "./format.js";
import { normAccepted, normBook, normLiquidation, normOutcry, normQuote, normRequest, normRfqEnd, normRow, normSession, normSettlement, normTrade } from "./wire.js";

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
    rfq: newRfq(),
    /** account id -> {broker, address}, from the leaderboard and the outcry: RFQ messages name only ids. */
    accounts: new Map(),
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

/**
 * The open requests for quote and their live quotes (by id), as the stream and GET /api/quotes
 * tell them. `epoch` counts RFQ stream messages: an HTTP answer to a request sent at epoch E
 * is older than anything the stream said after E. `ended` and `endedQuotes` hold what the stream
 * ended this session, so a late answer cannot bring it back.
 */
function newRfq() {
  return { requests: new Map(), quotes: new Map(), ended: new Set(), endedQuotes: new Set(), epoch: 0 };
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
    /** Block trades among `trades`: the chart leaves them out when there are any. */
    blocks: 0,
    last: null,
    lastDir: 0,
    high: null,
    low: null,
    volumeLots: 0n,
    notional: 0n,
  };
}

function resetTrades(ps) {
  Object.assign(ps, { trades: [], tradeKeys: new Set(), blocks: 0, last: null, lastDir: 0, high: null, low: null, volumeLots: 0n, notional: 0n });
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
    state.rfq = newRfq();
    if (state.settlement && state.settlement.sessionId !== session.id && session.phase === "pre_session") state.settlement = null;
  }
  return ["header", "tickers", "book", "chart", "tape", "board", "account", "rfq"];
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
    const lines = flatten(msg.outcry).map(normOutcry);
    for (const o of lines) knowAccount(state, o);
    // The keeper's own lines (liquidations, requests for quote) are not in the hello: keep ours.
    const own = state.outcry.filter((o) => o.kind !== undefined);
    state.outcry = [...lines, ...own].sort((a, b) => b.ts - a.ts).slice(0, MAX_OUTCRY);
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
  return { dirty: ["header", "chart", "book", "tickers", "tape", "board", "account", "rfq"], newSession };
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
    for (const g of gone) {
      ps.tradeKeys.delete(g.key);
      if (g.block) ps.blocks--;
    }
  }
  if (t.block) ps.blocks++;
  else {
    // As in the keeper (core/rfq.ts rule 7): a block trade is off the book and sets no last price.
    ps.lastDir = ps.last === null ? 0 : Math.sign(t.price - ps.last);
    ps.last = t.price;
    ps.high = ps.high === null ? t.price : Math.max(ps.high, t.price);
    ps.low = ps.low === null ? t.price : Math.min(ps.low, t.price);
  }
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

function pushFeed(state, line) {
  state.outcry.unshift(line);
  if (state.outcry.length > MAX_OUTCRY) state.outcry.length = MAX_OUTCRY;
}

/** Who an account id is (the feeds name brokers by account, RFQ messages only by id); whether that is news. */
function knowAccount(state, { accountId, broker, address }) {
  if (accountId === undefined || accountId === null) return false;
  const known = state.accounts.get(accountId);
  const next = { broker: broker || known?.broker || null, address: address || known?.address || null };
  if (known && known.broker === next.broker && known.address === next.address) return false;
  state.accounts.set(accountId, next);
  return true;
}

export function applyOutcry(state, raw) {
  const o = normOutcry(raw);
  knowAccount(state, o);
  pushFeed(state, o);
  return ["outcry"];
}

/** A liquidation joins the feed as the keeper's own line. */
export function applyLiquidation(state, raw) {
  pushFeed(state, normLiquidation(raw));
  return ["outcry"];
}

export function applyOutcryList(state, list) {
  const lines = list.map(normOutcry);
  for (const o of lines) knowAccount(state, o);
  const own = state.outcry.filter((o) => o.kind !== undefined);
  state.outcry = [...lines, ...own].sort((a, b) => b.ts - a.ts).slice(0, MAX_OUTCRY);
  return ["outcry"];
}

// ---------------------------------------------------------------- requests for quote
// The Requests list holds what is open; the feed gets a line (kind "rfq") when a request opens,
// is accepted, trades a block or ends. A quote's own end (replaced, withdrawn, expired, traded,
// or with its request) only takes it off the list.

/** `trade_request`: a broker asks the pit for a block. */
export function applyTradeRequest(state, raw) {
  const r = normRequest(state, raw);
  if (!r) return [];
  const rfq = state.rfq;
  r.streamAt = ++rfq.epoch;
  if (!rfq.ended.has(r.id)) rfq.requests.set(r.id, r);
  pushFeed(state, { kind: "rfq", event: "request", request: r, ts: r.ts });
  return ["rfq", "outcry"];
}

/** `quote`: an answer to a request; it replaces the quoter's earlier one (whose end came first). */
export function applyQuote(state, raw) {
  const q = normQuote(raw);
  const rfq = state.rfq;
  q.streamAt = ++rfq.epoch;
  if (rfq.endedQuotes.has(q.id) || rfq.ended.has(q.requestId)) return [];
  // Kept even before its request is known: a load of GET /api/quotes in flight may bring it.
  rfq.quotes.set(q.id, q);
  const r = rfq.requests.get(q.requestId);
  if (r) r.streamAt = q.streamAt;
  return r ? ["rfq"] : [];
}

function endQuote(rfq, quoteId) {
  rfq.endedQuotes.add(quoteId);
  rfq.quotes.delete(quoteId);
}

function endRequest(rfq, requestId) {
  rfq.ended.add(requestId);
  rfq.requests.delete(requestId);
  for (const [id, q] of rfq.quotes) if (q.requestId === requestId) endQuote(rfq, id);
}

/** `quote_accepted`: the requester took quotes (each trades at most once); the block trades follow. */
export function applyQuoteAccepted(state, raw) {
  const a = normAccepted(state, raw);
  const rfq = state.rfq;
  const at = ++rfq.epoch;
  const r = rfq.requests.get(a.requestId);
  for (const id of a.quoteIds) endQuote(rfq, id);
  if (a.status === "open") {
    if (r) {
      r.remaining = a.remaining;
      r.streamAt = at;
    }
  } else endRequest(rfq, a.requestId);
  pushFeed(state, { kind: "rfq", event: "accepted", ...a });
  return ["rfq", "outcry"];
}

/** `request_expired` (how "expired") or `request_cancelled` (how "cancelled"): a request, or one quote of it. */
export function applyRfqEnd(state, raw, how) {
  const e = normRfqEnd(state, raw, how);
  const rfq = state.rfq;
  rfq.epoch++;
  if (e.quoteId !== null) {
    const known = rfq.quotes.has(e.quoteId);
    endQuote(rfq, e.quoteId);
    return known ? ["rfq"] : [];
  }
  endRequest(rfq, e.requestId);
  pushFeed(state, { kind: "rfq", event: "ended", ...e });
  return ["rfq", "outcry"];
}

/** `block_trade`: on the tape like a fill, and a line in the feed. */
export function applyBlockTrade(state, raw) {
  const t = normTrade(state, raw);
  if (!t) return [];
  t.block = true;
  if (!addTrade(state, t)) return [];
  pushFeed(state, { kind: "rfq", event: "block", trade: t, ts: t.ts });
  return [...(t.pair === state.selected ? ["tape", "chart"] : []), "tickers", "outcry"];
}

/**
 * GET /api/quotes, asked when the stream was at `sentAt` (state.rfq.epoch). What the stream said
 * since wins: requests and quotes it ended stay ended, ones it opened stay open, and a request it
 * touched keeps the open size it gave.
 */
export function applyQuotes(state, body, sentAt) {
  const rfq = state.rfq;
  const requests = new Map();
  const quotes = new Map();
  for (const raw of body?.requests ?? []) {
    const r = normRequest(state, raw);
    if (!r || rfq.ended.has(r.id)) continue;
    const old = rfq.requests.get(r.id);
    r.streamAt = old?.streamAt ?? 0;
    if (old && old.streamAt > sentAt) r.remaining = old.remaining;
    requests.set(r.id, r);
    for (const q of r.quotes) if (!rfq.endedQuotes.has(q.id)) quotes.set(q.id, { ...q, streamAt: 0 });
    r.quotes = [];
  }
  for (const [id, r] of rfq.requests) if (!requests.has(id) && r.streamAt > sentAt) requests.set(id, r);
  for (const [id, q] of rfq.quotes) if (!quotes.has(id) && q.streamAt > sentAt) quotes.set(id, q);
  for (const [id, q] of quotes) if (!requests.has(q.requestId)) quotes.delete(id);
  rfq.requests = requests;
  rfq.quotes = quotes;
  return ["rfq"];
}

/**
 * The open requests, newest first, each with its live quotes best first (the lowest price for a
 * buy request, the highest for a sell, then the older), `best` the first the requester could
 * take (while locked, only the locker's), and `locker` when a quoter holds it locked (a lock
 * lasts only while the locker's quote lives). A quote past its time stays until the keeper's
 * sweep ends it, a tick later at most.
 */
export function openRequests(state) {
  const byRequest = new Map();
  for (const q of state.rfq.quotes.values()) {
    if (!byRequest.has(q.requestId)) byRequest.set(q.requestId, []);
    byRequest.get(q.requestId).push(q);
  }
  return [...state.rfq.requests.values()]
    .sort((a, b) => b.id - a.id)
    .map((r) => {
      const sign = r.side === "buy" ? 1 : -1;
      const quotes = (byRequest.get(r.id) ?? []).sort((a, b) => sign * (a.price - b.price) || a.id - b.id);
      const locker = r.lockedBy !== null && quotes.some((q) => q.quoter === r.lockedBy) ? r.lockedBy : null;
      const best = quotes.find((q) => locker === null || q.quoter === locker) ?? null;
      return { ...r, quotes, best, locker };
    });
}

function setLeaderboard(state, rows) {
  const prev = new Map();
  for (const r of state.leaderboard) prev.set(r.accountId ?? r.address, r.rank);
  state.prevRanks = prev;
  state.leaderboard = rows.map(normRow);
  let learned = false;
  for (const r of state.leaderboard) learned = knowAccount(state, r) || learned;
  return learned;
}

export function applyPnl(state, msg) {
  if (state.session && msg.sessionId !== undefined && msg.sessionId !== state.session.id) return [];
  // A broker newly known by account id names the requests and block trades shown so far.
  const learned = setLeaderboard(state, Array.isArray(msg) ? msg : (msg.rows ?? []));
  return learned ? ["board", "tickers", "outcry", "rfq"] : ["board", "tickers"];
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
