// Prometheus text exposition without a dependency: counters, gauges and fixed-bucket histograms,
// updated in O(1) on the hot paths and rendered only when /metrics is scraped.

type Labels = Record<string, string>;

const key = (labels: Labels) =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]!.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`)
    .join(",");

class Counter {
  readonly values = new Map<string, number>();
  constructor(readonly name: string, readonly help: string, readonly type: "counter" | "gauge") {}
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  set(value: number, labels: Labels = {}): void {
    this.values.set(key(labels), value);
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    if (this.values.size === 0) lines.push(`${this.name} 0`);
    for (const [k, v] of this.values) lines.push(k === "" ? `${this.name} ${v}` : `${this.name}{${k}} ${v}`);
    return lines.join("\n");
  }
}

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  /** Recent observations, for in-process percentiles (the benchmark reads p99 tick lag). */
  readonly recent: number[] = [];
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.counts[i]!++;
    this.recent.push(v);
    if (this.recent.length > 10_000) this.recent.splice(0, 5_000);
  }
  quantile(q: number): number {
    if (this.recent.length === 0) return 0;
    const s = [...this.recent].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{le="${b}"} ${this.counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return lines.join("\n");
  }
}

export class Metrics {
  readonly tickLagMs = new Histogram("cme_tick_lag_ms", "How late each executor tick started, ms", [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000]);
  readonly commands = new Counter("cme_commands_total", "Commands journaled and applied to the engine, by kind", "counter");
  readonly orders = new Counter("cme_orders_total", "Orders submitted by brokers, by outcome", "counter");
  readonly fills = new Counter("cme_fills_total", "Fills in the book", "counter");
  readonly modelCalls = new Counter("cme_model_calls_total", "Broker model calls, by outcome", "counter");
  readonly errors = new Counter("cme_errors_total", "Errors, by where they happened", "counter");
  readonly actions = new Counter("cme_actions_total", "Signed user actions, by route and status", "counter");
  readonly chainTxs = new Counter("cme_chain_txs_total", "Settler transactions, by step kind and outcome", "counter");
  readonly wsClients = new Counter("cme_ws_clients", "Connected WebSocket subscribers", "gauge");
  readonly wsDropped = new Counter("cme_ws_dropped_total", "Subscribers dropped for being slow", "counter");
  readonly phase = new Counter("cme_session_phase", "1 for the current session phase", "gauge");
  readonly chainBlock = new Counter("cme_chain_block", "Last block processed by the chain watcher", "gauge");

  render(): string {
    const lagP99 = `# HELP cme_tick_lag_p99_ms p99 of the last 10,000 tick lags, ms\n# TYPE cme_tick_lag_p99_ms gauge\ncme_tick_lag_p99_ms ${this.tickLagMs.quantile(0.99)}`;
    return (
      [
        this.tickLagMs,
        this.commands,
        this.orders,
        this.fills,
        this.modelCalls,
        this.errors,
        this.actions,
        this.chainTxs,
        this.wsClients,
        this.wsDropped,
        this.phase,
        this.chainBlock,
      ]
        .map((m) => m.render())
        .concat(lagP99)
        .join("\n") + "\n"
    );
  }
}
