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
  /** Recent observations and when they were made, for in-process percentiles (the benchmark reads p99 tick lag). */
  readonly recent: number[] = [];
  readonly #at: number[] = [];
  constructor(readonly name: string, readonly help: string, readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) this.counts[i]!++;
    this.recent.push(v);
    this.#at.push(Date.now());
    if (this.recent.length > 10_000) {
      this.recent.splice(0, 5_000);
      this.#at.splice(0, 5_000);
    }
  }
  /** The q-quantile of the recent observations, or of those of the last `windowMs` only. */
  quantile(q: number, windowMs?: number): number {
    let from = 0;
    if (windowMs !== undefined) {
      const since = Date.now() - windowMs;
      while (from < this.#at.length && this.#at[from]! < since) from++;
    }
    if (from >= this.recent.length) return 0;
    const s = this.recent.slice(from).sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{le="${b}"} ${this.counts[i]}`));
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.count}`);
    return lines.join("\n");
  }
}

/**
 * How late a short timer fires on this thread. The pit's thread runs one every `periodMs`, so the
 * histogram sees every stall of its event loop: thousands of samples a minute where the
 * one-second tick gives sixty.
 */
class TimerLagProbe {
  #timer: NodeJS.Timeout | undefined;
  constructor(readonly into: Histogram, readonly periodMs = 20) {}

  start(): void {
    if (this.#timer !== undefined) return;
    let last = performance.now();
    this.#timer = setInterval(() => {
      const now = performance.now();
      this.into.observe(Math.round(Math.max(0, now - last - this.periodMs) * 1000) / 1000);
      last = now;
    }, this.periodMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
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
  readonly chainRpcErrors = new Counter("cme_chain_rpc_errors_total", "Failed chain RPC calls that were retried, by operation", "counter");
  readonly chainRetries = new Counter("cme_chain_retries_total", "Failed attempts of chain steps that were retried, by step kind", "counter");
  readonly chainReorgs = new Counter("cme_chain_reorgs_total", "Reorgs that reached blocks the watcher had processed", "counter");
  readonly chainTxDropped = new Counter("cme_chain_tx_dropped_total", "Settler transactions dropped by a reorg and re-broadcast", "counter");
  readonly chainWatcherProgress = new Counter("cme_chain_watcher_progress_timestamp_seconds", "When the chain watcher last completed a poll", "gauge");
  readonly txWaiting = new Counter("cme_tx_waiting", "1 while the tx sender waits, by reason (fee_cap, funds, budget, rpc)", "gauge");
  readonly txFeeSeenGwei = new Counter("cme_tx_fee_seen_gwei", "Base fee + tip per gas the tx sender last saw, gwei", "gauge");
  readonly txFeeCapGwei = new Counter("cme_tx_fee_cap_gwei", "Configured maximum fee per gas, gwei", "gauge");
  readonly txSpentWei = new Counter("cme_tx_session_spent_eth", "Fees paid by the settler for the current session's steps, ETH", "gauge");
  readonly timerLagMs = new Histogram("cme_pit_timer_lag_ms", "How late a 20 ms timer fires on the pit's thread, ms", [1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 250, 500, 1000]);
  readonly timerLag = new TimerLagProbe(this.timerLagMs);

  render(): string {
    const gauge = (name: string, help: string, rows: [string, number][]) =>
      [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, ...rows.map(([labels, v]) => `${name}${labels} ${v}`)].join("\n");
    const windows: [string, number][] = [
      ["10s", 10_000],
      ["1m", 60_000],
    ];
    const lagP99 = [
      gauge("cme_tick_lag_p99_ms", "p99 of the last 10,000 tick lags, ms", [["", this.tickLagMs.quantile(0.99)]]),
      gauge("cme_tick_lag_1m_p99_ms", "p99 of the tick lags of the last minute, ms", [["", this.tickLagMs.quantile(0.99, 60_000)]]),
      gauge("cme_pit_timer_lag_p99_ms", "p99 of the pit thread's timer lag over a recent window, ms", windows.map(([w, ms]) => [`{window="${w}"}`, this.timerLagMs.quantile(0.99, ms)])),
      gauge("cme_pit_timer_lag_max_ms", "Worst pit thread timer lag over a recent window, ms", windows.map(([w, ms]) => [`{window="${w}"}`, this.timerLagMs.quantile(1, ms)])),
    ].join("\n");
    return (
      [
        this.tickLagMs,
        this.timerLagMs,
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
        this.chainRpcErrors,
        this.chainRetries,
        this.chainReorgs,
        this.chainTxDropped,
        this.chainWatcherProgress,
        this.txWaiting,
        this.txFeeSeenGwei,
        this.txFeeCapGwei,
        this.txSpentWei,
      ]
        .map((m) => m.render())
        .concat(lagP99)
        .join("\n") + "\n"
    );
  }
}
