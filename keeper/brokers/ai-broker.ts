// An AI broker: one catalogue entry (an OpenAI-compatible endpoint) serving one user's strategy.
// The model proposes; its only output is a schema-validated action. Anything else (a timeout, a
// 429, a 500, malformed JSON, a schema violation, a refusal, a truncated reply) is a typed
// failure that means "no action", never an exception. The SDK does not retry: the session loop
// decides when to ask again.
import type { ChatCompletion, ChatCompletionCreateParamsNonStreaming } from "openai/resources/chat/completions";
import type { ZodError, ZodTypeAny } from "zod";
import { buildMessages, messageChars } from "./ai-prompt.ts";
import type { AiEntry, ResolvedTier } from "./catalogue.ts";
import { decisionResponseFormat, decisionSchema, lessonsResponseFormat, lessonsSchema } from "./decision-schema.ts";
import type { ModelTransport } from "./model-transport.ts";
import { LESSONS_PROMPT } from "./prompt-files.ts";
import { costPicoUsd, formatUsd, type SpendLedger, type Usage } from "./spend-ledger.ts";
import type { Broker, BrokerContext, BrokerFailure, BrokerResult, CallInfo, Decision, Tier } from "./types.ts";

export interface AiBrokerOptions {
  entry: AiEntry;
  /** The SDK, in-process or in worker threads; shared by every broker so they share connections. */
  transport: ModelTransport;
  ledger: SpendLedger;
  /** Stable per user: lets providers that support it route repeat prefixes to a warm cache. */
  cacheKey: string;
  /** Monotonic ms, for latency. */
  now?: () => number;
}

export function tierFor(ctx: BrokerContext): Tier {
  return ctx.purpose === "tick" ? "cheap" : "expensive";
}

function zodSummary(err: ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
    .join("; ");
}

/**
 * Interprets a completion the way `chat.completions.parse` would, but keeps the completion (and
 * its usage) in hand for every outcome, so the spend ledger counts tokens of refused replies too.
 */
export function interpretCompletion<T>(completion: ChatCompletion, schema: ZodTypeAny): { ok: true; value: T } | { ok: false; failure: BrokerFailure } {
  const choice = completion.choices?.[0];
  if (choice === undefined) return { ok: false, failure: { code: "empty_reply", message: "the reply had no choices" } };
  if (choice.finish_reason === "length") {
    return { ok: false, failure: { code: "truncated", message: "the reply was cut off at the token limit; answer shorter" } };
  }
  if (choice.finish_reason === "content_filter") {
    return { ok: false, failure: { code: "content_filter", message: "the provider's content filter stopped the reply" } };
  }
  const msg = choice.message;
  if (typeof msg?.refusal === "string" && msg.refusal.length > 0) {
    return { ok: false, failure: { code: "refusal", message: `the model refused: ${msg.refusal.slice(0, 100)}` } };
  }
  const content = msg?.content;
  if (typeof content !== "string" || content.trim() === "") return { ok: false, failure: { code: "empty_reply", message: "the reply was empty" } };
  let json: unknown;
  try {
    // Some local models wrap even schema-constrained output in a markdown fence.
    const fenced = /^\s*```(?:json)?\s*\n([\s\S]*?)\n?```\s*$/.exec(content);
    json = JSON.parse(fenced?.[1] ?? content);
  } catch {
    return { ok: false, failure: { code: "malformed_json", message: "the reply was not valid JSON; answer with the JSON action only" } };
  }
  const r = schema.safeParse(json);
  if (!r.success) return { ok: false, failure: { code: "schema_violation", message: `the reply broke the schema: ${zodSummary(r.error)}` } };
  return { ok: true, value: r.data as T };
}

function usageOf(c: ChatCompletion): Usage | null {
  const u = c.usage;
  if (u === undefined || u === null) return null;
  return {
    promptTokens: u.prompt_tokens ?? 0,
    completionTokens: u.completion_tokens ?? 0,
    cachedTokens: u.prompt_tokens_details?.cached_tokens ?? 0,
  };
}

export class AiBroker implements Broker {
  readonly kind = "ai";
  readonly brokerId: string;
  private readonly now: () => number;
  /** Learned prompt tokens per character (numbers tokenize densely; start pessimistic). */
  private tokensPerChar = 0.5;

  constructor(private readonly opts: AiBrokerOptions) {
    this.brokerId = opts.entry.id;
    this.now = opts.now ?? (() => performance.now());
  }

  get ledger(): SpendLedger {
    return this.opts.ledger;
  }

  /** Worst case for a call: estimated prompt plus the full completion budget. */
  private estimate(spec: ResolvedTier, promptChars: number): bigint {
    const promptTokens = Math.ceil(promptChars * this.tokensPerChar * 1.2) + 16;
    return costPicoUsd(spec.prices, { promptTokens, completionTokens: spec.maxCompletionTokens, cachedTokens: 0 });
  }

  private async call(
    tier: Tier,
    body: Omit<ChatCompletionCreateParamsNonStreaming, "model">,
    promptChars: number,
    signal: AbortSignal | undefined,
  ): Promise<{ completion: ChatCompletion; call: CallInfo } | { failure: BrokerFailure; call?: CallInfo }> {
    const { entry, transport, ledger } = this.opts;
    const spec = entry.tiers[tier];
    const reservation = this.estimate(spec, promptChars);
    if (!ledger.reserve(reservation)) {
      return {
        failure: {
          code: "spend_cap",
          message: `spend cap of ${formatUsd(ledger.capPicoUsd)} reached (${formatUsd(ledger.spentPicoUsd)} spent)`,
        },
      };
    }
    const request = {
      ...spec.extraBody,
      ...body,
      model: spec.model,
      [entry.maxTokensParam]: spec.maxCompletionTokens,
      ...(entry.promptCacheKey ? { prompt_cache_key: this.opts.cacheKey } : {}),
    } as ChatCompletionCreateParamsNonStreaming;
    const t0 = this.now();
    const base = { tier, requestedModel: spec.model, model: spec.model };
    if (entry.apiKey === undefined) {
      ledger.settle(reservation, tier, null, 0n);
      return { failure: { code: "auth_error", message: `no key for ${entry.id}: ${entry.reason ?? "unavailable"}` } };
    }
    const response = await transport.complete({ baseUrl: entry.baseUrl, apiKey: entry.apiKey, body: request, timeoutMs: spec.timeoutMs }, signal);
    if (!response.ok) {
      const failure = response.failure;
      // A timed-out call may still be billed by the provider: charge the reservation. Calls the
      // provider rejected with a status cost nothing.
      const charged = failure.code === "timeout" || failure.code === "aborted" ? reservation : 0n;
      ledger.settle(reservation, tier, null, charged);
      const call: CallInfo = { ...base, promptTokens: 0, completionTokens: 0, cachedTokens: 0, costPicoUsd: charged, estimated: true, latencyMs: this.now() - t0 };
      return { failure, call };
    }
    const completion = response.completion;
    let usage = usageOf(completion);
    const estimated = usage === null;
    if (usage === null) {
      usage = { promptTokens: Math.ceil(promptChars * this.tokensPerChar), completionTokens: spec.maxCompletionTokens, cachedTokens: 0 };
    } else if (promptChars > 0 && usage.promptTokens > 0) {
      this.tokensPerChar = usage.promptTokens / promptChars;
    }
    const cost = costPicoUsd(spec.prices, usage);
    ledger.settle(reservation, tier, usage, cost);
    return {
      completion,
      call: {
        ...base,
        model: typeof completion.model === "string" && completion.model !== "" ? completion.model : spec.model,
        ...usage,
        costPicoUsd: cost,
        estimated,
        latencyMs: this.now() - t0,
      },
    };
  }

  async decide(ctx: BrokerContext, signal?: AbortSignal): Promise<BrokerResult> {
    try {
      const tier = tierFor(ctx);
      const messages = buildMessages(ctx);
      const r = await this.call(tier, { messages, response_format: decisionResponseFormat }, messageChars(messages), signal);
      if ("failure" in r) return { ok: false, failure: r.failure, ...(r.call !== undefined ? { call: r.call } : {}) };
      const parsed = interpretCompletion<Decision>(r.completion, decisionSchema);
      if (!parsed.ok) return { ok: false, failure: parsed.failure, call: r.call };
      const d = parsed.value;
      return { ok: true, decision: { orders: d.orders, cancels: d.cancels, outcry: d.outcry.trim(), plan: d.plan, ...(d.rfq != null && d.rfq.length > 0 ? { rfq: d.rfq } : {}) }, call: r.call };
    } catch (err) {
      return { ok: false, failure: { code: "broker_error", message: `unexpected error: ${String(err).slice(0, 120)}` } };
    }
  }

  /**
   * End-of-session lessons from the expensive model; null when it cannot (cap, failure), so the
   * caller falls back to the deterministic lessons.
   */
  async lessons(strategy: string, summary: string, signal?: AbortSignal): Promise<{ lessons: string[]; call?: CallInfo } | null> {
    try {
      const messages = [
        { role: "system" as const, content: LESSONS_PROMPT },
        { role: "user" as const, content: `Strategy:\n${strategy}\n\nSession summary:\n${summary}` },
      ];
      const r = await this.call("expensive", { messages, response_format: lessonsResponseFormat }, messageChars(messages), signal);
      if ("failure" in r) return null;
      const parsed = interpretCompletion<{ lessons: string[] }>(r.completion, lessonsSchema);
      return parsed.ok ? { lessons: parsed.value.lessons, call: r.call } : null;
    } catch {
      return null;
    }
  }
}
