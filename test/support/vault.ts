// Shared vault fixture: the real deployment (keeper/chain/deploy.ts) on an in-process network,
// with traders funded and approved, plus helpers that drive a session through settlement.
import type { NetworkConnection } from "hardhat/types/network";
import { maxUint256, parseUnits, type Address, type Hex } from "viem";
import { deployCME } from "../../keeper/chain/deploy.ts";
import {
  buildBatchChain,
  splitIntoBatches,
  ZERO_HASH,
  type SettlementEntry,
} from "../../keeper/settlement/batches.ts";

export const GRACE = 600n;
export const USDC = (n: string | number) => parseUnits(String(n), 6);
export const PEPE = (n: string | number) => parseUnits(String(n), 18);
export const FILL_LOG_HASH: Hex = `0x${"ab".repeat(32)}`;

export async function vaultFixture(connection: NetworkConnection) {
  const { viem, networkHelpers } = connection;
  const publicClient = await viem.getPublicClient();
  const wallets = await viem.getWalletClients();
  const [admin, settler, treasury, insurance, alice, bob, carol, stranger] = wallets;
  if (!admin || !settler || !treasury || !insurance || !alice || !bob || !carol || !stranger) {
    throw new Error("need 8 accounts");
  }
  const record = await deployCME(viem, {
    settler: settler.account.address,
    treasury: treasury.account.address,
    insurance: insurance.account.address,
    gracePeriod: GRACE,
    mocks: true,
  });
  const vault = await viem.getContractAt("CMEVault", record.vault);
  const usdc = await viem.getContractAt("MockUSDC", record.tokens[0]!.address);
  const pepe = await viem.getContractAt("MockMemecoin", record.tokens[1]!.address);
  const wif = await viem.getContractAt("MockMemecoin", record.tokens[2]!.address);
  for (const w of [alice, bob, carol, stranger]) {
    await usdc.write.mint([w.account.address, USDC(1_000_000)]);
    await pepe.write.mint([w.account.address, PEPE(1_000_000_000)]);
    await usdc.write.approve([vault.address, maxUint256], { account: w.account });
    await pepe.write.approve([vault.address, maxUint256], { account: w.account });
  }

  const asSettler = { account: settler.account };

  // Registered accounts: treasury 1, insurance 2 (at deploy), then alice 3, bob 4, carol 5.
  await vault.write.deposit([usdc.address, USDC(10_000)], { account: alice.account });
  await vault.write.deposit([pepe.address, PEPE(1_000_000)], { account: bob.account });
  await vault.write.deposit([usdc.address, USDC(5_000)], { account: carol.account });
  const ids = { treasury: 1, insurance: 2, alice: 3, bob: 4, carol: 5 } as const;
  const tok = { usdc: 0, pepe: 1, wif: 2, bonk: 3 } as const;

  /** Alice buys 100,000 PEPE from bob for 1,000 USDC and pays a 1 USDC fee to the treasury. */
  const trade: SettlementEntry[] = [
    { accountId: ids.alice, tokenIndex: tok.usdc, delta: -USDC(1_001) },
    { accountId: ids.alice, tokenIndex: tok.pepe, delta: PEPE(100_000) },
    { accountId: ids.bob, tokenIndex: tok.pepe, delta: -PEPE(100_000) },
    { accountId: ids.bob, tokenIndex: tok.usdc, delta: USDC(1_000) },
    { accountId: ids.treasury, tokenIndex: tok.usdc, delta: USDC(1) },
  ];

  /** Starts the next session with a deadline `ttl` seconds from now. */
  async function startSession(ttl = 3_600n): Promise<number> {
    const id = (await vault.read.currentSessionId()) + 1;
    const now = BigInt(await networkHelpers.time.latest());
    await vault.write.startSession([id, now + ttl], asSettler);
    return id;
  }

  /** Commits the chain for `entries` cut into batches; returns the links to post. */
  async function beginSettlement(sessionId: number, entries: SettlementEntry[], batchSize = 100) {
    const chain = buildBatchChain(sessionId, splitIntoBatches(entries, batchSize));
    await vault.write.beginSettlement([sessionId, chain.root, chain.links.length, FILL_LOG_HASH], asSettler);
    return chain;
  }

  /** Runs a whole session: start, settle `entries`, finalize. */
  async function runSession(entries: SettlementEntry[], batchSize = 100): Promise<number> {
    const id = await startSession();
    const chain = await beginSettlement(id, entries, batchSize);
    for (const l of chain.links) await vault.write.postBatch([id, l.index, l.entries, l.next], asSettler);
    await vault.write.finalize([id], asSettler);
    return id;
  }

  async function accountId(address: Address): Promise<number> {
    return vault.read.accountIdOf([address]);
  }

  return {
    viem,
    networkHelpers,
    publicClient,
    record,
    vault,
    usdc,
    pepe,
    wif,
    admin,
    settler,
    treasury,
    insurance,
    alice,
    bob,
    carol,
    stranger,
    asSettler,
    ids,
    tok,
    trade,
    startSession,
    beginSettlement,
    runSession,
    accountId,
    ZERO_HASH,
  };
}

export type VaultFixture = Awaited<ReturnType<typeof vaultFixture>>;
