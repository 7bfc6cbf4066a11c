// Rendering of the pit's panels from the state. Text from brokers and users (outcry lines,
// prompts, names) only ever goes through textContent: a model can shout anything.
import { accountLabel, formatChangePct, formatClock, formatCompact, formatFixed, formatLeft, formatTime } from "./format.js";
import { openRequests, timeLeft, serverNow } from "./state.js";

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A stable hue per broker id, so a broker keeps its colour across panels and reloads. */
export function brokerHue(id) {
  let h = 0;
  for (const ch of String(id ?? "")) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return h % 360;
}

/** The quote token (USDC): PnL and equity are in its base units. */
export function quoteToken(state) {
  const first = state.pairs.values().next().value;
  return (first && state.tokens.get(first.pair.quote)) ?? { symbol: "USDC", decimals: 6 };
}

/** Whether a row (outcry, leaderboard) is the connected wallet's. */
function isMine(state, r) {
  const w = state.wallet;
  if (!w) return false;
  if (w.accountId !== null && w.accountId !== undefined && r.accountId === w.accountId) return true;
  return typeof r.address === "string" && typeof w.address === "string" && r.address.toLowerCase() === w.address.toLowerCase();
}

export function brokerName(state, id, fallback) {
  return fallback || state.brokers.get(id)?.name || id || "broker";
}

const PHASE_LABEL = {
  pre_session: "Pre-session",
  trading: "Trading",
  closing: "Closing",
  settling: "Settling",
  settled: "Settled",
};

export function renderHeader(state) {
  const s = state.session;
  $("session-id").textContent = s ? `Session #${s.id}` : "Session —";
  const phase = $("phase");
  phase.dataset.phase = s?.phase ?? "";
  phase.textContent = s ? (PHASE_LABEL[s.phase] ?? s.phase) : state.conn.status === "live" ? "starting" : "connecting";
  renderClock(state);
  const note = $("phase-note");
  const st = state.settlement;
  if ((s?.phase === "settling" || s?.phase === "settled") && st && st.sessionId === s.id) {
    note.textContent =
      st.stage === "finalized"
        ? `session #${st.sessionId} finalized on-chain`
        : st.stage === "voided"
          ? `session #${st.sessionId} voided: balances stay as before it`
          : st.stage === "posting"
            ? `posting batches ${st.batchesPosted}/${st.batchCount}`
            : st.stage === "finalizing"
              ? `finalizing (${st.batchesPosted}/${st.batchCount} batches posted)`
              : "preparing settlement…";
  } else if (s?.phase === "settling") note.textContent = "netting and settling on-chain";
  else if (s?.phase === "pre_session") note.textContent = "choose broker, prompt and pairs";
  else if (s?.phase === "closing") note.textContent = "orders cancelled · closing cross at mid";
  else note.textContent = "";
}

/** Called every 250 ms: the clock and the phase progress bar. */
export function renderClock(state) {
  const s = state.session;
  const left = timeLeft(state);
  const clock = $("clock");
  clock.textContent = Number.isFinite(left) ? formatClock(left) : s?.phase === "settling" || s?.phase === "settled" ? "on-chain" : "--:--";
  clock.classList.toggle("urgent", Number.isFinite(left) && left < 10_000 && s?.phase === "trading");
  const bar = $("phase-progress");
  const start = s?.phaseStartedAt;
  const end = s?.phaseEndsAt;
  if (typeof start === "number" && typeof end === "number" && end > start) {
    const f = Math.min(1, Math.max(0, (serverNow(state) - start) / (end - start)));
    bar.style.width = `${(f * 100).toFixed(2)}%`;
  } else if ((s?.phase === "settling" || s?.phase === "settled") && state.settlement) {
    const st = state.settlement;
    const f = st.stage === "finalized" || st.stage === "voided" ? 1 : st.batchesPosted / Math.max(1, st.batchCount + 1);
    bar.style.width = `${(f * 100).toFixed(2)}%`;
  } else bar.style.width = "0%";
  bar.dataset.phase = s?.phase ?? "";
}

export function renderConn(state) {
  const c = $("conn");
  c.dataset.status = state.conn.status;
  const secs = state.conn.retryAt ? Math.max(0, Math.ceil((state.conn.retryAt - Date.now()) / 1000)) : 0;
  $("conn-text").textContent =
    state.conn.status === "live" ? "live" : state.conn.status === "reconnecting" ? (secs > 0 ? `reconnecting in ${secs}s` : "reconnecting") : "connecting";
}

function midTicks(ps) {
  const b = ps.book.bids[0]?.price;
  const a = ps.book.asks[0]?.price;
  if (typeof a === "number" && typeof b === "number") return (a + b) / 2;
  return null;
}

export function renderTickers(state, onSelect) {
  const nav = $("tickers");
  const wanted = [...state.pairs.values()];
  // Reuse buttons so a live update never steals focus or hover from the tab under the pointer.
  if (nav.querySelectorAll("button.tick").length !== wanted.length) {
    nav.textContent = "";
    for (const ps of wanted) {
      const b = el("button", "tick");
      b.type = "button";
      b.dataset.pair = String(ps.pair.id);
      b.append(el("span", "sym"), el("span", "px"), el("span", "chg"));
      b.addEventListener("click", () => onSelect(ps.pair.id));
      nav.append(b);
    }
    nav.append(el("span", "tick-stats"));
  }
  let notional = 0n;
  let count = 0;
  let quoteDecimals = 6;
  let quoteSymbol = "USDC";
  for (const ps of state.pairs.values()) {
    const b = nav.querySelector(`button.tick[data-pair="${ps.pair.id}"]`);
    if (!b) continue;
    b.classList.toggle("on", ps.pair.id === state.selected);
    b.setAttribute("aria-pressed", String(ps.pair.id === state.selected));
    const px = ps.last ?? midTicks(ps) ?? ps.pair.referencePrice;
    b.querySelector(".sym").textContent = ps.pair.symbol;
    b.querySelector(".px").textContent = ps.units.price(Math.round(px));
    const chg = b.querySelector(".chg");
    chg.textContent = ps.last !== null ? formatChangePct(ps.pair.referencePrice, ps.last) : "";
    chg.className = `chg ${ps.last === null ? "" : ps.last >= ps.pair.referencePrice ? "up" : "down"}`;
    notional += ps.notional;
    count += ps.trades.length;
    quoteDecimals = ps.quote.decimals;
    quoteSymbol = ps.quote.symbol;
  }
  const stats = nav.querySelector(".tick-stats");
  if (stats) {
    stats.textContent = `Volume ${formatCompact(notional, quoteDecimals)} ${quoteSymbol} · ${count.toLocaleString("en-US")} trades · ${state.leaderboard.length} brokers`;
    stats.title = "this session, all pairs (trades seen by this page)";
  }
}

/** Previous sizes per price, so a changed level flashes. */
const lastSizes = { bids: new Map(), asks: new Map() };
let lastBookPair = null;

function ladderRows(container, count) {
  while (container.children.length < count) {
    const row = el("div", "lvl");
    row.append(el("i", "depth"), el("i", "bar"), el("span", "p"), el("span", "s"), el("span", "t"));
    container.append(row);
  }
  while (container.children.length > count) container.lastChild.remove();
}

export function renderBook(state) {
  const ps = state.pairs.get(state.selected);
  $("book-pair").textContent = ps ? ps.pair.symbol : "";
  const asksEl = $("asks");
  const bidsEl = $("bids");
  const spreadEl = $("spread");
  if (!ps) return;
  if (lastBookPair !== ps.pair.id) {
    lastSizes.bids.clear();
    lastSizes.asks.clear();
    lastBookPair = ps.pair.id;
  }
  // As many whole rows as fit, so no level is ever half drawn.
  const fit = Math.floor((asksEl.clientHeight || 190) / 19);
  const N = Math.max(3, Math.min(20, fit));
  const asks = ps.book.asks.slice(0, N);
  const bids = ps.book.bids.slice(0, N);
  let cum = 0;
  const askCum = asks.map((l) => (cum += l.size));
  cum = 0;
  const bidCum = bids.map((l) => (cum += l.size));
  // Bars scale to the depth shown within ~12 levels, so one deep wall does not flatten the rest.
  const near = Math.max(askCum[Math.min(11, askCum.length - 1)] ?? 0, bidCum[Math.min(11, bidCum.length - 1)] ?? 0, 1);
  const maxSize = Math.max(1, ...asks.map((l) => l.size), ...bids.map((l) => l.size));

  const fill = (container, levels, cums, side) => {
    ladderRows(container, levels.length);
    const prev = lastSizes[side];
    const next = new Map();
    levels.forEach((l, i) => {
      // Asks are listed highest first so the best ask sits on the spread.
      const row = container.children[side === "asks" ? levels.length - 1 - i : i];
      const [depth, bar, p, s, t] = row.children;
      p.textContent = ps.units.price(l.price);
      s.textContent = ps.units.size(l.size);
      t.textContent = ps.units.size(cums[i]);
      depth.style.width = `${Math.min(100, (cums[i] / near) * 100).toFixed(1)}%`;
      bar.style.width = `${((l.size / maxSize) * 100).toFixed(1)}%`;
      row.title = `${l.orders ?? "?"} order${l.orders === 1 ? "" : "s"} · ${ps.units.size(l.size)} ${ps.base.symbol}`;
      const was = prev.get(l.price);
      if (was !== undefined && was !== l.size) {
        row.classList.remove("flash");
        void row.offsetWidth;
        row.classList.add("flash");
      }
      next.set(l.price, l.size);
    });
    lastSizes[side] = next;
  };
  fill(asksEl, asks, askCum, "asks");
  fill(bidsEl, bids, bidCum, "bids");

  spreadEl.textContent = "";
  const a = asks[0]?.price;
  const b = bids[0]?.price;
  const lastPx = el("span", `last ${ps.lastDir < 0 ? "down" : ps.lastDir > 0 ? "up" : ""}`, ps.last !== null ? `${ps.units.price(ps.last)}${ps.lastDir < 0 ? " ↓" : ps.lastDir > 0 ? " ↑" : ""}` : "no trades");
  lastPx.title = "last trade";
  spreadEl.append(lastPx);
  if (typeof a === "number" && typeof b === "number") {
    const bps = formatFixed(BigInt(Math.round(((a - b) / ((a + b) / 2)) * 1_000_000)), 2, 2);
    const sp = el("span", "sp", `spread ${bps} bps`);
    sp.title = `spread ${ps.units.price(a - b)} ${ps.quote.symbol} · mid ${ps.units.price(Math.round((a + b) / 2))}`;
    spreadEl.append(sp);
  } else {
    const phase = state.session?.phase;
    spreadEl.append(el("span", "sp", phase === "trading" ? "one-sided book" : phase ? "book closed" : ""));
  }
  $("book").classList.toggle("closed", asks.length === 0 && bids.length === 0);
}

/** The newest trade already shown, per pair: only trades after it flash. */
const lastTapeTop = { pair: null, key: null };

export function renderTape(state) {
  const ps = state.pairs.get(state.selected);
  $("tape-pair").textContent = ps ? ps.pair.symbol : "";
  const tape = $("tape");
  if (!ps) return;
  const rows = ps.trades.slice(-60).reverse();
  const prevTop = lastTapeTop.pair === ps.pair.id ? lastTapeTop.key : null;
  tape.textContent = "";
  let fresh = prevTop !== null;
  for (const t of rows) {
    if (t.key === prevTop) fresh = false;
    const row = el("div", `trade ${t.side === "sell" ? "down" : "up"}${fresh ? " new" : ""}${t.block ? " block" : ""}`);
    row.dataset.id = String(t.id);
    row.dataset.key = t.key;
    const size = el("span", "s", ps.units.size(t.size));
    if (t.block) size.prepend(el("b", "blk", "BLK"));
    row.append(el("span", "p", ps.units.price(t.price)), size, el("span", "t", formatTime(t.ts)));
    row.title = t.block
      ? `block trade from a request for quote, off the book · ${t.side === "sell" ? "seller" : "buyer"} #${t.taker ?? "?"} asked · #${t.maker ?? "?"} quoted`
      : `${t.side === "sell" ? "seller" : "buyer"} took liquidity · maker #${t.maker ?? "?"} · taker #${t.taker ?? "?"}`;
    tape.append(row);
  }
  lastTapeTop.pair = ps.pair.id;
  lastTapeTop.key = rows[0]?.key ?? null;
  if (rows.length === 0) tape.append(el("p", "empty", state.session?.phase === "pre_session" ? "The pit opens when trading starts." : "No trades yet."));
}

/** A liquidation in the feed: what the keeper covered, at what price, the fee to insurance. */
function liquidationText(state, o) {
  const quote = quoteToken(state);
  const parts = o.covered.map((c) => {
    const ps = state.pairs.get(state.pairIds.get(c.pair));
    const what = ps ? `${ps.units.size(c.lots)} ${ps.base.symbol}` : `${c.lots} lots ${c.asset}`;
    const px = ps ? ps.units.price(Math.round(c.price)) : String(c.price);
    return `${c.side === "buy" ? "bought back" : "sold"} ${what} at ${px}`;
  });
  const fee = `fee ${formatFixed(o.fee, quote.decimals, 2)} ${quote.symbol} to insurance`;
  return `${parts.join(", ") || "orders cancelled"} · ${fee}${o.fullyCovered ? "" : " · liabilities left"}`;
}

function renderLiquidation(state, o) {
  const li = el("li", `liq${isMine(state, o) ? " mine" : ""}`);
  li.dataset.kind = "liquidation";
  const who = el("span", "who");
  who.append(el("b", "keeper", "keeper"), el("span", "acct", accountLabel(o.accountId, o.address)));
  const text = el("span", "liq-line");
  text.append(el("strong", "", "Liquidated "), document.createTextNode(liquidationText(state, o)));
  li.title = o.line;
  li.append(el("time", "", formatTime(o.ts)), who, text);
  return li;
}

/** Broker name and account label of an account id, as far as the leaderboard and outcry tell. */
function whoParts(state, accountId) {
  const a = state.accounts.get(accountId);
  const parts = [];
  if (a?.broker) {
    const b = el("b", "broker", brokerName(state, a.broker));
    b.style.setProperty("--hue", String(brokerHue(a.broker)));
    parts.push(b);
  }
  parts.push(el("span", "acct", accountLabel(accountId, a?.address)));
  return parts;
}

/** "Momentum 0xd601…a6e9": for sentences that name a second account. */
function whoText(state, accountId) {
  const a = state.accounts.get(accountId);
  const label = accountLabel(accountId, a?.address);
  return a?.broker ? `${brokerName(state, a.broker)} ${label}` : label;
}

const lotsOf = (ps, lots) => `${ps.units.size(lots)} ${ps.base.symbol}`;
const CANCELLED = { user: "cancelled", session_end: "cancelled at the bell", liquidation: "cancelled: the requester was liquidated" };

/** The feed's sentence for a request-for-quote line (state.js `apply*` of the RFQ messages). */
function rfqText(state, o) {
  const ps = state.pairs.get(o.trade?.pair ?? o.request?.pair ?? o.pair);
  if (!ps) return "on a pair this session does not list";
  if (o.event === "block") {
    const t = o.trade;
    return `${t.side === "buy" ? "bought" : "sold"} ${lotsOf(ps, t.size)} at ${ps.units.price(t.price)} ${t.side === "buy" ? "from" : "to"} ${whoText(state, t.maker)}`;
  }
  if (o.event === "request") {
    const r = o.request;
    const terms = [r.limit === null ? "no limit" : `limit ${ps.units.price(r.limit)}`, `open ${formatLeft(r.expiresAt - o.ts)}`];
    if (r.whitelisted) terms.push("invited quoters only");
    return `who ${r.side === "buy" ? "sells" : "buys"} ${lotsOf(ps, r.size)}? ${terms.join(" · ")}`;
  }
  const what = lotsOf(ps, o.remaining);
  if (o.event === "accepted") {
    const took = `took ${o.quoteIds.length} quote${o.quoteIds.length === 1 ? "" : "s"} for ${lotsOf(ps, o.filled)}`;
    return o.status === "filled" ? `${took} · request filled` : o.status === "dropped" ? `${took} · the rest dropped` : `${took} · ${what} still open`;
  }
  const verb = o.side === "buy" ? "buy" : "sell";
  const end = o.how === "expired" ? "expired" : (CANCELLED[o.reason] ?? `cancelled (${o.reason ?? "?"})`);
  return `request to ${verb} ${what} ${end}`;
}

function renderRfqLine(state, o) {
  const accountId = o.event === "block" ? o.trade.taker : o.event === "request" ? o.request.accountId : o.accountId;
  const li = el("li", `rfq ${o.event}${isMine(state, { accountId }) ? " mine" : ""}`);
  li.dataset.kind = "rfq";
  li.dataset.event = o.event;
  const who = el("span", "who");
  who.append(el("b", "rfq-tag", o.event === "block" ? "BLK" : "RFQ"), ...whoParts(state, accountId));
  li.append(el("time", "", formatTime(o.ts)), who, el("span", "rfq-line", rfqText(state, o)));
  return li;
}

export function renderOutcry(state) {
  const list = $("outcry");
  list.textContent = "";
  for (const o of state.outcry.slice(0, 80)) {
    if (o.kind === "liquidation") {
      list.append(renderLiquidation(state, o));
      continue;
    }
    if (o.kind === "rfq") {
      list.append(renderRfqLine(state, o));
      continue;
    }
    const li = el("li", isMine(state, o) ? "mine" : "");
    const name = brokerName(state, o.broker, o.brokerName);
    const who = el("span", "who");
    const b = el("b", "broker", name);
    b.style.setProperty("--hue", String(brokerHue(o.broker)));
    who.append(b, el("span", "acct", accountLabel(o.accountId, o.address)));
    li.append(el("time", "", formatTime(o.ts)), who, el("q", "", o.line));
    list.append(li);
  }
  if (state.outcry.length === 0) list.append(el("li", "empty", "Quiet pit."));
}

export function renderLeaderboard(state) {
  const body = $("leaderboard");
  const quote = quoteToken(state);
  body.textContent = "";
  const rows = state.leaderboard.slice(0, 50);
  const own = state.leaderboard.find((r) => isMine(state, r));
  if (own && !rows.includes(own)) rows.push(own);
  for (const r of rows) {
    const tr = el("tr", isMine(state, r) ? "mine" : "");
    const prev = state.prevRanks.get(r.accountId ?? r.address);
    const move = prev === undefined || prev === r.rank ? "" : prev > r.rank ? "▲" : "▼";
    const rank = el("td", "rank");
    rank.append(el("span", "", String(r.rank)), el("i", prev > r.rank ? "up" : "down", move));
    const who = el("td");
    const inner = el("div", "who");
    const b = el("b", "broker", brokerName(state, r.broker, r.brokerName));
    b.style.setProperty("--hue", String(brokerHue(r.broker)));
    inner.append(b, el("span", "acct", accountLabel(r.accountId, r.address)));
    inner.title = `${b.textContent} · ${r.address ?? `account #${r.accountId}`}`;
    who.append(inner);
    const pnl = String(r.pnl ?? "0");
    const pnlCell = el("td", `num pnl ${pnl.startsWith("-") ? "down" : pnl === "0" ? "" : "up"}`, formatFixed(pnl, quote.decimals, 2, { sign: true }));
    tr.title = [r.equity !== undefined ? `equity ${formatFixed(r.equity, quote.decimals, 2)}` : "", r.trades !== undefined ? `${r.trades} trades` : ""].filter(Boolean).join(" · ");
    tr.append(rank, who, pnlCell);
    body.append(tr);
  }
  $("leaderboard-empty").hidden = rows.length > 0;
}

export function renderPrompts(state, chosen) {
  const list = $("prompts");
  const select = $("prompts-session");
  const sessions = state.topPrompts;
  select.hidden = sessions.length < 2;
  if (select.options.length !== sessions.length || [...select.options].some((o, i) => o.value !== String(sessions[i]?.sessionId))) {
    select.textContent = "";
    for (const s of sessions) {
      const o = el("option", "", `Session #${s.sessionId}`);
      o.value = String(s.sessionId);
      select.append(o);
    }
  }
  const current = sessions.find((s) => String(s.sessionId) === chosen) ?? sessions[0];
  if (current) select.value = String(current.sessionId);
  list.textContent = "";
  const quoteDecimals = quoteToken(state).decimals;
  for (const p of current?.prompts ?? []) {
    const li = el("li");
    const head = el("div", "ph");
    const pnl = String(p.pnl ?? "0");
    head.append(
      el("span", "rank", `#${p.rank}`),
      el("span", `pnl ${pnl.startsWith("-") ? "down" : "up"}`, formatFixed(pnl, quoteDecimals, 2, { sign: true })),
    );
    const b = el("b", "broker", brokerName(state, p.broker, p.brokerName));
    b.style.setProperty("--hue", String(brokerHue(p.broker)));
    head.append(b, el("span", "acct", accountLabel(p.accountId, p.address)));
    const text = el("p", "text", p.prompt);
    text.tabIndex = 0;
    text.title = "click to expand";
    text.addEventListener("click", () => text.classList.toggle("open"));
    li.append(head, text);
    list.append(li);
  }
  $("prompts-empty").hidden = (current?.prompts ?? []).length > 0;
}

/** One open request: who asks for what, its terms and clock, then its quotes best first. */
function requestItem(state, r, now) {
  const ps = state.pairs.get(r.pair);
  const li = el("li", `rq ${r.side}${r.locker !== null ? " locked" : ""}${isMine(state, { accountId: r.accountId }) ? " mine" : ""}`);
  li.dataset.request = String(r.id);
  const head = el("div", "rq-head");
  const who = el("span", "who");
  who.append(...whoParts(state, r.accountId));
  const ttl = el("span", "rq-ttl", formatLeft(r.expiresAt - now));
  ttl.dataset.expires = String(r.expiresAt);
  ttl.title = "time left on the request";
  head.append(who, el("span", `rq-side ${r.side === "buy" ? "up" : "down"}`, r.side === "buy" ? "buys" : "sells"), el("span", "rq-size", lotsOf(ps, r.size)), el("span", "rq-pair", ps.pair.symbol), ttl);

  const terms = el("div", "rq-terms");
  terms.append(el("span", "rq-limit", r.limit === null ? "no limit" : `limit ${ps.units.price(r.limit)}`), el("span", "rq-left", `${lotsOf(ps, r.remaining)} left`));
  const count = `${r.quotes.length} quote${r.quotes.length === 1 ? "" : "s"}`;
  terms.append(el("span", "rq-best", r.best ? `best ${ps.units.price(r.best.price)} · ${count}` : r.quotes.length ? count : "no quotes yet"));
  if (r.locker !== null) {
    const lock = el("span", "rq-lock", `locked by ${whoText(state, r.locker)}`);
    lock.title = "only the locker's quote can be accepted while locked";
    terms.append(lock);
  }
  if (r.whitelisted) terms.append(el("span", "rq-invite", "invited quoters only"));
  li.append(head, terms);

  if (r.quotes.length > 0) {
    const quotes = el("ul", "rq-quotes");
    for (const q of r.quotes) {
      const item = el("li", `q${q === r.best ? " best" : ""}`);
      item.dataset.quote = String(q.id);
      const qwho = el("span", "who");
      qwho.append(...whoParts(state, q.quoter));
      item.append(qwho, el("span", "q-px", ps.units.price(q.price)), el("span", "q-size", `× ${lotsOf(ps, q.size)}`));
      item.title = `${q.side === "sell" ? "offers" : "bids"} until ${formatTime(q.validUntil)}`;
      quotes.append(item);
    }
    li.append(quotes);
  }
  return li;
}

/** The Requests list of the outcry panel. */
export function renderRequests(state) {
  const now = serverNow(state);
  const open = openRequests(state).filter((r) => state.pairs.has(r.pair));
  const list = $("rfq-list");
  list.textContent = "";
  for (const r of open) list.append(requestItem(state, r, now));
  list.hidden = open.length === 0;
  $("rfq-count").textContent = open.length === 0 ? "none open" : `${open.length} open`;
}

/** Called every 250 ms: the requests' clocks, without redrawing the list. */
export function renderRequestClocks(state) {
  const now = serverNow(state);
  for (const t of document.querySelectorAll("#rfq-list .rq-ttl")) {
    const left = Number(t.dataset.expires) - now;
    t.textContent = formatLeft(left);
    t.classList.toggle("urgent", left < 10_000);
  }
}
