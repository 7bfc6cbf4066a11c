// WebSocket fan-out. The pit publishes into the hub (an array push, no serialization, no I/O),
// and the hub flushes on its own timer: each message is serialized once and written to every
// subscriber whose socket is keeping up. A subscriber whose unsent bytes exceed the limit is
// terminated, so a slow reader can never hold memory or time from the pit.
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
import type { StreamClient } from "../api/port.ts";

export interface HubOptions {
  maxBufferedBytes: number;
  bookThrottleMs: number;
  /** How often queued messages are written out. */
  flushMs?: number;
  /** Most "order" messages sent per flush; the rest are counted, not sent (fills never are dropped). */
  maxOrdersPerFlush?: number;
  hello: () => object;
}

export interface HubStats {
  clients: number;
  dropped: number;
  messages: number;
  bytes: number;
  ordersSkipped: number;
}

export class StreamHub {
  readonly #clients = new Set<StreamClient>();
  readonly #opts: Required<HubOptions>;
  #queue: string[] = [];
  #batches = new Map<string, object[]>();
  #orders = 0;
  #books = new Map<string, () => object>();
  #lastBookFlush = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly stats: HubStats = { clients: 0, dropped: 0, messages: 0, bytes: 0, ordersSkipped: 0 };

  constructor(opts: HubOptions) {
    this.#opts = { flushMs: 100, maxOrdersPerFlush: 200, ...opts };
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.flush(), this.#opts.flushMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    for (const c of this.#clients) c.close(1001, "keeper stopping");
    this.#clients.clear();
    this.stats.clients = 0;
  }

  get size(): number {
    return this.#clients.size;
  }

  /** Adds a subscriber and sends it the snapshot; returns its unsubscribe. */
  add(client: StreamClient): () => void {
    this.#clients.add(client);
    this.stats.clients = this.#clients.size;
    this.#write(client, JSON.stringify({ type: "hello", ...this.#opts.hello() }));
    return () => {
      this.#clients.delete(client);
      this.stats.clients = this.#clients.size;
    };
  }

  publish(type: string, payload: object): void {
    if (this.#clients.size === 0) return;
    if (type === "order" || type === "fill" || type === "outcry") {
      if (type === "order" && this.#orders++ >= this.#opts.maxOrdersPerFlush) {
        this.stats.ordersSkipped++;
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
    if (this.#clients.size === 0) return;
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
    if (this.#queue.length === 0) return;
    const queue = this.#queue;
    this.#queue = [];
    this.#orders = 0;
    for (const client of this.#clients) {
      // Behind since the last flush: dropped. Checked once per flush, before writing, so a burst
      // within one flush never counts against a client that drains between flushes.
      if (!this.#keepingUp(client)) continue;
      // One syscall per subscriber per flush: ws frames are corked on its socket, then written together.
      const socket = (client as { _socket?: { cork(): void; uncork(): void } })._socket;
      socket?.cork();
      for (const data of queue) {
        if (!this.#send(client, data)) break;
      }
      socket?.uncork();
    }
  }

  /** Sends unless the client is too far behind, in which case it is dropped. */
  #write(client: StreamClient, data: string): boolean {
    return this.#keepingUp(client) && this.#send(client, data);
  }

  #keepingUp(client: StreamClient): boolean {
    if (client.bufferedAmount <= this.#opts.maxBufferedBytes) return true;
    this.#clients.delete(client);
    this.stats.clients = this.#clients.size;
    this.stats.dropped++;
    client.terminate();
    return false;
  }

  #send(client: StreamClient, data: string): boolean {
    try {
      client.send(data);
    } catch {
      this.#clients.delete(client);
      this.stats.clients = this.#clients.size;
      return false;
    }
    this.stats.messages++;
    this.stats.bytes += data.length;
    return true;
  }
}
