// JSON schemas of every route's input and responses: they validate requests (400 naming the
// field), make fastify serialize responses fast, and are the OpenAPI document served at /docs.

const address = { type: "string", pattern: "^0x[0-9a-fA-F]{40}$", description: "0x-prefixed 20-byte address" } as const;
const uintString = { type: "string", pattern: "^[0-9]{1,78}$", description: "unsigned integer as a decimal string" } as const;
const intString = { type: "string", pattern: "^-?[0-9]{1,78}$", description: "integer as a decimal string" } as const;
const signature = { type: "string", pattern: "^0x[0-9a-fA-F]{130}$", description: "65-byte EIP-712 signature" } as const;
const ms = { type: "integer", description: "milliseconds since the Unix epoch" } as const;

export const errorSchema = {
  $id: "Error",
  type: "object",
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
  nonce: uintString,
  expiry: { type: "integer", minimum: 0, description: "unix seconds after which the signature is refused" },
  signature,
  chainId: { type: "integer", description: "optional: the chain id the wallet signed for (refused with 401 when wrong)" },
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
export const setPromptBody = signedBody({ prompt: { type: "string", minLength: 1, maxLength: 4000 } }, ["prompt"]);
export const setPairsBody = signedBody(
  { pairs: { type: "array", minItems: 1, maxItems: 16, uniqueItems: true, items: { type: "string", pattern: "^[A-Z0-9]{1,12}/[A-Z0-9]{1,12}$" } } },
  ["pairs"],
);
export const repromptBody = signedBody({ prompt: { type: "string", minLength: 1, maxLength: 4000 } }, ["prompt"]);
export const withdrawalBody = signedBody({ token: address, amount: { ...uintString, pattern: "^[1-9][0-9]{0,77}$" } }, ["token", "amount"]);
export const adminSettleBody = {
  type: "object",
  additionalProperties: false,
  required: ["sessionId", "nonce", "expiry", "signature"],
  properties: {
    sessionId: { type: "integer", minimum: 1, maximum: 4294967295 },
    nonce: uintString,
    expiry: envelope.expiry,
    signature,
    chainId: envelope.chainId,
  },
} as const;

export const userSettingsSchema = {
  type: "object",
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
  properties: { ok: { type: "boolean" }, settings: userSettingsSchema },
} as const;

export const permitOk = {
  type: "object",
  properties: {
    ok: { type: "boolean" },
    permit: {
      type: "object",
      properties: {
        account: { type: "string" },
        token: { type: "string" },
        amount: { type: "string" },
        sessionId: { type: "integer" },
        nonce: { type: "string" },
        deadline: { type: "integer" },
        signature: { type: "string" },
        vault: { type: "string" },
      },
    },
  },
} as const;

const tokenSchema = {
  type: "object",
  properties: { symbol: { type: "string" }, address: { type: "string" }, decimals: { type: "integer" }, index: { type: "integer" } },
} as const;

const pairSchema = {
  type: "object",
  additionalProperties: true,
  properties: {
    id: { type: "integer" },
    symbol: { type: "string" },
    base: { type: "string" },
    quote: { type: "string" },
    baseIndex: { type: "integer" },
    quoteIndex: { type: "integer" },
    referencePrice: { type: "string", description: "display: USDC per whole token" },
    referencePriceTicks: { type: "integer" },
  },
} as const;

export const sessionSchema = {
  type: "object",
  properties: {
    id: { type: "integer" },
    phase: { type: "string", enum: ["pre_session", "trading", "closing", "settling", "settled"] },
    phaseStartedAt: ms,
    phaseEndsAt: { type: ["integer", "null"] },
    serverTime: ms,
    chainId: { type: "integer" },
    vault: { type: "string" },
    durations: {
      type: "object",
      properties: { preSessionSec: { type: "integer" }, tradingSec: { type: "integer" }, closingSec: { type: "integer" } },
    },
    tokens: { type: "array", items: tokenSchema },
    pairs: { type: "array", items: pairSchema },
  },
} as const;

const level = {
  type: "object",
  properties: { price: { type: "integer" }, size: { type: "integer" }, orders: { type: "integer" }, priceDisplay: { type: "string" } },
} as const;

export const bookSchema = {
  type: "object",
  properties: {
    pair: { type: "string" },
    bids: { type: "array", items: level },
    asks: { type: "array", items: level },
    mid: { type: ["integer", "null"] },
    mark: { type: ["integer", "null"] },
    midDisplay: { type: ["string", "null"] },
    ts: ms,
  },
} as const;

export const tradeSchema = {
  type: "object",
  properties: {
    pair: { type: "string" },
    price: { type: "integer" },
    size: { type: "integer" },
    priceDisplay: { type: "string" },
    takerSide: { type: "string" },
    maker: { type: "integer" },
    taker: { type: "integer" },
    ts: ms,
    seq: { type: "integer" },
  },
} as const;

export const outcrySchema = {
  type: "object",
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
  properties: {
    rank: { type: "integer" },
    accountId: { type: "integer" },
    account: { type: "string" },
    broker: { type: ["string", "null"] },
    equity: { ...intString, description: "USDC base units at the mark" },
    pnl: { ...intString, description: "USDC base units since the session opened" },
    pnlDisplay: { type: "string" },
  },
} as const;

export const topPromptSchema = {
  type: "object",
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
  properties: {
    id: { type: "string" },
    name: { type: "string" },
    kind: { type: "string", description: "ai or rule-based" },
    available: { type: "boolean" },
    reason: { type: "string" },
  },
} as const;

export const accountSchema = {
  type: "object",
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
        properties: {
          id: { type: "integer" },
          pair: { type: "string" },
          side: { type: "string" },
          type: { type: "string" },
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

export const settlementSchema = {
  type: "object",
  properties: {
    sessionId: { type: "integer" },
    status: { type: "string", description: "not_started, planned, begun, finalized or voided" },
    batchCount: { type: "integer" },
    batchesConfirmed: { type: "integer" },
    batchRoot: { type: ["string", "null"] },
    fillLogHash: { type: ["string", "null"] },
    deltaCount: { type: "integer" },
    onChain: {
      type: ["object", "null"],
      properties: { phase: { type: "string" }, batchesPosted: { type: "integer" }, batchCount: { type: "integer" } },
    },
    transactions: {
      type: "array",
      items: {
        type: "object",
        properties: { step: { type: "string" }, nonce: { type: "integer" }, hash: { type: "string" }, status: { type: "string" }, block: { type: ["integer", "null"] } },
      },
    },
  },
} as const;

export const healthSchema = {
  type: "object",
  properties: {
    ok: { type: "boolean" },
    phase: { type: "string" },
    sessionId: { type: "integer" },
    chainBlock: { type: ["integer", "null"] },
    journalSeq: { type: "integer" },
    wsClients: { type: "integer" },
  },
} as const;

export const pairParam = {
  type: "object",
  required: ["pair"],
  properties: { pair: { type: "string", pattern: "^[A-Za-z0-9]{1,12}[-_/][A-Za-z0-9]{1,12}$", description: "e.g. PEPE-USDC (or PEPE/USDC url-encoded)" } },
} as const;

export const sessionIdParam = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "integer", minimum: 1 } },
} as const;
