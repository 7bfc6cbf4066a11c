// The pit: the exchange core's Engine behind the journal. Every command is stamped with the next
// sequence number and the keeper's clock, appended to the journal, and only then applied; the
// events it produced feed the WebSocket stream, the fill log and the executor's fill cursor.
// Replaying the journal through `replay` rebuilds the same engine (it is deterministic).
// It also adapts the engine to the executor's PitPort and to the API's views.
import { Engine } from "../core/engine.ts";
import { commandFromJson, commandToJson, stamp, type Command, type CommandBody, type CommandJson } from "../core/commands.ts";
import type { AccountView as CoreAccountView, ClosingAdjustment, CommandResult, EngineConfig, EngineEvent, FillEvent, Settlement } from "../core/types.ts";
import type {
  AccountView,
  FillView,
  LiquidationOutcome,
  MarketView,
  OrderRequest,
  PairView,
  PhaseView,
  PitPort,
  SubmitOutcome,
} from "../executor/pit-port.ts";
import type { FillLogEvent } from "../settlement/fill-log.ts";
import type { Journal } from "../store/journal.ts";
import type { Clock } from "../executor/clock.ts";
import type { StreamHub } from "../stream/hub.ts";
import type { Metrics } from "../ops/metrics.ts";
import { priceDisplay, type PairMeta } from "./pairs.ts";

export interface PitOptions {
  config: EngineConfig;
  pairs: PairMeta[];
  sessionId: number;
  /** Null: replay only (tests, audits). */
  journal: Journal | null;
  clock: Clock;
  hub?: StreamHub;
  metrics?: Metrics;
  phase: () => PhaseView;
  addressOf: (accountId: number) => string | undefined;
  brokerOf: (accountId: number) => string | null;
}

const FILLS_KEPT_PER_USER = 200;

export class SessionPit implements PitPort {
  readonly engine: Engine;
  readonly #o: PitOptions;
  readonly #pairs: Map<number, PairMeta>;
  readonly #pairViews: Map<number, PairView>;
  #seq = 0;
  /** Bumped on every applied command: views cache on it. */
  version = 0;
  #logEvents: FillLogEvent[] = [];
  #fills = new Map<number, { cursor: number; fill: FillView }[]>();
  #fillCursor = 0;
  #orderTs = new Map<number, number>();
  #settlement: Settlement | undefined;
  #bookCache = new Map<string, { version: number; view: unknown }>();
  /** Per pair: commands that touched its book, and its fills (the API thread's feed sends what changed). */
  #pairVersions = new Map<number, number>();
  #pairFills = new Map<number, number>();
  #boardCache: { version: number; at: number; rows: unknown[] } | undefined;

  constructor(opts: PitOptions) {
    this.#o = opts;
    this.engine = new Engine(opts.config);
    this.#pairs = new Map(opts.pairs.map((p) => [p.id, p]));
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
          makerFeeBps: opts.config.fees.makerBps,
          takerFeeBps: opts.config.fees.takerBps,
          maxOrderLots: p.maxSizeLots,
        },
      ]),
    );
  }

  get seq(): number {
    return this.#seq;
  }

  // ---------------------------------------------------------------- commands

  /** Journals then applies one command. */
  apply(body: CommandBody): CommandResult {
    const cmd = stamp(body, this.#seq + 1, this.#o.clock.now());
    this.#o.journal?.append(this.#o.sessionId, cmd.seq, cmd.ts, commandToJson(cmd));
    return this.#run(cmd);
  }

  /** Applies a journaled command (restart, audit). */
  replay(json: unknown): CommandResult {
    return this.#run(commandFromJson(json as CommandJson));
  }

  #run(cmd: Command): CommandResult {
    const r = this.engine.apply(cmd);
    this.#seq = cmd.seq;
    this.version++;
    this.#o.metrics?.commands.inc({ type: cmd.type });
    if (r.ok) this.#onEvents(r.events);
    if (cmd.type === "settle" && r.ok) {
      this.#settlement = this.engine.settlement() ?? undefined;
      for (const t of adjustmentsToTransfers(this.#settlement?.adjustments ?? [])) {
        this.#logEvents.push({ type: "transfer", seq: this.#logEvents.length + 1, ts: cmd.ts, ...t });
      }
    }
    return r;
  }

  #onEvents(events: readonly EngineEvent[]): void {
    const hub = this.#o.hub;
    const touched = new Set<number>();
    for (const e of events) {
      switch (e.kind) {
        case "fill":
          this.#onFill(e);
          touched.add(e.pair);
          break;
        case "order_accepted":
          this.#orderTs.set(e.orderId, e.ts);
          touched.add(e.pair);
          hub?.publish("order", {
            event: "accepted",
            orderId: e.orderId,
            account: this.#o.addressOf(e.user) ?? "",
            accountId: e.user,
            pair: this.#pairs.get(e.pair)?.symbol ?? String(e.pair),
            side: e.side,
            orderType: e.orderType,
            price: e.price,
            size: e.size,
            ts: e.ts,
          });
          break;
        case "order_cancelled":
          this.#orderTs.delete(e.orderId);
          touched.add(e.pair);
          hub?.publish("order", {
            event: "cancelled",
            orderId: e.orderId,
            account: this.#o.addressOf(e.user) ?? "",
            accountId: e.user,
            pair: this.#pairs.get(e.pair)?.symbol ?? String(e.pair),
            side: e.side,
            price: e.price,
            size: e.remaining,
            reason: e.reason,
            ts: e.ts,
          });
          break;
        case "order_replaced":
          touched.add(e.pair);
          break;
        case "liquidated":
          if (e.fee > 0) {
            const quote = this.#o.config.assets.find((a) => this.#o.config.pairs.some((p) => p.quote === a.id))!;
            this.#logEvents.push({
              type: "transfer",
              seq: this.#logEvents.length + 1,
              ts: e.ts,
              tokenIndex: quote.id,
              from: e.user,
              to: this.#o.config.insurance,
              amount: BigInt(e.fee) * quote.unitBaseUnits,
              reason: "liquidation",
            });
          }
          break;
        case "phase_changed":
          break;
        default:
          break;
      }
    }
    for (const pair of touched) this.#pairVersions.set(pair, (this.#pairVersions.get(pair) ?? 0) + 1);
    if (hub !== undefined) for (const pair of touched) hub.publishBook(this.#pairs.get(pair)!.symbol, () => this.bookView(pair, 10) as object);
  }

  #onFill(e: FillEvent): void {
    this.#o.metrics?.fills.inc();
    this.#pairFills.set(e.pair, (this.#pairFills.get(e.pair) ?? 0) + 1);
    this.#logEvents.push({
      type: "fill",
      seq: this.#logEvents.length + 1,
      ts: e.ts,
      pairId: e.pair,
      maker: e.maker,
      taker: e.taker,
      takerSide: e.takerSide,
      priceTicks: BigInt(e.price),
      sizeLots: BigInt(e.size),
      makerFee: BigInt(e.makerFee),
      takerFee: BigInt(e.takerFee),
    });
    if (e.makerRemaining === 0) this.#orderTs.delete(e.makerOrderId);
    const cursor = ++this.#fillCursor;
    const add = (user: number, orderId: number, side: "buy" | "sell", liquidity: "maker" | "taker", fee: number) => {
      let list = this.#fills.get(user);
      if (list === undefined) this.#fills.set(user, (list = []));
      list.push({ cursor, fill: { orderId: String(orderId), pair: e.pair, side, price: e.price, size: e.size, liquidity, fee: BigInt(fee), ts: e.ts } });
      if (list.length > FILLS_KEPT_PER_USER) list.splice(0, list.length - FILLS_KEPT_PER_USER);
    };
    const makerSide = e.takerSide === "buy" ? "sell" : "buy";
    add(e.maker, e.makerOrderId, makerSide, "maker", e.makerFee);
    add(e.taker, e.takerOrderId, e.takerSide, "taker", e.takerFee);
    const meta = this.#pairs.get(e.pair)!;
    this.#o.hub?.publish("fill", {
      pair: meta.symbol,
      price: e.price,
      priceDisplay: priceDisplay(meta, e.price),
      size: e.size,
      takerSide: e.takerSide,
      maker: e.maker,
      taker: e.taker,
      ts: e.ts,
      seq: e.tradeId,
    });
  }

  /** Fills and value transfers so far, for the published fill log. */
  fillLogEvents(): FillLogEvent[] {
    return [...this.#logEvents];
  }

  settlement(): Settlement | undefined {
    return this.#settlement;
  }

  stateHash(): string {
    return String(this.engine.stateHash());
  }

  // ---------------------------------------------------------------- executor port

  phase(): PhaseView {
    return this.#o.phase();
  }

  pair(pair: number): PairView | undefined {
    return this.#pairViews.get(pair);
  }

  pairBySymbol(symbol: string): PairView | undefined {
    for (const p of this.#pairViews.values()) if (p.symbol === symbol) return p;
    return undefined;
  }

  market(pair: number, levels: number, trades: number): MarketView {
    const depth = this.engine.depth(pair, levels);
    const recent = this.engine.recentTrades(pair, trades);
    return {
      pair,
      bids: depth.bids.map((l) => ({ price: l.price, size: l.size })),
      asks: depth.asks.map((l) => ({ price: l.price, size: l.size })),
      mid: this.engine.mid(pair),
      mark: this.engine.mark(pair),
      // The engine lists newest first; the executor's port wants newest last.
      trades: recent.map((t) => ({ price: t.price, size: t.size, takerSide: t.takerSide, ts: t.ts })).reverse(),
    };
  }

  account(user: number): AccountView {
    const a = this.engine.account(user);
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
    const out: SubmitOutcome = { cancels: [], orders: [] };
    for (const id of request.cancels) {
      const r = id === "all" ? this.apply({ type: "cancel_all", user }) : this.apply({ type: "cancel", user, orderId: Number(id) });
      out.cancels.push(r.ok ? { orderId: id, accepted: true } : { orderId: id, accepted: false, reason: r.reason });
    }
    request.orders.forEach((o, index) => {
      const r = this.apply({ type: "place", user, pair: o.pair, side: o.side, orderType: o.type, price: o.price, size: o.size });
      if (r.ok) {
        const filled = r.order?.filled ?? 0;
        const resting = r.order?.status === "resting" ? (r.order.remaining ?? 0) : 0;
        out.orders.push({ index, accepted: true, orderId: String(r.order?.orderId ?? r.seq), filled, resting });
        this.#o.metrics?.orders.inc({ outcome: "accepted" });
      } else {
        out.orders.push({ index, accepted: false, reason: r.reason, filled: 0, resting: 0 });
        this.#o.metrics?.orders.inc({ outcome: r.reason });
      }
    });
    return out;
  }

  liquidate(user: number): LiquidationOutcome {
    const before = this.engine.account(user).openOrders.length;
    const r = this.apply({ type: "liquidate", user });
    if (!r.ok) return { cancelledOrders: 0, summary: `not liquidated: ${r.reason}` };
    const liq = r.events.find((e) => e.kind === "liquidated");
    return {
      cancelledOrders: before,
      summary:
        liq?.kind === "liquidated"
          ? `liquidated below maintenance margin: equity ${liq.equityBefore} -> ${liq.equityAfter}, fee ${liq.fee}${liq.covered ? "" : ", liabilities left"}`
          : "liquidated",
    };
  }

  // ---------------------------------------------------------------- API views

  /** Changes whenever the pair's book may have (orders placed, cancelled, filled). */
  pairVersion(pair: number): number {
    return this.#pairVersions.get(pair) ?? 0;
  }

  /** Fills in the pair so far this session. */
  pairFills(pair: number): number {
    return this.#pairFills.get(pair) ?? 0;
  }

  bookView(pair: number, levels: number): unknown {
    const key = `${pair}:${levels}`;
    const hit = this.#bookCache.get(key);
    if (hit !== undefined && hit.version === this.version) return hit.view;
    const meta = this.#pairs.get(pair)!;
    const depth = this.engine.depth(pair, levels);
    const mid = this.engine.mid(pair);
    const lv = (l: { price: number; size: number; orders: number }) => ({ price: l.price, size: l.size, orders: l.orders, priceDisplay: priceDisplay(meta, l.price) });
    const view = {
      pair: meta.symbol,
      bids: depth.bids.map(lv),
      asks: depth.asks.map(lv),
      mid,
      mark: this.engine.mark(pair),
      midDisplay: mid === null ? null : priceDisplay(meta, mid),
      ts: this.#o.clock.now(),
    };
    this.#bookCache.set(key, { version: this.version, view });
    return view;
  }

  tradesView(pair: number, limit: number) {
    const meta = this.#pairs.get(pair)!;
    return this.engine
      .recentTrades(pair, limit)
      .map((t) => ({
        pair: meta.symbol,
        price: t.price,
        size: t.size,
        priceDisplay: priceDisplay(meta, t.price),
        takerSide: t.takerSide,
        maker: t.maker,
        taker: t.taker,
        ts: t.ts,
        seq: t.tradeId,
      }));
  }

  /** PnL leaderboard of the session's participants (cached for a quarter second). */
  leaderboardView(participants: readonly { accountId: number; address: string; brokerId: string }[]): unknown[] {
    const now = this.#o.clock.now();
    const c = this.#boardCache;
    if (c !== undefined && (c.version === this.version || now - c.at < 250)) return c.rows;
    const quote = this.#o.pairs[0];
    const rows = participants
      .map((p) => {
        const a = this.engine.account(p.accountId);
        return { accountId: p.accountId, account: p.address, broker: p.brokerId, equity: a.equity, pnl: a.pnl };
      })
      .sort((x, y) => y.pnl - x.pnl || x.accountId - y.accountId)
      .map((r, i) => ({
        rank: i + 1,
        accountId: r.accountId,
        account: r.account,
        broker: r.broker,
        equity: String(r.equity),
        pnl: String(r.pnl),
        pnlDisplay: quote === undefined ? String(r.pnl) : (r.pnl / 10 ** quote.quoteDecimals).toFixed(2),
      }));
    this.#boardCache = { version: this.version, at: now, rows };
    return rows;
  }

  accountView(accountId: number) {
    const a: CoreAccountView = this.engine.account(accountId);
    const pairs = this.#pairs;
    return {
      positions: a.positions.map((p) => ({ asset: p.asset, amount: p.baseUnits, reserved: BigInt(p.reserved) * (this.#o.config.assets.find((x) => x.id === p.asset)?.unitBaseUnits ?? 1n) })),
      openOrders: a.openOrders.map((o) => ({
        id: o.orderId,
        pair: pairs.get(o.pair)?.symbol ?? String(o.pair),
        side: o.side,
        type: o.orderType,
        price: o.price,
        size: o.size,
        remaining: o.remaining,
      })),
      marginStatus: a.marginStatus,
      equity: String(a.equity),
      initialMargin: String(a.initialMargin),
      maintenanceMargin: String(a.maintenanceMargin),
      pnl: String(a.pnl),
    };
  }
}

/**
 * The closing cross reports signed per-account changes; the fill log records value moving from
 * one account to another. Within each group that nets to zero (step, pair, asset; coarser groups
 * when a finer one does not net), payers are matched to receivers in account order, which gives
 * transfers implying exactly the same per-account changes.
 */
export function adjustmentsToTransfers(
  adjustments: readonly ClosingAdjustment[],
): { tokenIndex: number; from: number; to: number; amount: bigint; reason: string }[] {
  const out: { tokenIndex: number; from: number; to: number; amount: bigint; reason: string }[] = [];
  const groups = new Map<string, ClosingAdjustment[]>();
  const add = (key: string, a: ClosingAdjustment) => {
    const g = groups.get(key);
    if (g === undefined) groups.set(key, [a]);
    else g.push(a);
  };
  for (const a of adjustments) if (a.amount !== 0n) add(`${a.step}|${a.pair}|${a.asset}`, a);
  const leftovers: ClosingAdjustment[] = [];
  const settleGroup = (items: ClosingAdjustment[], reason: string): boolean => {
    const net = items.reduce((s, a) => s + a.amount, 0n);
    if (net !== 0n) return false;
    const payers = items.filter((a) => a.amount < 0n).map((a) => ({ user: a.user, left: -a.amount })).sort((x, y) => x.user - y.user);
    const payees = items.filter((a) => a.amount > 0n).map((a) => ({ user: a.user, left: a.amount })).sort((x, y) => x.user - y.user);
    let i = 0;
    let j = 0;
    while (i < payers.length && j < payees.length) {
      const p = payers[i]!;
      const q = payees[j]!;
      const amount = p.left < q.left ? p.left : q.left;
      if (p.user !== q.user) out.push({ tokenIndex: items[0]!.asset, from: p.user, to: q.user, amount, reason });
      p.left -= amount;
      q.left -= amount;
      if (p.left === 0n) i++;
      if (q.left === 0n) j++;
    }
    return true;
  };
  for (const items of groups.values()) if (!settleGroup(items, items[0]!.step)) leftovers.push(...items);
  if (leftovers.length > 0) {
    const byAsset = new Map<number, ClosingAdjustment[]>();
    for (const a of leftovers) byAsset.set(a.asset, [...(byAsset.get(a.asset) ?? []), a]);
    for (const items of byAsset.values()) {
      const steps = [...new Set(items.map((a) => a.step))].join("_");
      if (!settleGroup(items, steps)) throw new Error(`closing adjustments of asset ${items[0]!.asset} do not net to zero`);
    }
  }
  return out;
}
