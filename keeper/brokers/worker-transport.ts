// Model calls in a pool of worker threads: the session loop's thread only builds prompts and
// applies decisions, while request building, HTTP and response parsing for every broker run
// beside it. A worker that dies fails its calls in flight (typed, "no action") and is replaced.
import { Worker } from "node:worker_threads";
import type { ChatRequest, ChatResponse, ModelTransport } from "./model-transport.ts";

interface Pending {
  resolve: (r: ChatResponse) => void;
  worker: number;
  onAbort?: () => void;
  signal?: AbortSignal;
}

const WORKER_URL = new URL("./model-worker.ts", import.meta.url);

export class WorkerTransport implements ModelTransport {
  private readonly workers: (Worker | null)[] = [];
  private readonly load: number[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  private readyCount = 0;
  private readyWaiters: (() => void)[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`model worker pool size must be a positive integer, got ${size}`);
    for (let i = 0; i < size; i++) {
      this.workers.push(null);
      this.load.push(0);
      this.spawn(i);
    }
  }

  private spawn(i: number): void {
    const w = new Worker(WORKER_URL);
    // The pool must never keep a finished keeper (or test run) alive.
    w.unref();
    w.on("message", (msg: { type: "ready" } | { id: number; response: ChatResponse }) => {
      if ("type" in msg) {
        this.readyCount += 1;
        if (this.readyCount >= this.size) for (const r of this.readyWaiters.splice(0)) r();
        return;
      }
      this.settle(msg.id, msg.response);
    });
    w.on("error", () => undefined);
    w.on("exit", () => {
      if (this.workers[i] !== w) return;
      this.workers[i] = null;
      for (const [id, p] of this.pending) {
        if (p.worker === i) this.settle(id, { ok: false, failure: { code: "broker_error", message: "the model worker stopped" } });
      }
      if (!this.closed) this.spawn(i);
    });
    this.workers[i] = w;
  }

  private settle(id: number, response: ChatResponse): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    this.load[p.worker] = Math.max(0, (this.load[p.worker] ?? 1) - 1);
    // Only a worker with calls out keeps the process alive.
    if (this.load[p.worker] === 0) this.workers[p.worker]?.unref();
    if (p.onAbort !== undefined) p.signal?.removeEventListener("abort", p.onAbort);
    p.resolve(response);
  }

  complete(request: ChatRequest, signal?: AbortSignal): Promise<ChatResponse> {
    if (this.closed) return Promise.resolve({ ok: false, failure: { code: "aborted", message: "the model pool is closed" } });
    if (signal?.aborted === true) return Promise.resolve({ ok: false, failure: { code: "aborted", message: "the call was cancelled" } });
    // Least-loaded worker.
    let best = 0;
    for (let i = 1; i < this.load.length; i++) if (this.load[i]! < this.load[best]!) best = i;
    const worker = this.workers[best];
    if (worker === null || worker === undefined) {
      return Promise.resolve({ ok: false, failure: { code: "broker_error", message: "no model worker available" } });
    }
    const id = this.nextId++;
    this.load[best]! += 1;
    if (this.load[best] === 1) worker.ref();
    return new Promise<ChatResponse>((resolve) => {
      const p: Pending = { resolve, worker: best };
      if (signal !== undefined) {
        p.signal = signal;
        p.onAbort = () => worker.postMessage({ type: "abort", id });
        signal.addEventListener("abort", p.onAbort, { once: true });
      }
      this.pending.set(id, p);
      worker.postMessage({ type: "call", id, request });
    });
  }

  /** Resolves once every worker has loaded the SDK (call at startup, before the first session). */
  ready(): Promise<void> {
    if (this.readyCount >= this.size) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  get inFlight(): number {
    return this.pending.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const [id] of this.pending) this.settle(id, { ok: false, failure: { code: "aborted", message: "the model pool is closed" } });
    await Promise.all(this.workers.map((w) => w?.terminate()));
  }
}
