// Drives the vault as the keeper would, for the indexer's tests and benchmark: funds and deposits
// for users, and runs a session from a fill log (deltas recomputed with the fill-log module,
// batches and hash onion built with keeper/settlement/batches.ts).
import type { Address, Hash, Hex, TransactionReceipt } from "viem";
import { buildBatchChain, splitIntoBatches, type SettlementEntry } from "../../keeper/settlement/batches.ts";
import {
  deltasFromFillLog,
  encodeFillLog,
  hashFillLog,
  type FillLog,
  type FillLogFill,
  type FillLogPair,
} from "../../keeper/settlement/fill-log.ts";
import { deployCME, type DeploymentRecord } from "../../keeper/chain/deploy.ts";
import type { LocalChain } from "./indexer.ts";

type Viem = LocalChain["viem"];
type Wallet = Awaited<ReturnType<Viem["getWalletClients"]>>[number];

export type Driver = Awaited<ReturnType<typeof createDriver>>;

/**
 * The vault with its mock tokens on a test chain, the usual roles (Hardhat accounts #1 settler,
 * #2 treasury, #3 insurance) and `gracePeriod`, and a driver for it.
 */
export async function deployWithDriver(viem: Viem, gracePeriod: bigint): Promise<{ deployment: DeploymentRecord; d: Driver }> {
  const wallets = await viem.getWalletClients();
  const deployment = await deployCME(viem, {
    settler: wallets[1]!.account.address,
    treasury: wallets[2]!.account.address,
    insurance: wallets[3]!.account.address,
    gracePeriod,
    mocks: true,
  });
  return { deployment, d: await createDriver(viem, deployment) };
}

export async function createDriver(viem: Viem, deployment: DeploymentRecord) {
  const publicClient = await viem.getPublicClient();
  const wallets = await viem.getWalletClients();
  const settler = wallets.find((w) => w.account.address.toLowerCase() === deployment.settler.toLowerCase());
  if (settler === undefined) throw new Error("driver: the settler's account is not unlocked on this chain");
  const vaultAs = (wallet: Wallet) => viem.getContractAt("CMEVault", deployment.vault, { client: { wallet } });
  const vault = await vaultAs(settler);
  const token = (symbol: string) => {
    const t = deployment.tokens.find((x) => x.symbol === symbol);
    if (t === undefined) throw new Error(`driver: no token ${symbol} in the deployment`);
    return t;
  };

  const mined = async (hash: Hash): Promise<TransactionReceipt> => {
    const receipt = await publicClient.waitForTransactionReceipt({ hash });
    if (receipt.status !== "success") throw new Error(`driver: transaction ${hash} reverted`);
    return receipt;
  };

  /** Mints `amount` of `symbol` to `wallet` (mocks have open mint) and deposits it. */
  async function deposit(wallet: Wallet, symbol: string, amount: bigint): Promise<TransactionReceipt> {
    const t = token(symbol);
    const erc20 = await viem.getContractAt("MockUSDC", t.address, { client: { wallet } });
    await mined(await erc20.write.mint([wallet.account.address, amount]));
    await mined(await erc20.write.approve([deployment.vault, amount]));
    return mined(await (await vaultAs(wallet)).write.deposit([t.address, amount]));
  }

  async function accountId(address: Address): Promise<number> {
    return await vault.read.accountIdOf([address]);
  }

  // The vault makes the settler wait (the withdrawal window before a session, the challenge window
  // before finalize); on this local chain the driver moves the clock instead of waiting. `reach(at)`
  // moves it to unix second `at` (and mines a block there) if it is not there yet.
  const testClient = await viem.getTestClient();
  async function reach(at: bigint): Promise<void> {
    const now = (await publicClient.getBlock()).timestamp;
    if (now >= at) return;
    await testClient.increaseTime({ seconds: Number(at - now) });
    await testClient.mine({ blocks: 1 });
  }

  async function startSession(sessionId: number, lengthSec: bigint): Promise<TransactionReceipt> {
    await reach(await vault.read.nextSessionAt());
    const now = (await publicClient.getBlock()).timestamp;
    return mined(await vault.write.startSession([sessionId, now + lengthSec]));
  }

  /** Moves the clock past the session's challenge window (after its last batch). */
  async function openFinalize(sessionId: number): Promise<void> {
    await reach(BigInt((await vault.read.session([sessionId])).finalizableAt));
  }

  async function finalize(sessionId: number): Promise<TransactionReceipt> {
    await openFinalize(sessionId);
    return mined(await vault.write.finalize([sessionId]));
  }

  /**
   * Commits and posts a session's settlement from `log`: the fill log's hash, the deltas it
   * implies (or `entries` when a test posts something else), in batches of `batchSize`.
   */
  async function settle(
    log: FillLog,
    options: { batchSize: number; entries?: SettlementEntry[]; finalize?: boolean; postBatches?: number },
  ) {
    const sessionId = log.header.sessionId;
    const text = encodeFillLog(log);
    const entries = options.entries ?? deltasFromFillLog(log);
    const chain = buildBatchChain(sessionId, splitIntoBatches(entries, options.batchSize));
    const begin = await mined(
      await vault.write.beginSettlement([sessionId, chain.root, chain.links.length, hashFillLog(text)]),
    );
    const batches: TransactionReceipt[] = [];
    for (const link of chain.links.slice(0, options.postBatches ?? chain.links.length)) {
      batches.push(await mined(await vault.write.postBatch([sessionId, link.index, link.entries, link.next])));
    }
    const finalized = options.finalize === false ? undefined : await finalize(sessionId);
    return { text, entries, chain, begin, batches, finalized };
  }

  /** Every (account, token) balance as the vault reports it, keyed "0xaccount/0xtoken" (lowercase). */
  async function vaultBalances(): Promise<Map<string, bigint>> {
    const out = new Map<string, bigint>();
    const count = await vault.read.accountCount();
    for (let id = 1; id <= count; id++) {
      const owner = await vault.read.accountAt([id]);
      for (const t of deployment.tokens) {
        out.set(`${owner.toLowerCase()}/${t.address.toLowerCase()}`, await vault.read.balanceOf([owner, t.address]));
      }
    }
    return out;
  }

  return { publicClient, wallets, settler, vault, vaultAs, token, mined, deposit, accountId, reach, startSession, openFinalize, finalize, settle, vaultBalances };
}

/** PEPE/USDC with 0.001 PEPE lots and a tick of 1 micro-USDC per lot. */
export function pepeUsdcPair(deployment: DeploymentRecord): FillLogPair {
  const base = deployment.tokens.find((t) => t.symbol === "PEPE");
  const quote = deployment.tokens.find((t) => t.symbol === "USDC");
  if (base === undefined || quote === undefined) throw new Error("deployment lacks PEPE or USDC");
  return { pairId: 1, symbol: "PEPE/USDC", base: base.index, quote: quote.index, lotSize: 10n ** 15n, tickSize: 1n };
}

/** A fill log over `fills` (seq and ts filled in) with the given opening balances. */
export function fillLogOf(
  deployment: DeploymentRecord,
  treasuryId: number,
  sessionId: number,
  fills: Omit<FillLogFill, "type" | "seq" | "ts">[],
  balances: FillLog["balances"] = [],
): FillLog {
  return {
    header: {
      type: "header",
      version: 1,
      chainId: deployment.chainId,
      vault: deployment.vault.toLowerCase(),
      sessionId,
      treasury: treasuryId,
      pairs: [pepeUsdcPair(deployment)],
    },
    balances,
    events: fills.map((f, i) => ({ type: "fill", seq: i + 1, ts: 1_700_000_000_000 + i, ...f })),
  };
}

export const toHexKey = (account: Hex | Address, token: Hex | Address) => `${account.toLowerCase()}/${token.toLowerCase()}`;
