// npm run bench:risk — the pit's money rules under stress.
//
// One session on the real executor (keeper/executor) over the real pit (keeper/core Engine behind
// keeper/session's pit and executor port), on a manual clock so a long session runs in seconds:
//   - a volatile book: a whale outside the executor re-quotes both pairs every tick around a fair
//     price that random-walks (BENCH_SIGMA_BPS per tick) with jumps (BENCH_JUMP_BPS, probability
//     BENCH_JUMP_P), kept inside the mark band so the mark is the pit's mid;
//   - brokers that lever up to the limit (IOCs to ~4.7x equity, long or short), some of which
//     then hang (never answer), fail until paused, or are rate-limited: their accounts are left
//     levered with nobody at the wheel;
//   - built-in market makers;
//   - accounts that deposit and never trade (no broker).
// Before every tick the bench notes which accounts are below maintenance margin; the executor
// must liquidate each in that tick. After the session: end of trading and the close-out (the
// closing cross), whose result gives bankruptcies, the loss socialized, and whether the accounts
// that never traded end with exactly what they deposited.
//
//   maxTicksBelowMM          longest run of tick starts an account spent below MM before the
//                            keeper liquidated it (target <= 1). An account its liquidation left
//                            with only a quote debt (nothing more to sell) is bankrupt: counted
//                            in bankruptcies, not here.
//   untradedAccountsChanged  accounts that never traded whose balances after the close-out differ
//                            from their deposits (target 0).
//
// Env: BENCH_TICKS (600), BENCH_SEED (7), BENCH_SIGMA_BPS (80), BENCH_JUMP_BPS (1600),
//      BENCH_JUMP_P (0.04). Prints a table, then exactly one JSON line.
import type { Deployment } from "../keeper/chain/deployment.ts";
import { RuleBroker } from "../keeper/brokers/rule/rule-broker.ts";
import type { Broker, BrokerContext, BrokerResult, Decision, ProposedOrder, Side } from "../keeper/brokers/types.ts";
import { Prng } from "../keeper/core/prng.ts";
import { ManualClock } from "../keeper/executor/clock.ts";
import { SessionExecutor, type LiquidationEvent } from "../keeper/executor/session-executor.ts";
import { openPit } from "../keeper/session/open-pit.ts";
import { buildMarket } from "../keeper/session/pairs.ts";

const env = (name: string, fallback: number): number => {
  const v = Number(process.env[name]);
  return process.env[name] !== undefined && process.env[name] !== "" && Number.isFinite(v) ? v : fallback;
};
const TICKS = env("BENCH_TICKS", 600);
const SEED = env("BENCH_SEED", 7);
const SIGMA_BPS = env("BENCH_SIGMA_BPS", 80);
const JUMP_BPS = env("BENCH_JUMP_BPS", 1600);
const JUMP_P = env("BENCH_JUMP_P", 0.04);

// ---------------------------------------------------------------- the market

const USDC = 0;
const token = (symbol: string, decimals: number, index: number) => ({ symbol, decimals, index, address: `0x${String(index + 1).padStart(40, "0")}` });
const deployment = { chainId: 31337, tokens: [token("USDC", 6, 0), token("PEPE", 18, 1), token("WIF", 6, 2)] } as unknown as Deployment;
const TREASURY = 1;
const INSURANCE = 2;
const market = buildMarket(deployment, { PEPE: "0.00001", WIF: "2.5" }, { treasury: TREASURY, insurance: INSURANCE }, 1);
const PAIRS = market.pairs;
const MARK_BAND = market.engine.pairs[0]!.markBandBps / 10_000;

const clock = new ManualClock(1_000_000);
const { pit, port } = openPit({
  market,
  sessionId: 1,
  journal: null,
  clock,
  phase: () => ({ sessionId: 1, phase: pit.reads.phase, endsAtMs: 1_000_000 + (TICKS + 1) * 1_000 }),
});

// ---------------------------------------------------------------- the accounts

type Group = "lever" | "lever-hangs" | "lever-pauses" | "lever-backs-off" | "market-maker" | "never-trades";
interface Account {
  user: number;
  group: Group;
  deposits: Map<number, bigint>;
}
const accounts: Account[] = [];
const WHALE = 900;
const lot = (pair: number) => PAIRS[pair - 1]!.lotSize;

function deposit(user: number, asset: number, amount: bigint): void {
  const r = pit.apply({ type: "deposit", user, asset, amount });
  if (!r.ok) throw new Error(`deposit ${user}: ${r.reason}`);
  const a = accounts.find((x) => x.user === user);
  a?.deposits.set(asset, (a.deposits.get(asset) ?? 0n) + amount);
}

function addAccount(user: number, group: Group, usdc: bigint, coins: [bigint, bigint] = [0n, 0n]): void {
  accounts.push({ user, group, deposits: new Map() });
  deposit(user, USDC, usdc);
  PAIRS.forEach((p, i) => {
    if (coins[i]! > 0n) deposit(user, p.base, coins[i]! * p.lotSize);
  });
}

const GROUPS: [Group, number][] = [
  ["lever", 4],
  ["lever-hangs", 4],
  ["lever-pauses", 2],
  ["lever-backs-off", 2],
  ["market-maker", 4],
  ["never-trades", 4],
];
let next = 10;
for (const [group, n] of GROUPS) {
  for (let i = 0; i < n; i++) {
    const user = next++;
    if (group === "market-maker") addAccount(user, group, 20_000_000_000n, [20_000n, 8_000n]);
    else if (group === "never-trades") addAccount(user, group, 5_000_000_000n + BigInt(i) * 1_000_000_000n, [BigInt(10_000 * (i + 1)), BigInt(2_000 * (i + 1))]);
    else addAccount(user, group, 10_000_000_000n);
  }
}
// The whale: deep pockets on both sides of both books.
pit.apply({ type: "deposit", user: WHALE, asset: USDC, amount: 1_000_000_000_000_000n });
for (const p of PAIRS) pit.apply({ type: "deposit", user: WHALE, asset: p.base, amount: 1_000_000_000n * p.lotSize });
pit.apply({ type: "start_trading" });

// ---------------------------------------------------------------- the volatile book

const rand = new Prng(SEED);
const fair = PAIRS.map((p) => p.referencePriceTicks);
function gauss(): number {
  const u = Math.max(1e-12, rand.next());
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand.next());
}
function moveBook(): void {
  pit.apply({ type: "cancel_all", user: WHALE });
  PAIRS.forEach((p, i) => {
    const ref = p.referencePriceTicks;
    let f = fair[i]! * Math.exp((gauss() * SIGMA_BPS) / 10_000);
    if (rand.chance(JUMP_P)) f *= 1 + ((rand.chance(0.5) ? 1 : -1) * JUMP_BPS) / 10_000;
    // Inside the mark band, so the mark is the pit's own mid.
    const band = ref * (MARK_BAND - 0.02);
    f = Math.min(ref + band, Math.max(ref - band, f));
    fair[i] = f;
    const mid = Math.round(f);
    const step = Math.max(1, Math.round(ref / 2_000));
    for (let k = 0; k < 5; k++) {
      for (const side of ["buy", "sell"] as const) {
        const price = side === "buy" ? mid - step * (k + 1) : mid + step * (k + 1);
        pit.apply({ type: "place", user: WHALE, pair: p.id, side, orderType: "limit", price, size: 40_000 });
      }
    }
  });
}

// ---------------------------------------------------------------- the brokers

/** Levers up to ~4.7x its equity in one direction with IOCs at the touch, every reply. */
function leverUp(ctx: BrokerContext, symbol: string, side: Side): Decision {
  const m = ctx.markets.find((x) => x.symbol === symbol);
  const orders: ProposedOrder[] = [];
  if (m !== undefined && !ctx.directives.some((d) => d.code === "reduce_only")) {
    const lotValue = m.mark * m.tickValue;
    const target = Math.floor((ctx.account.equity * 4.7) / lotValue);
    const held = side === "buy" ? Math.max(0, m.holding) : Math.max(0, -m.holding);
    const add = Math.min(m.maxOrderLots, target - Math.ceil(held));
    const touch = side === "buy" ? m.asks[0]?.price : m.bids[0]?.price;
    if (add >= 1 && touch !== undefined) orders.push({ pair: symbol, side, price: side === "buy" ? touch + 2 : touch - 2, size: add, type: "ioc" });
  }
  return { orders, cancels: [], outcry: `levering ${side === "buy" ? "long" : "short"} ${symbol}`, plan: null };
}

class LeverBroker implements Broker {
  readonly kind = "ai";
  private n = 0;
  constructor(
    readonly brokerId: string,
    private readonly symbol: string,
    private readonly side: Side,
    private readonly group: Group,
    /** Replies it gives before it hangs, fails or is rate-limited for the rest of the session. */
    private readonly goodReplies: number,
  ) {}
  decide(ctx: BrokerContext, signal?: AbortSignal): Promise<BrokerResult> {
    this.n++;
    if (this.n > this.goodReplies) {
      if (this.group === "lever-hangs") {
        return new Promise((resolve) => signal?.addEventListener("abort", () => resolve({ ok: false, failure: { code: "aborted", message: "aborted" } })));
      }
      if (this.group === "lever-pauses") return Promise.resolve({ ok: false, failure: { code: "malformed_json", message: "not JSON" } });
      if (this.group === "lever-backs-off") return Promise.resolve({ ok: false, failure: { code: "rate_limited", message: "429", retryAfterMs: 120_000 } });
    }
    return Promise.resolve({ ok: true, decision: leverUp(ctx, this.symbol, this.side) });
  }
}

const liquidations: LiquidationEvent[] = [];
let internalErrors = 0;
const executor = new SessionExecutor({
  port,
  clock,
  sink: {
    event: (e) => {
      if (e.type === "liquidation") liquidations.push(e);
      else if (e.type === "internal_error") {
        internalErrors++;
        console.error("internal error:", e.message);
      }
    },
  },
});
accounts.forEach((a, i) => {
  if (a.group === "never-trades") return;
  if (a.group === "market-maker") {
    executor.addBroker(
      { user: a.user, brokerId: "rule-market-maker", prompt: "size 40, spread 6 ticks, risk limit 400", pairs: PAIRS.map((p) => p.symbol), lessons: [] },
      { broker: new RuleBroker("rule-market-maker", "market_maker") },
    );
    return;
  }
  const p = PAIRS[i % PAIRS.length]!;
  const side: Side = i % 2 === 0 ? "buy" : "sell";
  executor.addBroker(
    { user: a.user, brokerId: `lever-${a.group}`, prompt: "lever up to the limit", pairs: [p.symbol], lessons: [] },
    { broker: new LeverBroker(`lever-${a.group}`, p.symbol, side, a.group, a.group === "lever" ? Infinity : 3 + (i % 3)) },
  );
});

// ---------------------------------------------------------------- the session

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
const run = new Map<number, number>();
const worst = new Map<number, number>();
const t0 = performance.now();
for (let t = 0; t < TICKS; t++) {
  moveBook();
  const below = new Set(port.liquidationsDue());
  clock.advance(1_000);
  const report = await executor.tick(clock.now());
  for (let i = 0; i < 3; i++) await turn();
  const liquidated = new Set(liquidations.filter((e) => e.tick === report.tick).map((e) => e.user));
  for (const a of accounts) {
    if (!below.has(a.user)) {
      run.set(a.user, 0);
      continue;
    }
    const n = (run.get(a.user) ?? 0) + 1;
    worst.set(a.user, Math.max(worst.get(a.user) ?? 0, n));
    run.set(a.user, liquidated.has(a.user) ? 0 : n);
  }
}
const stats = executor.snapshotStats();
await executor.finish({ aiLessons: false });
const wallMs = performance.now() - t0;

// The close: end of trading, then the closing cross.
for (const r of [pit.apply({ type: "end_trading" }), pit.apply({ type: "close_out" })]) if (!r.ok) throw new Error(`close: ${r.reason}`);
const close = pit.reads.closeOut();
if (close === null) throw new Error("no close-out");
const bankrupt = new Set(close.bankruptUsers);
const quoteDecimals = deployment.tokens[0]!.decimals;
let socialized = 0n;
for (const adj of close.adjustments) if (adj.step === "socialized" && adj.asset === USDC && bankrupt.has(adj.user) && adj.amount > 0n) socialized += adj.amount;
const finalBalance = (user: number, asset: number) => close.balances.find((b) => b.user === user && b.asset === asset)?.amount ?? 0n;
const assets = market.engine.assets.map((a) => a.id);
const changed = (a: Account) => assets.some((asset) => finalBalance(a.user, asset) !== (a.deposits.get(asset) ?? 0n));

// ---------------------------------------------------------------- report

const usd = (x: bigint) => (Number(x) / 10 ** quoteDecimals).toFixed(2);
const rows = GROUPS.map(([group]) => {
  const of = accounts.filter((a) => a.group === group);
  const users = new Set(of.map((a) => a.user));
  const liq = liquidations.filter((e) => users.has(e.user));
  return [
    group,
    String(of.length),
    String(liq.length),
    String(Math.max(0, ...of.map((a) => worst.get(a.user) ?? 0))),
    String(liq.filter((e) => !e.fullyCovered).length),
    usd(liq.reduce((s, e) => s + e.fee, 0n)),
    String(of.filter((a) => bankrupt.has(a.user)).length),
    group === "never-trades" ? String(of.filter(changed).length) : "-",
  ];
});
const header = ["accounts", "n", "liquidations", "max ticks below MM", "not covered", "fees USDC", "bankrupt", "changed by close"];
const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
console.log(
  `risk benchmark: ${TICKS} ticks on a manual clock, ${PAIRS.length} pairs (${PAIRS.map((p) => p.symbol).join(", ")}), ` +
    `σ ${SIGMA_BPS} bps/tick, jumps ±${JUMP_BPS} bps with p ${JUMP_P}, mark band ±${MARK_BAND * 100}%, seed ${SEED}; ran in ${(wallMs / 1000).toFixed(1)} s`,
);
console.log(
  `executor: ${stats.ticks} ticks, ${stats.ordersAccepted} orders accepted, ${stats.ordersRefused} refused, ${stats.keeperOrders} keeper crossing IOCs, ` +
    `${stats.skippedInFlight} broker turns skipped (call in flight), ${internalErrors} internal errors`,
);
console.log("");
for (const r of [header, ...rows]) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "));
console.log("");
console.log(`close-out: ${bankrupt.size} bankrupt, ${usd(socialized)} USDC socialized; closing prices ${close.closingPrices.map((p) => `${PAIRS[p.pair - 1]!.symbol} ${p.priceTicks}`).join(", ")}`);
const moved = accounts.filter((a) => a.group === "never-trades" && changed(a));
for (const a of moved) {
  const diff = assets.filter((asset) => finalBalance(a.user, asset) !== (a.deposits.get(asset) ?? 0n)).map((asset) => `asset ${asset}: ${a.deposits.get(asset) ?? 0n} -> ${finalBalance(a.user, asset)}`);
  console.log(`  never traded, changed by the close: account ${a.user} (${diff.join("; ")})`);
}
const maxTicksBelowMM = Math.max(0, ...worst.values());
console.log(
  JSON.stringify({
    bench: "risk",
    accounts: accounts.length,
    liquidations: liquidations.length,
    maxTicksBelowMM,
    bankruptcies: bankrupt.size,
    socializedLossUsd: Number(usd(socialized)),
    untradedAccountsChanged: moved.length,
  }),
);
process.exit(0);
