// Every decision a broker makes, with what became of it: which model answered, what it cost,
// what the keeper accepted or refused and why, and (once the next decision closes it) the fills
// and PnL change it led to.
import type { BrokerFailure, CallInfo, Decision, Purpose } from "./types.ts";

/**
 * Who produced the action that was applied: the broker; the system default strategy (for pairs a
 * broker gave nothing at the start); the built-in market maker (at the spend cap); or the keeper
 * itself (the minimum crossing IOC after two replies without the crossing order the rules asked for).
 */
export type DecisionSource = "broker" | "system_default" | "spend_cap_fallback" | "keeper";

/** A refused part of an action; the text is what the broker reads next tick. */
export interface Refusal {
  code: string;
  text: string;
}

export interface DecisionOutcome {
  fills: number;
  filledLots: number;
  /** Quote-asset base units. */
  fees: bigint;
  pnlChange: bigint;
}

export interface DecisionRecord {
  sessionId: number;
  user: number;
  brokerId: string;
  tick: number;
  askedAtMs: number;
  answeredAtMs: number;
  purpose: Purpose;
  source: DecisionSource;
  /** Answered after a later tick had started: checked against the state at arrival. */
  late: boolean;
  call?: CallInfo;
  failure?: BrokerFailure;
  decision?: Decision;
  /** Pairs the system default strategy traded for, in this record, because the broker's first reply gave none. */
  defaulted?: string[];
  accepted: { orders: number; cancels: number; crossing: number };
  refusals: Refusal[];
  /** Null until the broker's next decision (or the session end) closes it. */
  outcome: DecisionOutcome | null;
}

/** Where records go (the keeper's log, a database, a test array). Must not throw. */
export interface DecisionSink {
  decision?(record: DecisionRecord): void;
}
