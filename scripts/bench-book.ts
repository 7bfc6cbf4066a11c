// npm run bench:book — order book and exchange-core throughput and latency.
//
// A deterministic stream (seeded PRNG) over 4 pairs and 1,000 users: 10,000 resting orders
// first (untimed), then 1,000,000 commands: ~70% limit orders near the mid (passive), ~20%
// cancels of live orders, ~10% crossing orders (IOC or limit through the touch). The stream is
// generated up front into typed arrays by running it through a scratch book, so cancels always
// name live orders; the timed runs then replay it on fresh books / engines.
//
// Runs: "book"   - the four OrderBooks alone (book.ts): match + report, no accounts;
//       "engine" - the whole core (engine.ts): validation, margin pre-trade check, match,
//                  fees, inventories, immutable events, results.
// Each runs twice: once timed as a whole (throughput), once with process.hrtime.bigint()
// around every command (latency; includes ~30-60 ns of timer overhead per command).
// Prints a table, then exactly one JSON line.
//
// Run with --expose-gc (the npm script does) so memory is measured after a full collection.
// BENCH_COMMANDS=n shortens the stream; BENCH_PROFILE=engine runs only the engine once (for
// node --cpu-prof / --trace-gc).

import { cpus, loadavg } from "node:os";
import { PerformanceObserver } from "node:perf_hooks";
import { OrderBook } from "../keeper/core/book.ts";
import { Prng } from "../keeper/core/prng.ts";
import type { Command } from "../keeper/core/commands.ts";
import { Engine } from "../keeper/core/engine.ts";
import { BUY, IOC, LIMIT, SELL, type SideCode, type TypeCode } from "../keeper/core/matching.ts";
import type { EngineConfig } from "../keeper/core/types.ts";

const PAIRS = 4;
const USERS = 1000;
const RESTING = 10_000;
const STREAM = Number(process.env["BENCH_COMMANDS"] ?? 1_000_000);
const REF = 10_000;
const SIZE_MAX = 100;
// Crossing orders go up to THROUGH ticks through the touch with CROSS_MIN..CROSS_MAX lots:
// tuned so fills and cancels roughly keep pace with new orders (the book stays ~10-20k deep).
const THROUGH = 6;
const CROSS_MIN = 100;
const CROSS_MAX = 490;

// ---------------------------------------------------------------- config

const config: EngineConfig = {
  sessionId: 1,
  assets: [
    { id: 0, symbol: "USDC", decimals: 6, unitBaseUnits: 1n },
    { id: 1, symbol: "PEPE", decimals: 18, unitBaseUnits: 10n ** 23n },
    { id: 2, symbol: "DOGE", decimals: 8, unitBaseUnits: 10n ** 9n },
    { id: 3, symbol: "WIF", decimals: 6, unitBaseUnits: 10n ** 6n },
    { id: 4, symbol: "BONK", decimals: 5, unitBaseUnits: 10n ** 10n },
  ],
  // reference 10,000 ticks, 1 tick = 100 micro-USDC per lot (1 bp), band ±50% = 10,001 levels
  pairs: ["PEPE", "DOGE", "WIF", "BONK"].map((sym, i) => ({
    id: i + 1,
    symbol: `${sym}/USDC`,
    base: i + 1,
    quote: 0,
    quotePerTickLot: 100,
    minSizeLots: 1,
    maxSizeLots: 100_000,
    referencePriceTicks: REF,
    priceBandBps: 5000,
    markBandBps: 2000,
  })),
  fees: { makerBps: 0, takerBps: 5 },
  margin: { initialBps: 2000, maintenanceBps: 1000, liquidationFeeBps: 50, liquidationSlippageBps: 1000 },
  treasury: 1_000_000,
  insurance: 1_000_001,
  maxOpenOrdersPerUser: 1000,
  recentTradesKept: 100,
};
const limits = { minPrice: REF / 2, maxPrice: (REF * 3) / 2, minSize: 1, maxSize: 100_000 };

// ---------------------------------------------------------------- stream

const PLACE = 0;
const CANCEL = 1;

interface Stream {
  n: number;
  kind: Uint8Array;
  user: Int32Array;
  pair: Uint8Array;
  side: Uint8Array;
  type: Uint8Array;
  price: Int32Array;
  size: Int32Array;
  /** Order id: the place command's engine seq, or the id a cancel names. */
  id: Float64Array;
}

function alloc(n: number): Stream {
  return {
    n,
    kind: new Uint8Array(n),
    user: new Int32Array(n),
    pair: new Uint8Array(n),
    side: new Uint8Array(n),
    type: new Uint8Array(n),
    price: new Int32Array(n),
    size: new Int32Array(n),
    id: new Float64Array(n),
  };
}

/** Engine seq of the first warm-up order: after start_trading and one deposit per user and asset. */
const FIRST_SEQ = 1 + USERS * config.assets.length + 1;

function generate(): { warm: Stream; stream: Stream; crossings: number } {
  const rng = new Prng(20260101);
  const books = Array.from({ length: PAIRS }, () => new OrderBook(limits, 1 << 16));
  // live orders per pair with swap-remove, to pick cancels; ids map to their index
  const liveId: number[][] = Array.from({ length: PAIRS }, () => []);
  const liveUser: number[][] = Array.from({ length: PAIRS }, () => []);
  const where = new Map<number, number>();
  const drop = (p: number, id: number): void => {
    const i = where.get(id);
    if (i === undefined) return;
    const ids = liveId[p]!;
    const us = liveUser[p]!;
    const lastId = ids.pop()!;
    const lastUser = us.pop()!;
    if (i < ids.length) {
      ids[i] = lastId;
      us[i] = lastUser;
      where.set(lastId, i);
    }
    where.delete(id);
  };
  let seq = FIRST_SEQ;
  let crossings = 0;
  const emit = (s: Stream, i: number, isWarm: boolean): void => {
    const p = rng.int(0, PAIRS - 1);
    const book = books[p]!;
    const r = rng.next();
    const bid = book.bestBid();
    const ask = book.bestAsk();
    const mid = bid >= 0 && ask >= 0 ? Math.floor((bid + ask) / 2) : bid >= 0 ? bid + 1 : ask >= 0 ? ask - 1 : REF;
    s.pair[i] = p;
    s.id[i] = seq;
    if (!isWarm && r < 0.2 && liveId[p]!.length > 0) {
      const k = rng.int(0, liveId[p]!.length - 1);
      const id = liveId[p]![k]!;
      const user = liveUser[p]![k]!;
      s.kind[i] = CANCEL;
      s.user[i] = user;
      s.id[i] = id;
      book.cancel(id, user);
      drop(p, id);
    } else {
      const user = rng.int(0, USERS - 1);
      const side = rng.int(0, 1) as SideCode;
      let type: TypeCode = LIMIT;
      let price: number;
      let size = rng.int(1, SIZE_MAX);
      if (!isWarm && r >= 0.9) {
        // crossing: through the touch by a few ticks, big enough to take several orders
        crossings++;
        type = rng.next() < 0.5 ? IOC : LIMIT;
        const touch = side === BUY ? (ask >= 0 ? ask : mid + 1) : bid >= 0 ? bid : mid - 1;
        price = side === BUY ? touch + rng.int(0, THROUGH) : touch - rng.int(0, THROUGH);
        size = rng.int(CROSS_MIN, CROSS_MAX);
      } else {
        // passive, near the mid
        const off = 1 + Math.floor(Math.abs(rng.next() - rng.next()) * 12);
        price = side === BUY ? mid - off : mid + off;
        if (side === BUY && ask >= 0 && price >= ask) price = ask - 1;
        if (side === SELL && bid >= 0 && price <= bid) price = bid + 1;
      }
      price = Math.min(limits.maxPrice, Math.max(limits.minPrice, price));
      s.kind[i] = PLACE;
      s.user[i] = user;
      s.side[i] = side;
      s.type[i] = type;
      s.price[i] = price;
      s.size[i] = size;
      book.place(seq, user, side, type, price, size);
      const rep = book.report;
      for (let e = 0; e < rep.count; e++) {
        if (rep.remaining[e] === 0) drop(p, rep.orderId[e]!);
      }
      if (rep.rested) {
        where.set(seq, liveId[p]!.length);
        liveId[p]!.push(seq);
        liveUser[p]!.push(user);
      }
    }
    seq++;
  };
  const warm = alloc(RESTING);
  for (let i = 0; i < RESTING; i++) emit(warm, i, true);
  const stream = alloc(STREAM);
  for (let i = 0; i < STREAM; i++) emit(stream, i, false);
  return { warm, stream, crossings };
}

// ---------------------------------------------------------------- runners

const SIDES = ["buy", "sell"] as const;
const TYPES = ["limit", "ioc", "post_only"] as const;

interface Latency {
  hist: Uint32Array; // 10 ns buckets up to 1 ms
  over: number[]; // ns, beyond the histogram
  /** Stream index of the slowest command, to tell a recurring cost from a descheduled process. */
  worstAt: number;
  worstNs: number;
}

function newLatency(): Latency {
  return { hist: new Uint32Array(100_000), over: [], worstAt: -1, worstNs: 0 };
}

function record(l: Latency, ns: number, i: number): void {
  const b = Math.floor(ns / 10);
  if (b < l.hist.length) l.hist[b]!++;
  else l.over.push(ns);
  if (ns > l.worstNs) {
    l.worstNs = ns;
    l.worstAt = i;
  }
}

function percentile(l: Latency, p: number, total: number): number {
  const target = Math.ceil(total * p);
  let acc = 0;
  for (let b = 0; b < l.hist.length; b++) {
    acc += l.hist[b]!;
    if (acc >= target) return (b + 1) * 10;
  }
  const over = [...l.over].sort((a, b) => a - b);
  return over[Math.min(over.length - 1, target - acc - 1)] ?? 0;
}

function worst(l: Latency): number {
  if (l.over.length > 0) return Math.max(...l.over);
  for (let b = l.hist.length - 1; b >= 0; b--) if (l.hist[b]! > 0) return (b + 1) * 10;
  return 0;
}

function bookRun(w: Stream, s: Stream, timeEach: boolean): { ns: number; lat: Latency; books: OrderBook[]; fills: number } {
  const books = Array.from({ length: PAIRS }, () => new OrderBook(limits));
  for (let i = 0; i < w.n; i++) books[w.pair[i]!]!.place(w.id[i]!, w.user[i]!, w.side[i]! as SideCode, w.type[i]! as TypeCode, w.price[i]!, w.size[i]!);
  const lat = newLatency();
  let fills = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < s.n; i++) {
    const t = timeEach ? process.hrtime.bigint() : 0n;
    const book = books[s.pair[i]!]!;
    if (s.kind[i] === PLACE) {
      book.place(s.id[i]!, s.user[i]!, s.side[i]! as SideCode, s.type[i]! as TypeCode, s.price[i]!, s.size[i]!);
    } else book.cancel(s.id[i]!, s.user[i]!);
    fills += book.report.count;
    if (timeEach) record(lat, Number(process.hrtime.bigint() - t), i);
  }
  return { ns: Number(process.hrtime.bigint() - t0), lat, books, fills };
}

function commandAt(s: Stream, i: number, seq: number): Command {
  if (s.kind[i] === PLACE) {
    return {
      type: "place",
      seq,
      ts: seq,
      user: s.user[i]!,
      pair: s.pair[i]! + 1,
      side: SIDES[s.side[i]!]!,
      orderType: TYPES[s.type[i]!]!,
      price: s.price[i]!,
      size: s.size[i]!,
    };
  }
  return { type: "cancel", seq, ts: seq, user: s.user[i]!, orderId: s.id[i]! };
}

function engineRun(w: Stream, s: Stream, timeEach: boolean) {
  const engine = new Engine(config);
  let seq = 1;
  for (let u = 0; u < USERS; u++) {
    engine.apply({ type: "deposit", seq: seq, ts: seq, user: u, asset: 0, amount: 10n ** 12n });
    seq++;
    for (let a = 1; a <= 4; a++) {
      engine.apply({ type: "deposit", seq, ts: seq, user: u, asset: a, amount: 1_000_000n * config.assets[a]!.unitBaseUnits });
      seq++;
    }
  }
  engine.apply({ type: "start_trading", seq, ts: seq });
  seq++;
  for (let i = 0; i < w.n; i++) engine.apply(commandAt(w, i, seq++));
  const lat = newLatency();
  let rejected = 0;
  let events = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < s.n; i++) {
    const t = timeEach ? process.hrtime.bigint() : 0n;
    const r = engine.apply(commandAt(s, i, seq++));
    if (r.ok) events += r.events.length;
    else rejected++;
    if (timeEach) record(lat, Number(process.hrtime.bigint() - t), i);
  }
  return { ns: Number(process.hrtime.bigint() - t0), lat, engine, rejected, events };
}

// ---------------------------------------------------------------- main

const gc = (globalThis as { gc?: () => void }).gc;
/** JS heap plus typed-array buffers (where the books and the ledger keep their state). */
async function heapMB(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((res) => setTimeout(res, 30)); // array buffers are freed after the GC
  }
  const m = process.memoryUsage();
  return (m.heapUsed + m.arrayBuffers) / 2 ** 20;
}

// Every GC pause with its start time; each timed run is a window, and a run's pauses are those
// that started inside it (forced collections for the heap figures fall outside).
const GC_KIND: Record<number, string> = { 1: "scavenge", 2: "minor-ms", 4: "mark-compact", 8: "incremental", 16: "weak-cb" };
const gcs: { start: number; ms: number; kind: string }[] = [];
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as { detail?: { kind?: number } }).detail?.kind ?? 0;
    gcs.push({ start: e.startTime, ms: e.duration, kind: GC_KIND[kind] ?? String(kind) });
  }
});
function pauses(w: [number, number]): { max: number; count: number; worst: string } {
  const inside = gcs.filter((g) => g.start >= w[0] && g.start <= w[1]);
  const top = inside.reduce((m, g) => (g.ms > m.ms ? g : m), { ms: 0, kind: "none", start: 0 });
  return { max: top.ms, count: inside.length, worst: top.kind };
}
/** Runs `run`, noting its wall window (for GC attribution) and the process CPU time it used. */
async function timed<T>(run: () => T): Promise<{ r: T; window: [number, number]; cpuMs: number }> {
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const r = run();
  const end = performance.now();
  const cpu = process.cpuUsage(cpu0);
  await new Promise((res) => setTimeout(res, 20)); // GC entries arrive asynchronously
  return { r, window: [start, end], cpuMs: (cpu.user + cpu.system) / 1000 };
}

const tg = process.hrtime.bigint();
const { warm, stream, crossings } = generate();
const genMs = Number(process.hrtime.bigint() - tg) / 1e6;
let places = 0;
let cancels = 0;
for (let i = 0; i < stream.n; i++) stream.kind[i] === PLACE ? places++ : cancels++;

// warm the JIT on a short prefix so the timed runs measure steady state
{
  const short = { ...stream, n: Math.min(100_000, stream.n) };
  bookRun(warm, short, false);
  engineRun(warm, short, false);
}

if (process.env["BENCH_PROFILE"] === "engine") {
  // for --cpu-prof / --trace-gc: the engine run alone
  console.log(`engine run starts at ${performance.now().toFixed(0)} ms`);
  const r = engineRun(warm, stream, false);
  console.log(`engine run ends at ${performance.now().toFixed(0)} ms`);
  console.log(`engine ${Math.round((STREAM / r.ns) * 1e9)} commands/s`);
  process.exit(0);
}

obs.observe({ entryTypes: ["gc"] });
// Memory: what the run's books / engine still hold at the end (measured with it alive, then
// without it).
const bookA = await timed(() => bookRun(warm, stream, false));
const bookResting = bookA.r.books.reduce((n, b) => n + b.size, 0);
const withBooks = await heapMB();
bookA.r.books.length = 0;
const bookHeap = withBooks - (await heapMB());
const bookB = await timed(() => bookRun(warm, stream, true));
bookB.r.books.length = 0;

const engA = await timed(() => engineRun(warm, stream, false));
const hashA = engA.r.engine.stateHash();
const withEngine = await heapMB();
(engA.r as { engine: Engine | null }).engine = null;
const engHeap = withEngine - (await heapMB());
const engB = await timed(() => engineRun(warm, stream, true));
const hashB = engB.r.engine.stateHash();
obs.disconnect();
const gcBook = [pauses(bookA.window), pauses(bookB.window)];
const gcEng = [pauses(engA.window), pauses(engB.window)];
if (hashA !== hashB) throw new Error("the two engine runs diverged: the core is not deterministic");

const bookOps = Math.round((STREAM / bookA.r.ns) * 1e9);
const engOps = Math.round((STREAM / engA.r.ns) * 1e9);
// On a shared machine wall time includes time the process was not scheduled; CPU time of the
// whole run (setup included, and GC helper threads) gives a load-independent rate beside it.
const bookCpuOps = Math.round((STREAM / bookA.cpuMs) * 1e3);
const engCpuOps = Math.round((STREAM / engA.cpuMs) * 1e3);
const load = loadavg()[0]!;
const us = (ns: number): number => Math.round(ns / 10) / 100;
const row = (name: string, ops: number, cpuOps: number, l: Latency, heap: number, gcMs: number): string[] => [
  name,
  ops.toLocaleString("en-US"),
  cpuOps.toLocaleString("en-US"),
  us(percentile(l, 0.5, STREAM)).toFixed(2),
  us(percentile(l, 0.99, STREAM)).toFixed(2),
  us(percentile(l, 0.999, STREAM)).toFixed(2),
  (worst(l) / 1e6).toFixed(2),
  gcMs.toFixed(2),
  heap.toFixed(1),
];
const table = [
  ["run", "commands/s", "per CPU-s", "p50 µs", "p99 µs", "p99.9 µs", "worst ms", "max GC ms", "memory MB"],
  row("book alone", bookOps, bookCpuOps, bookB.r.lat, bookHeap, Math.max(...gcBook.map((g) => g.max))),
  row("engine (margin+fees)", engOps, engCpuOps, engB.r.lat, engHeap, Math.max(...gcEng.map((g) => g.max))),
];
const widths = table[0]!.map((_, c) => Math.max(...table.map((r) => r[c]!.length)));
console.log(`stream: ${RESTING.toLocaleString("en-US")} resting orders, then ${STREAM.toLocaleString("en-US")} commands ` +
  `(${places.toLocaleString("en-US")} orders of which ${crossings.toLocaleString("en-US")} crossing, ${cancels.toLocaleString("en-US")} cancels) ` +
  `over ${PAIRS} pairs and ${USERS} users; generated in ${genMs.toFixed(0)} ms`);
console.log(`book: ${bookA.r.fills.toLocaleString("en-US")} fills+self-trade cancels, ${bookResting.toLocaleString("en-US")} orders resting at the end`);
console.log(`engine: ${engA.r.events.toLocaleString("en-US")} events, ${engA.r.rejected.toLocaleString("en-US")} rejections; state hash ${hashA.slice(0, 16)}… identical in both runs`);
console.log("");
for (const r of table) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
console.log("");
console.log("commands/s: wall clock of the run without per-command timers; per CPU-s: the same run over the process's CPU time.");
console.log("latencies: a second run with process.hrtime.bigint() around each command (timer overhead included).");
const slowest = (l: Latency): string =>
  `#${l.worstAt.toLocaleString("en-US")} (${stream.kind[l.worstAt] === PLACE ? (stream.type[l.worstAt] === IOC ? "ioc" : "limit") : "cancel"}, ${(l.worstNs / 1e6).toFixed(2)} ms)`;
console.log(`slowest command: book ${slowest(bookB.r.lat)}, engine ${slowest(engB.r.lat)}`);
console.log(`machine: ${cpus().length} cores, load average ${load.toFixed(2)} when the runs ended (other work shares the cores).`);
if (gc === undefined) console.log("(run with --expose-gc for heap figures after a full collection)");
const gcLine = (name: string, g: { max: number; count: number; worst: string }[]): string =>
  `${name}: ${g[0]!.count + g[1]!.count} collections, longest ${Math.max(g[0]!.max, g[1]!.max).toFixed(2)} ms (${g[0]!.max >= g[1]!.max ? g[0]!.worst : g[1]!.worst})`;
console.log(`GC during timed runs - ${gcLine("book", gcBook)}; ${gcLine("engine", gcEng)}`);
const maxPauseMs = Math.max(worst(bookB.r.lat), worst(engB.r.lat)) / 1e6;
const maxGc = Math.max(...gcBook.map((g) => g.max), ...gcEng.map((g) => g.max));
console.log(
  JSON.stringify({
    bench: "book",
    bookOpsPerSec: bookOps,
    marginOpsPerSec: engOps,
    p99us: us(percentile(engB.r.lat, 0.99, STREAM)),
    maxPauseMs: Math.round(Math.max(maxPauseMs, maxGc) * 100) / 100,
    bookP99us: us(percentile(bookB.r.lat, 0.99, STREAM)),
    p999us: us(percentile(engB.r.lat, 0.999, STREAM)),
    commands: STREAM,
    bookOpsPerCpuSec: bookCpuOps,
    marginOpsPerCpuSec: engCpuOps,
    load: Math.round(load * 100) / 100,
  }),
);
