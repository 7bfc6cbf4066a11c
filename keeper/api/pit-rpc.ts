// Calls from the API thread to the pit's thread, with flow control: each lane keeps at most a few
// calls outstanding and queues the rest here. The pit's thread handles every message that has
// arrived in one go before its timers run, so capping what is outstanding caps how long a burst
// of requests can hold up a tick. Reads and actions have their own lanes, so slow actions (a
// permit signature, a chain read) never starve account reads, and the reverse.

export type Lane = "read" | "action";

/** The pit's thread has more queued than it should take: answered 503, retry later. */
export class PitBusyError extends Error {
  override name = "PitBusyError";
  readonly statusCode = 503;
  readonly code = "busy";
  constructor(lane: Lane) {
    super(`the keeper is busy (${lane} queue full): retry shortly`);
  }
}

/** The pit's thread threw while answering: a 500, with the message logged there. */
export class PitCallError extends Error {
  override name = "PitCallError";
}

export type CallMessage = { t: "call"; id: number; method: string; args: unknown[] };
export type ReplyMessage = { t: "reply"; id: number; ok: true; value: unknown } | { t: "reply"; id: number; ok: false; message: string };

interface Pending {
  lane: Lane;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Queued {
  id: number;
  method: string;
  args: unknown[];
}

export interface PitRpcOptions {
  post: (m: CallMessage) => void;
  /** Outstanding calls per lane. */
  inFlight?: Record<Lane, number>;
  /** Queued calls per lane beyond which new ones are refused (PitBusyError). */
  maxQueued?: number;
}

export class PitRpc {
  readonly #post: (m: CallMessage) => void;
  readonly #limit: Record<Lane, number>;
  readonly #maxQueued: number;
  readonly #pending = new Map<number, Pending>();
  readonly #queues: Record<Lane, Queued[]> = { read: [], action: [] };
  readonly #out: Record<Lane, number> = { read: 0, action: 0 };
  #nextId = 1;

  constructor(opts: PitRpcOptions) {
    this.#post = opts.post;
    this.#limit = opts.inFlight ?? { read: 4, action: 4 };
    this.#maxQueued = opts.maxQueued ?? 5_000;
  }

  call<T>(lane: Lane, method: string, args: unknown[]): Promise<T> {
    const q = this.#queues[lane];
    if (q.length >= this.#maxQueued) return Promise.reject(new PitBusyError(lane));
    const id = this.#nextId++;
    const p = new Promise<T>((resolve, reject) => this.#pending.set(id, { lane, resolve: resolve as (v: unknown) => void, reject }));
    q.push({ id, method, args });
    this.#pump(lane);
    return p;
  }

  /** A reply from the pit's thread. */
  settle(m: ReplyMessage): void {
    const p = this.#pending.get(m.id);
    if (p === undefined) return;
    this.#pending.delete(m.id);
    this.#out[p.lane]--;
    if (m.ok) p.resolve(m.value);
    else p.reject(new PitCallError(m.message));
    this.#pump(p.lane);
  }

  /** Fails everything outstanding and queued (the pit's thread is gone or stopping). */
  failAll(message: string): void {
    for (const lane of ["read", "action"] as const) this.#queues[lane].length = 0;
    for (const p of this.#pending.values()) p.reject(new PitCallError(message));
    this.#pending.clear();
    this.#out.read = 0;
    this.#out.action = 0;
  }

  #pump(lane: Lane): void {
    const q = this.#queues[lane];
    while (this.#out[lane] < this.#limit[lane] && q.length > 0) {
      const c = q.shift()!;
      this.#out[lane]++;
      this.#post({ t: "call", id: c.id, method: c.method, args: c.args });
    }
  }
}
