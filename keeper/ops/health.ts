// What /healthz reports: each part of the keeper that must keep moving (settlement, the chain
// watcher, the journal, the tx sender) holds a handle here and reports progress, whether it is
// expected to progress right now, and any condition that stops it. The keeper is healthy when no
// part is stopped and none that should be progressing has gone `stallMs` without progress; the
// report names the part and why.

export interface ComponentStatus {
  ok: boolean;
  /** Null when ok; otherwise what is wrong, in words an operator can act on. */
  reason: string | null;
  /** ms since epoch; null: never. */
  lastProgressAt: number | null;
  /** Whether the component has work to progress on now. */
  expecting: boolean;
}

export interface HealthReport {
  ok: boolean;
  components: Record<string, ComponentStatus>;
}

export class ComponentHealth {
  #lastProgressAt: number | null = null;
  /** Since when it has been expected to progress without any progress (the stall clock). */
  #waitingSince: number | null;
  #expecting: boolean;
  #problem: string | null = null;
  #lastError: string | null = null;

  constructor(
    readonly name: string,
    readonly stallMs: number,
    readonly now: () => number,
    expecting: boolean,
  ) {
    this.#expecting = expecting;
    this.#waitingSince = expecting ? now() : null;
  }

  /** It moved forward: the stall clock restarts and the last error is forgotten. */
  progress(): void {
    const t = this.now();
    this.#lastProgressAt = t;
    if (this.#expecting) this.#waitingSince = t;
    this.#lastError = null;
  }

  /** Whether it has work to progress on (a component with nothing to do never stalls). */
  expect(expecting: boolean): void {
    if (expecting && !this.#expecting) this.#waitingSince = this.now();
    if (!expecting) this.#waitingSince = null;
    this.#expecting = expecting;
  }

  /** A condition that stops it (fee above the cap, no funds, a reorg, storage failed); null clears it. */
  problem(reason: string | null): void {
    this.#problem = reason;
  }

  /** A failure it will retry: not unhealthy by itself, but named if the component then stalls. */
  error(err: unknown): void {
    this.#lastError = err instanceof Error ? err.message.split("\n")[0]! : String(err);
  }

  get lastProgressAt(): number | null {
    return this.#lastProgressAt;
  }

  status(): ComponentStatus {
    const base = { lastProgressAt: this.#lastProgressAt, expecting: this.#expecting };
    if (this.#problem !== null) return { ok: false, reason: this.#problem, ...base };
    if (this.#waitingSince !== null) {
      const idle = this.now() - this.#waitingSince;
      if (idle > this.stallMs) {
        const last = this.#lastError === null ? "" : `; last error: ${this.#lastError}`;
        return { ok: false, reason: `no progress for ${Math.round(idle / 1000)} s (limit ${Math.round(this.stallMs / 1000)} s)${last}`, ...base };
      }
    }
    return { ok: true, reason: null, ...base };
  }
}

export class HealthRegistry {
  readonly #components = new Map<string, ComponentHealth>();
  readonly #stallMs: number;
  readonly #now: () => number;

  constructor(opts: { stallMs: number; now?: () => number }) {
    this.#stallMs = opts.stallMs;
    this.#now = opts.now ?? Date.now;
  }

  /** The handle of `name`, created on first use (the same handle after that). */
  component(name: string, opts: { stallMs?: number; expecting?: boolean } = {}): ComponentHealth {
    let c = this.#components.get(name);
    if (c === undefined) {
      c = new ComponentHealth(name, opts.stallMs ?? this.#stallMs, this.#now, opts.expecting ?? false);
      this.#components.set(name, c);
    }
    return c;
  }

  report(): HealthReport {
    const components: Record<string, ComponentStatus> = {};
    let ok = true;
    for (const [name, c] of this.#components) {
      const s = c.status();
      components[name] = s;
      ok &&= s.ok;
    }
    return { ok, components };
  }
}
