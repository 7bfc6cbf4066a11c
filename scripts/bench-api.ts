// API load benchmark: a keeper with a session trading (built-in brokers plus a taker crossing
// their quotes) runs in a child process; this process holds 1,000 WebSocket subscribers and
// drives a sustained read load with autocannon on loopback, then reads the keeper's tick lag.
//   npm run bench:api                       (60 s)
//   CME_BENCH_SECONDS=20 npm run bench:api
// Ends with one JSON line: {"bench":"api","readsPerSec":…,"p99Ms":…,"droppedSubscribers":…,"errors":…,"tickLagP99Ms":…}
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

const SECONDS = Number(process.env.CME_BENCH_SECONDS ?? 60);
const SUBSCRIBERS = Number(process.env.CME_BENCH_SUBSCRIBERS ?? 1_000);
const BROKERS = Number(process.env.CME_BENCH_BROKERS ?? 100);
const CONNECTIONS = Number(process.env.CME_BENCH_CONNECTIONS ?? 50);

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
  const { createKeeper } = await import("../keeper/boot.ts");
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
  const config = loadConfig({}, { dbPath: ":memory:", port: 0, logLevel: "warn", preSessionSec: 1, tradingSec: SECONDS + 120, closingSec: 5, wsMaxBufferedBytes: 4 << 20 });
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
  const url = await keeper.app.listen({ host: "127.0.0.1", port: 0 });
  // A taker crossing the quotes every 100 ms keeps fills, books and the stream moving.
  let n = 0;
  setInterval(() => {
    const pit = keeper.runner.pit;
    if (pit === null || keeper.runner.current.phase !== "trading") return;
    for (const pair of [1, 2]) {
      const m = pit.market(pair, 1, 0);
      const buy = n++ % 2 === 0;
      const lvl = buy ? m.asks[0] : m.bids[0];
      if (lvl !== undefined) pit.submit(10 + (n % BROKERS), { cancels: [], orders: [{ pair, side: buy ? "buy" : "sell", price: lvl.price, size: 1, type: "ioc" }] });
    }
  }, 100).unref();
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
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(import.meta.url), "--serve"], { stdio: ["ignore", "pipe", "inherit"] });
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
    await new Promise((r) => setTimeout(r, 10_000));
    const baseline = Number(/^cme_tick_lag_p99_ms (\S+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? NaN);
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
    console.log(`${sockets.length} subscribers connected; reading for ${SECONDS} s with ${CONNECTIONS} connections`);
    const result = await autocannon({
      url,
      connections: CONNECTIONS,
      duration: SECONDS,
      requests: [
        { method: "GET", path: "/api/books/PEPE-USDC?levels=10" },
        { method: "GET", path: "/api/trades/WIF-USDC?limit=50" },
        { method: "GET", path: "/api/session" },
        { method: "GET", path: "/api/leaderboard" },
        { method: "GET", path: "/api/books/WIF-USDC?levels=20" },
        { method: "GET", path: "/api/outcry?limit=20" },
      ],
    });
    running = false;
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const gauge = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1] ?? NaN);
    const dropped = gauge("cme_ws_dropped_total");
    const tickLagP99 = gauge("cme_tick_lag_p99_ms");
    const fills = gauge("cme_fills_total");
    for (const ws of sockets) ws.terminate();
    const rows: [string, string][] = [
      ["reads/s (avg)", result.requests.average.toFixed(0)],
      ["reads total", String(result.requests.total)],
      ["latency p50 ms", String(result.latency.p50)],
      ["latency p99 ms", String(result.latency.p99)],
      ["latency max ms", String(result.latency.max)],
      ["errors / timeouts / non-2xx", `${result.errors} / ${result.timeouts} / ${result.non2xx}`],
      ["ws subscribers", String(SUBSCRIBERS)],
      ["ws messages received", String(received)],
      ["ws dropped (server) / closed (client)", `${dropped} / ${closedEarly}`],
      ["tick lag p99 ms (no load / under load)", `${baseline} / ${tickLagP99}`],
      ["fills during the run", String(fills)],
    ];
    for (const [k, v] of rows) console.log(`${k.padEnd(38)} ${v}`);
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
    child.kill("SIGTERM");
  }
}
