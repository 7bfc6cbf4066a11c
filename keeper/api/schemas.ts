// JSON schemas of every route's input and responses: they validate requests (400 naming the
// field), make fastify serialize responses fast, are the OpenAPI document served at /docs, and
// are the wire's TypeScript types (api/wire.ts derives them with json-schema-to-ts).
import { SESSION_PHASES } from "../core/phases.ts";
import { promptFieldSchema } from "../brokers/prompt-rules.ts";
import { isCanonicalUint256 } from "../auth/verify.ts";
import { RFQ_MAX_WHITELIST } from "../core/commands.ts";
import { WITHDRAWAL_CODES, WITHDRAWAL_ROUTES } from "../session/withdrawal.ts";

/** Formats the request schemas use beyond JSON Schema's own (buildApp gives them to ajv). */
export const formats = {
  /** A uint256 in canonical decimal: what a nonce or an amount is signed as, in its one spelling. */
  uint256: { type: "string", validate: isCanonicalUint256 },
} as const;

const address = { type: "string", pattern: "^0x[0-9a-fA-F]{40}$", description: "0x-prefixed 20-byte address" } as const;
const uintString = { type: "string", pattern: "^[0-9]{1,78}$", description: "unsigned integer as a decimal string" } as const;
const intString = { type: "string", pattern: "^-?[0-9]{1,78}$", description: "integer as a decimal string" } as const;
const signature = { type: "string", pattern: "^0x[0-9a-fA-F]{130}$", description: "65-byte EIP-712 signature" } as const;
const ms = { type: "integer", description: "milliseconds since the Unix epoch" } as const;
/** A signed uint256 in a request: decimal digits, no leading zeros, at most 2^256 - 1. */
const uint256Input = { type: "string", pattern: "^(0|[1-9][0-9]{0,77})$", format: "uint256", description: "uint256 in decimal without leading zeros" } as const;

export const errorSchema = {
  $id: "Error",
  type: "object",
  additionalProperties: false,
  required: ["error", "message"],
  properties: {
    error: { type: "string", description: "stable error code" },
    message: { type: "string" },
    field: { type: "string", description: "the request field at fault" },
  },
} as const;

/** Fields every signed action body carries besides its own. */
const envelope = {
  account: address,
  nonce: { ...uint256Input, description: "uint256 in decimal without leading zeros; each is accepted once per account, however it is spelled" },
  expiry: { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: "unix seconds after which the signature is refused" },
  signature: { ...signature, description: "65-byte EIP-712 signature (r, s, v) with low s (s <= secp256k1n/2)" },
  chainId: { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: "optional: the chain id the wallet signed for (refused with 401 when wrong)" },
} as const;

function signedBody(props: Record<string, unknown>, required: string[]) {
  return {
    type: "object",
    additionalProperties: false,
    required: [...required, "account", "nonce", "expiry", "signature"],
    properties: { ...props, ...envelope },
  } as const;
}

export const setBrokerBody = signedBody({ brokerId: { type: "string", minLength: 1, maxLength: 64 } }, ["brokerId"]);
export const setPromptBody = signedBody({ prompt: promptFieldSchema }, ["prompt"]);
export const setPairsBody = signedBody(
  { pairs: { type: "array", minItems: 1, maxItems: 16, uniqueItems: true, items: { type: "string", pattern: "^[A-Z0-9]{1,12}/[A-Z0-9]{1,12}$" } } },
  ["pairs"],
);
export const repromptBody = signedBody({ prompt: promptFieldSchema }, ["prompt"]);
export const withdrawalBody = signedBody(
  { token: address, amount: { ...uint256Input, pattern: "^[1-9][0-9]{0,77}$", description: "token base units, uint256 in decimal, at least 1" } },
  ["token", "amount"],
);
// A user's own request-for-quote actions (EIP-712 TradeAction; the fields a route does not take
// are signed as 0, "" or []).
const lots = { type: "integer", minimum: 1, maximum: 1_000_000_000, description: "lots" } as const;
const ticks = { type: "integer", minimum: 0, maximum: 2_147_483_647, description: "ticks; 0: none" } as const;
const id = { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER } as const;
const ttlSec = { type: "integer", minimum: 1, maximum: 3_600, description: "seconds the request or quote stays open" } as const;
export const tradeRequestBody = signedBody(
  {
    pair: { type: "string", pattern: "^[A-Z0-9]{1,12}/[A-Z0-9]{1,12}$" },
    side: { type: "string", enum: ["buy", "sell"] },
    size: lots,
    price: { ...ticks, description: "limit in ticks; 0: no limit" },
    ttlSec,
    whitelist: {
      type: "array",
      maxItems: RFQ_MAX_WHITELIST,
      items: address,
      description: "the wallets (each with a vault account) that may quote; absent or []: anyone (signed as [])",
    },
    minFill: { ...lots, minimum: 0, description: "the smallest block the request trades, in lots; absent or 0: the pair's minimum size (signed as 0)" },
    remainder: { type: "string", enum: ["keep", "drop"], description: "after a partial accept, keep the rest open or drop it" },
  },
  ["pair", "side", "size", "price", "ttlSec", "remainder"],
);
export const tradeQuoteBody = signedBody({ requestId: id, price: { ...ticks, minimum: 1, description: "ticks" }, size: lots, ttlSec }, ["requestId", "price", "size", "ttlSec"]);
export const tradeAcceptBody = signedBody(
  { requestId: id, quoteId: { ...id, minimum: 0, description: "0: the best quotes up to size and price" }, size: { ...lots, minimum: 0, description: "lots; 0: all that is open" }, price: { ...ticks, description: "limit in ticks; 0: the request's own" } },
  ["requestId", "quoteId", "size", "price"],
);
export const tradeCancelBody = signedBody({ requestId: id }, ["requestId"]);
export const tradeLockBody = signedBody({ requestId: id }, ["requestId"]);
/** GET /api/quotes?account=: the pit as one wallet sees it. */
export const quotesQuery = {
  type: "object",
  additionalProperties: false,
  properties: { account: { ...address, description: "show only the requests this wallet may quote, and its own" } },
} as const;
export const tradeOk = {
  type: "object",
  additionalProperties: false,
  required: ["ok", "seq", "events"],
  properties: {
    ok: { type: "boolean" },
    seq: { type: "integer", description: "the command's seq: a new request's or quote's id" },
    events: { type: "array", items: { type: "string" }, description: "what the pit did (rfq_requested, rfq_quoted, fill, ...)" },
  },
} as const;

export const adminSettleBody = {
  type: "object",
  additionalProperties: false,
  required: ["sessionId", "nonce", "expiry", "signature"],
  properties: {
    sessionId: { type: "integer", minimum: 1, maximum: 4294967295 },
    nonce: envelope.nonce,
    expiry: envelope.expiry,
    signature: envelope.signature,
    chainId: envelope.chainId,
  },
} as const;

export const userSettingsSchema = {
  type: "object",
  additionalProperties: false,
  required: ["account", "accountId", "brokerId", "prompt", "pairs", "effectiveSession"],
  properties: {
    account: { type: "string" },
    accountId: { type: ["integer", "null"] },
    brokerId: { type: ["string", "null"] },
    prompt: { type: ["string", "null"], description: "only ever returned to its owner, in the reply to their own signed request" },
    pairs: { type: ["array", "null"], items: { type: "string" } },
    effectiveSession: { type: "integer", description: "the session these settings apply to" },
  },
} as const;

export const actionOk = {
  type: "object",
  additionalProperties: false,
  required: ["ok", "settings"],
  properties: { ok: { type: "boolean" }, settings: userSettingsSchema },
} as const;

export const permitSchema = {
  type: "object",
  additionalProperties: false,
  required: ["account", "token", "amount", "sessionId", "nonce", "deadline", "signature", "vault"],
  properties: {
    account: { type: "string" },
    token: { type: "string" },
    amount: uintString,
    sessionId: { type: "integer" },
    nonce: uintString,
    deadline: { type: "integer", description: "unix seconds" },
    signature: { type: "string" },
    vault: { type: "string" },
  },
} as const;

export const permitOk = {
  type: "object",
  additionalProperties: false,
  required: ["ok", "permit"],
  properties: {
    ok: { type: "boolean" },
    permit: permitSchema,
  },
} as const;

export const tokenSchema = {
  type: "object",
  additionalProperties: false,
  required: ["symbol", "address", "decimals", "index"],
  properties: { symbol: { type: "string" }, address: address, decimals: { type: "integer" }, index: { type: "integer" } },
} as const;

export const pairSchema = {
  type: "object",
  additionalProperties: false,
  required: [
    "id", "symbol", "base", "quote", "baseIndex", "quoteIndex", "referencePrice", "referencePriceTicks", "lotSize", "quotePerTickLot",
    "minSizeLots", "maxSizeLots", "priceBandBps", "baseDecimals", "quoteDecimals", "takerFeeBps", "makerFeeBps",
  ],
  properties: {
    id: { type: "integer" },
    symbol: { type: "string", description: "BASE/QUOTE, e.g. PEPE/USDC" },
    base: { type: "string", description: "base token symbol" },
    quote: { type: "string", description: "quote token symbol" },
    baseIndex: { type: "integer", description: "vault token index of the base" },
    quoteIndex: { type: "integer", description: "vault token index of the quote" },
    referencePrice: { type: "string", description: "quote tokens per whole base token (decimal)" },
    referencePriceTicks: { type: "integer" },
    lotSize: { ...uintString, description: "base-token base units per lot" },
    quotePerTickLot: { type: "integer", description: "quote base units one lot moves per tick" },
    minSizeLots: { type: "integer" },
    maxSizeLots: { type: "integer" },
    priceBandBps: { type: "integer", description: "orders are accepted within this band around the reference price" },
    baseDecimals: { type: "integer" },
    quoteDecimals: { type: "integer" },
    takerFeeBps: { type: "integer" },
    makerFeeBps: { type: "integer" },
  },
} as const;

export const sessionSchema = {
  type: "object",
  additionalProperties: false,
  required: ["id", "phase", "phaseStartedAt", "phaseEndsAt", "serverTime", "chainId", "vault", "durations", "tokens", "pairs"],
  properties: {
    id: { type: "integer" },
    phase: { type: "string", enum: SESSION_PHASES },
    phaseStartedAt: ms,
    phaseEndsAt: { type: ["integer", "null"], description: "null while settling (it lasts until the vault finalizes)" },
    serverTime: ms,
    chainId: { type: "integer" },
    vault: address,
    durations: {
      type: "object",
      additionalProperties: false,
      required: ["preSessionSec", "tradingSec", "closingSec"],
      properties: { preSessionSec: { type: "integer" }, tradingSec: { type: "integer" }, closingSec: { type: "integer" } },
    },
    tokens: { type: "array", items: tokenSchema },
    pairs: { type: "array", items: pairSchema },
  },
} as const;

const level = {
  type: "object",
  additionalProperties: false,
  required: ["price", "size", "orders"],
  properties: { price: { type: "integer" }, size: { type: "integer" }, orders: { type: "integer" } },
} as const;

export const bookSchema = {
  type: "object",
  additionalProperties: false,
  required: ["pair", "bids", "asks", "mid", "mark", "ts"],
  properties: {
    pair: { type: "string" },
    bids: { type: "array", items: level, description: "best first" },
    asks: { type: "array", items: level, description: "best first" },
    mid: { type: ["number", "null"], description: "ticks; a half tick when the spread is odd; null while a side is empty" },
    mark: { type: ["integer", "null"] },
    ts: ms,
  },
} as const;

export const tradeSchema = {
  type: "object",
  additionalProperties: false,
  required: ["pair", "price", "size", "takerSide", "maker", "taker", "ts", "seq"],
  properties: {
    pair: { type: "string" },
    price: { type: "integer" },
    size: { type: "integer" },
    takerSide: { type: "string", enum: ["buy", "sell"] },
    maker: { type: "integer", description: "account id" },
    taker: { type: "integer", description: "account id" },
    ts: ms,
    seq: { type: "integer", description: "trade id, increasing within the session" },
    block: { type: "boolean", description: "a block trade from a request for quote, off the book (absent for book trades)" },
  },
} as const;

export const outcrySchema = {
  type: "object",
  additionalProperties: false,
  required: ["account", "accountId", "broker", "line", "ts"],
  properties: {
    account: { type: "string" },
    accountId: { type: "integer" },
    broker: { type: "string" },
    line: { type: "string" },
    ts: ms,
  },
} as const;

export const leaderboardRowSchema = {
  type: "object",
  additionalProperties: false,
  required: ["rank", "accountId", "account", "broker", "equity", "pnl"],
  properties: {
    rank: { type: "integer" },
    accountId: { type: "integer" },
    account: { type: "string" },
    broker: { type: ["string", "null"] },
    equity: { ...intString, description: "USDC base units at the mark" },
    pnl: { ...intString, description: "USDC base units since the session opened" },
  },
} as const;

export const topPromptSchema = {
  type: "object",
  additionalProperties: false,
  required: ["sessionId", "rank", "account", "brokerId", "prompt", "pnl"],
  properties: {
    sessionId: { type: "integer" },
    rank: { type: "integer" },
    account: { type: "string" },
    brokerId: { type: ["string", "null"] },
    prompt: { type: "string" },
    pnl: intString,
  },
} as const;

export const brokerSchema = {
  type: "object",
  additionalProperties: true,
  required: ["id", "name", "kind", "available"],
  properties: {
    id: { type: "string" },
    name: { type: "string" },
    kind: { type: "string", enum: ["ai", "rule"] },
    available: { type: "boolean" },
    reason: { type: "string", description: "why an AI broker is unavailable" },
    description: { type: "string" },
  },
} as const;

export const accountSchema = {
  type: "object",
  additionalProperties: false,
  required: [
    "account", "accountId", "brokerId", "pairs", "repromptUsed", "inventory", "openOrders", "marginStatus", "equity", "initialMargin",
    "maintenanceMargin", "pnl",
  ],
  properties: {
    account: { type: "string" },
    accountId: { type: ["integer", "null"] },
    brokerId: { type: ["string", "null"] },
    pairs: { type: ["array", "null"], items: { type: "string" } },
    repromptUsed: { type: "boolean" },
    inventory: {
      type: "array",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["token", "index", "amount", "reserved", "onChain"],
        properties: {
          token: { type: "string" },
          index: { type: "integer" },
          amount: intString,
          reserved: uintString,
          onChain: { ...uintString, description: "balance the vault reports" },
        },
      },
    },
    openOrders: {
      type: "array",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["id", "pair", "side", "type", "price", "size", "remaining"],
        properties: {
          id: { type: "integer" },
          pair: { type: "string" },
          side: { type: "string", enum: ["buy", "sell"] },
          type: { type: "string", enum: ["limit", "ioc", "post_only"] },
          price: { type: "integer" },
          size: { type: "integer" },
          remaining: { type: "integer" },
        },
      },
    },
    marginStatus: { type: ["string", "null"], enum: ["ok", "below_im", "below_mm", null] },
    equity: { type: ["string", "null"] },
    initialMargin: { type: ["string", "null"] },
    maintenanceMargin: { type: ["string", "null"] },
    pnl: { type: ["string", "null"] },
  },
} as const;

/** GET /api/accounts/:address/withdrawal: which token. */
export const withdrawalQuery = {
  type: "object",
  additionalProperties: false,
  required: ["token"],
  properties: { token: { type: "string", pattern: "^([A-Za-z0-9]{1,12}|0x[0-9a-fA-F]{40})$", description: "a listed token's symbol (USDC) or address" } },
} as const;

export const withdrawalSchema = {
  type: "object",
  additionalProperties: false,
  required: ["account", "token", "tokenAddress", "decimals", "sessionId", "phase", "vaultPhase", "route", "code", "available", "balance", "reason"],
  properties: {
    account: address,
    token: { type: "string", description: "symbol" },
    tokenAddress: address,
    decimals: { type: "integer" },
    sessionId: { type: "integer", description: "the keeper's session" },
    phase: { type: "string", enum: SESSION_PHASES, description: "the keeper's phase" },
    vaultPhase: { type: ["string", "null"], enum: ["none", "trading", "settling", "finalized", "voided", null], description: "the vault's phase of its current session; null without a chain" },
    route: {
      type: "string",
      enum: WITHDRAWAL_ROUTES,
      description: "direct: vault.withdraw; permit: POST /withdrawal-permit, then vault.withdrawWithPermit; wait: nothing can leave now",
    },
    code: { type: "string", enum: WITHDRAWAL_CODES, description: "why (keeper/session/withdrawal.ts)" },
    available: { ...uintString, description: "token base units the route can take now" },
    balance: { ...uintString, description: "the vault's balanceOf (a posted, unfinalized delta excluded)" },
    reason: { type: "string", description: "why, in words that follow \"up to <available> now:\"" },
  },
} as const;

export const settlementSchema = {
  type: "object",
  additionalProperties: false,
  required: ["sessionId", "status", "batchCount", "batchesConfirmed", "batchRoot", "fillLogHash", "deltaCount", "onChain", "transactions"],
  properties: {
    sessionId: { type: "integer" },
    status: { type: "string", enum: ["not_started", "planned", "begun", "finalized", "voided"] },
    batchCount: { type: "integer" },
    batchesConfirmed: { type: "integer" },
    batchRoot: { type: ["string", "null"] },
    fillLogHash: { type: ["string", "null"] },
    deltaCount: { type: "integer" },
    onChain: {
      type: ["object", "null"],
      additionalProperties: false,
      required: ["phase", "batchesPosted", "batchCount"],
      properties: { phase: { type: "string" }, batchesPosted: { type: "integer" }, batchCount: { type: "integer" } },
    },
    transactions: {
      type: "array",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["step", "nonce", "hash", "status", "block"],
        properties: { step: { type: "string" }, nonce: { type: "integer" }, hash: { type: "string" }, status: { type: "string" }, block: { type: ["integer", "null"] } },
      },
    },
  },
} as const;

export const healthSchema = {
  type: "object",
  additionalProperties: true,
  required: ["ok", "phase", "sessionId", "chainBlock", "journalSeq", "wsClients"],
  properties: {
    ok: { type: "boolean" },
    phase: { type: "string" },
    sessionId: { type: "integer" },
    chainBlock: { type: ["integer", "null"] },
    journalSeq: { type: "integer" },
    wsClients: { type: "integer" },
    components: {
      type: "object",
      description: "each part that must make progress (settlement, watcher, journal, tx-sender): unhealthy names the part and why",
      additionalProperties: {
        type: "object",
        additionalProperties: false,
        required: ["ok", "reason", "lastProgressAt", "expecting"],
        properties: {
          ok: { type: "boolean" },
          reason: { type: ["string", "null"] },
          lastProgressAt: { type: ["integer", "null"] },
          expecting: { type: "boolean" },
        },
      },
    },
  },
} as const;

export const pairParam = {
  type: "object",
  additionalProperties: false,
  required: ["pair"],
  properties: { pair: { type: "string", pattern: "^[A-Za-z0-9]{1,12}[-_/][A-Za-z0-9]{1,12}$", description: "e.g. PEPE-USDC (or PEPE/USDC url-encoded)" } },
} as const;

export const sessionIdParam = {
  type: "object",
  additionalProperties: false,
  required: ["id"],
  properties: { id: { type: "integer", minimum: 1, maximum: 4294967295 } },
} as const;

// Query-string integers: their text must be a decimal integer as well (app.ts checks it before
// validation, so "0x10", "1e3", "Infinity" and "-0" are refused rather than coerced).
export const levelsQuery = {
  type: "object",
  additionalProperties: false,
  properties: { levels: { type: "integer", minimum: 1, maximum: 100, default: 10, description: "price levels per side" } },
} as const;

export const limitQuery = {
  type: "object",
  additionalProperties: false,
  properties: { limit: { type: "integer", minimum: 1, maximum: 500, default: 50, description: "most entries returned" } },
} as const;

// ---------------------------------------------------------------- the WebSocket stream (/ws)
// One JSON object per frame with a `type`. order, fill and outcry are conflated per flush: the
// message repeats its newest event's fields at top level and carries every event in `items`.


export const orderEventSchema = {
  type: "object",
  additionalProperties: false,
  required: ["event", "orderId", "account", "accountId", "pair", "side", "price", "size", "ts"],
  properties: {
    event: { type: "string", enum: ["accepted", "cancelled"] },
    orderId: { type: "integer" },
    account: { type: "string" },
    accountId: { type: "integer" },
    pair: { type: "string" },
    side: { type: "string", enum: ["buy", "sell"] },
    orderType: { type: "string", enum: ["limit", "ioc", "post_only"] },
    price: { type: "integer" },
    size: { type: "integer", description: "lots: the order's size when accepted, what was left when cancelled" },
    reason: { type: "string", description: "why it was cancelled" },
    ts: ms,
  },
} as const;

const decimal = { type: "string", pattern: "^-?(0|[1-9][0-9]*)$" } as const;

/** The keeper liquidated an account below maintenance margin (executor, every tick). */
export const liquidationSchema = {
  type: "object",
  additionalProperties: false,
  required: ["account", "accountId", "broker", "covered", "cancelledOrders", "fee", "equityBefore", "maintenanceBefore", "equityAfter", "fullyCovered", "line", "ts"],
  properties: {
    account: { type: "string" },
    accountId: { type: "integer" },
    broker: { type: ["string", "null"], description: "the account's broker this session; null without one" },
    covered: {
      type: "array",
      description: "what the keeper bought back (a short) or sold (a long, to repay borrowed quote), per pair",
      items: {
        type: "object",
        additionalProperties: false,
        required: ["pair", "asset", "side", "lots", "amount", "quote", "price"],
        properties: {
          pair: { type: "string" },
          asset: { type: "string" },
          side: { type: "string", enum: ["buy", "sell"] },
          lots: { type: "integer" },
          amount: { ...decimal, description: "base units of the asset" },
          quote: { ...decimal, description: "quote base units paid or received" },
          price: { type: "integer", description: "average price in ticks" },
        },
      },
    },
    cancelledOrders: { type: "integer" },
    fee: { ...decimal, description: "quote base units paid to the insurance account" },
    equityBefore: decimal,
    maintenanceBefore: decimal,
    equityAfter: decimal,
    fullyCovered: { type: "boolean" },
    line: { type: "string", description: "the keeper's one-line account of it, as the broker is told" },
    ts: ms,
  },
} as const;

// Requests for quote (keeper/core/rfq.ts). A request's whitelist is never published: only
// whether it has one.
export const rfqQuoteSchema = {
  type: "object",
  additionalProperties: false,
  required: ["quoteId", "requestId", "pair", "quoter", "side", "price", "size", "validUntil"],
  properties: {
    quoteId: { type: "integer" },
    requestId: { type: "integer" },
    pair: { type: "string" },
    quoter: { type: "integer", description: "account id" },
    side: { type: "string", enum: ["buy", "sell"], description: "the quoter's side" },
    price: { type: "integer" },
    size: { type: "integer" },
    validUntil: ms,
  },
} as const;

export const rfqRequestSchema = {
  type: "object",
  additionalProperties: false,
  required: ["requestId", "pair", "accountId", "side", "size", "remaining", "limit", "expiresAt", "whitelisted", "minFill", "remainder", "lockedBy", "quotes"],
  properties: {
    requestId: { type: "integer" },
    pair: { type: "string" },
    accountId: { type: "integer", description: "the requester" },
    side: { type: "string", enum: ["buy", "sell"], description: "the requester's side" },
    size: { type: "integer" },
    remaining: { type: "integer" },
    limit: { type: ["integer", "null"] },
    expiresAt: ms,
    whitelisted: { type: "boolean", description: "only some accounts may quote (which ones is not published)" },
    minFill: { type: "integer" },
    remainder: { type: "string", enum: ["keep", "drop"] },
    lockedBy: { type: ["integer", "null"] },
    quotes: { type: "array", items: rfqQuoteSchema },
  },
} as const;

export const quotesSchema = {
  type: "object",
  additionalProperties: false,
  required: ["requests"],
  properties: { requests: { type: "array", items: rfqRequestSchema } },
} as const;

const rfqEndSchema = {
  type: "object",
  additionalProperties: false,
  required: ["requestId", "quoteId", "pair", "accountId", "side", "remaining", "ts"],
  properties: {
    requestId: { type: "integer" },
    quoteId: { type: ["integer", "null"], description: "null: the request itself ended" },
    pair: { type: "string" },
    accountId: { type: "integer" },
    side: { type: "string", enum: ["buy", "sell"] },
    remaining: { type: "integer" },
    reason: { type: "string" },
    ts: ms,
  },
} as const;

export const streamSchemas = {
  hello: {
    type: "object",
    additionalProperties: false,
    required: ["serverTime"],
    properties: {
      session: sessionSchema,
      books: { type: "object", additionalProperties: bookSchema },
      trades: { type: "object", additionalProperties: { type: "array", items: tradeSchema } },
      outcry: { type: "array", items: outcrySchema },
      leaderboard: { type: "array", items: leaderboardRowSchema },
      serverTime: ms,
    },
  },
  phase: { type: "object", additionalProperties: false, required: ["session"], properties: { session: sessionSchema } },
  order: {
    type: "object",
    additionalProperties: false,
    required: [...orderEventSchema.required, "items"],
    properties: { ...orderEventSchema.properties, items: { type: "array", items: orderEventSchema } },
  },
  fill: {
    type: "object",
    additionalProperties: false,
    required: [...tradeSchema.required, "items"],
    properties: { ...tradeSchema.properties, items: { type: "array", items: tradeSchema } },
  },
  outcry: {
    type: "object",
    additionalProperties: false,
    required: [...outcrySchema.required, "items"],
    properties: { ...outcrySchema.properties, items: { type: "array", items: outcrySchema } },
  },
  pnl: { type: "object", additionalProperties: false, required: ["rows"], properties: { rows: { type: "array", items: leaderboardRowSchema } } },
  book: bookSchema,
  settlement: settlementSchema,
  liquidation: liquidationSchema,
  trade_request: {
    type: "object",
    additionalProperties: false,
    required: ["requestId", "pair", "accountId", "side", "size", "limit", "expiresAt", "whitelisted", "minFill", "remainder", "ts"],
    properties: {
      requestId: { type: "integer" },
      pair: { type: "string" },
      accountId: { type: "integer" },
      side: { type: "string", enum: ["buy", "sell"] },
      size: { type: "integer" },
      limit: { type: ["integer", "null"] },
      expiresAt: ms,
      whitelisted: { type: "boolean" },
      minFill: { type: "integer" },
      remainder: { type: "string", enum: ["keep", "drop"] },
      ts: ms,
    },
  },
  quote: { ...rfqQuoteSchema, required: [...rfqQuoteSchema.required, "ts"], properties: { ...rfqQuoteSchema.properties, ts: ms } },
  quote_accepted: {
    type: "object",
    additionalProperties: false,
    required: ["requestId", "pair", "accountId", "side", "filled", "quoteIds", "remaining", "status", "ts"],
    properties: {
      requestId: { type: "integer" },
      pair: { type: "string" },
      accountId: { type: "integer" },
      side: { type: "string", enum: ["buy", "sell"] },
      filled: { type: "integer" },
      quoteIds: { type: "array", items: { type: "integer" } },
      remaining: { type: "integer" },
      status: { type: "string", enum: ["open", "filled", "dropped"] },
      ts: ms,
    },
  },
  block_trade: tradeSchema,
  request_expired: rfqEndSchema,
  request_cancelled: rfqEndSchema,
} as const;
