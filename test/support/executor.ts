// One executor over the real pit and the real openai SDK talking to the local model server, with
// per-user reply scripts, a manual clock and a sink that keeps everything.
import type { DecisionRecord } from "../../keeper/brokers/decision-log.ts";
import { catalogue, type AiEntry, type CatalogueEntry } from "../../keeper/brokers/catalogue.ts";
import { BrokerFactory } from "../../keeper/brokers/factory.ts";
import { ManualClock } from "../../keeper/executor/clock.ts";
import { SessionExecutor, type ExecutorConfig, type ExecutorEvent } from "../../keeper/executor/session-executor.ts";
import type { OpenAICompatibleServer, RecordedRequest, Reply } from "./openai-server.ts";
import { PEPE, REF, TestPit } from "./pit.ts";

export const COUNTERPARTY = 99;

export function decision(orders: { side: "buy" | "sell"; price: number; size?: number; type?: "limit" | "ioc" | "post_only" }[], extra: { cancels?: string[]; outcry?: string; plan?: string | null } = {}) {
  return {
    orders: orders.map((o) => ({ pair: "PEPE/USDC", side: o.side, price: o.price, size: o.size ?? 1, type: o.type ?? "limit" })),
    cancels: extra.cancels ?? [],
    outcry: extra.outcry ?? "in the pit",
    plan: extra.plan ?? null,
  };
}

/** A quote around the reference price: inside the quote band, so it satisfies the session rules. */
export const QUOTE = decision([
  { side: "buy", price: REF - 5, size: 2, type: "post_only" },
  { side: "sell", price: REF + 5, size: 2, type: "post_only" },
]);

export function userOf(req: RecordedRequest): number {
  const key = String(req.body?.prompt_cache_key ?? "");
  return Number(key.replace("cme-broker-", ""));
}

/** The state message (last message) of a recorded request. */
export function stateOf(req: RecordedRequest): string {
  const m = req.body?.messages;
  return String(m[m.length - 1]?.content ?? "");
}

export class Harness {
  readonly clock = new ManualClock(1_000_000);
  readonly pit: TestPit;
  readonly executor: SessionExecutor;
  readonly records: DecisionRecord[] = [];
  readonly events: ExecutorEvent[] = [];
  readonly entries: CatalogueEntry[];
  readonly factory: BrokerFactory;
  private scripts = new Map<number, Reply[]>();
  fallback: (req: RecordedRequest) => Reply = () => ({ kind: "json", json: QUOTE });

  constructor(
    readonly server: OpenAICompatibleServer,
    users: number[],
    opts: { config?: Partial<ExecutorConfig>; timeoutMs?: number; spendCapPicoUsd?: bigint; pepeLots?: number; maxCompletionTokens?: [number, number] } = {},
  ) {
    this.pit = new TestPit(this.clock).fundAndOpen([...users, COUNTERPARTY], 10_000, opts.pepeLots ?? 0);
    // A two-sided book from someone outside the executor.
    this.pit.rest(COUNTERPARTY, "buy", REF - 10, 200);
    this.pit.rest(COUNTERPARTY, "sell", REF + 10, 200);
    const timeoutMs = opts.timeoutMs ?? 1_500;
    this.entries = catalogue({ OPENAI_API_KEY: "sk-test", CME_OPENAI_BASE_URL: server.url }).map((e) =>
      e.kind === "ai"
        ? ({
            ...e,
            tiers: {
              cheap: { ...e.tiers.cheap, timeoutMs, maxCompletionTokens: opts.maxCompletionTokens?.[0] ?? e.tiers.cheap.maxCompletionTokens },
              expensive: { ...e.tiers.expensive, timeoutMs, maxCompletionTokens: opts.maxCompletionTokens?.[1] ?? e.tiers.expensive.maxCompletionTokens },
            },
          } as AiEntry)
        : e,
    );
    this.factory = new BrokerFactory(this.entries, opts.spendCapPicoUsd !== undefined ? { spendCapPicoUsd: opts.spendCapPicoUsd } : {});
    this.executor = new SessionExecutor({
      port: this.pit,
      clock: this.clock,
      config: { pauseMs: 10_000, ...opts.config },
      sink: { decision: (r) => this.records.push(r), event: (e) => this.events.push(e) },
    });
    server.reset();
    server.respond((req) => this.scripts.get(userOf(req))?.shift() ?? this.fallback(req));
  }

  add(user: number, brokerId = "openai-gpt5", prompt = `strategy of user ${user}`, lessons: string[] = []): this {
    const b = this.factory.bind(user, brokerId);
    this.executor.addBroker(
      { user, brokerId, prompt, pairs: ["PEPE/USDC"], lessons },
      { broker: b.broker, ...(b.ledger ? { ledger: b.ledger } : {}), ...(b.lessons ? { lessons: b.lessons } : {}) },
    );
    return this;
  }

  script(user: number, ...replies: Reply[]): this {
    this.scripts.set(user, [...(this.scripts.get(user) ?? []), ...replies]);
    return this;
  }

  /** One second passes, one tick runs, every reply is in. */
  async step(n = 1): Promise<void> {
    for (let i = 0; i < n; i++) {
      this.clock.advance(1_000);
      await this.executor.tick(this.clock.now());
      await this.executor.idle();
    }
  }

  requestsOf(user: number): RecordedRequest[] {
    return this.server.requests.filter((r) => userOf(r) === user && r.body?.response_format?.json_schema?.name === "broker_decision");
  }

  eventsOf<T extends ExecutorEvent["type"]>(type: T): Extract<ExecutorEvent, { type: T }>[] {
    return this.events.filter((e): e is Extract<ExecutorEvent, { type: T }> => e.type === type);
  }

  openOrders(user: number) {
    return this.pit.account(user).openOrders;
  }

  /** The book's pair id, for orders the test rests directly. */
  static readonly pair = PEPE;
}
