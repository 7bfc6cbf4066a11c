// Turns a user's catalogue choice into a running broker for one session: a rule-based broker, or
// an AI broker with its own spend ledger on a client shared by every user of the same entry.
import { AiBroker } from "./ai-broker.ts";
import type { CatalogueEntry } from "./catalogue.ts";
import { InProcessTransport, type ModelTransport } from "./model-transport.ts";
import { RuleBroker, SYSTEM_DEFAULT_STRATEGY } from "./rule/rule-broker.ts";
import { SpendLedger } from "./spend-ledger.ts";
import type { Broker } from "./types.ts";

export interface BoundBroker {
  broker: Broker;
  ledger?: SpendLedger;
  lessons?: (strategy: string, summary: string) => Promise<{ lessons: string[] } | null>;
  /** Set when the user's choice could not be honoured and the system default serves instead. */
  substitutedBecause?: string;
}

export interface BrokerFactoryOptions {
  /**
   * How model calls are made; share one across sessions. Default: the SDK on this thread. The
   * keeper passes a WorkerTransport so HTTP work for many brokers stays off the loop's thread.
   */
  transport?: ModelTransport;
  /** Per-broker session cap override (pico-USD); default is the catalogue entry's. */
  spendCapPicoUsd?: bigint;
}

export class BrokerFactory {
  private readonly byId: Map<string, CatalogueEntry>;
  readonly transport: ModelTransport;

  constructor(
    entries: readonly CatalogueEntry[],
    private readonly opts: BrokerFactoryOptions = {},
  ) {
    this.byId = new Map(entries.map((e) => [e.id, e]));
    this.transport = opts.transport ?? new InProcessTransport();
  }

  /**
   * A broker for `user`. An unknown or unavailable choice is served by the system default
   * strategy (and says why), so a missing key never keeps a depositor out of the session.
   */
  bind(user: number, brokerId: string): BoundBroker {
    const entry = this.byId.get(brokerId);
    if (entry === undefined) {
      return { broker: new RuleBroker("system-default", SYSTEM_DEFAULT_STRATEGY), substitutedBecause: `unknown broker ${brokerId}` };
    }
    if (entry.kind === "rule") return { broker: new RuleBroker(entry.id, entry.strategy) };
    if (!entry.available) {
      return { broker: new RuleBroker("system-default", SYSTEM_DEFAULT_STRATEGY), substitutedBecause: `${entry.id} unavailable: ${entry.reason ?? "no key"}` };
    }
    const ledger = new SpendLedger(this.opts.spendCapPicoUsd ?? entry.spendCapPicoUsd);
    const broker = new AiBroker({ entry, transport: this.transport, ledger, cacheKey: `cme-broker-${user}` });
    return {
      broker,
      ledger,
      lessons: async (strategy, summary) => {
        const r = await broker.lessons(strategy, summary);
        return r === null ? null : { lessons: r.lessons };
      },
    };
  }
}
