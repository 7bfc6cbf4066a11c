// The only thing a model may say: a schema-validated action. Everything else it writes is refused.
import { z } from "zod";
import { zodResponseFormat } from "openai/helpers/zod";
import { RFQ_MAX_WHITELIST } from "../core/commands.ts";

export const MAX_ORDERS_PER_REPLY = 10;
export const MAX_CANCELS_PER_REPLY = 50;
export const OUTCRY_MAX_CHARS = 140;
export const PLAN_MAX_CHARS = 280;
export const MAX_PRICE_TICKS = 1_000_000_000;
export const MAX_SIZE_LOTS = 1_000_000_000;

export const orderSchema = z.object({
  pair: z.string().min(1).max(32).describe('pair symbol, e.g. "PEPE/USDC"'),
  side: z.enum(["buy", "sell"]),
  price: z.number().int().min(1).max(MAX_PRICE_TICKS).describe("limit price in integer ticks"),
  size: z.number().int().min(1).max(MAX_SIZE_LOTS).describe("size in integer lots"),
  type: z.enum(["limit", "ioc", "post_only"]),
});

export const MAX_RFQ_PER_REPLY = 5;
/** Account ids are uint32. */
export const MAX_ACCOUNT_ID = 4_294_967_295;

/** Flat on purpose (large schemas break structured outputs): which fields count depends on `action`. */
export const rfqActionSchema = z.object({
  action: z.enum(["request", "quote", "accept", "cancel", "lock", "unlock"]),
  pair: z.string().min(1).max(32).nullable().describe("request: pair symbol"),
  side: z.enum(["buy", "sell"]).nullable().describe("request: your side"),
  size: z.number().int().min(1).max(MAX_SIZE_LOTS).nullable().describe("lots (request, quote; accept: at most)"),
  limit: z.number().int().min(1).max(MAX_PRICE_TICKS).nullable().describe("request/accept: worst price in ticks, or null"),
  ttlSec: z.number().int().min(1).max(600).nullable().describe("request/quote: seconds it stays open (2..30)"),
  requestId: z.number().int().min(1).nullable().describe("quote/accept/cancel/lock/unlock: the request id"),
  quoteId: z.number().int().min(1).nullable().describe("accept: one quote id, or null for the best quotes"),
  price: z.number().int().min(1).max(MAX_PRICE_TICKS).nullable().describe("quote: price in ticks"),
  minFill: z.number().int().min(1).max(MAX_SIZE_LOTS).nullable().describe("request: smallest block in lots, or null (the pair's minimum)"),
  remainder: z.enum(["keep", "drop"]).nullable().describe("request: after a partial accept keep the rest open or drop it; null: keep"),
  whitelist: z
    .array(z.number().int().min(0).max(MAX_ACCOUNT_ID))
    .max(RFQ_MAX_WHITELIST)
    .nullable()
    .describe("request: the only accounts (ids, as quotes name their quoter) that may quote, or null: anyone"),
});

export const decisionSchema = z.object({
  orders: z.array(orderSchema).max(MAX_ORDERS_PER_REPLY),
  cancels: z.array(z.string().min(1).max(32)).max(MAX_CANCELS_PER_REPLY).describe('order ids, or "all"'),
  outcry: z.string().max(OUTCRY_MAX_CHARS).describe("one short line shouted to the pit"),
  plan: z.string().max(PLAN_MAX_CHARS).nullable().describe("a new plan, or null to keep the current one"),
  rfq: z.array(rfqActionSchema).max(MAX_RFQ_PER_REPLY).nullable().optional().describe("requests for quote, or null"),
});

export type DecisionOutput = z.infer<typeof decisionSchema>;

/** Built once: converting the zod schema is not free and the wire schema never changes. */
export const decisionResponseFormat = zodResponseFormat(decisionSchema, "broker_decision");

export const lessonsSchema = z.object({
  lessons: z.array(z.string().min(1).max(200)).min(1).max(5),
});

export const lessonsResponseFormat = zodResponseFormat(lessonsSchema, "broker_lessons");
