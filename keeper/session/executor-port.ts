// The pit as the executor sees it (executor/pit-port.ts): engine reads turned into the executor's
// bigint views, each broker's fills since its last look, and orders and liquidations sent through
// the pit (so they are journaled like everything else).
import type { Command } from "../core/commands.ts";
import type { CommandResult, EngineEvent } from "../core/types.ts";
import type { Metrics } from "../ops/metrics.ts";
import type {
  AccountView,
  CoveredView,
  FillView,
  LiquidationOutcome,
  MarketView,
  OrderRequest,
  PairView,
  PhaseView,
  PitPort,
  RfqAcceptOrder,
  RfqOutcome,
  RfqQuoteOrder,
  RfqRequestOrder,
  RfqView,
  SubmitOutcome,
} from "../executor/pit-port.ts";
import type { SessionPit } from "./pit.ts";
import type { PairMeta } from "./pairs.ts";

const FILLS_KEPT_PER_USER = 200;

export class ExecutorPort implements PitPort {
  readonly #pit: SessionPit;
  readonly #phase: () => PhaseView;
  readonly #metrics: Metrics | undefined;
  readonly #pairViews: Map<number, PairView>;
  #fills = new Map<number, { cursor: number; fill: FillView }[]>();
  #fillCursor = 0;
  #orderTs = new Map<number, number>();

  constructor(opts: { pit: SessionPit; pairs: readonly PairMeta[]; phase: () => PhaseView; metrics?: Metrics }) {
    this.#pit = opts.pit;
    this.#phase = opts.phase;
    this.#metrics = opts.metrics;
    const fees = opts.pit.config.fees;
    this.#pairViews = new Map(
      opts.pairs.map((p) => [
        p.id,
        {
          pair: p.id,
          symbol: p.symbol,
          base: { asset: p.base, symbol: p.baseSymbol, decimals: p.baseDecimals },
          quote: { asset: p.quote, symbol: p.quoteSymbol, decimals: p.quoteDecimals },
          lotSize: p.lotSize,
          tickValue: BigInt(p.quotePerTickLot),
          makerFeeBps: fees.makerBps,
          takerFeeBps: fees.takerBps,
          minOrderLots: p.minSizeLots,
          maxOrderLots: p.maxSizeLots,
        },
      ]),
    );
  }

  /** A pit listener (SessionPit.subscribe): order times and every user's fills. */
  readonly listener = (_cmd: Command, r: CommandResult): void => {
    if (!r.ok) return;
    for (const e of r.events) {
      switch (e.kind) {
        case "order_accepted":
          this.#orderTs.set(e.orderId, e.ts);
          break;
        case "order_cancelled":
          this.#orderTs.delete(e.orderId);
          break;
        case "fill": {
          if (e.makerRemaining === 0) this.#orderTs.delete(e.makerOrderId);
          const cursor = ++this.#fillCursor;
          const add = (user: number, orderId: number, side: "buy" | "sell", liquidity: "maker" | "taker", fee: number) => {
            let list = this.#fills.get(user);
            if (list === undefined) this.#fills.set(user, (list = []));
            list.push({ cursor, fill: { orderId: String(orderId), pair: e.pair, side, price: e.price, size: e.size, liquidity, fee: BigInt(fee), ts: e.ts } });
            if (list.length > FILLS_KEPT_PER_USER) list.splice(0, list.length - FILLS_KEPT_PER_USER);
          };
          add(e.maker, e.makerOrderId, e.takerSide === "buy" ? "sell" : "buy", "maker", e.makerFee);
          add(e.taker, e.takerOrderId, e.takerSide, "taker", e.takerFee);
          break;
        }
        default:
          break;
      }
    }
  };

  phase(): PhaseView {
    return this.#phase();
  }

  pair(pair: number): PairView | undefined {
    return this.#pairViews.get(pair);
  }

  pairBySymbol(symbol: string): PairView | undefined {
    for (const p of this.#pairViews.values()) if (p.symbol === symbol) return p;
    return undefined;
  }

  market(pair: number, levels: number, trades: number): MarketView {
    const reads = this.#pit.reads;
    const depth = reads.depth(pair, levels);
    const recent = reads.recentTrades(pair, trades);
    return {
      pair,
      bids: depth.bids.map((l) => ({ price: l.price, size: l.size })),
      asks: depth.asks.map((l) => ({ price: l.price, size: l.size })),
      mid: reads.mid(pair),
      mark: reads.mark(pair),
      // The engine lists newest first; the executor's port wants newest last.
      trades: recent.map((t) => ({ price: t.price, size: t.size, takerSide: t.takerSide, ts: t.ts })).reverse(),
    };
  }

  account(user: number): AccountView {
    const a = this.#pit.reads.account(user);
    return {
      user,
      inventory: a.positions.map((p) => ({ asset: p.asset, amount: p.baseUnits })),
      openOrders: a.openOrders.map((o) => ({
        orderId: String(o.orderId),
        pair: o.pair,
        side: o.side,
        price: o.price,
        size: o.remaining,
        type: o.orderType,
        ts: this.#orderTs.get(o.orderId) ?? 0,
      })),
      equity: BigInt(a.equity),
      initialMargin: BigInt(a.initialMargin),
      maintenanceMargin: BigInt(a.maintenanceMargin),
      marginStatus: a.marginStatus,
      pnl: BigInt(a.pnl),
    };
  }

  fills(user: number, cursor: number): { fills: FillView[]; cursor: number } {
    const list = this.#fills.get(user) ?? [];
    const out: FillView[] = [];
    for (const f of list) if (f.cursor > cursor) out.push(f.fill);
    return { fills: out, cursor: this.#fillCursor };
  }

  submit(user: number, request: { cancels: string[]; orders: OrderRequest[] }): SubmitOutcome {
    const pit = this.#pit;
    const out: SubmitOutcome = { cancels: [], orders: [] };
    for (const id of request.cancels) {
      const r = id === "all" ? pit.apply({ type: "cancel_all", user }) : pit.apply({ type: "cancel", user, orderId: Number(id) });
      out.cancels.push(r.ok ? { orderId: id, accepted: true } : { orderId: id, accepted: false, reason: r.reason });
    }
    request.orders.forEach((o, index) => {
      const r = pit.apply({ type: "place", user, pair: o.pair, side: o.side, orderType: o.type, price: o.price, size: o.size });
      if (r.ok) {
        const filled = r.order?.filled ?? 0;
        const resting = r.order?.status === "resting" ? (r.order.remaining ?? 0) : 0;
        out.orders.push({ index, accepted: true, orderId: String(r.order?.orderId ?? r.seq), filled, resting });
        this.#metrics?.orders.inc({ outcome: "accepted" });
      } else {
        out.orders.push({ index, accepted: false, reason: r.reason, filled: 0, resting: 0 });
        this.#metrics?.orders.inc({ outcome: r.reason });
      }
    });
    return out;
  }

  rfqs(user: number): RfqView[] {
    const out: RfqView[] = [];
    for (const r of this.#pit.reads.rfqRequests()) {
      const own = r.user === user;
      if (!own && r.whitelist !== null && !r.whitelist.includes(user)) continue;
      out.push({
        requestId: r.requestId,
        pair: r.pair,
        user: r.user,
        side: r.side,
        remaining: r.remaining,
        limit: r.limit,
        expiresAt: r.expiresAt,
        whitelist: r.whitelist,
        minFill: r.minFill,
        lockedBy: r.lockedBy,
        // Others' quotes on someone else's request are not the broker's business.
        quotes: r.quotes
          .filter((q) => own || q.quoter === user)
          .map((q) => ({ quoteId: q.quoteId, quoter: q.quoter, price: q.price, size: q.size, validUntil: q.validUntil })),
      });
    }
    return out;
  }

  rfqRequest(user: number, q: RfqRequestOrder): RfqOutcome {
    const r = this.#pit.apply({
      type: "rfq_request",
      user,
      pair: q.pair,
      side: q.side,
      size: q.size,
      ...(q.limit !== null ? { limit: q.limit } : {}),
      expiresAt: q.expiresAt,
      ...(q.whitelist !== undefined && q.whitelist.length > 0 ? { whitelist: q.whitelist } : {}),
      ...(q.minFill !== undefined ? { minFill: q.minFill } : {}),
      remainder: q.remainder ?? "keep",
    });
    return r.ok ? { accepted: true, id: r.seq } : { accepted: false, reason: r.reason };
  }

  rfqQuote(user: number, q: RfqQuoteOrder): RfqOutcome {
    const r = this.#pit.apply({ type: "rfq_quote", user, requestId: q.requestId, price: q.price, size: q.size, validUntil: q.validUntil });
    return r.ok ? { accepted: true, id: r.seq } : { accepted: false, reason: r.reason };
  }

  rfqAccept(user: number, a: RfqAcceptOrder): RfqOutcome {
    const r = this.#pit.apply({
      type: "rfq_accept",
      user,
      requestId: a.requestId,
      ...(a.quoteId !== null ? { quoteId: a.quoteId } : {}),
      ...(a.size !== null ? { size: a.size } : {}),
      ...(a.limit !== null ? { limit: a.limit } : {}),
    });
    if (!r.ok) return { accepted: false, reason: r.reason };
    let filled = 0;
    for (const e of r.events) if (e.kind === "fill" && e.block === true && e.taker === user) filled += e.size;
    return { accepted: true, filled };
  }

  rfqCancel(user: number, requestId: number): RfqOutcome {
    const r = this.#pit.apply({ type: "rfq_cancel", user, requestId });
    return r.ok ? { accepted: true } : { accepted: false, reason: r.reason };
  }

  rfqLock(user: number, requestId: number): RfqOutcome {
    const r = this.#pit.apply({ type: "rfq_lock", user, requestId });
    return r.ok ? { accepted: true } : { accepted: false, reason: r.reason };
  }

  rfqUnlock(user: number, requestId: number): RfqOutcome {
    const r = this.#pit.apply({ type: "rfq_unlock", user, requestId });
    return r.ok ? { accepted: true } : { accepted: false, reason: r.reason };
  }

  /**
   * Requests and quotes past their expiry release their margin only when the keeper sweeps them
   * (rfq_expire, journaled): once per tick when one is due at `nowMs`. Returns how many ended.
   */
  expireRfqs(nowMs: number): number {
    const next = this.#pit.reads.nextRfqExpiry();
    if (next === null || next > nowMs) return 0;
    const r = this.#pit.apply({ type: "rfq_expire" });
    return r.ok ? r.events.filter((e) => e.kind === "rfq_expired").length : 0;
  }

  liquidate(user: number): LiquidationOutcome {
    const r = this.#pit.apply({ type: "liquidate", user });
    if (!r.ok) return notLiquidated(`not liquidated: ${r.reason}`);
    return liquidationOf(user, r.events, this.#pairViews);
  }

  /**
   * The core's list of accounts below maintenance margin, less those left with nothing the keeper
   * could close out (no orders, no coin, only a quote debt: bankrupt, for the closing cross to
   * cover); liquidating those again every tick would change nothing.
   */
  liquidationsDue(): number[] {
    const quotes = new Set([...this.#pairViews.values()].map((p) => p.quote.asset));
    const out: number[] = [];
    for (const c of this.#pit.reads.liquidationsDue()) {
      if (c.type !== "liquidate") continue;
      const a = this.#pit.reads.account(c.user);
      const nothingLeft = a.openOrders.length === 0 && a.positions.every((p) => p.baseUnits === 0n || quotes.has(p.asset));
      if (!nothingLeft) out.push(c.user);
    }
    return out;
  }
}

function notLiquidated(summary: string): LiquidationOutcome {
  return { liquidated: false, cancelledOrders: 0, covered: [], fee: 0n, equityBefore: 0n, maintenanceBefore: 0n, equityAfter: 0n, fullyCovered: false, summary };
}

/**
 * A liquidate command's events as what the keeper did: the user's orders it cancelled, what its
 * IOCs bought back or sold per pair and at what average price, the fee to insurance. The stream
 * publisher reads the same command's events through this, so the log, the broker and the feed say
 * the same thing.
 */
export function liquidationOf(user: number, events: readonly EngineEvent[], pairs: ReadonlyMap<number, Pick<PairView, "pair" | "symbol" | "base" | "quote" | "lotSize">>): LiquidationOutcome {
  let cancelledOrders = 0;
  const byPair = new Map<number, { lots: number; quote: number; ticksLots: number; side: "buy" | "sell" }>();
  let done: Extract<EngineEvent, { kind: "liquidated" }> | undefined;
  for (const e of events) {
    if (e.kind === "order_cancelled" && e.user === user && e.orderId > 0) cancelledOrders++;
    else if (e.kind === "fill" && e.taker === user && e.takerOrderId < 0) {
      let c = byPair.get(e.pair);
      if (c === undefined) byPair.set(e.pair, (c = { lots: 0, quote: 0, ticksLots: 0, side: e.takerSide }));
      c.lots += e.size;
      c.quote += e.quoteAmount;
      c.ticksLots += e.price * e.size;
    } else if (e.kind === "liquidated" && e.user === user) done = e;
  }
  if (done === undefined) return notLiquidated("not liquidated");
  const covered: CoveredView[] = [];
  const parts: string[] = [];
  for (const [pair, c] of byPair) {
    const p = pairs.get(pair);
    const price = Math.round((c.ticksLots / c.lots) * 100) / 100;
    covered.push({ pair, asset: p?.base.asset ?? -1, side: c.side, lots: c.lots, amount: BigInt(c.lots) * (p?.lotSize ?? 0n), quote: BigInt(c.quote), price });
    parts.push(`${c.side === "buy" ? "bought back" : "sold"} ${c.lots} ${p?.symbol ?? `pair ${pair}`} at ${price}`);
  }
  const q = pairs.values().next().value?.quote;
  const usd = (x: number) => (q === undefined ? String(x) : `${(x / 10 ** q.decimals).toFixed(2)} ${q.symbol}`);
  const summary =
    `liquidated below maintenance margin (equity ${usd(done.equityBefore)} < ${usd(done.maintenanceBefore)}): ` +
    `${cancelledOrders} orders cancelled, ${parts.join(", ") || "nothing to cover"}, fee ${usd(done.fee)} to insurance; ` +
    `equity now ${usd(done.equityAfter)}${done.covered ? "" : ", liabilities left (thin book)"}`;
  return {
    liquidated: true,
    cancelledOrders,
    covered,
    fee: BigInt(done.fee),
    equityBefore: BigInt(done.equityBefore),
    maintenanceBefore: BigInt(done.maintenanceBefore),
    equityAfter: BigInt(done.equityAfter),
    fullyCovered: done.covered,
    summary,
  };
}
