// A local OpenAI-compatible HTTP server (node:http) for tests and the broker benchmark. It speaks
// POST /v1/chat/completions with the real wire format, answers from a per-test script (valid
// JSON, malformed JSON, schema violations, refusals, finish_reason "length", slow replies,
// 429 with retry-after, 5xx, dropped connections) and records every request body so tests can
// assert exactly what a broker sent.
//
// Run directly (`node --import tsx test/support/openai-server.ts --latency 300 --jitter 100`) it
// serves the benchmark: plausible trading decisions after a configurable latency, and prints one
// JSON line {"url": ...} once listening.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pathToFileURL } from "node:url";
import { rng } from "../../keeper/core/prng.ts";

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body (undefined when it was not JSON). */
  body: any;
  /** Sequence number, from 0. */
  n: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  cached_tokens: number;
}

export type Reply =
  /** A well-formed completion whose content is JSON.stringify(json). */
  | { kind: "json"; json: unknown; model?: string; delayMs?: number; usage?: Partial<Usage> }
  /** A completion with exactly this content (malformed JSON, prose, ...). */
  | { kind: "content"; content: string; finishReason?: "stop" | "length" | "content_filter"; model?: string; delayMs?: number }
  /** A structured-outputs refusal (message.refusal set, content null). */
  | { kind: "refusal"; refusal: string; delayMs?: number }
  /** An HTTP error with the API's error body. */
  | { kind: "error"; status: number; message?: string; headers?: Record<string, string>; delayMs?: number }
  /** Never answers; the client has to time out. */
  | { kind: "hang" }
  /** Drops the connection without a response. */
  | { kind: "destroy"; delayMs?: number };

export type Responder = (req: RecordedRequest) => Reply | Promise<Reply>;

/** A crude BPE stand-in: words, up-to-3-digit number chunks and punctuation each count as a token. */
export function countTokens(text: string): number {
  const m = text.match(/[A-Za-z]+|\d{1,3}|[^\sA-Za-z\d]/g);
  return m === null ? 0 : m.length;
}

function messagesText(body: any): { prefix: string; all: string } {
  const msgs: any[] = Array.isArray(body?.messages) ? body.messages : [];
  const texts = msgs.map((m) => (typeof m?.content === "string" ? m.content : JSON.stringify(m?.content ?? "")));
  return { prefix: texts.slice(0, -1).join("\n"), all: texts.join("\n") };
}

export function completionJson(opts: {
  model: string;
  content: string | null;
  refusal?: string | null;
  finishReason?: string;
  usage: Usage;
  n: number;
}): Record<string, unknown> {
  return {
    id: `chatcmpl-local${opts.n}`,
    object: "chat.completion",
    created: 1_700_000_000 + opts.n,
    model: opts.model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: opts.content, refusal: opts.refusal ?? null, annotations: [] },
        logprobs: null,
        finish_reason: opts.finishReason ?? "stop",
      },
    ],
    usage: {
      prompt_tokens: opts.usage.prompt_tokens,
      completion_tokens: opts.usage.completion_tokens,
      total_tokens: opts.usage.prompt_tokens + opts.usage.completion_tokens,
      prompt_tokens_details: { cached_tokens: opts.usage.cached_tokens, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    },
    service_tier: "default",
    system_fingerprint: "fp_local",
  };
}

export interface ServerOptions {
  responder?: Responder;
  /** Keep parsed request bodies (tests); the benchmark turns this off to save memory. */
  record?: boolean;
  port?: number;
  /** Simulate provider prompt caching: repeated prefixes of >= this many tokens are reported cached. */
  cacheMinTokens?: number;
}

export class OpenAICompatibleServer {
  readonly requests: RecordedRequest[] = [];
  private queue: Reply[] = [];
  private responder: Responder;
  private n = 0;
  private seenPrefixes = new Set<string>();
  private readonly record: boolean;
  private readonly cacheMinTokens: number;
  answered = 0;
  inFlight = 0;
  maxInFlight = 0;

  private constructor(
    private readonly server: Server,
    opts: ServerOptions,
  ) {
    this.responder = opts.responder ?? (() => ({ kind: "json", json: { orders: [], cancels: [], outcry: "", plan: null } }));
    this.record = opts.record ?? true;
    this.cacheMinTokens = opts.cacheMinTokens ?? 1024;
  }

  static async start(opts: ServerOptions = {}): Promise<OpenAICompatibleServer> {
    let self: OpenAICompatibleServer | undefined;
    const server = createServer((req, res) => void self!.handle(req, res));
    // Outlive the client's keep-alive so a reused socket is never closed under a request.
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 66_000;
    server.requestTimeout = 0;
    self = new OpenAICompatibleServer(server, opts);
    // A deep accept queue: a thousand brokers connect at once on the first tick.
    await new Promise<void>((resolve) => server.listen({ port: opts.port ?? 0, host: "127.0.0.1", backlog: 4096 }, resolve));
    return self;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Base URL for the SDK (includes /v1). */
  get url(): string {
    return `http://127.0.0.1:${this.port}/v1`;
  }

  respond(fn: Responder): void {
    this.responder = fn;
  }

  /** Replies used first, in order, before the responder. */
  enqueue(...replies: Reply[]): void {
    this.queue.push(...replies);
  }

  reset(): void {
    this.requests.length = 0;
    this.queue = [];
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private usageFor(body: any, completion: string, override?: Partial<Usage>): Usage {
    const { prefix, all } = messagesText(body);
    const prompt = countTokens(all);
    const prefixTokens = countTokens(prefix);
    let cached = 0;
    if (prefixTokens >= this.cacheMinTokens) {
      if (this.seenPrefixes.has(prefix)) cached = Math.floor(prefixTokens / 128) * 128;
      else if (this.seenPrefixes.size < 100_000) this.seenPrefixes.add(prefix);
    }
    return {
      prompt_tokens: override?.prompt_tokens ?? prompt,
      completion_tokens: override?.completion_tokens ?? countTokens(completion),
      cached_tokens: override?.cached_tokens ?? cached,
    };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    const path = (req.url ?? "/").split("?")[0] ?? "/";
    if (req.method === "GET" && path === "/stats") {
      const cpu = process.cpuUsage();
      return void this.send(res, 200, {
        answered: this.answered,
        inFlight: this.inFlight,
        maxInFlight: this.maxInFlight,
        requests: this.n,
        cpuMs: (cpu.user + cpu.system) / 1000,
      });
    }
    let body: any;
    try {
      body = JSON.parse(raw);
    } catch {
      body = undefined;
    }
    const rec: RecordedRequest = { method: req.method ?? "", path, headers: req.headers, body, n: this.n++ };
    if (this.record) this.requests.push(rec);
    if (req.method !== "POST" || path !== "/v1/chat/completions") {
      return void this.send(res, 404, { error: { message: `no route ${req.method} ${path}`, type: "invalid_request_error", param: null, code: "not_found" } });
    }
    if (body === undefined) {
      return void this.send(res, 400, { error: { message: "body is not JSON", type: "invalid_request_error", param: null, code: null } });
    }
    this.inFlight += 1;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    let reply: Reply;
    try {
      reply = this.queue.shift() ?? (await this.responder(rec));
    } catch (err) {
      reply = { kind: "error", status: 500, message: `responder failed: ${String(err)}` };
    }
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = () => {
      if (settled) return;
      settled = true;
      this.inFlight -= 1;
    };
    // "close" also fires after a normal response; settle() runs once either way.
    res.on("close", () => {
      clearTimeout(timer);
      settle();
    });
    if (reply.kind === "hang") return;
    const go = () => {
      settle();
      if (res.destroyed || res.writableEnded) return;
      this.answered += 1;
      this.write(res, rec, reply);
    };
    const delay = reply.delayMs ?? 0;
    if (delay <= 0) go();
    else timer = setTimeout(go, delay);
  }

  private write(res: ServerResponse, rec: RecordedRequest, reply: Reply): void {
    const model = String(rec.body?.model ?? "local-model");
    switch (reply.kind) {
      case "json": {
        const content = JSON.stringify(reply.json);
        return this.send(res, 200, completionJson({ model: reply.model ?? model, content, usage: this.usageFor(rec.body, content, reply.usage), n: rec.n }));
      }
      case "content":
        return this.send(
          res,
          200,
          completionJson({
            model: reply.model ?? model,
            content: reply.content,
            finishReason: reply.finishReason ?? "stop",
            usage: this.usageFor(rec.body, reply.content),
            n: rec.n,
          }),
        );
      case "refusal":
        return this.send(res, 200, completionJson({ model, content: null, refusal: reply.refusal, usage: this.usageFor(rec.body, reply.refusal), n: rec.n }));
      case "error": {
        const type = reply.status === 429 ? "rate_limit_exceeded" : reply.status >= 500 ? "server_error" : "invalid_request_error";
        return this.send(
          res,
          reply.status,
          { error: { message: reply.message ?? `scripted ${reply.status}`, type, param: null, code: reply.status === 429 ? "rate_limit_exceeded" : null } },
          reply.headers,
        );
      }
      case "destroy":
        res.socket?.destroy();
        return;
      case "hang":
        return;
    }
  }

  private send(res: ServerResponse, status: number, json: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(json);
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
      "x-request-id": `req_local_${this.n}`,
      ...headers,
    });
    res.end(text);
  }
}

// ---- the benchmark's model: plausible decisions read off the compact market state -------------

/** Pulls the pair, mid, best prices, position and open orders out of the broker's state message. */
export function readState(body: any): {
  purpose: string;
  markets: { symbol: string; mid: number | null; bestBid: number | null; bestAsk: number | null; position: number }[];
  openIds: string[];
  wantsCross: boolean;
} {
  const msgs: any[] = Array.isArray(body?.messages) ? body.messages : [];
  const last = String(msgs[msgs.length - 1]?.content ?? "");
  const lines = last.split("\n");
  const purpose = lines[0]?.split(" ")[4] ?? "tick";
  const markets: { symbol: string; mid: number | null; bestBid: number | null; bestAsk: number | null; position: number }[] = [];
  let openIds: string[] = [];
  let wantsCross = false;
  for (const l of lines) {
    const w = l.split(" ");
    if (w[0] === "mkt") markets.push({ symbol: w[1] ?? "", mid: w[3] === "-" ? null : Number(w[3]), bestBid: null, bestAsk: null, position: 0 });
    const m = markets[markets.length - 1];
    if (w[0] === "bid" && m !== undefined && w[1] !== "-") m.bestBid = Number(w[1]?.split(":")[0]);
    if (w[0] === "ask" && m !== undefined && w[1] !== "-") m.bestAsk = Number(w[1]?.split(":")[0]);
    if (w[0] === "pos" && m !== undefined) m.position = Number(w[1]);
    if (w[0] === "open" && w[1] !== "-") openIds = w.slice(1).map((x) => x.split(":")[0] ?? "");
    if (w[0] === "rule" && l.includes("crossing")) wantsCross = true;
  }
  return { purpose, markets, openIds, wantsCross };
}

export function benchResponder(opts: { latencyMs: number; jitterMs: number; seed?: number }): Responder {
  const rand = rng(opts.seed ?? 7);
  return (req) => {
    const st = readState(req.body);
    const orders: unknown[] = [];
    const notes: string[] = [];
    for (const m of st.markets) {
      const ref = m.mid ?? (m.bestBid !== null && m.bestAsk !== null ? (m.bestBid + m.bestAsk) / 2 : null);
      if (ref === null) continue;
      const lean = m.position > 20 ? 1 : m.position < -20 ? -1 : 0;
      const half = 1 + Math.floor(rand() * 3);
      const size = 1 + Math.floor(rand() * 4);
      const bid = Math.max(1, Math.floor(ref - half - lean));
      const ask = Math.max(bid + 1, Math.ceil(ref + half - lean));
      orders.push({ pair: m.symbol, side: "buy", price: bid, size, type: "post_only" });
      orders.push({ pair: m.symbol, side: "sell", price: ask, size, type: "post_only" });
      if ((st.wantsCross || rand() < 0.15) && m.bestAsk !== null && m.bestBid !== null) {
        const buy = lean <= 0 ? rand() < 0.5 : false;
        orders.push({ pair: m.symbol, side: buy ? "buy" : "sell", price: buy ? m.bestAsk : m.bestBid, size: 1, type: "ioc" });
      }
      notes.push(`${m.symbol.split("/")[0]} ${bid}/${ask}`);
    }
    const jitter = (rand() * 2 - 1) * opts.jitterMs;
    return {
      kind: "json",
      delayMs: Math.max(0, Math.round(opts.latencyMs + jitter)),
      json: {
        orders,
        cancels: st.openIds.length > 6 ? ["all"] : [],
        outcry: `Making it: ${notes.join(" ")}`.slice(0, 140),
        plan: st.purpose === "tick" ? null : "quote both sides around the mid, lean against inventory",
      },
    };
  };
}

function argValue(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) ? v : fallback;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const server = await OpenAICompatibleServer.start({
    responder: benchResponder({ latencyMs: argValue("latency", 300), jitterMs: argValue("jitter", 100) }),
    record: false,
    port: argValue("port", 0),
  });
  process.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
  const shutdown = () => void server.close().then(() => process.exit(0));
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
  process.on("disconnect", shutdown);
}
