import { expect } from "chai";
import { InvariantError } from "../../keeper/core/errors.ts";
import { leaderboard, top } from "../../keeper/core/leaderboard.ts";
import { assertNetZero, netDeltas } from "../../keeper/core/netting.ts";

describe("netDeltas", () => {
  it("returns final minus net deposits, non-zero only, sorted by user then asset", () => {
    const d = netDeltas([0, 4], [
      { user: 9, final: [10n, 0n], net: [5n, 3n] },
      { user: 2, final: [0n, 3n], net: [5n, 0n] },
      { user: 5, final: [7n, 7n], net: [7n, 7n] },
    ]);
    expect(d).to.deep.equal([
      { user: 2, asset: 0, delta: -5n },
      { user: 2, asset: 4, delta: 3n },
      { user: 9, asset: 0, delta: 5n },
      { user: 9, asset: 4, delta: -3n },
    ]);
  });

  it("throws InvariantError when a token's deltas do not sum to zero", () => {
    expect(() => netDeltas([0], [{ user: 1, final: [10n], net: [9n] }])).to.throw(InvariantError, /sum to 1/);
    expect(() => assertNetZero([0, 1], [{ user: 1, asset: 1, delta: -1n }])).to.throw(InvariantError);
    expect(() => assertNetZero([0], [{ user: 1, asset: 0, delta: 4n }, { user: 2, asset: 0, delta: -4n }])).to.not.throw();
  });

  it("throws when a delta does not fit the vault's int112", () => {
    const huge = 1n << 111n;
    expect(() => netDeltas([0], [{ user: 1, final: [huge], net: [0n] }, { user: 2, final: [0n], net: [huge] }])).to.throw(InvariantError, /int112/);
  });
});

describe("leaderboard", () => {
  it("ranks by PnL at the closing price, ties to the lower account, without treasury and insurance", () => {
    const half = { num: 1n, den: 2n };
    const board = leaderboard({
      deltas: [
        { user: 3, asset: 0, delta: 10n },
        { user: 1, asset: 0, delta: 4n },
        { user: 1, asset: 1, delta: 12n }, // 12 base at 0.5 = 6
        { user: 2, asset: 0, delta: -20n },
        { user: 90, asset: 0, delta: 6n },
      ],
      stakes: new Map([[1, 100n], [2, 100n], [3, 50n], [4, 0n], [90, 0n]]),
      price: (asset) => (asset === 1 ? half : { num: 1n, den: 1n }),
      exclude: [90],
    });
    expect(board.map((e) => [e.rank, e.user, e.pnl, e.returnBps])).to.deep.equal([
      [1, 1, 10n, 1000],
      [2, 3, 10n, 2000],
      [3, 4, 0n, 0],
      [4, 2, -20n, -2000],
    ]);
  });

  it("top keeps the best ten", () => {
    const stakes = new Map(Array.from({ length: 15 }, (_, i) => [i + 1, 100n] as const));
    const deltas = Array.from({ length: 15 }, (_, i) => ({ user: i + 1, asset: 0, delta: BigInt(i) }));
    const t = top(leaderboard({ deltas, stakes, price: () => ({ num: 1n, den: 1n }), exclude: [] }));
    expect(t.map((e) => e.user)).to.deep.equal([15, 14, 13, 12, 11, 10, 9, 8, 7, 6]);
  });
});
