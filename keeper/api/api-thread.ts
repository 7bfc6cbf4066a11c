// Serves the keeper's HTTP and WebSocket surface from a worker thread (api-worker.ts), so read
// load and stream fan-out never share an event loop with the pit's tick. This side, on the pit's
// thread, posts the API thread a ReadFeed delta every `feedMs` (and with each stream flush, so a
// stream message and the reads it implies arrive together), answers its calls against the
// KeeperService, and writes its log lines. Posting a delta is a structured clone of what changed:
// a few hundred small objects at most.
import { Worker } from "node:worker_threads";
import type { Address } from "viem";
import pino from "pino";
import type { KeeperService } from "./service.ts";
import type { StreamHub } from "../stream/hub.ts";
import type { FanoutStats } from "../stream/fanout.ts";
import type { StreamGateOptions } from "../stream/gate.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Clock } from "../executor/clock.ts";
import type { KeeperDomain } from "../auth/eip712.ts";
import { ReadFeed, type ReadDelta } from "./read-feed.ts";
import type { CallMessage, ReplyMessage } from "./pit-rpc.ts";
import type { RefusalCount } from "./mirror-port.ts";

export interface ApiWorkerData {
  host: string;
  port: number;
  logLevel: string;
  webDir?: string;
  wsMaxBufferedBytes: number;
  stream?: Partial<StreamGateOptions>;
  domain: KeeperDomain;
  settler: Address;
  maxSignedExpirySec: number;
  tradesKept: number;
  initial: ReadDelta;
}

export type ToApiThread = { t: "feed"; delta: ReadDelta | null; messages: string[] } | { t: "stop" };
export type FromApiThread =
  | { t: "ready"; url: string; port: number }
  | { t: "failed"; message: string }
  | { t: "stopped" }
  | { t: "stats"; stats: FanoutStats; refused: RefusalCount[] }
  | { t: "log"; line: string }
  | CallMessage;

/** What the API thread may ask the pit's thread (KeeperService methods). */
const CALLS = new Set([
  "account",
  "topPrompts",
  "brokers",
  "fillLog",
  "settlement",
  "withdrawal",
  "quotes",
  "metrics",
  "setBroker",
  "setPrompt",
  "setPairs",
  "reprompt",
  "withdrawalPermit",
  "tradeAction",
  "adminSettle",
]);

export interface ApiThreadOptions {
  service: KeeperService;
  hub: StreamHub;
  metrics: Metrics;
  clock: Clock;
  log: pino.Logger;
  logLevel: string;
  wsMaxBufferedBytes: number;
  maxSignedExpirySec: number;
  /** The stream's heartbeat and connection caps. */
  stream?: Partial<StreamGateOptions>;
  webDir?: string;
  /** How often the reads are brought up to date. */
  feedMs?: number;
}

const WORKER_URL = new URL("./api-worker.ts", import.meta.url);
const TSX_API = import.meta.resolve("tsx/esm/api");

export class ApiThread {
  readonly #o: ApiThreadOptions;
  #worker: Worker | null = null;
  #timer: NodeJS.Timeout | undefined;
  #unrelay: (() => void) | undefined;
  #stopping = false;
  #listen: { host: string; port: number } | undefined;
  #url: string | undefined;
  /** Stream counters of API threads that have exited, and the running one's last report: counters never go back. */
  #past: FanoutStats = { clients: 0, dropped: 0, messages: 0, bytes: 0 };
  #last: FanoutStats = { clients: 0, dropped: 0, messages: 0, bytes: 0 };

  constructor(opts: ApiThreadOptions) {
    this.#o = opts;
  }

  get url(): string | undefined {
    return this.#url;
  }

  /** Starts the API thread listening on host:port; resolves with its URL. */
  async listen(host: string, port: number): Promise<string> {
    if (this.#listen !== undefined) throw new Error("the API thread is already listening");
    this.#listen = { host, port };
    const { url, port: bound } = await this.#spawn();
    // A restart after a crash must come back on the same port, even when 0 was asked for.
    this.#listen.port = bound;
    this.#url = url;
    return url;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#detach();
    const w = this.#worker;
    this.#worker = null;
    if (w === null) return;
    const exited = new Promise<void>((resolve) => w.once("exit", () => resolve()));
    w.postMessage({ t: "stop" } satisfies ToApiThread);
    const timeout = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 5_000).unref());
    if ((await Promise.race([exited, timeout])) === "timeout") await w.terminate();
  }

  /** Kills the API thread the way a crash would; it comes back on the same port (tests use it). */
  async kill(): Promise<void> {
    await this.#worker?.terminate();
  }

  #spawn(): Promise<{ url: string; port: number }> {
    const o = this.#o;
    const feed = new ReadFeed({ service: o.service, clock: o.clock });
    const data: ApiWorkerData = {
      host: this.#listen!.host,
      port: this.#listen!.port,
      logLevel: o.logLevel,
      wsMaxBufferedBytes: o.wsMaxBufferedBytes,
      domain: o.service.domain(),
      settler: o.service.settler(),
      maxSignedExpirySec: o.maxSignedExpirySec,
      tradesKept: o.service.tradesKept,
      initial: feed.full(),
      ...(o.stream === undefined ? {} : { stream: o.stream }),
      ...(o.webDir === undefined ? {} : { webDir: o.webDir }),
    };
    // The worker loads TypeScript through tsx whatever way this process did (tsx's CLI, --import
    // tsx, or Hardhat registering it in-process, which a worker does not inherit).
    const boot = `import(${JSON.stringify(TSX_API)}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); })`;
    const w = new Worker(boot, { eval: true, workerData: data, name: "cme-api" });
    this.#worker = w;
    const httpLog = o.log.child({ part: "http" });
    return new Promise((resolve, reject) => {
      let ready = false;
      w.on("message", (m: FromApiThread) => {
        switch (m.t) {
          case "ready":
            ready = true;
            this.#attach(w, feed);
            resolve({ url: m.url, port: m.port });
            return;
          case "failed":
            reject(new Error(`the API thread could not listen on ${this.#listen!.host}:${this.#listen!.port}: ${m.message}`));
            return;
          case "call":
            void this.#answer(w, m);
            return;
          case "stats":
            this.#last = m.stats;
            this.#reportStats();
            if (m.refused.length > 0) o.service.countRefusals(m.refused);
            return;
          case "log":
            relayLog(httpLog, m.line);
            return;
          case "stopped":
            return;
        }
      });
      w.on("error", (err) => {
        o.log.error({ err }, "API thread failed");
        if (!ready) reject(err);
      });
      w.on("exit", (code) => {
        if (this.#worker !== w) return;
        this.#detach();
        this.#worker = null;
        if (!ready) return reject(new Error(`the API thread exited (${code}) before listening`));
        if (this.#stopping) return;
        // The pit carries on without its API for a moment; the thread comes back on the same port.
        o.metrics.errors.inc({ where: "api_thread" });
        o.log.error({ code }, "API thread exited: restarting it");
        const p = this.#past;
        const l = this.#last;
        this.#past = { clients: 0, dropped: p.dropped + l.dropped, messages: p.messages + l.messages, bytes: p.bytes + l.bytes };
        this.#last = { clients: 0, dropped: 0, messages: 0, bytes: 0 };
        this.#reportStats();
        this.#restart(1_000);
      });
    });
  }

  #restart(delayMs: number): void {
    setTimeout(() => {
      if (this.#stopping) return;
      this.#spawn().catch((err) => {
        this.#o.log.error({ err, retryInMs: delayMs * 2 }, "API thread restart failed");
        this.#restart(Math.min(delayMs * 2, 30_000));
      });
    }, delayMs).unref();
  }

  #reportStats(): void {
    const p = this.#past;
    const l = this.#last;
    this.#o.hub.setRemoteStats({ clients: l.clients, dropped: p.dropped + l.dropped, messages: p.messages + l.messages, bytes: p.bytes + l.bytes });
  }

  #attach(w: Worker, feed: ReadFeed): void {
    const push = (messages: string[]) => {
      const delta = feed.next();
      if (delta === null && messages.length === 0) return;
      w.postMessage({ t: "feed", delta, messages } satisfies ToApiThread);
    };
    this.#unrelay = this.#o.hub.relay(push);
    this.#timer = setInterval(() => push([]), this.#o.feedMs ?? 50);
    this.#timer.unref();
  }

  #detach(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#unrelay?.();
    this.#unrelay = undefined;
  }

  async #answer(w: Worker, m: CallMessage): Promise<void> {
    let reply: ReplyMessage;
    try {
      if (!CALLS.has(m.method)) throw new Error(`no such call: ${m.method}`);
      const fn = (this.#o.service as unknown as Record<string, (...a: unknown[]) => unknown>)[m.method]!;
      reply = { t: "reply", id: m.id, ok: true, value: await fn.apply(this.#o.service, m.args) };
    } catch (err) {
      this.#o.metrics.errors.inc({ where: "api_call" });
      this.#o.log.error({ err, call: m.method }, "API call failed on the pit's thread");
      reply = { t: "reply", id: m.id, ok: false, message: (err as Error).message };
    }
    if (this.#worker !== w) return;
    try {
      w.postMessage(reply);
    } catch (err) {
      w.postMessage({ t: "reply", id: m.id, ok: false, message: `the answer to ${m.method} cannot cross threads: ${(err as Error).message}` } satisfies ReplyMessage);
    }
  }
}

/** Writes a JSON log line from the API thread through this thread's logger, at its level. */
function relayLog(log: pino.Logger, line: string): void {
  let o: { level?: number; msg?: string; [k: string]: unknown };
  try {
    o = JSON.parse(line) as typeof o;
  } catch {
    return void log.warn({ line }, "unparsable API thread log line");
  }
  const { level, msg, ...rest } = o;
  const label = (pino.levels.labels[level ?? 30] ?? "info") as pino.Level;
  log[label](rest, msg);
}
