// Validation of an EngineConfig and the derived numbers the hot path uses. A bad config throws
// CoreInputError naming the field; a valid one is frozen into a ResolvedConfig.

import { CoreInputError } from "./errors.ts";
import { MAX_LEVELS, MAX_VALUE, type AssetConfig, type EngineConfig, type PairConfig } from "./types.ts";

export interface ResolvedPair {
  readonly config: PairConfig;
  /** Position of the pair in config.pairs (the dense index used internally). */
  readonly index: number;
  /** Dense index of the base asset in config.assets. */
  readonly baseIndex: number;
  readonly minPrice: number;
  readonly maxPrice: number;
  readonly markLow: number;
  readonly markHigh: number;
  /** Largest |lots| a user may hold so the position's value stays within MAX_VALUE. */
  readonly maxPositionLots: number;
}

export interface ResolvedConfig {
  readonly config: EngineConfig;
  readonly pairs: readonly ResolvedPair[];
  /** Dense pair index by PairId. */
  readonly pairIndex: ReadonlyMap<number, number>;
  /** Dense asset index by AssetId. */
  readonly assetIndex: ReadonlyMap<number, number>;
  /** Dense index of the shared quote asset. */
  readonly quoteIndex: number;
  /** Base units per core unit, by dense asset index. */
  readonly units: readonly bigint[];
}

function isUint(x: unknown, max: number): x is number {
  return typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= max;
}

function need(ok: boolean, field: string, message: string): void {
  if (!ok) throw new CoreInputError(field, message);
}

/** Band edges rounded inward so the band never exceeds the configured bps. */
export function bandLow(ref: number, bps: number): number {
  return Math.max(1, Math.ceil((ref * (10_000 - bps)) / 10_000));
}
export function bandHigh(ref: number, bps: number): number {
  return Math.floor((ref * (10_000 + bps)) / 10_000);
}

export function resolveConfig(config: EngineConfig): ResolvedConfig {
  need(isUint(config.sessionId, 0xffffffff), "config.sessionId", "must be a uint32");
  need(isUint(config.treasury, 0xffffffff), "config.treasury", "must be a uint32 account id");
  need(isUint(config.insurance, 0xffffffff), "config.insurance", "must be a uint32 account id");
  need(config.treasury !== config.insurance, "config.insurance", "must differ from config.treasury");
  need(isUint(config.maxOpenOrdersPerUser, 1_000_000) && config.maxOpenOrdersPerUser > 0,
    "config.maxOpenOrdersPerUser", "must be a positive integer");
  need(isUint(config.recentTradesKept, 1_000_000), "config.recentTradesKept", "must be a non-negative integer");

  const { fees, margin } = config;
  need(Number.isInteger(fees.takerBps) && fees.takerBps >= 0 && fees.takerBps <= 1000, "config.fees.takerBps", "must be an integer in [0, 1000]");
  need(Number.isInteger(fees.makerBps) && fees.makerBps <= 1000 && fees.makerBps >= -fees.takerBps,
    "config.fees.makerBps", "must be an integer in [-takerBps, 1000] (a rebate never exceeds the taker fee)");
  need(isUint(margin.maintenanceBps, 10_000) && margin.maintenanceBps > 0, "config.margin.maintenanceBps", "must be in (0, 10000]");
  need(isUint(margin.initialBps, 10_000) && margin.initialBps >= margin.maintenanceBps,
    "config.margin.initialBps", "must be in [maintenanceBps, 10000]");
  need(isUint(margin.liquidationFeeBps, 1000), "config.margin.liquidationFeeBps", "must be an integer in [0, 1000]");
  need(isUint(margin.liquidationSlippageBps, 10_000), "config.margin.liquidationSlippageBps", "must be an integer in [0, 10000]");

  need(config.assets.length > 0 && config.assets.length <= 256, "config.assets", "must list 1 to 256 assets");
  const assetIndex = new Map<number, number>();
  config.assets.forEach((a: AssetConfig, i) => {
    const f = `config.assets[${i}]`;
    need(isUint(a.id, 255), `${f}.id`, "must be a uint8 token index");
    need(!assetIndex.has(a.id), `${f}.id`, "is listed twice");
    need(isUint(a.decimals, 77), `${f}.decimals`, "must be an integer in [0, 77]");
    need(typeof a.unitBaseUnits === "bigint" && a.unitBaseUnits > 0n, `${f}.unitBaseUnits`, "must be a positive bigint");
    assetIndex.set(a.id, i);
  });

  need(config.pairs.length > 0 && config.pairs.length <= 256, "config.pairs", "must list 1 to 256 pairs");
  const pairIndex = new Map<number, number>();
  const baseSeen = new Set<number>();
  let quoteIndex = -1;
  const pairs: ResolvedPair[] = config.pairs.map((p: PairConfig, i) => {
    const f = `config.pairs[${i}]`;
    need(isUint(p.id, 0xffff), `${f}.id`, "must be an integer in [0, 65535]");
    need(!pairIndex.has(p.id), `${f}.id`, "is listed twice");
    const bi = assetIndex.get(p.base);
    const qi = assetIndex.get(p.quote);
    need(bi !== undefined, `${f}.base`, "is not a listed asset");
    need(qi !== undefined, `${f}.quote`, "is not a listed asset");
    need(p.base !== p.quote, `${f}.quote`, "must differ from base");
    need(!baseSeen.has(p.base), `${f}.base`, "belongs to another pair already");
    if (quoteIndex === -1) quoteIndex = qi!;
    need(qi === quoteIndex, `${f}.quote`, "all pairs must share one quote asset");
    baseSeen.add(p.base);
    need(isUint(p.quotePerTickLot, 2 ** 32) && p.quotePerTickLot > 0, `${f}.quotePerTickLot`, "must be a positive integer");
    need(isUint(p.referencePriceTicks, 2 ** 30) && p.referencePriceTicks > 0, `${f}.referencePriceTicks`, "must be a positive integer below 2^30");
    need(isUint(p.priceBandBps, 9_999) && p.priceBandBps > 0, `${f}.priceBandBps`, "must be in (0, 9999]");
    need(isUint(p.markBandBps, p.priceBandBps), `${f}.markBandBps`, "must be in [0, priceBandBps]");
    need(isUint(p.minSizeLots, 2 ** 40) && p.minSizeLots > 0, `${f}.minSizeLots`, "must be a positive integer");
    need(isUint(p.maxSizeLots, 2 ** 40) && p.maxSizeLots >= p.minSizeLots, `${f}.maxSizeLots`, "must be an integer >= minSizeLots");
    const minPrice = bandLow(p.referencePriceTicks, p.priceBandBps);
    const maxPrice = bandHigh(p.referencePriceTicks, p.priceBandBps);
    need(maxPrice - minPrice + 1 <= MAX_LEVELS, `${f}.priceBandBps`, `gives more than ${MAX_LEVELS} price levels; use a coarser tick`);
    need(maxPrice * p.maxSizeLots * p.quotePerTickLot <= MAX_VALUE, `${f}.maxSizeLots`,
      "an order at the top of the band would be worth more than MAX_VALUE quote units");
    pairIndex.set(p.id, i);
    return {
      config: p,
      index: i,
      baseIndex: bi!,
      minPrice,
      maxPrice,
      markLow: bandLow(p.referencePriceTicks, p.markBandBps),
      markHigh: bandHigh(p.referencePriceTicks, p.markBandBps),
      maxPositionLots: Math.floor(MAX_VALUE / (maxPrice * p.quotePerTickLot)),
    };
  });
  need(!baseSeen.has(config.assets[quoteIndex]!.id), "config.pairs", "the quote asset cannot be a base asset");
  return {
    config,
    pairs,
    pairIndex,
    assetIndex,
    quoteIndex,
    units: config.assets.map((a) => a.unitBaseUnits),
  };
}

/** JSON-safe copy of a config (bigints as decimal strings), for snapshots. */
export interface EngineConfigJson extends Omit<EngineConfig, "assets"> {
  readonly assets: readonly (Omit<AssetConfig, "unitBaseUnits"> & { readonly unitBaseUnits: string })[];
}

/** Only the engine's pair fields: callers hold richer pair records (resolved pairs, session metadata). */
export function pairConfigOf(p: PairConfig): PairConfig {
  return {
    id: p.id,
    symbol: p.symbol,
    base: p.base,
    quote: p.quote,
    quotePerTickLot: p.quotePerTickLot,
    minSizeLots: p.minSizeLots,
    maxSizeLots: p.maxSizeLots,
    referencePriceTicks: p.referencePriceTicks,
    priceBandBps: p.priceBandBps,
    markBandBps: p.markBandBps,
  };
}

export function configToJson(config: EngineConfig): EngineConfigJson {
  return {
    sessionId: config.sessionId,
    assets: config.assets.map((a) => ({ id: a.id, symbol: a.symbol, decimals: a.decimals, unitBaseUnits: a.unitBaseUnits.toString() })),
    pairs: config.pairs.map(pairConfigOf),
    fees: { makerBps: config.fees.makerBps, takerBps: config.fees.takerBps },
    margin: {
      initialBps: config.margin.initialBps,
      maintenanceBps: config.margin.maintenanceBps,
      liquidationFeeBps: config.margin.liquidationFeeBps,
      liquidationSlippageBps: config.margin.liquidationSlippageBps,
    },
    treasury: config.treasury,
    insurance: config.insurance,
    maxOpenOrdersPerUser: config.maxOpenOrdersPerUser,
    recentTradesKept: config.recentTradesKept,
  };
}

export function configFromJson(json: EngineConfigJson): EngineConfig {
  return { ...json, assets: json.assets.map((a) => ({ ...a, unitBaseUnits: BigInt(a.unitBaseUnits) })) };
}
