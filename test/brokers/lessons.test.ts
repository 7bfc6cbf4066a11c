import { expect } from "chai";
import type { DecisionRecord } from "../../keeper/brokers/decision-log.ts";
import { lessonsFromLog, lessonsFromSummary, money, summarizeLog, summaryText } from "../../keeper/brokers/lessons.ts";

function rec(over: Partial<DecisionRecord>): DecisionRecord {
  return {
    sessionId: 1,
    user: 1,
    brokerId: "b",
    tick: 1,
    askedAtMs: 0,
    answeredAtMs: 1,
    purpose: "tick",
    source: "broker",
    late: false,
    accepted: { orders: 0, cancels: 0, crossing: 0 },
    refusals: [],
    outcome: null,
    ...over,
  };
}

describe("brokers/lessons", () => {
  it("formats quote amounts exactly", () => {
    expect(money(1_234_567n, 6)).to.equal("+1.23");
    expect(money(-5_000n, 6)).to.equal("-0.00");
    expect(money(-2_500_000n, 6)).to.equal("-2.50");
    expect(money(0n, 6)).to.equal("0.00");
  });

  it("summarises PnL, fills, failures and refusals into a few concrete lines", () => {
    const log: DecisionRecord[] = [];
    for (let i = 0; i < 10; i++) {
      log.push(
        rec({
          tick: i,
          decision: { orders: [{ pair: "PEPE/USDC", side: "buy", price: 1000 + i, size: 2, type: "limit" }], cancels: [], outcry: "", plan: null },
          accepted: { orders: 2, cancels: 0, crossing: 0 },
          refusals: i < 4 ? [{ code: "reduce_only", text: "order 1: below initial margin" }] : [],
          outcome: { fills: 0, filledLots: 0, fees: 0n, pnlChange: i === 6 ? -3_000_000n : 100_000n },
        }),
      );
    }
    log.push(rec({ failure: { code: "malformed_json", message: "x" } }), rec({ failure: { code: "malformed_json", message: "x" } }));
    const lessons = lessonsFromLog(log);
    expect(lessons.length).to.be.within(3, 5);
    expect(lessons[0]).to.equal("Last session: PnL -2.10 USDC over 12 decisions; 0 fills (0 lots), fees 0.00.");
    expect(lessons.join("\n")).to.contain("17% of replies failed (mostly malformed_json): answer with the JSON action only");
    expect(lessons.join("\n")).to.contain("Refused 4x for reduce only");
    expect(lessons.join("\n")).to.contain("Only 0 fills from 20 orders");
    expect(lessons.join("\n")).to.contain("Worst decision (tick 6, -3.00): buy 2@1006 limit");
    for (const l of lessons) expect(l.length).to.be.at.most(200);
  });

  it("counts the keeper's own orders apart from the broker's decisions, and says what the keeper had to do", () => {
    const s = summarizeLog([
      rec({ accepted: { orders: 1, cancels: 0, crossing: 0 }, outcome: { fills: 0, filledLots: 0, fees: 0n, pnlChange: 0n } }),
      rec({ source: "keeper", accepted: { orders: 1, cancels: 0, crossing: 1 }, outcome: { fills: 1, filledLots: 1, fees: 5n, pnlChange: -5n } }),
    ]);
    expect(s).to.deep.include({ decisions: 1, keeperOrders: 1, fills: 0, pnl: 0n });
    s.liquidations = 2;
    const lessons = lessonsFromSummary(s);
    expect(lessons).to.include("Liquidated 2x below maintenance margin: size positions so a 10% move against you leaves equity above maintenance margin.");
    expect(lessons.join("\n")).to.contain("The keeper had to cross for you 1x");
    expect(summaryText(s)).to.contain("keeper actions: 2 liquidations, 1 crossing orders sent for you");
  });

  it("has a lesson even for a broker that never decided", () => {
    expect(lessonsFromLog([])).to.have.length(1);
  });

  it("renders a text summary for the model's lessons call", () => {
    const s = summarizeLog([rec({ failure: { code: "timeout", message: "slow" } })]);
    expect(summaryText(s)).to.contain("failed calls: timeout 1");
  });
});
