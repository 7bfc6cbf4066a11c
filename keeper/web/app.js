// The pit page: loads the first picture over HTTP, then follows the keeper's WebSocket stream.
// Messages only mutate the state and mark panels dirty; one animation frame redraws what changed.
import { connectFeed, getJSON } from "./api.js";
import { createAccountPanel } from "./account.js";
import { createChart } from "./chart.js";
import {
  applyBlockTrade,
  applyBook,
  applyFill,
  applyHello,
  applyLiquidation,
  applyOutcry,
  applyOutcryList,
  applyPhase,
  applyPnl,
  applyQuote,
  applyQuoteAccepted,
  applyQuotes,
  applyRfqEnd,
  applySession,
  applySettlement,
  applyTrades,
  applyTradeRequest,
  createState,
  serverNow,
  tradingWindow,
} from "./state.js";
import {
  renderBook,
  renderClock,
  renderConn,
  renderHeader,
  renderLeaderboard,
  renderOutcry,
  renderPrompts,
  renderRequestClocks,
  renderRequests,
  renderTape,
  renderTickers,
} from "./views.js";
import { formatChangePct, formatCompact } from "./format.js";
import { normBrokers, normTopPrompts } from "./wire.js";

const state = createState();
const $ = (id) => document.getElementById(id);
const dirty = new Set();
let frame = 0;
let promptsSession = null;

function mark(names) {
  for (const n of names) dirty.add(n);
  if (!frame) frame = requestAnimationFrame(render);
}

const chart = createChart($("chart"), $("chart-wrap"), $("chart-tip"));
for (const b of document.querySelectorAll(".seg button")) {
  b.addEventListener("click", () => {
    for (const o of document.querySelectorAll(".seg button")) o.classList.toggle("on", o === b);
    chart.setMode(b.dataset.mode);
  });
}

function selectPair(id) {
  if (state.selected === id) return;
  state.selected = id;
  const ps = state.pairs.get(id);
  if (ps) history.replaceState(null, "", `#${ps.pair.symbol.replace("/", "-")}`);
  mark(["tickers", "book", "chart", "tape"]);
}

function renderChartPanel() {
  const ps = state.pairs.get(state.selected);
  if (!ps) return;
  $("chart-symbol").textContent = ps.pair.symbol;
  const last = $("chart-last");
  last.textContent = ps.last === null ? ps.units.price(ps.pair.referencePrice) : ps.units.price(ps.last);
  last.className = `chart-last ${ps.lastDir < 0 ? "down" : ps.lastDir > 0 ? "up" : ""}`;
  const stats = $("chart-stats");
  stats.textContent = "";
  const item = (k, v, cls = "") => {
    const s = document.createElement("span");
    const b = document.createElement("b");
    s.textContent = k + " ";
    b.textContent = v;
    if (cls) b.className = cls;
    s.append(b);
    stats.append(s);
  };
  const chg = $("chart-chg");
  chg.textContent = ps.last === null ? "" : `${formatChangePct(ps.pair.referencePrice, ps.last)} vs ref`;
  chg.className = `chart-chg ${ps.last === null ? "" : ps.last >= ps.pair.referencePrice ? "up" : "down"}`;
  item("ref", ps.units.price(ps.pair.referencePrice), "ref");
  if (ps.high !== null) item("high", ps.units.price(ps.high));
  if (ps.low !== null) item("low", ps.units.price(ps.low));
  item("vol", `${formatCompact(ps.volumeLots * ps.units.baseUnits(1), ps.base.decimals)} ${ps.base.symbol}`);
  item("", `${formatCompact(ps.notional, ps.quote.decimals)} ${ps.quote.symbol}`);

  const phase = state.session?.phase;
  const overlay = $("chart-overlay");
  let text = "";
  if (phase === "pre_session") text = "Pre-session: the pit opens when the clock runs out. Connect a wallet to pick your broker.";
  else if (ps.trades.length === 0 && phase === "trading") text = "Waiting for the first trade…";
  else if (ps.trades.length === 0 && !phase) text = "Connecting to the keeper…";
  overlay.hidden = text === "";
  overlay.textContent = text;
  chart.update({
    // Block trades print on the tape but, as in the keeper, do not make the price.
    trades: ps.blocks > 0 ? ps.trades.filter((t) => !t.block) : ps.trades,
    units: ps.units,
    ref: ps.pair.referencePrice,
    window: tradingWindow(state),
    now: serverNow(state),
    lastDir: ps.lastDir,
    baseDecimals: ps.base.decimals,
    baseSymbol: ps.base.symbol,
  });
}

function render() {
  frame = 0;
  const d = new Set(dirty);
  dirty.clear();
  if (d.has("header")) renderHeader(state);
  if (d.has("conn")) renderConn(state);
  if (d.has("tickers")) renderTickers(state, selectPair);
  if (d.has("book")) renderBook(state);
  if (d.has("chart")) renderChartPanel();
  if (d.has("tape")) renderTape(state);
  if (d.has("outcry")) renderOutcry(state);
  if (d.has("rfq")) renderRequests(state);
  if (d.has("board")) renderLeaderboard(state);
  if (d.has("prompts")) renderPrompts(state, promptsSession);
  if (d.has("account")) account.render();
}

$("prompts-session").addEventListener("change", (e) => {
  promptsSession = e.currentTarget.value;
  mark(["prompts"]);
});

const account = createAccountPanel({ state, onChange: () => mark(["board", "outcry", "rfq"]) });

/** A pair in a URL path: "PEPE-USDC". */
const pairPath = (ps) => encodeURIComponent(ps.pair.symbol.replace("/", "-"));

/** When the last hello arrived: an HTTP answer to a request sent before it is older than the stream. */
let helloAt = -1;

async function loadSession() {
  const sentAt = performance.now();
  const session = await getJSON("/api/session");
  if (helloAt < sentAt) mark(applySession(state, session));
}

async function loadTopPrompts() {
  try {
    state.topPrompts = normTopPrompts(await getJSON("/api/top-prompts"));
    mark(["prompts"]);
  } catch {
    // keep what we had; the next settlement retries
  }
}

async function loadBrokers() {
  try {
    for (const b of normBrokers(await getJSON("/api/brokers"))) state.brokers.set(b.id, b);
    mark(["outcry", "board", "prompts", "account", "rfq"]);
  } catch {
    // names then fall back to the ids the feed carries
  }
}

/**
 * The open requests for quote: the hello does not carry them, so they come over HTTP after every
 * hello (and with each snapshot while the stream is down); the stream keeps them from there.
 */
async function loadQuotes() {
  const sessionId = state.session?.id;
  const sentAt = state.rfq.epoch;
  try {
    const body = await getJSON("/api/quotes");
    if (state.session?.id === sessionId) mark(applyQuotes(state, body, sentAt));
  } catch {
    // the stream's requests still show; the next hello asks again
  }
}

/** The whole picture over HTTP: first paint before the socket's hello, and while it is down. */
async function loadSnapshot() {
  await loadSession();
  const sentAt = performance.now();
  const pairs = [...state.pairs.values()];
  const [books, trades, outcry, board] = await Promise.allSettled([
    Promise.all(pairs.map((ps) => getJSON(`/api/books/${pairPath(ps)}?levels=20`))),
    Promise.all(pairs.map((ps) => getJSON(`/api/trades/${pairPath(ps)}?limit=500`))),
    getJSON("/api/outcry?limit=50"),
    getJSON("/api/leaderboard"),
    loadQuotes(),
  ]);
  if (helloAt > sentAt) return; // the stream's snapshot is newer; trades would merge, books would not
  if (books.status === "fulfilled") for (const b of books.value) mark(applyBook(state, b));
  if (trades.status === "fulfilled") for (const t of trades.value) mark(applyTrades(state, Array.isArray(t) ? t : (t.trades ?? [])));
  if (outcry.status === "fulfilled") mark(applyOutcryList(state, Array.isArray(outcry.value) ? outcry.value : (outcry.value.lines ?? [])));
  if (board.status === "fulfilled") mark(applyPnl(state, board.value));
}

/** The session's earlier trades, for a chart that starts at the open even when joining late. */
async function loadHistory() {
  const sessionId = state.session?.id;
  await Promise.all(
    [...state.pairs.values()].map(async (ps) => {
      try {
        const r = await getJSON(`/api/trades/${pairPath(ps)}?limit=500`);
        if (state.session?.id === sessionId) mark(applyTrades(state, Array.isArray(r) ? r : (r.trades ?? [])));
      } catch {
        // the stream's recent trades still draw the chart
      }
    }),
  );
}

// The keeper conflates fills, orders and outcry into one message per flush: every event is in
// `items` (oldest first), the newest repeated at top level. Reading only the top level loses lines.
function batched(msg) {
  return Array.isArray(msg.items) ? msg.items : [msg];
}

function onMessage(msg) {
  switch (msg.type) {
    case "hello":
      helloAt = performance.now();
      mark(applyHello(state, msg));
      if (!state.brokers.size) void loadBrokers();
      void loadHistory();
      void loadQuotes();
      break;
    case "phase": {
      const { dirty: d, newSession } = applyPhase(state, msg);
      mark(d);
      if (newSession) {
        void loadSession().catch(() => {});
        void loadTopPrompts();
      }
      account.scheduleRefresh();
      break;
    }
    case "book":
      mark(applyBook(state, msg));
      break;
    case "fill":
    case "block_trade": // a request for quote's trade: off the book, on the tape all the same
      for (const fill of batched(msg)) {
        mark(msg.type === "block_trade" ? applyBlockTrade(state, fill) : applyFill(state, fill));
        if (account.touches(fill.maker) || account.touches(fill.taker)) account.scheduleRefresh();
      }
      break;
    case "trade_request":
      mark(applyTradeRequest(state, msg));
      break;
    case "quote":
      mark(applyQuote(state, msg));
      break;
    case "quote_accepted":
      mark(applyQuoteAccepted(state, msg));
      break;
    case "request_expired":
      mark(applyRfqEnd(state, msg, "expired"));
      break;
    case "request_cancelled":
      mark(applyRfqEnd(state, msg, "cancelled"));
      break;
    case "order":
      if (batched(msg).some((o) => account.touches(o.accountId ?? o.account))) account.scheduleRefresh();
      break;
    case "outcry":
      for (const line of batched(msg)) mark(applyOutcry(state, line));
      break;
    case "liquidation":
      mark(applyLiquidation(state, msg));
      if (account.touches(msg.accountId ?? msg.account)) account.scheduleRefresh();
      break;
    case "pnl":
      mark(applyPnl(state, msg));
      break;
    case "settlement":
      mark(applySettlement(state, msg));
      if (state.settlement.stage === "finalized") {
        void loadTopPrompts();
        account.scheduleRefresh(2000);
      } else {
        // A posted batch may hold the account's delta: what it can withdraw now changes.
        void account.refreshWithdrawal();
      }
      break;
    default:
      break;
  }
}

let pollTimer = null;
connectFeed({
  onMessage,
  onStatus: (s) => {
    state.conn = s;
    mark(["conn", "header"]);
    // While the stream is down, keep the picture fresh over HTTP.
    if (s.status === "live" && pollTimer) {
      clearInterval(pollTimer);
      pollTimer = null;
    } else if (s.status !== "live" && !pollTimer && state.session) {
      pollTimer = setInterval(() => void loadSnapshot().catch(() => {}), 5000);
    }
  },
});

void loadBrokers();
void loadTopPrompts();
// The session over HTTP at once; the rest too if the socket's hello does not arrive promptly.
void loadSession()
  .then(() => new Promise((ok) => setTimeout(ok, state.conn.status === "reconnecting" ? 0 : 1000)))
  .then(() => (state.helloSeen ? undefined : loadSnapshot()))
  .catch(() => {});

setInterval(() => {
  renderClock(state);
  renderRequestClocks(state);
  if (state.conn.status !== "live") renderConn(state);
  // While trading, the chart's "now" edge moves even without trades.
  if (state.session?.phase === "trading" && document.visibilityState === "visible") mark(["chart"]);
}, 250);
mark(["header", "conn", "tickers", "book", "chart", "tape", "outcry", "rfq", "board", "prompts"]);

// For tests and the curious: the live model of the pit.
window.__cme = { state };
