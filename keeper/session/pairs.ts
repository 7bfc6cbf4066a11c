// The session's market configuration, derived from the deployment's tokens and the configured
// reference prices (the default price source): every listed memecoin with a reference price
// trades against USDC. Lots and ticks are chosen so one lot is worth 1-10 USDC at the reference
// price and a tick is 1e-4 to 1e-5 of the price, and every fill's amounts are exact integers.
import type { AssetConfig, EngineConfig, PairConfig } from "../core/types.ts";
import type { Deployment } from "../chain/deployment.ts";
import { quoteToken } from "../chain/deployment.ts";
import { pairConfigOf } from "../core/config.ts";

export interface MarketParams {
  takerBps: number;
  makerBps: number;
  initialBps: number;
  maintenanceBps: number;
  liquidationFeeBps: number;
  liquidationSlippageBps: number;
  priceBandBps: number;
  markBandBps: number;
  maxOpenOrdersPerUser: number;
}

export const DEFAULT_MARKET: MarketParams = {
  takerBps: 5,
  makerBps: 0,
  initialBps: 2_000,
  maintenanceBps: 1_000,
  liquidationFeeBps: 50,
  liquidationSlippageBps: 500,
  priceBandBps: 5_000,
  markBandBps: 2_000,
  maxOpenOrdersPerUser: 50,
};

/** Decimal string -> [numerator, power of ten]. "0.00001" -> [1n, 5]. */
function parseDecimal(s: string): [bigint, number] {
  const [int, frac = ""] = s.split(".");
  return [BigInt((int ?? "0") + frac), frac.length];
}

const pow10 = (n: number) => 10n ** BigInt(n);

export interface PairUnits {
  /** Whole tokens per lot is 10^lotExp. */
  lotExp: number;
  lotSize: bigint;
  quotePerTickLot: number;
  referencePriceTicks: number;
}

/** Units for a base token of `baseDecimals` at `refPrice` USDC, against a quote with `quoteDecimals`. */
export function pairUnits(refPrice: string, baseDecimals: number, quoteDecimals: number): PairUnits {
  const [num, d] = parseDecimal(refPrice);
  if (num <= 0n) throw new Error(`reference price must be positive, got ${refPrice}`);
  // Smallest lotExp such that one lot (10^lotExp tokens) is worth at least one quote token:
  // num / 10^d * 10^lotExp >= 1.
  const worthOne = (e: number) => (e >= 0 ? num * pow10(e) >= pow10(d) : num >= pow10(d - e));
  let lotExp = -baseDecimals;
  while (!worthOne(lotExp)) lotExp++;
  // lot price in quote base units = num * 10^(lotExp + quoteDecimals - d); must be an integer.
  let exp = lotExp + quoteDecimals - d;
  while (exp < 0) {
    lotExp++;
    exp++;
  }
  const lotPrice = num * pow10(exp);
  const digits = lotPrice.toString().length;
  const k = Math.max(0, digits - 5); // refTicks gets 4-5 significant digits
  const quotePerTickLot = Number(pow10(k));
  const referencePriceTicks = Number((lotPrice + pow10(k) / 2n) / pow10(k));
  return { lotExp, lotSize: pow10(lotExp + baseDecimals), quotePerTickLot, referencePriceTicks };
}

export interface PairMeta extends PairConfig {
  lotSize: bigint;
  lotExp: number;
  baseSymbol: string;
  quoteSymbol: string;
  baseDecimals: number;
  quoteDecimals: number;
  referencePrice: string;
}

export function buildMarket(
  deployment: Deployment,
  referencePrices: Record<string, string>,
  accounts: { treasury: number; insurance: number },
  sessionId: number,
  params: MarketParams = DEFAULT_MARKET,
): { engine: EngineConfig; pairs: PairMeta[] } {
  const quote = quoteToken(deployment);
  const assets: AssetConfig[] = [];
  const pairs: PairMeta[] = [];
  assets.push({ id: quote.index, symbol: quote.symbol, decimals: quote.decimals, unitBaseUnits: 1n });
  for (const t of [...deployment.tokens].sort((a, b) => a.index - b.index)) {
    if (t.index === quote.index) continue;
    const ref = referencePrices[t.symbol];
    if (ref === undefined) continue;
    const u = pairUnits(ref, t.decimals, quote.decimals);
    assets.push({ id: t.index, symbol: t.symbol, decimals: t.decimals, unitBaseUnits: u.lotSize });
    pairs.push({
      id: pairs.length + 1,
      symbol: `${t.symbol}/${quote.symbol}`,
      base: t.index,
      quote: quote.index,
      quotePerTickLot: u.quotePerTickLot,
      minSizeLots: 1,
      maxSizeLots: 1_000_000,
      referencePriceTicks: u.referencePriceTicks,
      priceBandBps: params.priceBandBps,
      markBandBps: params.markBandBps,
      lotSize: u.lotSize,
      lotExp: u.lotExp,
      baseSymbol: t.symbol,
      quoteSymbol: quote.symbol,
      baseDecimals: t.decimals,
      quoteDecimals: quote.decimals,
      referencePrice: ref,
    });
  }
  if (pairs.length === 0) throw new Error("no pair: no listed memecoin has a reference price (CME_REFERENCE_PRICES)");
  const engine: EngineConfig = {
    sessionId,
    assets,
    pairs: pairs.map(pairConfigOf),
    fees: { makerBps: params.makerBps, takerBps: params.takerBps },
    margin: {
      initialBps: params.initialBps,
      maintenanceBps: params.maintenanceBps,
      liquidationFeeBps: params.liquidationFeeBps,
      liquidationSlippageBps: params.liquidationSlippageBps,
    },
    treasury: accounts.treasury,
    insurance: accounts.insurance,
    maxOpenOrdersPerUser: params.maxOpenOrdersPerUser,
    recentTradesKept: 200,
  };
  return { engine, pairs };
}
