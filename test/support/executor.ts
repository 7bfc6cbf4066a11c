// One executor over the real pit and the real openai SDK talking to the local model server, with
// per-user reply scripts, a manual clock and a sink that keeps everything. Brokers can also be
// plain objects (scripted to hang, throw or fail), and the counterparty can lever accounts up and
// crash the book under them.
import type { DecisionRecord } from "../../keeper/brokers/decision-log.ts";
import { catalogue, type AiEntry, type CatalogueEntry } from "../../keeper/brokers/catalogue.ts";
import { BrokerFactory } from "../../keeper/brokers/factory.ts";
import type { Broker, BrokerContext, BrokerFailure, BrokerResult, Decision } from "../../keeper/brokers/types.ts";
import type { Deployment } from "../../keeper/chain/deployment.ts";
import { ManualClock, type Clock } from "../../keeper/executor/clock.ts";
import { openPit, type OpenPit } from "../../keeper/session/open-pit.ts";
import { buildMarket } from "../../keeper/session/pairs.ts";
import { SessionExecutor, type ExecutorConfig, type ExecutorEvent } from "../../keeper/executor/session-executor.ts";
import type { OpenAICompatibleServer, RecordedRequest, Reply } from "./openai-server.ts";
import { PEPE, REF, TestPit, USDC } from "./pit.ts";

export const COUNTERPARTY = 99;

/** A broker that answers with whatever `fn` returns for each context (it may throw, hang or fail). */
export class ScriptedBroker implements Broker {
  readonly contexts: BrokerContext[] = [];
  constructor(
    readonly brokerId: string,
    private readonly fn: (ctx: BrokerContext, n: number, signal?: AbortSignal) => Promise<BrokerResult>,
    readonly kind: "ai" | "rule" = "ai",
  ) {}
  decide(ctx: BrokerContext, signal?: AbortSignal): Promise<BrokerResult> {
    this.contexts.push(ctx);
    return this.fn(ctx, this.contexts.length, signal);
  }
}

export const ok = (d: Decision): Promise<BrokerResult> => Promise.resolve({ ok: true, decision: d });
export const fail = (failure: BrokerFailure): Promise<BrokerResult> => Promise.resolve({ ok: false, failure });
/** Never answers until the keeper aborts the call. */
export const hang = (signal?: AbortSignal): Promise<BrokerResult> =>
  new Promise((resolve) => signal?.addEventListener("abort", () => resolve({ ok: false, failure: { code: "aborted", message: "aborted" } })));
export const NOTHING: Decision = { orders: [], cancels: [], outcry: "", plan: null };

/**
 * A pit with two pairs, PEPE/USDC (pair 1) and WIF/USDC (pair 2), both at 10,000 ticks, trading,
 * each user funded with 10,000 USDC and the counterparty quoting both books at ±10 ticks.
 */
export function twoPairPit(clock: Clock, users: readonly number[]): OpenPit {
  const token = (symbol: string, decimals: number, index: number) => ({ symbol, decimals, index, address: `0x${String(index + 1).padStart(40, "0")}` });
  const deployment = { chainId: 31337, tokens: [token("USDC", 6, 0), token("PEPE", 18, 1), token("WIF", 18, 2)] } as unknown as Deployment;
  const market = buildMarket(deployment, { PEPE: "0.00001", WIF: "0.00001" }, { treasury: 1, insurance: 2 }, 1);
  const opened = openPit({ market, sessionId: 1, journal: null, clock, phase: () => ({ sessionId: 1, phase: "trading", endsAtMs: clock.now() + 3_600_000 }) });
  for (const u of [...users, COUNTERPARTY]) opened.pit.apply({ type: "deposit", user: u, asset: 0, amount: 10_000_000_000n });
  opened.pit.apply({ type: "start_trading" });
  for (const pair of [1, 2]) {
    opened.port.submit(COUNTERPARTY, {
      cancels: [],
      orders: [
        { pair, side: "buy", price: REF - 10, size: 200, type: "limit" },
        { pair, side: "sell", price: REF + 10, size: 200, type: "limit" },
      ],
    });
  }
  return opened;
}

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
  private readonly funded: number[];
  fallback: (req: RecordedRequest) => Reply = () => ({ kind: "json", json: QUOTE });

  constructor(
    readonly server: OpenAICompatibleServer,
    users: number[],
    opts: { config?: Partial<ExecutorConfig>; timeoutMs?: number; spendCapPicoUsd?: bigint; pepeLots?: number; maxCompletionTokens?: [number, number] } = {},
  ) {
    this.funded = [...users];
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

  /** A broker that is a plain object (no model server). */
  addBroker(user: number, broker: Broker, prompt = `strategy of user ${user}`): this {
    this.executor.addBroker({ user, brokerId: broker.brokerId, prompt, pairs: ["PEPE/USDC"], lessons: [] }, { broker });
    return this;
  }

  /** The counterparty sells `user` `lots` PEPE on credit at REF + 10 (the user's IOC takes it). */
  lever(user: number, lots: number): void {
    const lot = this.pit.port.pair(PEPE)!.lotSize;
    this.pit.pit.apply({ type: "deposit", user: COUNTERPARTY, asset: PEPE, amount: BigInt(lots) * lot });
    this.pit.rest(COUNTERPARTY, "sell", REF + 10, lots);
    const r = this.pit.port.submit(user, { cancels: [], orders: [{ pair: PEPE, side: "buy", price: REF + 10, size: lots, type: "ioc" }] });
    if (r.orders[0]?.filled !== lots) throw new Error(`lever ${user}: ${JSON.stringify(r.orders[0])}`);
  }

  /**
   * The book falls to `mid`: every resting order is pulled and the counterparty re-forms the book
   * around the new mid, deep enough to take every liquidation.
   */
  crash(mid: number, depthLots = 500_000): void {
    for (const user of this.users()) this.pit.pit.apply({ type: "cancel_all", user });
    this.pit.pit.apply({ type: "deposit", user: COUNTERPARTY, asset: USDC, amount: BigInt(depthLots) * BigInt(mid) * 100n });
    this.pit.rest(COUNTERPARTY, "buy", mid - 10, depthLots);
    this.pit.rest(COUNTERPARTY, "sell", mid + 10, 200);
  }

  private users(): number[] {
    return [...this.funded, COUNTERPARTY];
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

  /** One second passes and one tick runs; replies already in hand land, calls still out (a hung broker) stay out. */
  async stepAround(n = 1): Promise<void> {
    for (let i = 0; i < n; i++) {
      this.clock.advance(1_000);
      await this.executor.tick(this.clock.now());
      for (let j = 0; j < 5; j++) await new Promise((resolve) => setImmediate(resolve));
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
