// The closing cross: after every order is cancelled, turn every liability into nothing at the
// closing prices, so no account ends the session owing anything. Pure bigint arithmetic in vault
// base units. Deterministic: accounts in AccountId order, pairs in config order, pro-rata shares
// by largest remainder with ties to the lower AccountId (int-math.ts proRata). The total of every
// asset is unchanged (every step moves an asset between accounts) and asserted at the end.
//
// CLOSING PRICE of a pair (margin.ts markTicks, the very function behind every mark):
//   the pit's mid at the close, floor((best bid + best ask) / 2) in whole ticks, as the book stands
//   when end_trading arrives (before its orders are cancelled); when a side of the book is empty,
//   the session's last trade price; when the pair never traded, the session reference price.
//   Then clamped to the pair's mark band, the band every mark of the session is clamped to:
//     [markLow, markHigh] = [max(1, ceil(ref * (10^4 - markBandBps) / 10^4)),
//                            floor(ref * (10^4 + markBandBps) / 10^4)],   ref = reference price
//   (config.ts bandLow / bandHigh; engine.ts markOf). One wild quote at the bell moves the close
//   no further than it could move a mark. In vault base units the price is
//   P = priceTicks * quotePerTickLot * quoteUnit / baseUnit quote per base unit (priceNum / priceDen).
//
// WORDS. For account i and asset a: b = balance now; n = the session's net deposit (the opening
// balance, which enters as a deposit, plus deposits minus withdrawals); g = b - n, the account's
// in-session gain in a (fills, fees, liquidation fees and this cross). An account "gained a" when
// g > 0. PnL = the gains valued at the closing prices, g_quote + sum_p g_base(p) * P_p (an exact
// fraction; rounded down to whole quote base units where an integer is needed).
//
// TWO FACTS the engine guarantees, on which everything rests:
//  (F1) sum_i g_i = 0 for every asset at every moment. A deposit or withdrawal moves b and n
//       together; a fill moves base from seller to buyer and quote from buyer to seller, with the
//       fees to the treasury; a liquidation fee moves quote to the insurance account; every step
//       below moves an asset from one account to another: trades conserve each asset.
//  (F2) n_i >= 0: opening balances enter as deposits, and a withdrawal never exceeds n (engine.ts
//       withdraw; the vault refuses the same, since a permit debits the on-chain balance, which is
//       n). closingCross refuses input that breaks it.
// Hence, in any asset, whoever owes (b < 0) has lost at least what it owes (g = b - n <= b < 0),
// and whoever gained holds its gain (b = n + g >= g > 0).
// LEMMA (the gainers can always pay). For every asset at every moment,
//     sum over accounts with g > 0 of g  =  sum over accounts with g < 0 of -g     (F1)
//                                       >=  sum over accounts with b < 0 of -b     (F2),
// so the session's gainers of an asset, each giving at most its gain, together cover everything
// owed in that asset; none of them owes any of it, and each holds what it gives.
// COROLLARY. An account that traded nothing (no fill, so g = 0 in every asset and PnL = 0) is
// never drawn on below: every step draws only on accounts with g > 0 or PnL >= 1, except step 3a,
// which draws on the insurance account's fund. It ends the session with exactly n: opening
// balances plus deposits minus withdrawals. (Property-tested on random ledgers and on random
// sessions through the engine, bankruptcies included: test/core/closing.test.ts.)
//
// STEPS
// 1. cover_short, per pair: every account short the base (b < 0) receives exactly what it owes,
//    from the accounts that gained the base, pro rata to that gain and each at most it (the
//    lemma: enough). It pays ceil(owed * P) quote (rounded against the debtor), which goes to
//    those accounts pro rata to what each gave.
// 2. cover_quote, per pair: every account with negative quote sells the fewest base units that
//    cover its deficit, ceil(deficit / P), for exactly its deficit (rounded against the debtor by
//    less than one base unit); when that is more than it holds, all it holds for floor(held * P)
//    (a holding worth less than one quote base unit cannot be sold and stays). The buyers are the
//    accounts that gained quote, pro rata to that gain and each paying at most it (the lemma:
//    enough, as proceeds never exceed deficits); they receive the base pro rata to what they paid.
// 3. Whoever still has negative quote holds nothing worth one quote unit: it is bankrupt. Its
//    deficit is paid, in this order:
//    a. insurance: the insurance account pays min(total deficit, its quote).
//    b. socialized: the session's winners, every account with PnL >= 1 at the closing prices
//       (the treasury, whose PnL is the fees, included, and insurance if it still has a PnL >= 1;
//       bankrupt accounts excluded), pay
//       pro rata to floor(PnL), each at most floor(PnL): from its quote, and for the rest by
//       selling base, as in step 2, to the accounts that gained quote (a trade at the closing
//       price, so the buyers lose nothing). A winner can always raise its share: it holds
//       b >= g in every asset (F2), worth at least its PnL.
//       Why the winners suffice: PnLs sum to exactly zero over all accounts (F1, exact fractions,
//       treasury and insurance included); a bankrupt account's PnL is at most -(its deficit) +
//       rho, rho < 1 per pair being the value of its unsellable remnants (n >= 0); every other
//       non-winner has PnL < 1. So the winners' PnLs sum to more than the deficit left after
//       insurance, minus the remnants, minus one per non-winner (PnLs in (0, 1) that round to
//       nothing).
//    c. socialized, the rounding: what remains after b, R, comes only from rounding to whole
//       quote base units: PnLs rounded down (< 1 per account), remnants of bankrupt accounts
//       (< 1 per pair each) and base holdings sold whole for floor(held * P) (< 1 per pair per
//       winner). So R < (accounts + bankrupt accounts * pairs + winners * pairs) quote base units
//       (micro-USDC). It is paid by the accounts that gained quote, pro rata to that gain, each at
//       most it: always enough, by the lemma in quote. ClosingResult.rounding reports R.
// After the three steps every balance is >= 0 (asserted).

import { InvariantError } from "./errors.ts";
import { ceilDiv, floorDiv, lcm, proRata } from "./int-math.ts";
import type { AccountId, AssetId, ClosingAdjustment, PairId } from "./types.ts";

export interface ClosingPair {
  readonly id: PairId;
  /** Dense index of the base asset. */
  readonly baseIndex: number;
  /** Closing price: priceNum / priceDen quote base units per base base unit (both > 0). */
  readonly priceNum: bigint;
  readonly priceDen: bigint;
}

export interface ClosingAccount {
  readonly user: AccountId;
  /** Base units by dense asset index (negative: liability). */
  readonly balances: readonly bigint[];
  /**
   * The session's net deposit by dense asset index: opening balance (loaded as a deposit) plus
   * deposits minus withdrawals. Never negative (F2). balances - net is the in-session gain.
   */
  readonly net: readonly bigint[];
}

export interface ClosingInput {
  /** AssetId by dense asset index. */
  readonly assetIds: readonly AssetId[];
  readonly quoteIndex: number;
  readonly pairs: readonly ClosingPair[];
  /** Sorted by user. */
  readonly accounts: readonly ClosingAccount[];
  readonly treasury: AccountId;
  readonly insurance: AccountId;
}

export interface ClosingResult {
  /** Final balances, same order as input accounts, every one >= 0. */
  readonly balances: readonly (readonly bigint[])[];
  /** Every change, in the order made: steps 1, 2, 3a, 3b, 3c (see the rules above). */
  readonly adjustments: readonly ClosingAdjustment[];
  readonly bankruptUsers: readonly AccountId[];
  /** Quote base units of bankrupt deficits left by rounding and paid in step 3c (usually 0). */
  readonly rounding: bigint;
}

/** Value in quote base units of `amount` base units of each asset at the closing prices (each pair rounded down). */
export function valueAt(input: ClosingInput, amounts: readonly bigint[]): bigint {
  let v = amounts[input.quoteIndex] ?? 0n;
  for (const p of input.pairs) v += floorDiv((amounts[p.baseIndex] ?? 0n) * p.priceNum, p.priceDen);
  return v;
}

/** floor of the exact value in quote base units of `amounts` at the closing prices. */
export function exactValueFloor(input: ClosingInput, amounts: readonly bigint[]): bigint {
  let den = 1n;
  for (const p of input.pairs) den = lcm(den, p.priceDen);
  let num = (amounts[input.quoteIndex] ?? 0n) * den;
  for (const p of input.pairs) num += (amounts[p.baseIndex] ?? 0n) * p.priceNum * (den / p.priceDen);
  return floorDiv(num, den);
}

export function closingCross(input: ClosingInput): ClosingResult {
  const nAssets = input.assetIds.length;
  const qi = input.quoteIndex;
  const users = input.accounts.map((a) => a.user);
  for (let i = 1; i < users.length; i++) {
    if (users[i - 1]! >= users[i]!) throw new InvariantError("closing accounts must be sorted by user, without repeats");
  }
  for (const p of input.pairs) {
    if (p.priceNum <= 0n || p.priceDen <= 0n) throw new InvariantError("a closing price must be positive", { pair: p.id });
  }
  const bal: bigint[][] = [];
  const net: bigint[][] = [];
  for (const a of input.accounts) {
    if (a.balances.length !== nAssets || a.net.length !== nAssets) {
      throw new InvariantError("closing account has the wrong number of assets", { user: a.user });
    }
    a.net.forEach((x, k) => {
      if (x < 0n) throw new InvariantError("a net deposit is negative: a withdrawal exceeded it (F2)", { user: a.user, asset: input.assetIds[k], net: x.toString() });
    });
    bal.push([...a.balances]);
    net.push([...a.net]);
  }
  const n = bal.length;
  const totalsBefore = totals(bal, nAssets);
  const adjustments: ClosingAdjustment[] = [];
  const adjust = (step: ClosingAdjustment["step"], pair: PairId | null, i: number, a: number, amount: bigint): void => {
    if (amount === 0n) return;
    bal[i]![a] = bal[i]![a]! + amount;
    adjustments.push({ step, pair, user: users[i]!, asset: input.assetIds[a]!, amount });
  };
  /** In-session gain of account i in asset a. */
  const gain = (i: number, a: number): bigint => bal[i]![a]! - net[i]![a]!;
  /** The accounts that gained asset a (excluding `skip`), with their gains: who may be drawn on. */
  const gainers = (a: number, skip?: ReadonlySet<number>): [number[], bigint[]] => {
    const who: number[] = [];
    const room: bigint[] = [];
    for (let i = 0; i < n; i++) {
      const g = gain(i, a);
      if (g > 0n && skip?.has(i) !== true) {
        who.push(i);
        room.push(g);
      }
    }
    return [who, room];
  };

  /**
   * Step 2's sale, also used by winners in step 3b: account i sells base of pair p to raise
   * want[i] quote, to the accounts that gained quote. Returns the quote each account raised.
   */
  const sellForQuote = (step: ClosingAdjustment["step"], p: ClosingPair, want: readonly bigint[]): bigint[] => {
    const b = p.baseIndex;
    const raised = new Array<bigint>(n).fill(0n);
    const sellers: number[] = [];
    const sold: bigint[] = [];
    for (let i = 0; i < n; i++) {
      const w = want[i]!;
      const held = bal[i]![b]!;
      if (w <= 0n || held <= 0n) continue;
      let y = ceilDiv(w * p.priceDen, p.priceNum);
      let x = w;
      if (y > held) {
        y = held;
        x = floorDiv(held * p.priceNum, p.priceDen);
      }
      if (x === 0n) continue;
      sellers.push(i);
      sold.push(y);
      raised[i] = x;
    }
    if (sellers.length === 0) return raised;
    const [buyers, room] = gainers(qi, new Set(sellers));
    const totalX = sellers.reduce((s, i) => s + raised[i]!, 0n);
    const totalY = sold.reduce((s, y) => s + y, 0n);
    if (sum(room) < totalX) throw new InvariantError("the quote gainers cannot pay for the base sold (lemma broken)", { pair: p.id });
    const pays = proRata(totalX, room, room);
    const gets = proRata(totalY, pays);
    sellers.forEach((i, k) => {
      adjust(step, p.id, i, b, -sold[k]!);
      adjust(step, p.id, i, qi, raised[i]!);
    });
    buyers.forEach((i, k) => {
      adjust(step, p.id, i, qi, -pays[k]!);
      adjust(step, p.id, i, b, gets[k]!);
    });
    return raised;
  };

  // 1. cover_short
  for (const p of input.pairs) {
    const b = p.baseIndex;
    const shorts: number[] = [];
    for (let i = 0; i < n; i++) if (bal[i]![b]! < 0n) shorts.push(i);
    if (shorts.length === 0) continue;
    const owed = shorts.map((i) => -bal[i]![b]!);
    const totalOwed = sum(owed);
    const [givers, room] = gainers(b);
    if (sum(room) < totalOwed) throw new InvariantError("the gainers of the base hold less than the shorts owe (lemma broken)", { pair: p.id });
    const given = proRata(totalOwed, room, room);
    const paid = owed.map((o) => ceilDiv(o * p.priceNum, p.priceDen));
    const received = proRata(sum(paid), given);
    shorts.forEach((i, k) => {
      adjust("cover_short", p.id, i, b, owed[k]!);
      adjust("cover_short", p.id, i, qi, -paid[k]!);
    });
    givers.forEach((i, k) => {
      adjust("cover_short", p.id, i, b, -given[k]!);
      adjust("cover_short", p.id, i, qi, received[k]!);
    });
  }

  // 2. cover_quote
  for (const p of input.pairs) {
    sellForQuote("cover_quote", p, bal.map((row) => (row[qi]! < 0n ? -row[qi]! : 0n)));
  }

  // 3. bankrupt accounts
  const bankrupt: number[] = [];
  for (let i = 0; i < n; i++) if (bal[i]![qi]! < 0n) bankrupt.push(i);
  const isBankrupt = new Set(bankrupt);
  const deficit = (): bigint => bankrupt.reduce((s, i) => s + -bal[i]![qi]!, 0n);
  /** Moves `amounts[k]` quote from payers[k] to the bankrupt accounts, pro rata to their deficits. */
  const payDeficits = (step: ClosingAdjustment["step"], payers: readonly number[], amounts: readonly bigint[]): void => {
    const total = sum(amounts);
    if (total === 0n) return;
    const owed = bankrupt.map((i) => -bal[i]![qi]!);
    if (total > sum(owed)) throw new InvariantError("paying more than the bankrupt deficits");
    payers.forEach((i, k) => adjust(step, null, i, qi, -amounts[k]!));
    const got = proRata(total, owed, owed);
    bankrupt.forEach((i, k) => adjust(step, null, i, qi, got[k]!));
  };
  let rounding = 0n;
  if (bankrupt.length > 0) {
    // a. insurance
    const ins = users.indexOf(input.insurance);
    if (ins !== -1 && !isBankrupt.has(ins) && bal[ins]![qi]! > 0n) {
      const d = deficit();
      const q = bal[ins]![qi]!;
      payDeficits("insurance", [ins], [d < q ? d : q]);
    }
    // b. the winners, pro rata to PnL
    let left = deficit();
    if (left > 0n) {
      const winners: number[] = [];
      const pnl: bigint[] = [];
      for (let i = 0; i < n; i++) {
        if (isBankrupt.has(i)) continue;
        const v = exactValueFloor(input, bal[i]!.map((_, a) => gain(i, a)));
        if (v <= 0n) continue;
        winners.push(i);
        pnl.push(v);
      }
      const totalPnl = sum(pnl);
      const shares = proRata(left < totalPnl ? left : totalPnl, pnl, pnl);
      const fromQuote = winners.map((i, k) => {
        const q = bal[i]![qi]!;
        return q <= 0n ? 0n : q < shares[k]! ? q : shares[k]!;
      });
      payDeficits("socialized", winners, fromQuote);
      const rest = shares.map((s, k) => s - fromQuote[k]!);
      for (const p of input.pairs) {
        if (rest.every((r) => r === 0n)) break;
        const want = new Array<bigint>(n).fill(0n);
        winners.forEach((i, k) => (want[i] = rest[k]!));
        const raised = sellForQuote("socialized", p, want);
        const paying = winners.map((i) => raised[i]!);
        payDeficits("socialized", winners, paying);
        paying.forEach((x, k) => (rest[k] = rest[k]! - x));
      }
      left = deficit();
    }
    // c. the rounding, by the quote gainers
    if (left > 0n) {
      rounding = left;
      const [payers, room] = gainers(qi);
      if (sum(room) < left) throw new InvariantError("the quote gainers cannot pay the bankrupt deficits (lemma broken)");
      payDeficits("socialized", payers, proRata(left, room, room));
    }
    if (deficit() > 0n) throw new InvariantError("bankrupt deficits left after closing");
  }

  bal.forEach((row, i) =>
    row.forEach((x, a) => {
      if (x < 0n) throw new InvariantError("negative balance after closing", { user: users[i], asset: input.assetIds[a], balance: x.toString() });
    }),
  );
  const totalsAfter = totals(bal, nAssets);
  totalsAfter.forEach((t, a) => {
    if (t !== totalsBefore[a]) throw new InvariantError("closing changed an asset's total", { asset: input.assetIds[a] });
  });
  return { balances: bal, adjustments, bankruptUsers: bankrupt.map((i) => users[i]!), rounding };
}

function sum(xs: readonly bigint[]): bigint {
  let s = 0n;
  for (const x of xs) s += x;
  return s;
}

function totals(bal: readonly (readonly bigint[])[], nAssets: number): bigint[] {
  const t = new Array<bigint>(nAssets).fill(0n);
  for (const row of bal) for (let a = 0; a < nAssets; a++) t[a] = t[a]! + row[a]!;
  return t;
}
