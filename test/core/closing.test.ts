import { expect } from "chai";
import { closingCross, type ClosingAccount, type ClosingInput } from "../../keeper/core/closing.ts";
import { InvariantError } from "../../keeper/core/errors.ts";
import { Prng } from "../../keeper/core/prng.ts";

// One quote asset (index 0) and one base asset (index 1); one base unit is worth 10 quote units.
const T = 90; // treasury
const I = 91; // insurance
function input(accounts: [number, bigint[], bigint[]?][], pairs = [{ id: 1, baseIndex: 1, priceNum: 10n, priceDen: 1n }]): ClosingInput {
  return {
    assetIds: [0, 1, 2].slice(0, accounts[0]![1].length),
    quoteIndex: 0,
    pairs,
    accounts: accounts.map(([user, balances, net]): ClosingAccount => ({ user, balances, net: net ?? balances })),
    treasury: T,
    insurance: I,
  };
}

describe("closingCross", () => {
  it("buys back shorts from holders pro rata, remainder to the lower account id, at the closing price", () => {
    const r = closingCross(input([[1, [100n, -3n]], [2, [0n, 5n]], [3, [0n, 5n]], [4, [50n, 0n]]]));
    expect(r.balances).to.deep.equal([[70n, 0n], [20n, 3n], [10n, 4n], [50n, 0n]]);
    expect(r.bankruptUsers).to.deep.equal([]);
    expect(r.adjustments.filter((a) => a.user === 2)).to.deep.equal([
      { step: "cover_short", pair: 1, user: 2, asset: 1, amount: -2n },
      { step: "cover_short", pair: 1, user: 2, asset: 0, amount: 20n },
    ]);
  });

  it("covers borrowed quote by selling just enough base to the quote holders pro rata", () => {
    const r = closingCross(input([[1, [-25n, 10n]], [2, [100n, 0n]], [3, [300n, 0n]]]));
    expect(r.balances).to.deep.equal([[5n, 7n], [92n, 1n], [278n, 2n]]);
  });

  it("rounds the short's payment up and the seller's proceeds down (closing price not a whole unit)", () => {
    const pairs = [{ id: 1, baseIndex: 1, priceNum: 7n, priceDen: 2n }]; // 3.5 quote per base unit
    const r = closingCross(input([[1, [100n, -3n]], [2, [0n, 5n]]], pairs));
    expect(r.balances).to.deep.equal([[89n, 0n], [11n, 2n]]); // pays ceil(10.5) = 11
    const q = closingCross(input([[1, [-4n, 10n]], [2, [100n, 0n]]], pairs));
    expect(q.balances).to.deep.equal([[3n, 8n], [93n, 2n]]); // sells ceil(4 / 3.5) = 2 for floor(7) = 7
  });

  it("pays a bankrupt account's deficit from insurance, then the winners pro rata to PnL", () => {
    const r = closingCross(
      input([
        [1, [-100n, 0n], [50n, 0n]], // bankrupt: deposited 50, owes 100
        [5, [10n, 0n], [20n, 0n]], // a loser: pays nothing
        [6, [200n, 0n], [100n, 0n]], // winner +100
        [7, [120n, 0n], [100n, 0n]], // winner +20
        [T, [5n, 0n], [0n, 0n]],
        [I, [30n, 0n], [30n, 0n]],
      ]),
    );
    expect(r.bankruptUsers).to.deep.equal([1]);
    expect(r.balances.map((b) => b[0])).to.deep.equal([0n, 10n, 142n, 108n, 5n, 0n]);
    expect(r.adjustments.filter((a) => a.step === "insurance").map((a) => [a.user, a.amount])).to.deep.equal([[I, -30n], [1, 30n]]);
  });

  it("falls back to every holder of quote when the winners hold too little", () => {
    const r = closingCross(input([[1, [-300n, 0n], [0n, 0n]], [6, [150n, 0n], [100n, 0n]], [7, [400n, 0n], [500n, 0n]]]));
    expect(r.balances.map((b) => b[0])).to.deep.equal([0n, 50n, 200n]);
  });

  it("sells a deficit account's base before calling it bankrupt, then covers the rest", () => {
    // owes 100 quote, holds 3 base worth 30: sells them, still -70
    const r = closingCross(input([[1, [-100n, 3n], [10n, 0n]], [2, [500n, 0n], [400n, 0n]], [I, [20n, 0n]]]));
    expect(r.bankruptUsers).to.deep.equal([1]);
    expect(r.balances).to.deep.equal([[0n, 0n], [420n, 3n], [0n, 0n]]);
  });

  it("never leaves a negative balance and never changes a total (random books)", () => {
    const rng = new Prng(11);
    const pairs = [
      { id: 1, baseIndex: 1, priceNum: 13n, priceDen: 3n },
      { id: 2, baseIndex: 2, priceNum: 1_000_003n, priceDen: 1000n },
    ];
    for (let round = 0; round < 300; round++) {
      const n = rng.int(2, 12);
      const rows: [number, bigint[], bigint[]][] = [];
      for (let u = 0; u < n; u++) {
        const bal = [0, 1, 2].map(() => BigInt(rng.int(-1000, 3000)));
        rows.push([u === 0 ? I : u === 1 ? T : u + 100, bal, bal.map((x) => (x > 0n ? x : 0n))]);
      }
      rows.sort((a, b) => a[0] - b[0]);
      // each asset's total must be >= 0 (the vault holds the net deposits)
      for (let a = 0; a < 3; a++) {
        const total = rows.reduce((s, r) => s + r[1][a]!, 0n);
        if (total < 0n) rows[rows.length - 1]![1][a]! -= total;
      }
      const inp = input(rows, pairs);
      const r = closingCross(inp);
      for (const row of r.balances) for (const x of row) expect(x >= 0n).to.equal(true);
      for (let a = 0; a < 3; a++) {
        const before = rows.reduce((s, x) => s + x[1][a]!, 0n);
        expect(r.balances.reduce((s, x) => s + x[a]!, 0n)).to.equal(before);
      }
      // the adjustments explain every change
      rows.forEach(([user, bal], i) => {
        for (let a = 0; a < 3; a++) {
          const moved = r.adjustments.filter((x) => x.user === user && x.asset === a).reduce((s, x) => s + x.amount, 0n);
          expect(bal[a]! + moved).to.equal(r.balances[i]![a]);
        }
      });
    }
  });

  it("throws InvariantError when holders cannot cover the shorts (a broken ledger)", () => {
    expect(() => closingCross(input([[1, [100n, -3n]], [2, [0n, 2n]]]))).to.throw(InvariantError);
  });
});
