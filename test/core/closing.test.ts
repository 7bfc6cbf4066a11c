import { expect } from "chai";
import { closingCross, exactValueFloor, type ClosingAccount, type ClosingInput, type ClosingPair, type ClosingResult } from "../../keeper/core/closing.ts";
import type { Command, CommandBody } from "../../keeper/core/commands.ts";
import { bandHigh, bandLow } from "../../keeper/core/config.ts";
import { Engine } from "../../keeper/core/engine.ts";
import { InvariantError } from "../../keeper/core/errors.ts";
import { markTicks } from "../../keeper/core/margin.ts";
import { Prng } from "../../keeper/core/prng.ts";
import type { CommandResult, EngineConfig } from "../../keeper/core/types.ts";
import { DOGE, DOGE_LOT, INSURANCE, PEPE, PEPE_LOT, testConfig, TREASURY, USDC } from "../support/engine.ts";

// Quote is asset index 0; base assets follow. Accounts are written as (user, net deposit, gain):
// balance = net + gain, the way the engine hands them over (closing.ts, "WORDS").
const T = 90; // treasury
const I = 91; // insurance
type Row = [user: number, net: bigint[], gain: bigint[]];
const pair = (priceNum: bigint, priceDen = 1n, id = 1, baseIndex = 1): ClosingPair => ({ id, baseIndex, priceNum, priceDen });
function input(rows: Row[], pairs: ClosingPair[] = [pair(10n)]): ClosingInput {
  const nAssets = rows[0]![1].length;
  return {
    assetIds: Array.from({ length: nAssets }, (_, a) => a),
    quoteIndex: 0,
    pairs,
    accounts: [...rows]
      .sort((a, b) => a[0] - b[0])
      .map(([user, net, gain]): ClosingAccount => ({ user, net, balances: net.map((x, a) => x + gain[a]!) })),
    treasury: T,
    insurance: I,
  };
}
const final = (inp: ClosingInput, r: ClosingResult, user: number) => r.balances[inp.accounts.findIndex((a) => a.user === user)]!;
const moved = (r: ClosingResult, step: string, user: number, asset = 0) =>
  r.adjustments.filter((a) => a.step === step && a.user === user && a.asset === asset).reduce((s, a) => s + a.amount, 0n);

/**
 * Checks a closing against the rules at the top of closing.ts, replaying its adjustments in order:
 * nothing negative, totals kept, every change explained, nobody without a gain touched, every
 * counterparty drawn on at most its gain (or, for the winners, its PnL), the rounding bounded.
 */
function auditClosing(inp: ClosingInput, r: ClosingResult): void {
  const nA = inp.assetIds.length;
  const qi = inp.quoteIndex;
  const rowOf = new Map(inp.accounts.map((a, i) => [a.user, i]));
  const net = inp.accounts.map((a) => a.net);
  const bal = inp.accounts.map((a) => [...a.balances]);
  const gainOf = (i: number, a: number) => bal[i]![a]! - net[i]![a]!;
  r.balances.forEach((row) => row.forEach((x) => expect(x >= 0n, "negative final balance").to.equal(true)));
  for (let a = 0; a < nA; a++) {
    const before = inp.accounts.reduce((s, x) => s + x.balances[a]!, 0n);
    expect(r.balances.reduce((s, x) => s + x[a]!, 0n), `total of asset ${a}`).to.equal(before);
  }
  // nobody who gained nothing in the session is touched (the insurance account pays from its fund)
  inp.accounts.forEach((acc, i) => {
    if (acc.user === inp.insurance || acc.balances.some((b, a) => b !== acc.net[a])) return;
    expect(r.adjustments.filter((x) => x.user === acc.user), `account ${acc.user} gained nothing but was touched`).to.deep.equal([]);
    expect(r.balances[i]).to.deep.equal(acc.net);
  });
  // walk the adjustments block by block (a block: one step and pair, in a row)
  let pnlAt3b: bigint[] | null = null;
  const socializedPaid = new Map<number, bigint>();
  let k = 0;
  while (k < r.adjustments.length) {
    const { step, pair: pid } = r.adjustments[k]!;
    let end = k;
    while (end < r.adjustments.length && r.adjustments[end]!.step === step && r.adjustments[end]!.pair === pid) end++;
    const block = r.adjustments.slice(k, end);
    const start = bal.map((row) => [...row]);
    const startGain = (i: number, a: number) => start[i]![a]! - net[i]![a]!;
    if (step === "socialized" && pnlAt3b === null) pnlAt3b = start.map((_, i) => exactValueFloor(inp, start[i]!.map((_, a) => startGain(i, a))));
    const out = new Map<string, bigint>(); // what each (user, asset) gave in this block
    for (const x of block) {
      const i = rowOf.get(x.user)!;
      bal[i]![inp.assetIds.indexOf(x.asset)] = bal[i]![inp.assetIds.indexOf(x.asset)]! + x.amount;
      if (x.amount < 0n) out.set(`${i}:${x.asset}`, (out.get(`${i}:${x.asset}`) ?? 0n) - x.amount);
    }
    const p = inp.pairs.find((q) => q.id === pid);
    for (const [key, gave] of out) {
      const [i, asset] = key.split(":").map(Number) as [number, number];
      const a = inp.assetIds.indexOf(asset);
      const user = inp.accounts[i]!.user;
      if (step === "cover_short" && a === p!.baseIndex) expect(gave <= startGain(i, a), `cover_short: ${user} gave more base than it gained`).to.equal(true);
      if ((step === "cover_quote" || (step === "socialized" && p !== undefined)) && a === qi) {
        expect(gave <= startGain(i, a), `${step}: ${user} paid more quote than it gained`).to.equal(true);
      }
      if (step === "socialized" && p !== undefined && a !== qi) expect(pnlAt3b![i]! > 0n, `socialized: ${user} sold base but is no winner`).to.equal(true);
      if (step === "cover_quote" && a !== qi) expect(start[i]![qi]! < 0n, `cover_quote: ${user} sold base without a deficit`).to.equal(true);
      if (step === "insurance") expect(user).to.equal(inp.insurance);
      if (step === "socialized" && p === undefined) {
        expect(r.bankruptUsers).to.not.include(user);
        socializedPaid.set(i, (socializedPaid.get(i) ?? 0n) + gave);
      }
    }
    k = end;
  }
  // each winner pays at most its PnL; anything beyond is the reported rounding
  for (const [i, paid] of socializedPaid) {
    const pnl = pnlAt3b![i]!;
    expect(paid <= (pnl > 0n ? pnl : 0n) + r.rounding, `account ${inp.accounts[i]!.user} paid beyond its PnL`).to.equal(true);
  }
  const nP = BigInt(inp.pairs.length);
  const winners = pnlAt3b === null ? 0n : BigInt(pnlAt3b.filter((v) => v > 0n).length);
  // closing.ts 3c: R < accounts + (bankrupt accounts + winners) * pairs
  expect(r.rounding < BigInt(inp.accounts.length) + (BigInt(r.bankruptUsers.length) + winners) * nP, "rounding beyond its bound").to.equal(true);
  // the bankrupt accounts are exactly those left with negative quote after cover_quote, and end at 0
  for (const u of r.bankruptUsers) expect(final(inp, r, u)[qi]).to.equal(0n);
  expect(bal).to.deep.equal(r.balances.map((x) => [...x]));
}

describe("closingCross", () => {
  it("covers a short only from the accounts that gained the base, pro rata to the gain: a holder that never traded gives nothing", () => {
    // 1 sold 3 base short at 10; 2 bought 2 of them, 3 bought 1; 4 deposited 1,000 base and never traded
    const inp = input([
      [1, [100n, 0n], [30n, -3n]],
      [2, [100n, 0n], [-20n, 2n]],
      [3, [50n, 0n], [-10n, 1n]],
      [4, [0n, 1000n], [0n, 0n]],
    ], [pair(12n)]);
    const r = closingCross(inp);
    auditClosing(inp, r);
    expect(r.balances).to.deep.equal([[94n, 0n], [104n, 0n], [52n, 0n], [0n, 1000n]]);
    expect(r.adjustments.filter((a) => a.user === 2)).to.deep.equal([
      { step: "cover_short", pair: 1, user: 2, asset: 1, amount: -2n },
      { step: "cover_short", pair: 1, user: 2, asset: 0, amount: 24n },
    ]);
  });

  it("takes from each gainer pro rata to its gain (so never more than it), remainder ties to the lower account id", () => {
    // 1 owes 5 over gains 1 : 6 : 6 -> 0.38, 2.31, 2.31 -> 1, 2, 2 (largest remainders); 5 sold 8 it held
    const inp = input([
      [1, [100n, 0n], [40n, -5n]],
      [2, [0n, 50n], [0n, 1n]],
      [3, [0n, 0n], [-20n, 6n]],
      [4, [0n, 0n], [-20n, 6n]],
      [5, [0n, 20n], [0n, -8n]],
    ]);
    const r = closingCross(inp);
    auditClosing(inp, r);
    expect([2, 3, 4].map((u) => moved(r, "cover_short", u, 1))).to.deep.equal([-1n, -2n, -2n]);
    // 3 owes 3: 1.5 each, the tie goes to the lower account
    const tie = input([[1, [100n, 0n], [30n, -3n]], [3, [0n, 0n], [-15n, 5n]], [4, [0n, 0n], [-15n, 5n]], [5, [0n, 7n], [0n, -7n]]]);
    expect([3, 4].map((u) => moved(closingCross(tie), "cover_short", u, 1))).to.deep.equal([-2n, -1n]);
  });

  it("covers borrowed quote by selling the fewest base units to the accounts that gained quote, for exactly the deficit", () => {
    // 1 deposited 15 and bought 10 base at 4 from 2; the price falls to 3; 3 never traded
    const inp = input([
      [1, [15n, 0n], [-40n, 10n]],
      [2, [0n, 10n], [40n, -10n]],
      [3, [300n, 0n], [0n, 0n]],
    ], [pair(3n)]);
    const r = closingCross(inp);
    auditClosing(inp, r);
    // owes 25: sells ceil(25 / 3) = 9 base for exactly 25
    expect(r.balances).to.deep.equal([[0n, 1n], [15n, 9n], [300n, 0n]]);
  });

  it("rounds against the debtor: a short pays ceil(owed * P), a seller gives ceil(deficit / P) base (closing price 3.5)", () => {
    const P = [pair(7n, 2n)];
    const r = closingCross(input([[1, [100n, 0n], [9n, -3n]], [2, [20n, 0n], [-9n, 3n]]], P));
    expect(r.balances).to.deep.equal([[98n, 0n], [22n, 0n]]); // pays ceil(10.5) = 11
    const q = closingCross(input([[1, [3n, 0n], [-7n, 2n]], [2, [0n, 2n], [7n, -2n]]], P));
    expect(q.balances).to.deep.equal([[0n, 0n], [3n, 2n]]); // owes 4: gives ceil(4 / 3.5) = 2 for exactly 4
  });

  it("pays a bankrupt account's deficit from insurance, then the winners pro rata to PnL (treasury included), never an untraded account", () => {
    const inp = input([
      [1, [50n, 0n], [-150n, 0n]], // bankrupt: deposited 50, owes 100
      [5, [20n, 0n], [-10n, 0n]], // a loser: pays nothing
      [6, [100n, 0n], [100n, 0n]], // winner +100
      [7, [100n, 0n], [20n, 0n]], // winner +20
      [8, [1000n, 50n], [0n, 0n]], // never traded
      [T, [0n, 0n], [10n, 0n]], // fees +10
      [I, [30n, 0n], [30n, 0n]], // liquidation fees +30, holds 60
    ]);
    const r = closingCross(inp);
    auditClosing(inp, r);
    expect(r.bankruptUsers).to.deep.equal([1]);
    expect(r.rounding).to.equal(0n);
    expect(moved(r, "insurance", I)).to.equal(-60n);
    // 40 left over PnL 100 : 20 : 10 -> 30.8, 6.2, 3.1 -> 31, 6, 3
    expect([6, 7, T].map((u) => moved(r, "socialized", u))).to.deep.equal([-31n, -6n, -3n]);
    expect(r.balances.map((b) => b[0])).to.deep.equal([0n, 10n, 169n, 114n, 1000n, 7n, 0n]);
    expect(final(inp, r, 8)).to.deep.equal([1000n, 50n]);
  });

  it("has a winner that holds only base sell it to the quote gainers at the closing price to pay its share", () => {
    // closing price 1.5. W (6) bought 100 base at 1 from X (5): PnL +50, no quote.
    // B (1) bought 50 base on credit and cannot repay; Y (7) sold it 50 base.
    const inp = input([
      [1, [10n, 0n], [-100n, 50n]],
      [5, [0n, 100n], [100n, -100n]],
      [6, [100n, 0n], [-100n, 100n]],
      [7, [0n, 50n], [100n, -50n]],
    ], [pair(3n, 2n)]);
    const r = closingCross(inp);
    auditClosing(inp, r);
    // cover_quote: B sells its 50 base for 75 to X and Y (quote gainers 100 : 100): 38 + 37, 25 + 25
    expect(r.bankruptUsers).to.deep.equal([1]);
    // deficit 15 over PnL W 50 : Y 25 (X lost): W 10, Y 5. Y pays from quote; W sells
    // ceil(10 / 1.5) = 7 base for exactly 10 to X and Y (quote gains 62 : 58): 5 + 5 quote, 4 + 3 base
    expect(r.adjustments.filter((a) => a.step === "socialized" && a.user === 6)).to.deep.equal([
      { step: "socialized", pair: 1, user: 6, asset: 1, amount: -7n },
      { step: "socialized", pair: 1, user: 6, asset: 0, amount: 10n },
      { step: "socialized", pair: null, user: 6, asset: 0, amount: -10n },
    ]);
    expect(r.balances).to.deep.equal([[0n, 0n], [57n, 29n], [0n, 93n], [53n, 28n]]);
  });

  it("leaves only rounding to the accounts that gained quote, and reports it", () => {
    // closing price 0.5: G (2) and H (3) have PnL +0.5 each, which rounds to nothing
    const inp = input([[1, [0n, 0n], [-1n, 0n]], [2, [0n, 1n], [1n, -1n]], [3, [0n, 0n], [0n, 1n]]], [pair(1n, 2n)]);
    const r = closingCross(inp);
    auditClosing(inp, r);
    expect(r.rounding).to.equal(1n);
    expect(r.balances).to.deep.equal([[0n, 0n], [0n, 0n], [0n, 1n]]);
  });

  it("refuses a negative net deposit, and a ledger whose gainers cannot cover the shorts", () => {
    expect(() => closingCross(input([[1, [-5n, 0n], [5n, 0n]]]))).to.throw(InvariantError, /net deposit/);
    // gains that do not sum to zero: 1 owes 3 base nobody gained
    expect(() => closingCross(input([[1, [100n, 0n], [0n, -3n]], [2, [0n, 2n], [0n, 0n]]]))).to.throw(InvariantError, /gainers/);
  });

  it("keeps every rule on random ledgers whose gains sum to zero (2,000 ledgers, seed 11)", () => {
    const rng = new Prng(11);
    const pairs = [pair(13n, 3n, 1, 1), pair(1_000_003n, 1000n, 2, 2)];
    let bankrupt = 0;
    let socialized = 0;
    let rounding = 0;
    for (let round = 0; round < 2000; round++) {
      // a third of the ledgers in small numbers, where rounding to whole units shows
      const tiny = rng.chance(0.33);
      const n = tiny ? rng.int(2, 3) : rng.int(2, 9);
      const users = [I, T, ...Array.from({ length: n }, (_, u) => u + 1)];
      const net = users.map(() => [0, 1, 2].map(() => (rng.chance(0.3) ? 0n : BigInt(rng.int(0, tiny ? 6 : 3000)))));
      const gain = users.map(() => [0n, 0n, 0n]);
      const traders = users.map((_, i) => i).filter((i) => i >= 2 && rng.chance(0.75));
      // trades at random prices around the closing price, fees to the treasury, liquidation fees to insurance
      for (let t = rng.int(0, 12); t > 0 && traders.length >= 2; t--) {
        const buyer = rng.pick(traders);
        const seller = rng.pick(traders);
        if (buyer === seller) continue;
        const p = rng.int(0, 1);
        const lots = BigInt(rng.int(1, tiny ? 3 : 400));
        const price = (pairs[p]!.priceNum * BigInt(rng.int(20, 180))) / (100n * pairs[p]!.priceDen) + 1n;
        const fee = BigInt(rng.int(0, 3));
        gain[buyer]![p + 1]! += lots;
        gain[seller]![p + 1]! -= lots;
        gain[buyer]![0]! -= lots * price + fee;
        gain[seller]![0]! += lots * price - fee;
        gain[1]![0]! += 2n * fee;
        if (rng.chance(0.1)) {
          gain[seller]![0]! -= 5n;
          gain[0]![0]! += 5n;
        }
      }
      const inp: ClosingInput = {
        assetIds: [0, 1, 2],
        quoteIndex: 0,
        pairs,
        accounts: users
          .map((user, i) => ({ user, net: net[i]!, balances: net[i]!.map((x, a) => x + gain[i]![a]!) }))
          .sort((a, b) => a.user - b.user),
        treasury: T,
        insurance: I,
      };
      const r = closingCross(inp);
      auditClosing(inp, r);
      if (r.bankruptUsers.length > 0) bankrupt++;
      if (r.adjustments.some((a) => a.step === "socialized")) socialized++;
      if (r.rounding > 0n) rounding++;
    }
    // the ledgers reach every step
    expect(bankrupt).to.be.above(400);
    expect(socialized).to.be.above(400);
    expect(rounding).to.be.above(0);
  });
});

describe("markTicks (the marks, and the closing price)", () => {
  // reference 1000, mark band 20%: [800, 1200]
  const mark = (bid: number, ask: number, last: number) => markTicks(bid, ask, last, 1000, 800, 1200);
  it("is the mid in whole ticks (rounded down) when both sides of the book hold orders", () => {
    expect(mark(998, 1004, 1100)).to.equal(1001);
    expect(mark(998, 1003, 0)).to.equal(1000);
  });
  it("clamps the mid to the mark band", () => {
    expect(mark(1400, 1420, 0)).to.equal(1200);
    expect(mark(100, 200, 1000)).to.equal(800);
  });
  it("without a mid, is the last trade price banded, else the reference", () => {
    expect(mark(990, -1, 1050)).to.equal(1050);
    expect(mark(-1, 1010, 1300)).to.equal(1200);
    expect(mark(-1, -1, 700)).to.equal(800);
    expect(mark(990, -1, 0)).to.equal(1000);
    expect(mark(-1, -1, 0)).to.equal(1000);
  });
});

// ---------------------------------------------------------------------------------------------
// The closing cross through the real engine: random sessions with traders (some thin, so margin,
// liquidation and bankruptcy paths run, and the keeper sometimes late with liquidations), accounts
// that only deposit and withdraw and never place an order, deposits and withdrawals mid-session,
// drifting and jumping prices, books left full, one-sided or empty at the bell.

interface SessionRun {
  readonly config: EngineConfig;
  readonly engine: Engine;
  /** The closing cross's input as the engine held it just before close_out. */
  readonly input: ClosingInput;
  /** Opening balances + deposits - withdrawals per user and dense asset index, from the events. */
  readonly nets: ReadonlyMap<number, bigint[]>;
  /** Accounts that never sent a place command. */
  readonly passive: readonly number[];
  /** Per pair: [best bid, best ask, last trade, mark] as end_trading found them. */
  readonly atBell: readonly (readonly [number, number, number, number])[];
  readonly capRefusals: number;
}

function closingSession(seed: number): SessionRun {
  const rng = new Prng(seed);
  const markBandBps = rng.pick([2000, 3000, 4500]);
  const config = testConfig({
    fees: rng.pick([{ makerBps: 0, takerBps: 5 }, { makerBps: -1, takerBps: 5 }, { makerBps: 2, takerBps: 10 }]),
    margin: rng.pick([
      { initialBps: 2000, maintenanceBps: 1000, liquidationFeeBps: 50, liquidationSlippageBps: 1000 },
      { initialBps: 1000, maintenanceBps: 500, liquidationFeeBps: 0, liquidationSlippageBps: 200 },
      { initialBps: 1000, maintenanceBps: 500, liquidationFeeBps: 20, liquidationSlippageBps: 500 },
    ]),
    pairs: testConfig().pairs.map((p) => ({ ...p, markBandBps })),
  });
  const engine = new Engine(config);
  const nA = config.assets.length;
  const nets = new Map<number, bigint[]>();
  let capRefusals = 0;
  let ts = 1000;
  const send = (body: CommandBody): CommandResult => {
    const r = engine.apply({ ...body, seq: engine.nextSeq, ts: ts++ } as Command);
    if (r.ok) {
      for (const ev of r.events) {
        if (ev.kind !== "deposited" && ev.kind !== "withdrawn") continue;
        const row = nets.get(ev.user) ?? new Array<bigint>(nA).fill(0n);
        row[ev.asset] = row[ev.asset]! + (ev.kind === "deposited" ? ev.amount : -ev.amount);
        nets.set(ev.user, row);
      }
    } else if (r.message.includes("at most the net deposit")) capRefusals++;
    return r;
  };
  const baseAmount = (asset: number, maxLots: number) =>
    asset === PEPE ? BigInt(rng.int(0, maxLots)) * PEPE_LOT + BigInt(rng.int(0, 999)) : BigInt(rng.int(0, maxLots)) * DOGE_LOT + BigInt(rng.int(0, 99));
  const traders = Array.from({ length: rng.int(2, 7) }, (_, i) => i + 1);
  const passive = Array.from({ length: rng.int(1, 3) }, (_, i) => 201 + i);
  const everyone = [...traders, ...passive];
  for (const u of traders) {
    const rich = rng.chance(0.5);
    send({ type: "deposit", user: u, asset: USDC, amount: BigInt(rich ? rng.int(50_000, 300_000) : rng.int(300, 5_000)) });
    for (const asset of [PEPE, DOGE]) if (rng.chance(0.4)) send({ type: "deposit", user: u, asset, amount: baseAmount(asset, 60) + 1n });
  }
  for (const u of passive) {
    if (rng.chance(0.7)) send({ type: "deposit", user: u, asset: USDC, amount: BigInt(rng.int(1, 1_000_000)) });
    for (const asset of [PEPE, DOGE]) if (rng.chance(0.8)) send({ type: "deposit", user: u, asset, amount: baseAmount(asset, 1000) + 1n });
  }
  if (rng.chance(0.5)) send({ type: "deposit", user: INSURANCE, asset: USDC, amount: BigInt(rng.int(1, 20_000)) });
  send({ type: "start_trading" });

  const pairs = config.pairs;
  const fair = pairs.map((p) => p.referencePriceTicks);
  const live: number[] = [];
  const lateKeeper = rng.chance(0.5);
  const steps = rng.int(40, 260);
  for (let step = 0; step < steps; step++) {
    const pi = rng.int(0, pairs.length - 1);
    const pair = pairs[pi]!;
    const ref = pair.referencePriceTicks;
    if (rng.chance(0.04)) fair[pi] = Math.round(fair[pi]! * rng.pick([0.7, 0.8, 1.25, 1.4]));
    fair[pi] = Math.round(fair[pi]! + (ref - fair[pi]!) * 0.05 + fair[pi]! * (rng.next() - 0.5) * 0.04);
    fair[pi] = Math.min(Math.max(fair[pi]!, Math.ceil(ref * 0.55)), Math.floor(ref * 1.45));
    const f = fair[pi]!;
    const r = rng.next();
    if (r < 0.55) {
      const user = rng.pick(traders);
      const side = rng.chance(0.5) ? "buy" : "sell";
      const off = rng.int(-2, 6) * Math.max(1, Math.round(f * 0.005));
      const res = send({
        type: "place", user, pair: pair.id, side, orderType: rng.pick(["limit", "limit", "ioc", "post_only"] as const),
        price: side === "buy" ? f - off : f + off, size: rng.int(1, 60),
      });
      if (res.ok && res.order?.status === "resting") live.push(res.order.orderId);
    } else if (r < 0.65 && live.length > 0) {
      const k = rng.int(0, live.length - 1);
      const o = engine.order(live[k]!);
      if (o !== null) send({ type: "cancel", user: o.user, orderId: o.orderId });
      live.splice(k, 1);
    } else if (r < 0.72) {
      const asset = rng.pick([USDC, PEPE, DOGE]);
      send({ type: "deposit", user: rng.pick(everyone), asset, amount: asset === USDC ? BigInt(rng.int(1, 50_000)) : baseAmount(asset, 20) + 1n });
    } else if (r < 0.82) {
      // up to 1.5x the account's net deposit: the engine must refuse the part that is a gain
      const user = rng.pick(everyone);
      const asset = rng.pick([USDC, PEPE, DOGE]);
      const n = nets.get(user)?.[asset] ?? 0n;
      const amount = (n * BigInt(rng.int(1, 150))) / 100n + BigInt(rng.int(0, 3));
      if (amount > 0n) send({ type: "withdraw", user, asset, amount });
    } else {
      // a sweep that moves the price, then (unless the keeper is late) the liquidations due
      const side = rng.chance(0.5) ? "buy" : "sell";
      const price = side === "buy" ? Math.min(Math.round(f * 1.08), Math.floor(ref * 1.49)) : Math.max(Math.round(f * 0.92), Math.ceil(ref * 0.51));
      send({ type: "place", user: rng.pick(traders), pair: pair.id, side, orderType: "ioc", price, size: rng.int(20, 150) });
      if (!lateKeeper || rng.chance(0.3)) for (const liq of engine.liquidationsDue()) send(liq);
    }
  }
  // sometimes a shock just before the bell, too late for any liquidation: quotes far away, and a sweep
  if (rng.chance(0.4)) {
    const pi = rng.int(0, pairs.length - 1);
    const p = pairs[pi]!;
    const up = rng.chance(0.5);
    const far = Math.round(p.referencePriceTicks * (up ? 1.4 : 0.6));
    const user = rng.pick(traders);
    send({ type: "deposit", user, asset: USDC, amount: 100_000_000n });
    send({ type: "deposit", user, asset: p.base, amount: (p.base === PEPE ? PEPE_LOT : DOGE_LOT) * 5000n });
    send({ type: "place", user, pair: p.id, side: up ? "buy" : "sell", orderType: "ioc", price: far, size: 3000 });
    send({ type: "place", user, pair: p.id, side: "buy", orderType: "limit", price: far - 2, size: 10 });
    send({ type: "place", user, pair: p.id, side: "sell", orderType: "limit", price: far + 2, size: 10 });
  }
  // sometimes empty one side (or both) of a book before the bell
  for (const p of pairs) {
    if (rng.chance(0.25)) for (const u of traders) if (rng.chance(0.8)) send({ type: "cancel_all", user: u, pair: p.id });
  }
  const atBell = pairs.map((p) => {
    const last = engine.recentTrades(p.id, 1)[0]?.price ?? 0;
    return [engine.bestBid(p.id) ?? -1, engine.bestAsk(p.id) ?? -1, last, engine.mark(p.id)] as const;
  });
  send({ type: "end_trading" });
  if (rng.chance(0.3)) send({ type: "deposit", user: rng.pick(everyone), asset: USDC, amount: 7n });
  const input: ClosingInput = {
    assetIds: config.assets.map((a) => a.id),
    quoteIndex: 0,
    pairs: pairs.map((p, pi) => ({
      id: p.id,
      baseIndex: config.assets.findIndex((a) => a.id === p.base),
      priceNum: BigInt(atBell[pi]![3]) * BigInt(p.quotePerTickLot),
      priceDen: config.assets.find((a) => a.id === p.base)!.unitBaseUnits,
    })),
    accounts: engine.accounts().map((user) => ({
      user,
      balances: engine.account(user).positions.map((x) => x.baseUnits),
      net: nets.get(user) ?? new Array<bigint>(nA).fill(0n),
    })),
    treasury: TREASURY,
    insurance: INSURANCE,
  };
  const closed = send({ type: "close_out" });
  expect(closed.ok).to.equal(true);
  return { config, engine, input, nets, passive, atBell, capRefusals };
}

describe("the closing cross through the engine (random sessions)", () => {
  it("never touches an account that placed no order, covers every liability from the session's gainers and winners, and prices the close at the banded mark (1,000 sessions, seeds 1000-1999)", () => {
    const seen = { shortsWithPassiveHolders: 0, bankrupt: 0, insurance: 0, socialized: 0, socializedSales: 0, rounding: 0, capRefusals: 0, mid: 0, lastTrade: 0, reference: 0, clamped: 0 };
    for (let seed = 1000; seed < 2000; seed++) {
      const run = closingSession(seed);
      const { config, engine, input } = run;
      const st = engine.closeOut()!;
      const where = `seed ${seed}`;
      // the engine's nets are the events' nets
      for (const acc of engine.snapshot().accounts) expect(acc.net.map(BigInt), where).to.deep.equal(run.nets.get(acc.user) ?? [0n, 0n, 0n]);
      // the engine ran exactly closingCross on that input, and it keeps every rule
      const r = closingCross(input);
      expect(st.adjustments, where).to.deep.equal(r.adjustments);
      expect(st.bankruptUsers, where).to.deep.equal(r.bankruptUsers);
      auditClosing(input, r);
      const balanceOf = (user: number, asset: number) => st.balances.find((b) => b.user === user && b.asset === asset)?.amount ?? 0n;
      // an account that placed no order ends with exactly its opening balances + deposits - withdrawals
      for (const user of run.passive) {
        config.assets.forEach((a, k) => expect(balanceOf(user, a.id), `${where}: account ${user}`).to.equal(run.nets.get(user)?.[k] ?? 0n));
        expect(st.adjustments.filter((x) => x.user === user), where).to.deep.equal([]);
        expect(st.deltas.filter((d) => d.user === user), where).to.deep.equal([]);
      }
      // each asset's total is what the vault holds: the session's net deposits
      config.assets.forEach((a, k) => {
        const held = [...run.nets.values()].reduce((s, row) => s + row[k]!, 0n);
        expect(st.balances.filter((b) => b.asset === a.id).reduce((s, b) => s + b.amount, 0n), where).to.equal(held);
        expect(st.deltas.filter((d) => d.asset === a.id).reduce((s, d) => s + d.delta, 0n), where).to.equal(0n);
      });
      // the closing price: the mid at the bell, else the last trade, else the reference, in the mark band
      config.pairs.forEach((p, pi) => {
        const [bid, ask, last, mark] = run.atBell[pi]!;
        const low = bandLow(p.referencePriceTicks, p.markBandBps);
        const high = bandHigh(p.referencePriceTicks, p.markBandBps);
        expect(st.closingPrices[pi], where).to.deep.equal({ pair: p.id, priceTicks: mark });
        expect(mark, where).to.equal(markTicks(bid, ask, last, p.referencePriceTicks, low, high));
        const raw = bid >= 0 && ask >= 0 ? Math.floor((bid + ask) / 2) : last > 0 ? last : p.referencePriceTicks;
        if (raw < low || raw > high) seen.clamped++;
        else if (bid >= 0 && ask >= 0) seen.mid++;
        else if (last > 0) seen.lastTrade++;
        else seen.reference++;
      });
      const passiveHold = (asset: number) => run.passive.some((u) => (run.nets.get(u)?.[asset] ?? 0n) > 0n);
      if (r.adjustments.some((x) => x.step === "cover_short" && x.amount > 0n && passiveHold(x.asset))) seen.shortsWithPassiveHolders++;
      if (r.bankruptUsers.length > 0) seen.bankrupt++;
      if (r.adjustments.some((x) => x.step === "insurance")) seen.insurance++;
      if (r.adjustments.some((x) => x.step === "socialized")) seen.socialized++;
      if (r.adjustments.some((x) => x.step === "socialized" && x.pair !== null)) seen.socializedSales++;
      if (r.rounding > 0n) seen.rounding++;
      seen.capRefusals += run.capRefusals;
    }
    // the sessions reach what they are meant to test (seeds 1000-1999 give: 915 sessions covering
    // shorts while an untraded account held the base, 79 with bankruptcies, 28 drawing on
    // insurance, 76 on the winners, 52 with winners selling base; 340 withdrawals refused for
    // exceeding the net deposit; closing prices: 788 mids, 698 last trades, 187 references,
    // 327 clamped to the band, over 2,000 pair closes)
    expect(seen.shortsWithPassiveHolders).to.be.above(500);
    expect(seen.bankrupt).to.be.above(50);
    expect(seen.insurance).to.be.above(15);
    expect(seen.socialized).to.be.above(50);
    expect(seen.socializedSales).to.be.above(30);
    expect(seen.capRefusals).to.be.above(200);
    expect(Math.min(seen.mid, seen.lastTrade, seen.reference, seen.clamped)).to.be.above(50);
  });
});
