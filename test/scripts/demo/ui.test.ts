// Number and text formatting of `npm start` (scripts/demo/ui.ts): exact BigInt decimals, excerpts.
import { expect } from "chai";
import { excerpt, formatUnits, table } from "../../../scripts/demo/ui.ts";

describe("npm start output formatting", function () {
  it("prints base units as exact decimals, rounded half away from zero, grouped and signed", function () {
    expect(formatUnits(2_694_999n, 6, 2, true)).to.equal("+2.69");
    expect(formatUnits(2_695_000n, 6, 2, true)).to.equal("+2.70");
    expect(formatUnits(-2_695_000n, 6, 2, true)).to.equal("-2.70");
    expect(formatUnits(-4n, 6, 2, true)).to.equal("0.00");
    expect(formatUnits(1_234_567_890_123n, 6, 4)).to.equal("1,234,567.8901");
    expect(formatUnits(5n, 0, 2)).to.equal("5.00");
    // Far beyond 2^53: no float on the way.
    expect(formatUnits(10n ** 30n + 1n, 18, 18)).to.equal("1,000,000,000,000.000000000000000001");
  });

  it("cuts prompts at a word, on one line", function () {
    expect(excerpt("Make markets,\n  carefully.", 40)).to.equal("Make markets, carefully.");
    const cut = excerpt("Scalp the order book. Read the imbalance of the top three levels", 30);
    expect(cut).to.equal("Scalp the order book. Read…");
    expect(cut.length).to.be.at.most(30);
  });

  it("aligns table columns by their visible width", function () {
    const lines = table(["#", "PnL"], [["1", "+2.69"], ["10", "-0.10"]], ["right", "right"]);
    expect(lines[2]).to.equal(" 1  +2.69");
    expect(lines[3]).to.equal("10  -0.10");
  });
});
