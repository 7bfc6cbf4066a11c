// The session lifecycle: one vocabulary and one transition table for every layer. The engine
// takes the first three steps as commands; the session runner steps through the whole table
// (keeper/session/runner.ts); the store, the executor's port, the API's schemas and the page
// name phases with these words and derive their types from SESSION_PHASES.
//
//   pre_session --start_trading--> trading --end_trading--> closing --close_out--> settling --finish--> settled
//
// One meaning per word:
// - closing: trading has ended, every order is cancelled, the closing marks are fixed.
// - close_out: the closing cross, bankruptcies, netting and the leaderboard (the engine's last
//   step): the session's result exists off-chain.
// - settling: that result is being posted on-chain (batches, challenge window, finalize).
// - settled: the vault has finalized the session (or voided it); its balances are final.
// After settled the next session opens in pre_session.

export const SESSION_PHASES = ["pre_session", "trading", "closing", "settling", "settled"] as const;
export type SessionPhase = (typeof SESSION_PHASES)[number];

/** step -> [from, to]. Anything else is an invalid transition. */
export const SESSION_TRANSITIONS = {
  start_trading: ["pre_session", "trading"],
  end_trading: ["trading", "closing"],
  close_out: ["closing", "settling"],
  finish: ["settling", "settled"],
} as const satisfies Record<string, readonly [SessionPhase, SessionPhase]>;
export type SessionStep = keyof typeof SESSION_TRANSITIONS;

/** The steps the engine takes itself, as commands; `finish` is the vault's (on-chain). */
export type EngineStep = Exclude<SessionStep, "finish">;

/** The step that leaves `phase`, or null for settled (the next session starts afresh). */
export function stepFrom(phase: SessionPhase): SessionStep | null {
  for (const [step, [from]] of Object.entries(SESSION_TRANSITIONS)) if (from === phase) return step as SessionStep;
  return null;
}

export function isSessionPhase(value: unknown): value is SessionPhase {
  return typeof value === "string" && (SESSION_PHASES as readonly string[]).includes(value);
}
