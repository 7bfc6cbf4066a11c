// What the pit's thread tells the API thread about the public reads: a delta of the parts that
// changed since the last one (a pair's book when that pair was touched, only the new trades and
// outcry lines, the leaderboard when it was rebuilt, the session on a phase change, health once a
// second). Building one costs a few version comparisons when nothing moved, so it can run every
// few tens of milliseconds without showing in the tick loop.
import type { KeeperService } from "./service.ts";
import type { SessionRunner } from "../session/runner.ts";
import type { SessionPit } from "../session/pit.ts";
import type { Clock } from "../executor/clock.ts";
import type { SessionView } from "./port.ts";

/** Most outcry lines and trades per pair a read can ask for (the routes' limit maximum). */
export const READ_LIST_MAX = 500;
/** Most book levels a read can ask for (the route's levels maximum). */
export const READ_BOOK_LEVELS = 100;

export interface ReadDelta {
  /** The keeper's clock and the wall clock when this was built: the API thread's serverTime follows them. */
  clock: { now: number; wall: number };
  /** With the session: the pair symbols, in the market's order. */
  session?: { view: SessionView; pairs: string[] };
  /** Whole views at READ_BOOK_LEVELS, per pair symbol. */
  books?: Record<string, unknown>;
  /** Trades per pair symbol, newest first: new ones, or all (reset) when the session changed. */
  trades?: Record<string, { reset: boolean; newest: unknown[] }>;
  /** New outcry lines, newest first. */
  outcry?: unknown[];
  leaderboard?: unknown[];
  health?: { ok: boolean; [k: string]: unknown };
}

export class ReadFeed {
  readonly #service: KeeperService;
  readonly #runner: SessionRunner;
  readonly #clock: Clock;
  readonly #healthMs: number;
  #sessionKey = "";
  #pit: SessionPit | null | undefined = undefined;
  #bookKeys = new Map<string, string>();
  #lastTrade = new Map<string, { fills: number; seq: number }>();
  #outcry = 0;
  #board: unknown[] | undefined;
  #healthAt = 0;

  constructor(opts: { service: KeeperService; runner: SessionRunner; clock: Clock; healthMs?: number }) {
    this.#service = opts.service;
    this.#runner = opts.runner;
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
    const runner = this.#runner;
    const cur = runner.current as SessionRunner["current"] | undefined;
    if (cur !== undefined) {
      const key = `${cur.id}:${cur.phase}:${cur.phaseStartedAt}:${cur.phaseEndsAt}`;
      if (key !== this.#sessionKey) {
        this.#sessionKey = key;
        d.session = { view: this.#service.session(), pairs: runner.market.pairs.map((p) => p.symbol) };
        changed = true;
      }
      const pit = runner.pit;
      const newPit = pit !== this.#pit;
      this.#pit = pit;
      for (const p of runner.market.pairs) {
        const bookKey = pit === null ? `none:${key}` : `${key}:${pit.pairVersion(p.id)}`;
        if (newPit || this.#bookKeys.get(p.symbol) !== bookKey) {
          this.#bookKeys.set(p.symbol, bookKey);
          (d.books ??= {})[p.symbol] = this.#service.book(p.symbol, READ_BOOK_LEVELS);
          changed = true;
        }
        const trades = this.#trades(pit, p.id, p.symbol, newPit);
        if (trades !== null) {
          (d.trades ??= {})[p.symbol] = trades;
          changed = true;
        }
      }
      const board = this.#service.leaderboard();
      if (board !== this.#board && !(board.length === 0 && this.#board?.length === 0)) {
        this.#board = board;
        d.leaderboard = board;
        changed = true;
      }
    }
    const shouted = this.#service.outcryCount - this.#outcry;
    if (shouted > 0) {
      d.outcry = this.#service.outcry(Math.min(shouted, READ_LIST_MAX));
      this.#outcry = this.#service.outcryCount;
      changed = true;
    }
    if (changed || wall - this.#healthAt >= this.#healthMs) {
      d.health = this.#service.health();
      this.#healthAt = wall;
      changed = true;
    }
    return changed ? d : null;
  }

  #trades(pit: SessionPit | null, pair: number, symbol: string, newPit: boolean): { reset: boolean; newest: unknown[] } | null {
    if (pit === null) return newPit ? { reset: true, newest: [] } : null;
    const fills = pit.pairFills(pair);
    const last = this.#lastTrade.get(symbol);
    if (!newPit && last !== undefined && last.fills === fills) return null;
    let reset = newPit || last === undefined;
    let newest: { seq: number }[] = [];
    if (!reset) {
      // One more than the new fills, to see the last one sent: if it is not there, more changed
      // than counted and the whole list is sent again.
      const got = pit.tradesView(pair, fills - last!.fills + 1);
      const at = got.findIndex((t) => t.seq <= last!.seq);
      if (at < 0) reset = true;
      else newest = got.slice(0, at);
    }
    if (reset) newest = pit.tradesView(pair, READ_LIST_MAX);
    this.#lastTrade.set(symbol, { fills, seq: newest[0]?.seq ?? last?.seq ?? 0 });
    return { reset, newest };
  }
}
