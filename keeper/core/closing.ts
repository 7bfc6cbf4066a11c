// The closing cross: after every order is cancelled, turn every liability into nothing at the
// closing marks, so no account ends the session owing anything. Pure bigint arithmetic in vault
// base units; the total of every asset is unchanged by construction and asserted at the end.
//
// Steps, each deterministic (accounts in AccountId order, pairs in config order, pro-rata
// shares by largest remainder with ties to the lower AccountId):
// 1. cover_short, per pair: every account short the base asset receives exactly what it owes,
//    taken from the holders of the base asset pro rata to their holdings; it pays the closing
//    price for it in quote (rounded up: the forced seller is not short-changed), and the quote
//    goes to those holders pro rata to what each gave. Holders always hold enough: the vault
//    holds the session's net deposits, which withdrawals never let fall below zero.
// 2. cover_quote, per pair: every account with negative quote sells just enough of the pair's
//    base (rounded up, capped at what it holds) at the closing price (proceeds rounded down) to
//    the holders of quote, who pay pro rata to their quote and receive the base pro rata to what
//    they paid.
// 3. Whoever still has negative quote holds no base: its equity is negative (bankrupt). The
//    insurance account covers the deficits first; then the winners (positive PnL at the
//    closing marks, not treasury or insurance) pro rata to their PnL, each at most its PnL and
//    its quote; if that is still short, every other holder of quote pro rata to it.
// After the three steps every balance is >= 0.

import { InvariantError } from "./errors.ts";
import { ceilDiv, floorDiv, proRata } from "./int-math.ts";
import type { AccountId, AssetId, ClosingAdjustment, PairId } from "./types.ts";

export interface ClosingPair {
  readonly id: PairId;
  /** Dense index of the base asset. */
  readonly baseIndex: number;
  /** Closing price: priceNum / priceDen quote base units per base base unit. */
  readonly priceNum: bigint;
  readonly priceDen: bigint;
}

export interface ClosingAccount {
  readonly user: AccountId;
  /** Base units by dense asset index (negative: liability). */
  readonly balances: readonly bigint[];
  /** Net deposits of the session by dense asset index (for PnL). */
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
  readonly adjustments: readonly ClosingAdjustment[];
  readonly bankruptUsers: readonly AccountId[];
}

/** Value in quote base units of `amount` base units of each asset at the closing prices. */
export function valueAt(input: ClosingInput, amounts: readonly bigint[]): bigint {
  let v = amounts[input.quoteIndex] ?? 0n;
  for (const p of input.pairs) v += floorDiv((amounts[p.baseIndex] ?? 0n) * p.priceNum, p.priceDen);
  return v;
}

export function closingCross(input: ClosingInput): ClosingResult {
  const nAssets = input.assetIds.length;
  const bal: bigint[][] = input.accounts.map((a) => {
    if (a.balances.length !== nAssets) throw new InvariantError("closing account has the wrong number of assets", { user: a.user });
    return [...a.balances];
  });
  const totalsBefore = totals(bal, nAssets);
  const adjustments: ClosingAdjustment[] = [];
  const qi = input.quoteIndex;
  const quoteId = input.assetIds[qi]!;
  const users = input.accounts.map((a) => a.user);
  for (let i = 1; i < users.length; i++) {
    if (users[i - 1]! >= users[i]!) throw new InvariantError("closing accounts must be sorted by user, without repeats");
  }
  const adjust = (step: ClosingAdjustment["step"], pair: PairId | null, i: number, a: number, amount: bigint): void => {
    if (amount === 0n) return;
    bal[i]![a] = bal[i]![a]! + amount;
    adjustments.push({ step, pair, user: users[i]!, asset: input.assetIds[a]!, amount });
  };

  // 1. cover_short
  for (const p of input.pairs) {
    const b = p.baseIndex;
    const shorts: number[] = [];
    const holders: number[] = [];
    bal.forEach((row, i) => {
      if (row[b]! < 0n) shorts.push(i);
      else if (row[b]! > 0n) holders.push(i);
    });
    if (shorts.length === 0) continue;
    const owed = shorts.map((i) => -bal[i]![b]!);
    const totalOwed = owed.reduce((s, x) => s + x, 0n);
    const held = holders.map((i) => bal[i]![b]!);
    if (held.reduce((s, x) => s + x, 0n) < totalOwed) {
      throw new InvariantError("more base owed than held at closing", { pair: p.id });
    }
    const given = proRata(totalOwed, held, held);
    const paid = owed.map((o) => ceilDiv(o * p.priceNum, p.priceDen));
    const totalPaid = paid.reduce((s, x) => s + x, 0n);
    const received = proRata(totalPaid, given);
    shorts.forEach((i, k) => {
      adjust("cover_short", p.id, i, b, owed[k]!);
      adjust("cover_short", p.id, i, qi, -paid[k]!);
    });
    holders.forEach((i, k) => {
      adjust("cover_short", p.id, i, b, -given[k]!);
      adjust("cover_short", p.id, i, qi, received[k]!);
    });
  }

  // 2. cover_quote
  for (const p of input.pairs) {
    const b = p.baseIndex;
    const sellers: number[] = [];
    const sold: bigint[] = [];
    const proceeds: bigint[] = [];
    let available = 0n;
    for (const row of bal) if (row[qi]! > 0n) available += row[qi]!;
    bal.forEach((row, i) => {
      const deficit = -row[qi]!;
      if (deficit <= 0n || row[b]! <= 0n || available === 0n) return;
      let y = ceilDiv(deficit * p.priceDen, p.priceNum);
      if (y > row[b]!) y = row[b]!;
      let x = floorDiv(y * p.priceNum, p.priceDen);
      if (x > available) {
        // Holders of quote cannot absorb it all: sell only what they can pay for.
        y = floorDiv(available * p.priceDen, p.priceNum);
        x = floorDiv(y * p.priceNum, p.priceDen);
      }
      if (x === 0n || y === 0n) return;
      available -= x;
      sellers.push(i);
      sold.push(y);
      proceeds.push(x);
    });
    if (sellers.length === 0) continue;
    const buyers: number[] = [];
    bal.forEach((row, i) => {
      if (row[qi]! > 0n) buyers.push(i);
    });
    const quoteHeld = buyers.map((i) => bal[i]![qi]!);
    const totalX = proceeds.reduce((s, x) => s + x, 0n);
    const totalY = sold.reduce((s, x) => s + x, 0n);
    const pays = proRata(totalX, quoteHeld, quoteHeld);
    const gets = proRata(totalY, pays);
    sellers.forEach((i, k) => {
      adjust("cover_quote", p.id, i, b, -sold[k]!);
      adjust("cover_quote", p.id, i, qi, proceeds[k]!);
    });
    buyers.forEach((i, k) => {
      adjust("cover_quote", p.id, i, qi, -pays[k]!);
      adjust("cover_quote", p.id, i, b, gets[k]!);
    });
  }

  // 3. bankrupt accounts
  const bankrupt: number[] = [];
  bal.forEach((row, i) => {
    if (row[qi]! < 0n) bankrupt.push(i);
  });
  if (bankrupt.length > 0) {
    let deficits = bankrupt.map((i) => -bal[i]![qi]!);
    const cover = (step: ClosingAdjustment["step"], payers: number[], weights: bigint[], caps: bigint[]): void => {
      const need = deficits.reduce((s, x) => s + x, 0n);
      const capTotal = caps.reduce((s, x) => s + x, 0n);
      const amount = need < capTotal ? need : capTotal;
      if (amount === 0n) return;
      const pay = proRata(amount, weights, caps);
      payers.forEach((i, k) => adjust(step, null, i, qi, -pay[k]!));
      const got = proRata(amount, deficits, deficits);
      bankrupt.forEach((i, k) => adjust(step, null, i, qi, got[k]!));
      deficits = deficits.map((d, k) => d - got[k]!);
    };
    const ins = users.indexOf(input.insurance);
    if (ins !== -1 && bal[ins]![qi]! > 0n) cover("insurance", [ins], [1n], [bal[ins]![qi]!]);
    const isBankrupt = new Set(bankrupt);
    const winners: number[] = [];
    const pnl: bigint[] = [];
    const caps: bigint[] = [];
    bal.forEach((row, i) => {
      const user = users[i]!;
      if (isBankrupt.has(i) || user === input.treasury || user === input.insurance) return;
      const net = input.accounts[i]!.net;
      const gain = valueAt(input, row.map((x, a) => x - (net[a] ?? 0n)));
      if (gain <= 0n || row[qi]! <= 0n) return;
      winners.push(i);
      pnl.push(gain);
      caps.push(gain < row[qi]! ? gain : row[qi]!);
    });
    cover("socialized", winners, pnl, caps);
    const rest: number[] = [];
    bal.forEach((row, i) => {
      if (!isBankrupt.has(i) && row[qi]! > 0n) rest.push(i);
    });
    const restQuote = rest.map((i) => bal[i]![qi]!);
    cover("socialized", rest, restQuote, restQuote);
    if (deficits.some((d) => d > 0n)) throw new InvariantError("bankrupt deficits exceed the quote held", { quote: quoteId });
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
  return { balances: bal, adjustments, bankruptUsers: bankrupt.map((i) => users[i]!) };
}

function totals(bal: readonly (readonly bigint[])[], nAssets: number): bigint[] {
  const t = new Array<bigint>(nAssets).fill(0n);
  for (const row of bal) for (let a = 0; a < nAssets; a++) t[a] = t[a]! + row[a]!;
  return t;
}
