// Step 2 of settlement: records, as the session runs, every event of the pit that moves value
// into the fill log's form (settlement/fill-log.ts): each fill (block trades of requests for
// quote included, marked `block`), each liquidation fee paid to
// insurance, and at the close-out the closing cross as transfers (settlement/transfers.ts).
// It listens to the pit, so replaying the journal records the same events in the same order.
import type { Command } from "../core/commands.ts";
import type { CloseOut, CommandResult, EngineConfig } from "../core/types.ts";
import type { FillLogEvent } from "./fill-log.ts";
import { adjustmentsToTransfers } from "./transfers.ts";

export class FillLogRecorder {
  readonly #config: EngineConfig;
  readonly #events: FillLogEvent[] = [];
  readonly #closeOut: () => CloseOut | null;

  /** `closeOut` reads the engine's result once the close-out command has run. */
  constructor(config: EngineConfig, closeOut: () => CloseOut | null) {
    this.#config = config;
    this.#closeOut = closeOut;
  }

  /** A pit listener (SessionPit.subscribe). */
  readonly listener = (cmd: Command, r: CommandResult): void => {
    if (!r.ok) return;
    const log = this.#events;
    for (const e of r.events) {
      if (e.kind === "fill") {
        log.push({
          type: "fill",
          seq: log.length + 1,
          ts: e.ts,
          pairId: e.pair,
          maker: e.maker,
          taker: e.taker,
          takerSide: e.takerSide,
          priceTicks: BigInt(e.price),
          sizeLots: BigInt(e.size),
          makerFee: BigInt(e.makerFee),
          takerFee: BigInt(e.takerFee),
          ...(e.block === true ? { block: true as const } : {}),
        });
      } else if (e.kind === "liquidated" && e.fee > 0) {
        const quote = this.#quoteAsset();
        log.push({
          type: "transfer",
          seq: log.length + 1,
          ts: e.ts,
          tokenIndex: quote.id,
          from: e.user,
          to: this.#config.insurance,
          amount: BigInt(e.fee) * quote.unitBaseUnits,
          reason: "liquidation",
        });
      }
    }
    if (cmd.type === "close_out") {
      for (const t of adjustmentsToTransfers(this.#closeOut()?.adjustments ?? [])) {
        log.push({ type: "transfer", seq: log.length + 1, ts: cmd.ts, ...t });
      }
    }
  };

  /** Fills and value transfers so far, in order. */
  events(): FillLogEvent[] {
    return [...this.#events];
  }

  #quoteAsset() {
    const c = this.#config;
    return c.assets.find((a) => c.pairs.some((p) => p.quote === a.id))!;
  }
}
