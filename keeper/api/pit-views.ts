// The pit's public read views, in the API's wire shapes (api/wire.ts): a pair's book, its recent
// trades, the leaderboard and a user's account. Built from the engine's reads and cached on the
// pit's version, so a burst of identical reads between two commands costs one build.
import type { SessionPit } from "../session/pit.ts";
import type { PairMeta } from "../session/pairs.ts";
import type { Clock } from "../executor/clock.ts";
import type { BookWire, LeaderboardRowWire, TradeWire } from "./wire.ts";

/** A user's part of the pit, before the account route adds the vault's side. */
export interface AccountPit {
  positions: { asset: number; amount: bigint; reserved: bigint }[];
  openOrders: { id: number; pair: string; side: "buy" | "sell"; type: "limit" | "ioc" | "post_only"; price: number; size: number; remaining: number }[];
  marginStatus: "ok" | "below_im" | "below_mm";
  equity: string;
  initialMargin: string;
  maintenanceMargin: string;
  pnl: string;
}

export interface BoardParticipant {
  accountId: number;
  address: string;
  brokerId: string;
}

export class PitViews {
  readonly pit: SessionPit;
  readonly #pairs: Map<number, PairMeta>;
  readonly #clock: Clock;
  #bookCache = new Map<string, { version: number; view: BookWire }>();
  #boardCache: { version: number; at: number; rows: LeaderboardRowWire[] } | undefined;

  constructor(pit: SessionPit, pairs: readonly PairMeta[], clock: Clock) {
    this.pit = pit;
    this.#pairs = new Map(pairs.map((p) => [p.id, p]));
    this.#clock = clock;
  }

  book(pair: number, levels: number): BookWire {
    const key = `${pair}:${levels}`;
    const version = this.pit.version;
    const hit = this.#bookCache.get(key);
    if (hit !== undefined && hit.version === version) return hit.view;
    const reads = this.pit.reads;
    const depth = reads.depth(pair, levels);
    const lv = (l: { price: number; size: number; orders: number }) => ({ price: l.price, size: l.size, orders: l.orders });
    const view: BookWire = {
      pair: this.#pairs.get(pair)!.symbol,
      bids: depth.bids.map(lv),
      asks: depth.asks.map(lv),
      mid: reads.mid(pair),
      mark: reads.mark(pair),
      ts: this.#clock.now(),
    };
    this.#bookCache.set(key, { version, view });
    return view;
  }

  /** Newest first. */
  trades(pair: number, limit: number): TradeWire[] {
    const symbol = this.#pairs.get(pair)!.symbol;
    return this.pit.reads.recentTrades(pair, limit).map((t) => ({
      pair: symbol,
      price: t.price,
      size: t.size,
      takerSide: t.takerSide,
      maker: t.maker,
      taker: t.taker,
      ts: t.ts,
      seq: t.tradeId,
      // The schema's flag for a request for quote's trade: without it history shows a block as a book trade.
      ...(t.block === true ? { block: true } : {}),
    }));
  }

  /** PnL leaderboard of the session's participants (rebuilt at most every quarter second). */
  leaderboard(participants: readonly BoardParticipant[]): LeaderboardRowWire[] {
    const now = this.#clock.now();
    const version = this.pit.version;
    const c = this.#boardCache;
    if (c !== undefined && (c.version === version || now - c.at < 250)) return c.rows;
    const reads = this.pit.reads;
    const rows = participants
      .map((p) => {
        const a = reads.account(p.accountId);
        return { accountId: p.accountId, account: p.address, broker: p.brokerId, equity: a.equity, pnl: a.pnl };
      })
      .sort((x, y) => y.pnl - x.pnl || x.accountId - y.accountId)
      .map((r, i) => ({ rank: i + 1, accountId: r.accountId, account: r.account, broker: r.broker, equity: String(r.equity), pnl: String(r.pnl) }));
    this.#boardCache = { version, at: now, rows };
    return rows;
  }

  account(accountId: number): AccountPit {
    const a = this.pit.reads.account(accountId);
    const assets = this.pit.config.assets;
    return {
      positions: a.positions.map((p) => ({
        asset: p.asset,
        amount: p.baseUnits,
        reserved: BigInt(p.reserved) * (assets.find((x) => x.id === p.asset)?.unitBaseUnits ?? 1n),
      })),
      openOrders: a.openOrders.map((o) => ({
        id: o.orderId,
        pair: this.#pairs.get(o.pair)?.symbol ?? String(o.pair),
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
