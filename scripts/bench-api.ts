// API load benchmark: a keeper with a session trading (built-in brokers plus a taker crossing
// their quotes) runs in a child process, listening as in production (server.ts: the HTTP/WS
// surface in its own thread); this process holds 1,000 WebSocket subscribers and drives a
// sustained read load with autocannon on loopback, then reads the keeper's own tick lag from
// /metrics: the executor's tick lag over the last minute (the load window when it lasts 60 s)
// and the pit thread's 20 ms timer probe.
// It also shows how the Linux scheduler treated the pit's thread (time on a CPU, time waiting
// for one): on a shared 2-core machine at full read speed the load generator and the API thread
// take every core there is, and what the pit's thread then waits is scheduling, not the keeper.
//   npm run bench:api                       (60 s at full speed)
//   CME_BENCH_SECONDS=20 npm run bench:api
//   CME_BENCH_RATE=5000 npm run bench:api   (a fixed offered rate: autocannon then times each
//                                            request from when it was due; then 10 s at full speed)
//   CME_API_THREAD=0 npm run bench:api      (everything on the pit's thread, for comparison)
//   CME_BENCH_PROFILE=DIR npm run bench:api (the keeper's CPU profiles, one per thread, in DIR)
// Ends with one JSON line: {"bench":"api","readsPerSec":…,"p99Ms":…,"droppedSubscribers":…,"errors":…,"tickLagP99Ms":…}
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { loadavg } from "node:os";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

const SECONDS = Number(process.env.CME_BENCH_SECONDS ?? 60);
const SUBSCRIBERS = Number(process.env.CME_BENCH_SUBSCRIBERS ?? 1_000);
const BROKERS = Number(process.env.CME_BENCH_BROKERS ?? 100);
const CONNECTIONS = Number(process.env.CME_BENCH_CONNECTIONS ?? 50);
/** Reads per second offered in the measured window; 0: as many as the keeper answers. */
const RATE = Number(process.env.CME_BENCH_RATE ?? 0);
/** Seconds of a full-speed capacity run after a fixed-rate window; 0: none. */
const FULL_SPEED_SECONDS = Number(process.env.CME_BENCH_FULL_SPEED_SECONDS ?? 10);

if (process.argv[2] === "--serve") {
  await serve();
} else {
  await bench();
}

/** The keeper side: an offline keeper (no chain) with a trading session and a taker. */
async function serve(): Promise<void> {
  const pino = (await import("pino")).default;
  const { getAddress } = await import("viem");
  const { privateKeyToAccount } = await import("viem/accounts");
  const { loadConfig } = await import("../keeper/config.ts");
  const { createKeeper } = await import("../keeper/keeper.ts");
  const { listen } = await import("../keeper/api/server.ts");
  const { updateUser } = await import("../keeper/store/users.ts");
  const token = (n: number) => getAddress(`0x${n.toString(16).padStart(40, "0")}`);
  const deployment = {
    chainId: 31337,
    vault: token(0xbeef),
    startBlock: 1,
    settler: token(0xa1),
    treasury: token(0xa2),
    insurance: token(0xa3),
    tokens: [
      { symbol: "USDC", address: token(0xa01), decimals: 6, index: 0 },
      { symbol: "PEPE", address: token(0xa02), decimals: 18, index: 1 },
      { symbol: "WIF", address: token(0xa03), decimals: 18, index: 2 },
    ],
  };
  const config = loadConfig({ CME_API_THREAD: process.env.CME_API_THREAD }, { dbPath: ":memory:", port: 0, logLevel: "warn", preSessionSec: 1, tradingSec: SECONDS + 120, closingSec: 5, wsMaxBufferedBytes: 4 << 20, wsMaxClientsPerAddress: SUBSCRIBERS + 10 });
  const keeper = await createKeeper(config, { deployment, chain: null, logger: pino({ level: "warn" }) });
  const events: Parameters<typeof keeper.runner.applyVaultEvents>[0] = [
    { kind: "account", block: 1, accountId: 1, address: deployment.treasury },
    { kind: "account", block: 1, accountId: 2, address: deployment.insurance },
  ];
  const strategies = ["rule-market-maker", "rule-mean-reversion", "rule-momentum", "rule-scalper"];
  for (let i = 0; i < BROKERS; i++) {
    const a = privateKeyToAccount(`0x${(i + 1).toString(16).padStart(64, "0")}`).address;
    const id = 10 + i;
    events.push({ kind: "account", block: 2, accountId: id, address: a });
    events.push({ kind: "deposit", block: 2, id: `u${i}`, address: a, token: token(0xa01), amount: 50_000_000_000n, balance: 50_000_000_000n });
    events.push({ kind: "deposit", block: 2, id: `p${i}`, address: a, token: token(0xa02), amount: 2n * 10n ** 24n, balance: 2n * 10n ** 24n });
    events.push({ kind: "deposit", block: 2, id: `w${i}`, address: a, token: token(0xa03), amount: 2n * 10n ** 19n, balance: 2n * 10n ** 19n });
    updateUser(keeper.db, a, { brokerId: strategies[i % strategies.length]!, prompt: "spread 2 ticks, size 3, risk limit 100, aggressiveness 0.8" }, Date.now());
  }
  keeper.runner.applyVaultEvents(events, 2n);
  await keeper.start();
  const url = await listen(keeper);
  // A taker crossing the quotes every 100 ms keeps fills, books and the stream moving.
  let n = 0;
  setInterval(() => {
    const pit = keeper.runner.port;
    if (pit === null || keeper.runner.current.phase !== "trading") return;
    for (const pair of [1, 2]) {
      const m = pit.market(pair, 1, 0);
      const buy = n++ % 2 === 0;
      const lvl = buy ? m.asks[0] : m.bids[0];
      if (lvl !== undefined) pit.submit(10 + (n % BROKERS), { cancels: [], orders: [{ pair, side: buy ? "buy" : "sell", price: lvl.price, size: 1, type: "ioc" }] });
    }
  }, 100).unref();
  // Stop, then exit (rather than die) on SIGTERM, so --cpu-prof can write its profiles.
  process.once("SIGTERM", () => {
    setTimeout(() => process.exit(1), 5_000).unref();
    void keeper.stop().finally(() => process.exit(0));
  });
  process.stdout.write(`READY ${url}\n`);
}

async function bench(): Promise<void> {
  const require = createRequire(import.meta.url);
  const autocannon = require("autocannon") as (opts: object) => Promise<{
    requests: { average: number; total: number };
    latency: { p99: number; p50: number; average: number; max: number };
    errors: number;
    timeouts: number;
    non2xx: number;
  }>;
  // CME_BENCH_PROFILE=DIR writes the keeper's CPU profile (.cpuprofile) there when it stops.
  const profile = process.env.CME_BENCH_PROFILE;
  const flags = profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profile}`];
  // Its own session, as a keeper service has: Linux schedules each session as a group, so the
  // keeper is not charged for the CPU this load generator burns.
  const child = spawn(process.execPath, [...flags, "--import", "tsx", fileURLToPath(import.meta.url), "--serve"], { stdio: ["ignore", "pipe", "inherit"], detached: true });
  const killChild = () => child.exitCode === null && child.kill("SIGKILL");
  process.once("exit", killChild);
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += String(d);
      const m = /READY (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`keeper exited ${code}`)));
  });
  try {
    for (let i = 0; i < 100; i++) {
      const s = (await (await fetch(`${url}/api/session`)).json()) as { phase: string };
      if (s.phase === "trading") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // Baseline: the pit's tick lag with the session trading and no readers.
    const schedIdle = schedstat(child.pid!);
    await new Promise((r) => setTimeout(r, 10_000));
    const schedIdleEnd = schedstat(child.pid!);
    const read = (text: string, name: string) => Number(new RegExp(`^${name.replace(/[{}.]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
    const idle = await (await fetch(`${url}/metrics`)).text();
    // (cme_tick_lag_1m_p99_ms is newer than the keeper's first figures; they used the all-time gauge.)
    const tickLag = (text: string) => {
      const windowed = read(text, "cme_tick_lag_1m_p99_ms");
      return Number.isNaN(windowed) ? read(text, "cme_tick_lag_p99_ms") : windowed;
    };
    const baseline = tickLag(idle);
    const baselineTimer = read(idle, 'cme_pit_timer_lag_p99_ms{window="10s"}');
    const loadBefore = loadavg()[0]!;
    const schedBefore = schedstat(child.pid!);
    const wsUrl = url.replace("http", "ws") + "/ws";
    let received = 0;
    let closedEarly = 0;
    let running = true;
    const sockets: WebSocket[] = [];
    for (let i = 0; i < SUBSCRIBERS; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, SUBSCRIBERS - i) }, () =>
          new Promise<void>((resolve, reject) => {
            const ws = new WebSocket(wsUrl);
            ws.on("message", () => received++);
            ws.on("close", () => running && closedEarly++);
            ws.once("open", () => resolve());
            ws.once("error", reject);
            sockets.push(ws);
          }),
        ),
      );
    }
    const rate = RATE > 0 ? `${RATE} reads/s` : "full speed";
    console.log(`${sockets.length} subscribers connected; reading for ${SECONDS} s at ${rate} with ${CONNECTIONS} connections`);
    const load = (seconds: number, overallRate: number) =>
      autocannon({
        url,
        connections: CONNECTIONS,
        duration: seconds,
        ...(overallRate > 0 ? { overallRate } : {}),
        requests: [
          { method: "GET", path: "/api/books/PEPE-USDC?levels=10" },
          { method: "GET", path: "/api/trades/WIF-USDC?limit=50" },
          { method: "GET", path: "/api/session" },
          { method: "GET", path: "/api/leaderboard" },
          { method: "GET", path: "/api/books/WIF-USDC?levels=20" },
          { method: "GET", path: "/api/outcry?limit=20" },
        ],
      });
    const result = await load(SECONDS, RATE);
    const schedAfter = schedstat(child.pid!);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const loadAfter = loadavg()[0]!;
    const gauge = (name: string) => read(metrics, name);
    const tickLagP99 = tickLag(metrics);
    const timerP99 = gauge('cme_pit_timer_lag_p99_ms{window="1m"}');
    const timerMax = gauge('cme_pit_timer_lag_max_ms{window="1m"}');
    const fills = gauge("cme_fills_total");
    let full: [string, string][] = [];
    if (RATE > 0 && FULL_SPEED_SECONDS > 0) {
      console.log(`then ${FULL_SPEED_SECONDS} s at full speed`);
      const f = await load(FULL_SPEED_SECONDS, 0);
      const m = await (await fetch(`${url}/metrics`)).text();
      full = [
        ["full speed: reads/s, p99 ms", `${f.requests.average.toFixed(0)}, ${f.latency.p99}`],
        ["full speed: errors / timeouts / non-2xx", `${f.errors} / ${f.timeouts} / ${f.non2xx}`],
        ["full speed: pit timer lag p99 / max ms", `${read(m, 'cme_pit_timer_lag_p99_ms{window="10s"}')} / ${read(m, 'cme_pit_timer_lag_max_ms{window="10s"}')}`],
      ];
    }
    running = false;
    const dropped = read(await (await fetch(`${url}/metrics`)).text(), "cme_ws_dropped_total");
    for (const ws of sockets) ws.terminate();
    const rows: [string, string][] = [
      [`reads/s (avg; offered: ${rate})`, result.requests.average.toFixed(0)],
      ["reads total", String(result.requests.total)],
      ["latency p50 ms", String(result.latency.p50)],
      ["latency p99 ms", String(result.latency.p99)],
      ["latency max ms", String(result.latency.max)],
      ["errors / timeouts / non-2xx", `${result.errors} / ${result.timeouts} / ${result.non2xx}`],
      ["ws subscribers", String(SUBSCRIBERS)],
      ["ws messages received", String(received)],
      ["ws dropped (server) / closed (client)", `${dropped} / ${closedEarly}`],
      ["tick lag p99 ms (no load / under load)", `${baseline} / ${tickLagP99}`],
      ["pit timer lag p99 ms (no load / load)", `${baselineTimer} / ${timerP99} (max ${timerMax})`],
      ["API on its own thread", process.env.CME_API_THREAD === "0" || process.env.CME_API_THREAD === "false" ? "no" : "yes"],
      ["load average (1 min, before / after)", `${loadBefore.toFixed(2)} / ${loadAfter.toFixed(2)}`],
      ["pit thread, no load: on CPU / waiting", schedText(schedIdle, schedIdleEnd)],
      ["pit thread, load: on CPU / waiting", schedText(schedBefore, schedAfter)],
      ["fills during the run", String(fills)],
      ...full,
    ];
    for (const [k, v] of rows) console.log(`${k.padEnd(40)} ${v}`);
    console.log(
      JSON.stringify({
        bench: "api",
        readsPerSec: Math.round(result.requests.average),
        p99Ms: result.latency.p99,
        droppedSubscribers: Math.max(dropped, closedEarly),
        errors: result.errors + result.timeouts + result.non2xx,
        tickLagP99Ms: tickLagP99,
      }),
    );
  } finally {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  }
}

/**
 * The keeper's main (pit) thread as the Linux scheduler saw it: time on a CPU, time runnable but
 * waiting for one, and how many times it ran. Null elsewhere.
 */
function schedstat(pid: number): { cpuNs: number; waitNs: number; slices: number; at: number } | null {
  try {
    const [cpu, wait, slices] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, "utf8").trim().split(/\s+/).map(Number);
    return { cpuNs: cpu!, waitNs: wait!, slices: slices!, at: performance.now() };
  } catch {
    return null;
  }
}

function schedText(a: ReturnType<typeof schedstat>, b: ReturnType<typeof schedstat>): string {
  if (a === null || b === null) return "n/a";
  const s = (b.at - a.at) / 1000;
  const runs = Math.max(1, b.slices - a.slices);
  return `${((b.cpuNs - a.cpuNs) / 1e6 / s).toFixed(0)} / ${((b.waitNs - a.waitNs) / 1e6 / s).toFixed(0)} ms per s (${((b.waitNs - a.waitNs) / 1e3 / runs).toFixed(0)} us wait per run)`;
}
