// npm run bench:brokers — how many brokers one keeper serves at 1 Hz.
//
// One keeper process runs the real session loop (keeper/executor) over the real pit (keeper/core
// Engine behind keeper/session/pit.ts) with N AI brokers and M rule-based brokers. The AI brokers are
// the real openai SDK client talking over loopback HTTP to the local OpenAI-compatible model
// server (test/support/openai-server.ts), run as a separate process so its CPU is not counted
// as the keeper's event loop; it answers each call with a plausible trading decision after a
// configurable latency (default 300 ms ± 100 ms).
//
// For each N the loop runs a warm-up, then a measured window. N "is served at 1 Hz" when
//   - >= 99% of ticks asked every due broker within 250 ms of the tick's scheduled instant,
//   - >= 99% of AI broker-ticks got a call (none skipped because the last one was still out),
//   - <= 1% of calls failed (timeouts, connection errors).
// N steps up from BENCH_START until it fails (or reaches BENCH_MAX_AI), or down by halves when
// BENCH_START already fails, then bisects once between the last pass and the first failure.
//
// Env: BENCH_LATENCY_MS (300), BENCH_JITTER_MS (100), BENCH_RULE (1000), BENCH_START (500),
//      BENCH_MAX_AI (3000), BENCH_SECONDS (15), BENCH_WARMUP_SECONDS (5), BENCH_AI (a fixed
//      comma-separated list of N instead of the search).
// Prints a table, then exactly one JSON line.

import { spawn, type ChildProcess } from "node:child_process";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { catalogue } from "../keeper/brokers/catalogue.ts";
import { BrokerFactory } from "../keeper/brokers/factory.ts";
import { EXAMPLE_PROMPTS } from "../keeper/brokers/prompt-files.ts";
import { systemClock } from "../keeper/executor/clock.ts";
import { SessionExecutor } from "../keeper/executor/session-executor.ts";
import { openPit } from "../keeper/session/open-pit.ts";
import { buildMarket } from "../keeper/session/pairs.ts";
import type { Deployment } from "../keeper/chain/deployment.ts";
import { InProcessTransport, type ModelTransport } from "../keeper/brokers/model-transport.ts";
import { WorkerTransport } from "../keeper/brokers/worker-transport.ts";

const env = (name: string, fallback: number) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && process.env[name] !== "" && process.env[name] !== undefined ? v : fallback;
};
const LATENCY = env("BENCH_LATENCY_MS", 300);
const JITTER = env("BENCH_JITTER_MS", 100);
const RULE = env("BENCH_RULE", 1000);
const START = env("BENCH_START", 500);
const MAX_AI = env("BENCH_MAX_AI", 3000);
const SECONDS = env("BENCH_SECONDS", 15);
const WARMUP = env("BENCH_WARMUP_SECONDS", 5);
/** Model-call worker threads (0: the SDK runs on the loop's own thread). */
const WORKERS = env("BENCH_WORKERS", 1);
const FIXED = (process.env["BENCH_AI"] ?? "")
  .split(",")
  .filter((x) => x.trim() !== "")
  .map((x) => Number(x.trim()))
  .filter((x) => Number.isInteger(x) && x >= 0);

async function serverCpuMs(url: string): Promise<number> {
  const r = await fetch(url.replace(/\/v1$/, "/stats"));
  return ((await r.json()) as { cpuMs: number }).cpuMs;
}

const RULE_IDS = ["rule-market-maker", "rule-momentum", "rule-mean-reversion", "rule-scalper"];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startModelServer(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/support/openai-server.ts", "--latency", String(LATENCY), "--jitter", String(JITTER)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const rl = createInterface({ input: child.stdout! });
  const url = await new Promise<string>((resolve, reject) => {
    rl.once("line", (line) => resolve((JSON.parse(line) as { url: string }).url));
    child.once("exit", (code) => reject(new Error(`model server exited (${code})`)));
  });
  return { url, child };
}

interface StepResult {
  ai: number;
  rule: number;
  ticks: number;
  onTimePct: number;
  servedPct: number;
  failedPct: number;
  doneLateP99Ms: number;
  loopLagP99Ms: number;
  tokensPerAiCall: number;
  tokensPerKeeperTick: number;
  ordersPerSec: number;
  /** The keeper process's CPU time over the window, as a share of one core. */
  keeperCpuPct: number;
  /** The model server process's CPU over the window, as a share of one core. */
  serverCpuPct: number;
  /** Model call round trip seen by the broker (server latency + queueing on this machine). */
  rttP50Ms: number;
  rttP99Ms: number;
  pass: boolean;
}

/** One PEPE/USDC market at $0.00001 over a two-token deployment (no chain needed). */
function pepeMarket() {
  const token = (symbol: string, decimals: number, index: number) => ({ symbol, decimals, index, address: `0x${String(index + 1).padStart(40, "0")}` as const });
  const deployment = { chainId: 31337, tokens: [token("USDC", 6, 0), token("PEPE", 18, 1)] } as unknown as Deployment;
  return buildMarket(deployment, { PEPE: "0.00001" }, { treasury: 1, insurance: 2 }, 1);
}

async function runStep(ai: number, url: string, transport: ModelTransport): Promise<StepResult> {
  const m = pepeMarket();
  const { pit, port } = openPit({
    market: m,
    sessionId: 1,
    journal: null,
    clock: systemClock,
    phase: () => ({ sessionId: 1, phase: "trading", endsAtMs: Date.now() + 3_600_000 }),
  });
  const users = ai + RULE + 1;
  for (let u = 0; u < users; u++) {
    pit.apply({ type: "deposit", user: 100 + u, asset: 0, amount: 100_000_000_000n });
    pit.apply({ type: "deposit", user: 100 + u, asset: 1, amount: 1_000n * m.pairs[0]!.lotSize });
  }
  pit.apply({ type: "start_trading" });
  const counterparty = 100 + users - 1;
  for (let i = 1; i <= 10; i++) {
    port.submit(counterparty, {
      cancels: [],
      orders: [
        { pair: 1, side: "buy", price: 10_000 - 5 * i, size: 50, type: "limit" },
        { pair: 1, side: "sell", price: 10_000 + 5 * i, size: 50, type: "limit" },
      ],
    });
  }

  let outcries = 0;
  let measuring = false;
  const latencies: number[] = [];
  const executor = new SessionExecutor({
    port,
    clock: systemClock,
    sink: {
      decision: (r) => {
        if (measuring && r.call !== undefined && !r.call.estimated) latencies.push(r.call.latencyMs);
      },
      event: (e) => {
        if (e.type === "outcry") outcries += 1;
        else if (e.type === "internal_error") console.error("internal error:", e.message);
      },
    },
  });
  const factory = new BrokerFactory(catalogue({ OPENAI_API_KEY: "bench", CME_OPENAI_BASE_URL: url }), { transport });
  for (let i = 0; i < ai; i++) {
    const user = 100 + i;
    const b = factory.bind(user, "openai-gpt5");
    executor.addBroker(
      { user, brokerId: "openai-gpt5", prompt: EXAMPLE_PROMPTS[i % EXAMPLE_PROMPTS.length]!.prompt, pairs: ["PEPE/USDC"], lessons: [] },
      { broker: b.broker, ...(b.ledger ? { ledger: b.ledger } : {}) },
    );
  }
  for (let j = 0; j < RULE; j++) {
    const user = 100 + ai + j;
    const id = RULE_IDS[j % RULE_IDS.length]!;
    executor.addBroker(
      { user, brokerId: id, prompt: EXAMPLE_PROMPTS[j % EXAMPLE_PROMPTS.length]!.prompt, pairs: ["PEPE/USDC"], lessons: [] },
      { broker: factory.bind(user, id).broker },
    );
  }

  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  executor.start();
  await sleep(WARMUP * 1000);
  executor.resetStats();
  lag.reset();
  const applied0 = pit.seq;
  const cpu0 = process.cpuUsage();
  const server0 = await serverCpuMs(url);
  measuring = true;
  await sleep(SECONDS * 1000);
  measuring = false;
  const cpu = process.cpuUsage(cpu0);
  const serverCpuPct = ((await serverCpuMs(url)) - server0) / (SECONDS * 10);
  latencies.sort((a, b) => a - b);
  const rtt = (p: number) => latencies[Math.min(latencies.length - 1, Math.max(0, Math.ceil((p / 100) * latencies.length) - 1))] ?? 0;
  const keeperCpuPct = ((cpu.user + cpu.system) / 1000 / (SECONDS * 1000)) * 100;
  const s = executor.snapshotStats();
  const loopLagP99Ms = lag.percentile(99) / 1e6;
  lag.disable();
  const commands = pit.seq - applied0;
  await executor.finish({ aiLessons: false });

  const ticks = s.ticks + s.missedTicks;
  const servedPct = ai === 0 ? 100 : (s.aiCallsStarted / (ai * Math.max(1, ticks))) * 100;
  const failedPct = s.aiCallsStarted === 0 ? 0 : (s.aiCallsFailed / s.aiCallsStarted) * 100;
  void outcries;
  return {
    ai,
    rule: RULE,
    ticks,
    onTimePct: s.onTimePct,
    servedPct: Math.min(100, servedPct),
    failedPct,
    doneLateP99Ms: s.doneLateP99Ms,
    loopLagP99Ms,
    tokensPerAiCall: s.tokensPerAiCall,
    tokensPerKeeperTick: s.tokensPerTick,
    ordersPerSec: commands / SECONDS,
    keeperCpuPct,
    serverCpuPct,
    rttP50Ms: rtt(50),
    rttP99Ms: rtt(99),
    pass: s.onTimePct >= 99 && servedPct >= 99 && failedPct <= 1,
  };
}

const fmt = (x: number, dp = 1) => x.toFixed(dp).padStart(8);

function printRow(r: StepResult): void {
  console.log(
    `${String(r.ai).padStart(6)} ${String(r.rule).padStart(6)} ${String(r.ticks).padStart(6)} ${fmt(r.onTimePct)} ${fmt(r.servedPct)} ${fmt(r.failedPct, 2)} ${fmt(r.doneLateP99Ms, 0)} ${fmt(r.loopLagP99Ms)} ${fmt(r.tokensPerAiCall, 0)} ${fmt(r.tokensPerKeeperTick, 0).padStart(10)} ${fmt(r.ordersPerSec, 0)} ${fmt(r.keeperCpuPct, 0)} ${fmt(r.serverCpuPct, 0)} ${fmt(r.rttP50Ms, 0)} ${fmt(r.rttP99Ms, 0)}  ${r.pass ? "yes" : "NO"}`,
  );
}

async function main(): Promise<void> {
  const { url, child } = await startModelServer();
  const pool = WORKERS > 0 ? new WorkerTransport(WORKERS) : null;
  await pool?.ready();
  const transport: ModelTransport = pool ?? new InProcessTransport();
  console.log(
    `broker loop benchmark: model latency ${LATENCY} ms ± ${JITTER} ms, ${RULE} rule-based brokers, ${WORKERS} model worker thread(s), ${WARMUP} s warm-up + ${SECONDS} s measured per step`,
  );
  console.log(`   AI   rule  ticks  onTime%  served%  failed%  lateP99  lagP99  tok/call  tok/keeperTick  cmds/s   cpu%  srvCpu%  rttP50  rttP99  1Hz?`);
  console.log(`                                               ms       ms                                                      ms      ms`);
  const results: StepResult[] = [];
  const run = async (n: number) => {
    const r = await runStep(n, url, transport);
    printRow(r);
    results.push(r);
    return r;
  };
  try {
    if (FIXED.length > 0) {
      for (const n of FIXED) await run(n);
    } else {
      // Up from START until a step fails (or MAX_AI), down by halves if START already fails,
      // then one bisection between the last pass and the first failure.
      let lo = 0;
      let hi = Infinity;
      if ((await run(START)).pass) {
        lo = START;
        for (let n = START < 1000 ? START * 2 : START + 1000; n <= MAX_AI; n = n < 1000 ? n * 2 : n + 1000) {
          if ((await run(n)).pass) lo = n;
          else {
            hi = n;
            break;
          }
        }
      } else {
        hi = START;
        for (let n = Math.floor(START / 2); n >= 50; n = Math.floor(n / 2)) {
          if ((await run(n)).pass) {
            lo = n;
            break;
          }
          hi = n;
        }
      }
      if (lo > 0 && Number.isFinite(hi) && hi - lo > 100) {
        const mid = Math.round((lo + hi) / 2 / 50) * 50;
        if ((await run(mid)).pass) lo = mid;
      }
    }
  } finally {
    child.kill("SIGTERM");
    await transport.close();
  }
  const passing = results.filter((r) => r.pass).sort((a, b) => b.ai - a.ai);
  const best = passing[0] ?? results.sort((a, b) => a.ai - b.ai)[0]!;
  console.log(
    passing.length > 0
      ? `largest N served at 1 Hz: ${best.ai} AI brokers + ${best.rule} rule-based brokers (tokens per AI broker tick: ${best.tokensPerAiCall.toFixed(0)})`
      : `no N met the 1 Hz criteria; smallest tried: ${best.ai}`,
  );
  console.log(
    JSON.stringify({
      bench: "brokers",
      aiBrokers: passing.length > 0 ? best.ai : 0,
      ruleBrokers: best.rule,
      onTimePct: Number(best.onTimePct.toFixed(2)),
      loopLagP99Ms: Number(best.loopLagP99Ms.toFixed(2)),
      tokensPerTick: Math.round(best.tokensPerAiCall),
    }),
  );
}

await main();
process.exit(0);
