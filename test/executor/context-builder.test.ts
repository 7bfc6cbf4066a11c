import { expect } from "chai";
import { buildMessages, encodeState } from "../../keeper/brokers/ai-prompt.ts";
import { RULES_PROMPT } from "../../keeper/brokers/prompt-files.ts";
import { buildContext, type BrokerSettings } from "../../keeper/executor/context-builder.ts";
import type { AccountView, MarketView, PairView } from "../../keeper/executor/pit-port.ts";

const PAIR: PairView = {
  pair: 1,
  symbol: "PEPE/USDC",
  base: { asset: 1, symbol: "PEPE", decimals: 18 },
  quote: { asset: 0, symbol: "USDC", decimals: 6 },
  lotSize: 10n ** 23n,
  tickValue: 100n,
  makerFeeBps: 0,
  takerFeeBps: 5,
  minOrderLots: 1,
  maxOrderLots: 1_000_000,
};
const MARKET: MarketView = {
  pair: 1,
  bids: [{ price: 9_990, size: 7 }],
  asks: [{ price: 10_010, size: 3 }],
  mid: 10_000,
  mark: 10_000,
  trades: [{ price: 10_010, size: 2, takerSide: "buy", ts: 4_000 }],
};
const ACCOUNT: AccountView = {
  user: 5,
  inventory: [
    { asset: 0, amount: -1_250_500_000n },
    { asset: 1, amount: 25n * 10n ** 23n + 5n * 10n ** 22n },
    { asset: 9, amount: 1n },
  ],
  openOrders: [{ orderId: "41", pair: 1, side: "sell", price: 10_020, size: 4, type: "post_only", ts: 3_000 }],
  equity: 800_000_000n,
  initialMargin: 100_000_000n,
  maintenanceMargin: 50_000_000n,
  marginStatus: "ok",
  pnl: -12_340_000n,
};
const SETTINGS: BrokerSettings = { user: 5, brokerId: "openai-gpt5", prompt: "Scalp PEPE.", pairs: ["PEPE/USDC"], lessons: ["Do not chase."] };
const SNAP = { phase: { sessionId: 8, phase: "trading" as const, endsAtMs: 65_000 }, nowMs: 5_000, pairs: [PAIR], markets: new Map([[1, MARKET]]), account: ACCOUNT };
const SLOT = { positions: new Map([[1, -3]]), tick: 5, purpose: "tick" as const, plan: "lean short", reprompt: null, refusals: ["order 1 (buy 1@9000 limit PEPE/USDC): more than 1000 ticks from the mark 10000"], keeperActions: ["the keeper crossed for you: buy 1 PEPE/USDC @10010 IOC, 1 filled"], directives: [], seed: 1 };

describe("executor/context-builder", () => {
  it("turns the user's own account and the pit into display units", () => {
    const ctx = buildContext(SETTINGS, SNAP, SLOT);
    expect(ctx.markets[0]).to.deep.include({ symbol: "PEPE/USDC", position: -3, holding: 25.5, tickValue: 0.0001, mid: 10_000 });
    expect(ctx.markets[0]!.trades[0]).to.deep.equal({ price: 10_010, size: 2, takerSide: "buy", ageMs: 1_000 });
    // Assets outside the user's pairs are not shown.
    expect(ctx.account.balances).to.deep.equal([
      { symbol: "USDC", amount: -1250.5 },
      { symbol: "PEPE", amount: 2_550_000 },
    ]);
    expect(ctx.account).to.deep.include({ equity: 800, initialMargin: 100, maintenanceMargin: 50, pnl: -12.34 });
    expect(ctx.openOrders).to.deep.equal([{ orderId: "41", pair: "PEPE/USDC", side: "sell", price: 10_020, size: 4, type: "post_only", ageMs: 2_000 }]);
    expect(ctx.timeLeftMs).to.equal(60_000);
    expect(ctx.lessons).to.deep.equal(["Do not chase."]);
  });

  it("refuses to mix one user's settings with another user's account", () => {
    expect(() => buildContext({ ...SETTINGS, user: 6 }, SNAP, SLOT)).to.throw(/user 6 built from account 5/);
  });

  it("lays the request out for caching and encodes the state compactly", () => {
    const ctx = buildContext(SETTINGS, SNAP, SLOT);
    const msgs = buildMessages(ctx);
    expect(msgs[0]).to.deep.equal({ role: "system", content: RULES_PROMPT });
    expect(msgs[1]).to.deep.equal({ role: "user", content: "Your user's strategy:\nScalp PEPE.\n\nLessons from your earlier sessions:\n- Do not chase." });
    expect(encodeState(ctx)).to.equal(
      [
        "t 5 left 60s tick",
        "plan lean short",
        "mkt PEPE/USDC mid 10000 mark 10000 tv 0.0001 fee 0/5 max 1000000",
        "bid 9990:7",
        "ask 10010:3",
        "tape 10010:2:b",
        "pos -3 hold 25.5",
        "acct USDC -1250.5 PEPE 2550000 eq 800 im 100 mm 50 ok pnl -12.34",
        "open 41:s:10020:4:post_only",
        // What the keeper did itself is its own line, apart from the broker's refused actions.
        "keeper the keeper crossed for you: buy 1 PEPE/USDC @10010 IOC, 1 filled",
        "refused order 1 (buy 1@9000 limit PEPE/USDC): more than 1000 ticks from the mark 10000",
        "do act now; plan null unless it must change",
      ].join("\n"),
    );
  });
});
