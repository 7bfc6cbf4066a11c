// Which way a wallet can withdraw a token now, how much, and why: the one answer that
// GET /api/accounts/:address/withdrawal gives the CLI (scripts/withdraw.ts) and the pit page.
//
// The vault decides what leaves it (ICMEVault `withdraw`, `withdrawWithPermit`, `withdrawable`):
//   vault phase                       route    available now
//   none, finalized (no session)      direct   vault.withdraw up to balanceOf
//   voided                            direct   the same: every account keeps its pre-session balance
//   trading, keeper trading/closing   permit   POST /withdrawal-permit, then vault.withdrawWithPermit: what
//                                              the pit lets a permit reserve (at most the net deposit of
//                                              the session, gains are paid at settlement; nothing while
//                                              the account owes the pit)
//   trading, keeper otherwise         wait     the session is starting, or closed out and settling begins
//   settling, the delta posted        direct   min(settled, settled + delta); a gain after finalize
//   settling, every batch posted      direct   the balance (no delta of the account)
//   settling otherwise                wait     the vault reverts DeltaNotPosted
// The keeper's closing phase is still Trading on-chain (the vault knows Trading and Settling only),
// so a permit signed while closing is usable until beginSettlement lands.
import { formatUnits, parseAbi, type Address, type PublicClient } from "viem";
import { VAULT_PHASES, vaultAbi, type VaultPhase } from "../chain/vault-abi.ts";
import type { SessionPhase } from "../core/phases.ts";

export const WITHDRAWAL_ROUTES = ["direct", "permit", "wait"] as const;
export type WithdrawalRoute = (typeof WITHDRAWAL_ROUTES)[number];

/** Why the route and amount are what they are: a stable code beside the sentence. */
export const WITHDRAWAL_CODES = [
  "no_session",
  "voided",
  "trading",
  "closing",
  "has_liabilities",
  "halted",
  "session_starting",
  "settlement_starting",
  "delta_posted",
  "batches_posted",
  "delta_not_posted",
  "session_mismatch",
  "no_chain",
] as const;
export type WithdrawalCode = (typeof WITHDRAWAL_CODES)[number];

/** The vault's view of one (account, token), read at one block. */
export interface VaultWithdrawalView {
  /** The vault's current session and its phase. */
  sessionId: number;
  phase: VaultPhase;
  batchesPosted: number;
  batchCount: number;
  balance: bigint;
  withdrawable: bigint;
  /** The raw slot: a posted delta of the session being settled is `pending` with `pendingSession`. */
  settled: bigint;
  pending: bigint;
  pendingSession: number;
}

/** What a permit could reserve now (SessionRunner.permitAllowance). */
export type PitAllowance =
  | { ok: true; amount: bigint; held: bigint }
  | { ok: false; code: "has_liabilities" }
  /** The keeper stopped the session (SessionRunner.halted) and signs no permit. */
  | { ok: false; code: "halted"; reason: string };

export interface WithdrawalInput {
  keeper: { sessionId: number; phase: SessionPhase };
  symbol: string;
  decimals: number;
  /** Null: the keeper has no chain. */
  vault: VaultWithdrawalView | null;
  /** While the keeper trades or closes; null otherwise. */
  pit: PitAllowance | null;
  /** The keeper's ledger balance: the answer between sessions without a chain. */
  ledger: bigint;
}

export interface WithdrawalDecision {
  route: WithdrawalRoute;
  code: WithdrawalCode;
  /** Base units that `route` can take now. */
  available: bigint;
  /** Why, in words that follow "up to <available> now:" (or "nothing now:" when waiting). */
  reason: string;
}

const NO_SESSION = "no session is running, so all of it, directly from the vault";

export function decideWithdrawal(input: WithdrawalInput): WithdrawalDecision {
  const { keeper, vault, symbol } = input;
  const amount = (v: bigint) => `${formatUnits(v, input.decimals)} ${symbol}`;
  const direct = (code: WithdrawalCode, available: bigint, reason: string): WithdrawalDecision => ({ route: "direct", code, available, reason });
  const wait = (code: WithdrawalCode, reason: string): WithdrawalDecision => ({ route: "wait", code, available: 0n, reason });
  const permit = (): WithdrawalDecision => {
    const pit = input.pit ?? { ok: true, amount: 0n, held: 0n };
    if (!pit.ok) {
      return pit.code === "halted"
        ? wait("halted", `the keeper stopped the session (${pit.reason}) and signs no permit until it resumes`)
        : wait("has_liabilities", "the account owes the pit (a negative balance), so nothing until the session settles");
    }
    const rest = pit.held > pit.amount ? pit.held - pit.amount : 0n;
    const gains = rest > 0n ? `; the rest (${amount(rest)}) is paid at settlement` : "";
    return keeper.phase === "closing"
      ? { route: "permit", code: "closing", available: pit.amount, reason: `closing, with the keeper's permit until settlement begins${gains}` }
      : { route: "permit", code: "trading", available: pit.amount, reason: `during trading, with the keeper's permit${gains}` };
  };

  if (vault === null) {
    if (keeper.phase === "trading" || keeper.phase === "closing") return permit();
    if (keeper.phase === "settling") return wait("no_chain", "the keeper has no chain connection to read the vault");
    return direct("no_session", input.ledger, NO_SESSION);
  }
  switch (vault.phase) {
    case "none":
    case "finalized":
      return direct("no_session", vault.withdrawable, NO_SESSION);
    case "voided":
      return direct("voided", vault.withdrawable, `session ${vault.sessionId} was voided and every account keeps its pre-session balance, so all of it, directly from the vault`);
    case "trading":
      if (vault.sessionId !== keeper.sessionId) return wait("session_mismatch", `the vault trades session ${vault.sessionId} and the keeper runs session ${keeper.sessionId}; ask again shortly`);
      if (keeper.phase === "trading" || keeper.phase === "closing") return permit();
      if (keeper.phase === "pre_session") return wait("session_starting", `session ${vault.sessionId} is starting; withdraw with the keeper's permit once trading opens`);
      return wait("settlement_starting", `session ${vault.sessionId} is closed out and its settlement is beginning; withdraw directly once your ${symbol} delta is posted`);
    case "settling": {
      if (vault.pendingSession === vault.sessionId) {
        const rest = vault.pending > 0n ? vault.pending : 0n;
        return direct(
          "delta_posted",
          vault.withdrawable,
          rest > 0n ? `settling, your delta is posted; the rest (${amount(rest)}) after finalize` : "settling, your delta is posted (what you own however the session ends)",
        );
      }
      if (vault.batchesPosted === vault.batchCount) return direct("batches_posted", vault.withdrawable, "settling, every batch is posted and none holds a delta of yours, so all of it");
      return wait(
        "delta_not_posted",
        `settling, your ${symbol} delta is not posted yet (${vault.batchesPosted} of ${vault.batchCount} batches) and the vault refuses until it is (DeltaNotPosted)`,
      );
    }
  }
}

const slotAbi = parseAbi(["function slotOf(address account, address token) view returns (uint256 settled, int256 pending, uint32 pendingSession)"]);

/** Reads the vault's view of (account, token), every value at the same block. */
export async function readVaultWithdrawalView(client: PublicClient, vault: Address, account: Address, token: Address): Promise<VaultWithdrawalView> {
  // Not the client's cached block number: an answer from before the caller's last transaction misleads.
  const blockNumber = await client.getBlockNumber({ cacheTime: 0 });
  const sessionId = await client.readContract({ address: vault, abi: vaultAbi, functionName: "currentSessionId", blockNumber });
  const [s, balance, withdrawable, slot] = await Promise.all([
    client.readContract({ address: vault, abi: vaultAbi, functionName: "session", args: [sessionId], blockNumber }),
    client.readContract({ address: vault, abi: vaultAbi, functionName: "balanceOf", args: [account, token], blockNumber }),
    client.readContract({ address: vault, abi: vaultAbi, functionName: "withdrawable", args: [account, token], blockNumber }),
    client.readContract({ address: vault, abi: slotAbi, functionName: "slotOf", args: [account, token], blockNumber }),
  ]);
  return {
    sessionId,
    phase: VAULT_PHASES[s.phase] ?? "none",
    batchesPosted: s.batchesPosted,
    batchCount: s.batchCount,
    balance,
    withdrawable,
    settled: slot[0],
    pending: slot[1],
    pendingSession: slot[2],
  };
}
