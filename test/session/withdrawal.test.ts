// keeper/session/withdrawal.ts: every row of its table, from the vault's view, the keeper's phase
// and the pit's allowance to the route, the amount available now and the reason.
import { expect } from "chai";
import { decideWithdrawal, type VaultWithdrawalView, type WithdrawalInput } from "../../keeper/session/withdrawal.ts";

const USDC = 1_000_000n;

function vault(patch: Partial<VaultWithdrawalView>): VaultWithdrawalView {
  return { sessionId: 4, phase: "finalized", batchesPosted: 0, batchCount: 0, balance: 500n * USDC, withdrawable: 500n * USDC, settled: 500n * USDC, pending: 0n, pendingSession: 0, ...patch };
}

function decide(patch: Partial<WithdrawalInput>) {
  const d = decideWithdrawal({ keeper: { sessionId: 5, phase: "pre_session" }, symbol: "USDC", decimals: 6, vault: vault({}), pit: null, ledger: 0n, ...patch });
  return { ...d, available: d.available / USDC };
}

describe("decideWithdrawal", () => {
  it("between sessions (none, finalized) and after a void: vault.withdraw, all of it", () => {
    expect(decide({})).to.deep.equal({ route: "direct", code: "no_session", available: 500n, reason: "no session is running, so all of it, directly from the vault" });
    expect(decide({ keeper: { sessionId: 1, phase: "pre_session" }, vault: vault({ sessionId: 0, phase: "none" }) })).to.include({ route: "direct", code: "no_session", available: 500n });
    // Voided while the keeper still trades the session: the vault pays without a permit.
    expect(decide({ keeper: { sessionId: 4, phase: "trading" }, vault: vault({ phase: "voided" }), pit: { ok: true, amount: 0n, held: 0n } })).to.deep.equal({
      route: "direct",
      code: "voided",
      available: 500n,
      reason: "session 4 was voided and every account keeps its pre-session balance, so all of it, directly from the vault",
    });
  });

  it("trading and closing (the vault's Trading both): a permit for what the pit allows, the gains at settlement", () => {
    const trading = vault({ phase: "trading", withdrawable: 0n });
    expect(decide({ keeper: { sessionId: 4, phase: "trading" }, vault: trading, pit: { ok: true, amount: 300n * USDC, held: 300n * USDC } })).to.deep.equal({
      route: "permit",
      code: "trading",
      available: 300n,
      reason: "during trading, with the keeper's permit",
    });
    expect(decide({ keeper: { sessionId: 4, phase: "closing" }, vault: trading, pit: { ok: true, amount: 300n * USDC, held: 312_500_000n } })).to.deep.equal({
      route: "permit",
      code: "closing",
      available: 300n,
      reason: "closing, with the keeper's permit until settlement begins; the rest (12.5 USDC) is paid at settlement",
    });
    expect(decide({ keeper: { sessionId: 4, phase: "trading" }, vault: trading, pit: { ok: false, code: "has_liabilities" } })).to.deep.equal({
      route: "wait",
      code: "has_liabilities",
      available: 0n,
      reason: "the account owes the pit (a negative balance), so nothing until the session settles",
    });
    expect(decide({ keeper: { sessionId: 4, phase: "trading" }, vault: trading, pit: { ok: false, code: "halted", reason: "a reorg reached block 40" } })).to.deep.equal({
      route: "wait",
      code: "halted",
      available: 0n,
      reason: "the keeper stopped the session (a reorg reached block 40) and signs no permit until it resumes",
    });
  });

  it("the vault trading while the keeper signs no permit: wait", () => {
    const trading = vault({ phase: "trading", withdrawable: 0n });
    expect(decide({ keeper: { sessionId: 4, phase: "pre_session" }, vault: trading })).to.include({ route: "wait", code: "session_starting" });
    expect(decide({ keeper: { sessionId: 4, phase: "settling" }, vault: trading })).to.deep.equal({
      route: "wait",
      code: "settlement_starting",
      available: 0n,
      reason: "session 4 is closed out and its settlement is beginning; withdraw directly once your USDC delta is posted",
    });
    expect(decide({ keeper: { sessionId: 5, phase: "trading" }, vault: trading })).to.include({ route: "wait", code: "session_mismatch" });
  });

  it("settling: the posted delta's safe amount now, the gain after finalize; DeltaNotPosted is a wait", () => {
    const settling = { phase: "settling" as const, batchesPosted: 1, batchCount: 3 };
    const keeper = { sessionId: 4, phase: "settling" as const };
    // A gain of 40 posted: 500 now (what it owns however the session ends), 40 after finalize.
    expect(decide({ keeper, vault: vault({ ...settling, pending: 40n * USDC, pendingSession: 4, withdrawable: 500n * USDC }) })).to.deep.equal({
      route: "direct",
      code: "delta_posted",
      available: 500n,
      reason: "settling, your delta is posted; the rest (40 USDC) after finalize",
    });
    // A loss of 60 posted: 440 now, nothing more later.
    expect(decide({ keeper, vault: vault({ ...settling, pending: -60n * USDC, pendingSession: 4, withdrawable: 440n * USDC }) })).to.deep.equal({
      route: "direct",
      code: "delta_posted",
      available: 440n,
      reason: "settling, your delta is posted (what you own however the session ends)",
    });
    // A delta of an earlier, finished session is not this session's.
    expect(decide({ keeper, vault: vault({ ...settling, pending: 5n, pendingSession: 3, withdrawable: 0n }) })).to.deep.equal({
      route: "wait",
      code: "delta_not_posted",
      available: 0n,
      reason: "settling, your USDC delta is not posted yet (1 of 3 batches) and the vault refuses until it is (DeltaNotPosted)",
    });
    expect(decide({ keeper, vault: vault({ ...settling, batchesPosted: 3 }) })).to.include({ route: "direct", code: "batches_posted", available: 500n });
  });

  it("without a chain: the keeper's phase and ledger alone", () => {
    expect(decide({ vault: null, ledger: 70n * USDC })).to.include({ route: "direct", code: "no_session", available: 70n });
    expect(decide({ keeper: { sessionId: 5, phase: "trading" }, vault: null, pit: { ok: true, amount: 20n * USDC, held: 20n * USDC } })).to.include({ route: "permit", available: 20n });
    expect(decide({ keeper: { sessionId: 5, phase: "settling" }, vault: null })).to.include({ route: "wait", code: "no_chain" });
  });
});
