// Built-in brokers: deterministic strategies that need no API key. Each reads its knobs from the
// user's prompt (and re-prompt) and says in its outcry what it is doing.
import type { Broker, BrokerContext, BrokerResult, Decision } from "../types.ts";
import { marketMaker } from "./market-maker.ts";
import { meanReversion } from "./mean-reversion.ts";
import { momentum } from "./momentum.ts";
import { rng } from "../../core/prng.ts";
import { scalper } from "./scalper.ts";
import { clipOutcry } from "./book-math.ts";
import { strategyParamsFor, type StrategyParams } from "./strategy-params.ts";

export type RuleStrategyId = "market_maker" | "momentum" | "mean_reversion" | "scalper";

export type RuleStrategy = (ctx: BrokerContext, params: StrategyParams, rand: () => number) => Decision;

export const RULE_STRATEGIES: Record<RuleStrategyId, RuleStrategy> = {
  market_maker: marketMaker,
  momentum,
  mean_reversion: meanReversion,
  scalper,
};

export function isRuleStrategyId(s: string): s is RuleStrategyId {
  return Object.hasOwn(RULE_STRATEGIES, s);
}

/** The knobs a context's prompt sets; the re-prompt comes last so it overrides. */
export function paramsOf(ctx: BrokerContext): StrategyParams {
  return strategyParamsFor(ctx.reprompt === null ? ctx.strategy : `${ctx.strategy}\n${ctx.reprompt}`);
}

export function runRule(strategy: RuleStrategyId, ctx: BrokerContext): Decision {
  return RULE_STRATEGIES[strategy](ctx, paramsOf(ctx), rng(ctx.seed));
}

export class RuleBroker implements Broker {
  readonly kind = "rule";

  constructor(
    readonly brokerId: string,
    readonly strategy: RuleStrategyId,
  ) {}

  decide(ctx: BrokerContext): Promise<BrokerResult> {
    try {
      return Promise.resolve({ ok: true, decision: runRule(this.strategy, ctx) });
    } catch (err) {
      // A strategy bug must cost this broker one tick, never the pit.
      return Promise.resolve({ ok: false, failure: { code: "broker_error", message: `rule broker failed: ${String(err)}` } });
    }
  }
}

/** The system default strategy: what a broker that gives nothing at the start (or runs out of budget) trades. */
export const SYSTEM_DEFAULT_STRATEGY: RuleStrategyId = "market_maker";

export function systemDefaultDecision(ctx: BrokerContext, why: string): Decision {
  const d = runRule(SYSTEM_DEFAULT_STRATEGY, ctx);
  return { ...d, outcry: clipOutcry(`[${why}] ${d.outcry}`) };
}
