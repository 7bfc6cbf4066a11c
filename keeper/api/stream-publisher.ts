// The session's events as the WebSocket stream's messages (their shapes: streamSchemas in
// api/schemas.ts): phase changes, every order accepted or cancelled, every fill, books as they
// change, outcry, every liquidation, settlement progress, and the leaderboard once a second. It
// listens to the runner and to each pit it builds; the hub serializes and fans out.
//
// A liquidation is the keeper's own liquidate command in the pit (the executor sends it every tick
// for every account below maintenance margin): it is published from that command's events, read
// the way the executor reads them (session/executor-port.ts `liquidationOf`), so the stream, the
// executor's log and the broker's next request say the same thing.
import type { Command } from "../core/commands.ts";
import type { CommandResult, EngineEvent } from "../core/types.ts";
import type { PairView } from "../executor/pit-port.ts";
import { liquidationOf } from "../session/executor-port.ts";
import type { SessionRunner } from "../session/runner.ts";
import type { SessionPit } from "../session/pit.ts";
import type { StreamHub } from "../stream/hub.ts";
import type { KeeperService } from "./service.ts";
import type { LiquidationWire, StreamPayloads } from "./wire.ts";

type PairLookup = ReadonlyMap<number, Pick<PairView, "pair" | "symbol" | "base" | "quote" | "lotSize">>;

export class StreamPublisher {
  readonly #runner: SessionRunner;
  readonly #hub: StreamHub;
  readonly #service: KeeperService;
  #unsubscribePit: (() => void) | undefined;
  #pnlTimer: NodeJS.Timeout | undefined;
  #pairs: PairLookup = new Map();

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
    this.#pairs = new Map(
      this.#runner.market.pairs.map((p) => [
        p.id,
        {
          pair: p.id,
          symbol: p.symbol,
          base: { asset: p.base, symbol: p.baseSymbol, decimals: p.baseDecimals },
          quote: { asset: p.quote, symbol: p.quoteSymbol, decimals: p.quoteDecimals },
          lotSize: p.lotSize,
        },
      ]),
    );
    this.#unsubscribePit = pit.subscribe((cmd, r) => this.#onCommand(cmd, r));
  }

  #onCommand(cmd: Command, r: CommandResult): void {
    if (!r.ok) return;
    if (cmd.type === "liquidate") this.#publishLiquidation(cmd.user, cmd.ts, r.events);
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
        case "fill": {
          const trade = { pair: symbol(e.pair), price: e.price, size: e.size, takerSide: e.takerSide, maker: e.maker, taker: e.taker, ts: e.ts, seq: e.tradeId };
          // A block trade of a request for quote is off the book: its own message, the book untouched.
          if (e.block === true) this.#publish("block_trade", { ...trade, block: true });
          else {
            touched.add(e.pair);
            this.#publish("fill", trade);
          }
          break;
        }
        case "rfq_requested":
          this.#publish("trade_request", {
            requestId: e.requestId,
            pair: symbol(e.pair),
            accountId: e.user,
            side: e.side,
            size: e.size,
            limit: e.limit,
            expiresAt: e.expiresAt,
            whitelisted: e.whitelist !== null,
            minFill: e.minFill,
            remainder: e.remainder,
            ts: e.ts,
          });
          break;
        case "rfq_quoted":
          this.#publish("quote", { quoteId: e.quoteId, requestId: e.requestId, pair: symbol(e.pair), quoter: e.quoter, side: e.side, price: e.price, size: e.size, validUntil: e.validUntil, ts: e.ts });
          break;
        case "rfq_accepted":
          this.#publish("quote_accepted", {
            requestId: e.requestId,
            pair: symbol(e.pair),
            accountId: e.user,
            side: e.side,
            filled: e.filled,
            quoteIds: [...e.quoteIds],
            remaining: e.remaining,
            status: e.status,
            ts: e.ts,
          });
          break;
        case "rfq_expired":
          this.#publish("request_expired", { requestId: e.requestId, quoteId: e.quoteId, pair: symbol(e.pair), accountId: e.user, side: e.side, remaining: e.remaining, ts: e.ts });
          break;
        case "rfq_cancelled":
          this.#publish("request_cancelled", {
            requestId: e.requestId,
            quoteId: e.quoteId,
            pair: symbol(e.pair),
            accountId: e.user,
            side: e.side,
            remaining: e.remaining,
            reason: e.reason,
            ts: e.ts,
          });
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

  #publishLiquidation(user: number, ts: number, events: readonly EngineEvent[]): void {
    const out = liquidationOf(user, events, this.#pairs);
    if (!out.liquidated) return;
    const msg: LiquidationWire = {
      account: this.#runner.addressOf(user) ?? "",
      accountId: user,
      broker: this.#runner.participants.find((p) => p.accountId === user)?.brokerId ?? null,
      covered: out.covered.map((c) => {
        const p = this.#pairs.get(c.pair);
        return { pair: p?.symbol ?? String(c.pair), asset: p?.base.symbol ?? String(c.asset), side: c.side, lots: c.lots, amount: String(c.amount), quote: String(c.quote), price: c.price };
      }),
      cancelledOrders: out.cancelledOrders,
      fee: String(out.fee),
      equityBefore: String(out.equityBefore),
      maintenanceBefore: String(out.maintenanceBefore),
      equityAfter: String(out.equityAfter),
      fullyCovered: out.fullyCovered,
      line: `the keeper ${out.summary}`,
      ts,
    };
    this.#publish("liquidation", msg);
  }
}
