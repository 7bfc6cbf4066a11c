// WebSocket fan-out. The pit publishes into the hub (an array push, no serialization, no I/O),
// and the hub flushes on its own timer: each message is serialized once, then written to the
// in-process subscribers (a Fanout: a subscriber whose unsent bytes exceed the limit is
// terminated, so a slow reader can never hold memory or time from the pit) and handed to each
// relay: the API thread, which writes them to its WebSocket clients off the pit's thread.
//
// Messages (one JSON object per frame, with a `type`):
//   hello       {session, books, trades, outcry, leaderboard, serverTime}: first message, a snapshot
//   phase       {session}: the phase changed
//   order       {event:"accepted"|"cancelled", account, pair, side, price, size, orderId, ts, items}
//   fill        {pair, price, size, takerSide, maker, taker, ts, seq, items}
//   outcry      {account, accountId, broker, line, ts, items}
//   pnl         {rows}: leaderboard rows, at most once a second
//   book        {pair, bids, asks, mid, ...}: top levels, at most one per pair per throttle window
//   settlement  {sessionId, status, batchesConfirmed, batchCount, ...}
// order, fill and outcry are conflated per flush: one message carries every event of the flush in
// `items` (oldest first) and repeats the newest one's fields at top level, so a client that reads
// only the top level still sees the latest event.
import { Fanout, type FanoutStats, type StreamClient } from "./fanout.ts";

export interface HubOptions {
  maxBufferedBytes: number;
  bookThrottleMs: number;
  /** How often queued messages are written out. */
  flushMs?: number;
  /** Most "order" messages sent per flush; the rest are counted, not sent (fills never are dropped). */
  maxOrdersPerFlush?: number;
}

export interface HubStats extends FanoutStats {
  ordersSkipped: number;
}

/** Receives every flush's messages, serialized (the API thread's feed). */
export type HubRelay = (messages: string[]) => void;

export class StreamHub {
  readonly #local: Fanout;
  readonly #opts: Required<HubOptions>;
  readonly #relays: HubRelay[] = [];
  /** Subscribers held by relays (reported by the API thread). */
  #remote: FanoutStats = { clients: 0, dropped: 0, messages: 0, bytes: 0 };
  #queue: string[] = [];
  #batches = new Map<string, object[]>();
  #orders = 0;
  #ordersSkipped = 0;
  #books = new Map<string, () => object>();
  #lastBookFlush = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(opts: HubOptions) {
    this.#opts = { flushMs: 100, maxOrdersPerFlush: 200, ...opts };
    this.#local = new Fanout({ maxBufferedBytes: opts.maxBufferedBytes });
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.flush(), this.#opts.flushMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#local.closeAll(1001, "keeper stopping");
  }

  /** Subscribers, in-process and behind relays. */
  get size(): number {
    return this.#local.size + this.#remote.clients;
  }

  get stats(): HubStats {
    const l = this.#local.stats;
    const r = this.#remote;
    return {
      clients: l.clients + r.clients,
      dropped: l.dropped + r.dropped,
      messages: l.messages + r.messages,
      bytes: l.bytes + r.bytes,
      ordersSkipped: this.#ordersSkipped,
    };
  }

  /** Adds an in-process subscriber and sends it `hello` (the snapshot) first; returns its unsubscribe. */
  add(client: StreamClient, hello: object): () => void {
    return this.#local.add(client, JSON.stringify({ type: "hello", ...hello }));
  }

  /** Hands every flush's messages to `relay` too; while one is attached the hub always publishes. */
  relay(relay: HubRelay): () => void {
    this.#relays.push(relay);
    return () => {
      const i = this.#relays.indexOf(relay);
      if (i >= 0) this.#relays.splice(i, 1);
    };
  }

  /** The relays' subscriber counts, as last reported (merged into size and stats). */
  setRemoteStats(stats: FanoutStats): void {
    this.#remote = { ...stats };
  }

  #listened(): boolean {
    // A relay's subscriber count arrives late: one that joined since must not miss a message.
    return this.#local.size > 0 || this.#relays.length > 0;
  }

  publish(type: string, payload: object): void {
    if (!this.#listened()) return;
    if (type === "order" || type === "fill" || type === "outcry") {
      if (type === "order" && this.#orders++ >= this.#opts.maxOrdersPerFlush) {
        this.#ordersSkipped++;
        return;
      }
      let b = this.#batches.get(type);
      if (b === undefined) this.#batches.set(type, (b = []));
      b.push(payload);
      return;
    }
    this.#queue.push(JSON.stringify({ type, ...payload }));
  }

  /** Marks a pair's book changed; its view is built (once) when the throttle window lets it out. */
  publishBook(pair: string, view: () => object): void {
    if (!this.#listened()) return;
    this.#books.set(pair, view);
  }

  flush(now = Date.now()): void {
    for (const [type, items] of this.#batches) {
      if (items.length > 0) this.#queue.push(JSON.stringify({ type, ...items[items.length - 1]!, items }));
    }
    this.#batches.clear();
    if (this.#books.size > 0 && now - this.#lastBookFlush >= this.#opts.bookThrottleMs) {
      for (const view of this.#books.values()) this.#queue.push(JSON.stringify({ type: "book", ...view() }));
      this.#books.clear();
      this.#lastBookFlush = now;
    }
    this.#orders = 0;
    if (this.#queue.length === 0) return;
    const queue = this.#queue;
    this.#queue = [];
    this.#local.write(queue);
    for (const r of this.#relays) r(queue);
  }
}
