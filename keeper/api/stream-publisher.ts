// The session's events as the WebSocket stream's messages (their shapes: streamSchemas in
// api/schemas.ts): phase changes, every order accepted or cancelled, every fill, books as they
// change, outcry, settlement progress, and the leaderboard once a second. It listens to the
// runner and to each pit it builds; the hub serializes and fans out.
import type { Command } from "../core/commands.ts";
import type { CommandResult } from "../core/types.ts";
import type { SessionRunner } from "../session/runner.ts";
import type { SessionPit } from "../session/pit.ts";
import type { StreamHub } from "../stream/hub.ts";
import type { KeeperService } from "./service.ts";
import type { StreamPayloads } from "./wire.ts";

export class StreamPublisher {
  readonly #runner: SessionRunner;
  readonly #hub: StreamHub;
  readonly #service: KeeperService;
  #unsubscribePit: (() => void) | undefined;
  #pnlTimer: NodeJS.Timeout | undefined;

  constructor(runner: SessionRunner, hub: StreamHub, service: KeeperService) {
    this.#runner = runner;
    this.#hub = hub;
    this.#service = service;
    runner.events.on("phase", () => this.#publish("phase", { session: service.session() }));
    runner.events.on("outcry", (line) => this.#publish("outcry", line));
    runner.events.on("settlement", (p) => this.#publish("settlement", p));
    runner.events.on("pit", (pit) => this.#attach(pit));
    if (runner.pit !== null) this.#attach(runner.pit);
  }

  start(): void {
    this.#pnlTimer = setInterval(() => {
      if (this.#runner.pit === null || this.#hub.size === 0) return;
      this.#publish("pnl", { rows: this.#service.leaderboard() });
    }, 1_000);
    this.#pnlTimer.unref();
  }

  stop(): void {
    if (this.#pnlTimer !== undefined) clearInterval(this.#pnlTimer);
    this.#unsubscribePit?.();
  }

  #publish<K extends keyof StreamPayloads>(type: K, payload: StreamPayloads[K]): void {
    this.#hub.publish(type, payload as object);
  }

  #attach(pit: SessionPit): void {
    this.#unsubscribePit?.();
    this.#unsubscribePit = pit.subscribe((cmd, r) => this.#onCommand(cmd, r));
  }

  #onCommand(_cmd: Command, r: CommandResult): void {
    if (!r.ok) return;
    const pairs = this.#runner.market.pairs;
    const symbol = (id: number) => pairs.find((p) => p.id === id)?.symbol ?? String(id);
    const address = (accountId: number) => this.#runner.addressOf(accountId) ?? "";
    const touched = new Set<number>();
    for (const e of r.events) {
      switch (e.kind) {
        case "order_accepted":
          touched.add(e.pair);
          this.#publish("order", {
            event: "accepted",
            orderId: e.orderId,
            account: address(e.user),
            accountId: e.user,
            pair: symbol(e.pair),
            side: e.side,
            orderType: e.orderType,
            price: e.price,
            size: e.size,
            ts: e.ts,
          });
          break;
        case "order_cancelled":
          touched.add(e.pair);
          this.#publish("order", {
            event: "cancelled",
            orderId: e.orderId,
            account: address(e.user),
            accountId: e.user,
            pair: symbol(e.pair),
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
        case "fill":
          touched.add(e.pair);
          this.#publish("fill", { pair: symbol(e.pair), price: e.price, size: e.size, takerSide: e.takerSide, maker: e.maker, taker: e.taker, ts: e.ts, seq: e.tradeId });
          break;
        default:
          break;
      }
    }
    for (const pair of touched) {
      const sym = symbol(pair);
      this.#hub.publishBook(sym, () => this.#service.book(sym, 10) ?? { pair: sym });
    }
  }
}
