// The keeper's wire as TypeScript types, derived from the JSON schemas that validate and
// serialize it (api/schemas.ts), so a shape is defined once: what a route sends, what the stream
// sends, what the page and the client library read, and what a simulated keeper must produce.
import type { FromSchema } from "json-schema-to-ts";
import type * as S from "./schemas.ts";

export type SessionWire = FromSchema<typeof S.sessionSchema>;
export type PairWire = FromSchema<typeof S.pairSchema>;
export type TokenWire = FromSchema<typeof S.tokenSchema>;
export type BookWire = FromSchema<typeof S.bookSchema>;
export type TradeWire = FromSchema<typeof S.tradeSchema>;
export type OutcryWire = FromSchema<typeof S.outcrySchema>;
export type LeaderboardRowWire = FromSchema<typeof S.leaderboardRowSchema>;
export type TopPromptWire = FromSchema<typeof S.topPromptSchema>;
export type BrokerWire = FromSchema<typeof S.brokerSchema>;
export type AccountWire = FromSchema<typeof S.accountSchema>;
export type SettlementWire = FromSchema<typeof S.settlementSchema>;
export type HealthWire = FromSchema<typeof S.healthSchema>;
export type UserSettingsWire = FromSchema<typeof S.userSettingsSchema>;
export type PermitWire = FromSchema<typeof S.permitSchema>;
export type WithdrawalWire = FromSchema<typeof S.withdrawalSchema>;
export type OrderEventWire = FromSchema<typeof S.orderEventSchema>;
export type LiquidationWire = FromSchema<typeof S.liquidationSchema>;
export type QuotesWire = FromSchema<typeof S.quotesSchema>;
export type RfqRequestWire = FromSchema<typeof S.rfqRequestSchema>;

export type HelloWire = FromSchema<typeof S.streamSchemas.hello>;

/** What the keeper publishes for each stream message type (the hub adds `type`, and `items` when it conflates). */
export interface StreamPayloads {
  phase: { session: SessionWire };
  order: OrderEventWire;
  fill: TradeWire;
  outcry: OutcryWire;
  pnl: { rows: LeaderboardRowWire[] };
  book: BookWire;
  settlement: SettlementWire;
  liquidation: LiquidationWire;
  trade_request: FromSchema<typeof S.streamSchemas.trade_request>;
  quote: FromSchema<typeof S.streamSchemas.quote>;
  quote_accepted: FromSchema<typeof S.streamSchemas.quote_accepted>;
  block_trade: TradeWire;
  request_expired: FromSchema<typeof S.streamSchemas.request_expired>;
  request_cancelled: FromSchema<typeof S.streamSchemas.request_cancelled>;
}

/** Every message of the WebSocket stream (streamSchemas in api/schemas.ts). */
export type StreamMessage =
  | ({ type: "hello" } & HelloWire)
  | ({ type: "phase" } & StreamPayloads["phase"])
  | ({ type: "order" } & OrderEventWire & { items: OrderEventWire[] })
  | ({ type: "fill" } & TradeWire & { items: TradeWire[] })
  | ({ type: "outcry" } & OutcryWire & { items: OutcryWire[] })
  | ({ type: "pnl" } & StreamPayloads["pnl"])
  | ({ type: "book" } & BookWire)
  | ({ type: "settlement" } & SettlementWire)
  | ({ type: "liquidation" } & LiquidationWire)
  | ({ type: "trade_request" } & StreamPayloads["trade_request"])
  | ({ type: "quote" } & StreamPayloads["quote"])
  | ({ type: "quote_accepted" } & StreamPayloads["quote_accepted"])
  | ({ type: "block_trade" } & TradeWire)
  | ({ type: "request_expired" } & StreamPayloads["request_expired"])
  | ({ type: "request_cancelled" } & StreamPayloads["request_cancelled"]);
