// The agents users can choose (config/brokers.json). An AI entry whose key is missing is reported
// as unavailable with the reason, never hidden and never a late runtime error; rule-based entries
// are always available.
import { readFileSync } from "node:fs";
import { z } from "zod";
import { isRuleStrategyId, type RuleStrategyId } from "./rule/rule-broker.ts";

export const DEFAULT_CATALOGUE_PATH = new URL("../../config/brokers.json", import.meta.url);

const usd = z.number().finite().min(0).max(10_000);

const tierSchema = z.object({
  model: z.string().min(1),
  inputUsdPerMTok: usd,
  cachedInputUsdPerMTok: usd,
  outputUsdPerMTok: usd,
  maxCompletionTokens: z.number().int().min(16).max(100_000),
  timeoutMs: z.number().int().min(50).max(600_000),
  /** Provider-specific request fields (reasoning effort, OpenRouter routing, ...). */
  extraBody: z.record(z.string(), z.unknown()).optional(),
});

const envName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "an environment variable name");

const aiSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{1,40}$/, "lower-case id"),
  kind: z.literal("ai"),
  displayName: z.string().min(1).max(80),
  provider: z.string().min(1).max(40),
  baseUrl: z.string().url(),
  baseUrlEnv: envName.optional(),
  keyEnv: envName,
  keyOptional: z.boolean().optional(),
  requiresEnv: envName.optional(),
  modelEnv: envName.optional(),
  maxTokensParam: z.enum(["max_completion_tokens", "max_tokens"]),
  promptCacheKey: z.boolean(),
  spendCapUsd: usd.optional(),
  tiers: z.object({ cheap: tierSchema, expensive: tierSchema }),
});

const ruleSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{1,40}$/, "lower-case id"),
  kind: z.literal("rule"),
  displayName: z.string().min(1).max(80),
  strategy: z.string().refine(isRuleStrategyId, "one of market_maker, momentum, mean_reversion, scalper"),
  description: z.string().max(400),
});

const fileSchema = z
  .object({
    defaults: z.object({ spendCapUsd: usd }),
    entries: z.array(z.discriminatedUnion("kind", [aiSchema, ruleSchema])).min(1),
  })
  .refine((f) => new Set(f.entries.map((e) => e.id)).size === f.entries.length, "entry ids must be unique");

export type CatalogueFile = z.infer<typeof fileSchema>;
export type TierSpec = z.infer<typeof tierSchema>;

/** Prices in integer micro-USD per million tokens, so a token count times a price is exact pico-USD. */
export interface TierPrices {
  inputMicroUsdPerMTok: bigint;
  cachedInputMicroUsdPerMTok: bigint;
  outputMicroUsdPerMTok: bigint;
}

export interface ResolvedTier {
  model: string;
  prices: TierPrices;
  maxCompletionTokens: number;
  timeoutMs: number;
  extraBody: Record<string, unknown>;
}

export interface AiEntry {
  kind: "ai";
  id: string;
  displayName: string;
  provider: string;
  label: string;
  available: boolean;
  /** Why not, when unavailable. */
  reason?: string;
  baseUrl: string;
  keyEnv: string;
  /** Never serialised to clients: see publicEntry. */
  apiKey?: string;
  maxTokensParam: "max_completion_tokens" | "max_tokens";
  promptCacheKey: boolean;
  spendCapPicoUsd: bigint;
  tiers: { cheap: ResolvedTier; expensive: ResolvedTier };
}

export interface RuleEntry {
  kind: "rule";
  id: string;
  displayName: string;
  label: "rule-based";
  available: true;
  strategy: RuleStrategyId;
  description: string;
}

export type CatalogueEntry = AiEntry | RuleEntry;

export class CatalogueError extends Error {
  override name = "CatalogueError";
  constructor(
    message: string,
    readonly issues: string[],
  ) {
    super(`${message}:\n  ${issues.join("\n  ")}`);
  }
}

export function parseCatalogue(json: unknown, source = "brokers catalogue"): CatalogueFile {
  const r = fileSchema.safeParse(json);
  if (!r.success) {
    throw new CatalogueError(
      `invalid ${source}`,
      r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`),
    );
  }
  return r.data;
}

export function loadCatalogueFile(path: string | URL = DEFAULT_CATALOGUE_PATH): CatalogueFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CatalogueError("cannot read brokers catalogue", [`${String(path)}: ${(err as Error).message}`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CatalogueError("brokers catalogue is not JSON", [`${String(path)}: ${(err as Error).message}`]);
  }
  return parseCatalogue(json, String(path));
}

export function usdToMicro(usdAmount: number): bigint {
  return BigInt(Math.round(usdAmount * 1_000_000));
}

function resolveTier(t: TierSpec, modelOverride: string | undefined): ResolvedTier {
  return {
    model: modelOverride ?? t.model,
    prices: {
      inputMicroUsdPerMTok: usdToMicro(t.inputUsdPerMTok),
      cachedInputMicroUsdPerMTok: usdToMicro(t.cachedInputUsdPerMTok),
      outputMicroUsdPerMTok: usdToMicro(t.outputUsdPerMTok),
    },
    maxCompletionTokens: t.maxCompletionTokens,
    timeoutMs: t.timeoutMs,
    extraBody: t.extraBody ?? {},
  };
}

type Env = Readonly<Record<string, string | undefined>>;

const set = (env: Env, name: string | undefined) => name !== undefined && (env[name] ?? "").trim() !== "";

/** Every entry with its availability under `env`; keys are read here and nowhere else. */
export function catalogue(env: Env = process.env, file: CatalogueFile = loadCatalogueFile()): CatalogueEntry[] {
  return file.entries.map((e): CatalogueEntry => {
    if (e.kind === "rule") {
      return {
        kind: "rule",
        id: e.id,
        displayName: e.displayName,
        label: "rule-based",
        available: true,
        strategy: e.strategy as RuleStrategyId,
        description: e.description,
      };
    }
    const modelOverride = e.modelEnv !== undefined && set(env, e.modelEnv) ? env[e.modelEnv] : undefined;
    const entry: AiEntry = {
      kind: "ai",
      id: e.id,
      displayName: e.displayName,
      provider: e.provider,
      label: `AI · ${e.provider}`,
      available: true,
      baseUrl: (e.baseUrlEnv !== undefined && set(env, e.baseUrlEnv) ? env[e.baseUrlEnv]! : e.baseUrl).replace(/\/+$/, ""),
      keyEnv: e.keyEnv,
      maxTokensParam: e.maxTokensParam,
      promptCacheKey: e.promptCacheKey,
      spendCapPicoUsd: usdToMicro(e.spendCapUsd ?? file.defaults.spendCapUsd) * 1_000_000n,
      tiers: { cheap: resolveTier(e.tiers.cheap, modelOverride), expensive: resolveTier(e.tiers.expensive, modelOverride) },
    };
    if (e.requiresEnv !== undefined && !set(env, e.requiresEnv)) {
      entry.available = false;
      entry.reason = `${e.requiresEnv} is not set`;
    } else if (set(env, e.keyEnv)) {
      entry.apiKey = env[e.keyEnv]!.trim();
    } else if (e.keyOptional === true) {
      // Local servers ignore the key, but the SDK insists on one.
      entry.apiKey = "local";
    } else {
      entry.available = false;
      entry.reason = `${e.keyEnv} is not set`;
    }
    try {
      new URL(entry.baseUrl);
    } catch {
      entry.available = false;
      entry.reason = `${e.baseUrlEnv ?? "baseUrl"} is not a URL`;
    }
    return entry;
  });
}

/** What clients may see: no key, never. */
export function publicEntry(e: CatalogueEntry): Record<string, unknown> {
  if (e.kind === "rule") {
    return { id: e.id, kind: e.kind, displayName: e.displayName, label: e.label, available: true, strategy: e.strategy, description: e.description };
  }
  const tier = (t: ResolvedTier) => ({
    model: t.model,
    inputUsdPerMTok: Number(t.prices.inputMicroUsdPerMTok) / 1e6,
    cachedInputUsdPerMTok: Number(t.prices.cachedInputMicroUsdPerMTok) / 1e6,
    outputUsdPerMTok: Number(t.prices.outputMicroUsdPerMTok) / 1e6,
  });
  return {
    id: e.id,
    kind: e.kind,
    displayName: e.displayName,
    label: e.label,
    provider: e.provider,
    available: e.available,
    ...(e.reason !== undefined ? { reason: e.reason } : {}),
    keyEnv: e.keyEnv,
    spendCapUsd: Number(e.spendCapPicoUsd / 1_000_000n) / 1e6,
    tiers: { cheap: tier(e.tiers.cheap), expensive: tier(e.tiers.expensive) },
  };
}
