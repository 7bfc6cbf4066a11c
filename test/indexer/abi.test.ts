import { expect } from "chai";
import { describe, it } from "mocha";
import { CMEVaultAbi } from "../../indexer/abis/CMEVault.ts";
import { compileVaultAbi } from "../../indexer/abis/generate.ts";

describe("indexer ABI (indexer/abis/CMEVault.ts)", function () {
  it("is the ABI of contracts/interfaces/ICMEVault.sol (regenerate with npx tsx indexer/abis/generate.ts)", function () {
    this.timeout(60_000);
    expect(JSON.parse(JSON.stringify(CMEVaultAbi))).to.deep.equal(compileVaultAbi());
  });

  it("declares every event the indexer handles", function () {
    const events = CMEVaultAbi.filter((x) => x.type === "event").map((x) => x.name);
    expect(events).to.include.members([
      "TokenListed",
      "AccountRegistered",
      "Deposited",
      "Withdrawn",
      "SessionStarted",
      "SettlementBegun",
      "BatchPosted",
      "SessionFinalized",
      "SessionVoided",
      "GracePeriodSet",
    ]);
  });
});
