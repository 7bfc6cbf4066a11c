// The vault fixture (test/support/vault.ts) with the vault's clocks respected: sessions start once
// the session gap after the last one has passed, and settle through the challenge window. Plus
// the guardian (LOCAL_GUARDIAN, Hardhat account #19, granted by keeper/chain/deploy.ts).
import type { NetworkConnection } from "hardhat/types/network";
import type { Hex } from "viem";
import { LOCAL_GUARDIAN } from "../../keeper/chain/deploy.ts";
import type { SettlementEntry } from "../../keeper/settlement/batches.ts";
import { vaultFixture } from "../support/vault.ts";

export { FILL_LOG_HASH, GRACE, PEPE, USDC } from "../support/vault.ts";

export const Phase = { None: 0, Trading: 1, Settling: 2, Finalized: 3, Voided: 4 } as const;
export const MAX_BALANCE = 2n ** 112n - 1n;

export async function cmeFixture(connection: NetworkConnection) {
  const f = await vaultFixture(connection);
  const { vault, networkHelpers, asSettler, viem } = f;
  const wallets = await viem.getWalletClients();
  const guardian = wallets.find((w) => w.account.address.toLowerCase() === LOCAL_GUARDIAN.toLowerCase());
  if (guardian === undefined) throw new Error("the network has no wallet for LOCAL_GUARDIAN");

  const now = async () => BigInt(await networkHelpers.time.latest());
  /** Mines an empty block at `at` if the chain is not there yet. */
  async function reach(at: bigint): Promise<void> {
    if ((await now()) < at) await networkHelpers.time.increaseTo(at);
  }

  /** Waits out the session gap after the last finalize or void. */
  async function passGap(): Promise<void> {
    await reach(BigInt(await vault.read.nextSessionAt()));
  }

  /** Starts the next session once the gap allows, with a deadline `ttl` seconds from now. */
  async function startSession(ttl = 3_600n): Promise<number> {
    await passGap();
    const id = (await vault.read.currentSessionId()) + 1;
    await vault.write.startSession([id, (await now()) + ttl], asSettler);
    return id;
  }

  /** Waits out the challenge window, then finalizes. */
  async function finalize(sessionId: number): Promise<Hex> {
    await reach(BigInt((await vault.read.session([sessionId])).finalizableAt));
    return vault.write.finalize([sessionId], asSettler);
  }

  /** Runs a whole session: start, settle `entries`, the challenge window, finalize. */
  async function runSession(entries: SettlementEntry[], batchSize = 100): Promise<number> {
    const id = await startSession();
    const chain = await f.beginSettlement(id, entries, batchSize);
    for (const l of chain.links) await vault.write.postBatch([id, l.index, l.entries, l.next], asSettler);
    await finalize(id);
    return id;
  }

  return { ...f, guardian, now, reach, passGap, startSession, finalize, runSession };
}

export type CmeFixture = Awaited<ReturnType<typeof cmeFixture>>;
