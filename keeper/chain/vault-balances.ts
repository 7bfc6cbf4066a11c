// Every (account, token) balance the vault reports at one block: the session's opening snapshot
// comes from here rather than from the keeper's event-built table, so one missed or reorged event
// cannot open a session (and every later one) on wrong balances.
import type { Address, PublicClient } from "viem";
import { vaultAbi } from "./vault-abi.ts";

export interface VaultBalance {
  accountId: number;
  address: Address;
  tokenIndex: number;
  balance: bigint;
}

/** Reads in parallel, `concurrency` calls at a time; zero balances are left out. */
export async function readVaultBalances(
  client: PublicClient,
  vault: Address,
  tokens: readonly { index: number; address: Address }[],
  blockNumber: bigint,
  concurrency = 32,
): Promise<VaultBalance[]> {
  const at = { address: vault, abi: vaultAbi, blockNumber } as const;
  const count = await client.readContract({ ...at, functionName: "accountCount" });
  const ids = Array.from({ length: count }, (_, i) => i + 1);
  const addresses = await inChunks(ids, concurrency, (id) => client.readContract({ ...at, functionName: "accountAt", args: [id] }));
  const pairs = ids.flatMap((id, i) => tokens.map((t) => ({ id, address: addresses[i]!, token: t })));
  const balances = await inChunks(pairs, concurrency, (p) => client.readContract({ ...at, functionName: "balanceOf", args: [p.address, p.token.address] }));
  return pairs
    .map((p, i) => ({ accountId: p.id, address: p.address, tokenIndex: p.token.index, balance: balances[i]! }))
    .filter((b) => b.balance !== 0n);
}

async function inChunks<T, R>(items: readonly T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}
