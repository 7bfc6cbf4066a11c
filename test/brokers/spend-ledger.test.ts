import { expect } from "chai";
import { costPicoUsd, formatUsd, SpendLedger } from "../../keeper/brokers/spend-ledger.ts";

const prices = { inputMicroUsdPerMTok: 250_000n, cachedInputMicroUsdPerMTok: 25_000n, outputMicroUsdPerMTok: 2_000_000n };

describe("brokers/spend-ledger", () => {
  it("prices uncached, cached and completion tokens exactly", () => {
    // 1000 prompt (400 cached) + 100 completion at $0.25 / $0.025 / $2 per M tokens.
    const c = costPicoUsd(prices, { promptTokens: 1000, cachedTokens: 400, completionTokens: 100 });
    expect(c).to.equal(600n * 250_000n + 400n * 25_000n + 100n * 2_000_000n);
    expect(Number(c) / 1e12).to.be.closeTo(0.00036, 1e-12);
  });

  it("refuses a reservation that would pass the cap and books actual cost on settle", () => {
    const l = new SpendLedger(1_000n);
    expect(l.reserve(600n)).to.equal(true);
    expect(l.reserve(500n)).to.equal(false);
    l.settle(600n, "cheap", { promptTokens: 3, completionTokens: 1, cachedTokens: 0 }, 200n);
    expect(l.spentPicoUsd).to.equal(200n);
    expect(l.reserve(800n)).to.equal(true);
    expect(l.byTier.cheap).to.deep.include({ calls: 1, promptTokens: 3, completionTokens: 1 });
  });

  it("formats budgets with enough digits to see them move", () => {
    expect(formatUsd(500_000_000_000n)).to.equal("$0.5000");
    expect(formatUsd(2_500_000_000_000n)).to.equal("$2.50");
    expect(formatUsd(4_900_000_000n)).to.equal("$0.0049");
    expect(formatUsd(0n)).to.equal("$0.00");
  });

  it("is exhausted once nothing more fits", () => {
    const l = new SpendLedger(100n);
    l.settle(0n, "expensive", null, 100n);
    expect(l.exhausted()).to.equal(true);
    expect(l.summary()).to.deep.equal({ spentUsd: 1e-10, capUsd: 1e-10, tokens: 0, calls: 1 });
  });
});
