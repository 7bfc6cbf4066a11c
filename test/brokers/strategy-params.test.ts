import { expect } from "chai";
import { DEFAULT_PARAMS, parseStrategyParams } from "../../keeper/brokers/rule/strategy-params.ts";
import { EXAMPLE_PROMPTS } from "../../keeper/brokers/prompt-files.ts";

describe("brokers/rule/strategy-params", () => {
  it("reads the knobs users write, with separators and units", () => {
    const p = parseStrategyParams("Aggressiveness: 0.8, size 5 lots; risk limit = 1000; spread 6 ticks, window 30, threshold 4, min edge 2");
    expect(p).to.deep.equal({ aggressiveness: 0.8, size: 5, riskLimit: 1000, spreadTicks: 6, window: 30, thresholdTicks: 4, minEdgeTicks: 2 });
  });

  it("does not read 'order size' twice or confuse 'risk limit' with a size", () => {
    const p = parseStrategyParams("order size of 7, max position 40 lots");
    expect(p.size).to.equal(7);
    expect(p.riskLimit).to.equal(40);
  });

  it("takes percentages and 0-100 scales for aggressiveness", () => {
    expect(parseStrategyParams("aggressiveness 80%").aggressiveness).to.equal(0.8);
    expect(parseStrategyParams("aggression 35").aggressiveness).to.equal(0.35);
  });

  it("maps moods to aggressiveness only when no number is given", () => {
    expect(parseStrategyParams("be timid").aggressiveness).to.equal(0.2);
    expect(parseStrategyParams("full degen yolo").aggressiveness).to.equal(1);
    expect(parseStrategyParams("degen, but aggressiveness 0.3").aggressiveness).to.equal(0.3);
  });

  it("clamps nonsense instead of failing", () => {
    const p = parseStrategyParams("size -5, aggressiveness 7000, window 1, risk limit 0");
    expect(p.size).to.equal(1);
    expect(p.aggressiveness).to.equal(1);
    expect(p.window).to.equal(2);
    expect(p.riskLimit).to.equal(1);
  });

  it("keeps defaults for text without knobs, and lets later text (a re-prompt) override", () => {
    expect(parseStrategyParams("make money please")).to.deep.equal(DEFAULT_PARAMS);
    expect(parseStrategyParams("size 5\nsize 9").size).to.equal(9);
  });

  it("reads every example prompt's knobs sensibly", () => {
    expect(EXAMPLE_PROMPTS.length).to.be.at.least(8);
    const timid = EXAMPLE_PROMPTS.find((e) => e.id === "timid-market-maker")!;
    const degen = EXAMPLE_PROMPTS.find((e) => e.id === "degenerate-momentum-chaser")!;
    expect(parseStrategyParams(timid.prompt)).to.include({ aggressiveness: 0.2, size: 2, spreadTicks: 6, riskLimit: 20 });
    expect(parseStrategyParams(degen.prompt)).to.include({ aggressiveness: 1, size: 12, riskLimit: 150, thresholdTicks: 1, window: 8 });
  });
});
