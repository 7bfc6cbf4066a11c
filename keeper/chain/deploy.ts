// Deploys the CME vault the one way tests, the demo, the benchmarks and scripts/deploy.ts share:
// vault, settler and guardian roles, the session gap and challenge window, treasury and insurance
// accounts, listed tokens (mock USDC and memecoins on a local chain), and the deployment record the
// keeper and indexer read (deployments/<chainId>.json).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { HardhatViemHelpers } from "@nomicfoundation/hardhat-viem/types";
import { erc20Abi, getAddress, keccak256, toHex, type Address, type Hash } from "viem";

export const SETTLER_ROLE = keccak256(toHex("SETTLER_ROLE"));
export const GUARDIAN_ROLE = keccak256(toHex("GUARDIAN_ROLE"));

/**
 * The guardian on the local chain: Hardhat account #19, the last one the node funds (#0 deploys,
 * #1 settles, #2 and #3 are the treasury and insurance accounts, the demo's wallets start at #4
 * and use up to #14 by default). Its key is public: local chains only.
 */
export const LOCAL_GUARDIAN: Address = "0x8626f6940E2eb28930eFb4CeF49B2d1F2C9C1199";
const LOCAL_CHAIN_ID = 31337;

/** Local mocks deployed on chain 31337: symbol, name. USDC has 6 decimals, memecoins 18. */
export const LOCAL_MEMECOINS = [
  ["PEPE", "Pepe (mock)"],
  ["WIF", "dogwifhat (mock)"],
  ["BONK", "Bonk (mock)"],
] as const;

export interface DeployCMEOptions {
  /** Receives SETTLER_ROLE (runs sessions, signs withdrawal permits). */
  settler: Address;
  /** Fee account: an ordinary vault account registered at deploy. */
  treasury: Address;
  /** Insurance fund account: an ordinary vault account registered at deploy. */
  insurance: Address;
  /** Seconds after a session's deadline before anyone may void it. */
  gracePeriod: bigint;
  /**
   * Receives GUARDIAN_ROLE (vetoes sessions in the challenge window): an auditors' multisig.
   * Default: LOCAL_GUARDIAN on chain 31337, nobody elsewhere (then no session can be vetoed).
   */
  guardian?: Address;
  /** Seconds after a finalize or void before the next session may start (the vault's default: its floor, 10 minutes). */
  sessionGap?: bigint;
  /** Seconds after the last batch before finalize (the vault's default: its floor, 15 minutes). */
  challengeWindow?: bigint;
  /** Deploy MockUSDC and the LOCAL_MEMECOINS and list them (local chains). */
  mocks: boolean;
  /** Already deployed ERC-20s to list, in index order after any mocks. */
  tokens?: readonly Address[];
}

export interface DeploymentToken {
  symbol: string;
  address: Address;
  decimals: number;
  index: number;
}

/** The record in deployments/<chainId>.json (shared convention, see keeper/chain/deployment.ts). */
export interface DeploymentRecord {
  chainId: number;
  vault: Address;
  startBlock: number;
  settler: Address;
  treasury: Address;
  insurance: Address;
  tokens: DeploymentToken[];
}

type Viem = HardhatViemHelpers;

/** Deploys with the first wallet of `viem` as admin, waiting for every receipt. */
export async function deployCME(viem: Viem, opts: DeployCMEOptions): Promise<DeploymentRecord> {
  const publicClient = await viem.getPublicClient();
  const [deployer] = await viem.getWalletClients();
  if (deployer === undefined) throw new Error("deployCME: the network has no account to deploy from");
  const mined = async (hash: Hash) => {
    const receipt = await publicClient.waitForTransactionReceipt({ hash });
    if (receipt.status !== "success") throw new Error(`deployCME: transaction ${hash} reverted`);
    return receipt;
  };

  const { contract: vault, deploymentTransaction } = await viem.sendDeploymentTransaction("CMEVault", [
    deployer.account.address,
    opts.gracePeriod,
  ]);
  const vaultReceipt = await mined(deploymentTransaction.hash);

  const tokenAddresses: Address[] = [];
  if (opts.mocks) {
    tokenAddresses.push((await viem.deployContract("MockUSDC")).address);
    for (const [symbol, name] of LOCAL_MEMECOINS) {
      tokenAddresses.push((await viem.deployContract("MockMemecoin", [name, symbol])).address);
    }
  }
  tokenAddresses.push(...(opts.tokens ?? []).map((a) => getAddress(a)));

  await mined(await vault.write.grantRole([SETTLER_ROLE, opts.settler]));
  const chainId = await publicClient.getChainId();
  const guardian = opts.guardian ?? (chainId === LOCAL_CHAIN_ID ? LOCAL_GUARDIAN : undefined);
  if (guardian !== undefined) await mined(await vault.write.grantRole([GUARDIAN_ROLE, guardian]));
  // The constructor sets both windows to their floors, the shortest a local chain can have.
  if (opts.sessionGap !== undefined) await mined(await vault.write.setSessionGap([opts.sessionGap]));
  if (opts.challengeWindow !== undefined) await mined(await vault.write.setChallengeWindow([opts.challengeWindow]));
  await mined(await vault.write.register([opts.treasury]));
  await mined(await vault.write.register([opts.insurance]));

  const tokens: DeploymentToken[] = [];
  for (const address of tokenAddresses) {
    await mined(await vault.write.listToken([address]));
    const [symbol, decimals, [index]] = await Promise.all([
      publicClient.readContract({ address, abi: erc20Abi, functionName: "symbol" }),
      publicClient.readContract({ address, abi: erc20Abi, functionName: "decimals" }),
      vault.read.tokenIndexOf([address]),
    ]);
    tokens.push({ symbol, address: getAddress(address), decimals, index });
  }

  return {
    chainId,
    vault: getAddress(vault.address),
    startBlock: Number(vaultReceipt.blockNumber),
    settler: getAddress(opts.settler),
    treasury: getAddress(opts.treasury),
    insurance: getAddress(opts.insurance),
    tokens,
  };
}

export function writeDeployment(record: DeploymentRecord, path = `deployments/${record.chainId}.json`): string {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(record, null, 2)}\n`);
  return path;
}
