// A small, tolerant reader of the knobs users write into prompts for the rule-based brokers:
// "aggressiveness 0.8", "size: 5 lots", "risk limit = 40", "spread 6 ticks", "timid", "degen".
// Unknown text is ignored; every value is clamped to a sane range, so no prompt can break a broker.

export interface StrategyParams {
  /** 0 (timid) .. 1 (degenerate). */
  aggressiveness: number;
  /** Lots per order. */
  size: number;
  /** Largest absolute position, in lots. */
  riskLimit: number;
  /** Target quoted spread, in ticks. */
  spreadTicks: number;
  /** Trades looked back over. */
  window: number;
  /** Signal threshold, in ticks. */
  thresholdTicks: number;
  /** Minimum edge after fees before the scalper trades, in ticks. */
  minEdgeTicks: number;
}

export const DEFAULT_PARAMS: StrategyParams = {
  aggressiveness: 0.5,
  size: 5,
  riskLimit: 50,
  spreadTicks: 4,
  window: 20,
  thresholdTicks: 3,
  minEdgeTicks: 1,
};

type NumericKey = keyof StrategyParams;

// Longest phrases first, so "order size" wins over "size" and "risk limit" over "limit".
const KEYS: [RegExp, NumericKey][] = [
  [/\b(?:risk[ _-]?limit|max(?:imum)?[ _-]?position|position[ _-]?limit|inventory[ _-]?limit|max[ _-]?inventory)\b/i, "riskLimit"],
  [/\b(?:min(?:imum)?[ _-]?edge|edge)\b/i, "minEdgeTicks"],
  [/\b(?:aggressiveness|aggression|aggressivity|aggr)\b/i, "aggressiveness"],
  [/\b(?:order[ _-]?size|clip[ _-]?size|lot[ _-]?size|size|clip)\b/i, "size"],
  [/\b(?:spread|width)\b/i, "spreadTicks"],
  [/\b(?:window|lookback|look[ _-]?back)\b/i, "window"],
  [/\b(?:threshold|trigger|entry)\b/i, "thresholdTicks"],
];

const RANGES: Record<NumericKey, [number, number, boolean]> = {
  aggressiveness: [0, 1, false],
  size: [1, 1_000_000, true],
  riskLimit: [1, 100_000_000, true],
  spreadTicks: [1, 10_000, true],
  window: [2, 200, true],
  thresholdTicks: [0, 10_000, false],
  minEdgeTicks: [0, 10_000, false],
};

// A key, then up to a few connector words or symbols, then a number (optionally a percentage).
const VALUE = /^\s*(?:[:=]|is|of|at|to|about|around|~)?\s*(?:[:=]|is|of|at|to|about|around|~)?\s*(-?\d+(?:[.,]\d+)?)\s*(%)?/i;

const MOODS: [RegExp, number][] = [
  [/\b(?:degen(?:erate)?|yolo|full[ _-]?send|max(?:imum)? aggression|all[ _-]?in)\b/i, 1],
  [/\b(?:very aggressive|hyper[ _-]?aggressive)\b/i, 0.9],
  [/\b(?:aggressive(?:ly)?|bold)\b/i, 0.75],
  [/\b(?:timid|cautious(?:ly)?|conservative(?:ly)?|careful(?:ly)?|shy|passive)\b/i, 0.2],
];

function clamp(key: NumericKey, raw: number): number {
  const [lo, hi, integer] = RANGES[key];
  const v = integer ? Math.round(raw) : raw;
  return Math.min(hi, Math.max(lo, v));
}

function readValue(rest: string): { value: number; percent: boolean } | undefined {
  const m = VALUE.exec(rest);
  if (m === null || m[1] === undefined) return undefined;
  const value = Number(m[1].replace(",", "."));
  if (!Number.isFinite(value)) return undefined;
  return { value, percent: m[2] !== undefined };
}

/**
 * Reads strategy knobs from prompt text; later mentions override earlier ones, so a re-prompt
 * appended after the original prompt wins.
 */
export function parseStrategyParams(text: string, defaults: StrategyParams = DEFAULT_PARAMS): StrategyParams {
  const out: StrategyParams = { ...defaults };
  let aggrSet = false;
  for (const line of text.split(/[\n;]+/)) {
    let remaining = line;
    for (const [re, key] of KEYS) {
      const g = new RegExp(re.source, "gi");
      let m: RegExpExecArray | null;
      while ((m = g.exec(remaining)) !== null) {
        const after = remaining.slice(m.index + m[0].length);
        const v = readValue(after);
        if (v === undefined) continue;
        let value = v.value;
        if (key === "aggressiveness" && (v.percent || value > 1)) value = value / 100;
        out[key] = clamp(key, value);
        if (key === "aggressiveness") aggrSet = true;
        // Blank the match so a shorter key ("size" in "order size") does not read it again.
        remaining = remaining.slice(0, m.index) + " ".repeat(m[0].length) + after;
      }
    }
  }
  if (!aggrSet) {
    for (const [re, level] of MOODS) {
      if (re.test(text)) {
        out.aggressiveness = level;
        break;
      }
    }
  }
  return out;
}

const cache = new Map<string, StrategyParams>();

/** Memoised: thousands of rule brokers re-read the same prompt every second. */
export function strategyParamsFor(text: string): StrategyParams {
  let p = cache.get(text);
  if (p === undefined) {
    p = parseStrategyParams(text);
    if (cache.size > 10_000) cache.clear();
    cache.set(text, p);
  }
  return p;
}
