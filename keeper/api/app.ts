// The keeper's HTTP and WebSocket surface as a fastify plugin: plugins, then routes, then schemas
// (in keeper/api/schemas.ts). server.ts only listens; tests use app.inject.
import { readFile } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
  type FastifySchema,
  type preValidationHookHandler,
} from "fastify";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import websocket from "@fastify/websocket";
import type { Address } from "viem";
import type { ActionOutcome, KeeperPort, Refusal, Signed, TradeActionBody } from "./port.ts";
import { eip712View } from "./port.ts";
import * as S from "./schemas.ts";
import { StreamGate, type StreamGateOptions } from "../stream/gate.ts";

export interface AppOptions {
  keeper: KeeperPort;
  /** Directory of the pit page (keeper/web by default). */
  webDir?: string;
  /** Limits of the WebSocket stream: heartbeat, slow readers, connection caps (DEFAULT_STREAM_GATE otherwise). */
  stream?: Partial<StreamGateOptions>;
}

/** The fill log's media type: JSON Lines, one record per line (keeper/settlement/fill-log.ts). */
export const FILL_LOG_CONTENT_TYPE = "application/x-ndjson; charset=utf-8";
/** /metrics: the Prometheus text exposition format. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const WEB_DIR = fileURLToPath(new URL("../web/", import.meta.url));
const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, S.errorSchema]));

function send<T>(reply: FastifyReply, outcome: ActionOutcome<T>, wrap: (v: T) => unknown) {
  if (outcome.ok) return reply.code(200).send(wrap(outcome.value));
  return refuse(reply, outcome.refusal);
}

function refuse(reply: FastifyReply, r: Refusal) {
  const body: { error: string; message: string; field?: string } = { error: r.error, message: r.message };
  if (r.field !== undefined) body.field = r.field;
  return reply.code(r.status).send(body);
}

/** A 200 response that is not JSON: its media type and a string schema, as OpenAPI documents it. */
const textResponse = (mediaType: string, description: string) => ({ description, content: { [mediaType]: { schema: { type: "string" } } } });

// Query-string and path integers arrive as text. Ajv's coercion would read "0x10" as 16, "1e3" as
// 1000, "Infinity" as an integer, so the text itself must be a decimal integer, no sign on zero,
// no leading zeros, and a safe integer; the schema's range is then checked by validation.
const DECIMAL_INTEGER = /^(0|-?[1-9][0-9]{0,15})$/;

interface IntegerField {
  part: "query" | "params";
  name: string;
  range: string;
}

/** The integer-typed properties of a route's querystring and params schemas. */
function integerFields(schema: FastifySchema | undefined): IntegerField[] {
  const out: IntegerField[] = [];
  for (const [part, key] of [["query", "querystring"], ["params", "params"]] as const) {
    const props = (schema?.[key] as { properties?: Record<string, { type?: unknown; minimum?: number; maximum?: number }> } | undefined)?.properties;
    for (const [name, p] of Object.entries(props ?? {})) {
      if (p.type !== "integer") continue;
      const range = p.minimum !== undefined && p.maximum !== undefined ? ` from ${p.minimum} to ${p.maximum}` : p.minimum !== undefined ? ` of at least ${p.minimum}` : "";
      out.push({ part, name, range });
    }
  }
  return out;
}

function strictIntegers(fields: IntegerField[]): preValidationHookHandler {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    for (const f of fields) {
      const raw = (req[f.part] as Record<string, unknown> | undefined)?.[f.name];
      if (raw === undefined) continue;
      if (typeof raw !== "string" || !DECIMAL_INTEGER.test(raw) || !Number.isSafeInteger(Number(raw))) {
        const message = `${f.name}: must be one integer in decimal${f.range}`;
        return reply.code(400).send({ error: "bad_request", message, field: f.name });
      }
    }
    return undefined;
  };
}

/** The field a JSON-schema validation error is about, as a dotted path ("pairs.0", "body"). */
function fieldOf(err: FastifyError): string {
  const v = err.validation?.[0];
  if (v === undefined) return "body";
  const params = v.params as Record<string, unknown>;
  const base = v.instancePath.replace(/^\//, "").replaceAll("/", ".");
  const extra = (params.missingProperty ?? params.additionalProperty) as string | undefined;
  if (extra !== undefined) return base === "" ? extra : `${base}.${extra}`;
  return base === "" ? (err.validationContext ?? "body") : base;
}

export const keeperApp: FastifyPluginAsync<AppOptions> = async (app, opts) => {
  const k = opts.keeper;
  const webDir = opts.webDir ?? WEB_DIR;
  const gate = new StreamGate(opts.stream);
  app.addHook("onClose", async () => gate.stop());

  // Every route with integers in its query string or path checks their text first.
  app.addHook("onRoute", (route) => {
    const fields = integerFields(route.schema);
    if (fields.length === 0) return;
    const existing = route.preValidation === undefined ? [] : Array.isArray(route.preValidation) ? route.preValidation : [route.preValidation];
    route.preValidation = [strictIntegers(fields), ...existing];
  });

  await app.register(swagger, {
    openapi: {
      info: {
        title: "CME keeper",
        version: "1.0.0",
        description:
          "The Chicago Memecoin Exchange keeper: signed user actions (EIP-712, see GET /api/eip712), public reads of the pit, " +
          "settlement progress. Amounts are decimal strings of token base units; prices and sizes are integer ticks and lots. " +
          "WebSocket stream at /ws (messages {type,...}: hello, phase, order, fill, outcry, pnl, book, settlement).",
      },
      tags: [{ name: "actions" }, { name: "pit" }, { name: "settlement" }, { name: "ops" }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });
  await app.register(websocket, { options: { maxPayload: 4096 } });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.validation) {
      const field = fieldOf(err);
      return reply.code(400).send({ error: "bad_request", message: `${field}: ${err.message}`, field });
    }
    if (err.code === "FST_ERR_CTP_INVALID_JSON_BODY" || err instanceof SyntaxError) {
      return reply.code(400).send({ error: "malformed_json", message: "request body is not valid JSON", field: "body" });
    }
    if (err.code === "FST_ERR_CTP_EMPTY_JSON_BODY") {
      return reply.code(400).send({ error: "bad_request", message: "request body is empty", field: "body" });
    }
    if (err.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
      return reply.code(415).send({ error: "unsupported_media_type", message: "send application/json", field: "content-type" });
    }
    if (err.statusCode === 503) {
      // The pit's thread is busy (the API thread's queue to it is full): retry later.
      return reply.code(503).header("retry-after", "1").send({ error: err.code ?? "unavailable", message: err.message });
    }
    if ((err.statusCode ?? 500) < 500) {
      return reply.code(err.statusCode ?? 400).send({ error: err.code ?? "bad_request", message: err.message });
    }
    req.log.error({ err }, "request failed");
    return reply.code(500).send({ error: "internal", message: "internal error" });
  });

  // ---------------------------------------------------------------- signed user actions
  const actionSchema = (summary: string, body: object, ok: object) => ({
    tags: ["actions"],
    summary,
    body,
    response: { 200: ok, ...errors(400, 401, 403, 409, 503) },
  });

  app.post<{ Body: Signed & { brokerId: string } }>(
    "/set-broker",
    { schema: actionSchema("Choose the broker that trades for the signing wallet", S.setBrokerBody, S.actionOk) },
    async (req, reply) => send(reply, await k.setBroker(req.body), (settings) => ({ ok: true, settings })),
  );
  app.post<{ Body: Signed & { prompt: string } }>(
    "/set-prompt",
    { schema: actionSchema("Set the strategy prompt (applies from the next session while one is trading)", S.setPromptBody, S.actionOk) },
    async (req, reply) => send(reply, await k.setPrompt(req.body), (settings) => ({ ok: true, settings })),
  );
  app.post<{ Body: Signed & { pairs: string[] } }>(
    "/set-pairs",
    { schema: actionSchema("Choose the pairs the broker trades (pre-session only)", S.setPairsBody, S.actionOk) },
    async (req, reply) => send(reply, await k.setPairs(req.body), (settings) => ({ ok: true, settings })),
  );
  app.post<{ Body: Signed & { prompt: string } }>(
    "/reprompt",
    { schema: actionSchema("Re-prompt the broker mid-session (once per session, trading only)", S.repromptBody, S.actionOk) },
    async (req, reply) => send(reply, await k.reprompt(req.body), (settings) => ({ ok: true, settings })),
  );
  // Requests for quote, by the user directly (a broker does the same through its decisions).
  const trade = (action: TradeActionBody["action"], summary: string, body: object) =>
    app.post<{ Body: Signed & Partial<TradeActionBody> }>(`/trade/${action}`, { schema: actionSchema(summary, body, S.tradeOk) }, async (req, reply) => {
      // The whole struct is signed: what the route does not take is 0, "" or [].
      const b = req.body;
      const full: Signed & TradeActionBody = {
        ...b,
        action,
        pair: b.pair ?? "",
        side: b.side ?? "",
        size: b.size ?? 0,
        price: b.price ?? 0,
        requestId: b.requestId ?? 0,
        quoteId: b.quoteId ?? 0,
        ttlSec: b.ttlSec ?? 0,
        whitelist: b.whitelist ?? [],
        minFill: b.minFill ?? 0,
        remainder: b.remainder ?? "",
      };
      return send(reply, await k.tradeAction(full), (r) => ({ ok: true, ...r }));
    });
  trade(
    "request",
    "Ask the pit for quotes: who sells (buy) or buys (sell) this size, until ttlSec; optionally only from a whitelist, in blocks of at least minFill, the remainder of a partial accept kept or dropped",
    S.tradeRequestBody,
  );
  trade("quote", "Quote on an open request: price and size, valid for ttlSec", S.tradeQuoteBody);
  trade("accept", "Accept a quote, or the best quotes up to size and price (quoteId 0)", S.tradeAcceptBody);
  trade("cancel", "Cancel your request, or withdraw your quote on it", S.tradeCancelBody);
  trade("lock", "Lock a request you hold a live quote on: only your quote can be accepted until you unlock or it ends", S.tradeLockBody);
  trade("unlock", "Let go of a request you locked", S.tradeLockBody);

  app.post<{ Body: Signed & { token: Address; amount: string } }>(
    "/withdrawal-permit",
    {
      schema: actionSchema(
        "Get the settler's withdrawal permit during a session (no liabilities; the amount is reserved in the pit)",
        S.withdrawalBody,
        S.permitOk,
      ),
    },
    async (req, reply) => send(reply, await k.withdrawalPermit(req.body), (permit) => ({ ok: true, permit })),
  );
  app.post<{ Body: Omit<Signed, "account"> & { sessionId: number } }>(
    "/admin/settle",
    {
      schema: {
        tags: ["settlement"],
        summary: "Run or resume a session's settlement (signed by the settler key: Admin struct, action \"settle\")",
        body: S.adminSettleBody,
        response: { 200: S.settlementSchema, ...errors(400, 401, 404, 409, 503) },
      },
    },
    async (req, reply) => send(reply, await k.adminSettle(req.body), (v) => v),
  );

  // ---------------------------------------------------------------- public reads
  // Reads of the pit are serialized once per state version and URL, then served as bytes: under
  // load most requests hit the same few books and lists between two commands.
  const cache = new Map<string, { version: string; body: string }>();
  const cached = (reply: FastifyReply, url: string, build: () => unknown) => {
    const version = k.readVersion();
    const hit = cache.get(url);
    if (hit !== undefined && hit.version === version) return reply.header("content-type", "application/json; charset=utf-8").send(hit.body);
    const value = build();
    if (value === undefined) return undefined;
    const body = JSON.stringify(value);
    if (cache.size > 2_000) cache.clear();
    cache.set(url, { version, body });
    return reply.header("content-type", "application/json; charset=utf-8").send(body);
  };
  const pairKey = (p: string) => p.toUpperCase().replace(/[-_]/, "/");

  app.get("/api/session", { schema: { tags: ["pit"], summary: "Current session: phase, clock, pairs and units", response: { 200: S.sessionSchema } } }, async () =>
    k.session(),
  );
  app.get<{ Params: { pair: string }; Querystring: { levels: number } }>(
    "/api/books/:pair",
    {
      schema: {
        tags: ["pit"],
        summary: "Order book depth of a pair",
        params: S.pairParam,
        querystring: S.levelsQuery,
        response: { 200: S.bookSchema, ...errors(400, 404) },
      },
    },
    async (req, reply) => {
      const sent = cached(reply, req.url, () => k.book(pairKey(req.params.pair), req.query.levels));
      if (sent === undefined) return refuse(reply, { status: 404, error: "unknown_pair", message: `no pair ${req.params.pair}`, field: "pair" });
      return sent;
    },
  );
  app.get<{ Params: { pair: string }; Querystring: { limit: number } }>(
    "/api/trades/:pair",
    {
      schema: {
        tags: ["pit"],
        summary: "Recent trades of a pair, newest first",
        params: S.pairParam,
        querystring: S.limitQuery,
        response: { 200: { type: "array", items: S.tradeSchema }, ...errors(400, 404) },
      },
    },
    async (req, reply) => {
      const sent = cached(reply, req.url, () => k.trades(pairKey(req.params.pair), req.query.limit));
      if (sent === undefined) return refuse(reply, { status: 404, error: "unknown_pair", message: `no pair ${req.params.pair}`, field: "pair" });
      return sent;
    },
  );
  app.get<{ Querystring: { limit: number } }>(
    "/api/outcry",
    {
      schema: {
        tags: ["pit"],
        summary: "Open-outcry feed: the brokers' shouted lines, newest first",
        querystring: S.limitQuery,
        response: { 200: { type: "array", items: S.outcrySchema }, ...errors(400) },
      },
    },
    async (req, reply) => cached(reply, req.url, () => k.outcry(req.query.limit)),
  );
  app.get("/api/leaderboard", { schema: { tags: ["pit"], summary: "Live PnL leaderboard", response: { 200: { type: "array", items: S.leaderboardRowSchema } } } }, async (req, reply) =>
    cached(reply, req.url, () => k.leaderboard()),
  );
  app.get(
    "/api/top-prompts",
    { schema: { tags: ["pit"], summary: "Published top 10 prompts of past sessions, newest session first", response: { 200: { type: "array", items: S.topPromptSchema } } } },
    async () => k.topPrompts(),
  );
  app.get("/api/brokers", { schema: { tags: ["pit"], summary: "Broker catalogue with availability", response: { 200: { type: "array", items: S.brokerSchema } } } }, async () =>
    k.brokers(),
  );
  app.get<{ Params: { address: string } }>(
    "/api/accounts/:address",
    {
      schema: {
        tags: ["pit"],
        summary: "A wallet's inventory, open orders, margin, broker and pairs (never its prompt)",
        params: { type: "object", required: ["address"], properties: { address: { type: "string", pattern: "^0x[0-9a-fA-F]{40}$" } } },
        response: { 200: S.accountSchema, ...errors(400) },
      },
    },
    async (req) => k.account(req.params.address),
  );
  app.get<{ Querystring: { account?: string } }>(
    "/api/quotes",
    {
      schema: {
        tags: ["pit"],
        summary:
          "Open requests for quote and their live quotes (a request's whitelist shows only as `whitelisted`); with ?account=, only those that wallet may quote and its own",
        querystring: S.quotesQuery,
        response: { 200: S.quotesSchema, ...errors(400) },
      },
    },
    async (req) => (req.query.account === undefined ? k.quotes() : k.quotes(req.query.account)),
  );
  app.get<{ Params: { address: string }; Querystring: { token: string } }>(
    "/api/accounts/:address/withdrawal",
    {
      schema: {
        tags: ["pit"],
        summary: "How a wallet can withdraw a token now (vault.withdraw, a keeper permit, or wait), how much, and why",
        params: { type: "object", required: ["address"], properties: { address: { type: "string", pattern: "^0x[0-9a-fA-F]{40}$" } } },
        querystring: S.withdrawalQuery,
        response: { 200: S.withdrawalSchema, ...errors(400) },
      },
    },
    async (req, reply) => send(reply, await k.withdrawal(req.params.address, req.query.token), (v) => v),
  );
  app.get<{ Params: { id: number } }>(
    "/api/sessions/:id/fill-log",
    {
      schema: {
        tags: ["settlement"],
        summary: "The session's published fill log (its keccak256 is committed on-chain at beginSettlement)",
        description: "JSON Lines (application/x-ndjson): one record per line, each line ending in a newline. The x-fill-log-hash header is its keccak256.",
        params: S.sessionIdParam,
        response: { 200: textResponse("application/x-ndjson", "the fill log's exact bytes"), ...errors(400, 404) },
      },
    },
    async (req, reply) => {
      const log = await k.fillLog(req.params.id);
      if (log === undefined) {
        return refuse(reply, { status: 404, error: "not_published", message: `session ${req.params.id} has no published fill log yet`, field: "id" });
      }
      // The exact bytes whose hash is on-chain, so auditors can hash the body as served.
      return reply.header("content-type", FILL_LOG_CONTENT_TYPE).header("x-fill-log-hash", log.hash).send(log.body);
    },
  );
  app.get<{ Params: { id: number } }>(
    "/api/sessions/:id/settlement",
    { schema: { tags: ["settlement"], summary: "Settlement progress of a session", params: S.sessionIdParam, response: { 200: S.settlementSchema, ...errors(400, 404) } } },
    async (req, reply) => {
      const s = await k.settlement(req.params.id);
      if (s === undefined) return refuse(reply, { status: 404, error: "unknown_session", message: `no session ${req.params.id}`, field: "id" });
      return s;
    },
  );
  app.get(
    "/api/eip712",
    {
      schema: {
        tags: ["actions"],
        summary: "EIP-712 domain and types of every signed action",
        response: { 200: { type: "object", additionalProperties: true } },
      },
    },
    async () => eip712View(k.domain()),
  );

  // ---------------------------------------------------------------- ops
  app.get("/healthz", { schema: { tags: ["ops"], response: { 200: S.healthSchema, 503: S.healthSchema } } }, async (_req, reply) => {
    const h = await k.health();
    return reply.code(h.ok ? 200 : 503).send(h);
  });
  app.get(
    "/metrics",
    { schema: { tags: ["ops"], summary: "Metrics in the Prometheus text format (version 0.0.4)", response: { 200: textResponse("text/plain", "Prometheus exposition text") } } },
    async (_req, reply) => reply.header("content-type", METRICS_CONTENT_TYPE).send(await k.metrics()),
  );

  // ---------------------------------------------------------------- stream
  // The gate first: beyond its caps a client is closed with a code and a reason and never
  // subscribes; once in, it is pinged and dropped when silent or too far behind (stream/gate.ts).
  app.get("/ws", { websocket: true, schema: { hide: true } }, (socket, req) => {
    if (!gate.admit(socket, req.ip)) return;
    const unsubscribe = k.subscribe(socket);
    socket.on("close", unsubscribe);
    socket.on("error", unsubscribe);
    // Clients have nothing to say; anything they send is ignored rather than buffered.
    socket.on("message", () => {});
  });

  // ---------------------------------------------------------------- the pit page (static, no build step)
  const serveStatic = async (rel: string, reply: FastifyReply) => {
    const path = normalize(join(webDir, rel));
    if (!path.startsWith(normalize(webDir + sep)) && path !== normalize(webDir)) {
      return refuse(reply, { status: 404, error: "not_found", message: "not found" });
    }
    try {
      const body = await readFile(path);
      return reply
        .header("content-type", CONTENT_TYPES[extname(path)] ?? "application/octet-stream")
        .header("cache-control", "no-cache")
        .send(body);
    } catch {
      return refuse(reply, { status: 404, error: "not_found", message: `no file ${rel}` });
    }
  };
  app.get("/", { schema: { hide: true } }, (_req, reply) => serveStatic("index.html", reply));
  app.get<{ Params: { "*": string } }>("/*", { schema: { hide: true } }, (req, reply) => serveStatic(req.params["*"], reply));
};

/** A fastify instance with the keeper plugin registered (the logger is fastify's pino). */
export async function buildApp(opts: AppOptions & { logger?: FastifyBaseLogger }): Promise<FastifyInstance> {
  const app = fastify({
    ...(opts.logger === undefined ? { logger: false } : { loggerInstance: opts.logger }),
    // Reads are logged only when they fail (5xx are logged by the error handler); writes always.
    logController: new LogController({ disableRequestLogging: (req) => req.method === "GET" }),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: "array", allErrors: false, formats: S.formats } },
    bodyLimit: 64 * 1024,
  });
  const pluginOpts: AppOptions = { keeper: opts.keeper };
  if (opts.webDir !== undefined) pluginOpts.webDir = opts.webDir;
  if (opts.stream !== undefined) pluginOpts.stream = opts.stream;
  await app.register(keeperApp, pluginOpts);
  return app;
}
