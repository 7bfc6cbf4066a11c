// What the pit's thread tells the API thread about the public reads: a delta of the parts that
// changed since the last one (a pair's book when that pair was touched, only the new trades and
// outcry lines, the leaderboard when it was rebuilt, the session on a phase change, health once a
// second). Building one costs a few version comparisons when nothing moved, so it can run every
// few tens of milliseconds without showing in the tick loop.
import type { KeeperService } from "./service.ts";
import type { SessionPit } from "../session/pit.ts";
import type { Clock } from "../executor/clock.ts";
import type { BookWire, HealthWire, LeaderboardRowWire, OutcryWire, SessionWire, TradeWire } from "./wire.ts";

/** Most outcry lines and trades per pair a read can ask for (the routes' limit maximum). */
export const READ_LIST_MAX = 500;
/** Most book levels a read can ask for (the route's levels maximum). */
export const READ_BOOK_LEVELS = 100;

export interface ReadDelta {
  /** The keeper's clock and the wall clock when this was built: the API thread's serverTime follows them. */
  clock: { now: number; wall: number };
  /** With the session: the pair symbols, in the market's order. */
  session?: { view: SessionWire; pairs: string[] };
  /** Whole views at READ_BOOK_LEVELS, per pair symbol. */
  books?: Record<string, BookWire>;
  /** Trades per pair symbol, newest first: new ones, or all (reset) when the session changed. */
  trades?: Record<string, { reset: boolean; newest: TradeWire[] }>;
  /** New outcry lines, newest first. */
  outcry?: OutcryWire[];
  leaderboard?: LeaderboardRowWire[];
  health?: HealthWire;
}

/** Builds the deltas from the service's public reads and change counters only. */
export class ReadFeed {
  readonly #service: KeeperService;
  readonly #clock: Clock;
  readonly #healthMs: number;
  #sessionKey = "";
  #pit: SessionPit | null | undefined = undefined;
  #bookKeys = new Map<string, string>();
  #lastTrade = new Map<string, { fills: number; seq: number }>();
  #outcry = 0;
  #board: LeaderboardRowWire[] | undefined;
  #healthAt = 0;

  constructor(opts: { service: KeeperService; clock: Clock; healthMs?: number }) {
    this.#service = opts.service;
    this.#clock = opts.clock;
    this.#healthMs = opts.healthMs ?? 1_000;
  }

  /** Everything, as if nothing had been sent (a new API thread). */
  full(): ReadDelta {
    this.#sessionKey = "";
    this.#pit = undefined;
    this.#bookKeys.clear();
    this.#lastTrade.clear();
    this.#outcry = Math.max(0, this.#service.outcryCount - READ_LIST_MAX);
    this.#board = undefined;
    this.#healthAt = 0;
    return this.next()!;
  }

  /** What changed since the last delta; null when nothing did and health is not due. */
  next(): ReadDelta | null {
    const wall = Date.now();
    const d: ReadDelta = { clock: { now: this.#clock.now(), wall } };
    let changed = false;
    const service = this.#service;
    const key = service.sessionKey();
    if (key !== null) {
      const pairs = service.pairs();
      if (key !== this.#sessionKey) {
        this.#sessionKey = key;
        d.session = { view: service.session(), pairs: pairs.map((p) => p.symbol) };
        changed = true;
      }
      const pit = service.currentPit();
      const newPit = pit !== this.#pit;
      this.#pit = pit;
      for (const p of pairs) {
        const bookKey = pit === null ? `none:${key}` : `${key}:${pit.pairVersion(p.id)}`;
        if (newPit || this.#bookKeys.get(p.symbol) !== bookKey) {
          this.#bookKeys.set(p.symbol, bookKey);
          (d.books ??= {})[p.symbol] = service.book(p.symbol, READ_BOOK_LEVELS)!;
          changed = true;
        }
        const trades = this.#trades(pit, p.id, p.symbol, newPit);
        if (trades !== null) {
          (d.trades ??= {})[p.symbol] = trades;
          changed = true;
        }
      }
      const board = service.leaderboard();
      if (board !== this.#board && !(board.length === 0 && this.#board?.length === 0)) {
        this.#board = board;
        d.leaderboard = board;
        changed = true;
      }
    }
    const shouted = service.outcryCount - this.#outcry;
    if (shouted > 0) {
      d.outcry = service.outcry(Math.min(shouted, READ_LIST_MAX));
      this.#outcry = service.outcryCount;
      changed = true;
    }
    if (changed || wall - this.#healthAt >= this.#healthMs) {
      d.health = service.health();
      this.#healthAt = wall;
      changed = true;
    }
    return changed ? d : null;
  }

  #trades(pit: SessionPit | null, pair: number, symbol: string, newPit: boolean): { reset: boolean; newest: TradeWire[] } | null {
    if (pit === null) return newPit ? { reset: true, newest: [] } : null;
    const fills = pit.pairFills(pair);
    const last = this.#lastTrade.get(symbol);
    if (!newPit && last !== undefined && last.fills === fills) return null;
    let reset = newPit || last === undefined;
    let newest: TradeWire[] = [];
    if (!reset) {
      // One more than the new fills, to see the last one sent: if it is not there, more changed
      // than counted and the whole list is sent again.
      const got = this.#service.trades(symbol, fills - last!.fills + 1) ?? [];
      const at = got.findIndex((t) => t.seq <= last!.seq);
      if (at < 0) reset = true;
      else newest = got.slice(0, at);
    }
    if (reset) newest = this.#service.trades(symbol, READ_LIST_MAX) ?? [];
    this.#lastTrade.set(symbol, { fills, seq: newest[0]?.seq ?? last?.seq ?? 0 });
    return { reset, newest };
  }
}
