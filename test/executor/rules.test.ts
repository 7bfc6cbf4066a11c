import { expect } from "chai";
import type { Directive, ProposedOrder } from "../../keeper/brokers/types.ts";
import type { AccountView, MarketView, PairView, RfqView } from "../../keeper/executor/pit-port.ts";
import { assess, DEFAULT_RULES, directivesForReply, enforce, enforceRfq, minimumCross, rfqTtlMs, type RecentOrder } from "../../keeper/executor/rules.ts";

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
  maxOrderLots: 500,
};
const WIF: PairView = { ...PAIR, pair: 2, symbol: "WIF/USDC", base: { asset: 2, symbol: "WIF", decimals: 18 } };
const NONE = new Map<number, RecentOrder[]>();
/** `n` accepted orders on `pair`, none filled. */
const unfilled = (pair: number, n: number): RecentOrder[] => Array.from({ length: n }, (_, i) => ({ orderId: `${pair}-${i}`, pair, filled: false }));

function account(over: Partial<AccountView> = {}, lots = 0): AccountView {
  return {
    user: 5,
    inventory: [
      { asset: 0, amount: 1_000_000_000n },
      { asset: 1, amount: BigInt(lots) * PAIR.lotSize },
    ],
    openOrders: [],
    equity: 1_000_000_000n,
    initialMargin: 0n,
    maintenanceMargin: 0n,
    marginStatus: "ok",
    pnl: 0n,
    ...over,
  };
}

const MARKET: MarketView = {
  pair: 1,
  bids: [{ price: 9_990, size: 10 }],
  asks: [{ price: 10_010, size: 10 }],
  mid: 10_000,
  mark: 10_000,
  trades: [],
};
const markets = new Map([[1, MARKET]]);
const order = (side: "buy" | "sell", price: number, size = 1, type: ProposedOrder["type"] = "limit"): ProposedOrder => ({ pair: "PEPE/USDC", side, price, size, type });
const quoting = [
  { orderId: "1", pair: 1, side: "buy" as const, price: 9_995, size: 2, type: "limit" as const, ts: 0 },
  { orderId: "2", pair: 1, side: "sell" as const, price: 10_005, size: 2, type: "limit" as const, ts: 0 },
];

function run(orders: ProposedOrder[], directives: Directive[] = [], acct = account({ openOrders: quoting }), cancels: string[] = [], pairs: PairView[] = [PAIR]) {
  return enforce({ orders, cancels, userPairs: pairs, pairBySymbol: (s) => pairs.find((p) => p.symbol === s), markets, account: acct, directives, cfg: DEFAULT_RULES });
}

describe("executor/rules: assess", () => {
  it("liquidates below maintenance margin and asks nothing", () => {
    expect(assess(account({ marginStatus: "below_mm" }), [PAIR], markets, NONE, DEFAULT_RULES)).to.deep.equal({ liquidate: true, directives: [] });
  });

  it("below initial margin asks only for reducing orders, saying how much", () => {
    const a = assess(account({ marginStatus: "below_im" }, 12), [PAIR], markets, NONE, DEFAULT_RULES);
    expect(a.directives.map((d) => d.code)).to.deep.equal(["reduce_only"]);
    expect(a.directives[0]!.text).to.contain("sell up to 12 PEPE/USDC");
  });

  it("asks for a crossing order after 5 orders without a fill, naming the prices that cross", () => {
    const recent = unfilled(1, 5);
    const a = assess(account({ openOrders: quoting }), [PAIR], markets, new Map([[1, recent]]), DEFAULT_RULES);
    expect(a.directives.map((d) => [d.code, d.pair])).to.deep.equal([["cross", "PEPE/USDC"]]);
    expect(a.directives[0]!.text).to.contain("no fill in your last 5 orders on PEPE/USDC: include a crossing order there (buy >= 10010 or sell <= 9990)");
    const one = [...recent.slice(1), { orderId: "9", pair: 1, filled: true }];
    expect(assess(account({ openOrders: quoting }), [PAIR], markets, new Map([[1, one]]), DEFAULT_RULES).directives).to.deep.equal([]);
    expect(assess(account({ openOrders: quoting }), [PAIR], markets, new Map([[1, recent.slice(1)]]), DEFAULT_RULES).directives).to.deep.equal([]);
  });

  it("counts the last 5 orders per pair: fills on one pair do not excuse another", () => {
    const wifMarket: MarketView = { ...MARKET, pair: 2 };
    const both = new Map([
      [1, MARKET],
      [2, wifMarket],
    ]);
    const wifQuotes = quoting.map((o) => ({ ...o, orderId: `w${o.orderId}`, pair: 2 }));
    const acct = account({ openOrders: [...quoting, ...wifQuotes] });
    // PEPE filled recently; WIF's last five did not. Across pairs the last 5 orders include a fill.
    const recent = new Map([
      [1, [{ orderId: "p", pair: 1, filled: true }]],
      [2, unfilled(2, 5)],
    ]);
    const a = assess(acct, [PAIR, WIF], both, recent, DEFAULT_RULES);
    expect(a.directives.map((d) => [d.code, d.pair])).to.deep.equal([["cross", "WIF/USDC"]]);
  });

  it("asks a broker that is not quoting around the mid to do so, with the band", () => {
    const a = assess(account(), [PAIR], markets, NONE, DEFAULT_RULES);
    expect(a.directives).to.have.length(1);
    expect(a.directives[0]).to.deep.include({ code: "quote_mid", pair: "PEPE/USDC", bandTicks: 50 });
    expect(a.directives[0]!.text).to.contain("bid >= 9950 and an ask <= 10050");
    const farBid = account({ openOrders: [{ ...quoting[0]!, price: 9_900 }, quoting[1]!] });
    expect(assess(farBid, [PAIR], markets, NONE, DEFAULT_RULES).directives[0]!.code).to.equal("quote_mid");
  });
});

describe("executor/rules: enforce", () => {
  it("accepts a sane reply untouched and marks crossing orders", () => {
    const r = run([order("buy", 9_996), order("buy", 10_010, 1, "ioc")]);
    expect(r.refusals).to.deep.equal([]);
    expect(r.orders.map((o) => [o.index, o.crossing])).to.deep.equal([
      [0, false],
      [1, true],
    ]);
    expect(r.orders[0]!.request).to.deep.equal({ pair: 1, side: "buy", price: 9_996, size: 1, type: "limit" });
  });

  it("refuses unknown pairs, oversize orders and prices outside the band around the mark", () => {
    const r = run([{ ...order("buy", 9_990), pair: "DOGE/USDC" }, order("buy", 9_990, 501), order("sell", 11_001)]);
    expect(r.orders).to.deep.equal([]);
    expect(r.refusals.map((x) => x.code)).to.deep.equal(["unknown_pair", "max_size", "price_band"]);
    expect(r.refusals[2]!.text).to.equal("order 3 (sell 1@11001 limit PEPE/USDC): more than 1000 ticks from the mark 10000");
  });

  it("refuses pairs the user did not choose", () => {
    const other: PairView = { ...PAIR, pair: 2, symbol: "WIF/USDC" };
    const r = enforce({
      orders: [{ ...order("buy", 9_990), pair: "WIF/USDC" }],
      cancels: [],
      userPairs: [PAIR],
      pairBySymbol: (s) => (s === "WIF/USDC" ? other : PAIR),
      markets,
      account: account({ openOrders: quoting }),
      directives: [],
      cfg: DEFAULT_RULES,
    });
    expect(r.refusals.map((x) => x.code)).to.deep.equal(["not_your_pair"]);
  });

  it("below initial margin accepts only orders that reduce the position, up to its size", () => {
    const acct = account({ marginStatus: "below_im", openOrders: [] }, 5);
    const d: Directive[] = [{ code: "reduce_only", text: "" }];
    const r = run([order("buy", 9_990), order("sell", 10_020, 3), order("sell", 10_020, 3)], d, acct);
    expect(r.orders.map((o) => o.index)).to.deep.equal([1]);
    expect(r.refusals.map((x) => x.code)).to.deep.equal(["reduce_only", "reduce_only"]);
    expect(r.refusals[1]!.text).to.contain("room 2 lots");
  });

  it("when a crossing order was asked for, refuses a reply that has none, an empty one too", () => {
    const d: Directive[] = [{ code: "cross", pair: "PEPE/USDC", text: "" }];
    const none = run([order("buy", 9_995), order("sell", 10_004)], d);
    expect(none.orders).to.deep.equal([]);
    expect(none.missedCross).to.deep.equal(["PEPE/USDC"]);
    expect(none.refusals.map((x) => x.code)).to.deep.equal(["cross", "cross", "cross"]);
    expect(none.refusals[0]!.text).to.equal("no crossing order on PEPE/USDC: no fill in your last 5 orders there, and every reply must cross there until one fills");
    // Saying nothing does not satisfy the rule either; cancels still go through.
    const empty = run([], d, account({ openOrders: quoting }), ["1"]);
    expect(empty.missedCross).to.deep.equal(["PEPE/USDC"]);
    expect(empty.cancels).to.deep.equal(["1"]);
    expect(empty.refusals.map((x) => x.code)).to.deep.equal(["cross"]);
    const withCross = run([order("buy", 9_995), order("sell", 9_990, 1, "ioc")], d);
    expect(withCross.orders).to.have.length(2);
    expect(withCross.missedCross).to.deep.equal([]);
    // A post-only order can never cross, whatever its price says.
    expect(run([order("buy", 10_010, 1, "post_only")], d).orders).to.deep.equal([]);
    // Below IM reduce-only wins: no crossing order is demanded of an account that may only reduce.
    expect(run([], [...d, { code: "reduce_only", text: "" }]).missedCross).to.deep.equal([]);
  });

  it("holds each pair to its own cross directive", () => {
    const wifMarket: MarketView = { ...MARKET, pair: 2 };
    const r = enforce({
      orders: [order("buy", 10_010, 1, "ioc"), { ...order("buy", 9_995), pair: "WIF/USDC" }],
      cancels: [],
      userPairs: [PAIR, WIF],
      pairBySymbol: (s) => [PAIR, WIF].find((p) => p.symbol === s),
      markets: new Map([
        [1, MARKET],
        [2, wifMarket],
      ]),
      account: account({ openOrders: quoting }),
      directives: [{ code: "cross", pair: "WIF/USDC", text: "" }],
      cfg: DEFAULT_RULES,
    });
    // The PEPE cross does not count for WIF: the WIF quote is refused, the PEPE order goes.
    expect(r.orders.map((o) => o.index)).to.deep.equal([0]);
    expect(r.missedCross).to.deep.equal(["WIF/USDC"]);
    expect(r.refusals.map((x) => x.text)).to.deep.equal([
      "no crossing order on WIF/USDC: no fill in your last 5 orders there, and every reply must cross there until one fills",
      "order 2 (buy 1@9995 limit WIF/USDC): refused until you include a crossing order on WIF/USDC",
    ]);
  });

  it("when asked to quote around the mid, refuses resting orders outside the band but not crossing ones", () => {
    const d: Directive[] = [{ code: "quote_mid", pair: "PEPE/USDC", bandTicks: 50, text: "" }];
    const r = run([order("buy", 9_940), order("buy", 9_960), order("sell", 10_100), order("sell", 9_990, 1, "ioc")], d);
    expect(r.orders.map((o) => o.index)).to.deep.equal([1, 3]);
    expect(r.refusals.map((x) => x.code)).to.deep.equal(["quote_mid", "quote_mid"]);
  });

  it("expands cancel-all, refuses cancels of orders that are gone and caps resting orders", () => {
    const r = run([], [], account({ openOrders: quoting }), ["all", "77"]);
    expect(r.cancels).to.deep.equal(["1", "2"]);
    expect(r.refusals[0]).to.deep.include({ code: "unknown_order" });
    const full = account({ openOrders: Array.from({ length: 20 }, (_, i) => ({ ...quoting[0]!, orderId: String(i) })) });
    const capped = run([order("buy", 9_995), order("buy", 10_010, 1, "ioc")], [], full, ["3"]);
    expect(capped.orders.map((o) => o.index)).to.deep.equal([0, 1]);
    const over = run([order("buy", 9_995), order("buy", 9_994)], [], full, ["3"]);
    expect(over.refusals.map((x) => x.code)).to.deep.equal(["open_orders"]);
  });

  it("the keeper's minimum crossing IOC: one lot at the far touch, toward flat", () => {
    expect(minimumCross(account({ openOrders: quoting }), PAIR, MARKET)).to.deep.equal({ pair: 1, side: "buy", price: 10_010, size: 1, type: "ioc" });
    expect(minimumCross(account({ openOrders: quoting }, 3), PAIR, MARKET)).to.deep.equal({ pair: 1, side: "sell", price: 9_990, size: 1, type: "ioc" });
    expect(minimumCross(account({ openOrders: quoting }), PAIR, { ...MARKET, asks: [] })).to.deep.include({ side: "sell", price: 9_990 });
    expect(minimumCross(account(), PAIR, { ...MARKET, bids: [], asks: [] })).to.equal(null);
  });

  it("holds a late reply only to rules it was asked under that still apply, plus reduce-only", () => {
    const now = { liquidate: false, directives: [{ code: "cross", text: "x" }, { code: "quote_mid", pair: "PEPE/USDC", text: "y" }] as Directive[] };
    expect(directivesForReply([{ code: "cross", text: "old" }], now).map((d) => d.code)).to.deep.equal(["cross"]);
    const im = { liquidate: false, directives: [{ code: "reduce_only", text: "z" }] as Directive[] };
    expect(directivesForReply([], im).map((d) => d.code)).to.deep.equal(["reduce_only"]);
  });
});

describe("executor/rules enforceRfq", () => {
  const reduceOnly: Directive[] = [{ code: "reduce_only", text: "below im" }];
  const req = (over: Partial<RfqView> = {}): RfqView => ({
    requestId: 40, pair: 1, user: 9, side: "buy", remaining: 10, limit: null, expiresAt: 20_000, whitelist: null, minFill: 1, lockedBy: null, quotes: [], ...over,
  });
  const run = (actions: Parameters<typeof enforceRfq>[0]["actions"], over: Partial<Parameters<typeof enforceRfq>[0]> = {}) =>
    enforceRfq({ actions, userPairs: [PAIR], pairBySymbol: (s) => [PAIR, WIF].find((p) => p.symbol === s), markets, account: account(), rfqs: [req()], directives: [], nowMs: 10_000, cfg: DEFAULT_RULES, ...over });

  it("passes well-formed actions with their ttl clamped to 2..30 s", () => {
    const r = run([
      { action: "request", pair: "PEPE/USDC", side: "sell", size: 3, limit: 9_990, ttlSec: 600 },
      { action: "quote", requestId: 40, price: 10_005, size: 2, ttlSec: 0 },
      { action: "cancel", requestId: 40 },
    ]);
    expect(r.refusals).to.deep.equal([]);
    expect(r.actions.map((a) => a.action)).to.deep.equal(["request", "quote", "cancel"]);
    expect(r.actions[0]).to.deep.include({ request: { pair: 1, side: "sell", size: 3, limit: 9_990, expiresAt: 40_000 } });
    expect(r.actions[1]).to.deep.include({ quote: { requestId: 40, price: 10_005, size: 2, validUntil: 12_000 } });
    expect(rfqTtlMs(null)).to.equal(10_000);
  });

  it("refuses malformed, foreign-pair, out-of-band and, below IM, exposure-adding actions with reasons", () => {
    const r = run([
      { action: "quote", requestId: 40 },
      { action: "request", pair: "WIF/USDC", side: "buy", size: 1 },
      { action: "quote", requestId: 40, price: 20_000, size: 1 },
      { action: "accept", requestId: 40 },
      { action: "request", pair: "PEPE/USDC", side: "buy", size: 1 },
    ], { directives: reduceOnly });
    expect(r.actions).to.deep.equal([]);
    expect(r.refusals.map((x) => x.code)).to.deep.equal(["rfq_malformed", "not_your_pair", "price_band", "unknown_request", "reduce_only"]);
    // Long 4 lots below IM: selling them by request or quote on a buy request is reducing.
    const long = run([{ action: "request", pair: "PEPE/USDC", side: "sell", size: 2 }, { action: "quote", requestId: 40, price: 10_000, size: 2 }], { directives: reduceOnly, account: account({}, 4) });
    expect(long.refusals).to.deep.equal([]);
    expect(long.actions).to.have.length(2);
  });
});
