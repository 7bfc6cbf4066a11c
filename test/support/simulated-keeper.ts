// A scripted, seeded pit behind the keeper's own port (keeper/api/port.ts), so the real app serves
// it: `buildApp({ keeper: new SimulatedKeeper() })` gives the pit page (keeper/web/) the keeper's
// routes, schemas, static files and /ws stream with no chain behind them. Three pairs and fourteen
// brokers trade, shout, close and settle into the next session; signed actions go through the
// keeper's EIP-712 verifier and come back with the keeper's refusals. Requests for quote happen
// only when a test makes them (requestQuote, quote, accept, lock, cancelRequest), and stream as
// api/stream-publisher.ts streams the engine's events, in the engine's order (core/rfq.ts).
//
// Every value is typed with the API's wire types (keeper/api/wire.ts, derived from its JSON
// schemas), so tsc checks that this sends exactly the shapes the routes and the stream declare.
// Nothing moves until a test calls step(), and a seed always plays the same market.
import { getAddress, keccak256, stringToHex, type Address, type Hex } from "viem";
import { keeperDomain, type ActionType, type KeeperDomain } from "../../keeper/auth/eip712.ts";
import { verifyAction, type SignedEnvelope } from "../../keeper/auth/verify.ts";
import type { ActionOutcome, KeeperPort, PermitView, Refusal, Signed, StreamClient, UserSettingsView, TradeActionBody, TradeActionResult } from "../../keeper/api/port.ts";
import type {
  AccountWire,
  BookWire,
  BrokerWire,
  HealthWire,
  LeaderboardRowWire,
  OrderEventWire,
  OutcryWire,
  PairWire,
  SessionWire,
  SettlementWire,
  StreamMessage,
  TokenWire,
  TopPromptWire,
  TradeWire,
  WithdrawalWire,
  QuotesWire,
  RfqRequestWire,
} from "../../keeper/api/wire.ts";
import { SESSION_TRANSITIONS, stepFrom, type SessionPhase } from "../../keeper/core/phases.ts";
import { Prng } from "../../keeper/core/prng.ts";
import { DEFAULT_MARKET, pairUnits } from "../../keeper/session/pairs.ts";
import { Fanout } from "../../keeper/stream/fanout.ts";
import { decideWithdrawal, type PitAllowance, type VaultWithdrawalView } from "../../keeper/session/withdrawal.ts";

// ---------------------------------------------------------------- the market

const CHAIN_ID = 31337;
const VAULT: Address = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
/** Hardhat account #0, the settler: the only signer of admin requests. */
const SETTLER: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
const MAX_EXPIRY_SEC = 3600;
/** A fixed clock start, so timestamps are a function of the seed too. */
const DEFAULT_START = Date.UTC(2025, 0, 6, 14, 0, 0);

const TOKENS: TokenWire[] = [
  { index: 0, symbol: "USDC", address: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512", decimals: 6 },
  { index: 1, symbol: "PEPE", address: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0", decimals: 18 },
  { index: 2, symbol: "WIF", address: "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9", decimals: 18 },
  { index: 3, symbol: "DOGE", address: "0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9", decimals: 8 },
];
const USDC = TOKENS[0]!;

/** A pair as the API describes it, plus how the script moves it: level spacing in ticks and volatility per step. */
interface PairSim {
  wire: PairWire;
  lotExp: number;
  spacing: number;
  vol: number;
}

/** The keeper's own unit rules (keeper/session/pairs.ts) at the demo's reference prices. */
const PAIRS: PairSim[] = (
  [
    [1, "0.00001", 3, 0.0016],
    [2, "2", 1, 0.0012],
    [3, "0.2", 2, 0.001],
  ] as const
).map(([index, ref, spacing, vol], i) => {
  const base = TOKENS[index]!;
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
      priceBandBps: DEFAULT_MARKET.priceBandBps,
      baseDecimals: base.decimals,
      quoteDecimals: USDC.decimals,
      takerFeeBps: DEFAULT_MARKET.takerBps,
      makerFeeBps: DEFAULT_MARKET.makerBps,
    },
  };
});

export const BROKERS: BrokerWire[] = [
  { id: "market-maker", kind: "rule", name: "Market Maker", available: true, description: "Quotes both sides around mid and skews with inventory." },
  { id: "momentum", kind: "rule", name: "Momentum", available: true, description: "Follows the tape: buys strength, sells weakness." },
  { id: "mean-reversion", kind: "rule", name: "Mean Reversion", available: true, description: "Fades moves away from the session's reference price." },
  { id: "scalper", kind: "rule", name: "Fee-aware Scalper", available: true, description: "Trades book imbalance only when the edge beats fees." },
  { id: "gpt-4.1-mini", kind: "ai", name: "GPT-4.1 mini", available: true, description: "OpenAI: gpt-4.1-mini per tick, gpt-4.1 for plans and reviews." },
  { id: "llama-3.1-8b", kind: "ai", name: "Llama 3.1 8B (Ollama)", available: true, description: "A local model through Ollama's OpenAI-compatible API." },
  { id: "deepseek-v3", kind: "ai", name: "DeepSeek V3 (OpenRouter)", available: false, reason: "OPENROUTER_API_KEY is not set", description: "DeepSeek through OpenRouter." },
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

/** USDC per whole token of `ticks`, for the brokers' shouted lines (the page formats prices itself). */
function priceText(p: PairSim, ticks: number): string {
  const scaled = BigInt(ticks) * BigInt(p.wire.quotePerTickLot);
  const shift = p.wire.quoteDecimals + p.lotExp;
  if (shift <= 0) return (scaled * 10n ** BigInt(-shift)).toString();
  const s = scaled.toString().padStart(shift + 1, "0");
  const frac = s.slice(-shift).replace(/0+$/, "");
  return `${s.slice(0, -shift)}${frac ? "." + frac : ""}`;
}

/** The phase after `phase`, by the keeper's transition table; after settled the next session opens. */
function nextPhase(phase: SessionPhase): SessionPhase {
  const step = stepFrom(phase);
  return step === null ? "pre_session" : SESSION_TRANSITIONS[step][1];
}

type Hello = Extract<StreamMessage, { type: "hello" }>;

const refused = (status: Refusal["status"], error: string, message: string, field: string): { ok: false; refusal: Refusal } => ({
  ok: false,
  refusal: { status, error, message, field },
});

// ---------------------------------------------------------------- the simulated keeper

/** Phases that last a number of steps; settling lasts until its settlement finalizes, as on-chain. */
export type TimedPhase = Exclude<SessionPhase, "settling">;

export interface SimWallet {
  address: Address;
  /** Vault balances in base units, by token symbol. */
  balances?: Partial<Record<string, bigint>>;
}

export interface SimulatedKeeperOptions {
  seed?: number;
  /** Simulated time per step. */
  stepMs?: number;
  /** Clock when the first session's trading opens, before the warm-up (a fixed date by default). */
  startAt?: number;
  /** Trading steps played at construction, so the page opens on a session with history. */
  warmupSteps?: number;
  phaseSteps?: Partial<Record<TimedPhase, number>>;
  /** Registered accounts besides the brokers' (a test's wallet). */
  wallets?: SimWallet[];
  /** The broker catalogue (default BROKERS); the script's accounts take its available brokers in turn. */
  brokers?: BrokerWire[];
}

type RfqQuoteWire = RfqRequestWire["quotes"][number];
/** An open request as GET /api/quotes shows it (its quotes kept in `quotes`, oldest first). */
type SimRequest = RfqRequestWire;

interface SimAccount {
  id: number;
  address: Address;
  broker: string | null;
  prompt: string | null;
  pairs: string[];
  reprompted: boolean;
  /** Vault balances in base units per token index (the settled, on-chain view). */
  vault: bigint[];
  /** This session's deltas: lots per pair and quote base units. */
  lots: number[];
  quoteDelta: bigint;
  /** A broker of the script (trades and shouts), not a test's wallet. */
  demo: boolean;
}

interface Level {
  size: number;
  orders: number;
}

export class SimulatedKeeper implements KeeperPort {
  readonly #rand: Prng;
  readonly #stepMs: number;
  readonly #phaseSteps: Record<TimedPhase, number>;
  readonly #domain: KeeperDomain = keeperDomain(CHAIN_ID, VAULT);
  readonly #fanout = new Fanout({ maxBufferedBytes: 1 << 20 });
  readonly #nonces = new Set<string>();
  readonly #brokers: BrokerWire[];
  /** Open requests for quote by id; ids are shared with quotes (the keeper's command seqs). */
  readonly #requests = new Map<number, SimRequest>();
  #nextRfqId = 1;
  readonly #accounts: SimAccount[] = [];
  readonly #sides: { bids: Map<number, Level>; asks: Map<number, Level> }[];
  readonly #fair: number[];
  #now: number;
  #version = 0;
  #sessionId = 7;
  #phase: SessionPhase = "trading";
  #phaseStartedAt: number;
  #phaseEndsAt: number | null;
  #stepsLeft: number;
  /** This session's trades and the outcry, oldest first. */
  #trades: TradeWire[] = [];
  #outcry: OutcryWire[] = [];
  /** Published top prompts, newest session first. */
  #topPrompts: TopPromptWire[] = [];
  /** The latest session's settlement, and its fill log once committed. */
  #settlement: SettlementWire | null = null;
  #fillLog: { sessionId: number; body: string; hash: Hex } | null = null;
  #nextTradeSeq = 1;
  #nextOrderId = 1;
  #nextPermit = 1;
  // One step's stream, flushed as the keeper's hub flushes: queued messages first, then order,
  // fill and outcry conflated, then the newest view of each book that changed.
  #queue: StreamMessage[] = [];
  #orders: OrderEventWire[] = [];
  #fills: TradeWire[] = [];
  #cries: OutcryWire[] = [];
  #books = new Map<string, BookWire>();

  constructor(opts: SimulatedKeeperOptions = {}) {
    this.#rand = new Prng(opts.seed ?? 42);
    this.#stepMs = opts.stepMs ?? 1000;
    this.#phaseSteps = { pre_session: 20, trading: 240, closing: 6, settled: 1, ...opts.phaseSteps };
    this.#now = opts.startAt ?? DEFAULT_START;
    this.#phaseStartedAt = this.#now;
    this.#stepsLeft = this.#phaseSteps.trading;
    this.#phaseEndsAt = this.#now + this.#stepsLeft * this.#stepMs;
    this.#sides = PAIRS.map(() => ({ bids: new Map(), asks: new Map() }));
    this.#fair = PAIRS.map((p) => p.wire.referencePriceTicks);
    this.#brokers = opts.brokers ?? BROKERS;
    const brokerIds = this.#brokers.filter((b) => b.available).map((b) => b.id);
    for (let i = 0; i < 14; i++) {
      const address = this.#randomAddress();
      this.#addAccount(address, brokerIds[i % brokerIds.length] ?? null, PROMPTS[i % PROMPTS.length] ?? null, true);
    }
    for (const w of opts.wallets ?? []) {
      const a = this.#addAccount(getAddress(w.address), null, null, false);
      a.vault = TOKENS.map((t) => w.balances?.[t.symbol] ?? 0n);
    }
    for (const id of [this.#sessionId - 1, this.#sessionId - 2]) this.#publishTopPrompts(id, true);
    this.step(Math.min(opts.warmupSteps ?? 80, this.#phaseSteps.trading - 1));
  }

  // ---------------------------------------------------------------- driving it (tests)

  /** Plays `n` steps; each one's messages go to every subscriber as one flush. */
  step(n = 1): void {
    for (let i = 0; i < n; i++) {
      this.#advance();
      this.#flush();
    }
  }

  /** A broker's shouted line, sent at once (tests: hostile text). */
  shout(line: OutcryWire): void {
    this.#recordOutcry(line);
    this.#flush();
  }

  /** Closes every stream subscriber (tests: the page must reconnect). */
  dropClients(): void {
    this.#fanout.closeAll(1012, "simulated keeper restart");
  }

  // ---------------------------------------------------------------- requests for quote (tests)
  // Each streams at once. The script checks what a test could get wrong about the pit's rules
  // (throws), not margin: every block trade goes through.

  /** An account asks the pit for a block (trade_request); open for `ttlSteps` steps. Returns its id. */
  requestQuote(o: { accountId: number; pair: string; side: "buy" | "sell"; size: number; limit?: number | null; ttlSteps: number; whitelisted?: boolean; minFill?: number; remainder?: "keep" | "drop" }): number {
    if (this.#phase !== "trading") throw new Error(`requests for quote only while trading (now ${this.#phase})`);
    this.#account(o.accountId);
    if (!PAIRS.some((p) => p.wire.symbol === o.pair)) throw new Error(`no pair ${o.pair}`);
    const r: SimRequest = {
      requestId: this.#nextRfqId++,
      pair: o.pair,
      accountId: o.accountId,
      side: o.side,
      size: o.size,
      remaining: o.size,
      limit: o.limit ?? null,
      expiresAt: this.#now + o.ttlSteps * this.#stepMs,
      whitelisted: o.whitelisted ?? false,
      minFill: o.minFill ?? 1,
      remainder: o.remainder ?? "keep",
      lockedBy: null,
      quotes: [],
    };
    this.#requests.set(r.requestId, r);
    const { remaining: _r, lockedBy: _l, quotes: _q, ...wire } = r;
    this.#queue.push({ type: "trade_request", ...wire, ts: this.#now });
    this.#rfqChanged();
    return r.requestId;
  }

  /** A quote on an open request (quote), replacing the quoter's earlier one (request_cancelled "replaced"). Returns its id. */
  quote(o: { requestId: number; quoter: number; price: number; size: number; ttlSteps: number }): number {
    const r = this.#openRequest(o.requestId);
    this.#account(o.quoter);
    if (o.quoter === r.accountId) throw new Error("a requester cannot quote its own request");
    if (r.lockedBy !== null && r.lockedBy !== o.quoter) throw new Error(`request ${r.requestId} is locked by #${r.lockedBy}`);
    const old = r.quotes.find((q) => q.quoter === o.quoter);
    if (old !== undefined) this.#endQuote(r, old, "request_cancelled", "replaced");
    const q: RfqQuoteWire = { quoteId: this.#nextRfqId++, requestId: r.requestId, pair: r.pair, quoter: o.quoter, side: r.side === "buy" ? "sell" : "buy", price: o.price, size: o.size, validUntil: this.#now + o.ttlSteps * this.#stepMs };
    r.quotes.push(q);
    this.#queue.push({ type: "quote", ...q, ts: this.#now });
    this.#rfqChanged();
    return q.quoteId;
  }

  /** A quoter with a live quote locks the request: the stream says nothing, GET /api/quotes shows `lockedBy`. */
  lock(requestId: number, quoter: number): void {
    const r = this.#openRequest(requestId);
    if (!r.quotes.some((q) => q.quoter === quoter)) throw new Error(`#${quoter} has no live quote on request ${requestId}`);
    r.lockedBy = quoter;
    this.#version++;
  }

  /**
   * The requester takes one quote, or the best ones (lowest price for a buy request) up to `size`
   * lots: quote_accepted, a block_trade per quote taken, then, if the request ends, its other
   * quotes (request_cancelled "request_ended").
   */
  accept(o: { requestId: number; quoteId?: number; size?: number }): void {
    const r = this.#openRequest(o.requestId);
    const sign = r.side === "buy" ? 1 : -1;
    const live = r.quotes.filter((q) => q.validUntil > this.#now && (r.lockedBy === null || q.quoter === r.lockedBy));
    const chosen = o.quoteId !== undefined ? live.filter((q) => q.quoteId === o.quoteId) : live.sort((a, b) => sign * (a.price - b.price) || a.quoteId - b.quoteId);
    if (chosen.length === 0) throw new Error(`no live quote to take on request ${r.requestId}`);
    const want = o.size ?? r.remaining;
    const taken: { q: RfqQuoteWire; lots: number }[] = [];
    let left = want;
    for (const q of chosen) {
      if (left < r.minFill) break;
      const lots = Math.min(left, q.size);
      taken.push({ q, lots });
      left -= lots;
    }
    r.remaining -= want - left;
    const status = r.remaining === 0 ? "filled" : r.remainder === "drop" || r.remaining < r.minFill ? "dropped" : "open";
    this.#queue.push({
      type: "quote_accepted",
      requestId: r.requestId,
      pair: r.pair,
      accountId: r.accountId,
      side: r.side,
      filled: want - left,
      quoteIds: taken.map((t) => t.q.quoteId),
      remaining: status === "open" ? r.remaining : 0,
      status,
      ts: this.#now,
    });
    for (const { q, lots } of taken) {
      this.#blockTrade(r, q, lots);
      r.quotes.splice(r.quotes.indexOf(q), 1);
      if (r.lockedBy === q.quoter) r.lockedBy = null;
    }
    if (status !== "open") this.#closeRequest(r, null, "request_ended");
    this.#rfqChanged();
  }

  /** The requester cancels its request; its quotes end first (request_ended). */
  cancelRequest(requestId: number): void {
    this.#closeRequest(this.#openRequest(requestId), "request_cancelled", "request_ended", "user");
    this.#rfqChanged();
  }

  // ---------------------------------------------------------------- reads

  session(): SessionWire {
    const sec = (steps: number) => Math.round((steps * this.#stepMs) / 1000);
    return {
      id: this.#sessionId,
      phase: this.#phase,
      phaseStartedAt: this.#phaseStartedAt,
      phaseEndsAt: this.#phaseEndsAt,
      serverTime: this.#now,
      chainId: CHAIN_ID,
      vault: VAULT,
      durations: { preSessionSec: sec(this.#phaseSteps.pre_session), tradingSec: sec(this.#phaseSteps.trading), closingSec: sec(this.#phaseSteps.closing) },
      tokens: TOKENS,
      pairs: PAIRS.map((p) => p.wire),
    };
  }

  readVersion(): string {
    return `${this.#sessionId}:${this.#version}`;
  }

  book(pair: string, levels: number): BookWire | undefined {
    const pi = PAIRS.findIndex((p) => p.wire.symbol === pair);
    return pi < 0 ? undefined : this.#bookOf(pi, levels);
  }

  /** Newest first. */
  trades(pair: string, limit: number): TradeWire[] | undefined {
    if (!PAIRS.some((p) => p.wire.symbol === pair)) return undefined;
    return this.#trades.filter((t) => t.pair === pair).slice(-limit).reverse();
  }

  /** Open requests for quote with their live quotes, oldest first, as the keeper lists them. */
  quotes(): QuotesWire {
    return { requests: structuredClone([...this.#requests.values()]) };
  }

  async tradeAction(_req: Signed & TradeActionBody): Promise<ActionOutcome<TradeActionResult>> {
    return { ok: false, refusal: { status: 409, error: "not_simulated", message: "the simulated keeper takes no requests for quote" } };
  }

  outcry(limit: number): OutcryWire[] {
    return this.#outcry.slice(-limit).reverse();
  }

  /** The brokers of the script by PnL, as PitViews ranks the session's participants. */
  leaderboard(): LeaderboardRowWire[] {
    return this.#accounts
      .filter((a) => a.demo)
      .map((a) => ({ a, pnl: this.#pnl(a) }))
      .sort((x, y) => (y.pnl > x.pnl ? 1 : y.pnl < x.pnl ? -1 : x.a.id - y.a.id))
      .map(({ a, pnl }, i) => ({ rank: i + 1, accountId: a.id, account: a.address, broker: a.broker, equity: this.#equity(a).toString(), pnl: pnl.toString() }));
  }

  topPrompts(): TopPromptWire[] {
    return this.#topPrompts;
  }

  brokers(): BrokerWire[] {
    return this.#brokers;
  }

  account(address: string): AccountWire {
    const a = this.#accountOf(address);
    const pit = a === undefined ? TOKENS.map(() => 0n) : this.#pitBalances(a);
    // The pit holds margin and PnL from the open to settlement; before the open there is none.
    const inPit = a !== undefined && this.#phase !== "pre_session";
    const equity = a === undefined ? 0n : this.#equity(a);
    return {
      account: getAddress(address),
      accountId: a?.id ?? null,
      brokerId: a?.broker ?? null,
      pairs: a?.pairs ?? null,
      repromptUsed: a?.reprompted ?? false,
      inventory: TOKENS.map((t) => ({ token: t.symbol, index: t.index, amount: (pit[t.index] ?? 0n).toString(), reserved: "0", onChain: (a?.vault[t.index] ?? 0n).toString() })),
      openOrders: [],
      marginStatus: inPit ? "ok" : null,
      equity: inPit ? equity.toString() : null,
      initialMargin: inPit ? (equity / 5n).toString() : null,
      maintenanceMargin: inPit ? (equity / 10n).toString() : null,
      pnl: inPit && a !== undefined ? this.#pnl(a).toString() : null,
    };
  }

  fillLog(sessionId: number): { body: string; hash: string } | undefined {
    const log = this.#fillLog;
    return log !== null && log.sessionId === sessionId ? { body: log.body, hash: log.hash } : undefined;
  }

  async settlement(sessionId: number): Promise<SettlementWire | undefined> {
    if (this.#settlement?.sessionId === sessionId) return structuredClone(this.#settlement);
    const empty = { batchRoot: null, fillLogHash: null, deltaCount: 0, onChain: null, transactions: [] };
    if (sessionId === this.#sessionId) return { sessionId, status: "not_started", batchCount: 0, batchesConfirmed: 0, ...empty };
    // Earlier sessions than the script played: settled before it started.
    if (sessionId >= 1 && sessionId < this.#sessionId) return { sessionId, status: "finalized", batchCount: 3, batchesConfirmed: 3, ...empty };
    return undefined;
  }

  domain(): KeeperDomain {
    return this.#domain;
  }

  health(): HealthWire {
    return { ok: true, phase: this.#phase, sessionId: this.#sessionId, chainBlock: null, journalSeq: this.#version, wsClients: this.#fanout.size };
  }

  metrics(): string {
    return `# TYPE cme_ws_clients gauge\ncme_ws_clients ${this.#fanout.size}\n`;
  }

  subscribe(client: StreamClient): () => void {
    const hello: Hello = { type: "hello", ...this.#snapshot() };
    return this.#fanout.add(client, JSON.stringify(hello));
  }

  // ---------------------------------------------------------------- signed actions, in the keeper's order:
  // signature envelope (401, or 400 for a too distant expiry), registration (403), the action's
  // own rules (400/409); the nonce is spent only when the action applies.

  setBroker(req: Signed & { brokerId: string }): Promise<ActionOutcome<UserSettingsView>> {
    return this.#userAction("SetBroker", req, { brokerId: req.brokerId }, (a) => {
      const b = this.#brokers.find((x) => x.id === req.brokerId);
      if (b === undefined) return refused(400, "unknown_broker", `no broker "${req.brokerId}" in the catalogue (GET /api/brokers)`, "brokerId");
      if (!b.available) return refused(409, "broker_unavailable", `broker "${b.id}" is unavailable: ${b.reason ?? ""}`, "brokerId");
      a.broker = b.id;
      return { ok: true, value: this.#settings(a, this.#effectiveSession()) };
    });
  }

  setPrompt(req: Signed & { prompt: string }): Promise<ActionOutcome<UserSettingsView>> {
    return this.#userAction("SetPrompt", req, { prompt: req.prompt }, (a) => {
      a.prompt = req.prompt;
      return { ok: true, value: this.#settings(a, this.#effectiveSession()) };
    });
  }

  setPairs(req: Signed & { pairs: string[] }): Promise<ActionOutcome<UserSettingsView>> {
    return this.#userAction("SetPairs", req, { pairs: req.pairs }, (a) => {
      if (this.#phase !== "pre_session") return refused(409, "wrong_phase", `pairs can only be set in pre-session (now ${this.#phase})`, "pairs");
      const known = PAIRS.map((p) => p.wire.symbol);
      const bad = req.pairs.findIndex((p) => !known.includes(p));
      if (bad >= 0) return refused(400, "unknown_pair", `no pair ${req.pairs[bad]} (pairs: ${known.join(", ")})`, `pairs.${bad}`);
      a.pairs = [...req.pairs];
      return { ok: true, value: this.#settings(a, this.#sessionId) };
    });
  }

  reprompt(req: Signed & { prompt: string }): Promise<ActionOutcome<UserSettingsView>> {
    return this.#userAction("Reprompt", req, { prompt: req.prompt }, (a) => {
      const id = this.#sessionId;
      if (this.#phase !== "trading") return refused(409, "wrong_phase", `re-prompts are only taken while trading (now ${this.#phase})`, "prompt");
      if (a.broker === null) return refused(409, "not_participating", `${req.account} has no broker in session ${id}`, "account");
      if (a.reprompted) return refused(409, "reprompt_used", `the one re-prompt of session ${id} was already used`, "prompt");
      a.reprompted = true;
      return { ok: true, value: { ...this.#settings(a, id), prompt: req.prompt } };
    });
  }

  /**
   * The keeper's answer (keeper/session/withdrawal.ts decides it) from the script's own picture of
   * the vault: between sessions it is finalized; while trading and closing it trades; settling is
   * Trading until the settlement's begin step, then Settling with its batches, an account's delta
   * (a demo broker's) posted in the first batch. The vault balances double as the session's net
   * deposits: a permit debits them when it is signed, as the pit does.
   */
  async withdrawal(address: string, token: string): Promise<ActionOutcome<WithdrawalWire>> {
    const t = TOKENS.find((x) => x.symbol.toUpperCase() === token.toUpperCase() || x.address.toLowerCase() === token.toLowerCase());
    if (t === undefined) return refused(400, "unknown_token", `${token} is not listed (listed: ${TOKENS.map((x) => x.symbol).join(", ")})`, "token");
    const a = this.#accountOf(address);
    const d = decideWithdrawal({
      keeper: { sessionId: this.#sessionId, phase: this.#phase },
      symbol: t.symbol,
      decimals: t.decimals,
      vault: this.#vaultView(a, t.index),
      pit: this.#permitAllowance(a, t.index),
      ledger: a?.vault[t.index] ?? 0n,
    });
    return {
      ok: true,
      value: {
        account: getAddress(address),
        token: t.symbol,
        tokenAddress: t.address,
        decimals: t.decimals,
        sessionId: this.#sessionId,
        phase: this.#phase,
        vaultPhase: this.#vaultView(a, t.index).phase,
        route: d.route,
        code: d.code,
        available: d.available.toString(),
        balance: (a?.vault[t.index] ?? 0n).toString(),
        reason: d.reason,
      },
    };
  }

  #vaultView(a: SimAccount | undefined, index: number): VaultWithdrawalView {
    const balance = a?.vault[index] ?? 0n;
    const none = { batchesPosted: 0, batchCount: 0, balance, withdrawable: balance, settled: balance, pending: 0n, pendingSession: 0 };
    const s = this.#settlement;
    if (this.#phase === "pre_session") return { ...none, sessionId: this.#sessionId - 1, phase: "finalized" };
    if (this.#phase === "settled") return { ...none, sessionId: this.#sessionId, phase: "finalized" };
    if (this.#phase !== "settling" || s === null || s.status === "planned") return { ...none, sessionId: this.#sessionId, phase: "trading", withdrawable: 0n };
    const delta = a === undefined ? 0n : (this.#pitBalances(a)[index] ?? 0n) - balance;
    const posted = delta !== 0n && s.batchesConfirmed >= 1;
    const known = posted || s.batchesConfirmed === s.batchCount;
    const withdrawable = !known ? 0n : posted && delta < 0n ? balance + delta : balance;
    return {
      sessionId: this.#sessionId,
      phase: s.status === "finalized" ? "finalized" : "settling",
      batchesPosted: s.batchesConfirmed,
      batchCount: s.batchCount,
      balance,
      withdrawable,
      settled: balance,
      pending: posted ? delta : 0n,
      pendingSession: posted ? this.#sessionId : 0,
    };
  }

  #permitAllowance(a: SimAccount | undefined, index: number): PitAllowance | null {
    if (this.#phase !== "trading" && this.#phase !== "closing") return null;
    if (a === undefined) return { ok: true, amount: 0n, held: 0n };
    const pit = this.#pitBalances(a);
    if (pit.some((b) => b < 0n)) return { ok: false, code: "has_liabilities" };
    const held = pit[index] ?? 0n;
    const net = a.vault[index] ?? 0n;
    return { ok: true, amount: held < net ? held : net, held };
  }

  withdrawalPermit(req: Signed & { token: Address; amount: string }): Promise<ActionOutcome<PermitView>> {
    return this.#userAction("WithdrawalRequest", req, { token: req.token, amount: BigInt(req.amount) }, (a) => {
      if (this.#phase !== "trading" && this.#phase !== "closing") {
        return refused(409, "wrong_phase", `withdrawal permits are only signed while trading or closing (now ${this.#phase})`, "token");
      }
      const t = TOKENS.find((x) => x.address.toLowerCase() === req.token.toLowerCase());
      if (t === undefined) return refused(400, "unknown_token", `${req.token} is not a token traded in this session`, "token");
      const allowance = this.#permitAllowance(a, t.index)!;
      if (!allowance.ok) return refused(409, "has_liabilities", "withdrawals wait until no asset is owed", "account");
      const amount = BigInt(req.amount);
      if (amount > allowance.amount) {
        return refused(409, "insufficient_balance", "during a session at most the net deposit can be withdrawn; gains are paid at settlement", "amount");
      }
      // Reserved as the pit does when it signs; the script's vault follows at once.
      a.vault[t.index] = (a.vault[t.index] ?? 0n) - amount;
      const nonce = (BigInt(this.#sessionId) << 64n) | BigInt(this.#nextPermit++);
      // Nobody here holds the settler's key: a stand-in signature of the right length.
      const signature = `${keccak256(stringToHex(`permit:${a.address}:${nonce}`))}${keccak256(stringToHex(`s:${nonce}`)).slice(2)}1b` as Hex;
      return {
        ok: true,
        value: { account: a.address, token: t.address, amount: amount.toString(), sessionId: this.#sessionId, nonce: nonce.toString(), deadline: Math.floor(this.#now / 1000) + 3600, signature, vault: VAULT },
      };
    });
  }

  async adminSettle(req: Omit<Signed, "account"> & { sessionId: number }): Promise<ActionOutcome<SettlementWire>> {
    const auth = await this.#authorize("Admin", { action: "settle", sessionId: req.sessionId }, { ...req, account: SETTLER }, SETTLER);
    if (auth !== null) return { ok: false, refusal: auth };
    const progress = await this.settlement(req.sessionId);
    if (progress === undefined) return refused(404, "unknown_session", `no session ${req.sessionId}`, "sessionId");
    if (req.sessionId === this.#sessionId && this.#phase !== "settling" && this.#phase !== "settled") {
      return refused(409, "wrong_phase", `session ${req.sessionId} is ${this.#phase}; settlement starts after closing`, "sessionId");
    }
    this.#nonces.add(nonceKey(SETTLER, req.nonce));
    return { ok: true, value: progress };
  }

  async #authorize(type: ActionType, message: Record<string, unknown>, env: SignedEnvelope, signer?: Address): Promise<Refusal | null> {
    const fail = await verifyAction(type, message, env, {
      domain: this.#domain,
      nowSec: Math.floor(this.#now / 1000),
      maxExpirySec: MAX_EXPIRY_SEC,
      isNonceUsed: (account, nonce) => this.#nonces.has(nonceKey(account, nonce)),
      ...(signer === undefined ? {} : { signer }),
    });
    if (fail === null) return null;
    return { status: fail.code === "expiry_too_far" ? 400 : 401, error: fail.code, message: fail.message, field: fail.field };
  }

  async #userAction<T>(type: ActionType, req: Signed, message: Record<string, unknown>, apply: (a: SimAccount) => ActionOutcome<T>): Promise<ActionOutcome<T>> {
    const auth = await this.#authorize(type, { account: req.account, ...message }, req);
    if (auth !== null) return { ok: false, refusal: auth };
    const a = this.#accountOf(req.account);
    if (a === undefined) return refused(403, "not_registered", `${req.account} has no vault account yet: deposit first`, "account");
    const out = apply(a);
    if (out.ok) {
      this.#nonces.add(nonceKey(req.account, req.nonce));
      this.#version++;
    }
    return out;
  }

  #settings(a: SimAccount, effectiveSession: number): UserSettingsView {
    return { account: a.address, accountId: a.id, brokerId: a.broker, prompt: a.prompt, pairs: a.pairs, effectiveSession };
  }

  /** Settings apply to the session in pre-session; once it trades, to the next one. */
  #effectiveSession(): number {
    return this.#phase === "pre_session" ? this.#sessionId : this.#sessionId + 1;
  }

  // ---------------------------------------------------------------- the script

  #advance(): void {
    this.#now += this.#stepMs;
    this.#version++;
    if (this.#phase === "trading") {
      this.#tradeStep();
      this.#expireRfq();
    }
    const over = this.#phase === "settling" ? this.#settleStep() : --this.#stepsLeft <= 0;
    if (over) this.#enter(nextPhase(this.#phase));
    else if (this.#phase === "trading") this.#queue.push({ type: "pnl", rows: this.leaderboard() });
  }

  #enter(next: SessionPhase): void {
    if (next === "pre_session") this.#openNextSession();
    if (next === "closing") {
      this.#closeBooks();
      // end_trading: every request and quote ends with the session.
      for (const r of [...this.#requests.values()]) this.#closeRequest(r, "request_cancelled", "session_end", "session_end");
    }
    if (next === "settling") {
      const deltaCount = this.#accounts.filter((a) => a.demo).length * 2;
      this.#settlement = { sessionId: this.#sessionId, status: "planned", batchCount: 3, batchesConfirmed: 0, batchRoot: null, fillLogHash: null, deltaCount, onChain: null, transactions: [] };
    }
    this.#phase = next;
    this.#phaseStartedAt = this.#now;
    this.#stepsLeft = next === "settling" ? 0 : this.#phaseSteps[next];
    // Settling has no scheduled end: it lasts until the vault finalizes.
    this.#phaseEndsAt = next === "settling" ? null : this.#now + this.#stepsLeft * this.#stepMs;
    this.#queue.push({ type: "phase", session: this.session() });
    if (next === "closing" || next === "settling") this.#queue.push({ type: "pnl", rows: this.leaderboard() });
  }

  #openNextSession(): void {
    this.#sessionId += 1;
    this.#trades = [];
    this.#requests.clear();
    this.#nextTradeSeq = 1;
    for (const a of this.#accounts) {
      // The finalized session's deltas are vault balances now, as on-chain.
      this.#pitBalances(a).forEach((v, i) => (a.vault[i] = v));
      a.lots = PAIRS.map(() => 0);
      a.quoteDelta = 0n;
      a.reprompted = false;
    }
  }

  /** Closing cancels every order: the books empty. */
  #closeBooks(): void {
    PAIRS.forEach((p, pi) => {
      this.#sides[pi]!.bids.clear();
      this.#sides[pi]!.asks.clear();
      this.#books.set(p.wire.symbol, this.#bookOf(pi, 10));
    });
  }

  /** One settlement transaction per step: begin (root and fill log), each batch, finalize. Returns whether it finalized. */
  #settleStep(): boolean {
    const s = this.#settlement;
    if (s === null) return true;
    const tx = (step: string) => s.transactions.push({ step, nonce: s.transactions.length, hash: this.#hex(), status: "confirmed", block: 100 + s.transactions.length });
    if (s.status === "planned") {
      const body = JSON.stringify({ sessionId: s.sessionId, events: this.#trades });
      this.#fillLog = { sessionId: s.sessionId, body, hash: keccak256(stringToHex(body)) };
      s.status = "begun";
      s.batchRoot = this.#hex();
      s.fillLogHash = this.#fillLog.hash;
      tx("begin");
    } else if (s.batchesConfirmed < s.batchCount) {
      s.batchesConfirmed += 1;
      tx(`batch-${s.batchesConfirmed - 1}`);
    } else {
      s.status = "finalized";
      tx("finalize");
      this.#publishTopPrompts(s.sessionId, false);
    }
    s.onChain = { phase: s.status === "finalized" ? "Finalized" : "Settling", batchesPosted: s.batchesConfirmed, batchCount: s.batchCount };
    this.#queue.push({ type: "settlement", ...structuredClone(s) });
    return s.status === "finalized";
  }

  /** The top 10 prompts of a session by PnL; `invented` PnL for sessions before the script. */
  #publishTopPrompts(sessionId: number, invented: boolean): void {
    const rows = this.#accounts
      .flatMap((a) => (a.prompt === null ? [] : [{ a, prompt: a.prompt, pnl: invented ? BigInt(Math.floor((this.#rand.next() - 0.35) * 900_000_000)) : this.#pnl(a) }]))
      .sort((x, y) => (y.pnl > x.pnl ? 1 : y.pnl < x.pnl ? -1 : x.a.id - y.a.id))
      .slice(0, 10)
      .map((r, i) => ({ sessionId, rank: i + 1, account: r.a.address, brokerId: r.a.broker, prompt: r.prompt, pnl: r.pnl.toString() }));
    this.#topPrompts = [...rows, ...this.#topPrompts].filter((p) => p.sessionId > sessionId - 5).sort((x, y) => y.sessionId - x.sessionId || x.rank - y.rank);
  }

  #tradeStep(): void {
    const traders = this.#accounts.filter((a) => a.demo);
    PAIRS.forEach((p, pi) => {
      const ref = p.wire.referencePriceTicks;
      const fair = this.#fair[pi]!;
      // A random walk pulled gently back to the reference price.
      const f = fair * (1 + this.#gauss() * p.vol) + (ref - fair) * 0.01;
      this.#fair[pi] = f;
      const anchor = Math.round(f / p.spacing) * p.spacing;
      const takers = this.#rand.chance(0.7) ? this.#rand.int(1, 3) : 0;
      for (let k = 0; k < takers; k++) {
        const bias = Math.max(-0.3, Math.min(0.3, (f - this.#mid(pi)) / (p.spacing * 4)));
        const side = this.#rand.chance(0.5 + bias) ? "buy" : "sell";
        const want = 1 + Math.floor(this.#rand.next() ** 2 * 90);
        this.#sweep(pi, side, want, this.#rand.pick(traders), traders, this.#now - this.#stepMs + Math.floor(((k + 1) * this.#stepMs) / (takers + 1)));
      }
      this.#requote(pi, anchor, traders);
      this.#books.set(p.wire.symbol, this.#bookOf(pi, 10));
    });
    if (this.#rand.chance(0.75)) this.#shoutRandom(traders);
    if (this.#rand.chance(0.3)) this.#shoutRandom(traders);
  }

  /** A taker order of `want` lots through the opposite side, best price first. */
  #sweep(pi: number, side: "buy" | "sell", want: number, taker: SimAccount, traders: SimAccount[], ts: number): void {
    const p = PAIRS[pi]!;
    const opposite = side === "buy" ? this.#sides[pi]!.asks : this.#sides[pi]!.bids;
    const prices = [...opposite.keys()].sort((a, b) => (side === "buy" ? a - b : b - a));
    for (const price of prices) {
      if (want <= 0) break;
      const level = opposite.get(price)!;
      const size = Math.min(want, level.size);
      let maker = this.#rand.pick(traders);
      if (maker === taker) maker = traders[(traders.indexOf(taker) + 1) % traders.length]!;
      const trade: TradeWire = { pair: p.wire.symbol, price, size, takerSide: side, maker: maker.id, taker: taker.id, ts, seq: this.#nextTradeSeq++ };
      this.#trades.push(trade);
      this.#fills.push(trade);
      const sign = side === "buy" ? 1 : -1;
      const quote = BigInt(sign) * BigInt(price) * BigInt(size) * BigInt(p.wire.quotePerTickLot);
      taker.lots[pi] = taker.lots[pi]! + sign * size;
      taker.quoteDelta -= quote;
      maker.lots[pi] = maker.lots[pi]! - sign * size;
      maker.quoteDelta += quote;
      want -= size;
      level.size -= size;
      if (level.size <= 0) opposite.delete(price);
    }
  }

  /** Cancels levels through or far from the anchor, fills the ladder back in, and churns a few sizes. */
  #requote(pi: number, anchor: number, traders: SimAccount[]): void {
    const p = PAIRS[pi]!;
    const { bids, asks } = this.#sides[pi]!;
    const order = (event: "accepted" | "cancelled", side: "buy" | "sell", price: number, size: number) => {
      const a = this.#rand.pick(traders);
      const base = { event, orderId: this.#nextOrderId++, account: a.address, accountId: a.id, pair: p.wire.symbol, side, orderType: "limit" as const, price, size, ts: this.#now };
      this.#orders.push(event === "cancelled" ? { ...base, reason: "requote" } : base);
    };
    for (const [price, level] of bids) {
      if (price >= anchor || price < anchor - p.spacing * 24) {
        bids.delete(price);
        order("cancelled", "buy", price, level.size);
      }
    }
    for (const [price, level] of asks) {
      if (price <= anchor || price > anchor + p.spacing * 24) {
        asks.delete(price);
        order("cancelled", "sell", price, level.size);
      }
    }
    // Deeper levels bigger, as a real book looks.
    for (let k = 1; k <= 16; k++) {
      for (const [levels, price, side] of [
        [bids, anchor - k * p.spacing, "buy"],
        [asks, anchor + k * p.spacing, "sell"],
      ] as const) {
        if (levels.has(price) || (k > 1 && this.#rand.chance(0.12))) continue;
        const size = Math.max(1, Math.round((4 + this.#rand.next() * 60) * (1 + k / 4)));
        levels.set(price, { size, orders: this.#rand.int(1, 4) });
        if (k <= 3) order("accepted", side, price, size);
      }
    }
    for (const levels of [bids, asks]) {
      for (const level of levels.values()) {
        if (this.#rand.chance(0.15)) {
          level.size = Math.max(1, Math.round(level.size * (0.6 + this.#rand.next() * 0.9)));
          level.orders = Math.max(1, level.orders + (this.#rand.chance(0.5) ? -1 : 1));
        }
      }
    }
  }

  #shoutRandom(traders: SimAccount[]): void {
    const a = this.#rand.pick(traders);
    const pi = this.#rand.int(0, PAIRS.length - 1);
    const p = PAIRS[pi]!;
    const book = this.#bookOf(pi, 1);
    const lines = SHOUTS[a.broker ?? ""] ?? SHOUTS["market-maker"]!;
    const wholeTokens = (BigInt(this.#rand.int(5, 44)) * BigInt(p.wire.lotSize)) / 10n ** BigInt(p.wire.baseDecimals);
    const line = this.#rand
      .pick(lines)
      .replaceAll("{pair}", p.wire.symbol)
      .replaceAll("{base}", p.wire.base)
      .replaceAll("{bid}", book.bids[0] ? priceText(p, book.bids[0].price) : p.wire.referencePrice)
      .replaceAll("{ask}", book.asks[0] ? priceText(p, book.asks[0].price) : p.wire.referencePrice)
      .replaceAll("{size}", wholeTokens.toString());
    this.#recordOutcry({ account: a.address, accountId: a.id, broker: a.broker ?? "", line, ts: this.#now });
  }

  // ---------------------------------------------------------------- requests for quote (the engine's events)

  #rfqChanged(): void {
    this.#version++;
    this.#flush();
  }

  #account(id: number): SimAccount {
    const a = this.#accounts.find((x) => x.id === id);
    if (a === undefined) throw new Error(`no account #${id}`);
    return a;
  }

  #openRequest(id: number): SimRequest {
    const r = this.#requests.get(id);
    if (r === undefined) throw new Error(`no open request ${id}`);
    return r;
  }

  /** The sweep (rfq_expire) the keeper sends each tick: due quotes first, then due requests with their quotes. */
  #expireRfq(): void {
    for (const r of this.#requests.values()) {
      for (const q of r.quotes.filter((x) => x.validUntil <= this.#now)) this.#endQuote(r, q, "request_expired");
    }
    for (const r of [...this.#requests.values()]) if (r.expiresAt <= this.#now) this.#closeRequest(r, "request_expired", "request_ended");
  }

  #endQuote(r: SimRequest, q: RfqQuoteWire, type: "request_expired" | "request_cancelled", reason?: string): void {
    r.quotes.splice(r.quotes.indexOf(q), 1);
    if (r.lockedBy === q.quoter && reason !== "replaced") r.lockedBy = null;
    const end = { requestId: r.requestId, quoteId: q.quoteId, pair: r.pair, accountId: q.quoter, side: q.side, remaining: q.size, ts: this.#now };
    this.#queue.push(type === "request_expired" ? { type, ...end } : { type, ...end, reason: reason ?? "user" });
  }

  /** Ends a request after its quotes; `type` null when quote_accepted already said it ended. */
  #closeRequest(r: SimRequest, type: "request_expired" | "request_cancelled" | null, quoteReason: string, reason = "user"): void {
    for (const q of [...r.quotes]) this.#endQuote(r, q, "request_cancelled", quoteReason);
    this.#requests.delete(r.requestId);
    if (type === null) return;
    const end = { requestId: r.requestId, quoteId: null, pair: r.pair, accountId: r.accountId, side: r.side, remaining: r.remaining, ts: this.#now };
    this.#queue.push(type === "request_expired" ? { type, ...end } : { type, ...end, reason });
  }

  /** One block trade at the quote's price: the requester takes, the quoter makes; on the tape, off the book. */
  #blockTrade(r: SimRequest, q: RfqQuoteWire, lots: number): void {
    const pi = PAIRS.findIndex((p) => p.wire.symbol === r.pair);
    const p = PAIRS[pi]!;
    const trade: TradeWire = { pair: r.pair, price: q.price, size: lots, takerSide: r.side, maker: q.quoter, taker: r.accountId, ts: this.#now, seq: this.#nextTradeSeq++, block: true };
    this.#trades.push(trade);
    this.#queue.push({ type: "block_trade", ...trade });
    const sign = r.side === "buy" ? 1 : -1;
    const quote = BigInt(sign) * BigInt(q.price) * BigInt(lots) * BigInt(p.wire.quotePerTickLot);
    const taker = this.#account(r.accountId);
    const maker = this.#account(q.quoter);
    taker.lots[pi] = taker.lots[pi]! + sign * lots;
    taker.quoteDelta -= quote;
    maker.lots[pi] = maker.lots[pi]! - sign * lots;
    maker.quoteDelta += quote;
  }

  #recordOutcry(entry: OutcryWire): void {
    this.#outcry.push(entry);
    if (this.#outcry.length > 500) this.#outcry.splice(0, this.#outcry.length - 500);
    this.#cries.push(entry);
    this.#version++;
  }

  // ---------------------------------------------------------------- views and arithmetic

  #bookOf(pi: number, levels: number): BookWire {
    const side = (m: Map<number, Level>, desc: boolean) =>
      [...m.entries()]
        .sort((a, b) => (desc ? b[0] - a[0] : a[0] - b[0]))
        .slice(0, levels)
        .map(([price, l]) => ({ price, size: l.size, orders: l.orders }));
    const bids = side(this.#sides[pi]!.bids, true);
    const asks = side(this.#sides[pi]!.asks, false);
    const mid = bids[0] && asks[0] ? (bids[0].price + asks[0].price) / 2 : null;
    return { pair: PAIRS[pi]!.wire.symbol, bids, asks, mid, mark: mid === null ? null : Math.round(mid), ts: this.#now };
  }

  #snapshot(): Omit<Hello, "type"> {
    const books: Record<string, BookWire> = {};
    const trades: Record<string, TradeWire[]> = {};
    PAIRS.forEach((p, pi) => {
      books[p.wire.symbol] = this.#bookOf(pi, 10);
      trades[p.wire.symbol] = this.#trades.filter((t) => t.pair === p.wire.symbol).slice(-50).reverse();
    });
    return { session: this.session(), books, trades, outcry: this.outcry(50), leaderboard: this.leaderboard(), serverTime: this.#now };
  }

  /** One flush: the step's messages, serialized once, to every subscriber. */
  #flush(): void {
    const out: StreamMessage[] = this.#queue;
    const orders = this.#orders;
    const fills = this.#fills;
    const cries = this.#cries;
    if (orders.length > 0) out.push({ type: "order", ...orders[orders.length - 1]!, items: orders });
    if (fills.length > 0) out.push({ type: "fill", ...fills[fills.length - 1]!, items: fills });
    if (cries.length > 0) out.push({ type: "outcry", ...cries[cries.length - 1]!, items: cries });
    for (const b of this.#books.values()) out.push({ type: "book", ...b });
    this.#queue = [];
    this.#orders = [];
    this.#fills = [];
    this.#cries = [];
    this.#books.clear();
    this.#fanout.write(out.map((m) => JSON.stringify(m)));
  }

  #mid(pi: number): number {
    const { bids, asks } = this.#sides[pi]!;
    if (bids.size === 0 || asks.size === 0) return this.#fair[pi]!;
    return (Math.max(...bids.keys()) + Math.min(...asks.keys())) / 2;
  }

  #pnl(a: SimAccount): bigint {
    let v = a.quoteDelta;
    a.lots.forEach((lots, pi) => {
      v += BigInt(lots) * BigInt(Math.round(this.#mid(pi))) * BigInt(PAIRS[pi]!.wire.quotePerTickLot);
    });
    return v;
  }

  /** Vault balances at the mid, plus this session's PnL, in USDC base units. */
  #equity(a: SimAccount): bigint {
    let v = a.vault[USDC.index]! + this.#pnl(a);
    PAIRS.forEach((p, pi) => {
      v += (a.vault[p.wire.baseIndex]! * BigInt(Math.round(this.#mid(pi))) * BigInt(p.wire.quotePerTickLot)) / BigInt(p.wire.lotSize);
    });
    return v;
  }

  /** Vault balances plus this session's deltas, per token index (the account route's `amount`). */
  #pitBalances(a: SimAccount): bigint[] {
    const pit = [...a.vault];
    PAIRS.forEach((p, pi) => {
      pit[p.wire.baseIndex] = pit[p.wire.baseIndex]! + BigInt(a.lots[pi]!) * BigInt(p.wire.lotSize);
    });
    pit[USDC.index] = pit[USDC.index]! + a.quoteDelta;
    return pit;
  }

  #gauss(): number {
    return (this.#rand.next() + this.#rand.next() + this.#rand.next() + this.#rand.next() - 2) * 1.22;
  }

  #hex(): Hex {
    return `0x${Array.from({ length: 64 }, () => this.#rand.int(0, 15).toString(16)).join("")}`;
  }

  #randomAddress(): Address {
    return getAddress(`0x${Array.from({ length: 40 }, () => this.#rand.int(0, 15).toString(16)).join("")}`);
  }

  #accountOf(address: string): SimAccount | undefined {
    return this.#accounts.find((a) => a.address.toLowerCase() === address.toLowerCase());
  }

  #addAccount(address: Address, broker: string | null, prompt: string | null, demo: boolean): SimAccount {
    const vault = TOKENS.map((t, i) => (demo ? (i === 0 ? 10_000n : BigInt(this.#rand.int(0, 49_999))) * 10n ** BigInt(t.decimals) : 0n));
    // Ids 1 and 2 are the treasury and the insurance fund, as the keeper registers them first.
    const a: SimAccount = { id: this.#accounts.length + 3, address, broker, prompt, pairs: PAIRS.map((p) => p.wire.symbol), reprompted: false, vault, lots: PAIRS.map(() => 0), quoteDelta: 0n, demo };
    this.#accounts.push(a);
    return a;
  }
}

function nonceKey(account: string, nonce: string): string {
  return `${account.toLowerCase()}:${nonce}`;
}
