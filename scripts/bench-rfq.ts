// npm run bench:rfq — requests for quote through the exchange core (keeper/core/rfq.ts via
// engine.ts): how many RFQ commands per second one engine applies.
//
// A deterministic stream (seeded PRNG) over 4 pairs and 1,000 users: about 64 requests open at
// any time; each step either opens a request (buy or sell, 10-200 lots, a limit half the time,
// a whitelist now and then, remainder keep or drop), quotes an open request from another user,
// accepts (one quote by id, or the best quotes up to a size), cancels a request or withdraws a
// quote, locks or unlocks; every 500 commands an rfq_expire sweep. The stream is generated up
// front by running it through a scratch engine (so accepts name live quotes and most commands
// are accepted), then replayed on fresh engines: once timed as a whole (throughput), once with
// process.hrtime.bigint() around each command (latency).
//
// Prints a table, then exactly one JSON line. The broker-loop figures (request-to-fill latency
// p50/p99 through the executor and the models) need the session executor and are not measured
// here. BENCH_RFQ_COMMANDS=n changes the stream length.

import { cpus, loadavg } from "node:os";
import type { Command, CommandBody } from "../keeper/core/commands.ts";
import { Engine } from "../keeper/core/engine.ts";
import { Prng } from "../keeper/core/prng.ts";
import type { CommandResult, EngineConfig, RfqRequestView } from "../keeper/core/types.ts";

const PAIRS = 4;
const USERS = 1000;
const STREAM = Number(process.env["BENCH_RFQ_COMMANDS"] ?? 600_000);
const OPEN_TARGET = 64;
const REF = 10_000;

const config: EngineConfig = {
  sessionId: 1,
  assets: [
    { id: 0, symbol: "USDC", decimals: 6, unitBaseUnits: 1n },
    { id: 1, symbol: "PEPE", decimals: 18, unitBaseUnits: 10n ** 23n },
    { id: 2, symbol: "DOGE", decimals: 8, unitBaseUnits: 10n ** 9n },
    { id: 3, symbol: "WIF", decimals: 6, unitBaseUnits: 10n ** 6n },
    { id: 4, symbol: "BONK", decimals: 5, unitBaseUnits: 10n ** 10n },
  ],
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

// ---------------------------------------------------------------- stream

const RFQ_TYPES = ["rfq_request", "rfq_quote", "rfq_accept", "rfq_cancel", "rfq_lock", "rfq_unlock", "rfq_expire"] as const;
type RfqType = (typeof RFQ_TYPES)[number];

function setup(): Command[] {
  const out: Command[] = [];
  let seq = 1;
  for (let u = 1; u <= USERS; u++) {
    out.push({ type: "deposit", user: u, asset: 0, amount: 10n ** 13n, seq: seq++, ts: 0 });
    for (let a = 1; a <= PAIRS; a++) {
      out.push({ type: "deposit", user: u, asset: a, amount: 1_000_000n * config.assets[a]!.unitBaseUnits, seq: seq++, ts: 0 });
    }
  }
  out.push({ type: "start_trading", seq: seq++, ts: 0 });
  return out;
}

function generate(pre: readonly Command[]): Command[] {
  const rng = new Prng(20261206);
  const scratch = new Engine(config);
  for (const c of pre) scratch.apply(c);
  const out: Command[] = [];
  let ts = 1_000;
  // open requests as the scratch engine reports them (refreshed from its events)
  const open = new Map<number, RfqRequestView>();
  const send = (body: CommandBody): void => {
    const cmd = { ...body, seq: scratch.nextSeq, ts } as Command;
    out.push(cmd);
    const r = scratch.apply(cmd);
    if (!r.ok) return;
    for (const e of r.events) {
      if (e.kind === "fill" || !e.kind.startsWith("rfq_") || !("requestId" in e)) continue;
      const v = scratch.rfqRequest(e.requestId);
      if (v === null) open.delete(e.requestId);
      else open.set(e.requestId, v);
    }
  };
  const anyOpen = (): RfqRequestView => {
    // deterministic pick: the k-th open request in id order
    let k = rng.int(0, open.size - 1);
    for (const v of open.values()) if (k-- === 0) return v;
    throw new Error("no open request");
  };
  while (out.length < STREAM) {
    ts += 1;
    if (out.length % 500 === 499) {
      send({ type: "rfq_expire" });
      continue;
    }
    const x = rng.next();
    if (open.size < OPEN_TARGET / 2 || (open.size < OPEN_TARGET && x < 0.2)) {
      const side = rng.chance(0.5) ? "buy" : "sell";
      const size = rng.int(10, 200);
      const limit = rng.chance(0.5) ? (side === "buy" ? REF + rng.int(0, 200) : REF - rng.int(0, 200)) : undefined;
      const whitelist = rng.chance(0.1) ? [rng.int(1, USERS), rng.int(1, USERS), rng.int(1, USERS)] : undefined;
      send({
        type: "rfq_request",
        user: rng.int(1, USERS),
        pair: rng.int(1, PAIRS),
        side,
        size,
        expiresAt: ts + rng.int(500, 3000),
        remainder: rng.chance(0.5) ? "keep" : "drop",
        ...(limit === undefined ? {} : { limit }),
        ...(whitelist === undefined ? {} : { whitelist }),
      });
      continue;
    }
    const r = anyOpen();
    if (x < 0.62) {
      const user = r.whitelist !== null ? rng.pick(r.whitelist) : rng.int(1, USERS);
      const price = r.side === "buy" ? REF + rng.int(-100, 150) : REF - rng.int(-100, 150);
      send({ type: "rfq_quote", user, requestId: r.requestId, price, size: rng.int(1, r.remaining), validUntil: ts + rng.int(200, 2000) });
    } else if (x < 0.84) {
      if (r.quotes.length > 0 && rng.chance(0.5)) {
        send({ type: "rfq_accept", user: r.user, requestId: r.requestId, quoteId: rng.pick(r.quotes).quoteId });
      } else {
        send({ type: "rfq_accept", user: r.user, requestId: r.requestId, size: rng.int(1, r.remaining) });
      }
    } else if (x < 0.92) {
      const by = r.quotes.length > 0 && rng.chance(0.5) ? rng.pick(r.quotes).quoter : r.user;
      send({ type: "rfq_cancel", user: by, requestId: r.requestId });
    } else if (r.quotes.length > 0) {
      const q = rng.pick(r.quotes);
      send({ type: r.lockedBy === null ? "rfq_lock" : "rfq_unlock", user: r.lockedBy ?? q.quoter, requestId: r.requestId });
    }
  }
  return out;
}

// ---------------------------------------------------------------- runs

interface Run {
  engine: Engine;
  ns: number;
  lat: Float64Array | null;
  accepted: number;
  blockTrades: number;
  events: number;
  rejections: Map<string, number>;
}

function run(pre: readonly Command[], stream: readonly Command[], timeEach: boolean): Run {
  const engine = new Engine(config);
  for (const c of pre) engine.apply(c);
  const lat = timeEach ? new Float64Array(stream.length) : null;
  let accepted = 0;
  let blockTrades = 0;
  let events = 0;
  const rejections = new Map<string, number>();
  const count = (r: CommandResult): void => {
    if (!r.ok) {
      rejections.set(r.reason, (rejections.get(r.reason) ?? 0) + 1);
      return;
    }
    accepted++;
    events += r.events.length;
    for (const e of r.events) if (e.kind === "fill") blockTrades++;
  };
  const t0 = process.hrtime.bigint();
  if (lat === null) {
    for (let i = 0; i < stream.length; i++) count(engine.apply(stream[i]!));
  } else {
    for (let i = 0; i < stream.length; i++) {
      const a = process.hrtime.bigint();
      const r = engine.apply(stream[i]!);
      lat[i] = Number(process.hrtime.bigint() - a);
      count(r);
    }
  }
  const ns = Number(process.hrtime.bigint() - t0);
  return { engine, ns, lat, accepted, blockTrades, events, rejections };
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

const tg = process.hrtime.bigint();
const pre = setup();
const stream = generate(pre);
const genMs = Number(process.hrtime.bigint() - tg) / 1e6;
const byType = new Map<RfqType, number>(RFQ_TYPES.map((t) => [t, 0]));
for (const c of stream) byType.set(c.type as RfqType, byType.get(c.type as RfqType)! + 1);

// warm the JIT on a prefix, then the timed runs
run(pre, stream.slice(0, Math.min(100_000, stream.length)), false);
const cpu0 = process.cpuUsage();
const a = run(pre, stream, false);
const cpu = process.cpuUsage(cpu0);
const b = run(pre, stream, true);
const hashA = a.engine.stateHash();
if (b.engine.stateHash() !== hashA) throw new Error("the two runs diverged: the core is not deterministic");

const opsPerSec = Math.round((stream.length / a.ns) * 1e9);
const cpuOps = Math.round((stream.length / ((cpu.user + cpu.system) / 1000)) * 1e3);
const lat = b.lat!;
const perType = new Map<string, number[]>();
stream.forEach((c, i) => {
  let l = perType.get(c.type);
  if (l === undefined) perType.set(c.type, (l = []));
  l.push(lat[i]!);
});
const us = (ns: number): string => (ns / 1000).toFixed(2);
const table: string[][] = [["command", "count", "p50 µs", "p99 µs", "worst µs"]];
for (const t of RFQ_TYPES) {
  const l = Float64Array.from(perType.get(t) ?? []).sort();
  if (l.length === 0) continue;
  table.push([t, l.length.toLocaleString("en-US"), us(percentile(l, 0.5)), us(percentile(l, 0.99)), us(l[l.length - 1]!)]);
}
const all = Float64Array.from(lat).sort();
table.push(["all", stream.length.toLocaleString("en-US"), us(percentile(all, 0.5)), us(percentile(all, 0.99)), us(all[all.length - 1]!)]);
const widths = table[0]!.map((_, c) => Math.max(...table.map((r) => r[c]!.length)));
const load = loadavg()[0]!;

console.log(
  `stream: ${stream.length.toLocaleString("en-US")} RFQ commands over ${PAIRS} pairs and ${USERS} users (about ${OPEN_TARGET} requests open), generated in ${genMs.toFixed(0)} ms`,
);
console.log(
  `engine: ${a.accepted.toLocaleString("en-US")} accepted, ${(stream.length - a.accepted).toLocaleString("en-US")} rejected, ` +
    `${a.blockTrades.toLocaleString("en-US")} block trades, ${a.events.toLocaleString("en-US")} events; state hash ${hashA.slice(0, 16)}… identical in both runs`,
);
console.log(
  `rejections (the stream also sends what a broker would get refused): ${[...a.rejections].sort((x, y) => y[1] - x[1]).map(([k, n]) => `${k} ${n.toLocaleString("en-US")}`).join(", ")}`,
);
console.log("");
console.log(`throughput: ${opsPerSec.toLocaleString("en-US")} RFQ commands/s (wall), ${cpuOps.toLocaleString("en-US")} per CPU-s`);
console.log("");
for (const r of table) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
console.log("");
console.log("latencies: a second run with process.hrtime.bigint() around each command (timer overhead included).");
console.log("not measured here: request-to-fill latency through the broker loop (needs the session executor).");
console.log(`machine: ${cpus().length} cores, load average ${load.toFixed(2)} when the runs ended (other work shares the cores).`);
console.log(
  JSON.stringify({
    bench: "rfq",
    rfqOpsPerSec: opsPerSec,
    rfqOpsPerCpuSec: cpuOps,
    p50us: Number(us(percentile(all, 0.5))),
    p99us: Number(us(percentile(all, 0.99))),
    commands: stream.length,
    accepted: a.accepted,
    blockTrades: a.blockTrades,
    load: Math.round(load * 100) / 100,
  }),
);
