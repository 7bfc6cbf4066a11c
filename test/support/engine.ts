// Shared engine fixtures: a session with USDC (quote) and two memecoins.
import type { Command, CommandBody } from "../../keeper/core/commands.ts";
import { Engine } from "../../keeper/core/engine.ts";
import type { CommandResult, EngineConfig } from "../../keeper/core/types.ts";

export const USDC = 0;
export const PEPE = 1;
export const DOGE = 2;
export const PEPE_USDC = 10;
export const DOGE_USDC = 11;
export const TREASURY = 900;
export const INSURANCE = 901;

/** One PEPE lot is 1000 PEPE (18 decimals); one DOGE lot is 1 DOGE (8 decimals). */
export const PEPE_LOT = 1000n * 10n ** 18n;
export const DOGE_LOT = 10n ** 8n;

export function testConfig(over: Partial<EngineConfig> = {}): EngineConfig {
  return {
    sessionId: 7,
    assets: [
      { id: USDC, symbol: "USDC", decimals: 6, unitBaseUnits: 1n },
      { id: PEPE, symbol: "PEPE", decimals: 18, unitBaseUnits: PEPE_LOT },
      { id: DOGE, symbol: "DOGE", decimals: 8, unitBaseUnits: DOGE_LOT },
    ],
    pairs: [
      // 1 tick = 1 micro-USDC per lot; reference 1000 ticks = 0.001 USDC per 1000 PEPE
      { id: PEPE_USDC, symbol: "PEPE/USDC", base: PEPE, quote: USDC, quotePerTickLot: 1, minSizeLots: 1, maxSizeLots: 1_000_000, referencePriceTicks: 1000, priceBandBps: 5000, markBandBps: 2000 },
      // 1 tick = 100 micro-USDC per DOGE; reference 2000 ticks = 0.2 USDC
      { id: DOGE_USDC, symbol: "DOGE/USDC", base: DOGE, quote: USDC, quotePerTickLot: 100, minSizeLots: 1, maxSizeLots: 100_000, referencePriceTicks: 2000, priceBandBps: 5000, markBandBps: 2000 },
    ],
    fees: { makerBps: 0, takerBps: 5 },
    margin: { initialBps: 2000, maintenanceBps: 1000, liquidationFeeBps: 50, liquidationSlippageBps: 1000 },
    treasury: TREASURY,
    insurance: INSURANCE,
    maxOpenOrdersPerUser: 50,
    recentTradesKept: 20,
    ...over,
  };
}

/** Drives an engine with auto-stamped commands and keeps the journal. */
export class Session {
  readonly engine: Engine;
  readonly journal: Command[] = [];
  ts = 1_000;
  constructor(engine: Engine) {
    this.engine = engine;
  }
  do(body: CommandBody): CommandResult {
    const cmd = { ...body, seq: this.engine.nextSeq, ts: this.ts++ } as Command;
    this.journal.push(cmd);
    return this.engine.apply(cmd);
  }
  ok(body: CommandBody): CommandResult & { ok: true } {
    const r = this.do(body);
    if (!r.ok) throw new Error(`expected ${body.type} to be accepted, got ${r.reason}: ${r.message}`);
    return r;
  }
}

export function session(config: EngineConfig = testConfig(), book: "fast" | "naive" = "fast"): Session {
  return new Session(new Engine(config, { book }));
}
