// Development server for the pit page alone: serves keeper/web/ and fakes the keeper's HTTP
// routes and /ws stream with a scripted, seeded market (three pairs, fourteen brokers), in the
// keeper's own wire shapes (keeper/app.ts, keeper/keeper.ts, keeper/stream/hub.ts). Signed actions
// go through the keeper's own EIP-712 types and verifier, so the page's signing is checked for
// real. It lets the page be built, screenshotted and browser-tested without a chain or a keeper.
//
//   npx tsx scripts/dev-page-server.ts [--port 8788] [--step-ms 1000] [--wallet 0xYourAddress]
//
// Tests import `startDevPageServer({ autoplay: false })` and advance the feed with `step()`, so
// nothing depends on wall-clock timing.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { WebSocketServer, WebSocket } from "ws";
import { getAddress, isAddress, type Address, type Hex } from "viem";
import { ACTION_TYPES, keeperDomain, type ActionType } from "../keeper/auth/eip712.ts";
import { verifyAction } from "../keeper/auth/verify.ts";
import { pairUnits } from "../keeper/session/pairs.ts";

// ------------------------------------------------------------------ wire shapes (as the keeper sends them)

export type Phase = "pre_session" | "trading" | "closing" | "settling";
export type WireToken = { symbol: string; address: Address; decimals: number; index: number }
export type WirePair = {
  id: number;
  symbol: string;
  base: string;
  quote: string;
  baseIndex: number;
  quoteIndex: number;
  /** Display: USDC per whole token. */
  referencePrice: string;
  referencePriceTicks: number;
  /** Base-token base units per lot. */
  lotSize: string;
  /** Quote base units per lot per tick. */
  quotePerTickLot: number;
  minSizeLots: number;
  maxSizeLots: number;
  baseDecimals: number;
  quoteDecimals: number;
  takerFeeBps: number;
  makerFeeBps: number;
};;
export type WireSession = {
  id: number;
  phase: Phase;
  phaseStartedAt: number;
  phaseEndsAt: number | null;
  serverTime: number;
  chainId: number;
  vault: Address;
  durations: { preSessionSec: number; tradingSec: number; closingSec: number };
  tokens: WireToken[];
  pairs: WirePair[];
};
export type WireLevel = { price: number; size: number; orders: number; priceDisplay: string }
export type WireBook = { pair: string; bids: WireLevel[]; asks: WireLevel[]; mid: number | null; mark: number | null; midDisplay: string | null; ts: number }
export type WireTrade = { pair: string; price: number; size: number; priceDisplay: string; takerSide: "buy" | "sell"; maker: number; taker: number; ts: number; seq: number }
export type WireOutcry = { account: string; accountId: number; broker: string; line: string; ts: number }
export type WireLeaderRow = { rank: number; accountId: number; account: string; broker: string | null; equity: string; pnl: string; pnlDisplay: string }
export type WireTopPrompt = { sessionId: number; rank: number; account: string; brokerId: string | null; prompt: string; pnl: string }
export type WireBroker = { id: string; kind: "ai" | "rule"; displayName: string; name: string; label: string; available: boolean; reason?: string; description: string }
export type WireSettlement = {
  sessionId: number;
  status: "not_started" | "planned" | "begun" | "finalized" | "voided";
  batchCount: number;
  batchesConfirmed: number;
  batchRoot: Hex | null;
  fillLogHash: Hex | null;
  deltaCount: number;
  onChain: { phase: string; batchesPosted: number; batchCount: number } | null;
  transactions: { step: string; nonce: number; hash: Hex; status: string; block: number | null }[];
};;;;;;;;
export type WireMessage =
  | { type: "hello"; session: WireSession; books: Record<string, WireBook>; trades: Record<string, WireTrade[]>; outcry: WireOutcry[]; leaderboard: WireLeaderRow[]; serverTime: number }
  | { type: "phase"; session: WireSession }
  | { type: "order"; event: "accepted" | "cancelled"; orderId: number; account: string; accountId: number; pair: string; side: "buy" | "sell"; price: number; size: number; ts: number }
  | ({ type: "fill" } & WireTrade)
  | ({ type: "outcry" } & WireOutcry)
  | { type: "pnl"; rows: WireLeaderRow[] }
  | ({ type: "book" } & WireBook)
  | ({ type: "settlement" } & WireSettlement);

/** Route -> EIP-712 struct, as GET /api/eip712 publishes it. */
export const ACTION_ROUTES = {
  "/set-broker": "SetBroker",
  "/set-prompt": "SetPrompt",
  "/set-pairs": "SetPairs",
  "/reprompt": "Reprompt",
  "/withdrawal-permit": "WithdrawalRequest",
} as const satisfies Record<string, ActionType>;
type Route = keyof typeof ACTION_ROUTES;

// ------------------------------------------------------------------ the scripted market

const CHAIN_ID = 31337;
const VAULT: Address = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const DOMAIN = keeperDomain(CHAIN_ID, VAULT);
const MAX_EXPIRY_SEC = 3600;
const TOKENS: WireToken[] = [
  { index: 0, symbol: "USDC", address: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512", decimals: 6 },
  { index: 1, symbol: "PEPE", address: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0", decimals: 18 },
  { index: 2, symbol: "WIF", address: "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9", decimals: 18 },
  { index: 3, symbol: "DOGE", address: "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9", decimals: 8 },
];
const USDC = TOKENS[0] as WireToken;

interface PairSim { wire: WirePair; lotExp: number; spacing: number; vol: number }
/** Pairs with the keeper's own unit rules (keeper/session/pairs.ts) at the demo reference prices. */
const PAIRS: PairSim[] = (
  [
    [1, "0.00001", 3, 0.0016],
    [2, "2", 1, 0.0012],
    [3, "0.2", 2, 0.001],
  ] as const
).map(([index, ref, spacing, vol], i) => {
  const base = TOKENS[index] as WireToken;
  const u = pairUnits(ref, base.decimals, USDC.decimals);
  return {
    lotExp: u.lotExp,
    spacing,
    vol,
    wire: {
      id: i + 1,
      symbol: `${base.symbol}/${USDC.symbol}`,
      base: base.symbol,
      quote: USDC.symbol,
      baseIndex: base.index,
      quoteIndex: USDC.index,
      referencePrice: ref,
      referencePriceTicks: u.referencePriceTicks,
      lotSize: u.lotSize.toString(),
      quotePerTickLot: u.quotePerTickLot,
      minSizeLots: 1,
      maxSizeLots: 1_000_000,
      baseDecimals: base.decimals,
      quoteDecimals: USDC.decimals,
      takerFeeBps: 5,
      makerFeeBps: 0,
    },
  };
});
export const BROKERS: WireBroker[] = [
  { id: "market-maker", kind: "rule", displayName: "Market Maker", name: "Market Maker", label: "rule-based", available: true, description: "Quotes both sides around mid and skews with inventory." },
  { id: "momentum", kind: "rule", displayName: "Momentum", name: "Momentum", label: "rule-based", available: true, description: "Follows the tape: buys strength, sells weakness." },
  { id: "mean-reversion", kind: "rule", displayName: "Mean Reversion", name: "Mean Reversion", label: "rule-based", available: true, description: "Fades moves away from the session's reference price." },
  { id: "scalper", kind: "rule", displayName: "Fee-aware Scalper", name: "Fee-aware Scalper", label: "rule-based", available: true, description: "Trades book imbalance only when the edge beats fees." },
  { id: "gpt-4.1-mini", kind: "ai", displayName: "GPT-4.1 mini", name: "GPT-4.1 mini", label: "OpenAI", available: true, description: "OpenAI: gpt-4.1-mini per tick, gpt-4.1 for plans and reviews." },
  { id: "llama-3.1-8b", kind: "ai", displayName: "Llama 3.1 8B (Ollama)", name: "Llama 3.1 8B (Ollama)", label: "local", available: true, description: "A local model through Ollama's OpenAI-compatible API." },
  { id: "deepseek-v3", kind: "ai", displayName: "DeepSeek V3 (OpenRouter)", name: "DeepSeek V3 (OpenRouter)", label: "OpenRouter", available: false, reason: "OPENROUTER_API_KEY is not set", description: "DeepSeek through OpenRouter." },
];
const PROMPTS = [
  "Timid market maker: quote 2 ticks either side of mid, tiny size, flatten inventory whenever it exceeds 5% of equity.",
  "Degenerate momentum chaser. If the last three prints go up, lift every offer in sight. Never short.",
  "Mean reversion around the reference price: fade any move beyond 1%, scale in three clips, take profit at the reference.",
  "Scalp the imbalance: join the bigger side of the top 3 levels, exit after one tick of edge net of the 5 bps fee.",
  "Provide liquidity on DOGE only, skew quotes against inventory, and shout about it.",
  "Patient sniper: sit on the bid 0.5% under mid, never cross the spread, cancel if the book thins out.",
  "Trend follower with a stop: buy breakouts of the session high, cut at -0.4%, let winners run to the close.",
  "Close every position before the closing cross. Small size, many trades, no overnight heroics.",
  "Be the biggest quote on WIF. Widen when fills come in bursts, tighten when the tape is quiet.",
  "Contrarian: sell whatever the loudest broker in the outcry is buying.",
  "Inventory-neutral pairs book: long PEPE, short WIF in equal USDC, rebalance every 30 seconds.",
  "Only trade when spread exceeds 3 ticks; otherwise post-only at the touch.",
];
const SHOUTS: Record<string, string[]> = {
  "market-maker": ["Two-sided on {pair}: {bid} bid, {ask} offered.", "Tightening on {pair}, {bid} at {ask}.", "Skewing offers lower, too long {base}.", "Refreshing quotes, {size} {base} each side."],
  momentum: ["{pair} ripping, paying {ask}!", "Breakout! Lifting offers on {base}.", "Dumping {base}, tape's rolling over at {bid}.", "Chasing it. Who's selling {base}?"],
  "mean-reversion": ["{base} stretched above ref, selling {ask}.", "Fading the dump: bidding {bid} for {size} {base}.", "Back to the reference, taking profit.", "Too far, too fast. Short {base} here."],
  scalper: ["Bid-heavy book on {pair}, joining {bid}.", "One tick of edge after fees, out at {ask}.", "Imbalance flipped, flat on {base}.", "Edge under fee, sitting out this print."],
  "gpt-4.1-mini": ["Liquidity thinning at {ask}; stepping in with {size} {base}.", "Risk check: exposure at 3% of equity, adding bids at {bid}.", "Re-plan: the tape favours sellers, I'm leaning short {base}.", "Momentum cooling on {pair}, shading quotes."],
  "llama-3.1-8b": ["Buy {base}! {ask} is cheap!", "Selling some {base} at {bid}, locking in.", "Holding. Watching the {pair} book.", "Bidding {bid}, patience pays."],
};

/** Deterministic PRNG (mulberry32): the fake feed replays identically for a given seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Decimal of `value / 10^decimals`, trailing zeros dropped (display fields of the wire). */
function decimal(value: bigint, decimals: number): string {
  const neg = value < 0n;
  const s = (neg ? -value : value).toString().padStart(decimals + 1, "0");
  const int = s.slice(0, s.length - decimals);
  const frac = decimals === 0 ? "" : s.slice(s.length - decimals).replace(/0+$/, "");
  return `${neg ? "-" : ""}${int}${frac ? "." + frac : ""}`;
}

/** USDC per whole token of `ticks` (integer or half tick), as the keeper's priceDisplay. */
function priceDisplay(p: PairSim, ticks: number): string {
  const halves = BigInt(Math.round(ticks * 2));
  const scaled = halves * BigInt(p.wire.quotePerTickLot) * 5n;
  const shift = p.wire.quoteDecimals + p.lotExp + 1;
  return shift <= 0 ? (scaled * 10n ** BigInt(-shift)).toString() : decimal(scaled, shift);
}

interface SimAccount {
  id: number;
  address: Address;
  broker: string | null;
  prompt: string;
  pairs: string[];
  reprompted: boolean;
  /** Vault balances in base units per token index (the settled on-chain view). */
  vault: bigint[];
  /** Session deltas: lots per pair and quote base units. */
  lots: number[];
  quoteDelta: bigint;
  trades: number;
  demo: boolean;
}
interface Level { size: number; orders: number }

export interface DevWallet { address: string; balances?: Partial<Record<string, string>> }
export interface DevPageServerOptions {
  port?: number;
  host?: string;
  seed?: number;
  /** Simulated time per step; with autoplay, also the real interval between steps. */
  stepMs?: number;
  autoplay?: boolean;
  /** Trading steps played before the first client connects, so the chart has history. */
  warmupSteps?: number;
  phaseSteps?: Partial<Record<Phase, number>>;
  /** Extra registered accounts (a test wallet), with vault balances by token symbol. */
  wallets?: DevWallet[];
  webRoot?: string;
}

export interface ReceivedAction { route: Route; status: number; body: unknown; response: unknown }

export class PitSim {
  readonly rand: () => number;
  now: number;
  sessionId = 7;
  phase: Phase = "trading";
  phaseStartedAt: number;
  phaseEndsAt: number;
  stepsLeft: number;
  readonly sides: { bids: Map<number, Level>; asks: Map<number, Level> }[];
  readonly fair: number[];
  /** This session's trades, oldest first. */
  trades: WireTrade[] = [];
  /** Outcry, oldest first. */
  outcry: WireOutcry[] = [];
  readonly accounts: SimAccount[] = [];
  /** Published top prompts, newest session first. */
  topPrompts: WireTopPrompt[] = [];
  settlement: WireSettlement | null = null;
  private nextTradeSeq = 1;
  private nextOrderId = 1;
  private pending: WireMessage[] = [];

  constructor(
    seed: number,
    readonly stepMs: number,
    readonly phaseSteps: Record<Phase, number>,
    startAt: number,
    wallets: DevWallet[],
  ) {
    this.rand = prng(seed);
    this.now = startAt;
    this.phaseStartedAt = startAt;
    this.stepsLeft = phaseSteps.trading;
    this.phaseEndsAt = startAt + this.stepsLeft * stepMs;
    this.sides = PAIRS.map(() => ({ bids: new Map(), asks: new Map() }));
    this.fair = PAIRS.map((p) => p.wire.referencePriceTicks);
    const brokerIds = BROKERS.filter((b) => b.available).map((b) => b.id);
    for (let i = 0; i < 14; i++) {
      this.accounts.push(this.newAccount(this.randomAddress(), brokerIds[i % brokerIds.length] ?? null, PROMPTS[i % PROMPTS.length] ?? "", true));
    }
    for (const w of wallets) {
      const acct = this.newAccount(getAddress(w.address), null, "", false);
      acct.vault = TOKENS.map((t) => BigInt(w.balances?.[t.symbol] ?? "0"));
      this.accounts.push(acct);
    }
    for (const sid of [this.sessionId - 1, this.sessionId - 2]) this.publishTopPrompts(sid, true);
  }

  private newAccount(address: Address, broker: string | null, prompt: string, demo: boolean): SimAccount {
    const vault = TOKENS.map((t, i) => (demo ? (i === 0 ? 10_000n : BigInt(Math.floor(this.rand() * 50_000))) * 10n ** BigInt(t.decimals) : 0n));
    // Ids 1 and 2 are the treasury and the insurance fund, as the keeper registers them first.
    return { id: this.accounts.length + 3, address, broker, prompt, pairs: PAIRS.map((p) => p.wire.symbol), reprompted: false, vault, lots: PAIRS.map(() => 0), quoteDelta: 0n, trades: 0, demo };
  }

  private randomAddress(): Address {
    let hex = "";
    for (let i = 0; i < 40; i++) hex += Math.floor(this.rand() * 16).toString(16);
    return getAddress(`0x${hex}`);
  }

  private emit(msg: WireMessage): void {
    this.pending.push(msg);
  }

  /** Advances one step and returns the messages it produced, in order. */
  step(): WireMessage[] {
    this.now += this.stepMs;
    if (this.phase === "trading") this.tradeStep();
    if (this.phase === "settling") this.settleStep();
    if (--this.stepsLeft <= 0) this.nextPhase();
    else if (this.phase === "trading") this.emit({ type: "pnl", rows: this.leaderboard() });
    const out = this.pending;
    this.pending = [];
    return out;
  }

  private nextPhase(): void {
    const order: Phase[] = ["pre_session", "trading", "closing", "settling"];
    const next = order[(order.indexOf(this.phase) + 1) % order.length] as Phase;
    if (next === "pre_session") this.startNextSession();
    if (next === "closing") this.closeBooks();
    if (next === "settling") {
      this.settlement = { sessionId: this.sessionId, status: "planned", batchCount: 3, batchesConfirmed: 0, batchRoot: null, fillLogHash: null, deltaCount: this.accounts.length * 2, onChain: null, transactions: [] };
    }
    this.phase = next;
    this.phaseStartedAt = this.now;
    this.stepsLeft = this.phaseSteps[next];
    this.phaseEndsAt = this.now + this.stepsLeft * this.stepMs;
    this.emit({ type: "phase", session: this.session() });
    if (next === "closing" || next === "settling") this.emit({ type: "pnl", rows: this.leaderboard() });
  }

  private startNextSession(): void {
    this.sessionId += 1;
    this.trades = [];
    this.settlement = null;
    for (const a of this.accounts) {
      this.foldSession(a);
      a.reprompted = false;
    }
  }

  /** Session deltas become vault balances, as finalize does on-chain. */
  private foldSession(a: SimAccount): void {
    a.lots.forEach((lots, i) => {
      const p = (PAIRS[i] as PairSim).wire;
      a.vault[p.baseIndex] = (a.vault[p.baseIndex] ?? 0n) + BigInt(lots) * BigInt(p.lotSize);
    });
    a.vault[0] = (a.vault[0] ?? 0n) + a.quoteDelta;
    a.lots = PAIRS.map(() => 0);
    a.quoteDelta = 0n;
    a.trades = 0;
  }

  private closeBooks(): void {
    PAIRS.forEach((p, i) => {
      this.sides[i]?.bids.clear();
      this.sides[i]?.asks.clear();
      this.emit({ type: "book", ...this.book(p.wire.id, 10) });
    });
  }

  private hex(): Hex {
    return `0x${Array.from({ length: 64 }, () => Math.floor(this.rand() * 16).toString(16)).join("")}`;
  }

  private settleStep(): void {
    const s = this.settlement;
    if (!s) return;
    if (s.status === "planned") {
      s.status = "begun";
      s.batchRoot = this.hex();
      s.fillLogHash = this.hex();
      s.transactions.push({ step: "begin", nonce: s.transactions.length, hash: this.hex(), status: "confirmed", block: 100 + s.transactions.length });
    } else if (s.status === "begun" && s.batchesConfirmed < s.batchCount) {
      s.batchesConfirmed += 1;
      s.transactions.push({ step: `batch-${s.batchesConfirmed - 1}`, nonce: s.transactions.length, hash: this.hex(), status: "confirmed", block: 100 + s.transactions.length });
    } else if (s.status === "begun") {
      s.status = "finalized";
      s.transactions.push({ step: "finalize", nonce: s.transactions.length, hash: this.hex(), status: "confirmed", block: 100 + s.transactions.length });
      this.publishTopPrompts(this.sessionId, false);
    }
    s.onChain = { phase: s.status === "finalized" ? "Finalized" : "Settling", batchesPosted: s.batchesConfirmed, batchCount: s.batchCount };
    this.emit({ type: "settlement", ...structuredClone(s) });
  }

  private publishTopPrompts(sessionId: number, invented: boolean): void {
    const rows = this.accounts
      .filter((a) => a.prompt !== "")
      .map((a) => ({ a, pnl: invented ? BigInt(Math.floor((this.rand() - 0.35) * 900_000_000)) : this.pnl(a) }))
      .sort((x, y) => (y.pnl > x.pnl ? 1 : y.pnl < x.pnl ? -1 : x.a.id - y.a.id))
      .slice(0, 10)
      .map((r, i) => ({ sessionId, rank: i + 1, account: r.a.address, brokerId: r.a.broker, prompt: r.a.prompt, pnl: r.pnl.toString() }));
    this.topPrompts = [...rows, ...this.topPrompts].filter((p) => p.sessionId > sessionId - 5).sort((x, y) => y.sessionId - x.sessionId || x.rank - y.rank);
  }

  private gauss(): number {
    return (this.rand() + this.rand() + this.rand() + this.rand() - 2) * 1.22;
  }

  private tradeStep(): void {
    const traders = this.accounts.filter((a) => a.demo);
    PAIRS.forEach((p, pi) => {
      const ref = p.wire.referencePriceTicks;
      const fair = this.fair[pi] ?? ref;
      const f = fair * (1 + this.gauss() * p.vol) + (ref - fair) * 0.01;
      this.fair[pi] = f;
      const anchor = Math.round(f / p.spacing) * p.spacing;
      const takers = this.rand() < 0.7 ? 1 + Math.floor(this.rand() * 3) : 0;
      for (let k = 0; k < takers; k++) {
        const bias = Math.max(-0.3, Math.min(0.3, (f - this.mid(pi)) / (p.spacing * 4)));
        const buy = this.rand() < 0.5 + bias;
        const want = 1 + Math.floor(this.rand() ** 2 * 90);
        const taker = traders[Math.floor(this.rand() * traders.length)] as SimAccount;
        this.sweep(pi, buy ? "buy" : "sell", want, taker, traders, k, takers);
      }
      this.requote(pi, anchor, traders);
      this.emit({ type: "book", ...this.book(p.wire.id, 10) });
    });
    if (this.rand() < 0.75) this.shout(traders);
    if (this.rand() < 0.3) this.shout(traders);
  }

  private sweep(pi: number, side: "buy" | "sell", want: number, taker: SimAccount, traders: SimAccount[], k: number, n: number): void {
    const book = this.sides[pi];
    const p = PAIRS[pi] as PairSim;
    if (!book) return;
    const opposite = side === "buy" ? book.asks : book.bids;
    const prices = [...opposite.keys()].sort((a, b) => (side === "buy" ? a - b : b - a));
    for (const price of prices) {
      if (want <= 0) break;
      const level = opposite.get(price);
      if (!level) continue;
      const size = Math.min(want, level.size);
      let maker = traders[Math.floor(this.rand() * traders.length)] as SimAccount;
      if (maker === taker) maker = traders[(traders.indexOf(taker) + 1) % traders.length] as SimAccount;
      const trade: WireTrade = {
        pair: p.wire.symbol,
        price,
        size,
        priceDisplay: priceDisplay(p, price),
        takerSide: side,
        maker: maker.id,
        taker: taker.id,
        ts: this.now - this.stepMs + Math.floor(((k + 1) * this.stepMs) / (n + 1)),
        seq: this.nextTradeSeq++,
      };
      this.trades.push(trade);
      const quote = BigInt(price) * BigInt(size) * BigInt(p.wire.quotePerTickLot);
      const sign = side === "buy" ? 1 : -1;
      taker.lots[pi] = (taker.lots[pi] ?? 0) + sign * size;
      taker.quoteDelta -= BigInt(sign) * quote;
      maker.lots[pi] = (maker.lots[pi] ?? 0) - sign * size;
      maker.quoteDelta += BigInt(sign) * quote;
      taker.trades++;
      maker.trades++;
      this.emit({ type: "fill", ...trade });
      want -= size;
      level.size -= size;
      if (level.size <= 0) opposite.delete(price);
    }
  }

  private requote(pi: number, anchor: number, traders: SimAccount[]): void {
    const book = this.sides[pi];
    const p = PAIRS[pi] as PairSim;
    if (!book) return;
    const orderMsg = (event: "accepted" | "cancelled", side: "buy" | "sell", price: number, size: number) => {
      const a = traders[Math.floor(this.rand() * traders.length)] as SimAccount;
      this.emit({ type: "order", event, orderId: this.nextOrderId++, account: a.address, accountId: a.id, pair: p.wire.symbol, side, price, size, ts: this.now });
    };
    for (const [price, level] of book.bids) {
      if (price >= anchor || price < anchor - p.spacing * 24) {
        book.bids.delete(price);
        orderMsg("cancelled", "buy", price, level.size);
      }
    }
    for (const [price, level] of book.asks) {
      if (price <= anchor || price > anchor + p.spacing * 24) {
        book.asks.delete(price);
        orderMsg("cancelled", "sell", price, level.size);
      }
    }
    // Fill the ladder back in, deeper levels bigger, as a real book looks.
    for (let k = 1; k <= 16; k++) {
      for (const [levels, price, side] of [
        [book.bids, anchor - k * p.spacing, "buy"],
        [book.asks, anchor + k * p.spacing, "sell"],
      ] as const) {
        if (levels.has(price) || (k > 1 && this.rand() < 0.12)) continue;
        const size = Math.max(1, Math.round((4 + this.rand() * 60) * (1 + k / 4)));
        levels.set(price, { size, orders: 1 + Math.floor(this.rand() * 4) });
        if (k <= 3) orderMsg("accepted", side, price, size);
      }
    }
    // Churn: a few resting levels grow or shrink.
    for (const levels of [book.bids, book.asks]) {
      for (const level of levels.values()) {
        if (this.rand() < 0.15) {
          level.size = Math.max(1, Math.round(level.size * (0.6 + this.rand() * 0.9)));
          level.orders = Math.max(1, level.orders + (this.rand() < 0.5 ? -1 : 1));
        }
      }
    }
  }

  private mid(pi: number): number {
    const book = this.sides[pi];
    if (!book || book.bids.size === 0 || book.asks.size === 0) return this.fair[pi] ?? (PAIRS[pi] as PairSim).wire.referencePriceTicks;
    return (Math.max(...book.bids.keys()) + Math.min(...book.asks.keys())) / 2;
  }

  private markTicks(pi: number): bigint {
    return BigInt(Math.round(this.mid(pi)));
  }

  private shout(traders: SimAccount[]): void {
    const a = traders[Math.floor(this.rand() * traders.length)] as SimAccount;
    const p = PAIRS[Math.floor(this.rand() * PAIRS.length)] as PairSim;
    const book = this.book(p.wire.id, 1);
    const lines = SHOUTS[a.broker ?? ""] ?? SHOUTS["market-maker"] ?? [];
    const size = BigInt(5 + Math.floor(this.rand() * 40)) * BigInt(p.wire.lotSize);
    const line = (lines[Math.floor(this.rand() * lines.length)] ?? "")
      .replaceAll("{pair}", p.wire.symbol)
      .replaceAll("{base}", p.wire.base)
      .replaceAll("{bid}", book.bids[0]?.priceDisplay ?? p.wire.referencePrice)
      .replaceAll("{ask}", book.asks[0]?.priceDisplay ?? p.wire.referencePrice)
      .replaceAll("{size}", decimal(size / 10n ** BigInt(p.wire.baseDecimals), 0));
    this.pushOutcry({ account: a.address, accountId: a.id, broker: a.broker ?? "", line, ts: this.now });
  }

  pushOutcry(entry: WireOutcry): void {
    this.outcry.push(entry);
    if (this.outcry.length > 500) this.outcry.splice(0, this.outcry.length - 500);
    this.emit({ type: "outcry", ...entry });
  }

  pairById(id: number): PairSim | undefined {
    return PAIRS.find((p) => p.wire.id === id);
  }

  book(pairId: number, levels: number): WireBook {
    const pi = PAIRS.findIndex((p) => p.wire.id === pairId);
    const p = PAIRS[pi] as PairSim;
    const s = this.sides[pi];
    const take = (m: Map<number, Level> | undefined, desc: boolean) =>
      [...(m ?? new Map<number, Level>()).entries()]
        .sort((a, b) => (desc ? b[0] - a[0] : a[0] - b[0]))
        .slice(0, levels)
        .map(([price, l]) => ({ price, size: l.size, orders: l.orders, priceDisplay: priceDisplay(p, price) }));
    const bids = take(s?.bids, true);
    const asks = take(s?.asks, false);
    const mid = bids[0] && asks[0] ? (bids[0].price + asks[0].price) / 2 : null;
    return { pair: p.wire.symbol, bids, asks, mid, mark: mid === null ? null : Math.round(mid), midDisplay: mid === null ? null : priceDisplay(p, mid), ts: this.now };
  }

  /** Recent trades of a pair, newest first (GET /api/trades). */
  recentTrades(pairId: number, limit: number): WireTrade[] {
    const symbol = this.pairById(pairId)?.wire.symbol;
    return this.trades.filter((t) => t.pair === symbol).slice(-limit).reverse();
  }

  pnl(a: SimAccount): bigint {
    let v = a.quoteDelta;
    a.lots.forEach((lots, i) => {
      v += BigInt(lots) * this.markTicks(i) * BigInt((PAIRS[i] as PairSim).wire.quotePerTickLot);
    });
    return v;
  }

  equity(a: SimAccount): bigint {
    let v = (a.vault[0] ?? 0n) + this.pnl(a);
    PAIRS.forEach((p, i) => {
      v += ((a.vault[p.wire.baseIndex] ?? 0n) * this.markTicks(i) * BigInt(p.wire.quotePerTickLot)) / BigInt(p.wire.lotSize);
    });
    return v;
  }

  leaderboard(): WireLeaderRow[] {
    return this.accounts
      .filter((a) => a.broker !== null && (a.demo || a.trades > 0))
      .map((a) => ({ a, pnl: this.pnl(a) }))
      .sort((x, y) => (y.pnl > x.pnl ? 1 : y.pnl < x.pnl ? -1 : x.a.id - y.a.id))
      .map(({ a, pnl }, i) => ({ rank: i + 1, accountId: a.id, account: a.address, broker: a.broker, equity: this.equity(a).toString(), pnl: pnl.toString(), pnlDisplay: (Number(pnl) / 1e6).toFixed(2) }));
  }

  session(): WireSession {
    const s = this.phaseSteps;
    const sec = (steps: number) => Math.round((steps * this.stepMs) / 1000);
    return {
      id: this.sessionId,
      phase: this.phase,
      phaseStartedAt: this.phaseStartedAt,
      phaseEndsAt: this.phase === "settling" ? null : this.phaseEndsAt,
      serverTime: this.now,
      chainId: CHAIN_ID,
      vault: VAULT,
      durations: { preSessionSec: sec(s.pre_session), tradingSec: sec(s.trading), closingSec: sec(s.closing) },
      tokens: TOKENS,
      pairs: PAIRS.map((p) => p.wire),
    };
  }

  hello(): WireMessage {
    const books: Record<string, WireBook> = {};
    const trades: Record<string, WireTrade[]> = {};
    for (const p of PAIRS) {
      books[p.wire.symbol] = this.book(p.wire.id, 10);
      trades[p.wire.symbol] = this.recentTrades(p.wire.id, 50);
    }
    return { type: "hello", session: this.session(), books, trades, outcry: this.outcry.slice(-50).reverse(), leaderboard: this.leaderboard(), serverTime: this.now };
  }

  accountView(address: Address) {
    const a = this.accounts.find((x) => x.address.toLowerCase() === address.toLowerCase());
    const pit = a ? [...a.vault] : TOKENS.map(() => 0n);
    if (a) {
      a.lots.forEach((lots, i) => {
        const p = (PAIRS[i] as PairSim).wire;
        pit[p.baseIndex] = (pit[p.baseIndex] ?? 0n) + BigInt(lots) * BigInt(p.lotSize);
      });
      pit[0] = (pit[0] ?? 0n) + a.quoteDelta;
    }
    const trading = a !== undefined && this.phase !== "pre_session";
    const equity = a ? this.equity(a) : 0n;
    return {
      account: getAddress(address),
      accountId: a?.id ?? null,
      brokerId: a?.broker ?? null,
      pairs: a ? a.pairs : null,
      repromptUsed: a?.reprompted ?? false,
      inventory: TOKENS.map((t) => ({ token: t.symbol, index: t.index, amount: (pit[t.index] ?? 0n).toString(), reserved: "0", onChain: (a?.vault[t.index] ?? 0n).toString() })),
      openOrders: [],
      marginStatus: trading ? "ok" : null,
      equity: trading ? equity.toString() : null,
      initialMargin: trading ? (equity / 5n).toString() : null,
      maintenanceMargin: trading ? (equity / 10n).toString() : null,
      pnl: a && trading ? this.pnl(a).toString() : null,
    };
  }
}

// ------------------------------------------------------------------ HTTP

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".json": "application/json",
  ".md": "text/plain; charset=utf-8",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

interface ApiError { status: number; error: string; message: string; field?: string }
const fail = (status: number, error: string, message: string, field?: string): ApiError => (field === undefined ? { status, error, message } : { status, error, message, field });

async function readBody(req: IncomingMessage, limit = 65_536): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw fail(413, "body_too_large", `request body over ${limit} bytes`, "body");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  res.writeHead(status, { "content-type": typeof body === "string" ? "text/plain; charset=utf-8" : "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(text);
}

export interface DevPageServer {
  url: string;
  port: number;
  /** Advances the scripted feed `n` steps and pushes what happened to every client. */
  step(n?: number): void;
  /** Pushes an arbitrary message (tests: hostile outcry text, odd shapes). */
  broadcast(msg: unknown): void;
  /** Closes every WebSocket (tests: the page must reconnect). */
  dropClients(): void;
  readonly actions: ReceivedAction[];
  readonly sim: PitSim;
  close(): Promise<void>;
}

export async function startDevPageServer(opts: DevPageServerOptions = {}): Promise<DevPageServer> {
  const stepMs = opts.stepMs ?? 1000;
  const phaseSteps: Record<Phase, number> = { pre_session: 20, trading: 240, closing: 6, settling: 8, ...opts.phaseSteps };
  const warmup = Math.min(opts.warmupSteps ?? 80, phaseSteps.trading - 1);
  const sim = new PitSim(opts.seed ?? 42, stepMs, phaseSteps, Date.now() - warmup * stepMs, opts.wallets ?? []);
  for (let i = 0; i < warmup; i++) sim.step();
  const webRoot = resolve(opts.webRoot ?? fileURLToPath(new URL("../keeper/web/", import.meta.url)));
  const actions: ReceivedAction[] = [];
  const usedNonces = new Set<string>();

  const pairParam = (raw: string): PairSim | undefined => {
    const s = decodeURIComponent(raw).toUpperCase().replace(/[-_]/, "/");
    return PAIRS.find((p) => p.wire.symbol === s);
  };
  const intParam = (url: URL, name: string, def: number, max: number): number => {
    const v = url.searchParams.get(name);
    if (v === null) return def;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > max) throw fail(400, "bad_request", `querystring.${name}: must be an integer from 1 to ${max}`, name);
    return n;
  };

  function get(url: URL): unknown {
    const path = url.pathname;
    let m: RegExpExecArray | null;
    if (path === "/healthz") return { ok: true, phase: sim.phase, sessionId: sim.sessionId, chainBlock: null, journalSeq: 0, wsClients: wss.clients.size };
    if (path === "/metrics") return `# TYPE cme_dev_ws_clients gauge\ncme_dev_ws_clients ${wss.clients.size}\n`;
    if (path === "/api/session") return sim.session();
    if (path === "/api/leaderboard") return sim.leaderboard();
    if (path === "/api/top-prompts") return sim.topPrompts;
    if (path === "/api/brokers") return BROKERS;
    if (path === "/api/outcry") return sim.outcry.slice(-intParam(url, "limit", 50, 500)).reverse();
    if (path === "/api/eip712") return { domain: DOMAIN, types: ACTION_TYPES, primaryTypes: ACTION_ROUTES };
    if ((m = /^\/api\/books\/([^/]+)$/.exec(path))) {
      const p = pairParam(m[1] ?? "");
      if (!p) throw fail(404, "unknown_pair", `no pair ${m[1]}`, "pair");
      return sim.book(p.wire.id, intParam(url, "levels", 10, 100));
    }
    if ((m = /^\/api\/trades\/([^/]+)$/.exec(path))) {
      const p = pairParam(m[1] ?? "");
      if (!p) throw fail(404, "unknown_pair", `no pair ${m[1]}`, "pair");
      return sim.recentTrades(p.wire.id, intParam(url, "limit", 50, 500));
    }
    if ((m = /^\/api\/accounts\/([^/]+)$/.exec(path))) {
      const address = m[1] ?? "";
      if (!/^0x[0-9a-fA-F]{40}$/.test(address)) throw fail(400, "bad_request", 'params.address: must match pattern "^0x[0-9a-fA-F]{40}$"', "address");
      return sim.accountView(getAddress(address));
    }
    if ((m = /^\/api\/sessions\/(\d+)\/settlement$/.exec(path))) {
      const id = Number(m[1]);
      if (sim.settlement?.sessionId === id) return sim.settlement;
      if (id > 0 && id < sim.sessionId) return { sessionId: id, status: "finalized", batchCount: 3, batchesConfirmed: 3, batchRoot: null, fillLogHash: null, deltaCount: 0, onChain: null, transactions: [] };
      if (id === sim.sessionId) return { sessionId: id, status: "not_started", batchCount: 0, batchesConfirmed: 0, batchRoot: null, fillLogHash: null, deltaCount: 0, onChain: null, transactions: [] };
      throw fail(404, "unknown_session", `no session ${id}`, "id");
    }
    if ((m = /^\/api\/sessions\/(\d+)\/fill-log$/.exec(path))) {
      const id = Number(m[1]);
      if (sim.settlement?.sessionId === id && sim.settlement.status !== "planned") return { sessionId: id, events: sim.trades };
      throw fail(404, "not_published", `session ${id} has no published fill log yet`, "id");
    }
    throw fail(404, "not_found", `no route GET ${path}`);
  }

  /** The keeper's order: body schema (400), signature (401), registration (403), rules (409), nonce. */
  async function signedAction(route: Route, raw: string): Promise<unknown> {
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      body = parsed as Record<string, unknown>;
    } catch {
      throw fail(400, "malformed_json", "request body is not valid JSON", "body");
    }
    const type = ACTION_ROUTES[route];
    const fields = ACTION_TYPES[type];
    const allowed = new Set<string>([...fields.map((f) => f.name), "signature", "chainId"]);
    for (const k of Object.keys(body)) if (!allowed.has(k)) throw fail(400, "bad_request", `${k}: must NOT have additional properties`, k);
    for (const f of [...fields.map((x) => x.name), "signature"]) if (!(f in body)) throw fail(400, "bad_request", `${f}: must have required property '${f}'`, f);
    const str = (k: string, re: RegExp, what: string) => {
      const v = body[k];
      if (typeof v !== "string" || !re.test(v)) throw fail(400, "bad_request", `${k}: must be ${what}`, k);
      return v;
    };
    str("account", /^0x[0-9a-fA-F]{40}$/, "a 0x-prefixed 20-byte address");
    str("nonce", /^[0-9]{1,78}$/, "an unsigned integer as a decimal string");
    str("signature", /^0x[0-9a-fA-F]{130}$/, "a 65-byte signature");
    const expiry = typeof body.expiry === "string" && /^\d+$/.test(body.expiry) ? Number(body.expiry) : body.expiry;
    if (typeof expiry !== "number" || !Number.isInteger(expiry) || expiry < 0) throw fail(400, "bad_request", "expiry: must be integer", "expiry");
    if ("prompt" in body && (typeof body.prompt !== "string" || body.prompt.length < 1 || body.prompt.length > 4000)) {
      throw fail(400, "bad_request", "prompt: must NOT have more than 4000 characters", "prompt");
    }
    if ("pairs" in body && (!Array.isArray(body.pairs) || body.pairs.length < 1 || !body.pairs.every((p) => typeof p === "string"))) {
      throw fail(400, "bad_request", "pairs: must NOT have fewer than 1 items", "pairs");
    }
    const account = getAddress(body.account as string);
    const message: Record<string, unknown> = {};
    for (const f of fields) if (f.name !== "nonce" && f.name !== "expiry") message[f.name] = f.name === "amount" ? BigInt(String(body[f.name])) : body[f.name];
    const envelope = { account, nonce: body.nonce as string, expiry, signature: body.signature as Hex, ...(typeof body.chainId === "number" ? { chainId: body.chainId } : {}) };
    const auth = await verifyAction(type, message, envelope, {
      domain: DOMAIN,
      nowSec: Math.floor(sim.now / 1000),
      maxExpirySec: MAX_EXPIRY_SEC,
      isNonceUsed: (a, n) => usedNonces.has(`${a.toLowerCase()}:${n}`),
    });
    if (auth !== null) throw fail(auth.code === "expiry_too_far" ? 400 : 401, auth.code, auth.message, auth.field);
    const acct = sim.accounts.find((a) => a.address === account);
    if (!acct) throw fail(403, "not_registered", `${account} has no vault account yet: deposit first`, "account");
    if (type === "SetBroker") {
      const b = BROKERS.find((x) => x.id === body.brokerId);
      if (!b) throw fail(400, "unknown_broker", `no broker "${String(body.brokerId)}" in the catalogue (GET /api/brokers)`, "brokerId");
      if (!b.available) throw fail(409, "broker_unavailable", `broker "${b.id}" is unavailable: ${b.reason ?? ""}`, "brokerId");
    }
    if (type === "SetPairs") {
      if (sim.phase !== "pre_session") throw fail(409, "wrong_phase", `pairs can only be set in pre-session (now ${sim.phase})`, "pairs");
      const pairs = body.pairs as string[];
      const bad = pairs.findIndex((p) => !PAIRS.some((x) => x.wire.symbol === p));
      if (bad >= 0) throw fail(400, "unknown_pair", `no pair ${pairs[bad]} (pairs: ${PAIRS.map((p) => p.wire.symbol).join(", ")})`, `pairs.${bad}`);
    }
    if (type === "Reprompt") {
      if (sim.phase !== "trading") throw fail(409, "wrong_phase", `re-prompts are only taken while trading (now ${sim.phase})`, "prompt");
      if (acct.broker === null) throw fail(409, "not_participating", `${account} has no broker in session ${sim.sessionId}`, "account");
      if (acct.reprompted) throw fail(409, "reprompt_used", `the one re-prompt of session ${sim.sessionId} was already used`, "prompt");
    }
    if (type === "WithdrawalRequest") throw fail(503, "unavailable", "the dev page server has no chain to sign permits", "token");
    usedNonces.add(`${account.toLowerCase()}:${body.nonce as string}`);
    if (type === "SetBroker") acct.broker = body.brokerId as string;
    if (type === "SetPrompt") acct.prompt = body.prompt as string;
    if (type === "SetPairs") acct.pairs = body.pairs as string[];
    if (type === "Reprompt") acct.reprompted = true;
    const effectiveSession = type === "Reprompt" || sim.phase === "pre_session" ? sim.sessionId : sim.sessionId + 1;
    return { ok: true, settings: { account, accountId: acct.id, brokerId: acct.broker, prompt: type === "Reprompt" ? (body.prompt as string) : acct.prompt || null, pairs: acct.pairs, effectiveSession } };
  }

  async function serveStatic(url: URL, res: ServerResponse): Promise<void> {
    const rel = url.pathname === "/" ? "index.html" : decodeURIComponent(url.pathname.slice(1));
    const file = resolve(join(webRoot, rel));
    if (!file.startsWith(webRoot + sep)) return send(res, 404, { error: "not_found", message: "not found" });
    try {
      const data = await readFile(file);
      res.writeHead(200, { "content-type": CONTENT_TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
      res.end(data);
    } catch {
      send(res, 404, { error: "not_found", message: `no file ${rel}` });
    }
  }

  const errorReply = (err: unknown): [number, unknown] => {
    const e = err as Partial<ApiError>;
    if (typeof e.status === "number" && typeof e.error === "string") return [e.status, { error: e.error, message: e.message, ...(e.field ? { field: e.field } : {}) }];
    return [500, { error: "internal", message: String(err) }];
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.method === "POST") {
      const route = url.pathname as Route;
      let raw = "";
      readBody(req)
        .then((text) => {
          raw = text;
          if (!(route in ACTION_ROUTES)) throw fail(404, "not_found", `no route POST ${url.pathname}`);
          return signedAction(route, text);
        })
        .then((result): [number, unknown] => [200, result], errorReply)
        .then(([status, payload]) => {
          let body: unknown = raw;
          try {
            body = JSON.parse(raw);
          } catch {
            // keep the raw text: the log shows what the page really sent
          }
          actions.push({ route, status, body, response: payload });
          send(res, status, payload);
        });
      return;
    }
    if (req.method !== "GET") return send(res, 405, { error: "method_not_allowed", message: `${req.method} is not allowed` });
    if (!(url.pathname.startsWith("/api/") || url.pathname === "/healthz" || url.pathname === "/metrics")) {
      void serveStatic(url, res);
      return;
    }
    try {
      send(res, 200, get(url));
    } catch (err) {
      send(res, ...errorReply(err));
    }
  });

  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  server.on("upgrade", (req, socket, head) => {
    if (new URL(req.url ?? "/", "http://localhost").pathname !== "/ws") {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => ws.send(JSON.stringify(sim.hello())));
  });

  // A slow client is dropped, never allowed to slow the feed (as the keeper's hub does).
  const MAX_BUFFERED = 1 << 20;
  const broadcast = (msg: unknown) => {
    const text = JSON.stringify(msg);
    for (const ws of wss.clients) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (ws.bufferedAmount > MAX_BUFFERED) ws.terminate();
      else ws.send(text);
    }
  };
  const step = (n = 1) => {
    for (let i = 0; i < n; i++) for (const msg of sim.step()) broadcast(msg);
  };

  await new Promise<void>((ok, ko) => {
    server.once("error", ko);
    server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => ok());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  const timer = opts.autoplay === false ? null : setInterval(() => step(), stepMs);

  return {
    url: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    port,
    step,
    broadcast: (msg: unknown) => {
      if ((msg as { type?: string }).type === "outcry") sim.outcry.push(msg as WireOutcry);
      broadcast(msg);
    },
    dropClients: () => {
      for (const ws of wss.clients) ws.terminate();
    },
    actions,
    sim,
    close: async () => {
      if (timer) clearInterval(timer);
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

// ------------------------------------------------------------------ CLI

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const wallet = arg("--wallet");
  if (wallet !== undefined && !isAddress(wallet, { strict: false })) throw new Error(`--wallet: not an address: ${wallet}`);
  const srv = await startDevPageServer({
    port: Number(arg("--port") ?? process.env.CME_DEV_PAGE_PORT ?? 8788),
    stepMs: Number(arg("--step-ms") ?? 1000),
    ...(wallet ? { wallets: [{ address: wallet, balances: { USDC: "2500000000" } }] } : {}),
  });
  console.log(`pit page on a scripted feed: ${srv.url}/  (Ctrl-C stops)`);
  const stop = () => void srv.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
