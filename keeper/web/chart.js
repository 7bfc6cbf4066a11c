// The session's price chart, drawn by hand on a canvas: candles (or a line) of trade prices over
// the trading window, volume underneath, the session's reference price and the last trade marked
// on the price axis. Geometry uses floats (pixels only); every label is formatted from integer
// ticks through the pair's exact units.
import { formatCompact, formatTime } from "./format.js";

const C = {
  grid: "rgba(255,255,255,0.055)",
  axis: "#7d8796",
  up: "#1fc77e",
  down: "#f6465d",
  upVol: "rgba(31,199,126,0.28)",
  downVol: "rgba(246,70,93,0.28)",
  ref: "#f0b90b",
  future: "rgba(255,255,255,0.018)",
  cross: "rgba(220,228,240,0.35)",
  labelText: "#0b0e11",
  line: "#4ea1ff",
};
const FONT = "11px ui-monospace, 'JetBrains Mono', 'SFMono-Regular', Menlo, 'Liberation Mono', 'DejaVu Sans Mono', monospace";
const BUCKETS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].map((s) => s * 1000);

function niceTickStep(range, target) {
  const raw = Math.max(1, range / target);
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) {
    const step = m * pow;
    if (step >= raw && Number.isInteger(step)) return step;
  }
  return Math.ceil(raw);
}

/** Groups trades (sorted by ts) into OHLC buckets of `bucket` ms starting at `x0`. */
export function toCandles(trades, x0, bucket) {
  const out = [];
  let cur = null;
  for (const t of trades) {
    const i = Math.floor((t.ts - x0) / bucket);
    if (!cur || cur.i !== i) {
      cur = { i, t: x0 + i * bucket, o: t.price, h: t.price, l: t.price, c: t.price, v: 0 };
      out.push(cur);
    }
    cur.h = Math.max(cur.h, t.price);
    cur.l = Math.min(cur.l, t.price);
    cur.c = t.price;
    cur.v += Number(t.size);
  }
  return out;
}

export function createChart(canvas, wrap, tip) {
  const ctx = canvas.getContext("2d");
  let mode = "candles";
  let data = null;
  let hover = null;
  let layout = null;
  let queued = false;

  const schedule = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      draw();
    });
  };
  new ResizeObserver(schedule).observe(wrap);
  canvas.addEventListener("pointermove", (e) => {
    const r = canvas.getBoundingClientRect();
    hover = { x: e.clientX - r.left, y: e.clientY - r.top };
    schedule();
  });
  canvas.addEventListener("pointerleave", () => {
    hover = null;
    tip.hidden = true;
    schedule();
  });

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const w = wrap.clientWidth;
    const h = wrap.clientHeight;
    if (w === 0 || h === 0) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
      canvas.style.width = `${w}px`;
      canvas.style.height = `${h}px`;
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (!data) return;
    ctx.font = FONT;
    ctx.textBaseline = "middle";

    const { trades, units, ref, now } = data;
    const L = { left: 8, right: w - 84, top: 28, bottom: h - 24 };
    const volH = Math.max(24, (L.bottom - L.top) * 0.16);
    const priceBottom = L.bottom - volH - 6;

    // Time domain: the whole trading window while trading (the future stays visibly empty),
    // else the span of the session's trades.
    let x0;
    let x1;
    if (data.window) {
      x0 = data.window.start;
      x1 = data.window.end;
    } else if (trades.length > 0) {
      x0 = trades[0].ts;
      x1 = Math.max(trades[trades.length - 1].ts, x0 + 10_000);
    } else {
      x0 = now - 60_000;
      x1 = now;
    }
    const span = Math.max(1, x1 - x0);
    const bucket = BUCKETS.find((b) => span / b <= 90) ?? BUCKETS[BUCKETS.length - 1];
    const candles = toCandles(trades, x0, bucket);

    let lo = ref ?? Infinity;
    let hi = ref ?? -Infinity;
    for (const c of candles) {
      lo = Math.min(lo, c.l);
      hi = Math.max(hi, c.h);
    }
    if (!Number.isFinite(lo)) {
      lo = 0;
      hi = 1;
    }
    const minRange = Math.max(4, (hi + lo) * 0.5 * 0.004);
    if (hi - lo < minRange) {
      const mid = (hi + lo) / 2;
      lo = mid - minRange / 2;
      hi = mid + minRange / 2;
    }
    const pad = (hi - lo) * 0.08;
    lo -= pad;
    hi += pad;

    const xOf = (t) => L.left + ((t - x0) / span) * (L.right - L.left);
    const yOf = (p) => L.top + ((hi - p) / (hi - lo)) * (priceBottom - L.top);
    layout = { L, x0, span, bucket, candles, lo, hi, priceBottom, yOf, xOf };

    // The part of the window still to come.
    if (data.window && now < x1) {
      const nx = Math.max(L.left, xOf(now));
      ctx.fillStyle = C.future;
      ctx.fillRect(nx, L.top, L.right - nx, L.bottom - L.top);
    }

    // Axis tags (reference, last trade) win over grid labels that would overlap them.
    const tagYs = [];
    if (typeof ref === "number") tagYs.push(yOf(ref));
    if (trades.length > 0) tagYs.push(yOf(trades[trades.length - 1].price));
    // Price grid and axis labels, on whole ticks.
    const step = niceTickStep(hi - lo, Math.max(3, Math.floor((priceBottom - L.top) / 34)));
    ctx.strokeStyle = C.grid;
    ctx.lineWidth = 1;
    ctx.fillStyle = C.axis;
    ctx.textAlign = "left";
    for (let p = Math.ceil(lo / step) * step; p <= hi; p += step) {
      const y = Math.round(yOf(p)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(L.left, y);
      ctx.lineTo(L.right, y);
      ctx.stroke();
      if (!tagYs.some((ty) => Math.abs(ty - y) < 15)) ctx.fillText(units.price(p), L.right + 8, y);
    }

    // Time grid.
    const tStep = BUCKETS.find((b) => span / b <= Math.max(2, Math.floor((L.right - L.left) / 110))) ?? 3_600_000;
    ctx.textAlign = "center";
    for (let t = Math.ceil(x0 / tStep) * tStep; t <= x1; t += tStep) {
      const x = Math.round(xOf(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, L.top);
      ctx.lineTo(x, L.bottom);
      ctx.stroke();
      const label = formatTime(t);
      ctx.fillText(tStep >= 60_000 ? label.slice(0, 5) : label, x, L.bottom + 12);
    }

    // Volume.
    const maxV = candles.reduce((m, c) => Math.max(m, c.v), 0) || 1;
    const bw = Math.max(1, ((L.right - L.left) * bucket) / span);
    for (const c of candles) {
      const vh = (c.v / maxV) * volH;
      ctx.fillStyle = c.c >= c.o ? C.upVol : C.downVol;
      ctx.fillRect(xOf(c.t) + bw * 0.12, L.bottom - vh, Math.max(1, bw * 0.76), vh);
    }

    // Reference price.
    if (typeof ref === "number") {
      const y = Math.round(yOf(ref)) + 0.5;
      ctx.save();
      ctx.strokeStyle = C.ref;
      ctx.globalAlpha = 0.75;
      ctx.setLineDash([5, 4]);
      ctx.beginPath();
      ctx.moveTo(L.left, y);
      ctx.lineTo(L.right, y);
      ctx.stroke();
      ctx.restore();
      ctx.fillStyle = C.ref;
      ctx.textAlign = "right";
      ctx.fillText("REF", L.right - 4, y - 8);
    }

    if (mode === "candles") {
      for (const c of candles) {
        const up = c.c >= c.o;
        const color = up ? C.up : C.down;
        const x = xOf(c.t) + bw / 2;
        ctx.strokeStyle = color;
        ctx.fillStyle = color;
        ctx.beginPath();
        ctx.moveTo(Math.round(x) + 0.5, yOf(c.h));
        ctx.lineTo(Math.round(x) + 0.5, yOf(c.l));
        ctx.stroke();
        const yo = yOf(c.o);
        const yc = yOf(c.c);
        const body = Math.max(1, Math.abs(yc - yo));
        const cw = Math.max(1, bw * 0.7);
        ctx.fillRect(Math.round(x - cw / 2), Math.min(yo, yc), Math.round(cw), body);
      }
    } else if (trades.length > 0) {
      const grad = ctx.createLinearGradient(0, L.top, 0, priceBottom);
      grad.addColorStop(0, "rgba(78,161,255,0.28)");
      grad.addColorStop(1, "rgba(78,161,255,0)");
      ctx.beginPath();
      trades.forEach((t, i) => (i === 0 ? ctx.moveTo(xOf(t.ts), yOf(t.price)) : ctx.lineTo(xOf(t.ts), yOf(t.price))));
      ctx.strokeStyle = C.line;
      ctx.lineWidth = 1.5;
      ctx.stroke();
      ctx.lineTo(xOf(trades[trades.length - 1].ts), priceBottom);
      ctx.lineTo(xOf(trades[0].ts), priceBottom);
      ctx.closePath();
      ctx.fillStyle = grad;
      ctx.fill();
      ctx.lineWidth = 1;
    }

    // Axis tags: reference and last price.
    const tag = (price, bg, fg) => {
      const y = Math.round(yOf(price));
      ctx.fillStyle = bg;
      ctx.fillRect(L.right + 2, y - 8, w - L.right - 4, 16);
      ctx.fillStyle = fg;
      ctx.textAlign = "left";
      ctx.fillText(units.price(price), L.right + 8, y + 0.5);
    };
    if (typeof ref === "number") tag(ref, "#3a3114", C.ref);
    if (trades.length > 0) {
      const last = trades[trades.length - 1];
      const color = data.lastDir < 0 ? C.down : C.up;
      const y = Math.round(yOf(last.price)) + 0.5;
      ctx.save();
      ctx.strokeStyle = color;
      ctx.setLineDash([2, 3]);
      ctx.beginPath();
      ctx.moveTo(L.left, y);
      ctx.lineTo(L.right, y);
      ctx.stroke();
      ctx.restore();
      tag(last.price, color, C.labelText);
    }

    drawHover();
  }

  function drawHover() {
    if (!hover || !layout || !data) {
      tip.hidden = true;
      return;
    }
    const { L, x0, span, bucket, candles, lo, hi, priceBottom } = layout;
    if (hover.x < L.left || hover.x > L.right || hover.y < L.top || hover.y > L.bottom) {
      tip.hidden = true;
      return;
    }
    ctx.save();
    ctx.strokeStyle = C.cross;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(Math.round(hover.x) + 0.5, L.top);
    ctx.lineTo(Math.round(hover.x) + 0.5, L.bottom);
    if (hover.y <= priceBottom) {
      ctx.moveTo(L.left, Math.round(hover.y) + 0.5);
      ctx.lineTo(L.right, Math.round(hover.y) + 0.5);
    }
    ctx.stroke();
    ctx.restore();
    if (hover.y <= priceBottom) {
      const p = Math.round(hi - ((hover.y - L.top) / (priceBottom - L.top)) * (hi - lo));
      ctx.fillStyle = "#2b3139";
      ctx.fillRect(L.right + 2, hover.y - 8, canvas.clientWidth - L.right - 4, 16);
      ctx.fillStyle = "#e6edf3";
      ctx.textAlign = "left";
      ctx.fillText(data.units.price(p), L.right + 8, hover.y + 0.5);
    }
    const t = x0 + ((hover.x - L.left) / (L.right - L.left)) * span;
    const i = Math.floor((t - x0) / bucket);
    const c = candles.find((k) => k.i === i);
    if (!c) {
      tip.hidden = true;
      return;
    }
    const u = data.units;
    tip.hidden = false;
    tip.textContent = "";
    const rows = [
      ["", formatTime(c.t)],
      ["O", u.price(c.o)],
      ["H", u.price(c.h)],
      ["L", u.price(c.l)],
      ["C", u.price(c.c)],
      ["Vol", formatCompact(u.baseUnits(c.v), data.baseDecimals) + " " + data.baseSymbol],
    ];
    for (const [k, v] of rows) {
      const row = document.createElement("div");
      const a = document.createElement("span");
      const b = document.createElement("b");
      a.textContent = k;
      b.textContent = v;
      row.append(a, b);
      tip.append(row);
    }
    tip.style.left = `${Math.min(hover.x + 14, L.right - 150)}px`;
    tip.style.top = `${L.top + 4}px`;
  }

  return {
    update(next) {
      data = next;
      schedule();
    },
    setMode(m) {
      mode = m;
      schedule();
    },
    get mode() {
      return mode;
    },
  };
}
