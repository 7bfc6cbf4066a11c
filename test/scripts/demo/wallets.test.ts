// The demo roster (scripts/demo/wallets.ts): which wallets trade with which broker and prompt.
import { expect } from "chai";
import { demoWallets, FIRST_DEMO_ACCOUNT, type BrokerAvailability } from "../../../scripts/demo/wallets.ts";
import { EXAMPLE_PROMPTS } from "../../../keeper/brokers/prompt-files.ts";

const RULES: BrokerAvailability[] = ["rule-market-maker", "rule-momentum", "rule-mean-reversion", "rule-scalper"].map((id) => ({ id, kind: "rule", available: true }));
const PAIRS = ["PEPE/USDC", "WIF/USDC", "BONK/USDC"];

describe("demo wallets", function () {
  it("seats eight built-in brokers on Hardhat accounts #4..#11, makers and takers both", function () {
    const ws = demoWallets([...RULES, { id: "openai-gpt5", kind: "ai", available: false }], 8, PAIRS);
    expect(ws.map((w) => w.index)).to.deep.equal([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(new Set(ws.map((w) => w.account.address)).size).to.equal(8);
    // Every broker is one of the built-in ones, and the prompt is the example written for it.
    for (const w of ws) {
      expect(RULES.map((r) => r.id)).to.include(w.brokerId);
      expect(w.brokerId).to.equal(w.example.suggestedBroker);
      expect(EXAMPLE_PROMPTS).to.include(w.example);
    }
    const brokers = ws.map((w) => w.brokerId);
    expect(brokers.filter((b) => b === "rule-market-maker").length, "liquidity").to.be.at.least(2);
    expect(brokers.filter((b) => b === "rule-momentum").length, "liquidity takers").to.be.at.least(2);
    // Half deposit USDC with a permit, half approve first.
    expect(ws.filter((w) => w.permit).length).to.equal(4);
    expect(ws.filter((w) => w.pairs !== null).flatMap((w) => w.pairs)).to.satisfy((ps: string[]) => ps.every((p) => PAIRS.includes(p)));
  });

  it("adds three AI seats only when an AI broker is available, on its suggested broker or the first available", function () {
    expect(demoWallets(RULES, 8, PAIRS)).to.have.length(8);
    const onlyLocal = demoWallets([...RULES, { id: "openai-gpt5", kind: "ai", available: false }, { id: "local-llm", kind: "ai", available: true }], 8, PAIRS);
    expect(onlyLocal.slice(8).map((w) => [w.index, w.brokerId])).to.deep.equal([
      [12, "local-llm"],
      [13, "local-llm"],
      [14, "local-llm"],
    ]);
    const openai = demoWallets([...RULES, { id: "openai-gpt5", kind: "ai", available: true }, { id: "openai-gpt5-nano", kind: "ai", available: true }], 8, PAIRS);
    expect(openai.slice(8).map((w) => w.brokerId)).to.deep.equal(["openai-gpt5", "openai-gpt5-nano", "openai-gpt5"]);
  });

  it("drops pairs that are not listed, and refuses more wallets than Hardhat funds", function () {
    const ws = demoWallets(RULES, 8, ["WIF/USDC"]);
    // The seat narrowed to PEPE and BONK keeps neither: it trades every pair instead.
    expect(ws.every((w) => w.pairs === null)).to.equal(true);
    expect(demoWallets(RULES, 16, PAIRS).at(-1)!.index).to.equal(FIRST_DEMO_ACCOUNT + 15);
    expect(() => demoWallets([...RULES, { id: "local-llm", kind: "ai", available: true }], 16, PAIRS)).to.throw(/at most 16 demo wallets/);
  });
});
